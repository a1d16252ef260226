//! HTTP/1.1 on the wire, for the lean data path: message framing (RFC 9112 §6), hop-by-hop
//! headers (RFC 9110 §7.6.1), head rewriting and an incremental chunked-coding scanner.
//!
//! Everything here is a plain function over bytes, so the rules are unit-tested without
//! sockets. The connection driver (`serve::fast`) and the upstream pool do the I/O.

/// Headers that belong to one connection and are never forwarded (RFC 9110 §7.6.1), on both
/// paths. The lean path handles `transfer-encoding` by the framing and never sees `upgrade`.
pub const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
];

/// At most this many headers in a head; more is left to hyper, which answers 431.
pub const MAX_HEADERS: usize = 100;

/// The largest upstream response head we wait for; a longer one is a broken upstream (502),
/// not a reason to buffer without end.
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// How a message body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body at all.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// The chunked transfer coding, passed through as it is.
    Chunked,
    /// Everything until the upstream closes the connection.
    UntilClose,
}

/// True if `name` must not be forwarded: hop-by-hop, or named in a `Connection` header.
fn is_hop_by_hop(name: &str, listed: &[&[u8]]) -> bool {
    HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
        || listed
            .iter()
            .any(|l| name.as_bytes().eq_ignore_ascii_case(l))
}

/// The comma-separated tokens of a `Connection` header value, trimmed and non-empty.
fn connection_tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|b| *b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// Parses a `Content-Length` value: digits only, no sign, no overflow.
pub fn parse_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// A request head the lean path can take.
#[derive(Debug)]
pub struct RequestHead<'b, 'h> {
    /// The method.
    pub method: &'b str,
    /// The request target's path.
    pub path: &'b str,
    /// The query, without `?`.
    pub query: Option<&'b str>,
    /// Body length (0 without `Content-Length`).
    pub body_len: u64,
    /// The client asked to close the connection after this exchange.
    pub close: bool,
    /// Length of the head in the buffer.
    pub head_len: usize,
    /// The header fields.
    pub headers: &'h [httparse::Header<'b>],
}

/// A fresh array for [`parse_request`].
pub fn header_slots<'b>() -> [httparse::Header<'b>; MAX_HEADERS] {
    [httparse::EMPTY_HEADER; MAX_HEADERS]
}

/// Why the lean path leaves a request to hyper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsupported {
    /// Malformed head, too many headers, or not HTTP/1.1.
    Head,
    /// `Transfer-Encoding`, duplicate or invalid `Content-Length`.
    Framing,
    /// `Upgrade`, `Expect` or `Connection: upgrade`.
    Upgrade,
    /// Not an origin-form target of plain ASCII.
    Target,
}

/// Parses a request head at the start of `buf` into `slots`. `Ok(None)`: the head is not
/// complete yet. `Err`: a valid request the lean path leaves to hyper (hyper also reports
/// malformed ones).
pub fn parse_request<'b, 'h>(
    buf: &'b [u8],
    slots: &'h mut [httparse::Header<'b>],
) -> Result<Option<RequestHead<'b, 'h>>, Unsupported> {
    let mut req = httparse::Request::new(slots);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(Unsupported::Head),
    };
    let (Some(method), Some(target), Some(1)) = (req.method, req.path, req.version) else {
        return Err(Unsupported::Head);
    };
    if !target.starts_with('/') || !target.bytes().all(|b| b.is_ascii_graphic() && b != b'#') {
        return Err(Unsupported::Target);
    }
    let mut body_len = None;
    let mut close = false;
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            if body_len.is_some() {
                return Err(Unsupported::Framing);
            }
            body_len = Some(parse_length(h.value).ok_or(Unsupported::Framing)?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(Unsupported::Framing);
        } else if name.eq_ignore_ascii_case("upgrade") || name.eq_ignore_ascii_case("expect") {
            return Err(Unsupported::Upgrade);
        } else if name.eq_ignore_ascii_case("connection") {
            for t in connection_tokens(h.value) {
                if t.eq_ignore_ascii_case(b"upgrade") {
                    return Err(Unsupported::Upgrade);
                }
                close |= t.eq_ignore_ascii_case(b"close");
            }
        }
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    Ok(Some(RequestHead {
        method,
        path,
        query,
        body_len: body_len.unwrap_or(0),
        close,
        head_len,
        headers: req.headers,
    }))
}

