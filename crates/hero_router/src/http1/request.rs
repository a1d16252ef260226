//! Request heads: parsing, validation, and the head the router writes upstream.

use std::mem::MaybeUninit;

use httparse::Header;

use super::{BodyFraming, connection_tokens, eq, is_hop_by_hop, parse_length};

/// Most header lines `--max-headers` may allow (the parser's slots live on the stack).
pub(crate) const MAX_HEADERS_LIMIT: usize = 1024;

/// What a request head may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeadLimits {
    /// Bytes from the request line to the blank line (`--max-header-size`).
    pub max_bytes: usize,
    /// Header lines (`--max-headers`).
    pub max_headers: usize,
}

/// Slots for [`parse_request`]: free to create, never initialised by us.
pub(crate) type HeaderSlots<'b> = [MaybeUninit<Header<'b>>; MAX_HEADERS_LIMIT];

/// Fresh slots for [`parse_request`].
pub(crate) fn header_slots<'b>() -> HeaderSlots<'b> {
    [const { MaybeUninit::uninit() }; MAX_HEADERS_LIMIT]
}

/// A request head the router accepted: framing decided, every ambiguity already refused.
#[derive(Debug)]
pub(crate) struct RequestHead<'b, 'h> {
    /// The method.
    pub method: &'b str,
    /// The path of the request target (origin-form, or the path of an absolute-form target).
    pub path: &'b str,
    /// The query, without `?`.
    pub query: Option<&'b str>,
    /// The host to name upstream: the authority of an absolute-form target, else `Host`.
    pub host: Option<&'b [u8]>,
    /// How the body is delimited.
    pub body: BodyFraming,
    /// An HTTP/1.0 request (no 1xx, no chunks for it; it persists only if it asked to).
    pub http10: bool,
    /// The client keeps the connection open after this exchange.
    pub keep_alive: bool,
    /// The protocol asked for by `Connection: upgrade` plus `Upgrade` (HTTP/1.1 only).
    pub upgrade: Option<&'b [u8]>,
    /// `Expect: 100-continue`: the client waits for a `100 Continue` before its body.
    pub expect_continue: bool,
    /// Length of the head.
    pub head_len: usize,
    /// The header fields as received.
    pub headers: &'h [Header<'b>],
    /// The head's bytes, which `headers` point into.
    pub raw: &'b [u8],
    /// `Connection` lists a header name (a token other than `close`, `keep-alive` and
    /// `upgrade`): that header is not forwarded.
    pub connection_names_headers: bool,
    /// Which of the headers read after the parse ([`Read`]) the head has: a request without
    /// them (most) is not searched for them again.
    pub present: Present,
}

/// A header the router reads after the parse, by [`RequestHead::every`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Read {
    Origin,
    SecFetchSite,
    Traceparent,
    XRequestId,
    XForwardedFor,
    Accept,
}

/// The [`Read`] headers a head has, a bit each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Present(u8);

impl Read {
    /// Every one.
    #[cfg(test)]
    pub(crate) const ALL: [Read; 6] = [
        Read::Origin,
        Read::SecFetchSite,
        Read::Traceparent,
        Read::XRequestId,
        Read::XForwardedFor,
        Read::Accept,
    ];

    /// Its name, in lowercase.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Read::Origin => "origin",
            Read::SecFetchSite => "sec-fetch-site",
            Read::Traceparent => "traceparent",
            Read::XRequestId => "x-request-id",
            Read::XForwardedFor => "x-forwarded-for",
            Read::Accept => "accept",
        }
    }

    /// The one called `name`, compared only with those of its length.
    fn of(name: &str) -> Option<Read> {
        let read = match name.len() {
            6 if eq(name, Read::Origin.name()) => Read::Origin,
            6 if eq(name, Read::Accept.name()) => Read::Accept,
            11 if eq(name, Read::Traceparent.name()) => Read::Traceparent,
            12 if eq(name, Read::XRequestId.name()) => Read::XRequestId,
            14 if eq(name, Read::SecFetchSite.name()) => Read::SecFetchSite,
            15 if eq(name, Read::XForwardedFor.name()) => Read::XForwardedFor,
            _ => return None,
        };
        Some(read)
    }

    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl Present {
    /// True if the head has at least one `header`.
    pub(crate) fn has(self, header: Read) -> bool {
        self.0 & header.bit() != 0
    }
}

