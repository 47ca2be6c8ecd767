//! Console file transfer as NervesHub's browser side does it: an upload is
//! `file-data/start` (with the `uploaded_by` user id the server adds),
//! 1024-byte base64 `file-data` chunks, `file-data/stop`
//! (`assets/js/hooks/console.js`, `channels/user_console_channel.ex`); a
//! download from the device is reassembled from the same three events, as
//! the browser does before saving it.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use nerves_hub_channel::message::Payload;
use serde_json::{json, Value};

use crate::control::Control;

/// The user id the server puts in `uploaded_by`.
const UPLOADED_BY: u64 = 1;
/// The browser's chunk size.
const CHUNK: usize = 1024;

/// The messages a browser upload of `content` as `name` sends, in order.
/// The browser numbers chunks within each block its file reader returns;
/// one block is assumed here, so `chunk` counts from 0.
pub fn upload_messages(name: &str, content: &[u8]) -> Vec<(&'static str, Value)> {
    let mut out = vec![(
        "file-data/start",
        json!({"filename": name, "uploaded_by": UPLOADED_BY}),
    )];
    for (i, chunk) in content.chunks(CHUNK).enumerate() {
        out.push((
            "file-data",
            json!({"filename": name, "chunk": i, "data": STANDARD.encode(chunk)}),
        ));
    }
    out.push((
        "file-data/stop",
        json!({"filename": name, "uploaded_by": UPLOADED_BY}),
    ));
    out
}

impl Control {
    /// Uploads `content` as `name` to every joined console, as a browser
    /// does; returns how many consoles got the `file-data/start`.
    pub async fn upload_file(&self, name: &str, content: &[u8]) -> usize {
        let mut started = 0;
        for (i, (event, payload)) in upload_messages(name, content).into_iter().enumerate() {
            let n = self.push("console", event, Payload::json(&payload)).await;
            if i == 0 {
                started = n;
            }
        }
        started
    }

    /// Waits for a device-to-browser download of `name` to finish
    /// (`file-data/stop`) and returns its content, reassembled from the
    /// `file-data` chunks after the last `file-data/start` for that name.
    pub async fn downloaded_file(&self, name: &str, timeout: Duration) -> Result<Vec<u8>, String> {
        let named = |v: &Value| v["filename"].as_str() == Some(name);
        let mut stops = 1;
        loop {
            let got = self
                .wait_for("console", "file-data/stop", stops, timeout)
                .await?;
            if got
                .iter()
                .any(|r| r.message.payload.to_value().is_some_and(|v| named(&v)))
            {
                break;
            }
            stops = got.len() + 1;
        }
        let mut content = Vec::new();
        for r in self.received().await {
            if r.message.topic != "console" {
                continue;
            }
            let Some(v) = r.message.payload.to_value() else {
                continue;
            };
            if !named(&v) {
                continue;
            }
            match r.message.event.as_str() {
                "file-data/start" => content.clear(),
                "file-data" => {
                    let data = v["data"].as_str().ok_or("a chunk without data")?;
                    let bytes = STANDARD
                        .decode(data)
                        .map_err(|e| format!("a chunk is not base64: {e}"))?;
                    content.extend(bytes);
                }
                "file-data/stop" => return Ok(content),
                _ => {}
            }
        }
        Err(format!("no complete download of {name}"))
    }
}
