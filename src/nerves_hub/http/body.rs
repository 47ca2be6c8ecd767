//! Reading a response body framed by Content-Length, chunked transfer coding
//! or the end of the connection, in bounded pieces.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

/// The most a single `chunk()` returns.
pub(crate) const READ_SIZE: usize = 64 << 10;
/// How much one read for a chunk-size line asks for.
const LINE_READ: usize = 8 << 10;
/// Longest chunk-size or trailer line accepted.
const MAX_LINE: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    Length(u64),
    Chunked,
    UntilClose,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Length(u64),
    /// Bytes left in the current chunk; `None` before the next size line.
    Chunk(Option<u64>),
    UntilClose,
    Done,
}

/// A body reader over a connection with some bytes already buffered (those
/// read past the response head).
pub(crate) struct BodyReader<R> {
    io: R,
    buf: Vec<u8>,
    pos: usize,
    state: State,
}

fn eof(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("connection closed {what}"),
    )
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

impl<R: AsyncRead + Unpin> BodyReader<R> {
    pub(crate) fn new(io: R, buffered: Vec<u8>, framing: Framing) -> BodyReader<R> {
        let state = match framing {
            Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Chunk(None),
            Framing::UntilClose => State::UntilClose,
        };
        BodyReader {
            io,
            buf: buffered,
            pos: 0,
            state,
        }
    }

