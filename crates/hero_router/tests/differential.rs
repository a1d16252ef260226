//! Differential property test of the front door: random sequences of requests with adversarial
//! framing go through the router over TCP to a capture service whose HTTP/1.1 parser is an
//! independent one (hyper's server). What the service parsed is compared with what the client
//! meant, request by request.
//!
//! Each case is one client connection carrying 1–4 requests, written in random pieces (so heads
//! and bodies are split across reads at random points), pipelined or one at a time, and
//! sometimes cut short. Every request is either valid (the router must deliver exactly it) or
//! invalid by RFC 9112 (ambiguous length, a framing header named in `Connection`, no or two
//! `Host`, bad chunks, unsupported codings, malformed lines): the router must refuse it with a
//! 4xx/5xx of its own and close, and nothing after it on that connection may reach a service.
//! Bodies often carry a complete second request, the smuggling payload.
//!
//! Invariants:
//! - every request the service parsed carries exactly one test id, of a valid request that the
//!   client sent whole, and each such request is parsed exactly once, with its method, path,
//!   query and body intact and the router's `X-Forwarded-Prefix` and `X-Forwarded-For`;
//! - no client-sent `X-Hero-*` or `X-Forwarded-*` (in any spelling) and no header named in
//!   `Connection` reaches the service;
//! - every client gets exactly its own answers, in order, each with its own framing intact;
//!   a refused request gets the router's error and then the end of the connection;
//! - nothing panics: the router still answers at the end.
//!
//! `HERO_FUZZ_CASES` sets the number of cases (default 2,000; `make fuzz` runs 1,000,000),
//! `HERO_FUZZ_SEED` replays a seed, `HERO_FUZZ_CASE` runs one case of it. Failures print both.

mod common;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::{serve_config, service_dir, start_daemon};

