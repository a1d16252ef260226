//! The front door, tried from outside as an attacker would. Each test is the regression test of
//! one hole seen through real sockets: raw clients write exactly the bytes of the attack, and
//! raw upstreams record exactly the bytes a service receives.

mod common;

use std::time::Duration;

use common::raw::{Capture, Client, OK, Reply, Upstream, find, get, header};
use common::{serve_config, service_dir, start_daemon};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The body of the smuggling attack: a complete second request, with forged claims.
const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: localhost\r\nX-Hero-Claims: admin\r\n\
                        X-Forwarded-For: 6.6.6.6\r\n\r\n";

/// A service that sees both requests of the attack would answer twice; the second answer
/// would wait on the pooled connection for the next client.
#[tokio::test]
async fn a_framing_header_named_in_connection_is_refused_never_forwarded() {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::bind(root.path(), "smug", |n| match n {
        0 => Reply::Send(OK),
        _ => Reply::Send(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled"),
    });
    let d = start_daemon(serve_config(root.path(), &[])).await;
    for token in [
        "content-length",
        "Content-Length, close",
        "transfer-encoding",
    ] {
        let mut c = Client::connect(&d).await;
        c.send(&format!(
            "POST /smug/rpc/cl-hop HTTP/1.1\r\nHost: localhost\r\nConnection: {token}\r\n\
             Content-Length: {}\r\n\r\n{SMUGGLED}",
            SMUGGLED.len()
        ))
        .await;
        let r = c.response(false).await;
        assert_eq!(r.status(), 400, "{token}: {r:?}");
        assert_eq!(r.header("x-hero-router-error"), Some("framing"), "{r:?}");
        assert_eq!(r.header("connection"), Some("close"));
        let v = common::json(std::str::from_utf8(&r.body).unwrap());
        assert!(v["error"].as_str().unwrap().contains("Connection"), "{v}");
        assert!(
            c.closed().await,
            "the bytes after a refused head are never read"
        );
    }
    assert!(up.requests().is_empty(), "forwarded: {:?}", up.requests());
    // The next client gets its own answer, on the service's first request.
    let mut c = Client::connect(&d).await;
    c.send(&get("/smug/rpc/next")).await;
    let r = c.response(false).await;
    assert_eq!((r.status(), r.body.as_slice()), (200, &b"ok"[..]));
    let seen = up.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].starts_with("GET /next "), "{seen:?}");
    d.stop().await;
}

/// An upgrade request's body goes upstream under its length, and the upstream connection of an
/// upgrade is never reused: a service that answered before reading the body cannot hand the
/// body to the next request.
#[tokio::test]
async fn an_upgrade_request_sends_its_body_and_its_connection_is_not_reused() {
    let root = tempfile::tempdir().unwrap();
    let up = Capture::bind(
        root.path(),
        "up",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nno",
    );
    let d = start_daemon(serve_config(root.path(), &[])).await;
    let mut c = Client::connect(&d).await;
    c.send(
        "GET /up/rpc/ws HTTP/1.1\r\nHost: localhost\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\
         Content-Length: 10\r\n\r\n0123456789",
    )
    .await;
    let r = c.response(false).await;
    assert_eq!((r.status(), r.body.as_slice()), (200, &b"no"[..]), "{r:?}");
    // The same client connection goes on; the next request reaches the service on a new
    // upstream connection, whole.
    c.send(&get("/up/rpc/next")).await;
    let r = c.response(false).await;
    assert_eq!((r.status(), r.body.as_slice()), (200, &b"no"[..]), "{r:?}");
    let conns = up.connections();
    assert_eq!(conns.len(), 2, "{conns:?}");
    let first = String::from_utf8_lossy(&conns[0]);
    assert!(first.starts_with("GET /ws HTTP/1.1\r\n"), "{first}");
    assert_eq!(header(&first, "content-length"), Some("10"));
    assert_eq!(header(&first, "upgrade"), Some("websocket"));
    assert!(first.ends_with("\r\n\r\n0123456789"), "{first}");
    assert!(
        String::from_utf8_lossy(&conns[1]).starts_with("GET /next HTTP/1.1\r\n"),
        "{conns:?}"
    );
    d.stop().await;
}

/// A response's framing reaches the client as the router decided it: a `Connection` token
/// cannot take the length away, and a length next to chunks is dropped.
#[tokio::test]
async fn response_framing_is_declared_by_the_router() {
    let root = tempfile::tempdir().unwrap();
    let _up =
        Upstream::bind(root.path(), "svc", |n| {
            Reply::Send(match n {
            0 => b"HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 5\r\n\r\nfirst",
            1 => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n\
                   6\r\nsecond\r\n0\r\n\r\n",
            _ => OK,
        })
        });
    let d = start_daemon(serve_config(root.path(), &[])).await;
    let mut c = Client::connect(&d).await;
    c.send(&get("/svc/rpc/1")).await;
    let r = c.response(false).await;
    assert_eq!(r.header("content-length"), Some("5"), "{r:?}");
    assert_eq!(r.body, b"first");
    c.send(&get("/svc/rpc/2")).await;
    let r = c.response(false).await;
    assert_eq!(r.header("transfer-encoding"), Some("chunked"), "{r:?}");
    assert_eq!(r.header("content-length"), None, "{r:?}");
    assert_eq!(r.body, b"6\r\nsecond\r\n0\r\n\r\n");
    c.send(&get("/svc/rpc/3")).await;
    let r = c.response(false).await;
    assert_eq!((r.status(), r.body.as_slice()), (200, &b"ok"[..]), "{r:?}");
    d.stop().await;
}

