//! The connection driver and the proxy engine (`serve/conn.rs`, `proxy/forward.rs`) against scripted raw upstreams, byte for byte:
//! keep-alive and pipelining, own endpoints and errors in the middle of a connection, every
//! response framing (length, chunked, until close, none for HEAD), interim 1xx heads, pooled
//! connections the service closed, and errors before the upstream answered with and without an
//! unread body.
//!
//! Clients speak raw HTTP/1.1 over TCP so keep-alive and pipelining are exactly what the test
//! writes; upstreams are plain Unix listeners that record every request they get.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::raw::{Client, OK, Reply, Upstream, find, get, header, read_request};
use common::{Daemon, serve_config, service_dir, start_daemon};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

async fn daemon(root: &Path) -> Daemon {
    let d = start_daemon(serve_config(root, &[])).await;
    d.rescan().await;
    d
}

#[tokio::test]
async fn keep_alive_reuses_one_upstream_connection_and_rewrites_the_head() {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::bind(root.path(), "svc", |_| Reply::Send(OK));
    let d = daemon(root.path()).await;
    let mut c = Client::connect(&d).await;
    let req = "GET /svc/rpc/a/b?x=1 HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive, X-Private\r\n\
               Keep-Alive: timeout=5\r\nX-Private: secret\r\nX-Forwarded-For: 10.1.1.1\r\n\
               X-Hero-Claims: forged\r\nAccept: */*\r\n\r\n";
    for _ in 0..2 {
        c.send(req).await;
        let r = c.response(false).await;
        assert_eq!((r.status(), r.body.as_slice()), (200, &b"ok"[..]), "{r:?}");
    }
    assert_eq!(
        up.connections(),
        1,
        "both requests on one upstream connection"
    );
    let seen = up.requests();
    assert_eq!(seen.len(), 2);
    let head = &seen[0];
    assert!(head.starts_with("GET /a/b?x=1 HTTP/1.1\r\n"), "{head}");
    assert_eq!(header(head, "host"), Some("localhost"));
    assert_eq!(header(head, "accept"), Some("*/*"));
    assert_eq!(header(head, "x-forwarded-prefix"), Some("/svc/rpc"));
    // Over TCP the router vouches only for the peer it saw: a client's own claim is dropped.
    assert_eq!(header(head, "x-forwarded-for"), Some("127.0.0.1"));
    for gone in ["connection", "keep-alive", "x-private", "x-hero-claims"] {
        assert_eq!(header(head, gone), None, "{gone} forwarded: {head}");
    }
    d.stop().await;
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::bind(root.path(), "svc", |n| {
        Reply::Send(match n {
            0 => b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst",
            _ => b"HTTP/1.1 201 Created\r\nContent-Length: 6\r\n\r\nsecond",
        })
    });
    let d = daemon(root.path()).await;
    let mut c = Client::connect(&d).await;
    let body = "{\"n\":1}";
    c.send(&format!(
        "POST /svc/rpc/one HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{body}{}",
        body.len(),
        get("/svc/rpc/two")
    ))
    .await;
    let (a, b) = (c.response(false).await, c.response(false).await);
    assert_eq!((a.status(), a.body.as_slice()), (200, &b"first"[..]));
    assert_eq!((b.status(), b.body.as_slice()), (201, &b"second"[..]));
    let seen = up.requests();
    assert!(
        seen[0].starts_with("POST /one ") && seen[0].ends_with(body),
        "{seen:?}"
    );
    assert!(seen[1].starts_with("GET /two "), "{seen:?}");
    d.stop().await;
}

#[tokio::test]
async fn own_endpoints_and_errors_share_a_connection_with_proxied_requests() {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::bind(root.path(), "svc", |_| Reply::Send(OK));
    let d = daemon(root.path()).await;
    let mut c = Client::connect(&d).await;
    c.send(&get("/svc/rpc/a")).await;
    assert_eq!(c.response(false).await.status(), 200);
    // The router's own endpoints are served on the same connection.
    c.send(&get("/health")).await;
    let h = c.response(false).await;
    assert_eq!(h.status(), 200);
    assert_eq!(h.header("content-type"), Some("application/json"));
    assert_eq!(
        common::json(std::str::from_utf8(&h.body).unwrap())["status"],
        "ok"
    );
    // So are routing errors, through the one error function.
    c.send(&get("/nosuch/rpc/x")).await;
    let e = c.response(false).await;
    assert_eq!(e.status(), 404);
    assert_eq!(e.header("x-hero-router-error"), Some("no_service"));
    // A method an endpoint does not take: 405 naming what it takes, and the connection goes on.
    c.send("POST /health HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n")
        .await;
    let e = c.response(false).await;
    assert_eq!(e.status(), 405);
    assert_eq!(e.header("allow"), Some("GET, HEAD"));
    c.send(&get("/svc/rpc/b")).await;
    let r = c.response(false).await;
    assert_eq!((r.status(), r.body.as_slice()), (200, &b"ok"[..]));
    c.send(&get("/metrics")).await;
    let m = c.response(false).await;
    assert!(
        String::from_utf8_lossy(&m.body).contains("hero_router_requests_total"),
        "{m:?}"
    );
    let seen = up.requests();
    assert!(seen[1].starts_with("GET /b "), "{seen:?}");
    assert_eq!(header(&seen[1], "x-forwarded-prefix"), Some("/svc/rpc"));
    d.stop().await;
}