/// How the forwarded request names the client and the route.
#[derive(Debug, Clone, Copy)]
pub struct Forwarding<'a> {
    /// `X-Forwarded-Prefix` is `/{service}/{kind}`: the service.
    pub service: &'a str,
    /// The kind segment as the client sent it.
    pub kind: &'a str,
    /// The TCP peer's address, appended to `X-Forwarded-For`; `None` on a Unix socket.
    pub peer: Option<&'a str>,
    /// Drop client-sent `X-Hero-Context` / `X-Hero-Claims`.
    pub strip_hero: bool,
}

/// Writes the upstream request head for `req`: `target` as the request target, hop-by-hop
/// headers dropped, `X-Forwarded-*` set, `X-Hero-*` dropped if asked.
pub fn write_upstream_head(
    req: &RequestHead<'_, '_>,
    target: &str,
    fwd: &Forwarding<'_>,
    out: &mut Vec<u8>,
) {
    let mut listed: Vec<&[u8]> = Vec::new();
    for h in req.headers {
        if h.name.eq_ignore_ascii_case("connection") {
            listed.extend(connection_tokens(h.value));
        }
    }
    out.extend_from_slice(req.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut xff: Vec<&[u8]> = Vec::new();
    for h in req.headers {
        let name = h.name;
        if is_hop_by_hop(name, &listed) || name.eq_ignore_ascii_case("x-forwarded-prefix") {
            continue;
        }
        if name.eq_ignore_ascii_case("x-forwarded-for") {
            xff.push(h.value);
            continue;
        }
        if fwd.strip_hero
            && (name.eq_ignore_ascii_case("x-hero-context")
                || name.eq_ignore_ascii_case("x-hero-claims"))
        {
            continue;
        }
        push_header(out, name.as_bytes(), h.value);
    }
    out.extend_from_slice(b"x-forwarded-prefix: /");
    out.extend_from_slice(fwd.service.as_bytes());
    out.push(b'/');
    out.extend_from_slice(fwd.kind.as_bytes());
    out.extend_from_slice(b"\r\n");
    if !xff.is_empty() || fwd.peer.is_some() {
        out.extend_from_slice(b"x-forwarded-for: ");
        for (i, v) in xff.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b", ");
            }
            out.extend_from_slice(v);
        }
        if let Some(ip) = fwd.peer {
            if !xff.is_empty() {
                out.extend_from_slice(b", ");
            }
            out.extend_from_slice(ip.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

fn push_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Writes a status code (100..=999, as httparse guarantees) without formatting machinery.
fn push_status(out: &mut Vec<u8>, status: u16) {
    let digits = [status / 100 % 10, status / 10 % 10, status % 10];
    out.extend(digits.map(|d| b'0' + d as u8));
}

/// A parsed upstream response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHead {
    /// The status code.
    pub status: u16,
    /// Length of the head in the buffer.
    pub head_len: usize,
    /// How the body that follows is delimited.
    pub framing: Framing,
    /// The upstream connection may carry another request after this one.
    pub reusable: bool,
}

/// Why an upstream response head is unusable (the client gets a 502).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadResponse {
    /// Not parseable as an HTTP/1.x response head.
    #[error("malformed response head")]
    Malformed,
    /// Conflicting or invalid `Content-Length`.
    #[error("invalid content-length in the response")]
    Length,
    /// `101 Switching Protocols` to a request that asked for no upgrade.
    #[error("unexpected 101 Switching Protocols")]
    Upgrade,
}

