//! A guard in front of hyper's HTTP/1 parser, so that what the parser refuses is answered as the API's
//! JSON error too. hyper answers an unparseable request head with an empty 400, 431 or 505 of its own
//! making, and offers no hook to change it; so the guard reads each request head before hyper does,
//! checks it by hyper's own rules (httparse with the same header count, the same URI, `Content-Length`
//! and `Transfer-Encoding` checks), and passes on only heads hyper will accept. A head it refuses never
//! reaches hyper: hyper sees the connection end there, answers the requests before it, and the guard
//! writes its JSON refusal last, when hyper closes the connection.
//!
//! To find each next head on a kept-alive connection it follows the body framing (`Content-Length`, or
//! chunked with extensions and trailers). A body whose chunked framing it cannot follow is passed on
//! untouched from there: hyper then refuses it while reading the body, which the API answers as JSON.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::error::error_body;

/// The largest request head (request line and headers) accepted.
pub const MAX_HEAD_BYTES: usize = 64 << 10;
/// The most header lines in one head (hyper's own limit).
const MAX_HEADERS: usize = 100;
/// The most bytes of chunk extensions on one chunk-size line, and of trailers after the last chunk, the
/// guard follows; beyond that it stops guarding the connection and leaves the refusal to hyper.
const MAX_CHUNK_LINE_BYTES: usize = 16 << 10;
const MAX_TRAILER_BYTES: usize = 64 << 10;
/// How much is read from the connection at once.
const READ_CHUNK: usize = 8 << 10;

/// An HTTP/1 connection whose request heads are checked before hyper reads them.
pub struct Guarded<T> {
    inner: T,
    framing: Framing,
    /// The head being read, held back from hyper until it is whole and valid.
    head: Vec<u8>,
    /// Whether the last byte of `head` ended a line (a `\n`, perhaps followed by a `\r`).
    at_line_start: bool,
    /// Checked bytes not yet handed to hyper.
    ready: Vec<u8>,
    ready_from: usize,
    /// The connection ended.
    eof: bool,
    /// The answer to a refused head, and how much of it is written.
    refusal: Option<(Vec<u8>, usize)>,
}

/// Where in the request stream the guard is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Head,
    /// This many body bytes are still to come.
    Length(u64),
    Chunked(Chunk),
    /// Not followed any further: bytes pass untouched.
    Opaque,
}

/// Where in a chunked body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// In the hex chunk size, so far `size` from `digits` digits.
    Size {
        size: u64,
        digits: u8,
    },
    /// Spaces after the size.
    SizeSpace {
        size: u64,
    },
    /// In a chunk extension (`;name=value`), `len` bytes so far.
    Extension {
        size: u64,
        len: usize,
    },
    /// Expecting the `\n` of the size line.
    SizeLf {
        size: u64,
    },
    /// This many data bytes are still to come.
    Data(u64),
    DataCr,
    DataLf,
    /// After the last chunk, at the start of a trailer line (`seen` trailer bytes so far).
    TrailerStart {
        seen: usize,
    },
    /// In a trailer line.
    Trailer {
        seen: usize,
    },
    /// Expecting the `\n` that ends the body.
    EndLf,
}

/// A refused head: status, code and message.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable code.
    pub code: &'static str,
    /// For people.
    pub message: &'static str,
}

fn malformed(message: &'static str) -> Refused {
    Refused {
        status: StatusCode::BAD_REQUEST,
        code: "malformed_request",
        message,
    }
}

fn too_large(message: &'static str) -> Refused {
    Refused {
        status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        code: "headers_too_large",
        message,
    }
}

impl<T> Guarded<T> {
    /// Guards `inner`.
    pub fn new(inner: T) -> Self {
        Guarded {
            inner,
            framing: Framing::Head,
            head: Vec::new(),
            at_line_start: false,
            ready: Vec::new(),
            ready_from: 0,
            eof: false,
            refusal: None,
        }
    }