/// A chunked request body the router cannot decode is the client's error (400), not the
/// service's (502); a good one reaches the service re-encoded.
#[tokio::test]
async fn bad_chunks_in_a_request_are_the_clients_error() {
    let root = tempfile::tempdir().unwrap();
    let _svc =
        hero_example_service::spawn(hero_example_service::ServiceConfig::new(root.path(), "svc"))
            .await
            .unwrap();
    let d = start_daemon(serve_config(root.path(), &[])).await;
    let head =
        "POST /svc/rpc/upload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n";
    for body in [
        "10000000000000000\r\nx\r\n0\r\n\r\n", // overflows 64 bits
        "5\nhello\r\n0\r\n\r\n",               // bare LF
        " 5\r\nhello\r\n0\r\n\r\n",            // leading space
        "5\r\nhelloXX0\r\n\r\n",               // data longer than its size
    ] {
        let mut c = Client::connect(&d).await;
        c.send(&format!("{head}{body}")).await;
        let r = c.response(false).await;
        assert_eq!(r.status(), 400, "{body:?}: {r:?}");
        assert_eq!(r.header("x-hero-router-error"), Some("bad_body"), "{r:?}");
        assert!(c.closed().await, "{body:?}");
    }
    let mut c = Client::connect(&d).await;
    c.send(&format!(
        "{head}5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n"
    ))
    .await;
    let r = c.response(false).await;
    assert_eq!(r.status(), 200, "{r:?}");
    assert_eq!(
        common::json(std::str::from_utf8(&r.body).unwrap())["bytes"],
        11
    );
    d.stop().await;
}

/// RFC 9112 §3.2: an HTTP/1.1 request needs exactly one Host.
#[tokio::test]
async fn a_request_without_exactly_one_host_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::bind(root.path(), "svc", |_| Reply::Send(OK));
    let d = start_daemon(serve_config(root.path(), &[])).await;
    for raw in [
        "GET /svc/rpc/a HTTP/1.1\r\n\r\n",
        "GET /svc/rpc/a HTTP/1.1\r\nHost: localhost\r\nHost: y\r\n\r\n",
        "GET /svc/rpc/a HTTP/1.1\r\nHost: localhost\r\nhost: localhost\r\n\r\n",
    ] {
        let mut c = Client::connect(&d).await;
        c.send(raw).await;
        let r = c.response(false).await;
        assert_eq!(r.status(), 400, "{raw:?}: {r:?}");
        assert_eq!(r.header("x-hero-router-error"), Some("host"));
        assert!(c.closed().await);
    }
    assert!(up.requests().is_empty(), "{:?}", up.requests());
    // HTTP/1.0 may leave Host out; it is answered and the connection ends.
    let mut c = Client::connect(&d).await;
    c.send("GET /svc/rpc/old HTTP/1.0\r\n\r\n").await;
    let r = c.response(false).await;
    assert_eq!((r.status(), r.body.as_slice()), (200, &b"ok"[..]));
    assert!(c.closed().await);
    let seen = up.requests();
    assert!(
        seen[0].starts_with("GET /old HTTP/1.1\r\nhost: localhost\r\n"),
        "{seen:?}"
    );
    d.stop().await;
}

