//! The resumable download loop (nerves_hub_link's Downloader): reconnect
//! after interruptions with `Range: bytes=<next>-`, stop on HTTP errors,
//! re-fetch parts that fail their checksum, hand verified parts on.

use std::collections::HashMap;
use std::time::Duration;

use url::Url;

use super::http::{netif, GetRequest, HttpClient, HttpError, HttpResponse};
use super::verify::{Part, Pipeline, Verdict, PART_SIZE};
use crate::config::redact_query;
use crate::tls::TlsOptions;

/// A part failing its checksum this many times ends the update.
pub const MAX_PART_ATTEMPTS: u32 = 3;

/// How a download copes with bad networks (nerves_hub_link's defaults).
#[derive(Clone)]
pub struct DownloadOptions {
    /// No byte for this long counts as an interruption.
    pub idle_timeout: Duration,
    /// Interruptions tolerated before giving up.
    pub max_disconnects: u32,
    /// Wait before reconnecting after an interruption.
    pub retry_delay: Duration,
    /// The whole download must finish within this.
    pub max_total: Duration,
    /// CAs (and optionally a client certificate) for https firmware URLs.
    pub tls: TlsOptions,
    /// Extra request headers, e.g. for a proxy.
    pub headers: Vec<(String, String)>,
}

// Hand-written: header values may be credentials (a proxy's Authorization).
impl std::fmt::Debug for DownloadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("DownloadOptions")
            .field("idle_timeout", &self.idle_timeout)
            .field("max_disconnects", &self.max_disconnects)
            .field("retry_delay", &self.retry_delay)
            .field("max_total", &self.max_total)
            .field("tls", &self.tls)
            .field("headers", &names)
            .finish()
    }
}

impl Default for DownloadOptions {
    fn default() -> DownloadOptions {
        DownloadOptions {
            idle_timeout: Duration::from_secs(60),
            max_disconnects: 10,
            retry_delay: Duration::from_secs(15),
            max_total: Duration::from_secs(24 * 60 * 60),
            tls: TlsOptions::default(),
            headers: Vec::new(),
        }
    }
}

impl DownloadOptions {
    pub(crate) fn validate(&self) -> crate::Result<()> {
        if self.idle_timeout.is_zero() || self.max_total.is_zero() {
            return Err(crate::Error::InvalidArgument(
                "download idle_timeout and max_total must be > 0".into(),
            ));
        }
        for (name, value) in &self.headers {
            crate::config::check_header(name, value)?;
        }
        Ok(())
    }
}

/// What the download tells the updater as it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DownloadEvent {
    /// A connection answered; the local interface it uses.
    Connected { interface: Option<String> },
    /// `done` bytes of `total` received.
    Received { done: u64, total: Option<u64> },
}

/// Why a download ended without an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    Download(String),
    Checksum(String),
    Sink(String),
}

/// One connection's end, short of a complete image.
enum Attempt {
    /// Reconnect after `retry_delay` (counts as a disconnect).
    Interrupted(String),
    /// Re-fetch this part now.
    BadPart {
        index: usize,
        message: String,
    },
    Failed(Failure),
}

impl From<Failure> for Attempt {
    fn from(f: Failure) -> Attempt {
        Attempt::Failed(f)
    }
}

pub(crate) struct Download<'a> {
    client: &'a HttpClient,
    url: &'a Url,
    options: &'a DownloadOptions,
    /// The size the update announced, if any.
    size: Option<u64>,
    pipeline: &'a mut Pipeline,
    events: &'a mut (dyn FnMut(DownloadEvent) + Send),
    /// The part being received; everything before it went to the pipeline.
    part: Part,
}

