//! Response heads: parsing an upstream's answer, and the head the router writes to its client.

use super::{connection_tokens, eq, is_hop_by_hop, parse_length, push_header};

/// The largest upstream response head we wait for; a longer one is a broken upstream (502),
/// not a reason to buffer without end.
pub(crate) const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// Most header lines in an upstream response head (the parser's slots are never initialised,
/// so the bound costs nothing per response).
const MAX_RESPONSE_HEADERS: usize = 256;

/// How an upstream response body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body at all.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// The chunked transfer coding (decoded and re-encoded on the way through).
    Chunked,
    /// Everything until the upstream closes the connection.
    UntilClose,
}

/// What the router knows about the exchange an upstream response belongs to.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Exchange {
    /// The request was `HEAD`: no body follows whatever the head says.
    pub head_request: bool,
    /// The client speaks HTTP/1.0: no interim heads, no chunks (a chunked body runs to close
    /// instead); a connection it asked to keep is told `connection: keep-alive`.
    pub client_http10: bool,
    /// The client connection ends after this response (the answer says `connection: close`);
    /// false for an HTTP/1.0 client only if it asked for keep-alive.
    pub close: bool,
    /// The request asked for a protocol upgrade, so `101` is a valid answer.
    pub upgrade: bool,
}

/// A parsed upstream response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ResponseHead {
    /// The status code.
    pub status: u16,
    /// Length of the head in the buffer.
    pub head_len: usize,
    /// How the upstream delimits the body that follows.
    pub framing: Framing,
    /// The body goes to the client de-chunked and runs to close (an HTTP/1.0 client).
    pub dechunk: bool,
    /// The client connection ends after this response.
    pub close_client: bool,
    /// The upstream connection may carry another request once this body is read whole.
    pub reusable: bool,
}

/// Why an upstream response head is unusable (the client gets a 502).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BadResponse {
    /// Not parseable as an HTTP/1.x response head.
    #[error("malformed response head")]
    Malformed,
    /// Longer than [`MAX_RESPONSE_HEAD`].
    #[error("response head larger than {MAX_RESPONSE_HEAD} bytes")]
    TooLarge,
    /// More than [`MAX_RESPONSE_HEADERS`] header lines.
    #[error("response head has more than {MAX_RESPONSE_HEADERS} header lines")]
    TooManyHeaders,
    /// Conflicting or invalid `Content-Length`.
    #[error("invalid content-length in the response")]
    Length,
    /// `chunked` applied more than once.
    #[error("invalid transfer-encoding in the response")]
    Coding,
    /// `101 Switching Protocols` to a request that asked for no upgrade.
    #[error("unexpected 101 Switching Protocols")]
    Upgrade,
}

/// What the router does with a header of a service's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AnswerHeader {
    /// `Content-Length`: read for the framing; the router writes its own.
    Length,
    /// `Transfer-Encoding`: likewise.
    Coding,
    /// `Connection`: read for persistence and the names it lists; never passed.
    Connection,
    /// `Upgrade`: passed on a `101` only.
    Upgrade,
    /// Never passed: the other hop-by-hop headers, the service's `X-Request-Id` (the answer
    /// carries the router's), and `Service-Worker-Allowed` (a service's page may not widen a
    /// service worker's scope past its own `/{service}/{kind}/` prefix: at `/` it would answer
    /// for the router's pages on the shared origin, docs/access-and-security.md#page-headers).
    Dropped,
    /// Passed as it came.
    Passes,
}

/// Classifies a response header name, in any case: the length picks the one or two names to
/// compare (a unit test checks it against [`is_hop_by_hop`] and the names above).
pub(super) fn answer_header(name: &str) -> AnswerHeader {
    let is = |want: &str| eq(name, want);
    match name.len() {
        7 if is("upgrade") => AnswerHeader::Upgrade,
        10 if is("connection") => AnswerHeader::Connection,
        12 if is("x-request-id") => AnswerHeader::Dropped,
        14 if is("content-length") => AnswerHeader::Length,
        17 if is("transfer-encoding") => AnswerHeader::Coding,
        22 if is("service-worker-allowed") => AnswerHeader::Dropped,
        _ if is_hop_by_hop(name) => AnswerHeader::Dropped,
        _ => AnswerHeader::Passes,
    }
}