impl<'b> RequestHead<'b, '_> {
    /// The values of every `header` field, in order; no search when the head has none.
    pub(crate) fn every(&self, header: Read) -> impl Iterator<Item = &'b [u8]> + use<'b, '_> {
        let headers = if self.present.has(header) {
            self.headers
        } else {
            &[]
        };
        let name = header.name();
        headers
            .iter()
            .filter(move |h| eq(h.name, name))
            .map(|h| h.value)
    }
}

/// Why a request head is refused. The connection is closed after the answer: once framing is
/// in doubt, no byte after this head can be trusted to start a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RequestError {
    /// The head is longer than `--max-header-size`.
    #[error("request head is larger than the limit of {limit} bytes (--max-header-size)")]
    HeadTooLarge {
        /// The limit.
        limit: usize,
    },
    /// More header lines than `--max-headers`.
    #[error("request has more than {limit} header lines (--max-headers)")]
    TooManyHeaders {
        /// The limit.
        limit: usize,
    },
    /// Not an HTTP/1.x message.
    #[error("only HTTP/1.0 and HTTP/1.1 are served")]
    Version,
    /// Not parseable as a request head.
    #[error("malformed request head: {0}")]
    Malformed(&'static str),
    /// The body's length cannot be read unambiguously.
    #[error("ambiguous request framing: {0}")]
    Framing(&'static str),
    /// A transfer coding other than `chunked` (alone).
    #[error("unsupported transfer coding; send the body with Content-Length or chunked alone")]
    Coding,
    /// Missing, repeated or invalid `Host`.
    #[error("{0}")]
    Host(&'static str),
    /// A request target the router does not serve.
    #[error("{0}")]
    Target(&'static str),
    /// An `Expect` other than `100-continue`.
    #[error("only Expect: 100-continue is supported")]
    Expectation,
}

impl RequestError {
    /// The HTTP status of the answer.
    pub(crate) fn status(&self) -> u16 {
        match self {
            RequestError::HeadTooLarge { .. } | RequestError::TooManyHeaders { .. } => 431,
            RequestError::Version => 505,
            RequestError::Coding => 501,
            RequestError::Expectation => 417,
            _ => 400,
        }
    }

    /// A stable short code for `x-hero-router-error` and metrics.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            RequestError::HeadTooLarge { .. } => "head_too_large",
            RequestError::TooManyHeaders { .. } => "too_many_headers",
            RequestError::Version => "version",
            RequestError::Malformed(_) => "malformed",
            RequestError::Framing(_) => "framing",
            RequestError::Coding => "coding",
            RequestError::Host(_) => "host",
            RequestError::Target(_) => "target",
            RequestError::Expectation => "expectation",
        }
    }
}

/// True if the request line of `window` (its first line after the empty lines a parser
/// skips) is complete and parses alone: a bad line ending is then a header's.
fn request_line_ends_well(window: &[u8]) -> bool {
    let mut start = 0;
    loop {
        match &window[start..] {
            [b'\r', b'\n', ..] => start += 2,
            [b'\n', ..] => start += 1,
            _ => break,
        }
    }
    let Some(end) = memchr::memchr(b'\n', &window[start..]) else {
        return false;
    };
    let mut req = httparse::Request::new(&mut []);
    req.parse(&window[..=start + end]).is_ok()
}

fn malformed(e: httparse::Error) -> RequestError {
    match e {
        httparse::Error::Version => RequestError::Version,
        httparse::Error::HeaderName => RequestError::Malformed("invalid header name"),
        httparse::Error::HeaderValue => RequestError::Malformed("invalid header value"),
        httparse::Error::Token => RequestError::Malformed("invalid method or request line"),
        _ => RequestError::Malformed("invalid request line"),
    }
}

/// True if the bytes so far can already be no request head: a first line that is not a
/// request line (TLS, SSH, binary, HTTP/0.9), so the rest of the head need not be waited for.
/// [`parse_request`] then gives the same error it would give the whole head: an error of
/// httparse's on a prefix is the error of every head that starts with it, and a version error
/// is only judged once the first line is whole (a space in the target reads as one until the
/// line ends).
pub(crate) fn doomed(buf: &[u8], limits: &HeadLimits) -> bool {
    let window = &buf[..buf.len().min(limits.max_bytes)];
    let mut none: [MaybeUninit<Header<'_>>; 0] = [];
    match httparse::Request::new(&mut []).parse_with_uninit_headers(window, &mut none) {
        Ok(_) | Err(httparse::Error::TooManyHeaders) => false,
        Err(httparse::Error::Version) => memchr::memchr(b'\n', window).is_some(),
        Err(_) => true,
    }
}

/// True if the first line of `window` is a request line whose target has a space in it
/// (`GET /a b HTTP/1.1`): httparse reads it as a bad version.
fn spaced_target(window: &[u8]) -> bool {
    let Some(end) = memchr::memchr(b'\n', window) else {
        return false;
    };
    let line = window[..end].strip_suffix(b"\r").unwrap_or(&window[..end]);
    let parts = line.split(|b| *b == b' ').count();
    parts > 3
        && line
            .rsplit(|b| *b == b' ')
            .next()
            .is_some_and(|v| v.starts_with(b"HTTP/"))
}

/// Parses and validates the request head at the start of `buf`.
///
/// `Ok(None)`: not complete yet, and still within the limits. The outcome depends only on the
/// bytes, never on how they were split across reads: the head must end within
/// `limits.max_bytes`, so only that many bytes are ever looked at.
pub(crate) fn parse_request<'b, 'h>(
    buf: &'b [u8],
    limits: &HeadLimits,
    slots: &'h mut HeaderSlots<'b>,
) -> Result<Option<RequestHead<'b, 'h>>, RequestError> {
    let window = &buf[..buf.len().min(limits.max_bytes)];
    let max_headers = limits.max_headers.clamp(1, MAX_HEADERS_LIMIT);
    let mut req = httparse::Request::new(&mut []);
    let head_len = match req.parse_with_uninit_headers(window, &mut slots[..max_headers]) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > limits.max_bytes => {
            return Err(RequestError::HeadTooLarge {
                limit: limits.max_bytes,
            });
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(RequestError::TooManyHeaders { limit: max_headers });
        }
        // What is wrong with the version shows once the first line ends.
        Err(httparse::Error::Version) if memchr::memchr(b'\n', window).is_none() => {
            if buf.len() > limits.max_bytes {
                return Err(RequestError::HeadTooLarge {
                    limit: limits.max_bytes,
                });
            }
            return Ok(None);
        }
        Err(httparse::Error::Version) if spaced_target(window) => {
            return Err(RequestError::Malformed(
                "a space in the request target; encode it as %20",
            ));
        }
        // A bad line ending in the request line is a version that runs on (`HTTP/1.10`) or
        // something after it: say that, rather than blame a header. Decided on the bytes of
        // the first line alone, so a prefix of the head gets the same error.
        Err(httparse::Error::NewLine) if !request_line_ends_well(window) => {
            return Err(RequestError::Malformed(
                "invalid request line (METHOD TARGET HTTP/1.1, then a line break)",
            ));
        }
        Err(httparse::Error::NewLine) => {
            return Err(RequestError::Malformed("invalid line ending in a header"));
        }
        Err(e) => return Err(malformed(e)),
    };
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Err(RequestError::Malformed("incomplete request line"));
    };
    let http10 = version == 0;
    let headers: &'h [Header<'b>] = req.headers;

    let mut length = None;
    let mut chunked = false;
    let mut host: Option<&[u8]> = None;
    let mut hosts = 0;
    let (mut close, mut conn_upgrade, mut conn_keep_alive) = (false, false, false);
    let mut connection_names_headers = false;
    let mut upgrade: Option<&[u8]> = None;
    let mut expect_continue = false;
    let mut present = Present::default();
    for h in headers {
        let name = h.name;
        if let Some(read) = Read::of(name) {
            present.0 |= read.bit();
            continue;
        }
        // The framing and connection headers read below have these lengths.
        if !matches!(name.len(), 4 | 6 | 7 | 10 | 14 | 17) {
            continue;
        }
        if eq(name, "content-length") {
            if length.is_some() {
                return Err(RequestError::Framing("more than one Content-Length"));
            }
            length =
                Some(parse_length(h.value).ok_or(RequestError::Framing("invalid Content-Length"))?);
        } else if eq(name, "transfer-encoding") {
            if chunked {
                return Err(RequestError::Framing("more than one Transfer-Encoding"));
            }
            chunked = true;
            let mut codings = connection_tokens(h.value);
            match (codings.next(), codings.next()) {
                (Some(c), None) if c.eq_ignore_ascii_case(b"chunked") => {}
                (None, _) => return Err(RequestError::Framing("empty Transfer-Encoding")),
                // Any coding list whose last coding is not chunked has no knowable end.
                _ if !connection_tokens(h.value)
                    .last()
                    .is_some_and(|c| c.eq_ignore_ascii_case(b"chunked")) =>
                {
                    return Err(RequestError::Framing(
                        "the last transfer coding must be chunked (the only one the router reads)",
                    ));
                }
                // RFC 9112 §6.1: a sender must not apply chunked twice; such a body cannot be
                // read as sent.
                _ if connection_tokens(h.value)
                    .filter(|c| c.eq_ignore_ascii_case(b"chunked"))
                    .count()
                    > 1 =>
                {
                    return Err(RequestError::Framing("chunked applied more than once"));
                }
                _ => return Err(RequestError::Coding),
            }
        } else if eq(name, "host") {
            hosts += 1;
            host = Some(h.value);
        } else if eq(name, "connection") {
            for t in connection_tokens(h.value) {
                if t.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if t.eq_ignore_ascii_case(b"keep-alive") {
                    conn_keep_alive = true;
                } else if t.eq_ignore_ascii_case(b"upgrade") {
                    conn_upgrade = true;
                } else if [&b"content-length"[..], b"transfer-encoding", b"host"]
                    .iter()
                    .any(|p| t.eq_ignore_ascii_case(p))
                {
                    return Err(RequestError::Framing(
                        "Connection names Content-Length, Transfer-Encoding or Host",
                    ));
                } else {
                    connection_names_headers = true;
                }
            }
        } else if eq(name, "upgrade") {
            if upgrade.is_some() {
                return Err(RequestError::Malformed("more than one Upgrade"));
            }
            upgrade = Some(h.value);
        } else if eq(name, "expect") {
            if !h.value.eq_ignore_ascii_case(b"100-continue") {
                return Err(RequestError::Expectation);
            }
            expect_continue = true;
        }
    }
    let body = match (length, chunked) {
        (Some(_), true) => {
            return Err(RequestError::Framing(
                "both Content-Length and Transfer-Encoding",
            ));
        }
        (_, true) if http10 => {
            return Err(RequestError::Framing(
                "Transfer-Encoding in an HTTP/1.0 request",
            ));
        }
        (_, true) => BodyFraming::Chunked,
        (Some(n), false) => BodyFraming::Length(n),
        (None, false) => BodyFraming::None,
    };
    match hosts {
        0 if !http10 => {
            return Err(RequestError::Host(
                "an HTTP/1.1 request needs a Host header",
            ));
        }
        0 | 1 => {}
        _ => return Err(RequestError::Host("more than one Host header")),
    }
    if host.is_some_and(|h| !valid_authority(h)) {
        return Err(RequestError::Host("invalid Host header"));
    }
    let (path_and_query, authority) = split_target(method, target)?;
    let (path, query) = match memchr::memchr(b'?', path_and_query.as_bytes()) {
        Some(at) => (&path_and_query[..at], Some(&path_and_query[at + 1..])),
        None => (path_and_query, None),
    };
    Ok(Some(RequestHead {
        method,
        path,
        query,
        host: authority.map(str::as_bytes).or(host),
        body,
        http10,
        // RFC 9112 §9.3: HTTP/1.1 persists unless told to close; HTTP/1.0 only when it asks
        // with `Connection: keep-alive` (as nginx honours it; `ab -k` depends on it).
        keep_alive: !close && (!http10 || conn_keep_alive),
        upgrade: upgrade.filter(|_| conn_upgrade && !http10),
        expect_continue: expect_continue && !http10,
        head_len,
        headers,
        raw: &buf[..head_len],
        connection_names_headers,
        present,
    }))
}