/// `--max-header-size` holds by bytes whether the head arrives in one read or many, and the
/// header-line limit is a flag with a clear 431.
#[tokio::test]
async fn head_limits_hold_however_the_head_arrives() {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::bind(root.path(), "svc", |_| Reply::Send(OK));
    let d = start_daemon(serve_config(root.path(), &["--max-header-size", "16KiB"])).await;
    let head = |size: usize| {
        let base = "GET /svc/rpc/a HTTP/1.1\r\nHost: localhost\r\nX-Pad: \r\n\r\n";
        let pad = "p".repeat(size - base.len());
        format!("GET /svc/rpc/a HTTP/1.1\r\nHost: localhost\r\nX-Pad: {pad}\r\n\r\n")
    };
    for size in [17 * 1024, 24 * 1024] {
        for pieces in [1, 3, 40] {
            let raw = head(size);
            let mut c = Client::connect(&d).await;
            for part in raw.as_bytes().chunks(raw.len().div_ceil(pieces)) {
                c.s.write_all(part).await.unwrap();
            }
            let r = c.response(false).await;
            assert_eq!(r.status(), 431, "{size} bytes in {pieces} pieces: {r:?}");
            assert_eq!(r.header("x-hero-router-error"), Some("head_too_large"));
        }
    }
    assert!(up.requests().is_empty());
    // Exactly at the limit is fine.
    let mut c = Client::connect(&d).await;
    c.send(&head(16 * 1024)).await;
    assert_eq!(c.response(false).await.status(), 200);
    d.stop().await;

    let root = tempfile::tempdir().unwrap();
    let up = Upstream::bind(root.path(), "svc", |_| Reply::Send(OK));
    let d = start_daemon(serve_config(root.path(), &[])).await;
    let long_line = format!(
        "GET /svc/rpc/{} HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "a".repeat(100_000)
    );
    let mut c = Client::connect(&d).await;
    c.send(&long_line).await;
    assert_eq!(c.response(false).await.status(), 431);
    let lines = |n: usize| -> String { (0..n).map(|i| format!("X-{i}: v\r\n")).collect() };
    let mut c = Client::connect(&d).await;
    c.send(&format!(
        "GET /svc/rpc/a HTTP/1.1\r\nHost: localhost\r\n{}\r\n",
        lines(100)
    ))
    .await;
    let r = c.response(false).await;
    assert_eq!(r.status(), 431, "{r:?}");
    assert_eq!(r.header("x-hero-router-error"), Some("too_many_headers"));
    let mut c = Client::connect(&d).await;
    c.send(&format!(
        "GET /svc/rpc/a HTTP/1.1\r\nHost: localhost\r\n{}\r\n",
        lines(99)
    ))
    .await;
    assert_eq!(c.response(false).await.status(), 200);
    assert_eq!(up.requests().len(), 1);
    d.stop().await;
}

/// `/hero_router/…` is never proxied (the router's own sockets are a trusted Unix hop), and
/// underscore spellings of the router's headers are stripped with the dashed ones.
#[tokio::test]
async fn no_relay_to_itself_and_no_underscore_claims() {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::bind(root.path(), "svc", |_| Reply::Send(OK));
    let d = start_daemon(serve_config(root.path(), &[])).await;
    for raw in [
        get("/hero_router/admin/health"),
        get("/hero_router/rpc/api/services"),
        "POST /hero_router/admin/rpc HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\n{}"
            .into(),
    ] {
        let mut c = Client::connect(&d).await;
        c.send(&raw).await;
        let r = c.response(false).await;
        assert_eq!(r.status(), 404, "{raw:?}: {r:?}");
        assert_eq!(r.header("x-hero-router-error"), Some("own_service"));
        assert!(common::json(std::str::from_utf8(&r.body).unwrap())["error"].is_string());
    }
    let mut c = Client::connect(&d).await;
    c.send(
        "GET /svc/rpc/a HTTP/1.1\r\nHost: localhost\r\nX_Hero_Claims: admin\r\nx_hero_context: ctx\r\n\
         X-Hero-Claims: admin\r\nX_Forwarded_For: 6.6.6.6\r\nX_Forwarded_Prefix: /evil\r\n\r\n",
    )
    .await;
    assert_eq!(c.response(false).await.status(), 200);
    let seen = up.requests();
    let lower = seen[0].to_ascii_lowercase();
    for gone in ["x_hero", "x-hero", "6.6.6.6", "/evil", "x_forwarded"] {
        assert!(
            !lower.contains(gone),
            "{gone} reached the service: {}",
            seen[0]
        );
    }
    d.stop().await;
}

/// Slow clients that hold every connection slot cannot lock a new client out: the router keeps
/// accepting and sheds the connection that has waited longest for its head. When every slot is
/// busy with a request, a new client gets a 503 at once.
#[tokio::test]
async fn slow_clients_cannot_lock_new_ones_out() {
    let root = tempfile::tempdir().unwrap();
    // A service that holds every request until the test lets it go.
    let hold = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    let l =
        tokio::net::UnixListener::bind(service_dir(root.path(), "held").join("rpc.sock")).unwrap();
    let (arrived_tx, mut arrived) = tokio::sync::mpsc::unbounded_channel::<()>();
    let h = hold.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let (h, arrived_tx) = (h.clone(), arrived_tx.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                if common::raw::read_request(&mut s, &mut buf).await.is_some() {
                    arrived_tx.send(()).unwrap();
                    h.acquire().await.unwrap().forget();
                    let _ = s.write_all(OK).await;
                }
            });
        }
    });
    let d = start_daemon(serve_config(
        root.path(),
        &["--max-connections", "8", "--header-timeout", "1h"],
    ))
    .await;
    let mut slow = Vec::new();
    for _ in 0..8 {
        let mut s = TcpStream::connect(d.tcp).await.unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(s);
    }
    // A new client is answered while all eight trickle.
    let mut c = Client::connect(&d).await;
    c.send(&get("/health")).await;
    let r = tokio::time::timeout(Duration::from_secs(20), c.response(false))
        .await
        .expect("a new client must not wait behind slow ones");
    assert_eq!(r.status(), 200);
    // Exactly one slow client was shed to make room.
    let closed = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let mut n = 0;
            for s in &slow {
                let mut b = [0u8; 1];
                if matches!(s.try_read(&mut b), Ok(0)) {
                    n += 1;
                }
            }
            if n > 0 {
                return n;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("a slow client is shed");
    assert_eq!(closed, 1);
    drop(slow);
    drop(c);

    // Now fill every slot with a request in flight: the next client gets 503 at once.
    // One at a time, each in flight before the next connects: the closed slow clients may
    // not be noticed yet, and a new client still waiting for its head could be the one shed.
    let mut busy = Vec::new();
    for _ in 0..8 {
        let mut c = Client::connect(&d).await;
        c.send(&get("/held/rpc/x")).await;
        busy.push(c);
        tokio::time::timeout(Duration::from_secs(20), arrived.recv())
            .await
            .expect("the request reaches the service")
            .unwrap();
    }
    let mut c = Client::connect(&d).await;
    c.send(&get("/health")).await;
    let r = c.response(false).await;
    assert_eq!(r.status(), 503, "{r:?}");
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(
        r.header("x-hero-router-error"),
        Some("too_many_connections")
    );
    // Its request was never read, yet the answer names an id, in the header and the body.
    let id = r.header("x-request-id").expect("an id").to_owned();
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["request_id"], id.as_str(), "{body}");
    // A refused client that sends a body far larger than the socket buffers before it reads
    // still reads its 503: the router drains the request instead of closing on unread bytes
    // (which resets the answer away).
    let mut s = TcpStream::connect(d.tcp).await.unwrap();
    let upload = vec![b'z'; 32 << 20];
    s.write_all(
        format!(
            "POST /held/rpc/up HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
            upload.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    s.write_all(&upload)
        .await
        .expect("the refused body could not be sent whole");
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).await.expect("the 503 was lost");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 503 "), "{text}");
    hold.add_permits(8);
    for mut c in busy {
        assert_eq!(c.response(false).await.status(), 200);
    }
    d.stop().await;
}