    /// Takes in bytes read from the connection: checked ones go to `ready`, a head's are held until it
    /// is whole, a refused head ends the stream.
    fn take_in(&mut self, mut input: &[u8]) {
        while !input.is_empty() && self.refusal.is_none() {
            input = match self.framing {
                Framing::Head => self.take_head(input),
                Framing::Length(left) => {
                    let n = input.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    self.ready.extend_from_slice(&input[..n]);
                    let left = left - n as u64;
                    self.framing = if left == 0 {
                        Framing::Head
                    } else {
                        Framing::Length(left)
                    };
                    &input[n..]
                }
                Framing::Chunked(chunk) => self.take_chunked(chunk, input),
                Framing::Opaque => {
                    self.ready.extend_from_slice(input);
                    &[]
                }
            };
        }
    }

    fn take_head<'a>(&mut self, mut input: &'a [u8]) -> &'a [u8] {
        if self.head.is_empty() {
            // Empty lines before a request line are skipped (RFC 9112 §2.2), as httparse does.
            let blank = input
                .iter()
                .take_while(|b| matches!(b, b'\r' | b'\n'))
                .count();
            input = &input[blank..];
            if input.is_empty() {
                return input;
            }
        }
        let mut take = input.len();
        let mut complete = false;
        for (i, &b) in input.iter().enumerate() {
            match b {
                b'\n' if self.at_line_start => {
                    take = i + 1;
                    complete = true;
                    break;
                }
                b'\n' => self.at_line_start = true,
                b'\r' => {}
                _ => self.at_line_start = false,
            }
        }
        if self.head.len() + take > MAX_HEAD_BYTES {
            self.refuse(too_large("the request head is over 64 KiB"));
            return &[];
        }
        self.head.extend_from_slice(&input[..take]);
        if complete {
            self.at_line_start = false;
            match check_head(&self.head) {
                Ok(None) => {}
                Ok(Some(framing)) => {
                    self.ready.append(&mut self.head);
                    self.framing = framing;
                }
                Err(refused) => self.refuse(refused),
            }
        }
        &input[take..]
    }

    fn take_chunked<'a>(&mut self, chunk: Chunk, input: &'a [u8]) -> &'a [u8] {
        if let Chunk::Data(left) = chunk {
            let n = input.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            self.ready.extend_from_slice(&input[..n]);
            let left = left - n as u64;
            self.framing = Framing::Chunked(if left == 0 {
                Chunk::DataCr
            } else {
                Chunk::Data(left)
            });
            return &input[n..];
        }
        let b = input[0];
        self.ready.push(b);
        self.framing = match next_chunk_state(chunk, b) {
            Some(Some(next)) => Framing::Chunked(next),
            Some(None) => Framing::Head,
            None => Framing::Opaque,
        };
        &input[1..]
    }

    fn refuse(&mut self, refused: Refused) {
        tracing::debug!(code = refused.code, "refused a request head");
        self.head = Vec::new();
        self.refusal = Some((refusal_response(&refused), 0));
    }

    /// The connection ended: a head cut off is answered, since the client may still read.
    fn take_eof(&mut self) {
        self.eof = true;
        if self.framing == Framing::Head && !self.head.is_empty() && self.refusal.is_none() {
            self.refuse(malformed("the connection ended inside the request head"));
        }
    }
}