/// The path-and-query of a request target, and the authority of an absolute-form one.
fn split_target<'b>(
    method: &str,
    target: &'b str,
) -> Result<(&'b str, Option<&'b str>), RequestError> {
    let clean = |s: &str| s.bytes().all(|b| b.is_ascii_graphic() && b != b'#');
    if target.starts_with('/') {
        return if clean(target) {
            Ok((target, None))
        } else {
            Err(RequestError::Target(
                "invalid character in the request target",
            ))
        };
    }
    if method == "CONNECT" {
        return Err(RequestError::Target(
            "CONNECT is not supported: hero_router is a gateway, not a forward proxy",
        ));
    }
    if target == "*" {
        return Err(RequestError::Target(
            "the request target * is not supported",
        ));
    }
    let lower = |n: usize| target.get(..n).map(str::to_ascii_lowercase);
    let rest = if lower(7).as_deref() == Some("http://") {
        &target[7..]
    } else if lower(8).as_deref() == Some("https://") {
        &target[8..]
    } else {
        return Err(RequestError::Target(
            "the request target must be a path starting with /",
        ));
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.is_empty() || !valid_authority(authority.as_bytes()) || !clean(path) {
        return Err(RequestError::Target("invalid absolute request target"));
    }
    Ok((if path.is_empty() { "/" } else { path }, Some(authority)))
}

/// `uri-host [ ":" port ]` (RFC 3986 §3.2.2–3.2.3): an IP literal in brackets, or a reg-name
/// or IPv4 address (no `:`, `[`, `]`, userinfo, whitespace or path), then at most one
/// `:port` of digits that names a port (0–65535; an empty port is allowed, as the grammar
/// allows it). `localhost:abc` and `localhost:99999` name no host a client can mean.
pub(super) fn valid_authority(v: &[u8]) -> bool {
    let (host, port) = if v.first() == Some(&b'[') {
        let Some(end) = memchr::memchr(b']', v) else {
            return false;
        };
        let literal = &v[1..end];
        let ok = !literal.is_empty()
            && literal
                .iter()
                .all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.' | b'v' | b'V'));
        if !ok {
            return false;
        }
        match &v[end + 1..] {
            [] => return true,
            [b':', port @ ..] => (&[][..], port),
            _ => return false,
        }
    } else {
        match memchr::memchr(b':', v) {
            Some(at) => (&v[..at], &v[at + 1..]),
            None => (v, &[][..]),
        }
    };
    // A port of at most 5 digits below 65536 (5 digits cannot overflow the fold).
    let port_ok = port.len() <= 5
        && port.iter().all(u8::is_ascii_digit)
        && port.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0')) <= u32::from(u16::MAX);
    port_ok && host.iter().all(|b| HOST_BYTE[usize::from(*b)])
}

/// The bytes of a reg-name or IPv4 address: RFC 3986's `unreserved`, `sub-delims`, and `%`
/// of `pct-encoded`.
const HOST_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = matches!(b as u8,
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9'
            | b'-' | b'.' | b'_' | b'~' | b'%' | b'!' | b'$' | b'&' | b'\''
            | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=');
        b += 1;
    }
    table
};

