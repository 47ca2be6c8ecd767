//! Join parameters computed by a C closure on an I/O thread.
//!
//! The core keeps the parameters function for as long as the channel may
//! rejoin, possibly after `nhc_channel_free` returned. The gate lets the
//! free take the closure away (waiting for a running call) so that its
//! `drop` has run when `nhc_channel_free` returns; later evaluations send `{}`.

use std::sync::{Arc, Condvar, Mutex};

use nerves_hub_channel::{JoinParams, Payload};

use crate::args::json_payload;
use crate::closure::{nhc_params_closure, Owned};

#[derive(Default)]
struct State {
    closure: Option<Arc<Owned<nhc_params_closure>>>,
    calls: usize,
}

#[derive(Default)]
pub(crate) struct ParamsGate {
    state: Mutex<State>,
    idle: Condvar,
}

impl ParamsGate {
    pub fn new(closure: Owned<nhc_params_closure>) -> Arc<ParamsGate> {
        Arc::new(ParamsGate {
            state: Mutex::new(State {
                closure: Some(Arc::new(closure)),
                calls: 0,
            }),
            idle: Condvar::new(),
        })
    }

    pub fn join_params(self: &Arc<Self>) -> JoinParams {
        let gate = self.clone();
        JoinParams::Dynamic(Arc::new(move || gate.evaluate()))
    }

    fn evaluate(&self) -> Payload {
        let closure = {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let Some(c) = st.closure.clone() else {
                return Payload::empty();
            };
            st.calls += 1;
            c
        };
        let text = closure.call();
        drop(closure);
        {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            st.calls -= 1;
        }
        self.idle.notify_all();
        match text {
            None => {
                log::error!("the join params callback returned NULL; sending {{}}");
                Payload::empty()
            }
            Some(bytes) => json_payload(&bytes, "the join params callback's result")
                .unwrap_or_else(|e| {
                    log::error!("{}; sending {{}}", e.message());
                    Payload::empty()
                }),
        }
    }

    /// Takes the closure away; its drop runs here, after any running call.
    pub fn close(&self) {
        let taken = {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            while st.calls > 0 {
                st = self.idle.wait(st).unwrap_or_else(|p| p.into_inner());
            }
            st.closure.take()
        };
        drop(taken);
    }
}