/// What the capture service parsed of one request.
#[derive(Debug, Clone)]
struct Parsed {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Parsed {
    fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

type Log = Arc<Mutex<Vec<Parsed>>>;

/// The capture service: hyper's HTTP/1.1 server on `<root>/cap/rpc.sock`. It records every
/// request it parses whole and answers `id=<ids>;len=<body length>`, in one of four response
/// styles chosen by the id: a length, chunks, or either with a `Connection` header that names
/// a header (which must not reach the client) or a framing header (which must not matter).
fn capture(root: &std::path::Path) -> Log {
    let log: Log = Arc::default();
    let l = tokio::net::UnixListener::bind(service_dir(root, "cap").join("rpc.sock")).unwrap();
    let seen = log.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let seen = seen.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let headers = parts
                                .headers
                                .iter()
                                .map(|(n, v)| {
                                    let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
                                    (n.as_str().to_owned(), v)
                                })
                                .collect::<Vec<_>>();
                            // A body the service cannot read whole is not a request it serves.
                            let body = body.collect().await?.to_bytes().to_vec();
                            let p = Parsed {
                                method: parts.method.to_string(),
                                target: parts.uri.to_string(),
                                headers,
                                body,
                            };
                            let ids = p.all("x-test-id").join(",");
                            let text = format!("id={ids};len={}", p.body.len());
                            let style = style(&ids);
                            seen.lock().unwrap().push(p);
                            let mut resp = hyper::Response::builder().status(200);
                            if style >= 2 {
                                resp = resp
                                    .header("connection", "x-priv, content-length")
                                    .header("x-priv", "secret");
                            }
                            let body = if style.is_multiple_of(2) {
                                Full::new(Bytes::from(text)).map_err(|e| match e {}).boxed()
                            } else {
                                let (a, b) = text.split_at(text.len() / 2);
                                let frames = [Bytes::from(a.to_owned()), Bytes::from(b.to_owned())]
                                    .map(|b| Ok::<_, Infallible>(Frame::data(b)));
                                StreamBody::new(futures_util::stream::iter(frames)).boxed()
                            };
                            Ok::<_, hyper::Error>(resp.body(body).unwrap())
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    log
}

/// The capture service's response style for a request with these ids: 0 and 2 answer with
/// a length, 1 and 3 in chunks; 2 and 3 with a `Connection` header naming headers.
fn style(ids: &str) -> u64 {
    ids.bytes().map(u64::from).sum::<u64>() % 4
}

/// One generated request.
#[derive(Debug, Clone)]
struct Req {
    id: u64,
    wire: Vec<u8>,
    /// The router must refuse it (and close).
    invalid: Option<&'static str>,
    /// Valid, and the connection ends after its answer.
    closes: bool,
    /// HTTP/1.0: a kept connection must be told so (`connection: keep-alive`).
    http10: bool,
    method: &'static str,
    /// The upstream request target the service must see.
    target: String,
    body: Vec<u8>,
}

const SMUGGLED: &[u8] =
    b"GET /cap/rpc/smuggled HTTP/1.1\r\nHost: x\r\nX-Hero-Claims: admin\r\n\r\n";

fn random_body(rng: &mut fastrand::Rng) -> Vec<u8> {
    match rng.u8(0..5) {
        0 => Vec::new(),
        1 => SMUGGLED.to_vec(),
        2 => {
            let mut b = SMUGGLED.to_vec();
            b.extend((0..rng.usize(0..300)).map(|_| rng.u8(..)));
            b
        }
        _ => (0..rng.usize(1..2000)).map(|_| rng.u8(..)).collect(),
    }
}

/// Encodes `body` as chunks of random sizes, with random extensions and trailers.
fn chunked(rng: &mut fastrand::Rng, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let n = rng.usize(1..=rest.len().min(700));
        let size = if rng.bool() {
            format!("{n:x}")
        } else {
            format!("{n:X}")
        };
        let ext = ["", "", ";a=b", " ;q=\"x y\"", ";n"][rng.usize(..5)];
        out.extend_from_slice(format!("{size}{ext}\r\n").as_bytes());
        out.extend_from_slice(&rest[..n]);
        out.extend_from_slice(b"\r\n");
        rest = &rest[n..];
    }
    out.extend_from_slice(b"0\r\n");
    if rng.u8(0..4) == 0 {
        out.extend_from_slice(b"X-Trailer: t\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn generate(rng: &mut fastrand::Rng, id: u64) -> Req {
    let method = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"][rng.usize(..6)];
    let query = if rng.bool() {
        format!("?q={}", rng.u32(..))
    } else {
        String::new()
    };
    let target = format!("/t/{id}{query}");
    // An absolute-form target names the host itself (its Host header is not looked at); one
    // naming another site is refused (docs/access-and-security.md#host-check).
    let absolute = match rng.u8(0..32) {
        0..=3 => Some("node.local"),
        4 => Some("attacker.example"),
        _ => None,
    };
    let request_target = match absolute {
        Some(authority) => format!("http://{authority}/cap/rpc{target}"),
        None => format!("/cap/rpc{target}"),
    };
    let http10 = rng.u8(0..10) == 0;
    let mut body = random_body(rng);
    if method == "HEAD" {
        body.clear();
    }
    let mut invalid = None;
    let mut closes = http10;
    let mut lines: Vec<String> = Vec::new();
    // Host: exactly one on HTTP/1.1, and one of the router's names.
    match rng.u8(0..16) {
        0 if !http10 => invalid = Some("no host"),
        0 => {}
        1 => {
            lines.push("Host: localhost".into());
            lines.push("Host: y".into());
            invalid = Some("two hosts");
        }
        2 if absolute.is_none() => {
            lines.push("Host: attacker.example:9988".into());
            invalid = Some("a name that is not the router's");
        }
        _ => lines.push(
            [
                "Host: localhost",
                "host: node.local:9988",
                "HOST: 127.0.0.1:1",
            ][rng.usize(..3)]
            .into(),
        ),
    }
    if absolute == Some("attacker.example") && invalid.is_none() {
        invalid = Some("an absolute target naming another site");
    }
    lines.push(format!("X-Test-Id: {id}"));
    // Headers the service must never see from a TCP client.
    for h in [
        "X-Hero-Claims: admin",
        "X_Hero_Claims: admin",
        "x-hero-context: ctx",
        "X-Forwarded-For: 6.6.6.6",
        "X_Forwarded_For: 6.6.6.6",
        "X-Forwarded-Prefix: /evil",
        "Forwarded: for=6.6.6.6;host=evil.example;proto=https",
        "X-Forwarded-Host: evil.example",
        "X-Forwarded-Proto: https",
        "X-Real-IP: 6.6.6.6",
        "X_Real_IP: 6.6.6.6",
    ] {
        if rng.u8(0..3) == 0 {
            lines.push(h.into());
        }
    }
    // HTTP/1.0 keeps its connection only when it asks, and only if the answer can end
    // without a close: a chunked answer is de-chunked for it and runs to the close.
    let keeps_10 = style(&id.to_string()).is_multiple_of(2) || method == "HEAD";
    match rng.u8(0..8) {
        0 => {
            lines.push("Connection: keep-alive, X-Private".into());
            lines.push("X-Private: secret".into());
            closes = http10 && !keeps_10;
        }
        5 | 6 if http10 => {
            lines.push(["Connection: keep-alive", "connection: Keep-Alive"][rng.usize(..2)].into());
            closes = !keeps_10;
        }
        1 => {
            lines.push("Connection: close".into());
            closes = true;
        }
        2 if !http10 => {
            lines.push("Connection: upgrade".into());
            lines.push("Upgrade: websocket".into());
        }
        3 => lines.push("Upgrade: h2c".into()),
        4 if !http10 => lines.push("Expect: 100-continue".into()),
        _ => {}
    }
    // The body's framing: valid ones, then the ambiguous and malformed ones.
    let framing = rng.u8(0..30);
    let wire_body = match framing {
        0..=9 => {
            if !body.is_empty() || rng.bool() {
                lines.push(format!("Content-Length: {}", body.len()));
            }
            body.clone()
        }
        10..=15 if !http10 => {
            let te = ["chunked", "Chunked", "CHUNKED", " chunked "][rng.usize(..4)];
            lines.push(format!("Transfer-Encoding: {te}"));
            chunked(rng, &body)
        }
        10..=15 => {
            lines.push("Transfer-Encoding: chunked".into());
            invalid = Some("chunked in HTTP/1.0");
            chunked(rng, &body)
        }
        16 => {
            lines.push(format!("Content-Length: {}", body.len()));
            lines.push("Transfer-Encoding: chunked".into());
            invalid = Some("length and chunks");
            chunked(rng, &body)
        }
        17 => {
            lines.push(format!("Content-Length: {}", body.len()));
            lines.push(format!("Content-Length: {}", body.len()));
            invalid = Some("two lengths");
            body.clone()
        }
        18 => {
            lines.push(format!("Content-Length: {}", body.len()));
            lines.push(format!("Content-Length: {}", body.len() + 1));
            invalid = Some("two different lengths");
            body.clone()
        }
        19 => {
            let bad = ["+", "0x", "-", "1 "][rng.usize(..4)];
            lines.push(format!("Content-Length: {bad}{}", body.len()));
            invalid = Some("bad length");
            body.clone()
        }
        20 => {
            lines.push(format!("Content-Length: {}", body.len()));
            lines.push("Connection: Content-Length".into());
            invalid = Some("length named in Connection");
            body.clone()
        }
        21 => {
            lines.push("Transfer-Encoding: chunked".into());
            lines.push("Connection: close, transfer-encoding".into());
            invalid = Some("coding named in Connection");
            chunked(rng, &body)
        }
        22 => {
            let te = [
                "chunked, chunked",
                "gzip, chunked",
                "chunked, gzip",
                "identity",
            ][rng.usize(..4)];
            lines.push(format!("Transfer-Encoding: {te}"));
            invalid = Some("unsupported coding");
            chunked(rng, &body)
        }
        23 => {
            lines.push("Transfer-Encoding: chunked".into());
            lines.push("Transfer-Encoding: chunked".into());
            invalid = Some("two codings");
            chunked(rng, &body)
        }
        24 => {
            lines.push("Transfer-Encoding : chunked".into());
            invalid = Some("space before colon");
            chunked(rng, &body)
        }
        25 => {
            lines.push("X-Folded: a".into());
            lines.push(" b".into());
            invalid = Some("obs-fold");
            body.clone()
        }
        26 if !http10 => {
            lines.push("Transfer-Encoding: chunked".into());
            invalid = Some("bad chunk");
            let mut c = chunked(rng, &body);
            let bad: &[u8] = [
                &b"10000000000000000\r\nx\r\n"[..],
                b"5\nhello\r\n",
                b" 5\r\nhello\r\n",
                b"3\r\nhello\r\n",
                b"5 \r\nhello\r\n",
            ][rng.usize(..5)];
            // In front of the last chunk.
            let at = c.len()
                - if c.ends_with(b"X-Trailer: t\r\n\r\n") {
                    19
                } else {
                    5
                };
            c.splice(at..at, bad.iter().copied());
            c
        }
        _ => {
            if !body.is_empty() {
                lines.push(format!("Content-Length: {}", body.len()));
            }
            body.clone()
        }
    };
    if invalid.is_some() {
        closes = true;
    }
    rng.shuffle(&mut lines);
    // Obs-fold lines must follow the line they continue.
    if let Some(i) = lines.iter().position(|l| l == " b") {
        let l = lines.remove(i);
        let j = lines.iter().position(|l| l == "X-Folded: a").unwrap();
        lines.insert(j + 1, l);
    }
    let version = if http10 { "HTTP/1.0" } else { "HTTP/1.1" };
    let mut wire = format!("{method} {request_target} {version}\r\n").into_bytes();
    for l in &lines {
        wire.extend_from_slice(l.as_bytes());
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"\r\n");
    wire.extend_from_slice(&wire_body);
    Req {
        id,
        wire,
        invalid,
        closes,
        http10,
        method,
        target,
        body,
    }
}

/// A response as the client read it.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The test's own response reader (not the router's code): heads up to the blank line,
/// bodies by length, by chunks, or to the end. `Ok(None)` when the connection ended cleanly
/// before a response.
async fn read_answer(
    s: &mut tokio::net::tcp::OwnedReadHalf,
    buf: &mut Vec<u8>,
    head_request: bool,
) -> Result<Option<Answer>, String> {
    async fn more(s: &mut tokio::net::tcp::OwnedReadHalf, buf: &mut Vec<u8>) -> usize {
        let mut chunk = [0u8; 8192];
        let n = s.read(&mut chunk).await.unwrap_or(0);
        buf.extend_from_slice(&chunk[..n]);
        n
    }
    loop {
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if more(s, buf).await == 0 {
                return if buf.is_empty() {
                    Ok(None)
                } else {
                    Err(format!(
                        "cut in a response head: {:?}",
                        String::from_utf8_lossy(buf)
                    ))
                };
            }
        };
        let head = String::from_utf8(buf.drain(..end).collect()).map_err(|e| e.to_string())?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        let status: u16 = status_line
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {status_line:?}"))?;
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (n, v) = l.split_once(':').unwrap_or((l, ""));
                (n.to_ascii_lowercase(), v.trim().to_owned())
            })
            .collect();
        if (100..200).contains(&status) {
            continue;
        }
        let mut a = Answer {
            status,
            headers,
            body: Vec::new(),
        };
        let te = a.header("transfer-encoding").map(str::to_owned);
        let cl = a.header("content-length").map(str::to_owned);
        if te.is_some() && cl.is_some() {
            return Err(format!("both framings in {head:?}"));
        }
        if head_request {
            return Ok(Some(a));
        }
        if let Some(te) = te {
            if te != "chunked" {
                return Err(format!("transfer-encoding {te:?}"));
            }
            loop {
                let eol = loop {
                    if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                        break i;
                    }
                    if more(s, buf).await == 0 {
                        return Err("cut in a chunk size".into());
                    }
                };
                let line = String::from_utf8(buf.drain(..eol + 2).collect()).unwrap();
                let size = usize::from_str_radix(line.trim_end(), 16)
                    .map_err(|_| format!("chunk size line {line:?}"))?;
                while buf.len() < size + 2 {
                    if more(s, buf).await == 0 {
                        return Err("cut in a chunk".into());
                    }
                }
                if &buf[size..size + 2] != b"\r\n" {
                    return Err("chunk not ended by CRLF".into());
                }
                a.body.extend(buf.drain(..size));
                buf.drain(..2);
                if size == 0 {
                    break;
                }
            }
        } else if let Some(cl) = cl {
            let n: usize = cl.parse().map_err(|_| format!("content-length {cl:?}"))?;
            while buf.len() < n {
                if more(s, buf).await == 0 {
                    return Err("cut in a body".into());
                }
            }
            a.body = buf.drain(..n).collect();
        } else {
            while more(s, buf).await > 0 {}
            a.body = std::mem::take(buf);
        }
        return Ok(Some(a));
    }
}

