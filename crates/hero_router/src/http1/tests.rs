//! Unit tests of the framing authority: every rule as a table, and properties over random
//! input (split invariance of head parsing, chunked round trips, no panics).

use super::request::{UpstreamHeader, upstream_header, valid_authority};
use super::response::{AnswerHeader, BadResponse, MAX_RESPONSE_HEAD, answer_header};
use super::*;

mod former;

const LIMITS: HeadLimits = HeadLimits {
    max_bytes: 64 * 1024,
    max_headers: 100,
};

/// What the tests compare of a parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Parsed {
    method: String,
    path: String,
    query: Option<String>,
    host: Option<Vec<u8>>,
    body: BodyFraming,
    http10: bool,
    keep_alive: bool,
    upgrade: bool,
    expect: bool,
    head_len: usize,
}

fn parse_with(raw: &[u8], limits: &HeadLimits) -> Result<Option<Parsed>, RequestError> {
    let mut slots = header_slots();
    Ok(parse_request(raw, limits, &mut slots)?.map(|h| Parsed {
        method: h.method.into(),
        path: h.path.into(),
        query: h.query.map(Into::into),
        host: h.host.map(<[u8]>::to_vec),
        body: h.body,
        http10: h.http10,
        keep_alive: h.keep_alive,
        upgrade: h.upgrade.is_some(),
        expect: h.expect_continue,
        head_len: h.head_len,
    }))
}

fn parse(raw: &str) -> Result<Option<Parsed>, RequestError> {
    parse_with(raw.as_bytes(), &LIMITS)
}

fn accepted(raw: &str) -> Parsed {
    parse(raw)
        .unwrap_or_else(|e| panic!("{raw:?} refused: {e}"))
        .unwrap_or_else(|| panic!("{raw:?} incomplete"))
}

