//! The one place where Rust meets C: every `extern "C"` body and every call
//! into C code runs through these helpers, so a panic never unwinds into a
//! C frame (undefined behaviour) and always becomes a result code.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, Ordering};

use nerves_hub_channel::Error;

use crate::error::{clear_last_error, set_last_error, Failure, FfiResult};
use crate::nhc_result;

/// The pid that first used the library; 0 until then. Checked without a lock
/// because a lock held by a thread that did not survive fork() would hang the
/// child instead of failing it.
/// cbindgen:ignore
static PID: AtomicU32 = AtomicU32::new(0);

fn panic_text(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_owned()
    }
}

/// True in a child process forked after the library was first used.
pub(crate) fn forked() -> bool {
    let me = std::process::id();
    match PID.compare_exchange(0, me, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => false,
        Err(first) => first != me,
    }
}

/// Runs the body of a fallible `nhc_` function: fork check, panic guard,
/// last-error bookkeeping.
pub(crate) fn boundary(f: impl FnOnce() -> FfiResult) -> nhc_result {
    if forked() {
        return report(Err(Failure::Core(Error::Forked)));
    }
    boundary_pure(f)
}

/// `boundary` for functions that touch no shared state (filling a struct,
/// copying an event), which keep working in a forked child.
///
/// The last error is replaced only once `f` returned: its text may be an
/// argument of this very call (`nhc_device_log(dev, level,
/// nhc_last_error_message())`), which `f` reads.
pub(crate) fn boundary_pure(f: impl FnOnce() -> FfiResult) -> nhc_result {
    report(
        catch_unwind(AssertUnwindSafe(f))
            .unwrap_or_else(|p| Err(Failure::Panic(panic_text(p.as_ref())))),
    )
}

fn report(outcome: FfiResult) -> nhc_result {
    match outcome {
        Ok(()) => {
            clear_last_error();
            nhc_result::NHC_OK
        }
        Err(failure) => {
            set_last_error(&failure.message());
            failure.code()
        }
    }
}

/// Like `boundary`, for functions that cannot fail (or report failure
/// through their return value): a panic yields `fallback`. The last error
/// is left alone, so that `nhc_last_error_message` itself can use it.
pub(crate) fn boundary_or<T>(fallback: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| {
        set_last_error(&Failure::Panic(panic_text(p.as_ref())).message());
        fallback
    })
}

/// Around every call into user code (callbacks, drops) and the Rust code
/// that prepares it: a panic there is logged, never propagated, so one bad
/// event cannot take the dispatcher thread or an I/O thread down.
pub(crate) fn guard_callback(what: &str, f: impl FnOnce()) {
    if let Err(p) = catch_unwind(AssertUnwindSafe(f)) {
        log::error!(
            "panic while calling the {what} callback: {}",
            panic_text(p.as_ref())
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    // The C function, as C calls it (a test may use the API above it).
    use crate::nhc_last_error_message;
    use std::ffi::CStr;

    fn last_error() -> String {
        // SAFETY: the library returns a valid NUL-terminated string.
        unsafe { CStr::from_ptr(nhc_last_error_message()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn a_panic_becomes_a_code_and_a_message() {
        let rc = boundary(|| panic!("boom"));
        assert_eq!(rc, nhc_result::NHC_ERR_PANIC);
        assert!(last_error().contains("boom"), "{}", last_error());
        assert_eq!(boundary(|| Ok(())), nhc_result::NHC_OK);
        assert_eq!(last_error(), "");
        assert_eq!(boundary_or(7, || panic!("again")), 7);
        assert!(last_error().contains("again"));
        assert_eq!(boundary_or(1, || 2), 2);
        assert!(
            last_error().contains("again"),
            "boundary_or keeps the last error"
        );
    }

    /// `nhc_device_log(dev, level, nhc_last_error_message())`: the text
    /// stays alive while the call that received it runs (Miri and the C
    /// test `api_last_error` under ASan catch a use after free here).
    #[test]
    fn the_last_error_may_be_the_next_call_s_argument() {
        boundary(|| Err(Failure::InvalidState("first".into())));
        let text = nhc_last_error_message();
        let mut seen = String::new();
        let rc = boundary(|| {
            // SAFETY: valid until this boundary call returns.
            seen = unsafe { CStr::from_ptr(text) }
                .to_string_lossy()
                .into_owned();
            Err(Failure::InvalidState("second".into()))
        });
        assert_eq!(rc, nhc_result::NHC_ERR_INVALID_STATE);
        assert_eq!(seen, "invalid state: first");
        assert_eq!(last_error(), "invalid state: second");
        let text = nhc_last_error_message();
        let rc = boundary(|| {
            // SAFETY: as above.
            seen = unsafe { CStr::from_ptr(text) }
                .to_string_lossy()
                .into_owned();
            Ok(())
        });
        assert_eq!(rc, nhc_result::NHC_OK);
        assert_eq!(seen, "invalid state: second");
        assert_eq!(last_error(), "");
    }

    #[test]
    fn failures_keep_their_code_and_text() {
        let rc = boundary(|| Err(Failure::Core(Error::BufferFull("full".into()))));
        assert_eq!(rc, nhc_result::NHC_ERR_BUFFER_FULL);
        assert_eq!(last_error(), "buffer full: full");
    }

    /// rustls-ffi #286: one exported function without the guard is one too many.
    #[test]
    fn every_exported_function_runs_inside_a_boundary() {
        let sources = [
            ("channel.rs", include_str!("channel.rs")),
            ("device.rs", include_str!("device.rs")),
            ("device_keep.rs", include_str!("device_keep.rs")),
            ("device_options.rs", include_str!("device_options.rs")),
            ("update_options.rs", include_str!("update_options.rs")),
            ("error.rs", include_str!("error.rs")),
            ("keep.rs", include_str!("keep.rs")),
            ("options.rs", include_str!("options.rs")),
            ("runtime.rs", include_str!("runtime.rs")),
            ("socket.rs", include_str!("socket.rs")),
        ];
        let mut seen = 0;
        for (file, src) in sources {
            for (at, _) in src.match_indices("extern \"C\" fn nhc_") {
                let end = src[at..].find("\n}\n").expect("function end");
                let body = &src[at..at + end];
                let name = body.split('(').next().unwrap_or(body);
                assert!(body.contains("boundary"), "{file}: {name} has no boundary");
                seen += 1;
            }
        }
        assert!(seen >= 26, "found only {seen} exported functions");
    }

    #[test]
    fn callback_panics_are_contained() {
        let mut after = false;
        guard_callback("test", || panic!("in a callback"));
        guard_callback("test", || after = true);
        assert!(after);
    }
}