/// The state after byte `b` in chunked framing: `Some(None)` when the body ended, `None` when the
/// framing is broken (hyper will refuse it).
fn next_chunk_state(chunk: Chunk, b: u8) -> Option<Option<Chunk>> {
    let next = match chunk {
        Chunk::Size { size, digits } => match b {
            b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                let digit = (b as char).to_digit(16)? as u64;
                if digits >= 16 {
                    return None;
                }
                Chunk::Size {
                    size: size.checked_mul(16)?.checked_add(digit)?,
                    digits: digits + 1,
                }
            }
            _ if digits == 0 => return None,
            b' ' | b'\t' => Chunk::SizeSpace { size },
            b';' => Chunk::Extension { size, len: 0 },
            b'\r' => Chunk::SizeLf { size },
            _ => return None,
        },
        Chunk::SizeSpace { size } => match b {
            b' ' | b'\t' => Chunk::SizeSpace { size },
            b';' => Chunk::Extension { size, len: 0 },
            b'\r' => Chunk::SizeLf { size },
            _ => return None,
        },
        Chunk::Extension { size, len } => match b {
            b'\r' => Chunk::SizeLf { size },
            b'\n' => return None,
            _ if len >= MAX_CHUNK_LINE_BYTES => return None,
            _ => Chunk::Extension { size, len: len + 1 },
        },
        Chunk::SizeLf { size } => match b {
            b'\n' if size == 0 => Chunk::TrailerStart { seen: 0 },
            b'\n' => Chunk::Data(size),
            _ => return None,
        },
        Chunk::Data(_) => unreachable!("data is taken in bulk"),
        Chunk::DataCr => match b {
            b'\r' => Chunk::DataLf,
            _ => return None,
        },
        Chunk::DataLf => match b {
            b'\n' => Chunk::Size { size: 0, digits: 0 },
            _ => return None,
        },
        Chunk::TrailerStart { seen } => match b {
            b'\r' => Chunk::EndLf,
            b'\n' => return Some(None),
            _ => Chunk::Trailer { seen: seen + 1 },
        },
        Chunk::Trailer { seen } => match b {
            _ if seen >= MAX_TRAILER_BYTES => return None,
            b'\n' => Chunk::TrailerStart { seen: seen + 1 },
            _ => Chunk::Trailer { seen: seen + 1 },
        },
        Chunk::EndLf => match b {
            b'\n' => return Some(None),
            _ => return None,
        },
    };
    Some(Some(next))
}

/// Checks a head that ends in an empty line as hyper's server does: `Ok(None)` when httparse wants more
/// (it does not, for a head that ends in an empty line, but the guard then just reads on), the body's
/// framing when hyper will accept it, or why not.
fn check_head(head: &[u8]) -> Result<Option<Framing>, Refused> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(head) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(too_large("the request has more than 100 header lines"));
        }
        Err(httparse::Error::Version) => {
            return Err(Refused {
                status: StatusCode::HTTP_VERSION_NOT_SUPPORTED,
                code: "http_version_not_supported",
                message: "idfed speaks HTTP/1.1 and HTTP/1.0",
            });
        }
        Err(httparse::Error::Token) if request.method.is_none() => {
            return Err(malformed("the request method is not a valid token"));
        }
        Err(httparse::Error::Token) => {
            return Err(malformed("the request target holds bytes a URI may not"));
        }
        Err(httparse::Error::HeaderName) => {
            return Err(malformed("a header name holds bytes a header name may not"));
        }
        Err(httparse::Error::HeaderValue) => {
            return Err(malformed(
                "a header value holds bytes a header value may not",
            ));
        }
        Err(_) => return Err(malformed("the request head is not valid HTTP/1.1")),
    };
    debug_assert_eq!(len, head.len(), "a head ends at its first empty line");
    let (Some(method), Some(path), Some(version)) = (request.method, request.path, request.version)
    else {
        return Err(malformed("the request head is not valid HTTP/1.1"));
    };
    if axum::http::Method::from_bytes(method.as_bytes()).is_err() {
        return Err(malformed("the request method is not a valid token"));
    }
    if axum::http::Uri::try_from(path).is_err() {
        return Err(malformed("the request target is not a valid URI"));
    }
    // RFC 9112 §6.3, as hyper applies it: chunked wins over Content-Length; differing or unreadable
    // lengths, a final coding other than chunked, or any Transfer-Encoding in HTTP/1.0 are refused.
    let mut length: Option<u64> = None;
    let mut transfer_encoding = false;
    let mut chunked = false;
    for header in request.headers.iter() {
        if header.name.eq_ignore_ascii_case("transfer-encoding") {
            if version == 0 {
                return Err(malformed("HTTP/1.0 requests cannot use Transfer-Encoding"));
            }
            transfer_encoding = true;
            length = None;
            chunked = std::str::from_utf8(header.value).is_ok_and(|v| {
                v.rsplit(',')
                    .next()
                    .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
            });
        } else if header.name.eq_ignore_ascii_case("content-length") {
            if transfer_encoding {
                continue;
            }
            let value = content_length(header.value)
                .ok_or_else(|| malformed("the Content-Length is not a number of bytes"))?;
            if length.is_some_and(|previous| previous != value) {
                return Err(malformed("the request has differing Content-Lengths"));
            }
            length = Some(value);
        }
    }
    if transfer_encoding && !chunked {
        return Err(malformed(
            "the request's Transfer-Encoding does not end in chunked",
        ));
    }
    Ok(Some(if chunked {
        Framing::Chunked(Chunk::Size { size: 0, digits: 0 })
    } else {
        match length {
            Some(0) | None => Framing::Head,
            Some(n) => Framing::Length(n),
        }
    }))
}