/// How the forwarded request names the client and the route.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Forwarding<'a> {
    /// `X-Forwarded-Prefix` is `/{service}/{kind}`: the service.
    pub service: &'a str,
    /// The kind segment as the client sent it.
    pub kind: &'a str,
    /// The TCP peer's address; `None` on a Unix socket (callers there are trusted).
    pub peer: Option<&'a str>,
    /// Believe what a TCP client says about itself: keep its `X-Hero-*` headers and append to
    /// its `X-Forwarded-For` (`--trust-forwarded-headers`).
    pub trust_client: bool,
    /// The request's `X-Request-Id` (the client's own never passes as it is).
    pub request_id: &'a [u8],
    /// The `traceparent` the service gets: the router's span (the client's never passes).
    pub traceparent: &'a [u8],
    /// The client's `traceparent` was valid and kept: its `tracestate` passes on.
    pub keep_tracestate: bool,
}

/// What the router does with a header of a client's request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum UpstreamHeader {
    /// Never forwarded as it is: hop-by-hop, `Host`, `Content-Length` and `Expect` (the
    /// router writes its own framing and answers `Expect`).
    Dropped,
    /// A header the router sets itself, in any case, `_` read as `-` (a client's copy never
    /// passes as it is): the router decides.
    Managed(&'static str),
    /// Forwarded as it came (unless `Connection` names it).
    Passes,
}

