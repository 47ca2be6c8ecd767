//! fwup's `--framing` protocol (fwup README, "Integration with
//! applications"), the way nerves_hub_link talks to fwup through the `fwup`
//! hex package: every packet in either direction is a 4-byte big-endian
//! length and that many bytes. Input packets are image bytes, a zero-length
//! packet ends the input. Output packets start with a 2-byte type:
//! `OK` + 2-byte code + text (success), `ER` + 2-byte code + text (the
//! error fwup stops with), `WN` + 2-byte code + text (`info()` calls and
//! warnings), `PR` + 2-byte big-endian percent.
//!
//! Framed progress counts what fwup actually wrote, so it is the progress
//! of applying the image, not of receiving it.

use std::io::Read;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

/// Largest output packet accepted: fwup's are short texts; anything bigger
/// means the stream is not framed output.
const MAX_PACKET: usize = 64 * 1024;

/// The prefix of a failure reported with fwup's own message, in
/// nerves_hub_link's wording (`FWUP error : "..."`).
pub const FWUP_ERROR: &str = "FWUP error : ";

/// The header of an input packet carrying `len` bytes.
pub(crate) fn input_header(len: usize) -> Result<[u8; 4], String> {
    u32::try_from(len)
        .map(u32::to_be_bytes)
        .map_err(|_| format!("a chunk of {len} bytes is too large for one fwup packet"))
}

/// The packet that ends the input.
pub(crate) const END_OF_INPUT: [u8; 4] = [0; 4];

/// One output packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Output {
    Ok {
        code: u16,
        text: String,
    },
    Error {
        code: u16,
        text: String,
    },
    Warning {
        code: u16,
        text: String,
    },
    Progress(u8),
    /// A type this version does not know; skipped.
    Unknown([u8; 2]),
}

/// Splits fwup's output into packets.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    /// Adds bytes; returns the packets completed by them, or an error when
    /// the stream cannot be framed fwup output.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Output>, String> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(&[a, b, c, d]) = self.buf.get(..4) {
            let len = u32::from_be_bytes([a, b, c, d]) as usize;
            if len > MAX_PACKET {
                return Err(format!(
                    "fwup sent a packet of {len} bytes: is --framing on?"
                ));
            }
            if self.buf.len() < 4 + len {
                break;
            }
            let packet: Vec<u8> = self.buf.drain(..4 + len).skip(4).collect();
            out.push(parse(&packet)?);
        }
        Ok(out)
    }

    /// Bytes of an unfinished packet (non-zero at the end of output means
    /// fwup was cut off mid-packet).
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

fn parse(packet: &[u8]) -> Result<Output, String> {
    let (kind, rest) = match packet {
        [a, b, rest @ ..] => ([*a, *b], rest),
        _ => return Err(format!("fwup sent a {}-byte packet", packet.len())),
    };
    let coded = |rest: &[u8]| -> Result<(u16, String), String> {
        match rest {
            [hi, lo, text @ ..] => Ok((
                u16::from_be_bytes([*hi, *lo]),
                String::from_utf8_lossy(text).trim_end().to_owned(),
            )),
            _ => Err(format!(
                "fwup sent a {} packet without its code",
                String::from_utf8_lossy(&kind)
            )),
        }
    };
    Ok(match &kind {
        b"OK" => {
            let (code, text) = coded(rest)?;
            Output::Ok { code, text }
        }
        b"ER" => {
            let (code, text) = coded(rest)?;
            Output::Error { code, text }
        }
        b"WN" => {
            let (code, text) = coded(rest)?;
            Output::Warning { code, text }
        }
        b"PR" => match rest {
            [hi, lo, ..] => Output::Progress(u16::from_be_bytes([*hi, *lo]).min(100) as u8),
            _ => return Err("fwup sent a PR packet without its percent".into()),
        },
        _ => Output::Unknown(kind),
    })
}

/// Receives fwup's progress, in percent.
pub type ProgressFn = Arc<dyn Fn(u8) + Send + Sync>;

/// What one fwup run said.
#[derive(Debug, Default)]
pub(crate) struct Said {
    /// The `ER` message (the first one: fwup stops at its first error), or
    /// why its output could not be read.
    pub error: Option<String>,
    /// An `OK` packet arrived.
    pub ok: bool,
}

/// The failure reason for what fwup said, if it reported an error.
pub(crate) fn failure(said: &Mutex<Said>) -> Option<String> {
    let said = said.lock().unwrap_or_else(PoisonError::into_inner);
    said.error.as_ref().map(|e| format!("{FWUP_ERROR}{e:?}"))
}