#[tokio::test]
async fn a_body_that_runs_to_close_closes_the_client_connection() {
    let root = tempfile::tempdir().unwrap();
    let _up = Upstream::bind(root.path(), "svc", |_| {
        Reply::SendAndClose(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end")
    });
    let d = daemon(root.path()).await;
    let mut c = Client::connect(&d).await;
    c.send(&get("/svc/rpc/a")).await;
    let r = c.response(false).await;
    assert_eq!(r.header("connection"), Some("close"), "{r:?}");
    assert_eq!(r.header("content-length"), None);
    assert_eq!(r.body, b"until the end");
    assert!(c.closed().await);
    d.stop().await;
}

#[tokio::test]
async fn chunks_are_re_encoded_and_the_connection_goes_on() {
    let root = tempfile::tempdir().unwrap();
    const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
        5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n";
    let up = Upstream::bind(root.path(), "svc", |n| match n {
        0 => Reply::Send(CHUNKED),
        _ => Reply::Send(OK),
    });
    let d = daemon(root.path()).await;
    let mut c = Client::connect(&d).await;
    c.send(&get("/svc/rpc/stream")).await;
    let r = c.response(false).await;
    assert_eq!(r.header("transfer-encoding"), Some("chunked"), "{r:?}");
    // The router decodes the service's chunks and writes its own: the payload is intact, the
    // extension and the trailer are gone, the body ends with the last chunk.
    let wire = String::from_utf8(r.body.clone()).unwrap();
    assert!(wire.ends_with("\r\n0\r\n\r\n"), "{wire:?}");
    assert!(
        !wire.contains("ext") && !wire.contains("X-Trailer"),
        "{wire:?}"
    );
    let mut payload = Vec::new();
    let mut decoder = hero_router::test_hooks::ChunkedDecoder::default();
    let used = decoder
        .advance(&r.body, |d| payload.extend_from_slice(d))
        .unwrap();
    assert!(decoder.is_done() && used == r.body.len(), "{wire:?}");
    assert_eq!(payload, b"hello, world");
    // The router found the end of the chunked body: the next request is answered normally.
    c.send(&get("/svc/rpc/next")).await;
    let next = c.response(false).await;
    assert_eq!((next.status(), next.body.as_slice()), (200, &b"ok"[..]));
    assert_eq!(up.connections(), 1);
    d.stop().await;
}

#[tokio::test]
async fn interim_heads_and_head_requests() {
    let root = tempfile::tempdir().unwrap();
    let _up = Upstream::bind(root.path(), "svc", |n| {
        Reply::Send(match n {
            0 => b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody",
            // The answer to HEAD: a length, and no body.
            1 => b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
            _ => OK,
        })
    });
    let d = daemon(root.path()).await;
    let mut c = Client::connect(&d).await;
    c.send(&get("/svc/rpc/page")).await;
    let early = c.response(false).await;
    assert_eq!(early.status(), 103);
    assert_eq!(early.header("link"), Some("</style.css>"));
    let page = c.response(false).await;
    assert_eq!((page.status(), page.body.as_slice()), (200, &b"body"[..]));
    c.send("HEAD /svc/rpc/page HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await;
    let head = c.response(true).await;
    assert_eq!(head.header("content-length"), Some("5"));
    // Nothing was left over from the HEAD answer: the next response starts cleanly.
    c.send(&get("/svc/rpc/page")).await;
    assert_eq!(c.response(false).await.status(), 200);
    d.stop().await;
}

#[tokio::test]
async fn a_pooled_connection_the_service_closed_is_not_used_again() {
    let root = tempfile::tempdir().unwrap();
    // Answers one request per connection, then closes without saying so.
    let up = Upstream::bind(root.path(), "svc", |_| Reply::SendAndClose(OK));
    let d = daemon(root.path()).await;
    let mut c = Client::connect(&d).await;
    for i in 0..5 {
        c.send(&get(&format!("/svc/rpc/{i}"))).await;
        let r = c.response(false).await;
        assert_eq!(
            (r.status(), r.body.as_slice()),
            (200, &b"ok"[..]),
            "request {i}"
        );
    }
    assert_eq!(up.connections(), 5);
    assert_eq!(up.requests().len(), 5);
    d.stop().await;
}

#[tokio::test]
async fn errors_before_an_answer_close_only_when_a_body_is_left_unread() {
    let root = tempfile::tempdir().unwrap();
    // Accepts, reads the request, closes without answering.
    let _up = Upstream::bind(root.path(), "svc", |_| Reply::Close);
    let d = start_daemon(serve_config(root.path(), &["--upstream-timeout", "300ms"])).await;

    // The whole body was sent: 502, and the connection stays usable.
    let mut c = Client::connect(&d).await;
    c.send("POST /svc/rpc/x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\n\r\nbody")
        .await;
    let r = c.response(false).await;
    assert_eq!(r.status(), 502, "{r:?}");
    assert_eq!(r.header("x-hero-router-error"), Some("upstream"));
    let v = common::json(std::str::from_utf8(&r.body).unwrap());
    assert_eq!(v["service"], "svc");
    assert_eq!(r.header("connection"), None);
    c.send(&get("/health")).await;
    assert_eq!(c.response(false).await.status(), 200);

    // A body announced but not sent can't be skipped: the error carries `connection: close`,
    // then the connection is closed. The service's backlog is full (the table says busy), so
    // the connect fails after the busy wait, before a byte of the body is read.
    let _full = common::busy_socket(&service_dir(root.path(), "full").join("rpc.sock"));
    d.rescan().await;
    let mut c = Client::connect(&d).await;
    c.send(
        "POST /full/rpc/x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n0123456789",
    )
    .await;
    let r = c.response(false).await;
    assert_eq!(r.status(), 503, "{r:?}");
    assert_eq!(r.header("x-hero-router-error"), Some("busy"));
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.closed().await);
    d.stop().await;
}

#[tokio::test]
async fn a_malformed_upstream_answer_is_a_502() {
    let root = tempfile::tempdir().unwrap();
    let _up = Upstream::bind(root.path(), "svc", |_| Reply::Send(b"garbage\r\n\r\n"));
    let d = daemon(root.path()).await;
    let mut c = Client::connect(&d).await;
    c.send(&get("/svc/rpc/x")).await;
    let r = c.response(false).await;
    assert_eq!(r.status(), 502);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = common::json(std::str::from_utf8(&r.body).unwrap());
    assert!(v["error"].as_str().unwrap().contains("malformed"), "{v}");
    d.stop().await;
}

#[tokio::test]
async fn a_100_mb_content_length_upload_streams_through() {
    use hero_example_service::{ServiceConfig, spawn};
    let root = tempfile::tempdir().unwrap();
    let _svc = spawn(ServiceConfig::new(root.path(), "alpha"))
        .await
        .unwrap();
    let d = start_daemon(serve_config(root.path(), &["--max-body", "200MiB"])).await;
    const CHUNK: usize = 64 * 1024;
    const TOTAL: usize = 100 * 1024 * 1024;
    let before = common::peak_rss_kib();
    let mut c = Client::connect(&d).await;
    c.send(&format!(
        "POST /alpha/rpc/upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: {TOTAL}\r\n\r\n"
    ))
    .await;
    let chunk = vec![7u8; CHUNK];
    for _ in 0..TOTAL / CHUNK {
        c.s.write_all(&chunk).await.unwrap();
    }
    let r = c.response(false).await;
    assert_eq!(r.status(), 200, "{r:?}");
    let v = common::json(std::str::from_utf8(&r.body).unwrap());
    assert_eq!(v["bytes"], TOTAL as u64);
    // Client, router and service share this process: had anything buffered the body whole,
    // the peak would have grown by at least 100 MB.
    let grown_mib = common::peak_rss_kib().saturating_sub(before) / 1024;
    assert!(grown_mib < 50, "peak RSS grew by {grown_mib} MiB");
    // The connection is still in step: a next request is answered.
    c.send(&get("/alpha/rpc/health")).await;
    assert_eq!(c.response(false).await.status(), 200);
    d.stop().await;
}

#[tokio::test]
async fn a_client_leaving_a_quiet_stream_releases_the_upstream() {
    let root = tempfile::tempdir().unwrap();
    // Sends a head and one event, then stays quiet; reports when the router hangs up.
    let l = UnixListener::bind(service_dir(root.path(), "sse").join("rpc.sock")).unwrap();
    let (hung_up, mut hung_up_rx) = tokio::sync::mpsc::channel::<()>(1);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let hung_up = hung_up.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                if read_request(&mut s, &mut buf).await.is_none() {
                    return; // a probe
                }
                s.write_all(
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nevent1\r\n",
                )
                .await
                .unwrap();
                let mut rest = [0u8; 64];
                while matches!(s.read(&mut rest).await, Ok(n) if n > 0) {}
                let _ = hung_up.send(()).await;
            });
        }
    });
    let d = daemon(root.path()).await;
    let mut c = Client::connect(&d).await;
    c.send(&get("/sse/rpc/events")).await;
    while find(&c.buf, b"event1").is_none() {
        assert!(c.fill().await > 0);
    }
    drop(c);
    let released = tokio::time::timeout(Duration::from_secs(10), hung_up_rx.recv()).await;
    assert!(
        released.is_ok(),
        "the router kept the stream's upstream open"
    );
    d.stop().await;
}

