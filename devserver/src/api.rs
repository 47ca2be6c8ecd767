//! The HTTP control API: JSON requests mapped 1:1 onto `Control`, for the C
//! and Python test suites.

use std::time::Duration;

use base64::Engine;
use nerves_hub_channel::message::{Payload, Reply};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::control::Control;
use crate::flood::Flood;
use crate::http::{Request, Response};
use crate::state::{ConnectionInfo, Received};

/// Used when a wait request names no timeout.
const DEFAULT_WAIT_MS: u64 = 5000;

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn body<T: DeserializeOwned>(request: &Request) -> Result<T, Response> {
    let bytes: &[u8] = if request.body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &request.body
    };
    serde_json::from_slice(bytes).map_err(|e| Response::error(400, format!("bad JSON body: {e}")))
}

fn delivered(n: usize) -> Response {
    Response::json(200, &json!({"delivered": n}))
}

fn ok() -> Response {
    Response::json(200, &json!({"ok": true}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PushBody {
    topic: String,
    event: String,
    payload: Option<Box<RawValue>>,
    binary_base64: Option<String>,
    join_ref: Option<String>,
}

/// `payload` (JSON), `binary_base64`, or neither (an empty object).
fn payload(json: Option<Box<RawValue>>, binary: Option<String>) -> Result<Payload, Response> {
    match (json, binary) {
        (Some(_), Some(_)) => Err(Response::error(
            400,
            "give either payload or binary_base64, not both",
        )),
        (Some(raw), None) => Ok(Payload::Json(raw.into())),
        (None, Some(b)) => b64()
            .decode(b.as_bytes())
            .map(Payload::Binary)
            .map_err(|e| Response::error(400, format!("bad binary_base64: {e}"))),
        (None, None) => Ok(Payload::empty()),
    }
}

/// A browser upload to every joined console (`Control::upload_file`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadBody {
    filename: String,
    content_base64: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WaitBody {
    topic: String,
    event: String,
    #[serde(default = "one")]
    count: usize,
    timeout_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WaitJoinedBody {
    topic: String,
    #[serde(default = "one")]
    count: usize,
    timeout_ms: Option<u64>,
}

fn one() -> usize {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopicBody {
    topic: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CloseBody {
    #[serde(default = "normal_closure")]
    code: u16,
}

fn normal_closure() -> u16 {
    1000
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeartbeatBody {
    answer: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBody {
    text: Option<String>,
    binary_base64: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JoinReplyBody {
    topic: String,
    status: Option<String>,
    response: Option<Box<RawValue>>,
    #[serde(default)]
    reset: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FloodBody {
    topic: String,
    event: String,
    count: u64,
    #[serde(default = "default_flood_size")]
    size: usize,
    #[serde(default)]
    with_join_ref: bool,
    /// Messages per second, each sent alone; absent: as fast as the client reads.
    rate: Option<u32>,
}

fn default_flood_size() -> usize {
    256
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtensionsBody {
    enabled: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublicKeysBody {
    fwup: Option<Vec<String>>,
    archive: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SharedSecretBody {
    key: String,
    secret: String,
    identifier: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockSkewBody {
    seconds: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueDeviceBody {
    cn: String,
    /// A PEM CSR made with a key that never leaves its chip: only the
    /// certificate is issued (for it), no key is generated.
    #[serde(default)]
    csr: Option<String>,
}

#[derive(Serialize)]
struct ReceivedJson<'a> {
    connection: u64,
    identity: Option<&'a str>,
    join_ref: Option<&'a str>,
    #[serde(rename = "ref")]
    msg_ref: Option<&'a str>,
    topic: &'a str,
    event: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    binary_base64: Option<String>,
}

fn received_json(list: &[Received]) -> Response {
    let items: Vec<ReceivedJson<'_>> = list
        .iter()
        .map(|r| {
            let (payload, binary_base64) = match &r.message.payload {
                // Valid JSON already: the parse cannot fail.
                Payload::Json(text) => (RawValue::from_string(text.get().to_owned()).ok(), None),
                Payload::Binary(bytes) => (None, Some(b64().encode(bytes))),
            };
            ReceivedJson {
                connection: r.connection,
                identity: r.identity.as_deref(),
                join_ref: r.message.join_ref.as_deref(),
                msg_ref: r.message.msg_ref.as_deref(),
                topic: &r.message.topic,
                event: &r.message.event,
                payload,
                binary_base64,
            }
        })
        .collect();
    match serde_json::to_string(&items) {
        Ok(body) => Response {
            status: 200,
            body,
            raw: None,
        },
        Err(e) => Response::error(500, e),
    }
}

fn connections_json(list: &[ConnectionInfo]) -> Response {
    let items: Vec<Value> = list
        .iter()
        .map(|c| json!({"id": c.id, "identity": c.identity, "path": c.path, "topics": c.topics, "serializer": c.serializer.name()}))
        .collect();
    Response::json(200, &Value::Array(items))
}

/// `[{"identity", "blocked_until_ms"}]`, Unix milliseconds.
fn blocked_json(list: &[(Option<String>, std::time::SystemTime)]) -> Response {
    let items: Vec<Value> = list
        .iter()
        .map(|(identity, until)| {
            let ms = until
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            json!({"identity": identity, "blocked_until_ms": ms})
        })
        .collect();
    Response::json(200, &Value::Array(items))
}

fn timeout(ms: Option<u64>) -> Duration {
    Duration::from_millis(ms.unwrap_or(DEFAULT_WAIT_MS))
}

/// What `GET /` and the binary's ready line say about the server.
pub(crate) struct ApiContext {
    pub control: Control,
    pub info: Value,
    pub pki: crate::pki::Pki,
    pub nh1: crate::auth::SharedSecrets,
    pub firmware: crate::firmware::Firmware,
    pub proxy: std::sync::Arc<crate::connect_proxy::ConnectProxy>,
}

pub(crate) async fn handle(ctx: &ApiContext, request: Request) -> Response {
    let result = route(ctx, &request).await;
    let response = result.unwrap_or_else(|r| r);
    log::debug!(
        "control {} {} -> {}",
        request.method,
        request.path,
        response.status
    );
    response
}

async fn route(ctx: &ApiContext, request: &Request) -> Result<Response, Response> {
    let control = &ctx.control;
    let method = request.method.as_str();
    let path = request.path.as_str();
    if let Some(response) = crate::firmware::route(&ctx.firmware, request) {
        return Ok(response);
    }
    if let Some(response) = crate::connect_proxy::route(&ctx.proxy, request) {
        return Ok(response);
    }
    let expected = match path {
        "/" | "/received" | "/connections" | "/updates_blocked" | "/kicks" => "GET",
        "/push" | "/broadcast" | "/wait" | "/wait_joined" | "/crash" | "/close" | "/drop"
        | "/close_connections" | "/heartbeats" | "/raw" | "/join_reply" | "/reset"
        | "/extensions" | "/public_keys" | "/issue_device" | "/flood" | "/shared_secret"
        | "/clock_skew" | "/upload_file" => "POST",
        _ => return Err(Response::error(404, format!("no such endpoint: {path}"))),
    };
    if method != expected {
        return Err(Response::error(
            405,
            format!("{path} takes {expected}, not {method}"),
        ));
    }
    Ok(match path {
        "/" => Response::json(200, &ctx.info),
        "/received" => received_json(&control.received().await),
        "/connections" => connections_json(&control.connections().await),
        "/updates_blocked" => blocked_json(&control.blocked_updates().await),
        "/kicks" => Response::json(200, &json!({"kicks": control.kicks().await})),
        "/push" | "/broadcast" => {
            let b: PushBody = body(request)?;
            let p = payload(b.payload, b.binary_base64)?;
            let n = match (path, b.join_ref) {
                ("/broadcast", Some(_)) => {
                    return Err(Response::error(400, "a broadcast has no join_ref"))
                }
                ("/broadcast", None) => control.broadcast(&b.topic, &b.event, p).await,
                (_, Some(join_ref)) => {
                    control
                        .push_with_join_ref(&b.topic, &b.event, p, &join_ref)
                        .await
                }
                (_, None) => control.push(&b.topic, &b.event, p).await,
            };
            delivered(n)
        }
        "/upload_file" => {
            let b: UploadBody = body(request)?;
            let content = b64()
                .decode(b.content_base64.as_bytes())
                .map_err(|e| Response::error(400, format!("bad content_base64: {e}")))?;
            delivered(control.upload_file(&b.filename, &content).await)
        }
        "/wait" => {
            let b: WaitBody = body(request)?;
            match control
                .wait_for(&b.topic, &b.event, b.count, timeout(b.timeout_ms))
                .await
            {
                Ok(list) => received_json(&list),
                Err(e) => Response::error(408, e),
            }
        }
        "/wait_joined" => {
            let b: WaitJoinedBody = body(request)?;
            match control
                .wait_joined(&b.topic, b.count, timeout(b.timeout_ms))
                .await
            {
                Ok(()) => ok(),
                Err(e) => Response::error(408, e),
            }
        }
        "/crash" => delivered(
            control
                .crash_channel(&body::<TopicBody>(request)?.topic)
                .await,
        ),
        "/close" => delivered(
            control
                .close_channel(&body::<TopicBody>(request)?.topic)
                .await,
        ),
        "/drop" => delivered(control.drop_connections().await),
        "/close_connections" => delivered(
            control
                .close_connections(body::<CloseBody>(request)?.code)
                .await,
        ),
        "/heartbeats" => {
            control
                .set_heartbeat_replies(body::<HeartbeatBody>(request)?.answer)
                .await;
            ok()
        }
        "/raw" => match body::<RawBody>(request)? {
            RawBody {
                text: Some(text),
                binary_base64: None,
            } => delivered(control.send_raw_text(&text).await),
            RawBody {
                text: None,
                binary_base64: Some(b),
            } => {
                let bytes = b64()
                    .decode(b.as_bytes())
                    .map_err(|e| Response::error(400, format!("bad binary_base64: {e}")))?;
                delivered(control.send_raw_binary(bytes).await)
            }
            _ => {
                return Err(Response::error(
                    400,
                    "give exactly one of text or binary_base64",
                ))
            }
        },
        "/join_reply" => {
            let b: JoinReplyBody = body(request)?;
            let reply = match (b.reset, b.status) {
                (true, None) if b.response.is_none() => None,
                (true, _) => return Err(Response::error(400, "reset takes no status or response")),
                (false, Some(status)) => Some(Reply {
                    status,
                    response: b
                        .response
                        .map(|raw| Payload::Json(raw.into()))
                        .unwrap_or_else(Payload::empty),
                }),
                (false, None) => return Err(Response::error(400, "give a status, or reset: true")),
            };
            control.set_join_reply(&b.topic, reply).await;
            ok()
        }
        "/flood" => {
            let b: FloodBody = body(request)?;
            if b.size > crate::MAX_MESSAGE_SIZE {
                return Err(Response::error(
                    400,
                    format!(
                        "size {} is over the {} byte message limit",
                        b.size,
                        crate::MAX_MESSAGE_SIZE
                    ),
                ));
            }
            if b.rate == Some(0) {
                return Err(Response::error(
                    400,
                    "rate is messages per second: at least 1",
                ));
            }
            let flood = Flood {
                topic: b.topic,
                event: b.event,
                count: b.count,
                size: b.size,
                with_join_ref: b.with_join_ref,
                rate: b.rate,
            };
            delivered(control.flood(flood).await)
        }
        "/reset" => {
            control.reset().await;
            ctx.nh1.clock.set_skew(0);
            ctx.proxy.set_rules(Default::default());
            ok()
        }
        "/shared_secret" => {
            let b: SharedSecretBody = body(request)?;
            let entry = crate::SharedSecretEntry::new(b.key, b.secret, b.identifier);
            ctx.nh1
                .store
                .add(entry)
                .map_err(|e| Response::error(400, e))?;
            ok()
        }
        "/clock_skew" => {
            ctx.nh1
                .clock
                .set_skew(body::<ClockSkewBody>(request)?.seconds);
            ok()
        }
        "/extensions" => {
            let b: ExtensionsBody = body(request)?;
            control.set_enabled_extensions(b.enabled).await;
            ok()
        }
        "/public_keys" => {
            let b: PublicKeysBody = body(request)?;
            control.set_public_keys(b.fwup, b.archive).await;
            ok()
        }
        "/issue_device" => {
            let b = body::<IssueDeviceBody>(request)?;
            match b.csr {
                Some(csr) => match ctx.pki.issue_device_for_csr(&b.cn, &csr) {
                    Ok(cert) => Response::json(200, &json!({"cert": cert})),
                    Err(e) => Response::error(400, e),
                },
                None => match ctx.pki.issue_device(&b.cn) {
                    Ok((cert, key)) => Response::json(200, &json!({"cert": cert, "key": key})),
                    Err(e) => Response::error(400, e),
                },
            }
        }
        _ => Response::error(404, format!("no such endpoint: {path}")),
    })
}