/// Classifies a request header name: the length picks the few names to compare (a unit test
/// checks it against [`is_hop_by_hop`] and the list of managed names).
pub(super) fn upstream_header(name: &str) -> UpstreamHeader {
    let dropped = |want: &str| eq(name, want);
    let managed = |want: &'static str| eq_dashed(name, want).then_some(want);
    let found = match name.len() {
        4 if dropped("host") => return UpstreamHeader::Dropped,
        6 if dropped("expect") => return UpstreamHeader::Dropped,
        14 if dropped("content-length") => return UpstreamHeader::Dropped,
        _ if is_hop_by_hop(name) => return UpstreamHeader::Dropped,
        9 => managed("forwarded").or_else(|| managed("x-real-ip")),
        10 => managed("tracestate"),
        11 => managed("traceparent"),
        12 => managed("x-request-id"),
        13 => managed("x-hero-claims"),
        14 => managed("x-hero-context"),
        15 => managed("x-forwarded-for"),
        16 => managed("x-forwarded-host"),
        17 => managed("x-forwarded-proto"),
        18 => managed("x-forwarded-prefix"),
        _ => None,
    };
    found.map_or(UpstreamHeader::Passes, UpstreamHeader::Managed)
}

/// True if `name` read with `_` as `-` (as CGI-style frameworks read it) is `want`.
fn eq_dashed(name: &str, want: &str) -> bool {
    name.len() == want.len()
        && name
            .bytes()
            .zip(want.bytes())
            .all(|(a, b)| a.to_ascii_lowercase() == b || (a == b'_' && b == b'-'))
}