#[tokio::test]
async fn on_shutdown_the_answer_in_flight_is_the_connections_last() {
    let root = tempfile::tempdir().unwrap();
    // Says when the request is in, answers when told to.
    let l = UnixListener::bind(service_dir(root.path(), "svc").join("rpc.sock")).unwrap();
    let (arrived, mut arrived_rx) = tokio::sync::mpsc::channel::<()>(1);
    let go = Arc::new(tokio::sync::Notify::new());
    let go_up = go.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let (arrived, go) = (arrived.clone(), go_up.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                if read_request(&mut s, &mut buf).await.is_some() {
                    arrived.send(()).await.unwrap();
                    go.notified().await;
                    s.write_all(OK).await.unwrap();
                }
            });
        }
    });
    let d = daemon(root.path()).await;
    let mut c = Client::connect(&d).await;
    c.send(&get("/svc/rpc/slow")).await;
    arrived_rx.recv().await.unwrap();
    d.token.cancel();
    go.notify_one();
    let r = c.response(false).await;
    assert_eq!((r.status(), r.body.as_slice()), (200, &b"ok"[..]));
    assert_eq!(r.header("connection"), Some("close"), "{r:?}");
    assert!(c.closed().await);
    d.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn an_endless_response_head_is_a_502_not_a_growing_buffer() {
    let root = tempfile::tempdir().unwrap();
    // A head that never ends: one header line of 1 MiB (many short lines would be caught
    // earlier, by the header count limit).
    let l = UnixListener::bind(service_dir(root.path(), "svc").join("rpc.sock")).unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                if read_request(&mut s, &mut buf).await.is_some() {
                    let _ = s.write_all(b"HTTP/1.1 200 OK\r\nX-Filler: ").await;
                    let piece = [b'a'; 4096];
                    for _ in 0..256 {
                        if s.write_all(&piece).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    let d = daemon(root.path()).await;
    let mut c = Client::connect(&d).await;
    c.send(&get("/svc/rpc/x")).await;
    let r = c.response(false).await;
    assert_eq!(r.status(), 502, "{r:?}");
    let v = common::json(std::str::from_utf8(&r.body).unwrap());
    assert!(v["error"].as_str().unwrap().contains("larger than"), "{v}");
    // The same through method routing (the forwarding pool).
    let (status, text) = common::rpc(&d, r#"{"jsonrpc":"2.0","id":7,"method":"svc.x"}"#).await;
    assert_eq!(status, 200);
    let v = common::json(&text);
    assert_eq!(v["error"]["code"], -32004, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("larger than"),
        "{v}"
    );
    d.stop().await;
}

#[tokio::test]
async fn routing_errors_skip_a_whole_body_and_close_on_a_partial_one() {
    let root = tempfile::tempdir().unwrap();
    let _up = Upstream::bind(root.path(), "svc", |_| Reply::Send(OK));
    let d = daemon(root.path()).await;
    let mut c = Client::connect(&d).await;
    // A whole body with the error: skipped, and the next request on the connection is clean.
    c.send("POST /nosuch/rpc/x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\n\r\nbody")
        .await;
    let r = c.response(false).await;
    assert_eq!(r.status(), 404, "{r:?}");
    assert_eq!(r.header("connection"), None);
    c.send("GET /svc/rpc/%2e%2e/x HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await;
    assert_eq!(c.response(false).await.status(), 400);
    c.send(&get("/svc/rpc/ok")).await;
    let ok = c.response(false).await;
    assert_eq!((ok.status(), ok.body.as_slice()), (200, &b"ok"[..]));
    // Part of a body still to come: the answer closes the connection.
    c.send("POST /nosuch/rpc/x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n0123")
        .await;
    let r = c.response(false).await;
    assert_eq!(r.status(), 404, "{r:?}");
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.closed().await);
    d.stop().await;
}