    /// Reads more from the connection, for chunk-size lines; `Ok(false)`
    /// at end of stream. Body bytes bypass this buffer when it is empty.
    async fn fill(&mut self) -> io::Result<bool> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let start = self.buf.len();
        self.buf.resize(start + LINE_READ, 0);
        let n = self.io.read(&mut self.buf[start..]).await;
        let n = match n {
            Ok(n) => n,
            Err(e) => {
                self.buf.truncate(start);
                return Err(e);
            }
        };
        self.buf.truncate(start + n);
        Ok(n > 0)
    }

    fn buffered(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Reads up to `dst.len()` bytes into `dst`: buffered bytes first, else
    /// straight from the connection. 0 only at the end of the stream, which
    /// is an error unless `what` is empty.
    async fn read_raw(&mut self, dst: &mut [u8], what: &str) -> io::Result<usize> {
        let buffered = self.buffered();
        if !buffered.is_empty() {
            let n = buffered.len().min(dst.len());
            dst[..n].copy_from_slice(&buffered[..n]);
            self.pos += n;
            if self.pos == self.buf.len() {
                self.buf.clear();
                self.pos = 0;
            }
            return Ok(n);
        }
        let n = self.io.read(dst).await?;
        if n == 0 && !what.is_empty() {
            return Err(eof(what));
        }
        Ok(n)
    }

    async fn line(&mut self) -> io::Result<String> {
        loop {
            if let Some(i) = self.buffered().windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buffered()[..i]).into_owned();
                self.pos += i + 2;
                return Ok(line);
            }
            if self.buffered().len() > MAX_LINE {
                return Err(invalid("chunked body: line too long".into()));
            }
            if !self.fill().await? {
                return Err(eof("inside a chunked body"));
            }
        }
    }

    /// Reads the next body bytes into `dst` (at most its length, at most
    /// one read from the connection); 0 at the end of the body, and only
    /// there: an early end of the connection is an `UnexpectedEof` error, so
    /// a cut download is noticed.
    pub(crate) async fn read_into(&mut self, dst: &mut [u8]) -> io::Result<usize> {
        if dst.is_empty() {
            return Ok(0);
        }
        loop {
            match self.state {
                State::Done => return Ok(0),
                State::UntilClose => {
                    let n = self.read_raw(dst, "").await?;
                    if n == 0 {
                        self.state = State::Done;
                    }
                    return Ok(n);
                }
                State::Length(left) => {
                    let max = left.min(dst.len() as u64) as usize;
                    let n = self
                        .read_raw(
                            &mut dst[..max],
                            "before the end of the body (Content-Length)",
                        )
                        .await?;
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::Done
                    } else {
                        State::Length(left)
                    };
                    return Ok(n);
                }
                State::Chunk(None) => {
                    let line = self.line().await?;
                    let hex = line.split(';').next().unwrap_or("").trim();
                    let size = u64::from_str_radix(hex, 16)
                        .map_err(|_| invalid(format!("chunked body: bad chunk size {hex:?}")))?;
                    if size == 0 {
                        // Trailers end with an empty line.
                        while !self.line().await?.is_empty() {}
                        self.state = State::Done;
                    } else {
                        self.state = State::Chunk(Some(size));
                    }
                }
                State::Chunk(Some(0)) => {
                    if !self.line().await?.is_empty() {
                        return Err(invalid("chunked body: missing CRLF after a chunk".into()));
                    }
                    self.state = State::Chunk(None);
                }
                State::Chunk(Some(left)) => {
                    let max = left.min(dst.len() as u64) as usize;
                    let n = self
                        .read_raw(&mut dst[..max], "inside a chunked body")
                        .await?;
                    self.state = State::Chunk(Some(left - n as u64));
                    return Ok(n);
                }
            }
        }
    }

    /// The next piece of the body (at most [`READ_SIZE`] bytes), `None` at its end.
    pub(crate) async fn chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut piece = vec![0u8; READ_SIZE];
        let n = self.read_into(&mut piece).await?;
        if n == 0 {
            return Ok(None);
        }
        piece.truncate(n);
        Ok(Some(piece))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_all(wire: &[u8], framing: Framing) -> io::Result<Vec<u8>> {
        // The first 3 bytes arrive "buffered" with the head, the rest from the stream.
        let split = wire.len().min(3);
        let mut reader = BodyReader::new(&wire[split..], wire[..split].to_vec(), framing);
        let mut out = Vec::new();
        while let Some(piece) = reader.chunk().await? {
            out.extend_from_slice(&piece);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn content_length_stops_at_the_length_and_detects_a_short_body() {
        assert_eq!(
            read_all(b"hello world", Framing::Length(5)).await.unwrap(),
            b"hello"
        );
        let err = read_all(b"hel", Framing::Length(5)).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(read_all(b"", Framing::Length(0)).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn decodes_chunked_bodies_with_extensions_and_trailers() {
        let wire =
            b"4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-T: 1\r\n\r\n";
        assert_eq!(
            read_all(wire, Framing::Chunked).await.unwrap(),
            b"Wikipedia in\r\n\r\nchunks."
        );
    }

    #[tokio::test]
    async fn a_cut_or_malformed_chunked_body_is_an_error() {
        let cut = read_all(b"4\r\nWi", Framing::Chunked).await.unwrap_err();
        assert_eq!(cut.kind(), io::ErrorKind::UnexpectedEof);
        let no_end = read_all(b"4\r\nWiki\r\n", Framing::Chunked)
            .await
            .unwrap_err();
        assert_eq!(no_end.kind(), io::ErrorKind::UnexpectedEof);
        let bad = read_all(b"zz\r\nWiki\r\n", Framing::Chunked)
            .await
            .unwrap_err();
        assert_eq!(bad.kind(), io::ErrorKind::InvalidData);
        let no_crlf = read_all(b"2\r\nWiki\r\n0\r\n\r\n", Framing::Chunked)
            .await
            .unwrap_err();
        assert_eq!(no_crlf.kind(), io::ErrorKind::InvalidData);
    }

    #[tokio::test]
    async fn read_into_never_passes_the_body_or_the_destination() {
        let wire = b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\nNEXT";
        let mut reader = BodyReader::new(&wire[..], Vec::new(), Framing::Chunked);
        let mut dst = [0u8; 2];
        let mut out = Vec::new();
        loop {
            let n = reader.read_into(&mut dst).await.unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&dst[..n]);
        }
        assert_eq!(out, b"abcdefg");
        let mut reader = BodyReader::new(&b"defgh"[..], b"abc".to_vec(), Framing::Length(6));
        let mut dst = [0u8; 16];
        assert_eq!(reader.read_into(&mut dst).await.unwrap(), 3);
        assert_eq!(reader.read_into(&mut dst).await.unwrap(), 3);
        assert_eq!(&dst[..3], b"def");
        assert_eq!(reader.read_into(&mut dst).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn until_close_reads_everything() {
        assert_eq!(
            read_all(b"abcdef", Framing::UntilClose).await.unwrap(),
            b"abcdef"
        );
    }
}