/// True for an interim answer (1xx) that a final one follows; `101` ends the exchange's
/// HTTP part, so it is final.
pub(crate) fn is_interim(status: u16) -> bool {
    (100..200).contains(&status) && status != 101
}

/// True if `buf` holds a complete final response head after any interim ones, or a head that
/// cannot be parsed (reading it reports the error): the service has answered.
pub(crate) fn final_head_arrived(buf: &[u8]) -> bool {
    let ex = Exchange::default();
    let mut at = 0;
    loop {
        match parse_response(&buf[at..], &ex, None) {
            Ok(Some(h)) if is_interim(h.status) => at += h.head_len,
            Ok(Some(_)) | Err(_) => return true,
            Ok(None) => return false,
        }
    }
}

/// Parses an upstream response head at the start of `buf` and, if `out` is given, writes the
/// head to send downstream, declaring exactly the framing the router will send:
/// `content-length` for a length, `transfer-encoding: chunked` for chunks it re-encodes,
/// `connection: close` for a body that runs to close or a connection that ends. The
/// service's `X-Request-Id` is dropped: the proxy engine writes the router's. Hop-by-hop
/// headers, those named in `Connection`, and the upstream's own framing headers are dropped.
/// `Ok(None)`: not complete yet.
pub(crate) fn parse_response(
    buf: &[u8],
    ex: &Exchange,
    out: Option<&mut Vec<u8>>,
) -> Result<Option<ResponseHead>, BadResponse> {
    let mut headers = [const { std::mem::MaybeUninit::uninit() }; MAX_RESPONSE_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut resp,
        buf,
        &mut headers,
    );
    // The limit holds however the bytes arrived: a complete head past it is refused as a
    // partial one is (all of a partial head's bytes are head).
    let head_len = match parsed {
        Ok(httparse::Status::Complete(n)) if n > MAX_RESPONSE_HEAD => {
            return Err(BadResponse::TooLarge);
        }
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_RESPONSE_HEAD => {
            return Err(BadResponse::TooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(BadResponse::TooManyHeaders),
        Err(_) => return Err(BadResponse::Malformed),
    };
    let (Some(version), Some(status)) = (resp.version, resp.code) else {
        return Err(BadResponse::Malformed);
    };
    let switching = status == 101;
    if switching && !ex.upgrade {
        return Err(BadResponse::Upgrade);
    }
    // The status line goes out first: the framing headers, which the loop below learns, go
    // out last.
    let mut out = out;
    let status_line_end = out.as_deref_mut().map(|out| {
        out.extend_from_slice(b"HTTP/1.1 ");
        super::push_status(out, status);
        out.push(b' ');
        out.extend_from_slice(resp.reason.unwrap_or("").as_bytes());
        out.extend_from_slice(b"\r\n");
        out.len()
    });
    let mut length: Option<u64> = None;
    let mut codings = 0usize;
    let mut chunked_last = false;
    let mut chunked_seen = 0usize;
    let (mut upstream_close, mut upstream_keep_alive) = (false, false);
    let mut names_headers = false;
    // One pass: each name is classified once, and what passes goes out as it came.
    let mut lines = super::RawLines::new(buf);
    for h in resp.headers.iter() {
        match answer_header(h.name) {
            AnswerHeader::Length => {
                let n = parse_length(h.value).ok_or(BadResponse::Length)?;
                if length.is_some_and(|l| l != n) {
                    return Err(BadResponse::Length);
                }
                length = Some(n);
            }
            AnswerHeader::Coding => {
                for c in connection_tokens(h.value) {
                    codings += 1;
                    chunked_last = c.eq_ignore_ascii_case(b"chunked");
                    chunked_seen += usize::from(chunked_last);
                }
            }
            AnswerHeader::Connection => {
                for t in connection_tokens(h.value) {
                    upstream_close |= t.eq_ignore_ascii_case(b"close");
                    upstream_keep_alive |= t.eq_ignore_ascii_case(b"keep-alive");
                    names_headers |= !t.eq_ignore_ascii_case(b"close")
                        && !t.eq_ignore_ascii_case(b"keep-alive")
                        && !t.eq_ignore_ascii_case(b"upgrade");
                }
            }
            AnswerHeader::Upgrade if switching => {
                if let Some(out) = out.as_deref_mut() {
                    lines.keep(out, h);
                }
            }
            AnswerHeader::Upgrade | AnswerHeader::Dropped => {}
            AnswerHeader::Passes => {
                if let Some(out) = out.as_deref_mut() {
                    lines.keep(out, h);
                }
            }
        }
    }
    if chunked_seen > 1 {
        return Err(BadResponse::Coding);
    }
    // RFC 9112 §9.3: an HTTP/1.0 answer persists only if it says `keep-alive`.
    upstream_close |= version == 0 && !upstream_keep_alive;
    let interim = (100..200).contains(&status);
    let framing = if ex.head_request || interim || status == 204 || status == 304 {
        Framing::Empty
    } else if codings > 0 && version == 0 {
        // RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means the framing is faulty.
        Framing::UntilClose
    } else if codings > 0 && chunked_last {
        Framing::Chunked
    } else if codings > 0 {
        Framing::UntilClose
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::UntilClose
    };
    let dechunk = framing == Framing::Chunked && ex.client_http10;
    let close_client =
        !interim && !switching && (ex.close || framing == Framing::UntilClose || dechunk);
    if let (Some(out), Some(status_line_end)) = (out, status_line_end) {
        lines.flush(out);
        if names_headers {
            // `Connection` names headers to drop (rare): they may have gone out already, so
            // the headers are written again, without them.
            out.truncate(status_line_end);
            let listed = |name: &str| {
                resp.headers
                    .iter()
                    .filter(|h| eq(h.name, "connection"))
                    .flat_map(|h| connection_tokens(h.value))
                    .any(|t| name.as_bytes().eq_ignore_ascii_case(t))
            };
            for h in resp.headers.iter() {
                let passes = match answer_header(h.name) {
                    AnswerHeader::Passes => true,
                    AnswerHeader::Upgrade => switching,
                    _ => false,
                };
                if passes && !listed(h.name) {
                    push_header(out, h.name.as_bytes(), h.value);
                }
            }
        }
        // The coding list minus `chunked`, for a body that keeps other codings.
        let other_codings = || {
            resp.headers
                .iter()
                .filter(|h| eq(h.name, "transfer-encoding"))
                .flat_map(|h| connection_tokens(h.value))
                .filter(|c| !c.eq_ignore_ascii_case(b"chunked"))
        };
        let write_codings = |out: &mut Vec<u8>, chunked: bool| {
            let mut first = true;
            for c in other_codings().chain(chunked.then_some(&b"chunked"[..])) {
                out.extend_from_slice(if first { b"transfer-encoding: " } else { b", " });
                out.extend_from_slice(c);
                first = false;
            }
            if !first {
                out.extend_from_slice(b"\r\n");
            }
        };
        match framing {
            Framing::Length(n) => super::push_length(out, n),
            Framing::Chunked => write_codings(out, !dechunk),
            Framing::UntilClose => write_codings(out, false),
            // A HEAD or 304 answer may say how long the body would be.
            Framing::Empty if (ex.head_request || status == 304) && !interim => {
                if let Some(n) = length.filter(|_| codings == 0) {
                    super::push_length(out, n);
                } else if codings > 0 && chunked_last {
                    write_codings(out, true);
                }
            }
            Framing::Empty => {}
        }
        if switching {
            out.extend_from_slice(b"connection: upgrade\r\n");
        } else if close_client {
            out.extend_from_slice(b"connection: close\r\n");
        } else if ex.client_http10 && !interim {
            // An HTTP/1.0 client closes unless told the connection persists.
            out.extend_from_slice(b"connection: keep-alive\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }
    Ok(Some(ResponseHead {
        status,
        head_len,
        framing,
        dechunk,
        close_client,
        reusable: !upstream_close && !switching && framing != Framing::UntilClose,
    }))
}