/// Parses an upstream response head at the start of `buf` and, if `out` is given, writes the
/// head to send downstream (hop-by-hop headers dropped; `Transfer-Encoding` kept when the
/// chunks are passed through; `Connection: close` added when the client connection ends
/// after this response). `head_request`: the request was `HEAD`, so no body follows.
/// `Ok(None)`: not complete yet.
pub fn parse_response(
    buf: &[u8],
    head_request: bool,
    close_client: bool,
    out: Option<&mut Vec<u8>>,
) -> Result<Option<ResponseHead>, BadResponse> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(BadResponse::Malformed),
    };
    let (Some(version), Some(status)) = (resp.version, resp.code) else {
        return Err(BadResponse::Malformed);
    };
    if status == 101 {
        return Err(BadResponse::Upgrade);
    }
    let mut length: Option<u64> = None;
    let mut chunked = None;
    let mut listed: Vec<&[u8]> = Vec::new();
    let mut upstream_close = version == 0;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = parse_length(h.value).ok_or(BadResponse::Length)?;
            if length.is_some_and(|l| l != n) {
                return Err(BadResponse::Length);
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Only the last coding decides; a body that does not end chunked runs to close.
            chunked = Some(
                h.value
                    .rsplit(|b| *b == b',')
                    .next()
                    .is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked")),
            );
        } else if h.name.eq_ignore_ascii_case("connection") {
            for t in connection_tokens(h.value) {
                upstream_close |= t.eq_ignore_ascii_case(b"close");
                listed.push(t);
            }
        }
    }
    let framing = if head_request || (100..200).contains(&status) || status == 204 || status == 304
    {
        Framing::Empty
    } else {
        match (chunked, length) {
            (Some(true), _) => Framing::Chunked,
            (Some(false), _) => Framing::UntilClose,
            (None, Some(n)) => Framing::Length(n),
            (None, None) => Framing::UntilClose,
        }
    };
    if let Some(out) = out {
        out.extend_from_slice(b"HTTP/1.1 ");
        push_status(out, status);
        out.push(b' ');
        out.extend_from_slice(resp.reason.unwrap_or("").as_bytes());
        out.extend_from_slice(b"\r\n");
        for h in resp.headers.iter() {
            let keep_te =
                framing == Framing::Chunked && h.name.eq_ignore_ascii_case("transfer-encoding");
            if !keep_te && is_hop_by_hop(h.name, &listed) {
                continue;
            }
            // A body that runs to close cannot also claim a length.
            if framing == Framing::UntilClose && h.name.eq_ignore_ascii_case("content-length") {
                continue;
            }
            push_header(out, h.name.as_bytes(), h.value);
        }
        if (close_client || framing == Framing::UntilClose) && !(100..200).contains(&status) {
            out.extend_from_slice(b"connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }
    Ok(Some(ResponseHead {
        status,
        head_len,
        framing,
        reusable: !upstream_close && framing != Framing::UntilClose,
    }))
}

/// Why a chunked body is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed chunked body")]
pub struct BadChunk;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Hex digits of a chunk size; `digits` so far.
    Size { size: u64, digits: u8 },
    /// Extensions or whitespace after the size, up to CR.
    Ext { size: u64 },
    /// LF after the size line.
    SizeLf { size: u64 },
    /// Chunk data still to come.
    Data { left: u64 },
    /// CR after the data.
    DataCr,
    /// LF after the data.
    DataLf,
    /// Start of a trailer line (or of the final empty line).
    TrailerStart,
    /// Inside a trailer field, up to CR.
    Trailer,
    /// LF after a trailer field.
    TrailerLf,
    /// LF of the final empty line.
    EndLf,
    /// The message is complete.
    Done,
}

/// Finds the end of a chunked body fed in pieces, and hands out the payload bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkedScanner {
    state: Chunk,
}

impl Default for ChunkedScanner {
    fn default() -> Self {
        ChunkedScanner {
            state: Chunk::Size { size: 0, digits: 0 },
        }
    }
}

impl ChunkedScanner {
    /// True once the last chunk and the trailers have been seen.
    pub fn is_done(&self) -> bool {
        self.state == Chunk::Done
    }