/// `Expect: 100-continue`: the router says `100 Continue` itself before reading the body.
#[tokio::test]
async fn expect_continue_is_answered_before_the_body() {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::bind(root.path(), "svc", |_| Reply::Send(OK));
    let d = start_daemon(serve_config(root.path(), &[])).await;
    for path in ["/svc/rpc/post", "/rpc"] {
        let mut c = Client::connect(&d).await;
        c.send(&format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"
        ))
        .await;
        let r = c.response(false).await;
        assert_eq!(r.status(), 100, "{path}: {r:?}");
        c.send("{}").await;
        let r = c.response(false).await;
        assert_ne!(r.status(), 100, "{r:?}");
    }
    let seen = up.requests();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].ends_with("\r\n\r\n{}") && !seen[0].to_ascii_lowercase().contains("expect"));
    d.stop().await;
}

/// A service that answers before reading a large body: the router stops sending, passes the
/// answer on, closes the client connection (its body is unread) and drops the upstream one.
#[tokio::test]
async fn an_answer_before_the_body_ends_the_upload() {
    let root = tempfile::tempdir().unwrap();
    let up = Capture::bind(
        root.path(),
        "svc",
        b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\n\r\nbig!",
    );
    let d = start_daemon(serve_config(root.path(), &["--max-body", "1GiB"])).await;
    let mut c = Client::connect(&d).await;
    c.send(
        "POST /svc/rpc/upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1073741824\r\n\r\n",
    )
    .await;
    let chunk = vec![b'x'; 64 * 1024];
    let (mut rd, mut wr) = c.s.into_split();
    let writer = tokio::spawn(async move {
        // Stops when the router closes the connection.
        while wr.write_all(&chunk).await.is_ok() {}
    });
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        let mut b = [0u8; 4096];
        loop {
            match rd.read(&mut b).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&b[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the router must end the connection");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 413 "), "{text}");
    assert!(
        find(&got, b"big!").is_some() && text.contains("connection: close"),
        "{text}"
    );
    writer.await.unwrap();
    assert_eq!(up.connections().len(), 1);
    d.stop().await;
}

/// `--max-body` holds for a chunked upload by its payload, however it is cut into chunks, on
/// both the proxied path and `/rpc`.
#[tokio::test]
async fn a_chunked_body_is_held_to_the_limit_by_its_payload() {
    let root = tempfile::tempdir().unwrap();
    let _svc =
        hero_example_service::spawn(hero_example_service::ServiceConfig::new(root.path(), "svc"))
            .await
            .unwrap();
    let d = start_daemon(serve_config(root.path(), &["--max-body", "1KiB"])).await;
    let chunked = |n: usize| -> String {
        let payload = "x".repeat(n);
        let mut body: String = payload
            .as_bytes()
            .chunks(7)
            .map(|c| {
                format!(
                    "{:x};e=1\r\n{}\r\n",
                    c.len(),
                    std::str::from_utf8(c).unwrap()
                )
            })
            .collect();
        body.push_str("0\r\n\r\n");
        body
    };
    let head =
        "POST /svc/rpc/upload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n";
    let mut c = Client::connect(&d).await;
    c.send(&format!("{head}{}", chunked(1024))).await;
    let r = c.response(false).await;
    assert_eq!(r.status(), 200, "{r:?}");
    assert_eq!(
        common::json(std::str::from_utf8(&r.body).unwrap())["bytes"],
        1024
    );
    let mut c = Client::connect(&d).await;
    c.send(&format!("{head}{}", chunked(1025))).await;
    let r = c.response(false).await;
    assert_eq!(r.status(), 413, "{r:?}");
    let rpc = "POST /rpc HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n";
    let mut c = Client::connect(&d).await;
    c.send(&format!("{rpc}{}", chunked(1025))).await;
    assert_eq!(c.response(false).await.status(), 413);
    d.stop().await;
}