/// Reads fwup's framed stdout until it closes: progress goes to `progress`,
/// warnings to the log, the outcome to `said`.
pub(crate) fn read(
    mut pipe: impl Read + Send + 'static,
    said: Arc<Mutex<Said>>,
    progress: Option<ProgressFn>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut decoder = Decoder::default();
        let mut buf = [0u8; 4096];
        let mut broken = false;
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            if broken {
                continue; // keep draining so fwup never blocks on a full pipe
            }
            match decoder.push(&buf[..n]) {
                Ok(packets) => {
                    for packet in packets {
                        handle(packet, &said, progress.as_ref());
                    }
                }
                Err(e) => {
                    broken = true;
                    let mut said = said.lock().unwrap_or_else(PoisonError::into_inner);
                    said.error.get_or_insert(e);
                }
            }
        }
        if !broken && decoder.pending() > 0 {
            let mut said = said.lock().unwrap_or_else(PoisonError::into_inner);
            said.error
                .get_or_insert_with(|| "fwup's output ended inside a packet".into());
        }
    })
}

fn handle(packet: Output, said: &Mutex<Said>, progress: Option<&ProgressFn>) {
    match packet {
        Output::Progress(p) => {
            if let Some(progress) = progress {
                progress(p);
            }
        }
        Output::Warning { text, .. } => log::info!("fwup: {text}"),
        Output::Ok { .. } => said.lock().unwrap_or_else(PoisonError::into_inner).ok = true,
        Output::Error { text, .. } => {
            let mut said = said.lock().unwrap_or_else(PoisonError::into_inner);
            said.error.get_or_insert(text);
        }
        Output::Unknown(kind) => log::debug!("fwup sent an unknown packet type {kind:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(body: &[u8]) -> Vec<u8> {
        let mut p = (body.len() as u32).to_be_bytes().to_vec();
        p.extend_from_slice(body);
        p
    }

    #[test]
    fn packets_split_anywhere_are_decoded() {
        let mut stream = Vec::new();
        stream.extend(packet(b"PR\x00\x00"));
        stream.extend(packet(b"WN\x00\x00Upgrading partition B"));
        stream.extend(packet(b"PR\x00\x2a"));
        stream.extend(packet(b"PR\x01\x00")); // 256: clamped
        stream.extend(packet(b"ER\x00\x01Expecting signed firmware archive.\n"));
        stream.extend(packet(b"OK\x00\x00"));
        stream.extend(packet(b"ZZ"));
        let expected = vec![
            Output::Progress(0),
            Output::Warning {
                code: 0,
                text: "Upgrading partition B".into(),
            },
            Output::Progress(42),
            Output::Progress(100),
            Output::Error {
                code: 1,
                text: "Expecting signed firmware archive.".into(),
            },
            Output::Ok {
                code: 0,
                text: String::new(),
            },
            Output::Unknown(*b"ZZ"),
        ];
        for step in [1, 3, 7, stream.len()] {
            let mut decoder = Decoder::default();
            let mut got = Vec::new();
            for piece in stream.chunks(step) {
                got.extend(decoder.push(piece).expect("valid"));
            }
            assert_eq!(got, expected, "split every {step} bytes");
            assert_eq!(decoder.pending(), 0);
        }
    }

    #[test]
    fn malformed_output_is_an_error() {
        let mut d = Decoder::default();
        assert!(d
            .push(b"fwup: not framed text\n")
            .unwrap_err()
            .contains("--framing"));
        assert!(Decoder::default().push(&packet(b"P")).is_err());
        assert!(Decoder::default().push(&packet(b"ER\x00")).is_err());
        assert!(Decoder::default().push(&packet(b"PR\x00")).is_err());
        let mut partial = Decoder::default();
        assert!(partial
            .push(&packet(b"PR\x00\x05")[..5])
            .unwrap()
            .is_empty());
        assert_eq!(partial.pending(), 5);
    }

    #[test]
    fn input_headers_are_big_endian_and_errors_use_links_wording() {
        assert_eq!(input_header(0x0102_0304).unwrap(), [1, 2, 3, 4]);
        assert_eq!(END_OF_INPUT, input_header(0).unwrap());
        let said = Mutex::new(Said::default());
        assert_eq!(failure(&said), None);
        said.lock().unwrap().error = Some("Expecting signed firmware archive.".into());
        assert_eq!(
            failure(&said).unwrap(),
            "FWUP error : \"Expecting signed firmware archive.\""
        );
    }

    #[test]
    fn the_reader_reports_progress_and_the_first_error() {
        let mut stream = packet(b"PR\x00\x07");
        stream.extend(packet(b"ER\x00\x00first"));
        stream.extend(packet(b"ER\x00\x00second"));
        let said = Arc::new(Mutex::new(Said::default()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let progress: ProgressFn = {
            let seen = seen.clone();
            Arc::new(move |p| seen.lock().unwrap().push(p))
        };
        read(std::io::Cursor::new(stream), said.clone(), Some(progress))
            .join()
            .unwrap();
        assert_eq!(*seen.lock().unwrap(), vec![7]);
        assert_eq!(said.lock().unwrap().error.as_deref(), Some("first"));
        assert!(!said.lock().unwrap().ok);
    }
}