impl<'a> Download<'a> {
    pub(crate) fn new(
        client: &'a HttpClient,
        url: &'a Url,
        options: &'a DownloadOptions,
        size: Option<u64>,
        start: u64,
        pipeline: &'a mut Pipeline,
        events: &'a mut (dyn FnMut(DownloadEvent) + Send),
    ) -> Download<'a> {
        Download {
            client,
            url,
            options,
            size,
            pipeline,
            events,
            // Every byte before `start` was stored and verified earlier.
            part: Part::empty(start),
        }
    }

    /// Where the download continues: every byte before was received.
    fn offset(&self) -> u64 {
        self.part.end()
    }

    /// What a verdict received while downloading means for this attempt.
    async fn stopped_by(&mut self, verdict: Verdict) -> Attempt {
        match verdict {
            Verdict::Mismatch { index, message } => Attempt::BadPart { index, message },
            Verdict::Synced => Failure::Download("internal: unexpected sync".into()).into(),
            Verdict::Stopped => Failure::Sink(self.pipeline.sink_error().await).into(),
        }
    }

    /// Hands the current part to the pipeline; the next one starts after it.
    async fn ship(&mut self) -> Result<(), Attempt> {
        let next = Part::empty(self.offset());
        let part = std::mem::replace(&mut self.part, next);
        if part.len == 0 {
            return Ok(());
        }
        if self.pipeline.send(part).await.is_err() {
            return Err(Failure::Sink(self.pipeline.sink_error().await).into());
        }
        Ok(())
    }

    /// Downloads until every byte was verified and handed to the sink's
    /// stage; the caller then waits for the writes and the whole-file checksum.
    pub(crate) async fn run(&mut self) -> Result<(), Failure> {
        let mut total = self.size;
        let mut disconnects = 0u32;
        let mut retry_number = 0u32;
        let mut part_attempts: HashMap<usize, u32> = HashMap::new();
        loop {
            let result = if let Some(verdict) = self.pipeline.try_verdict() {
                // A part sent before an interruption failed its check.
                Err(self.stopped_by(verdict).await)
            } else if total.is_some_and(|t| t > 0 && self.offset() >= t) {
                // The connection may have broken right after the last byte.
                Ok(())
            } else {
                retry_number += 1;
                self.attempt(retry_number - 1, &mut total).await
            };
            let result = match result {
                Ok(()) => self.finish_parts().await,
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => return Ok(()),
                Err(Attempt::Failed(f)) => return Err(f),
                Err(Attempt::BadPart { index, message }) => {
                    let attempts = part_attempts.entry(index).or_insert(1);
                    *attempts += 1;
                    if *attempts > MAX_PART_ATTEMPTS {
                        return Err(Failure::Checksum(format!(
                            "{message}; gave up after {MAX_PART_ATTEMPTS} attempts"
                        )));
                    }
                    log::warn!("firmware {message}; fetching it again");
                    // Back to the bad part's start; the pipeline drops what
                    // was read after it.
                    let buf = std::mem::take(&mut self.part.buf);
                    self.part = Part::empty(index as u64 * PART_SIZE as u64);
                    self.part.buf = buf;
                }
                Err(Attempt::Interrupted(message)) => {
                    disconnects += 1;
                    if disconnects > self.options.max_disconnects {
                        return Err(Failure::Download(format!(
                            "gave up after {} interruptions; last: {message}",
                            self.options.max_disconnects
                        )));
                    }
                    log::warn!(
                        "firmware download interrupted at byte {} ({message}); retry {disconnects}/{} in {:?}",
                        self.offset(),
                        self.options.max_disconnects,
                        self.options.retry_delay
                    );
                    tokio::time::sleep(self.options.retry_delay).await;
                }
            }
        }
    }

    /// The body ended: hands on the last (short) part and waits until every
    /// part was checked; a bad one is fetched again.
    async fn finish_parts(&mut self) -> Result<(), Attempt> {
        self.ship().await?;
        match self.pipeline.sync(self.offset()).await {
            Verdict::Synced => Ok(()),
            other => Err(self.stopped_by(other).await),
        }
    }

    async fn attempt(&mut self, retry_number: u32, total: &mut Option<u64>) -> Result<(), Attempt> {
        let start = self.offset();
        let request = GetRequest {
            range_start: (start > 0).then_some(start),
            retry_number,
        };
        let mut response = self
            .client
            .get(self.url, &request)
            .await
            .map_err(|e| match e {
                HttpError::Status { .. } | HttpError::Fatal(_) => {
                    Attempt::Failed(Failure::Download(e.to_string()))
                }
                HttpError::Transient(m) => Attempt::Interrupted(m),
            })?;
        let where_ = redact_query(response.url.as_str());
        if response.status >= 400 {
            return Err(Failure::Download(format!(
                "HTTP {} {} from {where_}",
                response.status, response.reason
            ))
            .into());
        }
        (self.events)(DownloadEvent::Connected {
            interface: response
                .local_addr
                .and_then(|a| netif::interface_for(a.ip())),
        });
        let mut skip = 0u64;
        let announced = match response.status {
            206 => {
                let Some((from, whole)) = response.content_range() else {
                    return Err(Failure::Download(format!(
                        "206 without a usable Content-Range from {where_}"
                    ))
                    .into());
                };
                if from > start {
                    return Err(Failure::Download(format!(
                        "asked {where_} for bytes from {start} but it sent them from {from}"
                    ))
                    .into());
                }
                skip = start - from;
                whole.or_else(|| response.content_length().map(|n| from + n))
            }
            200 => {
                if start > 0 {
                    // Everything before `start` already went to the sink: read it again and drop it.
                    log::warn!(
                        "{where_} ignored the Range header; skipping the first {start} bytes again"
                    );
                    skip = start;
                }
                response.content_length()
            }
            other => {
                return Err(Failure::Download(format!(
                    "unexpected HTTP {other} {} from {where_}",
                    response.reason
                ))
                .into())
            }
        };
        if let Some(announced) = announced {
            match *total {
                Some(expected) if expected != announced => {
                    return Err(Failure::Download(format!(
                        "size mismatch: {where_} has {announced} bytes, the update announced {expected}"
                    ))
                    .into())
                }
                _ => *total = Some(announced),
            }
        }
        self.stream(&mut response, skip, *total).await
    }

    async fn stream(
        &mut self,
        response: &mut HttpResponse,
        mut skip: u64,
        total: Option<u64>,
    ) -> Result<(), Attempt> {
        let idle = self.options.idle_timeout;
        loop {
            if self.part.len == PART_SIZE {
                self.ship().await?;
            }
            if self.part.buf.is_empty() {
                self.part.buf = self.pipeline.buffer();
            }
            let filled = self.part.len;
            let room = &mut self.part.buf[filled..];
            let read = tokio::select! {
                biased;
                verdict = self.pipeline.verdict() => return Err(self.stopped_by(verdict).await),
                read = tokio::time::timeout(idle, response.read_into(room)) => read,
            };
            let mut n = match read {
                Err(_) => return Err(Attempt::Interrupted(format!("no data for {idle:?}"))),
                Ok(Err(e)) => return Err(Attempt::Interrupted(format!("connection broke: {e}"))),
                Ok(Ok(0)) => break,
                Ok(Ok(n)) => n,
            };
            if skip > 0 {
                let k = skip.min(n as u64) as usize;
                skip -= k as u64;
                self.part.buf.copy_within(filled + k..filled + n, filled);
                n -= k;
            }
            if n == 0 {
                continue;
            }
            if let Some(t) = total {
                if self.offset() + n as u64 > t {
                    return Err(Failure::Download(format!(
                        "the server sent more than the {t} bytes announced"
                    ))
                    .into());
                }
            }
            self.part.len += n;
            let done = self.offset();
            (self.events)(DownloadEvent::Received { done, total });
        }
        match total {
            Some(t) if self.offset() < t => Err(Attempt::Interrupted(format!(
                "the body ended at byte {} of {t}",
                self.offset()
            ))),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_nerves_hub_link_and_debug_hides_header_values() {
        let mut options = DownloadOptions::default();
        assert_eq!(options.idle_timeout, Duration::from_secs(60));
        assert_eq!(options.max_disconnects, 10);
        assert_eq!(options.retry_delay, Duration::from_secs(15));
        assert_eq!(options.max_total, Duration::from_secs(86_400));
        options
            .headers
            .push(("Proxy-Authorization".into(), "Basic c2VjcmV0".into()));
        let shown = format!("{options:?}");
        assert!(shown.contains("Proxy-Authorization"), "{shown}");
        assert!(!shown.contains("c2VjcmV0"), "{shown}");
        options.validate().unwrap();
        options.headers.push(("X".into(), "a\r\nb".into()));
        assert!(options.validate().is_err());
    }
}