/// A client that sends its whole body before it reads (as Python's `http.client` and
/// `requests` do) gets its 413, not a reset: the router answers as soon as it sees the length,
/// then reads and drops the refused body until the client closes, rather than close with
/// unread bytes, which makes the kernel send a reset that destroys the answer. The body is far
/// larger than the socket buffers, so the client's write only ends if the router reads.
#[tokio::test]
async fn a_client_that_sends_its_refused_body_whole_still_reads_its_413() {
    let root = tempfile::tempdir().unwrap();
    let _up = Upstream::bind(root.path(), "svc", |_| Reply::Send(OK));
    let d = start_daemon(serve_config(root.path(), &["--max-body", "64KiB"])).await;
    let body = vec![b'x'; 32 << 20];
    for (what, head) in [
        (
            "by length",
            format!(
                "POST /svc/rpc/upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
                body.len()
            ),
        ),
        (
            "to /rpc",
            format!(
                "POST /rpc HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
                body.len()
            ),
        ),
    ] {
        let mut s = TcpStream::connect(d.tcp).await.unwrap();
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(&body)
            .await
            .unwrap_or_else(|e| panic!("{what}: the body could not be sent whole: {e}"));
        let mut answer = Vec::new();
        s.read_to_end(&mut answer)
            .await
            .unwrap_or_else(|e| panic!("{what}: the answer was lost: {e}"));
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 413 "), "{what}: {text}");
        assert!(text.contains("body_too_large"), "{what}: {text}");
    }
    // A chunked body passes the limit part-way: the rest is drained the same way.
    let mut s = TcpStream::connect(d.tcp).await.unwrap();
    s.write_all(
        b"POST /svc/rpc/upload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    .await
    .unwrap();
    let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "y".repeat(64 * 1024));
    for _ in 0..512 {
        s.write_all(chunk.as_bytes())
            .await
            .expect("chunked: the body could not be sent whole");
    }
    s.write_all(b"0\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)
        .await
        .expect("chunked: the answer was lost");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 413 "), "chunked: {text}");
    d.stop().await;
}

/// A service's chunked answer that turns bad goes to the client as far as it was good, then
/// ends short of its last chunk, whether the bad bytes come with the head or after it: the
/// client never gets an empty reply that the access log calls a 200.
#[tokio::test]
async fn a_bad_chunk_in_the_first_read_still_sends_the_good_part() {
    let root = tempfile::tempdir().unwrap();
    let _up = Upstream::bind(root.path(), "raw", |_| {
        Reply::SendAndClose(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZ\r\nbad\r\n0\r\n\r\n",
        )
    });
    let d = start_daemon(serve_config(root.path(), &[])).await;
    for version in ["HTTP/1.1", "HTTP/1.0"] {
        let mut s = TcpStream::connect(d.tcp).await.unwrap();
        s.write_all(
            format!("GET /raw/rpc/badchunk {version}\r\nHost: localhost\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer).await;
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 200 "), "{version}: {text:?}");
        assert!(text.contains("hello"), "{version}: {text:?}");
        assert!(
            !text.contains("bad") && !text.ends_with("0\r\n\r\n"),
            "{version}: {text:?}"
        );
    }
    d.stop().await;
}

/// A tunnel that one side closed is bounded: a service that never answers the client's close
/// of an upgraded connection loses the tunnel after `--upstream-timeout` of silence, rather
/// than hold the client's connection for ever; one that answers the half-close (its last
/// words, then its own close) is heard out.
#[tokio::test]
async fn a_half_closed_tunnel_ends_when_the_other_side_stays_silent() {
    let root = tempfile::tempdir().unwrap();
    for (name, polite) in [("silent", false), ("polite", true)] {
        let l = tokio::net::UnixListener::bind(service_dir(root.path(), name).join("rpc.sock"))
            .unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    if common::raw::read_request(&mut s, &mut buf).await.is_none() {
                        return;
                    }
                    s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: foo\r\n\r\n")
                        .await
                        .unwrap();
                    // Read until the client's half-close arrives.
                    let mut chunk = [0u8; 1024];
                    while matches!(s.read(&mut chunk).await, Ok(n) if n > 0) {}
                    if polite {
                        let _ = s.write_all(b"bye").await;
                        return;
                    }
                    // Hold the connection open and say nothing.
                    std::future::pending::<()>().await;
                });
            }
        });
    }
    let d = start_daemon(serve_config(root.path(), &["--upstream-timeout", "300ms"])).await;
    for (name, last_words) in [("silent", &b""[..]), ("polite", &b"bye"[..])] {
        let mut s = TcpStream::connect(d.tcp).await.unwrap();
        s.write_all(
            format!(
                "GET /{name}/rpc/t HTTP/1.1\r\nHost: localhost\r\nConnection: upgrade\r\nUpgrade: foo\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        s.write_all(b"hello").await.unwrap();
        s.shutdown().await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut answer))
            .await
            .unwrap_or_else(|_| panic!("{name}: the tunnel never ended"))
            .unwrap();
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 101 "), "{name}: {text:?}");
        assert!(answer.ends_with(last_words), "{name}: {text:?}");
    }
    d.stop().await;
}