/// Runs one case; returns the ids of the requests the service must have parsed.
async fn run_case(
    addr: std::net::SocketAddr,
    seed: u64,
    case: u64,
) -> Result<Vec<(u64, Req)>, String> {
    let mut rng = fastrand::Rng::with_seed(seed ^ case.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let reqs: Vec<Req> = (0..rng.u64(1..=4))
        .map(|i| generate(&mut rng, case * 8 + i))
        .collect();
    let mut wire: Vec<u8> = reqs.iter().flat_map(|r| r.wire.clone()).collect();
    // Sometimes the client stops sending part-way (and half-closes).
    let cut = (rng.u8(0..6) == 0).then(|| rng.usize(0..=wire.len()));
    if let Some(c) = cut {
        wire.truncate(c);
    }
    // Which requests went out whole.
    let mut whole = Vec::new();
    let mut at = 0;
    for r in &reqs {
        at += r.wire.len();
        whole.push(at <= wire.len());
    }
    let pipelined = rng.bool();
    let s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    s.set_nodelay(true).ok();
    let (mut rd, mut wr) = s.into_split();
    let pieces: Vec<usize> = {
        let mut cuts: Vec<usize> = (0..rng.usize(0..6))
            .map(|_| rng.usize(0..=wire.len()))
            .collect();
        cuts.sort_unstable();
        cuts
    };
    let bounds: Vec<usize> = reqs
        .iter()
        .scan(0, |at, r| {
            *at += r.wire.len();
            Some(*at)
        })
        .collect();
    let wire = Arc::new(wire);
    let (sent_tx, mut sent_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let (go_tx, mut go_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let w = wire.clone();
    let writer = tokio::spawn(async move {
        // Write in the chosen pieces; one at a time, wait for each answer before the next
        // request's bytes.
        let mut points: Vec<usize> = pieces;
        if !pipelined {
            points.extend(bounds.iter().copied().filter(|b| *b < w.len()));
        }
        points.push(w.len());
        points.sort_unstable();
        points.dedup();
        let mut from = 0;
        for p in points {
            if p > from {
                if wr.write_all(&w[from..p]).await.is_err() {
                    return;
                }
                from = p;
            }
            tokio::task::yield_now().await;
            if !pipelined && bounds.contains(&p) && p < w.len() {
                let _ = sent_tx.send(());
                if go_rx.recv().await.is_none() {
                    return;
                }
            }
        }
        drop(sent_tx);
        // Close only once the reader has every answer it is owed: a client that closes while
        // a request waits for the service has given up on it (the router abandons it).
        let _ = go_rx.recv().await;
        let _ = wr.shutdown().await;
    });
    let mut buf = Vec::new();
    let mut expect = Vec::new();
    let ctx = |what: String| format!("case {case}: {what}\n{reqs:#?}");
    for (i, r) in reqs.iter().enumerate() {
        if !pipelined && i > 0 {
            // The writer paused after the previous request; let it go on.
            let _ = sent_rx.recv().await;
            let _ = go_tx.send(());
        }
        if !whole[i] {
            // Cut short: no answer is owed, and the request must never reach the service.
            break;
        }
        let answer = tokio::time::timeout(
            Duration::from_secs(30),
            read_answer(&mut rd, &mut buf, r.method == "HEAD"),
        )
        .await
        .map_err(|_| ctx(format!("no answer to request {i} in 30 s")))?
        .map_err(|e| ctx(format!("request {i}: {e}")))?;
        let Some(a) = answer else {
            return Err(ctx(format!(
                "connection closed before the answer to request {i}"
            )));
        };
        if let Some(why) = r.invalid {
            if a.status < 400 || a.header("x-hero-router-error").is_none() {
                return Err(ctx(format!("request {i} ({why}) was not refused: {a:?}")));
            }
            if a.header("connection") != Some("close") {
                return Err(ctx(format!(
                    "refusal of request {i} keeps the connection: {a:?}"
                )));
            }
            break;
        }
        if a.status != 200 {
            return Err(ctx(format!("valid request {i} got {a:?}")));
        }
        let told = a.header("connection");
        if r.http10 && told != Some(if r.closes { "close" } else { "keep-alive" }) {
            return Err(ctx(format!(
                "HTTP/1.0 request {i} (closes: {}) was told connection {told:?}",
                r.closes
            )));
        }
        if a.header("x-priv").is_some() {
            return Err(ctx(format!(
                "a header named in the service's Connection leaked: {a:?}"
            )));
        }
        if r.method != "HEAD" {
            let want = format!("id={};len={}", r.id, r.body.len());
            if a.body != want.as_bytes() {
                return Err(ctx(format!(
                    "request {i} got someone else's answer: {:?}, want {want:?}",
                    String::from_utf8_lossy(&a.body)
                )));
            }
        }
        expect.push((r.id, r.clone()));
        if r.closes {
            break;
        }
    }
    drop(go_tx);
    // After the last answer the router closes or waits for more; either way no more answers.
    let _ = writer.await;
    Ok(expect)
}

fn check_parsed(p: &Parsed, r: &Req) -> Result<(), String> {
    let err = |what: String| Err(format!("request {}: {what}\n{p:#?}\n{r:#?}", r.id));
    if p.method != r.method {
        return err(format!("method {}", p.method));
    }
    if p.target != r.target {
        return err(format!("target {}", p.target));
    }
    if p.body != r.body {
        return err(format!(
            "body of {} bytes, want {}",
            p.body.len(),
            r.body.len()
        ));
    }
    if p.all("x-forwarded-prefix") != ["/cap/rpc"] {
        return err("x-forwarded-prefix".into());
    }
    if p.all("x-forwarded-for") != ["127.0.0.1"] {
        return err("x-forwarded-for".into());
    }
    if p.all("host").len() != 1 {
        return err("host".into());
    }
    // The router's own forwarding headers, never the client's.
    if p.all("x-real-ip") != ["127.0.0.1"] || p.all("x-forwarded-proto") != ["http"] {
        return err("x-real-ip or x-forwarded-proto".into());
    }
    let forwarded = p.all("forwarded");
    let named = p.all("x-forwarded-host");
    let host = p.all("host")[0];
    let want = if named.is_empty() {
        "for=127.0.0.1;proto=http".to_owned()
    } else {
        format!("for=127.0.0.1;host=\"{host}\";proto=http")
    };
    if forwarded != [want] || !(named.is_empty() || named == [host]) {
        return err(format!(
            "forwarded {forwarded:?}, x-forwarded-host {named:?}"
        ));
    }
    for (n, _) in &p.headers {
        let dashed = n.replace('_', "-");
        if dashed.starts_with("x-hero-")
            || (dashed.starts_with("x-forwarded-") && n.contains('_'))
            || n == "x-private"
            || n == "expect"
        {
            return err(format!("{n} reached the service"));
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_service_parses_is_what_the_client_meant() {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let cases = env("HERO_FUZZ_CASES").unwrap_or(2_000);
    let seed = env("HERO_FUZZ_SEED").unwrap_or_else(|| fastrand::u64(..));
    let only = env("HERO_FUZZ_CASE");
    let root = tempfile::tempdir().unwrap();
    let log = capture(root.path());
    let d = start_daemon(serve_config(
        root.path(),
        &["--max-body", "1MiB", "--server-name", "node.local"],
    ))
    .await;
    d.rescan().await;
    eprintln!("differential: {cases} cases, seed {seed} (HERO_FUZZ_SEED={seed} to replay)");
    let addr = d.tcp;
    let parallel = 16;
    let mut expected: HashMap<u64, Req> = HashMap::new();
    let mut next = 0u64;
    let mut running = tokio::task::JoinSet::new();
    let range: Vec<u64> = match only {
        Some(c) => vec![c],
        None => (0..cases).collect(),
    };
    let mut failures = Vec::new();
    loop {
        while running.len() < parallel && (next as usize) < range.len() {
            let case = range[next as usize];
            running.spawn(run_case(addr, seed, case));
            next += 1;
        }
        let Some(done) = running.join_next().await else {
            break;
        };
        match done.expect("a case panicked") {
            Ok(reqs) => expected.extend(reqs),
            Err(e) => {
                failures.push(e);
                if failures.len() >= 3 {
                    break;
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "seed {seed}: {} failures; first:\n{}",
        failures.len(),
        failures[0]
    );
    // Connections the router dropped mid-request end at the service a little later; wait
    // for the router to have no upstream request in flight by asking it something last.
    let (s, _, _) = common::tcp(&d, common::request("GET", "/health", "")).await;
    assert_eq!(s, 200, "seed {seed}: the router still answers");
    let parsed = log.lock().unwrap().clone();
    let mut seen: HashMap<u64, usize> = HashMap::new();
    // The router's own catalog requests are not client requests.
    let from_clients = parsed
        .iter()
        .filter(|p| p.all("user-agent") != [hero_router::USER_AGENT]);
    for p in from_clients {
        let ids = p.all("x-test-id");
        let [id] = ids.as_slice() else {
            panic!("seed {seed}: the service parsed a request the client never sent whole: {p:#?}");
        };
        let id: u64 = id.parse().unwrap();
        let Some(r) = expected.get(&id) else {
            panic!(
                "seed {seed}: the service parsed request {id}, which was refused or cut short: {p:#?}"
            );
        };
        if let Err(e) = check_parsed(p, r) {
            panic!("seed {seed}: {e}");
        }
        *seen.entry(id).or_default() += 1;
    }
    for id in expected.keys() {
        assert_eq!(
            seen.get(id),
            Some(&1),
            "seed {seed}: request {id} was answered but parsed {:?} times",
            seen.get(id)
        );
    }
    eprintln!(
        "differential: {} requests delivered exactly, {} parsed by the service, seed {seed}",
        expected.len(),
        parsed.len()
    );
    d.stop().await;
}
