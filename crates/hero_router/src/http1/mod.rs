//! HTTP/1.1 message framing: the one authority for both directions of every connection.
//!
//! Everything that reads or writes HTTP/1.1 framing lives here, as plain functions over bytes:
//! - [`parse_request`]: a client's request head, validated (RFC 9112): exactly one `Host` on
//!   HTTP/1.1, one unambiguous body length (`Content-Length` or `Transfer-Encoding: chunked`,
//!   never both, never named in `Connection`), the head within `--max-header-size` bytes and
//!   `--max-headers` lines however the bytes arrive. Anything else is refused, never guessed.
//! - [`write_upstream_head`]: the request head the router sends a service, declaring exactly
//!   the framing the router will send.
//! - [`write_request`]: a request the router makes itself ([`OwnRequest`]: catalog fetches,
//!   hero_proc, routed JSON-RPC calls, the CLI).
//! - [`parse_response`]: a service's response head, and the head the router sends its client,
//!   again declaring exactly the framing that follows.
//! - [`ChunkedDecoder`]: chunked bodies are decoded and re-encoded, never passed through.
//! - [`write_own_head`]: the head of every answer the router makes itself.
//!
//! The connection driver (`serve::conn`), the proxy engine (`proxy::forward`) and the upstream
//! pool (`upstream`) do the I/O; no other module looks at framing headers.

mod chunked;
mod request;
mod response;
#[cfg(test)]
mod tests;

#[cfg_attr(not(any(test, feature = "test-util")), allow(unreachable_pub))]
pub use chunked::{BadChunk, ChunkedDecoder};
pub(crate) use chunked::{LAST_CHUNK, push_chunk};
pub(crate) use request::{
    Forwarding, HeadLimits, OwnRequest, Read, RequestError, RequestHead, doomed, header_slots,
    parse_request, retry_safe, write_request, write_upstream_head,
};
pub(crate) use response::{
    Exchange, Framing, ResponseHead, final_head_arrived, is_interim, parse_response,
};

/// How a request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyFraming {
    /// No body (no `Content-Length`, no `Transfer-Encoding`).
    None,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

impl BodyFraming {
    /// True if no body bytes follow the head.
    pub(crate) fn is_empty(self) -> bool {
        matches!(self, BodyFraming::None | BodyFraming::Length(0))
    }
}

/// True if `name` is `want` in any case; `want` is lowercase ASCII (a literal: then the
/// case mask below is a constant). Eight bytes are compared at a time: a letter of `want`
/// matches either case of itself (its byte with bit 5 set), any other byte only itself.
#[inline]
fn eq(name: &str, want: &str) -> bool {
    debug_assert!(
        !want
            .bytes()
            .any(|b| b.is_ascii_uppercase() || !b.is_ascii())
    );
    let (n, w) = (name.as_bytes(), want.as_bytes());
    if n.len() != w.len() {
        return false;
    }
    // 0x20 in every byte of `w` that is a lowercase letter (every byte of `w` is ASCII).
    let letters = |w: u64| {
        let low = w.wrapping_add(0x1f1f_1f1f_1f1f_1f1f); // bit 7 set from b'a' up
        let high = w.wrapping_add(0x0505_0505_0505_0505); // bit 7 set from b'{' up
        ((low & !high) & 0x8080_8080_8080_8080) >> 2
    };
    let word = |b: &[u8]| {
        let mut bytes = [0; 8];
        bytes[..b.len()].copy_from_slice(b);
        u64::from_le_bytes(bytes)
    };
    let same = |a: u64, w: u64| a | letters(w) == w;
    if n.len() <= 8 {
        return same(word(n), word(w));
    }
    // Whole words, then the last eight bytes (overlapping the words before them).
    let whole = n
        .chunks_exact(8)
        .zip(w.chunks_exact(8))
        .all(|(a, b)| same(word(a), word(b)));
    let last = n.len() - 8;
    whole && same(word(&n[last..]), word(&w[last..]))
}