/// A client that closes while its request waits for the service has given up: the router
/// abandons the request within a second or so, closing the service's connection (the service
/// can stop working on it) and freeing the service's in-flight slot, instead of holding both
/// for the whole `--upstream-timeout`.
#[tokio::test]
async fn a_client_that_leaves_while_the_service_thinks_frees_its_slot() {
    let root = tempfile::tempdir().unwrap();
    let l =
        tokio::net::UnixListener::bind(service_dir(root.path(), "slow").join("rpc.sock")).unwrap();
    let (closed_tx, mut closed_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let (arrived_tx, mut arrived_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let (closed_tx, arrived_tx) = (closed_tx.clone(), arrived_tx.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                while let Some(req) = common::raw::read_request(&mut s, &mut buf).await {
                    if req.starts_with("GET /hang ") {
                        // Never answers; notices when the router lets go.
                        let _ = arrived_tx.send(());
                        let mut b = [0u8; 64];
                        while matches!(s.read(&mut b).await, Ok(n) if n > 0) {}
                        let _ = closed_tx.send(());
                        return;
                    }
                    if s.write_all(OK).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let d = start_daemon(serve_config(
        root.path(),
        &[
            "--max-inflight-per-service",
            "1",
            "--upstream-timeout",
            "60s",
        ],
    ))
    .await;
    let mut gone = TcpStream::connect(d.tcp).await.unwrap();
    gone.write_all(get("/slow/rpc/hang").as_bytes())
        .await
        .unwrap();
    // The request is at the service (its one in-flight slot taken) before the client leaves.
    tokio::time::timeout(Duration::from_secs(20), arrived_rx.recv())
        .await
        .expect("the request never reached the service")
        .unwrap();
    let mut quick = Client::connect(&d).await;
    drop(gone);
    tokio::time::timeout(Duration::from_secs(20), closed_rx.recv())
        .await
        .expect("the service's connection was never closed")
        .unwrap();
    quick.send(&get("/slow/rpc/quick")).await;
    let r = tokio::time::timeout(Duration::from_secs(20), quick.response(false))
        .await
        .expect("the in-flight slot was never freed");
    assert_eq!(r.status(), 200, "{r:?}");
    // /metrics counts it under the service as the access log does: a 499.
    quick.send(&get("/metrics")).await;
    let metrics = quick.response(false).await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.contains(r#"hero_router_requests_total{service="slow",kind="rpc",status="499"} 1"#),
        "{text}"
    );
    d.stop().await;
}

/// A service that answers while it still reads the upload (full duplex) gets no more of the
/// body once its answer head went out, and is told so with a half-close: it ends its answer,
/// and the client gets an answer that ends, rather than both waiting for ever.
#[tokio::test]
async fn a_service_answering_mid_upload_sees_the_body_end() {
    let root = tempfile::tempdir().unwrap();
    let l = tokio::net::UnixListener::bind(service_dir(root.path(), "duplex").join("rpc.sock"))
        .unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut b = [0u8; 4096];
                while find(&seen, b"\r\n\r\n").is_none() {
                    match s.read(&mut b).await {
                        Ok(n) if n > 0 => seen.extend_from_slice(&b[..n]),
                        _ => return,
                    }
                }
                if !seen.starts_with(b"POST /echo ") {
                    return; // the catalog's requests
                }
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nstart\r\n",
                    )
                    .await;
                // Reads on until the body ends, then ends its answer.
                while matches!(s.read(&mut b).await, Ok(n) if n > 0) {}
                let _ = s.write_all(b"3\r\nend\r\n0\r\n\r\n").await;
            });
        }
    });
    let d = start_daemon(serve_config(root.path(), &[])).await;
    let mut c = TcpStream::connect(d.tcp).await.unwrap();
    c.write_all(b"POST /duplex/rpc/echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 30\r\n\r\n0123456789")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let mut b = [0u8; 4096];
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match c.read(&mut b).await {
                Ok(n) if n > 0 => answer.extend_from_slice(&b[..n]),
                _ => return,
            }
            if answer.ends_with(b"0\r\n\r\n") {
                return;
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&answer);
    assert!(ended.is_ok(), "the answer never ended: {text:?}");
    assert!(
        text.starts_with("HTTP/1.1 200 ") && text.contains("start") && text.contains("end"),
        "{text:?}"
    );
    d.stop().await;
}