/// Decimal digits only (no sign, no spaces), and not near `u64::MAX` (hyper's own bound).
fn content_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value)
        .ok()?
        .parse::<u64>()
        .ok()
        .filter(|n| *n < u64::MAX - 1)
}

/// The whole HTTP/1.1 answer to a refused head; the connection closes after it.
fn refusal_response(refused: &Refused) -> Vec<u8> {
    let body = serde_json::to_string(&error_body(refused.code, refused.message))
        .expect("an error body serializes");
    format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\ncache-control: no-store\r\nx-content-type-options: nosniff\r\n\r\n{body}",
        refused.status.as_u16(),
        refused.status.canonical_reason().unwrap_or(""),
        body.len(),
    )
    .into_bytes()
}

impl<T: AsyncRead + Unpin> AsyncRead for Guarded<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.ready_from < this.ready.len() {
                let n = buf.remaining().min(this.ready.len() - this.ready_from);
                buf.put_slice(&this.ready[this.ready_from..this.ready_from + n]);
                this.ready_from += n;
                if this.ready_from == this.ready.len() {
                    this.ready.clear();
                    this.ready_from = 0;
                }
                return Poll::Ready(Ok(()));
            }
            // A refused head ends the stream for hyper: it answers what came before, then closes.
            if this.eof || this.refusal.is_some() {
                return Poll::Ready(Ok(()));
            }
            if this.framing == Framing::Opaque {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            let mut chunk = [0u8; READ_CHUNK];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                this.take_eof();
            } else {
                this.take_in(read.filled());
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Guarded<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    /// hyper closes the connection after answering what came before a refused head: the refusal goes
    /// out first.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some((response, written)) = &mut this.refusal {
            while *written < response.len() {
                let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &response[*written..]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                *written += n;
            }
            ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes; what hyper would read, and the refusal's code if any.
    fn run(input: &[u8], step: usize) -> (Vec<u8>, Option<String>, Framing) {
        let mut guard = Guarded::new(());
        let mut passed = Vec::new();
        let mut code = None;
        for piece in input.chunks(step) {
            guard.take_in(piece);
            passed.extend_from_slice(&guard.ready[guard.ready_from..]);
            guard.ready.clear();
            guard.ready_from = 0;
            if let Some((response, _)) = &guard.refusal {
                let text = String::from_utf8_lossy(response);
                let body: serde_json::Value =
                    serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap()).unwrap();
                code = body["error"]["code"].as_str().map(str::to_owned);
                break;
            }
        }
        (passed, code, guard.framing)
    }

    #[test]
    fn good_requests_pass_whole_in_any_pieces() {
        let mut stream = b"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
        stream.extend_from_slice(b"POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
        stream.extend_from_slice(
            b"POST /b HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5;x=y\r\nhello\r\nA \r\n0123456789\r\n0\r\nT: v\r\n\r\n",
        );
        stream.extend_from_slice(b"GET /c HTTP/1.0\n\n");
        for step in [1, 2, 3, 7, 64, 4096] {
            let (passed, code, framing) = run(&stream, step);
            assert_eq!(code, None, "step {step}");
            // Only the empty line before the first request is dropped.
            assert_eq!(passed, &stream[2..], "step {step}");
            assert_eq!(framing, Framing::Head, "step {step}");
        }
    }

    #[test]
    fn a_body_that_looks_like_a_bad_head_is_a_body() {
        let stream = b"POST /a HTTP/1.1\r\nContent-Length: 17\r\n\r\nGET /\x01 HTTP/1.1\r\n";
        let (passed, code, framing) = run(stream, 5);
        assert_eq!(code, None);
        assert_eq!(passed, stream);
        assert_eq!(framing, Framing::Head);
    }

    #[test]
    fn what_hyper_refuses_is_refused_with_its_code() {
        for (head, expected) in [
            (&b"GET /\x01 HTTP/1.1\r\n\r\n"[..], "malformed_request"),
            (b"G@T / HTTP/1.1\r\n\r\n", "malformed_request"),
            (b"GET / HTTP/1.1\r\nA: \x7f\r\n\r\n", "malformed_request"),
            (b"GET / HTTP/1.1\r\nA B: c\r\n\r\n", "malformed_request"),
            (b"GET http://[::1/ HTTP/1.1\r\n\r\n", "malformed_request"),
            (
                b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                "malformed_request",
            ),
            (
                b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
                "malformed_request",
            ),
            (
                b"GET / HTTP/1.1\r\nContent-Length: 18446744073709551615\r\n\r\n",
                "malformed_request",
            ),
            (
                b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                "malformed_request",
            ),
            (
                b"GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
                "malformed_request",
            ),
            (b"GET / HTTP/2.0\r\n\r\n", "http_version_not_supported"),
        ] {
            let (passed, code, _) = run(head, 3);
            assert_eq!(
                code.as_deref(),
                Some(expected),
                "{:?}",
                String::from_utf8_lossy(head)
            );
            assert!(passed.is_empty(), "{:?}", String::from_utf8_lossy(head));
        }
    }

    #[test]
    fn chunked_wins_over_a_content_length_as_in_hyper() {
        // A Content-Length after Transfer-Encoding is not even read; one before it is read, then dropped.
        for stream in [
            &b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: x\r\n\r\n0\r\n\r\n"
                [..],
            b"POST / HTTP/1.1\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ] {
            let (passed, code, framing) = run(stream, 4);
            assert_eq!((code, framing), (None, Framing::Head));
            assert_eq!(passed, stream);
        }
    }

    #[test]
    fn heads_over_the_limits_are_431() {
        let mut big = b"GET / HTTP/1.1\r\nCookie: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', MAX_HEAD_BYTES));
        assert_eq!(run(&big, 4096).1.as_deref(), Some("headers_too_large"));
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(run(&many, 4096).1.as_deref(), Some("headers_too_large"));
    }

    #[test]
    fn the_requests_before_a_refused_head_pass() {
        let stream = b"GET /a HTTP/1.1\r\n\r\nGET /\x01 HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
        let (passed, code, _) = run(stream, 4096);
        assert_eq!(code.as_deref(), Some("malformed_request"));
        assert_eq!(passed, b"GET /a HTTP/1.1\r\n\r\n");
    }

    #[test]
    fn broken_chunked_framing_is_left_to_hyper() {
        let stream = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nGET /\x01 HTTP/1.1\r\n\r\n";
        let (passed, code, framing) = run(stream, 4096);
        assert_eq!((code, framing), (None, Framing::Opaque));
        assert_eq!(passed, stream);
    }

    #[test]
    fn a_head_cut_off_by_the_end_of_the_connection_is_answered() {
        let mut guard = Guarded::new(());
        guard.take_in(b"GET / HTTP/1.1\r\nHost:");
        guard.take_eof();
        assert!(guard.refusal.is_some());
        let mut idle = Guarded::new(());
        idle.take_in(b"GET / HTTP/1.1\r\n\r\n");
        idle.take_eof();
        assert!(idle.refusal.is_none());
    }
}