/// True for a header that belongs to one connection and is never forwarded (RFC 9110
/// §7.6.1), in either direction: `Connection`, `Keep-Alive`, `Proxy-Connection`, `TE`,
/// `Trailer`, `Transfer-Encoding`, `Upgrade`, `Proxy-Authenticate`, `Proxy-Authorization`.
/// The router writes its own `Connection`, `Transfer-Encoding` and `Upgrade` where the message
/// needs them. Asked of every header in both directions, so the length picks the one or two
/// names to compare (a unit test checks it against the list).
fn is_hop_by_hop(name: &str) -> bool {
    match name.len() {
        2 => eq(name, "te"),
        7 => eq(name, "trailer") || eq(name, "upgrade"),
        10 => eq(name, "connection") || eq(name, "keep-alive"),
        16 => eq(name, "proxy-connection"),
        17 => eq(name, "transfer-encoding"),
        18 => eq(name, "proxy-authenticate"),
        19 => eq(name, "proxy-authorization"),
        _ => false,
    }
}

/// True for the headers a response the router frames itself never takes from whoever made
/// it: the hop-by-hop ones and `Content-Length` (the router writes its own framing).
pub(crate) fn is_framing_or_hop(name: &str) -> bool {
    is_hop_by_hop(name) || eq(name, "content-length")
}

/// How the body of a response the router writes itself is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OwnBody {
    /// `content-length`.
    Length(usize),
    /// `transfer-encoding: chunked`.
    Chunked,
    /// Neither: the body runs to the connection's close (HTTP/1.0 clients).
    ToClose,
}

/// The comma-separated tokens of a header value, trimmed and non-empty.
fn connection_tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|b| *b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// Parses a `Content-Length` value: 1–19 digits, no sign, no list, no overflow.
pub(crate) fn parse_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // 19 digits stay below u64::MAX (18,446,744,073,709,551,615): no overflow.
    Some(value.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// Copies header lines of a parsed head into the head being written, as they came: a run of
/// adjacent kept lines in one copy, where [`push_header`] makes four per line.
///
/// A line httparse accepted is `name:`, optional whitespace, the value, optional whitespace,
/// and its line ending, so its bytes say what `push_header(name, value)` says. A line that
/// ends in a bare LF (httparse accepts one) is written anew with CRLF: what the router sends
/// ends every line with CRLF.
struct RawLines<'b> {
    /// The head the headers were parsed from.
    head: &'b [u8],
    /// The run of kept lines not copied yet.
    run: std::ops::Range<usize>,
}