/// A client that leaves while its request waits for one of the service's in-flight slots is
/// not sent to the service when the slot frees: the request is dropped (a 499, counted as a
/// router error of the service), and the next client in the queue gets the slot.
#[tokio::test]
async fn a_client_that_leaves_while_queued_is_never_sent() {
    let root = tempfile::tempdir().unwrap();
    let l =
        tokio::net::UnixListener::bind(service_dir(root.path(), "one").join("rpc.sock")).unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let (arrived_tx, mut arrived_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    {
        let (seen, release) = (seen.clone(), release.clone());
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let (seen, release, arrived_tx) =
                    (seen.clone(), release.clone(), arrived_tx.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    while let Some(req) = common::raw::read_request(&mut s, &mut buf).await {
                        seen.lock()
                            .unwrap()
                            .push(req.lines().next().unwrap_or("").to_owned());
                        if req.starts_with("GET /hold ") {
                            let _ = arrived_tx.send(());
                            release.notified().await;
                        }
                        if s.write_all(OK).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
    }
    let d = start_daemon(serve_config(
        root.path(),
        &[
            "--max-inflight-per-service",
            "1",
            "--upstream-timeout",
            "60s",
        ],
    ))
    .await;
    // A holds the only slot.
    let mut holder = Client::connect(&d).await;
    holder.send(&get("/one/rpc/hold")).await;
    tokio::time::timeout(Duration::from_secs(20), arrived_rx.recv())
        .await
        .expect("the held request reached the service")
        .unwrap();
    // B queues for the slot, then leaves.
    let mut leaver = TcpStream::connect(d.tcp).await.unwrap();
    leaver
        .write_all(get("/one/rpc/abandoned").as_bytes())
        .await
        .unwrap();
    drop(leaver);
    // The router notices within a second or so: its 499 is a router error of the service.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) =
            common::rpc(&d, r#"{"jsonrpc":"2.0","id":1,"method":"router.traffic"}"#).await;
        let v = common::json(&body);
        let routerr = v["result"]["services"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["name"] == "one"))
            .map_or(0, |s| {
                s["windows"]["1m"]["errors"]["router"].as_u64().unwrap_or(0)
            });
        if routerr >= 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the leaver was never dropped: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await; // poll interval, bounded by the deadline
    }
    // C queues behind; A is let go: C is served, B never reaches the service.
    let mut next = Client::connect(&d).await;
    next.send(&get("/one/rpc/next")).await;
    release.notify_one();
    assert_eq!(holder.response(false).await.status(), 200);
    let r = tokio::time::timeout(Duration::from_secs(20), next.response(false))
        .await
        .expect("the next client was never served");
    assert_eq!(r.status(), 200);
    let seen = seen.lock().unwrap().clone();
    assert!(!seen.iter().any(|l| l.contains("/abandoned")), "{seen:?}");
    d.stop().await;
}

/// An interim head only partly written when the service's time runs out cannot be followed
/// by the router's 504: the connection ends instead, and what the client got is whole heads
/// only. The client reads nothing until the timeout passed (simulated with the clock), so the
/// interims pile up beyond the socket buffers.
#[tokio::test]
async fn a_timeout_never_writes_into_a_half_sent_interim_head() {
    let root = tempfile::tempdir().unwrap();
    let l =
        tokio::net::UnixListener::bind(service_dir(root.path(), "early").join("rpc.sock")).unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                if common::raw::read_request(&mut s, &mut buf).await.is_none() {
                    return;
                }
                let pad = "p".repeat(60_000);
                for _ in 0..200 {
                    let hint = format!("HTTP/1.1 103 Early Hints\r\nX-Pad: {pad}\r\n\r\n");
                    if s.write_all(hint.as_bytes()).await.is_err() {
                        return;
                    }
                }
                // No final head, ever.
                std::future::pending::<()>().await;
            });
        }
    });
    let d = start_daemon(serve_config(root.path(), &["--upstream-timeout", "1s"])).await;
    let mut s = TcpStream::connect(d.tcp).await.unwrap();
    s.write_all(get("/early/rpc/x").as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await; // the simulated slow reader: the clock is the point
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), s.read_to_end(&mut all))
        .await
        .expect("the connection never ended")
        .ok();
    let text = String::from_utf8_lossy(&all);
    // Every head starts where the one before ended.
    for (at, _) in text.match_indices("HTTP/1.1 ") {
        assert!(
            at == 0 || text[..at].ends_with("\r\n\r\n"),
            "a head starts mid-head at {at}"
        );
    }
    d.stop().await;
}

