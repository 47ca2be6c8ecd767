//! Firmware images served over plain HTTP on the control listener, with
//! `Range` support and scripted faults (cut responses, a flipped byte, an
//! error status, an ignored Range, a redirect) for the download tests.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::http::{RawBody, Request, Response};

/// NervesHub's partial checksum granularity.
const PART_SIZE: usize = 1 << 20;
/// Largest generated image.
const MAX_SIZE: u64 = 1 << 30;

/// Faults applied to the next responses for one image. Setting faults
/// replaces the previous ones.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FirmwareFaults {
    /// Drop the connection after this many body bytes...
    pub cut_after_bytes: Option<u64>,
    /// ...in this many responses (default 1).
    pub cuts: Option<u32>,
    /// Flip the byte at this image offset in the next response that carries it.
    pub corrupt_at: Option<u64>,
    /// Answer the next request with this status.
    pub status: Option<u16>,
    /// Answer every Range request with the whole image (200).
    #[serde(default)]
    pub ignore_range: bool,
    /// Answer every request with a 302 to `<name>?via=redirect` (relative).
    #[serde(default)]
    pub redirect: bool,
    /// Send bodies at about this rate (a slow link).
    pub bytes_per_second: Option<u64>,
}

/// One GET the server saw for an image.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FirmwareRequest {
    /// The `Range` header, if any.
    pub range: Option<String>,
    pub status: u16,
    pub retry_number: Option<String>,
    pub user_agent: Option<String>,
    /// Whether the response was cut / had a flipped byte.
    pub cut: bool,
    pub corrupted: bool,
}

struct Image {
    bytes: Arc<Vec<u8>>,
    faults: FirmwareFaults,
    requests: Vec<FirmwareRequest>,
}

/// The images of one server; cheap to clone.
#[derive(Clone)]
pub struct Firmware {
    images: Arc<Mutex<HashMap<String, Image>>>,
    base_url: String,
}