impl<'b> RawLines<'b> {
    fn new(head: &'b [u8]) -> RawLines<'b> {
        RawLines { head, run: 0..0 }
    }

    /// Writes `h` (a header parsed from `head`) as it came.
    fn keep(&mut self, out: &mut Vec<u8>, h: &httparse::Header<'_>) {
        match self.line(h) {
            Some(line) if !self.run.is_empty() && line.start == self.run.end => {
                self.run.end = line.end;
            }
            Some(line) => {
                self.flush(out);
                self.run = line;
            }
            None => {
                self.flush(out);
                push_header(out, h.name.as_bytes(), h.value);
            }
        }
    }

    /// Copies the pending run: call before writing anything else.
    fn flush(&mut self, out: &mut Vec<u8>) {
        if !self.run.is_empty() {
            out.extend_from_slice(&self.head[self.run.clone()]);
            self.run = 0..0;
        }
    }

    /// Where `h`'s line is in `head`, line ending included, if it ends in CRLF.
    fn line(&self, h: &httparse::Header<'_>) -> Option<std::ops::Range<usize>> {
        let base = self.head.as_ptr() as usize;
        let start = (h.name.as_ptr() as usize).checked_sub(base)?;
        let value = (h.value.as_ptr() as usize).checked_sub(base)?;
        if start >= value {
            return None;
        }
        // After the value (trimmed by httparse): spaces or tabs, then the line ending.
        let mut end = value.checked_add(h.value.len())?;
        while matches!(self.head.get(end), Some(b' ' | b'\t')) {
            end += 1;
        }
        (self.head.get(end..end + 2)? == b"\r\n").then_some(start..end + 2)
    }
}

#[inline]
fn push_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.reserve(name.len() + value.len() + 4);
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Writes the `x-request-id` header line every answer to a request carries.
pub(crate) fn push_request_id(out: &mut Vec<u8>, id: &[u8]) {
    push_header(out, b"x-request-id", id);
}

/// Adds the `x-request-id` header line to the complete head at the end of `out`.
pub(crate) fn add_request_id(out: &mut Vec<u8>, id: &[u8]) {
    if out.ends_with(b"\r\n\r\n") {
        out.truncate(out.len() - 2);
        push_request_id(out, id);
        out.extend_from_slice(b"\r\n");
    }
}

fn push_length(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(b"content-length: ");
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Writes a status code (100..=999, as httparse guarantees) without formatting machinery.
fn push_status(out: &mut Vec<u8>, status: u16) {
    let digits = [status / 100 % 10, status / 10 % 10, status % 10];
    out.extend(digits.map(|d| b'0' + d as u8));
}

/// What an answer tells the client about its connection (RFC 9112 §9.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Persist {
    /// The connection ends after this answer: `connection: close`.
    Close,
    /// It stays open: nothing to say to HTTP/1.1, where that is the default.
    KeepAlive,
    /// It stays open for an HTTP/1.0 client that asked: `connection: keep-alive` (such a
    /// client closes unless told otherwise).
    KeepAlive10,
}

impl Persist {
    /// The answer's persistence: `close`, else what the client's version needs said.
    pub(crate) fn of(close: bool, http10: bool) -> Persist {
        match (close, http10) {
            (true, _) => Persist::Close,
            (false, false) => Persist::KeepAlive,
            (false, true) => Persist::KeepAlive10,
        }
    }

    /// True if the connection ends after the answer.
    pub(crate) fn closes(self) -> bool {
        self == Persist::Close
    }
}

/// Writes the head of a response the router makes itself: status line, `headers`,
/// `content-length` (`None`: the body is chunked), what `persist` says about the connection,
/// and `date`.
pub(crate) fn write_own_head<V: AsRef<str>>(
    out: &mut Vec<u8>,
    status: u16,
    headers: &[(&str, V)],
    length: Option<usize>,
    persist: Persist,
) {
    let body = length.map_or(OwnBody::Chunked, OwnBody::Length);
    write_own_head_framed(out, status, headers, body, persist);
}

/// Like [`write_own_head`], with any [`OwnBody`] framing; [`OwnBody::ToClose`] needs
/// [`Persist::Close`].
pub(crate) fn write_own_head_framed<V: AsRef<str>>(
    out: &mut Vec<u8>,
    status: u16,
    headers: &[(&str, V)],
    body: OwnBody,
    persist: Persist,
) {
    debug_assert!(persist.closes() || body != OwnBody::ToClose);
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    out.extend_from_slice(b"HTTP/1.1 ");
    push_status(out, status);
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        push_header(out, name.as_bytes(), value.as_ref().as_bytes());
    }
    // A 1xx, 204 or 304 has no body, and must not say how long one is (RFC 9110 §8.6,
    // RFC 9112 §6.1).
    let bodiless = status < 200 || status == 204 || status == 304;
    match body {
        _ if bodiless => {}
        OwnBody::Length(n) => push_length(out, n as u64),
        OwnBody::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        OwnBody::ToClose => {}
    }
    match persist {
        Persist::Close => out.extend_from_slice(b"connection: close\r\n"),
        Persist::KeepAlive => {}
        Persist::KeepAlive10 => out.extend_from_slice(b"connection: keep-alive\r\n"),
    }
    out.extend_from_slice(b"date: ");
    push_date(out);
    out.extend_from_slice(b"\r\n\r\n");
}

/// Writes the current HTTP date, formatted at most once a second per thread.
fn push_date(out: &mut Vec<u8>) {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};
    thread_local! {
        static DATE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with_borrow_mut(|(at, text)| {
        if *at != secs {
            *at = secs;
            *text = httpdate::fmt_http_date(now);
        }
        out.extend_from_slice(text.as_bytes());
    });
}