/// Writes the upstream request head for `req`: `path` and `query` as the request target, `Host`,
/// exactly the framing the router will send (`Content-Length`, `Transfer-Encoding: chunked`,
/// or none), the upgrade if one was asked for, the forwarding headers, and the client's other
/// end-to-end headers.
///
/// Forwarding headers: `X-Forwarded-Prefix` is always the router's. From a TCP client the
/// router adds `X-Forwarded-For`, `Forwarded` (`for`, `host`, `proto`), `X-Forwarded-Host`,
/// `X-Forwarded-Proto` and `X-Real-IP`, and drops the client's own unless it is trusted
/// (`--trust-forwarded-headers`: its chains are kept and extended). A Unix-socket caller's
/// pass on as they are. Underscore spellings of any of them never pass.
///
/// Dropped: hop-by-hop headers and those named in `Connection`, `Expect` (the router answers
/// it), the client's framing headers (replaced by ours), and on TCP unless trusted,
/// `X-Hero-Context` / `X-Hero-Claims` in any spelling.
pub(crate) fn write_upstream_head(
    req: &RequestHead<'_, '_>,
    path: &str,
    query: Option<&str>,
    fwd: &Forwarding<'_>,
    out: &mut Vec<u8>,
) {
    let strip_hero = fwd.peer.is_some() && !fwd.trust_client;
    out.extend_from_slice(req.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    if let Some(q) = query {
        out.push(b'?');
        out.extend_from_slice(q.as_bytes());
    }
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(req.host.unwrap_or(b"localhost"));
    out.extend_from_slice(b"\r\n");
    let mut xff: Option<&[u8]> = None;
    let mut xff_more: Vec<&[u8]> = Vec::new();
    // Whom the client's `Forwarded`, `X-Forwarded-Host`, `-Proto` and `X-Real-IP` are believed:
    // a Unix-socket caller, or a TCP client with `--trust-forwarded-headers`.
    let keep_chain = fwd.peer.is_none() || fwd.trust_client;
    let mut kept = Kept::default();
    // A header `Connection` names is not forwarded; such names are rare, so look only then.
    let named = |name: &str| {
        req.connection_names_headers
            && req
                .headers
                .iter()
                .filter(|h| eq(h.name, "connection"))
                .flat_map(|h| connection_tokens(h.value))
                .any(|t| name.as_bytes().eq_ignore_ascii_case(t))
    };
    // One pass: each name is classified once, and what passes goes out as it came.
    let mut lines = super::RawLines::new(req.raw);
    for h in req.headers {
        let name = h.name;
        let managed = match upstream_header(name) {
            UpstreamHeader::Dropped => continue,
            UpstreamHeader::Passes if named(name) => continue,
            UpstreamHeader::Passes => {
                lines.keep(out, h);
                continue;
            }
            UpstreamHeader::Managed(managed) => managed,
        };
        let dashed = !name.contains('_');
        match managed {
            "x-forwarded-for" if dashed => match xff {
                None => xff = Some(h.value),
                Some(_) => xff_more.push(h.value),
            },
            "tracestate" if dashed && fwd.keep_tracestate => lines.keep(out, h),
            "x-hero-context" | "x-hero-claims" if !strip_hero => lines.keep(out, h),
            "forwarded" | "x-forwarded-host" | "x-forwarded-proto" | "x-real-ip"
                if dashed && keep_chain =>
            {
                kept.note(managed);
                lines.keep(out, h);
            }
            _ => {}
        }
    }
    lines.flush(out);
    match req.body {
        BodyFraming::None => {}
        BodyFraming::Length(n) => super::push_length(out, n),
        BodyFraming::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    if let Some(proto) = req.upgrade {
        out.extend_from_slice(b"connection: upgrade\r\nupgrade: ");
        out.extend_from_slice(proto);
        out.extend_from_slice(b"\r\n");
    }
    super::push_header(out, b"x-request-id", fwd.request_id);
    super::push_header(out, b"traceparent", fwd.traceparent);
    out.extend_from_slice(b"x-forwarded-prefix: /");
    out.extend_from_slice(fwd.service.as_bytes());
    out.push(b'/');
    out.extend_from_slice(fwd.kind.as_bytes());
    out.extend_from_slice(b"\r\n");
    // Over TCP the router is the first hop it can vouch for: an untrusted client's claims
    // about earlier hops are dropped. Unix-socket callers' chains pass on as they are.
    if let Some(ip) = fwd.peer {
        write_forwarded(out, ip, req.host, &kept);
    }
    let chain = xff.filter(|_| keep_chain);
    if chain.is_some() || fwd.peer.is_some() {
        out.extend_from_slice(b"x-forwarded-for: ");
        let mut first = true;
        for v in chain
            .into_iter()
            .chain(xff_more.iter().copied().filter(|_| keep_chain))
        {
            if !first {
                out.extend_from_slice(b", ");
            }
            out.extend_from_slice(v);
            first = false;
        }
        if let Some(ip) = fwd.peer {
            if !first {
                out.extend_from_slice(b", ");
            }
            out.extend_from_slice(ip.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Which of the forwarding headers a believed client sent (they pass as they are).
#[derive(Debug, Default)]
pub(super) struct Kept {
    host: bool,
    proto: bool,
    real_ip: bool,
}

impl Kept {
    pub(super) fn note(&mut self, managed: &str) {
        match managed {
            "x-forwarded-host" => self.host = true,
            "x-forwarded-proto" => self.proto = true,
            "x-real-ip" => self.real_ip = true,
            _ => {}
        }
    }
}

/// The router's own forwarding headers for a TCP client at `ip` that named `host`: `Forwarded`
/// (RFC 7239; after a believed client's own, it is the list's last element), and
/// `X-Forwarded-Host`, `X-Forwarded-Proto` and `X-Real-IP` where the client's were not kept.
pub(super) fn write_forwarded(out: &mut Vec<u8>, ip: &str, host: Option<&[u8]>, kept: &Kept) {
    // An IPv6 address is a quoted string in brackets; `host` is a valid authority (no quote,
    // backslash or control byte) and so fits a quoted string as it is.
    out.extend_from_slice(b"forwarded: for=");
    if ip.contains(':') {
        out.extend_from_slice(b"\"[");
        out.extend_from_slice(ip.as_bytes());
        out.extend_from_slice(b"]\"");
    } else {
        out.extend_from_slice(ip.as_bytes());
    }
    if let Some(host) = host {
        out.extend_from_slice(b";host=\"");
        out.extend_from_slice(host);
        out.push(b'"');
    }
    out.extend_from_slice(b";proto=http\r\n");
    if let (Some(host), false) = (host, kept.host) {
        super::push_header(out, b"x-forwarded-host", host);
    }
    if !kept.proto {
        out.extend_from_slice(b"x-forwarded-proto: http\r\n");
    }
    if !kept.real_ip {
        super::push_header(out, b"x-real-ip", ip.as_bytes());
    }
}

/// A request the router makes itself: a catalog fetch, a hero_proc query, a routed JSON-RPC
/// call, a CLI call. [`write_request`] writes it whole; nothing else writes a request head
/// the router originates.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OwnRequest<'a> {
    /// `GET`, `HEAD` or `POST`.
    pub method: &'a str,
    /// The origin-form request target (path and query).
    pub path: &'a str,
    /// End-to-end headers (`accept`, `content-type`, `user-agent`, …): never framing or
    /// hop-by-hop ones, which the writer owns.
    pub headers: &'a [(&'a str, &'a str)],
    /// The body, sent with its `content-length`.
    pub body: &'a [u8],
    /// Ask for the connection to end after this exchange (`connection: close`): such a
    /// connection never goes back to a pool, whatever the answer says.
    pub close: bool,
    /// Sending it twice does no harm (a read, a `GET`): on a reused idle connection that
    /// closes before the first byte of an answer it is sent once more on a fresh one. A
    /// forwarded call that may change something is not.
    pub idempotent: bool,
}

/// True if a forwarded request with `method` may be sent once more on a fresh connection when
/// a reused idle one closed before the first byte of its answer: `GET` and `HEAD` only
/// (CONTRACT §5). `PUT`, `DELETE` and `OPTIONS` are idempotent in RFC 9110's terms, but a
/// service may not treat them so, and the router does not guess: they get 502 with the reason,
/// like `POST`.
pub(crate) fn retry_safe(method: &str) -> bool {
    matches!(method, "GET" | "HEAD")
}

/// Writes `req` (head and body) into `out`: request line, `host: localhost`, its headers,
/// `content-length` (for a body, and for every `POST`), `connection: close` if asked.
///
/// Names, values and the target come from the router's own code, but a stray byte must never
/// end a line or the request line early: in the target every byte that is not visible ASCII
/// is percent-encoded; in names and values a CR, LF or NUL becomes a space.
pub(crate) fn write_request(out: &mut Vec<u8>, req: &OwnRequest<'_>) {
    debug_assert!(
        req.headers
            .iter()
            .all(|(n, _)| !is_hop_by_hop(n) && !eq(n, "content-length") && !eq(n, "host")),
        "the writer owns framing and hop-by-hop headers"
    );
    let clean = |out: &mut Vec<u8>, text: &str| {
        out.extend(text.bytes().map(|b| match b {
            b'\r' | b'\n' | 0 => b' ',
            b => b,
        }));
    };
    clean(out, req.method);
    out.push(b' ');
    for b in req.path.bytes() {
        if b.is_ascii_graphic() {
            out.push(b);
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
    out.extend_from_slice(b" HTTP/1.1\r\nhost: localhost\r\n");
    for (name, value) in req.headers {
        clean(out, name);
        out.extend_from_slice(b": ");
        clean(out, value);
        out.extend_from_slice(b"\r\n");
    }
    if !req.body.is_empty() || req.method == "POST" {
        super::push_length(out, req.body.len() as u64);
    }
    if req.close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(req.body);
}