    /// Consumes bytes of `input` up to the end of the message and returns how many it took;
    /// each run of payload bytes goes to `data`.
    pub fn advance(
        &mut self,
        input: &[u8],
        mut data: impl FnMut(&[u8]),
    ) -> Result<usize, BadChunk> {
        let mut i = 0;
        while i < input.len() && self.state != Chunk::Done {
            let b = input[i];
            self.state = match self.state {
                Chunk::Size { size, digits } => match (b as char).to_digit(16) {
                    Some(d) if digits < 16 => Chunk::Size {
                        size: size << 4 | u64::from(d),
                        digits: digits + 1,
                    },
                    Some(_) => return Err(BadChunk),
                    None if digits == 0 => return Err(BadChunk),
                    None if b == b'\r' => Chunk::SizeLf { size },
                    None if b == b';' || b == b' ' || b == b'\t' => Chunk::Ext { size },
                    None => return Err(BadChunk),
                },
                Chunk::Ext { size } => match b {
                    b'\r' => Chunk::SizeLf { size },
                    b'\n' => return Err(BadChunk),
                    _ => Chunk::Ext { size },
                },
                Chunk::SizeLf { size } => match (b, size) {
                    (b'\n', 0) => Chunk::TrailerStart,
                    (b'\n', left) => Chunk::Data { left },
                    _ => return Err(BadChunk),
                },
                Chunk::Data { left } => {
                    let avail = input.len() - i;
                    let take = usize::try_from(left).map_or(avail, |l| l.min(avail));
                    data(&input[i..i + take]);
                    i += take;
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        Chunk::DataCr
                    } else {
                        Chunk::Data { left }
                    };
                    continue;
                }
                Chunk::DataCr if b == b'\r' => Chunk::DataLf,
                Chunk::DataLf if b == b'\n' => Chunk::Size { size: 0, digits: 0 },
                Chunk::DataCr | Chunk::DataLf => return Err(BadChunk),
                Chunk::TrailerStart if b == b'\r' => Chunk::EndLf,
                Chunk::TrailerStart | Chunk::Trailer if b == b'\n' => return Err(BadChunk),
                Chunk::TrailerStart => Chunk::Trailer,
                Chunk::Trailer if b == b'\r' => Chunk::TrailerLf,
                Chunk::Trailer => Chunk::Trailer,
                Chunk::TrailerLf if b == b'\n' => Chunk::TrailerStart,
                Chunk::EndLf if b == b'\n' => Chunk::Done,
                Chunk::TrailerLf | Chunk::EndLf => return Err(BadChunk),
                Chunk::Done => unreachable!("the loop stops at Done"),
            };
            i += 1;
        }
        Ok(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up_head(raw: &str, fwd: Forwarding<'_>) -> String {
        let mut slots = header_slots();
        let head = parse_request(raw.as_bytes(), &mut slots).unwrap().unwrap();
        let mut out = Vec::new();
        write_upstream_head(&head, "/rest?q=1", &fwd, &mut out);
        assert_eq!(head.head_len, raw.len());
        String::from_utf8(out).unwrap()
    }

    /// `parse_request` reduced to what the tests compare: method, path, query, body length,
    /// close, head length.
    type Parsed<'a> = (&'a str, &'a str, Option<&'a str>, u64, bool, usize);