fn sha256_hex(data: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

/// Deterministic bytes for a seed (splitmix64), so tests can regenerate them.
pub fn random_image(size: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(size + 8);
    while out.len() < size {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(size);
    out
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

impl Firmware {
    pub(crate) fn new(base_url: String) -> Firmware {
        Firmware {
            images: Arc::default(),
            base_url,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Image>> {
        self.images.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `http://127.0.0.1:PORT/firmware/<name>`
    pub fn url(&self, name: &str) -> String {
        format!("{}/firmware/{name}", self.base_url)
    }

    /// Stores (or replaces) an image; returns `{url, size, checksum,
    /// partials_checksums, update}` where `update` is a complete `update`
    /// payload for it.
    pub fn add(&self, name: &str, bytes: Vec<u8>) -> Result<Value, String> {
        if !valid_name(name) {
            return Err(format!(
                "bad firmware name {name:?}: use 1-128 of A-Z a-z 0-9 . _ -"
            ));
        }
        let checksum = sha256_hex(&bytes);
        let partials: Vec<String> = bytes.chunks(PART_SIZE).map(sha256_hex).collect();
        let url = self.url(name);
        let uuid = format!(
            "{}-{}-{}-{}-{}",
            &checksum[0..8],
            &checksum[8..12],
            &checksum[12..16],
            &checksum[16..20],
            &checksum[20..32]
        )
        .to_ascii_lowercase();
        let update = json!({
            "update_available": true,
            "firmware_url": url,
            "firmware_meta": {
                "uuid": uuid, "product": "nhc-devserver", "version": "0.0.0",
                "architecture": "generic", "platform": "host", "author": "nhc-devserver",
                "description": format!("image {name}"), "vcs_identifier": null, "misc": null
            },
            "size": bytes.len(),
            "checksum": checksum,
            "partials_checksums": partials,
            "deployment_id": null
        });
        let answer = json!({
            "url": url, "size": bytes.len(), "checksum": checksum,
            "partials_checksums": partials, "update": update
        });
        self.lock().insert(
            name.to_owned(),
            Image {
                bytes: Arc::new(bytes),
                faults: FirmwareFaults::default(),
                requests: Vec::new(),
            },
        );
        Ok(answer)
    }

    /// Stores a fwup `.fw` archive like [`Firmware::add`], with the
    /// `firmware_meta` NervesHub would read from its meta.conf (`fwup -m`
    /// run with this `fwup`); an archive fwup cannot read is refused.
    pub fn add_fw(&self, name: &str, bytes: Vec<u8>, fwup: &str) -> Result<Value, String> {
        let meta = crate::fw_meta::read(&bytes, fwup)?;
        let mut answer = self.add(name, bytes)?;
        answer["update"]["firmware_meta"] = meta;
        Ok(answer)
    }

    /// Replaces the faults of an image.
    pub fn set_faults(&self, name: &str, faults: FirmwareFaults) -> Result<(), String> {
        match self.lock().get_mut(name) {
            Some(image) => {
                image.faults = faults;
                Ok(())
            }
            None => Err(format!("no firmware named {name:?}")),
        }
    }

    /// The GETs seen for an image, oldest first.
    pub fn requests(&self, name: &str) -> Option<Vec<FirmwareRequest>> {
        self.lock().get(name).map(|i| i.requests.clone())
    }

    /// `GET /firmware/<name>`
    fn serve(&self, name: &str, request: &Request) -> Response {
        let mut images = self.lock();
        let Some(image) = images.get_mut(name) else {
            return Response::error(404, format!("no firmware named {name:?}"));
        };
        let range_header = request.header("range").map(str::to_owned);
        let mut seen = FirmwareRequest {
            range: range_header.clone(),
            status: 200,
            retry_number: request.header("x-retry-number").map(str::to_owned),
            user_agent: request.header("user-agent").map(str::to_owned),
            cut: false,
            corrupted: false,
        };
        let len = image.bytes.len();
        let response = if let Some(status) = image.faults.status.take() {
            Response::error(status, format!("scripted status {status}"))
        } else if image.faults.redirect
            && !request
                .query
                .as_deref()
                .unwrap_or("")
                .contains("via=redirect")
        {
            let mut r = Response::json(302, &json!({"redirect": true}));
            r.raw = Some(Box::new(RawBody {
                headers: vec![("Location".into(), format!("{name}?via=redirect"))],
                bytes: Arc::new(Vec::new()),
                range: 0..0,
                corrupt_at: None,
                cut_after: None,
                bytes_per_second: None,
            }));
            r
        } else {
            let wanted = match range_header.as_deref() {
                Some(h) if !image.faults.ignore_range => parse_range(h, len),
                _ => Ok(None),
            };
            match wanted {
                Err(()) => {
                    let mut r =
                        Response::error(416, format!("unsatisfiable range for {len} bytes"));
                    r.raw = Some(Box::new(RawBody::json_with(
                        vec![("Content-Range".into(), format!("bytes */{len}"))],
                        r.body.clone(),
                    )));
                    r
                }
                Ok(range) => {
                    let (status, range, mut headers) = match range {
                        Some(r) => {
                            let cr = format!("bytes {}-{}/{len}", r.start, r.end.saturating_sub(1));
                            (206, r, vec![("Content-Range".to_owned(), cr)])
                        }
                        None => (200, 0..len, Vec::new()),
                    };
                    headers.push(("Content-Type".into(), "application/octet-stream".into()));
                    headers.push(("Accept-Ranges".into(), "bytes".into()));
                    let faults = &mut image.faults;
                    let mut cut_after = None;
                    if let Some(after) = faults.cut_after_bytes {
                        let left = faults.cuts.unwrap_or(1);
                        if left > 0 {
                            faults.cuts = Some(left - 1);
                            cut_after = Some(after as usize);
                        }
                    }
                    let corrupt_at = faults
                        .corrupt_at
                        .filter(|at| range.contains(&(*at as usize)))
                        .map(|at| at as usize);
                    if corrupt_at.is_some() {
                        faults.corrupt_at = None;
                    }
                    seen.cut = cut_after.is_some_and(|c| c < range.len());
                    seen.corrupted = corrupt_at.is_some();
                    Response {
                        status,
                        body: String::new(),
                        raw: Some(Box::new(RawBody {
                            headers,
                            bytes: image.bytes.clone(),
                            range,
                            corrupt_at,
                            cut_after,
                            bytes_per_second: faults.bytes_per_second,
                        })),
                    }
                }
            }
        };
        seen.status = response.status;
        image.requests.push(seen);
        response
    }
}

/// `bytes=N-` or `bytes=N-M` (inclusive) within `len`; `Ok(None)` for
/// forms we do not support (the whole image is served), `Err` if unsatisfiable.
fn parse_range(header: &str, len: usize) -> Result<Option<Range<usize>>, ()> {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((start, end)) = spec.split_once('-') else {
        return Ok(None);
    };
    let Ok(start) = start.trim().parse::<usize>() else {
        return Ok(None);
    };
    let end = match end.trim() {
        "" => len,
        e => match e.parse::<usize>() {
            Ok(e) => e.saturating_add(1).min(len),
            Err(_) => return Ok(None),
        },
    };
    if start >= len || end <= start {
        return Err(());
    }
    Ok(Some(start..end))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBody {
    name: String,
    base64: Option<String>,
    size: Option<u64>,
    seed: Option<u64>,
    /// The bytes are a fwup archive: `firmware_meta` comes from its meta.conf.
    #[serde(default)]
    fw: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultsBody {
    name: String,
    cut_after_bytes: Option<u64>,
    cuts: Option<u32>,
    corrupt_at: Option<u64>,
    status: Option<u16>,
    #[serde(default)]
    ignore_range: bool,
    #[serde(default)]
    redirect: bool,
    bytes_per_second: Option<u64>,
}

fn parse<T: serde::de::DeserializeOwned>(request: &Request) -> Result<T, Response> {
    serde_json::from_slice(&request.body)
        .map_err(|e| Response::error(400, format!("bad JSON body: {e}")))
}

/// The firmware routes, or `None` if `request` is not one of them.
pub(crate) fn route(firmware: &Firmware, request: &Request) -> Option<Response> {
    let path = request.path.as_str();
    let method = request.method.as_str();
    let wrong = |expected: &str| {
        Some(Response::error(
            405,
            format!("{path} takes {expected}, not {method}"),
        ))
    };
    if path == "/firmware" || path == "/firmware_faults" {
        if method != "POST" {
            return wrong("POST");
        }
        let result = if path == "/firmware" {
            add(firmware, request)
        } else {
            faults(firmware, request)
        };
        return Some(result.unwrap_or_else(|r| r));
    }
    if let Some(name) = path.strip_prefix("/firmware/") {
        if method != "GET" {
            return wrong("GET");
        }
        return Some(firmware.serve(name, request));
    }
    if let Some(name) = path.strip_prefix("/firmware_stats/") {
        if method != "GET" {
            return wrong("GET");
        }
        return Some(match firmware.requests(name) {
            Some(list) => Response::json(200, &json!({"requests": list})),
            None => Response::error(404, format!("no firmware named {name:?}")),
        });
    }
    None
}

fn add(firmware: &Firmware, request: &Request) -> Result<Response, Response> {
    let b: AddBody = parse(request)?;
    let bytes = match (b.base64, b.size) {
        (Some(text), None) => base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(|e| Response::error(400, format!("bad base64: {e}")))?,
        (None, Some(size)) if size <= MAX_SIZE => random_image(size as usize, b.seed.unwrap_or(0)),
        (None, Some(_)) => return Err(Response::error(413, format!("size above {MAX_SIZE}"))),
        _ => {
            return Err(Response::error(
                400,
                "give exactly one of base64 or size (+ seed)",
            ))
        }
    };
    let added = if b.fw {
        firmware.add_fw(&b.name, bytes, &crate::fw_meta::fwup_command())
    } else {
        firmware.add(&b.name, bytes)
    };
    added
        .map(|answer| Response::json(200, &answer))
        .map_err(|e| Response::error(400, e))
}

fn faults(firmware: &Firmware, request: &Request) -> Result<Response, Response> {
    let b: FaultsBody = parse(request)?;
    let faults = FirmwareFaults {
        cut_after_bytes: b.cut_after_bytes,
        cuts: b.cuts,
        corrupt_at: b.corrupt_at,
        status: b.status,
        ignore_range: b.ignore_range,
        redirect: b.redirect,
        bytes_per_second: b.bytes_per_second.filter(|r| *r > 0),
    };
    firmware
        .set_faults(&b.name, faults)
        .map(|()| Response::json(200, &json!({"ok": true})))
        .map_err(|e| Response::error(404, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-", 10), Ok(Some(0..10)));
        assert_eq!(parse_range("bytes=4-", 10), Ok(Some(4..10)));
        assert_eq!(parse_range("bytes=4-5", 10), Ok(Some(4..6)));
        assert_eq!(parse_range("bytes=4-99", 10), Ok(Some(4..10)));
        assert_eq!(parse_range("bytes=10-", 10), Err(()));
        assert_eq!(parse_range("bytes=-5", 10), Ok(None));
        assert_eq!(parse_range("items=1-", 10), Ok(None));
    }

    #[test]
    fn random_images_are_deterministic() {
        assert_eq!(random_image(100, 7), random_image(100, 7));
        assert_ne!(random_image(100, 7), random_image(100, 8));
        assert_eq!(random_image(13, 1).len(), 13);
    }
}