/// A connection draining after its answer (lingering close) can be shed for a new client at
/// the listener's limit, like an idle one: it is not mid-request any more.
#[tokio::test]
async fn lingering_connections_make_room_for_new_clients() {
    let root = tempfile::tempdir().unwrap();
    let _up = Upstream::bind(root.path(), "svc", |_| Reply::Send(OK));
    let d = start_daemon(serve_config(
        root.path(),
        &[
            "--max-connections",
            "2",
            "--max-body",
            "1KiB",
            "--header-timeout",
            "1h",
        ],
    ))
    .await;
    let mut draining = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(d.tcp).await.unwrap();
        s.write_all(
            b"POST /svc/rpc/up HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\nxx",
        )
        .await
        .unwrap();
        // Its 413 is here: the connection now only drains.
        let mut got = Vec::new();
        let mut b = [0u8; 1024];
        while !String::from_utf8_lossy(&got).contains("\r\n\r\n") {
            let n = s.read(&mut b).await.unwrap();
            assert!(n > 0);
            got.extend_from_slice(&b[..n]);
        }
        assert!(
            got.starts_with(b"HTTP/1.1 413 "),
            "{}",
            String::from_utf8_lossy(&got)
        );
        s.write_all(b"more body").await.unwrap();
        draining.push(s);
    }
    // The 413 reaches the client a moment before its connection is marked as draining: a
    // new client may be refused (503) in between, not after. Both keep draining meanwhile.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = Client::connect(&d).await;
        c.send(&get("/health")).await;
        let r = c.response(false).await;
        if r.status() == 200 {
            break;
        }
        assert_eq!(r.status(), 503, "{r:?}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "the draining connections were never shed: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await; // poll interval, bounded by the deadline
    }
    d.stop().await;
}

/// A client that closes halfway through its request body got status 0 in the access log, a
/// success in `router.traffic` and nothing in `/metrics`. It is a 499 (the client closed its
/// request) in all three, counted as a router error of the service.
#[tokio::test]
async fn a_client_that_leaves_mid_body_is_a_499_everywhere() {
    let root = tempfile::tempdir().unwrap();
    let _svc =
        hero_example_service::spawn(hero_example_service::ServiceConfig::new(root.path(), "svc"))
            .await
            .unwrap();
    let d = start_daemon(serve_config(root.path(), &[])).await;
    d.rescan().await;
    let mut c = TcpStream::connect(d.tcp).await.unwrap();
    c.write_all(
        b"POST /svc/rpc/rpc HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\nhalf",
    )
    .await
    .unwrap();
    drop(c);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let errors = loop {
        let (_, body) =
            common::rpc(&d, r#"{"jsonrpc":"2.0","id":1,"method":"router.traffic"}"#).await;
        let v = common::json(&body);
        let svc = v["result"]["services"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["name"] == "svc"))
            .map(|s| s["windows"]["1m"].clone());
        if let Some(w) = svc.filter(|w| w["requests"].as_u64() >= Some(1)) {
            break w;
        }
        assert!(tokio::time::Instant::now() < deadline, "never counted: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await; // poll interval, bounded by the deadline
    };
    assert_eq!(errors["requests"], 1, "{errors}");
    assert_eq!(errors["errors"]["router"], 1, "{errors}");
    let mut m = Client::connect(&d).await;
    m.send(&get("/metrics")).await;
    let metrics = m.response(false).await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.contains(r#"hero_router_requests_total{service="svc",kind="rpc",status="499"} 1"#),
        "{text}"
    );
    // The same for a body the router reads itself (`POST /rpc`, MCP).
    for (path, kind) in [("/rpc", "rpc"), ("/mcp", "mcp")] {
        let mut c = TcpStream::connect(d.tcp).await.unwrap();
        let head =
            format!("POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n{{");
        c.write_all(head.as_bytes()).await.unwrap();
        drop(c);
        let line = format!(
            r#"hero_router_requests_total{{service="hero_router",kind="{kind}",status="499"}} 1"#
        );
        until_metrics_show(&mut m, &line).await;
    }
    d.stop().await;
}

/// A routed `/rpc` call or an MCP tool call whose client leaves while the service thinks is
/// abandoned within a second or so (a 499, the service's), as a proxied request is: both used
/// to wait for the service's answer and log a 200 nobody read. The service here would take a
/// minute.
#[tokio::test]
async fn a_routed_call_whose_client_leaves_is_abandoned() {
    let root = tempfile::tempdir().unwrap();
    let _svc =
        hero_example_service::spawn(hero_example_service::ServiceConfig::new(root.path(), "svc"))
            .await
            .unwrap();
    let d = start_daemon(serve_config(root.path(), &["--upstream-timeout", "120s"])).await;
    d.rescan().await;
    // Each is sent whole, then its client leaves; each is counted, and logged, as the
    // service's: where the call went.
    let rpc = r#"{"jsonrpc":"2.0","id":1,"method":"svc.sleep_ms","params":[60000]}"#;
    let tool = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"sleep_ms","arguments":{"ms":60000}}}"#;
    for (path, body, kind) in [("/rpc", rpc, "rpc"), ("/mcp/svc", tool, "mcp")] {
        let mut c = TcpStream::connect(d.tcp).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        c.write_all(head.as_bytes()).await.unwrap();
        drop(c);
        let line =
            format!(r#"hero_router_requests_total{{service="svc",kind="{kind}",status="499"}} 1"#);
        until_metrics_show(&mut Client::connect(&d).await, &line).await;
    }
    d.stop().await;
}

/// Polls `/metrics` over `m` until it has `line`, with a deadline.
async fn until_metrics_show(m: &mut Client, line: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        m.send(&get("/metrics")).await;
        let text = String::from_utf8_lossy(&m.response(false).await.body).into_owned();
        if text.contains(line) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{line} not in {text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await; // poll interval, bounded by the deadline
    }
}