    /// `parse_request` reduced to a [`Parsed`].
    fn parse(raw: &[u8]) -> Result<Option<Parsed<'_>>, Unsupported> {
        let mut slots = header_slots();
        Ok(parse_request(raw, &mut slots)?
            .map(|h| (h.method, h.path, h.query, h.body_len, h.close, h.head_len)))
    }

    const TCP: Forwarding<'static> = Forwarding {
        service: "svc",
        kind: "rpc",
        peer: Some("127.0.0.1"),
        strip_hero: true,
    };

    #[test]
    fn request_heads_the_lean_path_takes() {
        let raw = b"POST /a/b/c?x=1 HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
        let head_len = raw.len() - "hello".len();
        let want = ("POST", "/a/b/c", Some("x=1"), 5, false, head_len);
        assert_eq!(parse(raw), Ok(Some(want)));
        let close = parse(b"GET / HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n");
        assert!(close.unwrap().unwrap().4);
        assert_eq!(parse(b"GET / HTTP/1.1\r\nHost: x\r\n"), Ok(None));
        assert_eq!(parse(b""), Ok(None));
    }

    #[test]
    fn request_heads_left_to_hyper() {
        let cases: [(&[u8], Unsupported); 11] = [
            (b"GET / HTTP/1.0\r\n\r\n", Unsupported::Head),
            (b"GET / HTTP/1.1\r\nbad header\r\n\r\n", Unsupported::Head),
            (b"GET http://x/ HTTP/1.1\r\n\r\n", Unsupported::Target),
            (b"OPTIONS * HTTP/1.1\r\n\r\n", Unsupported::Target),
            (b"GET /a#b HTTP/1.1\r\n\r\n", Unsupported::Target),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                Unsupported::Framing,
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
                Unsupported::Framing,
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n",
                Unsupported::Framing,
            ),
            (
                b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
                Unsupported::Upgrade,
            ),
            (
                b"GET / HTTP/1.1\r\nConnection: upgrade\r\n\r\n",
                Unsupported::Upgrade,
            ),
            (
                b"POST / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
                Unsupported::Upgrade,
            ),
        ];
        for (raw, why) in cases {
            assert_eq!(parse(raw), Err(why), "{}", String::from_utf8_lossy(raw));
        }
        let many = format!(
            "GET / HTTP/1.1\r\n{}\r\n",
            "a: b\r\n".repeat(MAX_HEADERS + 1)
        );
        assert_eq!(parse(many.as_bytes()), Err(Unsupported::Head));
    }

    #[test]
    fn content_length_is_digits_only() {
        assert_eq!(parse_length(b"0"), Some(0));
        assert_eq!(parse_length(b"18446744073709551615"), None); // 20 digits
        assert_eq!(
            parse_length(b"9999999999999999999"),
            Some(9_999_999_999_999_999_999)
        );
        for bad in [&b""[..], b"-1", b"1 ", b"0x1", b"1,1"] {
            assert_eq!(parse_length(bad), None);
        }
    }

    #[test]
    fn upstream_head_drops_hop_by_hop_and_sets_forwarding() {
        let raw = "GET /svc/rpc/rest?q=1 HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Drop\r\n\
                   Keep-Alive: 5\r\nTE: trailers\r\nX-Drop: 1\r\nX-Hero-Claims: c\r\n\
                   x-hero-context: c\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Prefix: /evil\r\n\
                   Accept: */*\r\n\r\n";
        assert_eq!(
            up_head(raw, TCP),
            "GET /rest?q=1 HTTP/1.1\r\nHost: h\r\nAccept: */*\r\nx-forwarded-prefix: /svc/rpc\r\n\
             x-forwarded-for: 10.0.0.1, 127.0.0.1\r\n\r\n"
        );
        let unix = Forwarding {
            peer: None,
            strip_hero: false,
            ..TCP
        };
        assert_eq!(
            up_head(raw, unix),
            "GET /rest?q=1 HTTP/1.1\r\nHost: h\r\nX-Hero-Claims: c\r\nx-hero-context: c\r\n\
             Accept: */*\r\nx-forwarded-prefix: /svc/rpc\r\nx-forwarded-for: 10.0.0.1\r\n\r\n"
        );
        let bare = "POST /svc/rpc/rest HTTP/1.1\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(
            up_head(bare, unix),
            "POST /rest?q=1 HTTP/1.1\r\nContent-Length: 2\r\nx-forwarded-prefix: /svc/rpc\r\n\r\n"
        );
    }

    fn down(raw: &str, head_request: bool, close: bool) -> (ResponseHead, String) {
        let mut out = Vec::new();
        let h = parse_response(raw.as_bytes(), head_request, close, Some(&mut out))
            .unwrap()
            .unwrap();
        (h, String::from_utf8(out).unwrap())
    }

    #[test]
    fn response_framing_follows_rfc_9112() {
        let f = |raw: &str, head: bool| down(raw, head, false).0;
        let cl = "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n";
        assert_eq!(f(cl, false).framing, Framing::Length(7));
        assert_eq!(f(cl, true).framing, Framing::Empty);
        for s in [100, 103, 204, 304] {
            let raw = format!("HTTP/1.1 {s} X\r\nContent-Length: 7\r\n\r\n");
            assert_eq!(f(&raw, false).framing, Framing::Empty, "{s}");
        }
        let ch = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 3\r\n\r\n";
        assert_eq!(f(ch, false).framing, Framing::Chunked);
        let gz = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n";
        assert_eq!(f(gz, false).framing, Framing::UntilClose);
        let none = "HTTP/1.1 200 OK\r\n\r\n";
        assert_eq!(f(none, false).framing, Framing::UntilClose);
        assert!(!f(none, false).reusable);
        assert!(f(cl, false).reusable);
        assert!(
            !f(
                "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                false
            )
            .reusable
        );
        assert!(!f("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false).reusable);
        let same = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(f(same, false).framing, Framing::Length(2));
    }

    #[test]
    fn bad_response_heads() {
        let bad = |raw: &str| parse_response(raw.as_bytes(), false, false, None).unwrap_err();
        assert_eq!(
            bad("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            BadResponse::Length
        );
        assert_eq!(
            bad("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"),
            BadResponse::Length
        );
        assert_eq!(
            bad("HTTP/1.1 101 Switching\r\nUpgrade: x\r\n\r\n"),
            BadResponse::Upgrade
        );
        assert_eq!(bad("SSH-2.0\r\n\r\n"), BadResponse::Malformed);
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\n", false, false, None),
            Ok(None)
        );
    }

    #[test]
    fn downstream_head_drops_hop_by_hop() {
        let raw = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: keep-alive, X-Priv\r\n\
                   X-Priv: 1\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(
            down(raw, false, false).1,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n"
        );
        assert_eq!(
            down(raw, false, true).1,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nconnection: close\r\n\r\n"
        );
        // Chunks pass through with their Transfer-Encoding; a body to close loses its length.
        let ch = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x\r\n\r\n";
        assert_eq!(
            down(ch, false, false).1,
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        let gz = "HTTP/1.0 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 9\r\n\r\n";
        assert_eq!(
            down(gz, false, false).1,
            "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n"
        );
        // An interim head is forwarded without closing anything.
        assert_eq!(
            down(
                "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n",
                false,
                true
            )
            .1,
            "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
        );
    }

    /// Scans `body` fed in pieces of `step` bytes; returns (consumed, payload, done).
    fn scan(body: &[u8], step: usize) -> Result<(usize, Vec<u8>, bool), BadChunk> {
        let mut s = ChunkedScanner::default();
        let mut payload = Vec::new();
        let mut used = 0;
        for piece in body.chunks(step.max(1)) {
            let n = s.advance(piece, |d| payload.extend_from_slice(d))?;
            used += n;
            if s.is_done() {
                break;
            }
            assert_eq!(n, piece.len(), "an unfinished body consumes every byte");
        }
        Ok((used, payload, s.is_done()))
    }

    #[test]
    fn chunked_bodies_end_where_they_end() {
        let body = b"5\r\nhello\r\n1;ext=1\r\n \r\nA \r\n0123456789\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for step in 1..=body.len() {
            let (used, payload, done) = scan(body, step).unwrap();
            assert!(done, "step {step}");
            assert_eq!(used, body.len() - 4, "step {step}");
            assert_eq!(payload, b"hello 0123456789", "step {step}");
        }
        assert_eq!(scan(b"0\r\n\r\n", 1).unwrap(), (5, vec![], true));
        assert_eq!(scan(b"3\r\nab", 2).unwrap(), (5, b"ab".to_vec(), false));
    }

    #[test]
    fn malformed_chunked_bodies() {
        for bad in [
            &b"\r\n"[..],
            b"g\r\n",
            b"5\nhello\r\n",
            b"1\r\nab\r\n",
            b"1\r\na\n\n",
            b"0\r\n\n",
            b"11111111111111111\r\n",
            b"0\r\nX\n",
        ] {
            assert_eq!(
                scan(bad, 1),
                Err(BadChunk),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    /// Random heads and bodies never panic any parser; random valid chunked bodies, fed in
    /// random pieces, end exactly where they end with their payload intact. `make fuzz` runs
    /// 1,000,000 cases (`HERO_FUZZ_CASES`).
    #[test]
    fn wire_parsers_never_panic_and_chunks_end_exactly() {
        let (cases, seed, mut rng) = crate::test_util::fuzz_setup();
        let pieces: [&[u8]; 24] = [
            b"GET ",
            b"POST ",
            b"HTTP/1.1 ",
            b"HTTP/1.1",
            b"200 OK",
            b"/a/b",
            b"?q",
            b"\r\n",
            b"\n",
            b"\r",
            b": ",
            b"Content-Length",
            b"Transfer-Encoding",
            b"chunked",
            b"Connection",
            b"close, x",
            b"0",
            b"ff",
            b";e",
            b" ",
            b"\0",
            b"\xff",
            b"101",
            b"X-Hero-Claims",
        ];
        let fwd = TCP;
        for case in 0..cases {
            let raw: Vec<u8> = (0..rng.usize(1..24))
                .flat_map(|_| pieces[rng.usize(..pieces.len())].iter().copied())
                .collect();
            let outcome = std::panic::catch_unwind(|| {
                let mut slots = header_slots();
                if let Ok(Some(head)) = parse_request(&raw, &mut slots) {
                    let mut out = Vec::new();
                    write_upstream_head(&head, "/x", &fwd, &mut out);
                }
                let mut out = Vec::new();
                let _ = parse_response(&raw, false, true, Some(&mut out));
                let mut scanner = ChunkedScanner::default();
                let _ = scanner.advance(&raw, |_| {});
            });
            assert!(outcome.is_ok(), "seed {seed} case {case}: panic on {raw:?}");

            // A valid chunked body with trailing bytes after it, cut into random pieces.
            let mut body = Vec::new();
            let mut payload = Vec::new();
            for _ in 0..rng.usize(0..4) {
                let data: Vec<u8> = (0..rng.usize(1..40)).map(|_| rng.u8(..)).collect();
                let ext = if rng.bool() { ";a=b" } else { "" };
                body.extend_from_slice(format!("{:x}{ext}\r\n", data.len()).as_bytes());
                body.extend_from_slice(&data);
                body.extend_from_slice(b"\r\n");
                payload.extend_from_slice(&data);
            }
            body.extend_from_slice(b"0\r\n");
            if rng.bool() {
                body.extend_from_slice(b"X-Trailer: 1\r\n");
            }
            body.extend_from_slice(b"\r\n");
            let end = body.len();
            body.extend_from_slice(b"NEXT REQUEST");
            let (mut scanner, mut got, mut used, mut at) =
                (ChunkedScanner::default(), Vec::new(), 0, 0);
            while !scanner.is_done() && at < body.len() {
                let step = rng.usize(1..=16).min(body.len() - at);
                let n = scanner
                    .advance(&body[at..at + step], |d| got.extend_from_slice(d))
                    .unwrap_or_else(|e| panic!("seed {seed} case {case}: {e} in {body:?}"));
                used += n;
                at += step;
            }
            assert!(
                scanner.is_done(),
                "seed {seed} case {case}: no end in {body:?}"
            );
            assert_eq!(used, end, "seed {seed} case {case}: wrong end in {body:?}");
            assert_eq!(got, payload, "seed {seed} case {case}");
        }
    }
}
