//! The header writers as they were before they classified each name once and copied kept
//! lines as they came: the oracles of the differential tests in `tests.rs`. Kept verbatim but
//! for paths; not used by the router.

use crate::http1::request::{Forwarding, Kept, RequestHead, write_forwarded};
use crate::http1::response::{BadResponse, Exchange, Framing, MAX_RESPONSE_HEAD, ResponseHead};
use crate::http1::{BodyFraming, connection_tokens, eq, is_hop_by_hop, parse_length, push_header};

/// Headers the router sets itself; a client's copies (in any spelling) never pass as they are.
pub(super) const MANAGED: [&str; 11] = [
    "x-request-id",
    "traceparent",
    "tracestate",
    "x-forwarded-for",
    "x-forwarded-prefix",
    "x-hero-context",
    "x-hero-claims",
    "forwarded",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
];

pub(super) fn eq_dashed(name: &str, want: &str) -> bool {
    name.len() == want.len()
        && name
            .bytes()
            .zip(want.bytes())
            .all(|(a, b)| a.to_ascii_lowercase() == b || (a == b'_' && b == b'-'))
}

pub(super) fn write_upstream_head(
    req: &RequestHead<'_, '_>,
    path: &str,
    query: Option<&str>,
    fwd: &Forwarding<'_>,
    out: &mut Vec<u8>,
) {
    let strip_hero = fwd.peer.is_some() && !fwd.trust_client;
    let tokens = || {
        req.headers
            .iter()
            .filter(|h| eq(h.name, "connection"))
            .flat_map(|h| connection_tokens(h.value))
    };
    // Tokens other than these name headers to drop; they are rare, so look only if present.
    let plain = |t: &[u8]| {
        [&b"close"[..], b"keep-alive", b"upgrade"]
            .iter()
            .any(|p| t.eq_ignore_ascii_case(p))
    };
    let names_headers = tokens().any(|t| !plain(t));
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
    for h in req.headers {
        let name = h.name;
        if is_hop_by_hop(name)
            || eq(name, "host")
            || eq(name, "content-length")
            || eq(name, "expect")
        {
            continue;
        }
        if let Some(managed) = MANAGED.iter().find(|m| eq_dashed(name, m)) {
            let dashed = !name.contains('_');
            match *managed {
                "x-forwarded-for" if dashed => match xff {
                    None => xff = Some(h.value),
                    Some(_) => xff_more.push(h.value),
                },
                "tracestate" if dashed && fwd.keep_tracestate => {
                    crate::http1::push_header(out, name.as_bytes(), h.value);
                }
                "x-hero-context" | "x-hero-claims" if !strip_hero => {
                    crate::http1::push_header(out, name.as_bytes(), h.value);
                }
                "forwarded" | "x-forwarded-host" | "x-forwarded-proto" | "x-real-ip"
                    if dashed && keep_chain =>
                {
                    kept.note(managed);
                    crate::http1::push_header(out, name.as_bytes(), h.value);
                }
                _ => {}
            }
            continue;
        }
        if names_headers && tokens().any(|t| name.as_bytes().eq_ignore_ascii_case(t)) {
            continue;
        }
        crate::http1::push_header(out, name.as_bytes(), h.value);
    }
    match req.body {
        BodyFraming::None => {}
        BodyFraming::Length(n) => crate::http1::push_length(out, n),
        BodyFraming::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    if let Some(proto) = req.upgrade {
        out.extend_from_slice(b"connection: upgrade\r\nupgrade: ");
        out.extend_from_slice(proto);
        out.extend_from_slice(b"\r\n");
    }
    crate::http1::push_header(out, b"x-request-id", fwd.request_id);
    crate::http1::push_header(out, b"traceparent", fwd.traceparent);
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

pub(super) fn parse_response(
    buf: &[u8],
    ex: &Exchange,
    out: Option<&mut Vec<u8>>,
) -> Result<Option<ResponseHead>, BadResponse> {
    let mut headers = [const { std::mem::MaybeUninit::uninit() }; 256];
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
    let mut length: Option<u64> = None;
    let mut codings = 0usize;
    let mut chunked_last = false;
    let mut chunked_seen = 0usize;
    let (mut upstream_close, mut upstream_keep_alive) = (false, false);
    let mut names_headers = false;
    for h in resp.headers.iter() {
        if eq(h.name, "content-length") {
            let n = parse_length(h.value).ok_or(BadResponse::Length)?;
            if length.is_some_and(|l| l != n) {
                return Err(BadResponse::Length);
            }
            length = Some(n);
        } else if eq(h.name, "transfer-encoding") {
            for c in connection_tokens(h.value) {
                codings += 1;
                chunked_last = c.eq_ignore_ascii_case(b"chunked");
                chunked_seen += usize::from(chunked_last);
            }
        } else if eq(h.name, "connection") {
            for t in connection_tokens(h.value) {
                upstream_close |= t.eq_ignore_ascii_case(b"close");
                upstream_keep_alive |= t.eq_ignore_ascii_case(b"keep-alive");
                names_headers |= !t.eq_ignore_ascii_case(b"close")
                    && !t.eq_ignore_ascii_case(b"keep-alive")
                    && !t.eq_ignore_ascii_case(b"upgrade");
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
    if let Some(out) = out {
        out.extend_from_slice(b"HTTP/1.1 ");
        crate::http1::push_status(out, status);
        out.push(b' ');
        out.extend_from_slice(resp.reason.unwrap_or("").as_bytes());
        out.extend_from_slice(b"\r\n");
        let listed = |name: &str| {
            resp.headers
                .iter()
                .filter(|h| eq(h.name, "connection"))
                .flat_map(|h| connection_tokens(h.value))
                .any(|t| name.as_bytes().eq_ignore_ascii_case(t))
        };
        for h in resp.headers.iter() {
            let keep_upgrade = switching && eq(h.name, "upgrade");
            if (!keep_upgrade && is_hop_by_hop(h.name))
                || eq(h.name, "content-length")
                // The router's own id goes on the answer (the proxy engine writes it).
                || eq(h.name, "x-request-id")
                // A service's page may not widen a service worker's scope past its own
                // `/{service}/{kind}/` prefix: at `/` it would answer for the router's pages
                // on the shared origin (docs/access-and-security.md#page-headers).
                || eq(h.name, "service-worker-allowed")
                || (names_headers && listed(h.name))
            {
                continue;
            }
            push_header(out, h.name.as_bytes(), h.value);
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
            Framing::Length(n) => crate::http1::push_length(out, n),
            Framing::Chunked => write_codings(out, !dechunk),
            Framing::UntilClose => write_codings(out, false),
            // A HEAD or 304 answer may say how long the body would be.
            Framing::Empty if (ex.head_request || status == 304) && !interim => {
                if let Some(n) = length.filter(|_| codings == 0) {
                    crate::http1::push_length(out, n);
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

pub(super) fn valid_authority(v: &[u8]) -> bool {
    let (host, port) = if v.first() == Some(&b'[') {
        let Some(end) = v.iter().position(|b| *b == b']') else {
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
        match v.iter().position(|b| *b == b':') {
            Some(at) => (&v[..at], &v[at + 1..]),
            None => (v, &[][..]),
        }
    };
    let host_ok = host.iter().all(|b| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'%'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            )
    });
    let port_ok = port.len() <= 5
        && port.iter().all(u8::is_ascii_digit)
        && (port.is_empty()
            || std::str::from_utf8(port)
                .ok()
                .and_then(|p| p.parse::<u16>().ok())
                .is_some());
    host_ok && port_ok
}