#[test]
fn request_heads_that_are_accepted() {
    let p = accepted("POST /a/b?x=1 HTTP/1.1\r\nHost: h:1\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!((p.method.as_str(), p.path.as_str()), ("POST", "/a/b"));
    assert_eq!(p.query.as_deref(), Some("x=1"));
    assert_eq!(p.host.as_deref(), Some(&b"h:1"[..]));
    assert_eq!(p.body, BodyFraming::Length(5));
    assert!(p.keep_alive && !p.http10);
    let chunked = accepted("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: ChunKed\r\n\r\n");
    assert_eq!(chunked.body, BodyFraming::Chunked);
    let close = accepted("GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Close\r\n\r\n");
    assert!(!close.keep_alive);
    // HTTP/1.0: Host optional, kept alive only when it asks (RFC 9112 §9.3), no 100-continue.
    let old = accepted("GET / HTTP/1.0\r\nConnection: keep-alive\r\nExpect: 100-continue\r\n\r\n");
    assert!(old.http10 && old.keep_alive && !old.expect);
    assert_eq!(old.host, None);
    assert!(!accepted("GET / HTTP/1.0\r\n\r\n").keep_alive);
    let both = accepted("GET / HTTP/1.0\r\nConnection: Keep-Alive, close\r\n\r\n");
    assert!(!both.keep_alive, "close wins");
    // Absolute form: the authority is the host to name upstream, the path is routed.
    for host in [
        "h",
        "h:1",
        "localhost:65535",
        "localhost:",
        "127.0.0.1:0",
        "[::1]",
        "[::1]:9988",
        "[::ffff:127.0.0.1]:80",
        "node.",
        "*",
    ] {
        let p = accepted(&format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n"));
        assert_eq!(p.host.as_deref(), Some(host.as_bytes()), "{host}");
    }
    let abs = accepted("GET http://Node:9988/svc/rpc/x?q HTTP/1.1\r\nHost: other\r\n\r\n");
    assert_eq!(
        (abs.path.as_str(), abs.query.as_deref()),
        ("/svc/rpc/x", Some("q"))
    );
    assert_eq!(abs.host.as_deref(), Some(&b"Node:9988"[..]));
    assert_eq!(
        accepted("GET http://n HTTP/1.1\r\nHost: n\r\n\r\n").path,
        "/"
    );
    let up = accepted(
        "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    );
    assert!(up.upgrade);
    // Upgrade without Connection: upgrade is not an upgrade (the header is dropped).
    assert!(!accepted("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n").upgrade);
    let exp =
        accepted("PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n");
    assert!(exp.expect);
    // Leading empty lines before a request line are ignored (RFC 9112 §2.2).
    assert_eq!(
        accepted("\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n").method,
        "GET"
    );
    assert_eq!(parse("GET / HTTP/1.1\r\nHost: x\r\n"), Ok(None));
    assert_eq!(parse(""), Ok(None));
}

#[test]
fn request_heads_that_are_refused() {
    use RequestError as E;
    let framing = |e: &RequestError| matches!(e, E::Framing(_));
    let host = |e: &RequestError| matches!(e, E::Host(_));
    let target = |e: &RequestError| matches!(e, E::Target(_));
    let malformed = |e: &RequestError| matches!(e, E::Malformed(_));
    type Check<'a> = &'a dyn Fn(&RequestError) -> bool;
    let cases: &[(&str, Check<'_>)] = &[
        // Two lengths, or a length and chunks: whichever a service believed, it would be
        // out of step with whatever another parser believed.
        (
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
            &framing,
        ),
        (
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            &framing,
        ),
        (
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1, 1\r\n\r\n",
            &framing,
        ),
        (
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +1\r\n\r\n",
            &framing,
        ),
        (
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x1\r\n\r\n",
            &framing,
        ),
        (
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n",
            &framing,
        ),
        (
            "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            &framing,
        ),
        (
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            &framing,
        ),
        (
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            &framing,
        ),
        (
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            &framing,
        ),
        (
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, CHUNKED, chunked\r\n\r\n",
            &framing,
        ),
        (
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            &|e| matches!(e, E::Coding),
        ),
        (
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n",
            &framing,
        ),
        (
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \r\n\r\n",
            &framing,
        ),
        (
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            &framing,
        ),
        // A framing header named in Connection would be dropped by a hop-by-hop filter.
        (
            "POST / HTTP/1.1\r\nHost: h\r\nConnection: content-length\r\nContent-Length: 3\r\n\r\n",
            &framing,
        ),
        (
            "POST / HTTP/1.1\r\nHost: h\r\nConnection: close, Transfer-Encoding\r\n\r\n",
            &framing,
        ),
        (
            "GET / HTTP/1.1\r\nHost: h\r\nConnection: host\r\n\r\n",
            &framing,
        ),
        // Exactly one Host on HTTP/1.1, a valid one.
        ("GET / HTTP/1.1\r\n\r\n", &host),
        ("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", &host),
        ("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", &host),
        ("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", &host),
        ("GET / HTTP/1.1\r\nHost: u@h\r\n\r\n", &host),
        ("GET / HTTP/1.1\r\nHost: h/x\r\n\r\n", &host),
        // A port that is no port, or more than one colon outside brackets.
        ("GET / HTTP/1.1\r\nHost: localhost:abc\r\n\r\n", &host),
        ("GET / HTTP/1.1\r\nHost: localhost:99999\r\n\r\n", &host),
        ("GET / HTTP/1.1\r\nHost: localhost:000080\r\n\r\n", &host),
        ("GET / HTTP/1.1\r\nHost: h:1:2\r\n\r\n", &host),
        ("GET / HTTP/1.1\r\nHost: ::1\r\n\r\n", &host),
        ("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", &host),
        ("GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", &host),
        ("GET / HTTP/1.1\r\nHost: [::1]:x\r\n\r\n", &host),
        ("GET / HTTP/1.1\r\nHost: [zz]\r\n\r\n", &host),
        ("GET / HTTP/1.1\r\nHost: a]b\r\n\r\n", &host),
        // Targets the router does not serve.
        ("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", &target),
        ("CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n", &target),
        ("GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n", &target),
        ("GET ftp://h/ HTTP/1.1\r\nHost: h\r\n\r\n", &target),
        ("GET http://u@h/ HTTP/1.1\r\nHost: h\r\n\r\n", &target),
        ("GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n", &target),
        ("GET \u{e9} HTTP/1.1\r\nHost: h\r\n\r\n", &target),
        // Malformed heads.
        (
            "GET / HTTP/1.1\r\nHost: h\r\nbad header\r\n\r\n",
            &malformed,
        ),
        (
            "GET / HTTP/1.1\r\nHost: h\r\nContent-Length : 1\r\n\r\n",
            &malformed,
        ),
        ("GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n", &malformed),
        ("GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n", &malformed),
        ("GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n", &malformed),
        ("GET  / HTTP/1.1\r\nHost: h\r\n\r\n", &malformed),
        (
            "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: a\r\nUpgrade: b\r\n\r\n",
            &malformed,
        ),
        ("GET / HTTP/2.0\r\n\r\n", &|e| matches!(e, E::Version)),
        (
            "POST / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\n\r\n",
            &|e| matches!(e, E::Expectation),
        ),
    ];
    for (raw, want) in cases {
        match parse(raw) {
            Err(e) => assert!(want(&e), "{raw:?}: unexpected {e:?}"),
            Ok(p) => panic!("{raw:?} accepted: {p:?}"),
        }
    }
}

/// A refused head is refused in words that name what is wrong: a version that runs on or
/// something after it is the request line's fault, not a header's; an empty or unknown
/// coding is named as such. The words are the same for every prefix that is already doomed.
#[test]
fn refusals_name_what_is_wrong() {
    let message = |raw: &str| match parse(raw) {
        Err(RequestError::Malformed(m) | RequestError::Framing(m)) => m,
        other => panic!("{raw:?}: {other:?}"),
    };
    let request_line = "invalid request line (METHOD TARGET HTTP/1.1, then a line break)";
    for raw in [
        "GET / HTTP/1.10\r\nHost: h\r\n\r\n",
        "GET / HTTP/1.1 \r\nHost: h\r\n\r\n",
        "GET / HTTP/1.1\r\r\nHost: h\r\n\r\n",
        "\r\n\rGET / HTTP/1.1\r\nHost: h\r\n\r\n",
        "\r\nGET / HTTP/1.10\r\nHost: h\r\n\r\n",
    ] {
        assert_eq!(message(raw), request_line, "{raw:?}");
        // Any prefix that already fails fails the same way.
        for end in 1..raw.len() {
            if let Err(RequestError::Malformed(m)) = parse(&raw[..end]) {
                assert_eq!(m, request_line, "{:?}", &raw[..end]);
            }
        }
    }
    assert_eq!(
        message("GET / HTTP/1.1\r\nHost: h\r\n\rX: 1\r\n\r\n"),
        "invalid line ending in a header"
    );
    assert_eq!(
        message("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \r\n\r\n"),
        "empty Transfer-Encoding"
    );
    for coding in ["xchunked", "gzip", "chunked, gzip"] {
        assert_eq!(
            message(&format!(
                "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: {coding}\r\n\r\n"
            )),
            "the last transfer coding must be chunked (the only one the router reads)",
            "{coding}"
        );
    }
}

#[test]
fn head_limits_hold_by_bytes_and_lines() {
    let limits = HeadLimits {
        max_bytes: 100,
        max_headers: 3,
    };
    let head = |pad: usize| {
        format!(
            "GET / HTTP/1.1\r\nHost: h\r\nX: {}\r\n\r\n",
            "a".repeat(pad)
        )
    };
    let fits = head(100 - head(0).len());
    assert_eq!(fits.len(), 100);
    assert!(parse_with(fits.as_bytes(), &limits).unwrap().is_some());
    let over = head(101 - head(0).len());
    assert_eq!(
        parse_with(over.as_bytes(), &limits),
        Err(RequestError::HeadTooLarge { limit: 100 })
    );
    // Over the limit without a blank line yet: refused as soon as the limit is passed.
    assert_eq!(
        parse_with(&over.as_bytes()[..101], &limits),
        Err(RequestError::HeadTooLarge { limit: 100 })
    );
    assert_eq!(parse_with(&over.as_bytes()[..100], &limits), Ok(None));
    // A fitting head followed by pipelined bytes is not over the limit.
    let pipelined = format!("{fits}{}", "x".repeat(500));
    assert!(parse_with(pipelined.as_bytes(), &limits).unwrap().is_some());
    let many = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    assert_eq!(
        parse_with(many.as_bytes(), &limits),
        Err(RequestError::TooManyHeaders { limit: 3 })
    );
    assert_eq!(
        RequestError::TooManyHeaders { limit: 3 }.status(),
        RequestError::HeadTooLarge { limit: 1 }.status()
    );
}

/// Random heads, cut at every point: the first decision on a prefix is the decision on the
/// whole. So no limit or rule depends on how the bytes were split across reads.
#[test]
fn head_decisions_never_depend_on_how_bytes_arrive() {
    let (cases, seed, mut rng) = crate::test_util::fuzz_setup();
    let pieces: [&str; 28] = [
        "GET / HTTP/1.1\r\n",
        "GET /a b HTTP/1.1\r\n",
        "\x16\x03\x01",
        "POST /svc/rpc/x HTTP/1.1\r\n",
        "GET / HTTP/1.0\r\n",
        "Host: h\r\n",
        "Host: a b\r\n",
        "Content-Length: 5\r\n",
        "Content-Length: 7\r\n",
        "Transfer-Encoding: chunked\r\n",
        "Connection: close\r\n",
        "Connection: content-length\r\n",
        "Upgrade: x\r\n",
        "Connection: upgrade\r\n",
        "Expect: 100-continue\r\n",
        "X-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
        "X: \0\r\n",
        "bad\r\n",
        "\r\n",
        "\n",
        "\r",
        " ",
        "hello",
        "A: 1\r\n",
        "B: 2\r\n",
        "GET http://x/ HTTP/1.1\r\n",
        "\u{ff}",
        ":",
    ];
    let cases = (cases / 20).max(100);
    for case in 0..cases {
        let raw: String = (0..rng.usize(1..12))
            .map(|_| pieces[rng.usize(..pieces.len())])
            .collect();
        let limits = HeadLimits {
            max_bytes: rng.usize(16..200),
            max_headers: rng.usize(1..6),
        };
        let raw = raw.as_bytes();
        let whole = parse_with(raw, &limits);
        let first = (0..=raw.len())
            .map(|k| (k, parse_with(&raw[..k], &limits)))
            .find(|(_, r)| *r != Ok(None));
        // A prefix that is already no request is refused as soon as it is seen, with the
        // error of the whole.
        for j in 0..=raw.len() {
            if doomed(&raw[..j], &limits) {
                assert!(
                    parse_with(&raw[..j], &limits).is_err(),
                    "seed {seed} case {case}: {raw:?} doomed at {j}, but not refused there"
                );
            }
        }
        if let Some((k, decided)) = first {
            for j in k..=raw.len() {
                assert_eq!(
                    parse_with(&raw[..j], &limits),
                    decided,
                    "seed {seed} case {case}: {raw:?} decided at {k}, changed at {j}"
                );
            }
        } else {
            assert_eq!(whole, Ok(None), "seed {seed} case {case}");
        }
    }
}

fn fwd(peer: Option<&'static str>, trust_client: bool) -> Forwarding<'static> {
    Forwarding {
        service: "svc",
        kind: "rpc",
        peer,
        trust_client,
        request_id: b"RID-1",
        traceparent: b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        keep_tracestate: false,
    }
}

fn up_head(raw: &str, fwd: Forwarding<'_>) -> String {
    let mut slots = header_slots();
    let head = parse_request(raw.as_bytes(), &LIMITS, &mut slots)
        .unwrap()
        .unwrap();
    let mut out = Vec::new();
    write_upstream_head(&head, "/rest", Some("q=1"), &fwd, &mut out);
    let text = String::from_utf8(out).unwrap();
    // The router's ids, always, once, just before its forwarding headers (checked here, left
    // out of what the tests compare).
    let ids = "x-request-id: RID-1\r\n\
               traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\
               x-forwarded-prefix: ";
    assert_eq!(text.matches(ids).count(), 1, "{text}");
    text.replacen(ids, "x-forwarded-prefix: ", 1)
}

#[test]
fn the_clients_ids_never_pass_and_tracestate_only_with_its_trace() {
    let raw = "GET /x HTTP/1.1\r\nHost: h\r\nX-Request-Id: mine\r\nx_request_id: u\r\n\
               traceparent: 00-11111111111111111111111111111111-2222222222222222-01\r\n\
               TraceState: a=1\r\n\r\n";
    let plain = "GET /rest?q=1 HTTP/1.1\r\nhost: h\r\nx-forwarded-prefix: /svc/rpc\r\n\r\n";
    assert_eq!(up_head(raw, fwd(None, false)), plain);
    let kept = Forwarding {
        keep_tracestate: true,
        ..fwd(None, false)
    };
    assert_eq!(
        up_head(raw, kept),
        "GET /rest?q=1 HTTP/1.1\r\nhost: h\r\nTraceState: a=1\r\n\
         x-forwarded-prefix: /svc/rpc\r\n\r\n"
    );
}

#[test]
fn the_upstream_head_declares_exactly_the_routers_framing() {
    let raw = "POST /svc/rpc/rest?q=1 HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Drop\r\n\
               Keep-Alive: 5\r\nTE: trailers\r\nX-Drop: 1\r\nX-Hero-Claims: c\r\n\
               x_hero_claims: c\r\nX_Hero_Context: c\r\nX-Forwarded-For: 10.0.0.1\r\n\
               X_Forwarded_For: 9.9.9.9\r\nX-Forwarded-Prefix: /evil\r\nProxy-Authorization: p\r\n\
               Expect: 100-continue\r\nAccept: */*\r\nContent-Length: 2\r\n\r\n";
    const OURS: &str = "forwarded: for=127.0.0.1;host=\"h\";proto=http\r\nx-forwarded-host: h\r\n\
                        x-forwarded-proto: http\r\nx-real-ip: 127.0.0.1\r\n";
    assert_eq!(
        up_head(raw, fwd(Some("127.0.0.1"), false)),
        format!(
            "POST /rest?q=1 HTTP/1.1\r\nhost: h\r\nAccept: */*\r\ncontent-length: 2\r\n\
             x-forwarded-prefix: /svc/rpc\r\n{OURS}x-forwarded-for: 127.0.0.1\r\n\r\n"
        )
    );
    // A trusted TCP client keeps its X-Hero-* headers and its chain; underscore spellings of
    // the router's headers never pass.
    assert_eq!(
        up_head(raw, fwd(Some("127.0.0.1"), true)),
        format!(
            "POST /rest?q=1 HTTP/1.1\r\nhost: h\r\nX-Hero-Claims: c\r\nx_hero_claims: c\r\n\
             X_Hero_Context: c\r\nAccept: */*\r\ncontent-length: 2\r\n\
             x-forwarded-prefix: /svc/rpc\r\n{OURS}x-forwarded-for: 10.0.0.1, 127.0.0.1\r\n\r\n"
        )
    );
    // Over a Unix socket the caller is trusted and the chain passes as it is.
    assert_eq!(
        up_head(raw, fwd(None, false)),
        "POST /rest?q=1 HTTP/1.1\r\nhost: h\r\nX-Hero-Claims: c\r\nx_hero_claims: c\r\n\
         X_Hero_Context: c\r\nAccept: */*\r\ncontent-length: 2\r\n\
         x-forwarded-prefix: /svc/rpc\r\nx-forwarded-for: 10.0.0.1\r\n\r\n"
    );
    let chunked = "POST /x HTTP/1.1\r\nHost: h\r\ntransfer-encoding: chunked\r\n\r\n";
    assert_eq!(
        up_head(chunked, fwd(None, false)),
        "POST /rest?q=1 HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\
         x-forwarded-prefix: /svc/rpc\r\n\r\n"
    );
    let upgrade = "GET /x HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-K: k\r\n\r\n";
    assert_eq!(
        up_head(upgrade, fwd(None, false)),
        "GET /rest?q=1 HTTP/1.1\r\nhost: h\r\nSec-K: k\r\nconnection: upgrade\r\n\
         upgrade: websocket\r\nx-forwarded-prefix: /svc/rpc\r\n\r\n"
    );
    let old = "GET /x HTTP/1.0\r\n\r\n";
    assert_eq!(
        up_head(old, fwd(Some("10.1.1.1"), false)),
        "GET /rest?q=1 HTTP/1.1\r\nhost: localhost\r\nx-forwarded-prefix: /svc/rpc\r\n\
         forwarded: for=10.1.1.1;proto=http\r\nx-forwarded-proto: http\r\n\
         x-real-ip: 10.1.1.1\r\nx-forwarded-for: 10.1.1.1\r\n\r\n"
    );
    let absolute = "GET http://node:1/svc/rpc/x HTTP/1.1\r\nHost: ignored\r\n\r\n";
    assert!(
        up_head(absolute, fwd(None, false))
            .starts_with("GET /rest?q=1 HTTP/1.1\r\nhost: node:1\r\n")
    );
}

#[test]
fn forwarding_headers_are_the_routers_unless_the_client_is_believed() {
    let raw = "GET /x HTTP/1.1\r\nHost: node:9988\r\nForwarded: for=6.6.6.6;proto=https\r\n\
               X-Forwarded-Host: evil\r\nX-Forwarded-Proto: https\r\nX-Real-IP: 6.6.6.6\r\n\
               X_Real_IP: 6.6.6.6\r\nx_forwarded_host: evil\r\n\r\n";
    let lines = |head: String| -> Vec<String> {
        head.lines()
            .filter(|l| {
                !l.is_empty() && !l.starts_with("GET ") && !l.starts_with("x-forwarded-prefix")
            })
            .map(str::to_owned)
            .collect()
    };
    // An untrusted TCP client: every claim of its own is replaced.
    assert_eq!(
        lines(up_head(raw, fwd(Some("::1"), false))),
        [
            "host: node:9988",
            "forwarded: for=\"[::1]\";host=\"node:9988\";proto=http",
            "x-forwarded-host: node:9988",
            "x-forwarded-proto: http",
            "x-real-ip: ::1",
            "x-forwarded-for: ::1",
        ]
    );
    // A trusted one: its own pass, ours extend `Forwarded` and fill what it did not say.
    assert_eq!(
        lines(up_head(raw, fwd(Some("10.0.0.9"), true))),
        [
            "host: node:9988",
            "Forwarded: for=6.6.6.6;proto=https",
            "X-Forwarded-Host: evil",
            "X-Forwarded-Proto: https",
            "X-Real-IP: 6.6.6.6",
            "forwarded: for=10.0.0.9;host=\"node:9988\";proto=http",
            "x-forwarded-for: 10.0.0.9",
        ]
    );
    // A Unix-socket caller: as it sent them, nothing added, underscores dropped.
    assert_eq!(
        lines(up_head(raw, fwd(None, false))),
        [
            "host: node:9988",
            "Forwarded: for=6.6.6.6;proto=https",
            "X-Forwarded-Host: evil",
            "X-Forwarded-Proto: https",
            "X-Real-IP: 6.6.6.6",
        ]
    );
}

fn down(raw: &str, ex: Exchange) -> (ResponseHead, String) {
    let mut out = Vec::new();
    let h = parse_response(raw.as_bytes(), &ex, Some(&mut out))
        .unwrap()
        .unwrap();
    (h, String::from_utf8(out).unwrap())
}

const KEEP: Exchange = Exchange {
    head_request: false,
    client_http10: false,
    close: false,
    upgrade: false,
};

#[test]
fn response_framing_follows_rfc_9112() {
    let f = |raw: &str, ex: Exchange| down(raw, ex).0;
    let head = Exchange {
        head_request: true,
        ..KEEP
    };
    let cl = "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n";
    assert_eq!(f(cl, KEEP).framing, Framing::Length(7));
    assert_eq!(f(cl, head).framing, Framing::Empty);
    for s in [100, 103, 204, 304] {
        let raw = format!("HTTP/1.1 {s} X\r\nContent-Length: 7\r\n\r\n");
        assert_eq!(f(&raw, KEEP).framing, Framing::Empty, "{s}");
    }
    let both = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 3\r\n\r\n";
    assert_eq!(f(both, KEEP).framing, Framing::Chunked);
    let gz = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n";
    assert_eq!(f(gz, KEEP).framing, Framing::UntilClose);
    let none = "HTTP/1.1 200 OK\r\n\r\n";
    assert_eq!(f(none, KEEP).framing, Framing::UntilClose);
    assert!(!f(none, KEEP).reusable && f(none, KEEP).close_client);
    assert!(f(cl, KEEP).reusable && !f(cl, KEEP).close_client);
    let closing = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
    assert!(!f(closing, KEEP).reusable);
    assert!(
        !f(closing, KEEP).close_client,
        "the upstream's close is not the client's"
    );
    assert!(!f("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", KEEP).reusable);
    // An HTTP/1.0 answer that says keep-alive persists (with a length to end its body).
    let old_keep = "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n";
    assert!(f(old_keep, KEEP).reusable);
    let old_keep_no_length = "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n";
    assert!(
        !f(old_keep_no_length, KEEP).reusable,
        "its body runs to close"
    );
    let same = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n";
    assert_eq!(f(same, KEEP).framing, Framing::Length(2));
    // An HTTP/1.0 client gets chunks as a body that runs to close.
    let ch = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    let old = Exchange {
        client_http10: true,
        ..KEEP
    };
    let h = f(ch, old);
    assert!(h.dechunk && h.close_client);
    // 101 only answers an upgrade.
    let switching =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n";
    let up = Exchange {
        upgrade: true,
        ..KEEP
    };
    assert_eq!(f(switching, up).status, 101);
    assert!(!f(switching, up).reusable);
}

/// A service's `Service-Worker-Allowed` never reaches the browser (a worker scoped to the
/// origin's root would answer for the router's own pages); its other headers do.
#[test]
fn a_services_worker_scope_header_is_dropped() {
    let raw = "HTTP/1.1 200 OK\r\nContent-Type: text/javascript\r\nService-Worker-Allowed: /\r\n\
               service-worker-allowed: /x/\r\nCache-Control: no-cache\r\nContent-Length: 2\r\n\r\n";
    assert_eq!(
        down(raw, KEEP).1,
        "HTTP/1.1 200 OK\r\nContent-Type: text/javascript\r\nCache-Control: no-cache\r\n\
         content-length: 2\r\n\r\n"
    );
}

#[test]
fn bad_response_heads() {
    let bad = |raw: &str| parse_response(raw.as_bytes(), &KEEP, None).unwrap_err();
    assert_eq!(
        bad("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
        BadResponse::Length
    );
    assert_eq!(
        bad("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"),
        BadResponse::Length
    );
    assert_eq!(
        bad("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
        BadResponse::Coding
    );
    assert_eq!(
        bad("HTTP/1.1 101 Switching\r\nUpgrade: x\r\n\r\n"),
        BadResponse::Upgrade
    );
    assert_eq!(bad("SSH-2.0\r\n\r\n"), BadResponse::Malformed);
    let endless = format!("HTTP/1.1 200 OK\r\nX: {}", "a".repeat(MAX_RESPONSE_HEAD));
    assert_eq!(bad(&endless), BadResponse::TooLarge);
    assert_eq!(
        parse_response(b"HTTP/1.1 200 OK\r\n", &KEEP, None),
        Ok(None)
    );
}

/// The response-head limits hold however the service's bytes arrive: a head of
/// `MAX_RESPONSE_HEAD` bytes passes and one byte more is refused, whether the parser sees it
/// whole (one write, with body bytes behind it) or grows it in pieces of any size; 256
/// header lines pass and 257 are refused by their count, in words that name it.
#[test]
fn the_response_head_limits_do_not_depend_on_how_the_bytes_arrive() {
    let head_of = |len: usize| {
        let start = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX: ";
        let pad = len - start.len() - "\r\n\r\n".len();
        format!("{start}{}\r\n\r\nok", "a".repeat(pad))
    };
    // What the parser says once it has `buf`, fed as pieces of the given sizes.
    let verdict = |buf: &[u8], pieces: &[usize]| {
        let mut seen = 0;
        for p in pieces.iter().copied().chain(std::iter::repeat(buf.len())) {
            seen = (seen + p).min(buf.len());
            match parse_response(&buf[..seen], &KEEP, None) {
                Ok(None) if seen < buf.len() => continue,
                other => return other.map(|h| h.map(|h| h.head_len)),
            }
        }
        unreachable!()
    };
    let mut rng = fastrand::Rng::with_seed(7);
    for len in [
        MAX_RESPONSE_HEAD - 1,
        MAX_RESPONSE_HEAD,
        MAX_RESPONSE_HEAD + 1,
        MAX_RESPONSE_HEAD + 5_000,
        2 * MAX_RESPONSE_HEAD,
    ] {
        let raw = head_of(len);
        let want = if len <= MAX_RESPONSE_HEAD {
            Ok(Some(len))
        } else {
            Err(BadResponse::TooLarge)
        };
        assert_eq!(
            verdict(raw.as_bytes(), &[]),
            want,
            "{len} bytes in one write"
        );
        for _ in 0..20 {
            let pieces: Vec<usize> = (0..8).map(|_| rng.usize(1..40_000)).collect();
            assert_eq!(
                verdict(raw.as_bytes(), &pieces),
                want,
                "{len} bytes in pieces {pieces:?}"
            );
        }
    }
    let lines = |n: usize| {
        let mut head = String::from("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n");
        for i in 1..n {
            head.push_str(&format!("X-{i}: v\r\n"));
        }
        head + "\r\n"
    };
    assert!(matches!(
        parse_response(lines(256).as_bytes(), &KEEP, None),
        Ok(Some(_))
    ));
    let refused = parse_response(lines(257).as_bytes(), &KEEP, None).unwrap_err();
    assert_eq!(refused, BadResponse::TooManyHeaders);
    assert_eq!(
        refused.to_string(),
        "response head has more than 256 header lines"
    );
}

#[test]
fn the_downstream_head_declares_exactly_the_routers_framing() {
    let raw = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: keep-alive, X-Priv\r\n\
               X-Priv: 1\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\n\r\n";
    assert_eq!(
        down(raw, KEEP).1,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\ncontent-length: 2\r\n\r\n"
    );
    let close = Exchange {
        close: true,
        ..KEEP
    };
    assert_eq!(
        down(raw, close).1,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\ncontent-length: 2\r\nconnection: close\r\n\r\n"
    );
    // A Connection token cannot take the length away from a kept-alive client.
    let named = "HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 2\r\n\r\n";
    assert_eq!(
        down(named, KEEP).1,
        "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"
    );
    // Chunks with a length: the length goes (RFC 9112 §6.3); chunks are re-encoded.
    let both =
        "HTTP/1.1 200 OK\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\nTrailer: x\r\n\r\n";
    assert_eq!(
        down(both, KEEP).1,
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    let coded = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(
        down(coded, KEEP).1,
        "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n"
    );
    // A body that runs to close cannot claim a length.
    let gz = "HTTP/1.0 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 9\r\n\r\n";
    assert_eq!(
        down(gz, KEEP).1,
        "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\nconnection: close\r\n\r\n"
    );
    // An HTTP/1.0 client: de-chunked, to close.
    let old = Exchange {
        client_http10: true,
        ..KEEP
    };
    let ch = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(
        down(ch, old).1,
        "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n"
    );
    // An HTTP/1.0 client that asked to keep its connection is told it persists, when the
    // body has a length; one that did not ask is told it closes.
    let cl = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n";
    let (h, text) = down(cl, old);
    assert!(!h.close_client);
    assert_eq!(
        text,
        "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\n"
    );
    let old_close = Exchange { close: true, ..old };
    assert_eq!(
        down(cl, old_close).1,
        "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n"
    );
    // A HEAD answer keeps the length it announces.
    let head = Exchange {
        head_request: true,
        ..KEEP
    };
    assert_eq!(
        down("HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n", head).1,
        "HTTP/1.1 200 OK\r\ncontent-length: 42\r\n\r\n"
    );
    // An interim head is forwarded without closing anything.
    assert_eq!(
        down("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", close).1,
        "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
    );
    // A 101 keeps Upgrade and says connection: upgrade.
    let up = Exchange {
        upgrade: true,
        ..KEEP
    };
    assert_eq!(
        down(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-A: a\r\n\r\n",
            up
        )
        .1,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-A: a\r\nconnection: upgrade\r\n\r\n"
    );
}

/// Decodes `body` fed in pieces of `step` bytes; returns (consumed, payload, done).
fn decode(body: &[u8], step: usize) -> Result<(usize, Vec<u8>, bool), BadChunk> {
    let mut d = ChunkedDecoder::default();
    let mut payload = Vec::new();
    let mut used = 0;
    for piece in body.chunks(step.max(1)) {
        let n = d.advance(piece, |b| payload.extend_from_slice(b))?;
        used += n;
        if d.is_done() {
            break;
        }
        assert_eq!(n, piece.len(), "an unfinished body consumes every byte");
    }
    Ok((used, payload, d.is_done()))
}

#[test]
fn chunked_bodies_end_where_they_end() {
    let body =
        b"5\r\nhello\r\n1;ext=1\r\n \r\nA ; x=\"y\"\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\nNEXT";
    for step in 1..=body.len() {
        let (used, payload, done) = decode(body, step).unwrap();
        assert!(done, "step {step}");
        assert_eq!(used, body.len() - 4, "step {step}");
        assert_eq!(payload, b"hello 0123456789", "step {step}");
    }
    assert_eq!(decode(b"0\r\n\r\n", 1).unwrap(), (5, vec![], true));
    assert_eq!(decode(b"3\r\nab", 2).unwrap(), (5, b"ab".to_vec(), false));
    assert!(!decode(b"ffffffffffffffff\r\n", 3).unwrap().2);
}

#[test]
fn malformed_chunked_bodies() {
    for bad in [
        &b"\r\n"[..],
        b" 5\r\nhello\r\n",
        b"g\r\n",
        b"5\nhello\r\n",
        b"5 \r\nhello\r\n",
        b"5\r\rhello\r\n",
        b"1\r\nab\r\n",
        b"1\r\na\n\n",
        b"0\r\n\n",
        b"10000000000000000\r\n",
        b"0\r\nX\n",
        b"1;a\0b\r\n",
        b"0\r\nX: \x01\r\n\r\n",
        b"-1\r\n",
        b"0x5\r\n",
    ] {
        assert!(decode(bad, 1).is_err(), "{}", String::from_utf8_lossy(bad));
        assert!(
            decode(bad, bad.len()).is_err(),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    let long_ext = format!("1;{}\r\n", "e".repeat(5000));
    assert!(decode(long_ext.as_bytes(), 7).is_err());
    let long_trailers = format!("0\r\n{}", "X: y\r\n".repeat(20_000));
    assert!(decode(long_trailers.as_bytes(), 4096).is_err());
}

/// A random valid chunked body (extensions, trailers) and its payload.
fn random_chunked(rng: &mut fastrand::Rng) -> (Vec<u8>, Vec<u8>) {
    let mut body = Vec::new();
    let mut payload = Vec::new();
    for _ in 0..rng.usize(0..5) {
        let data: Vec<u8> = (0..rng.usize(1..60)).map(|_| rng.u8(..)).collect();
        let size = if rng.bool() {
            format!("{:x}", data.len())
        } else {
            format!("{:X}", data.len())
        };
        let ext = match rng.u8(0..4) {
            0 => ";a=b",
            1 => " ;q=\"x y\"",
            _ => "",
        };
        body.extend_from_slice(format!("{size}{ext}\r\n").as_bytes());
        body.extend_from_slice(&data);
        body.extend_from_slice(b"\r\n");
        payload.extend_from_slice(&data);
    }
    body.extend_from_slice(b"0\r\n");
    if rng.bool() {
        body.extend_from_slice(b"X-Trailer: 1\r\n");
    }
    body.extend_from_slice(b"\r\n");
    (body, payload)
}

/// Random valid chunked bodies in random pieces: decoded, they end exactly where they end with
/// the payload intact; re-encoded, they are plain chunks (no extension, no trailer) that decode
/// to the same payload.
#[test]
fn chunked_bodies_round_trip_in_any_pieces() {
    let (cases, seed, mut rng) = crate::test_util::fuzz_setup();
    for case in 0..cases / 4 {
        let (mut body, payload) = random_chunked(&mut rng);
        let end = body.len();
        body.extend_from_slice(b"NEXT REQUEST");
        let (mut d, mut out, mut used, mut at) = (ChunkedDecoder::default(), Vec::new(), 0, 0);
        while !d.is_done() && at < body.len() {
            let step = rng.usize(1..=16).min(body.len() - at);
            let n = d
                .rechunk(&body[at..at + step], &mut out)
                .unwrap_or_else(|e| panic!("seed {seed} case {case}: {e} in {body:?}"))
                .used;
            used += n;
            at += step;
        }
        assert!(d.is_done(), "seed {seed} case {case}: no end in {body:?}");
        assert_eq!(used, end, "seed {seed} case {case}: wrong end in {body:?}");
        let (n, again, done) = decode(&out, out.len()).unwrap();
        assert!(done && n == out.len(), "seed {seed} case {case}: {out:?}");
        assert_eq!(again, payload, "seed {seed} case {case}");
        let text = String::from_utf8_lossy(&out);
        assert!(
            !text.contains(';') || payload.contains(&b';'),
            "seed {seed} case {case}"
        );
        assert!(out.ends_with(LAST_CHUNK), "seed {seed} case {case}");
    }
}

/// Random bytes never panic any parser or writer. `make fuzz` runs 1,000,000 cases
/// (`HERO_FUZZ_CASES`).
#[test]
fn wire_parsers_never_panic() {
    let (cases, seed, mut rng) = crate::test_util::fuzz_setup();
    let pieces: [&[u8]; 28] = [
        b"GET ",
        b"POST ",
        b"HTTP/1.1 ",
        b"HTTP/1.1",
        b"HTTP/1.0",
        b"200 OK",
        b"/a/b",
        b"http://h",
        b"?q",
        b"\r\n",
        b"\n",
        b"\r",
        b": ",
        b"Content-Length",
        b"Transfer-Encoding",
        b"chunked",
        b"Connection",
        b"Host",
        b"close, x",
        b"0",
        b"ff",
        b";e",
        b" ",
        b"\0",
        b"\xff",
        b"101",
        b"X-Hero-Claims",
        b"X_Forwarded_For",
    ];
    for case in 0..cases {
        let raw: Vec<u8> = (0..rng.usize(1..24))
            .flat_map(|_| pieces[rng.usize(..pieces.len())].iter().copied())
            .collect();
        let ex = Exchange {
            head_request: rng.bool(),
            client_http10: rng.bool(),
            close: rng.bool(),
            upgrade: rng.bool(),
        };
        let outcome = std::panic::catch_unwind(|| {
            let mut slots = header_slots();
            if let Ok(Some(head)) = parse_request(&raw, &LIMITS, &mut slots) {
                let mut out = Vec::new();
                write_upstream_head(&head, "/x", None, &fwd(Some("1.2.3.4"), false), &mut out);
            }
            let mut out = Vec::new();
            let _ = parse_response(&raw, &ex, Some(&mut out));
            let _ = ChunkedDecoder::default().rechunk(&raw, &mut out);
        });
        assert!(outcome.is_ok(), "seed {seed} case {case}: panic on {raw:?}");
    }
}

/// The router's own requests, read back by httparse (an implementation the writer does not
/// share): what a service parses is what the router meant, for generated requests. Bytes a
/// caller should never pass (CR, LF, NUL in a name, value or target) come out as spaces, so
/// they can never end a line early.
#[test]
fn own_requests_round_trip_through_an_independent_parser() {
    let (cases, seed, mut rng) = crate::test_util::fuzz_setup();
    let pieces = [
        "a", "/", "%20", "-", "?", "=", "&", "\r", "\n", "\0", " ", "é", "x_y", ":",
    ];
    let text = |rng: &mut fastrand::Rng, max: usize| -> String {
        (0..rng.usize(1..=max))
            .map(|_| pieces[rng.usize(..pieces.len())])
            .collect()
    };
    let names = ["accept", "user-agent", "content-type", "x-test"];
    for case in 0..cases {
        let method = ["GET", "HEAD", "POST"][rng.usize(..3)];
        let path = format!("/{}", text(&mut rng, 6));
        let values: Vec<String> = (0..rng.usize(0..4)).map(|_| text(&mut rng, 8)).collect();
        let headers: Vec<(&str, &str)> = values
            .iter()
            .enumerate()
            .map(|(i, v)| (names[i], v.trim()))
            .collect();
        let body: Vec<u8> = match method {
            "POST" => (0..rng.usize(0..64)).map(|_| rng.u8(..)).collect(),
            _ => Vec::new(),
        };
        let req = OwnRequest {
            method,
            path: &path,
            headers: &headers,
            body: &body,
            close: rng.bool(),
            idempotent: rng.bool(),
        };
        let mut out = Vec::new();
        write_request(&mut out, &req);
        let mut slots = [httparse::EMPTY_HEADER; 16];
        let mut parsed = httparse::Request::new(&mut slots);
        let ctx = || {
            format!(
                "seed {seed} case {case}: {:?}",
                String::from_utf8_lossy(&out)
            )
        };
        let Ok(httparse::Status::Complete(head_len)) = parsed.parse(&out) else {
            panic!("{}: not a complete request head", ctx());
        };
        let clean = |s: &str| s.replace(['\r', '\n', '\0'], " ");
        assert_eq!(parsed.method, Some(method), "{}", ctx());
        let target: String = path
            .bytes()
            .map(|b| match b {
                b'!'..=b'~' => char::from(b).to_string(),
                b => format!("%{b:02X}"),
            })
            .collect();
        assert_eq!(parsed.path, Some(target.as_str()), "{}", ctx());
        let got = |name: &str| -> Vec<&[u8]> {
            parsed
                .headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value)
                .collect()
        };
        assert_eq!(got("host"), [b"localhost"], "{}", ctx());
        for (name, value) in &headers {
            let want = clean(value);
            assert_eq!(got(name), [want.trim().as_bytes()], "{}", ctx());
        }
        let length = got("content-length");
        if method == "POST" || !body.is_empty() {
            assert_eq!(length, [body.len().to_string().as_bytes()], "{}", ctx());
        } else {
            assert!(length.is_empty(), "{}", ctx());
        }
        let close = got("connection");
        assert_eq!(close.len(), usize::from(req.close), "{}", ctx());
        assert_eq!(&out[head_len..], &body[..], "{}", ctx());
    }
}

/// An answer of the router's own with no body by its status (204, 304) says no length and no
/// transfer coding (RFC 9110 §8.6); every other status says how its body is framed.
#[test]
fn a_bodiless_status_declares_no_body_framing() {
    for (status, framed) in [(204, false), (304, false), (200, true), (404, true)] {
        for body in [OwnBody::Length(0), OwnBody::Chunked] {
            let mut out = Vec::new();
            write_own_head_framed(&mut out, status, &[("x-a", "b")], body, Persist::KeepAlive);
            let text = String::from_utf8(out).unwrap().to_ascii_lowercase();
            let says =
                text.contains("\r\ncontent-length:") || text.contains("\r\ntransfer-encoding:");
            assert_eq!(says, framed, "{status} {body:?}: {text}");
        }
    }
}

/// `parse_length` folds the digits itself: it agrees with the standard library's parser on
/// what it accepts and on the value, for every length up to the 19 digits it takes and past
/// them, digits or not.
#[test]
fn parse_length_agrees_with_the_standard_parser() {
    let (cases, seed, mut rng) = crate::test_util::fuzz_setup();
    let reference = |v: &[u8]| -> Option<u64> {
        if v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(v).ok()?.parse().ok()
    };
    let edges: [&[u8]; 7] = [
        b"0",
        b"0000000000000000000",
        b"9999999999999999999",
        b"18446744073709551615",
        b"",
        b"+1",
        b"1 ",
    ];
    for v in edges {
        assert_eq!(
            parse_length(v),
            reference(v),
            "{:?}",
            String::from_utf8_lossy(v)
        );
    }
    assert_eq!(
        parse_length(b"9999999999999999999"),
        Some(9_999_999_999_999_999_999)
    );
    for case in 0..cases {
        let len = rng.usize(0..=21);
        let v: Vec<u8> = (0..len)
            .map(|_| match rng.u8(0..20) {
                0 => rng.u8(..),
                _ => b'0' + rng.u8(0..10),
            })
            .collect();
        assert_eq!(
            parse_length(&v),
            reference(&v),
            "seed {seed} case {case}: {v:?}"
        );
    }
}

/// The hop-by-hop headers of RFC 9110 §7.6.1 (and `Proxy-Connection`, `Keep-Alive`), as a
/// list: the oracle of `is_hop_by_hop`.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
];

/// `is_hop_by_hop` picks by length: it says yes to exactly the names of `HOP_BY_HOP`, in any
/// case, and no to their near misses.
#[test]
fn hop_by_hop_agrees_with_the_list() {
    for h in HOP_BY_HOP {
        assert!(is_hop_by_hop(h), "{h}");
        assert!(is_hop_by_hop(&h.to_ascii_uppercase()), "{h}");
        let mut near = h.to_owned();
        near.push('s');
        assert!(!is_hop_by_hop(&near), "{near}");
        assert!(!is_hop_by_hop(&h[1..]), "{h}");
        let swapped = h.replace('-', "_");
        assert_eq!(is_hop_by_hop(&swapped), swapped == h, "{swapped}");
    }
    let (cases, seed, mut rng) = crate::test_util::fuzz_setup();
    let letters = b"aceiknoprtxyz-_";
    for case in 0..cases {
        // Half the names are listed ones in random case, one letter changed now and then.
        let name: String = if rng.bool() {
            let h = HOP_BY_HOP[rng.usize(..HOP_BY_HOP.len())].as_bytes();
            let change = rng.usize(..h.len() * 3);
            h.iter()
                .enumerate()
                .map(|(i, &b)| match i == change {
                    true => char::from(letters[rng.usize(..letters.len())]),
                    false if rng.bool() => char::from(b.to_ascii_uppercase()),
                    false => char::from(b),
                })
                .collect()
        } else {
            (0..rng.usize(1..21))
                .map(|_| char::from(letters[rng.usize(..letters.len())]))
                .collect()
        };
        let listed = HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h));
        assert_eq!(
            is_hop_by_hop(&name),
            listed,
            "seed {seed} case {case}: {name}"
        );
    }
}

/// Header names the classification tests draw from: those the router treats specially (the
/// hop-by-hop and managed lists, framing, `Host`, `Expect`) and ordinary ones, as clients
/// spell them.
fn names() -> Vec<&'static str> {
    let special = ["host", "expect", "content-length", "service-worker-allowed"];
    let ordinary = [
        "content-type",
        "user-agent",
        "accept",
        "x-foo",
        "server",
        "date",
    ];
    HOP_BY_HOP
        .into_iter()
        .chain(former::MANAGED)
        .chain(special)
        .chain(ordinary)
        .chain(Read::ALL.map(Read::name))
        .collect()
}

/// A header name: one of [`names`] in random case, `-` and `_` swapped now and then, a letter
/// changed, added or dropped now and then; or random letters.
fn random_name(rng: &mut fastrand::Rng) -> String {
    let letters = b"acdefhiklnoprtxy-_";
    if rng.u8(..8) == 0 {
        return (0..rng.usize(1..24))
            .map(|_| char::from(letters[rng.usize(..letters.len())]))
            .collect();
    }
    let names = names();
    let base = names[rng.usize(..names.len())].as_bytes();
    let change = rng.usize(..base.len() * 4);
    let mut name: String = base
        .iter()
        .enumerate()
        .map(|(i, &b)| match (i == change, b) {
            (true, _) => char::from(letters[rng.usize(..letters.len())]),
            (false, b'-') if rng.u8(..6) == 0 => '_',
            (false, b) if rng.bool() => char::from(b.to_ascii_uppercase()),
            (false, b) => char::from(b),
        })
        .collect();
    match rng.u8(..16) {
        0 => name.push(char::from(letters[rng.usize(..letters.len())])),
        1 if name.len() > 1 => {
            name.pop();
        }
        _ => {}
    }
    name
}

/// `upstream_header` picks by length what the lists say: hop-by-hop, `Host`,
/// `Content-Length` and `Expect` dropped; the managed names in any spelling; nothing else.
#[test]
fn upstream_header_agrees_with_the_lists() {
    let (cases, seed, mut rng) = crate::test_util::fuzz_setup();
    let mut seen = [0usize; 3];
    for case in 0..cases {
        let name = random_name(&mut rng);
        let n = name.as_str();
        let expected = if is_hop_by_hop(n)
            || ["host", "content-length", "expect"]
                .iter()
                .any(|w| eq(n, w))
        {
            UpstreamHeader::Dropped
        } else if let Some(m) = former::MANAGED.iter().find(|m| former::eq_dashed(n, m)) {
            UpstreamHeader::Managed(m)
        } else {
            UpstreamHeader::Passes
        };
        seen[match expected {
            UpstreamHeader::Dropped => 0,
            UpstreamHeader::Managed(_) => 1,
            UpstreamHeader::Passes => 2,
        }] += 1;
        assert_eq!(upstream_header(n), expected, "seed {seed} case {case}: {n}");
    }
    assert!(seen.iter().all(|s| *s > 0), "every class drawn: {seen:?}");
}

/// `answer_header` picks by length what the lists say.
#[test]
fn answer_header_agrees_with_the_lists() {
    let (cases, seed, mut rng) = crate::test_util::fuzz_setup();
    let mut seen = std::collections::HashSet::new();
    for case in 0..cases {
        let name = random_name(&mut rng);
        let n = name.as_str();
        let expected = if eq(n, "content-length") {
            AnswerHeader::Length
        } else if eq(n, "transfer-encoding") {
            AnswerHeader::Coding
        } else if eq(n, "connection") {
            AnswerHeader::Connection
        } else if eq(n, "upgrade") {
            AnswerHeader::Upgrade
        } else if is_hop_by_hop(n) || eq(n, "x-request-id") || eq(n, "service-worker-allowed") {
            AnswerHeader::Dropped
        } else {
            AnswerHeader::Passes
        };
        seen.insert(format!("{expected:?}"));
        assert_eq!(answer_header(n), expected, "seed {seed} case {case}: {n}");
    }
    assert_eq!(seen.len(), 6, "every class drawn: {seen:?}");
}

/// Header lines of a random head: names from [`random_name`], values with or without the
/// whitespace around them that a parser trims, now and then a line that ends in a bare LF.
fn random_lines(rng: &mut fastrand::Rng, out: &mut Vec<u8>) {
    let values = [
        "a",
        "",
        "close",
        "keep-alive",
        "keep-alive, x-foo",
        "upgrade",
        "Upgrade, X-Hero-Claims",
        "chunked",
        "gzip, chunked",
        "5",
        "1.2.3.4",
        "text/html; q=1",
        "00-11111111111111111111111111111111-2222222222222222-01",
        "websocket",
    ];
    let spaces = ["", " ", "  ", "\t", " \t "];
    for _ in 0..rng.usize(0..9) {
        out.extend_from_slice(random_name(rng).as_bytes());
        out.push(b':');
        out.extend_from_slice(spaces[rng.usize(..spaces.len())].as_bytes());
        out.extend_from_slice(values[rng.usize(..values.len())].as_bytes());
        out.extend_from_slice(spaces[rng.usize(..spaces.len())].as_bytes());
        out.extend_from_slice(if rng.u8(..8) == 0 { b"\n" } else { b"\r\n" });
    }
}

/// True if every line of `head` ends in CRLF.
fn crlf_only(head: &[u8]) -> bool {
    head.iter()
        .enumerate()
        .all(|(i, b)| *b != b'\n' || (i > 0 && head[i - 1] == b'\r'))
}

/// A head as a service or a client parses it: the first line's parts and the header fields.
type Heard = (String, Vec<(String, Vec<u8>)>);

fn fields(headers: &[httparse::Header<'_>]) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .map(|h| (h.name.to_owned(), h.value.to_vec()))
        .collect()
}

fn heard_request(raw: &[u8]) -> Heard {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    assert!(
        matches!(req.parse(raw), Ok(httparse::Status::Complete(n)) if n == raw.len()),
        "{:?}",
        String::from_utf8_lossy(raw)
    );
    let line = format!("{:?} {:?} {:?}", req.method, req.path, req.version);
    (line, fields(req.headers))
}

fn heard_response(raw: &[u8]) -> Heard {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    assert!(
        matches!(resp.parse(raw), Ok(httparse::Status::Complete(n)) if n == raw.len()),
        "{:?}",
        String::from_utf8_lossy(raw)
    );
    let line = format!("{:?} {:?} {:?}", resp.version, resp.code, resp.reason);
    (line, fields(resp.headers))
}

/// The one-pass upstream head says what the former writer said, header for header, as a
/// service parses both, for random heads; and ends every line in CRLF. `make fuzz` runs
/// 1,000,000 cases.
#[test]
fn upstream_head_agrees_with_the_former_writer() {
    let (cases, seed, mut rng) = crate::test_util::fuzz_setup();
    let mut parsed = 0;
    for case in 0..cases {
        let mut raw = b"POST /x HTTP/1.1\r\n".to_vec();
        random_lines(&mut rng, &mut raw);
        raw.extend_from_slice(b"Host: h\r\n");
        random_lines(&mut rng, &mut raw);
        raw.extend_from_slice(b"\r\n");
        let mut slots = header_slots();
        let Ok(Some(head)) = parse_request(&raw, &LIMITS, &mut slots) else {
            continue;
        };
        parsed += 1;
        let fwd = Forwarding {
            keep_tracestate: rng.bool(),
            ..fwd(rng.bool().then_some("1.2.3.4"), rng.bool())
        };
        let (mut now, mut then) = (Vec::new(), Vec::new());
        write_upstream_head(&head, "/rest", Some("q=1"), &fwd, &mut now);
        former::write_upstream_head(&head, "/rest", Some("q=1"), &fwd, &mut then);
        let raw = String::from_utf8_lossy(&raw);
        assert!(crlf_only(&now), "seed {seed} case {case}: {raw:?}");
        assert_eq!(
            heard_request(&now),
            heard_request(&then),
            "seed {seed} case {case}: {raw:?}"
        );
    }
    assert!(parsed > cases / 4, "{parsed} of {cases} heads parsed");
}

/// `RequestHead::every` finds what a search of every header field finds, in the same order,
/// whichever of the headers it reads a head has. `make fuzz` runs 1,000,000 cases.
#[test]
fn every_agrees_with_a_search_of_the_headers() {
    let (cases, seed, mut rng) = crate::test_util::fuzz_setup();
    let mut found = [0usize; Read::ALL.len()];
    for case in 0..cases {
        let mut raw = b"GET /x HTTP/1.1\r\nHost: h\r\n".to_vec();
        random_lines(&mut rng, &mut raw);
        raw.extend_from_slice(b"\r\n");
        let mut slots = header_slots();
        let Ok(Some(head)) = parse_request(&raw, &LIMITS, &mut slots) else {
            continue;
        };
        for (i, read) in Read::ALL.into_iter().enumerate() {
            let searched: Vec<&[u8]> = head
                .headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case(read.name()))
                .map(|h| h.value)
                .collect();
            found[i] += usize::from(!searched.is_empty());
            let every: Vec<&[u8]> = head.every(read).collect();
            let raw = String::from_utf8_lossy(&raw);
            assert_eq!(
                every, searched,
                "seed {seed} case {case}: {read:?} in {raw:?}"
            );
        }
    }
    assert!(
        found.iter().all(|n| *n > 0),
        "each header found in some head: {found:?}"
    );
}

/// Likewise for the head of an answer: the same outcome, and the same head as a client
/// parses it. `make fuzz` runs 1,000,000 cases.
#[test]
fn answer_head_agrees_with_the_former_writer() {
    let (cases, seed, mut rng) = crate::test_util::fuzz_setup();
    let mut written = 0;
    for case in 0..cases {
        let status = [200, 101, 100, 103, 204, 304, 404][rng.usize(..7)];
        let version = if rng.u8(..4) == 0 { "1.0" } else { "1.1" };
        let mut raw = format!("HTTP/{version} {status} Reason\r\n").into_bytes();
        random_lines(&mut rng, &mut raw);
        raw.extend_from_slice(b"\r\n");
        let ex = Exchange {
            head_request: rng.u8(..4) == 0,
            client_http10: rng.u8(..4) == 0,
            close: rng.u8(..4) == 0,
            upgrade: rng.bool(),
        };
        let (mut now, mut then) = (Vec::new(), Vec::new());
        let outcome = parse_response(&raw, &ex, Some(&mut now));
        let shown = String::from_utf8_lossy(&raw);
        assert_eq!(
            outcome,
            former::parse_response(&raw, &ex, Some(&mut then)),
            "seed {seed} case {case}: {shown:?}"
        );
        if let Ok(Some(_)) = outcome {
            written += 1;
            assert!(crlf_only(&now), "seed {seed} case {case}: {shown:?}");
            assert_eq!(
                heard_response(&now),
                heard_response(&then),
                "seed {seed} case {case}: {shown:?}"
            );
        }
    }
    assert!(written > cases / 4, "{written} of {cases} heads written");
}

/// The table-driven authority check says what the former byte-by-byte one said, for random
/// authorities: names, IPv4 and IPv6 literals, ports, and bytes no authority has.
#[test]
fn authority_check_agrees_with_the_former() {
    let (cases, seed, mut rng) = crate::test_util::fuzz_setup();
    let pieces = [
        "a",
        "Z",
        "0",
        "9",
        "-",
        ".",
        "_",
        "~",
        "%",
        "!",
        "$",
        "'",
        "(",
        "*",
        "=",
        ":",
        ":",
        "[",
        "]",
        "::1",
        "v",
        "/",
        "@",
        " ",
        "\t",
        "\"",
        "\0",
        "\u{e9}",
        "localhost",
        "127.0.0.1",
        "65535",
        "65536",
        "99999",
        "00080",
        "8080",
    ];
    let mut valid = 0;
    for case in 0..cases {
        let v: String = (0..rng.usize(0..8))
            .map(|_| pieces[rng.usize(..pieces.len())])
            .collect();
        let expected = former::valid_authority(v.as_bytes());
        valid += usize::from(expected);
        assert_eq!(
            valid_authority(v.as_bytes()),
            expected,
            "seed {seed} case {case}: {v:?}"
        );
    }
    assert!(valid > 0 && valid < cases, "{valid} of {cases} valid");
}

/// The word-at-a-time `eq` says what `eq_ignore_ascii_case` says, for every length across the
/// word boundaries and bytes next to the letters' range (`` ` ``, `{`, `@`, `[`, `_`, `-`).
#[test]
fn name_comparison_agrees_with_the_standard_one() {
    let (cases, seed, mut rng) = crate::test_util::fuzz_setup();
    let wants = b"az-_09`{@[~ ";
    let mut equal = 0;
    for case in 0..cases {
        let want: String = (0..rng.usize(0..25))
            .map(|_| char::from(wants[rng.usize(..wants.len())]))
            .collect();
        // The same name in another case, a byte changed now and then, or another length.
        let mut name: Vec<u8> = want
            .bytes()
            .map(|b| match rng.u8(..4) {
                0 => b.to_ascii_uppercase(),
                1 if rng.u8(..8) == 0 => b ^ (1 << rng.u8(..8)),
                _ => b,
            })
            .collect();
        if rng.u8(..16) == 0 {
            name.push(b'a');
        }
        let Ok(name) = String::from_utf8(name) else {
            continue;
        };
        let expected = name.eq_ignore_ascii_case(&want);
        equal += usize::from(expected);
        assert_eq!(
            eq(&name, &want),
            expected,
            "seed {seed} case {case}: {name:?} {want:?}"
        );
    }
    assert!(equal > 0 && equal < cases, "{equal} of {cases} equal");
}
