//! The whole daemon in-process (temp root, TCP port 0) with real example services: JSON-RPC
//! routing (docs/json-rpc.md#method-routing) and HTTP routing (docs/http.md#routes).

mod common;

use std::time::Duration;

use axum::response::IntoResponse;
use bytes::Bytes;
use common::{
    Daemon, busy_socket, dead_socket, json, request, rpc, serve_config, service_dir, start_daemon,
    tcp, uds,
};
use futures_util::{SinkExt, StreamExt};
use hero_example_service::{ServiceConfig, spawn};
use http_body_util::{BodyExt, Full};

async fn daemon_with_services(
    extra: &[&str],
) -> (
    tempfile::TempDir,
    Daemon,
    Vec<hero_example_service::RunningService>,
) {
    let root = tempfile::tempdir().unwrap();
    let a = spawn(ServiceConfig::new(root.path(), "alpha"))
        .await
        .unwrap();
    let b = spawn(ServiceConfig::new(root.path(), "beta"))
        .await
        .unwrap();
    let d = start_daemon(serve_config(root.path(), extra)).await;
    (root, d, vec![a, b])
}

#[tokio::test]
async fn router_methods() {
    let (_root, d, _svcs) = daemon_with_services(&[]).await;
    let (s, body) = rpc(&d, r#"{"jsonrpc":"2.0","id":1,"method":"router.health"}"#).await;
    assert_eq!(s, 200);
    let v = json(&body)["result"].clone();
    assert_eq!(
        (v["status"].as_str(), v["ready"].as_bool()),
        (Some("ok"), Some(true))
    );
    assert!(
        v["version"].is_string() && v["uptime_secs"].is_u64() && v["services"].as_u64() == Some(3),
        "{v}"
    );

    let v = json(
        &rpc(&d, r#"{"jsonrpc":"2.0","id":2,"method":"router.services"}"#)
            .await
            .1,
    );
    let names: Vec<_> = v["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["alpha", "beta", "hero_router"]);
    assert_eq!(v["result"][0]["status"], "healthy");
    assert_eq!(v["result"][0]["sockets"][0]["state"], "live");

    for params in [r#"{"name":"beta"}"#, r#"["beta"]"#] {
        let body =
            format!(r#"{{"jsonrpc":"2.0","id":3,"method":"router.service","params":{params}}}"#);
        assert_eq!(json(&rpc(&d, &body).await.1)["result"]["name"], "beta");
    }
    let v = json(
        &rpc(
            &d,
            r#"{"jsonrpc":"2.0","id":4,"method":"router.service","params":{"name":"nope"}}"#,
        )
        .await
        .1,
    );
    assert_eq!(v["error"]["code"], -32001);
    assert_eq!(v["error"]["data"]["service"], "nope");
    for bad in [r#"{"nom":"x"}"#, r#"[1]"#, r#"["a","b"]"#] {
        let body =
            format!(r#"{{"jsonrpc":"2.0","id":5,"method":"router.service","params":{bad}}}"#);
        assert_eq!(
            json(&rpc(&d, &body).await.1)["error"]["code"],
            -32602,
            "{bad}"
        );
    }
    // The message lists every form router.spec takes.
    let v = json(
        &rpc(
            &d,
            r#"{"jsonrpc":"2.0","id":5,"method":"router.spec","params":[1]}"#,
        )
        .await
        .1,
    );
    assert_eq!(v["error"]["code"], -32602, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .ends_with("[S] or [S, bool]"),
        "{v}"
    );
    let v = json(
        &rpc(&d, r#"{"jsonrpc":"2.0","id":6,"method":"router.scan"}"#)
            .await
            .1,
    )["result"]
        .clone();
    for key in [
        "services",
        "sockets",
        "live",
        "busy",
        "refused",
        "reaped",
        "duration_ms",
    ] {
        assert!(v.get(key).is_some(), "{key} missing: {v}");
    }
    assert_eq!(v["live"], 4);
    let v = json(
        &rpc(
            &d,
            r#"{"jsonrpc":"2.0","id":7,"method":"router.spec","params":["alpha"]}"#,
        )
        .await
        .1,
    );
    assert_eq!(v["result"]["info"]["title"], "Hero example service", "{v}");
    assert_eq!(
        json(
            &rpc(
                &d,
                r#"{"jsonrpc":"2.0","id":8,"method":"router.spec","params":{"name":"zz"}}"#
            )
            .await
            .1
        )["error"]["code"],
        -32001
    );
    let v = json(
        &rpc(&d, r#"{"jsonrpc":"2.0","id":9,"method":"rpc.discover"}"#)
            .await
            .1,
    );
    assert_eq!(v["result"]["openrpc"], "1.3.2");
    assert_eq!(
        json(
            &rpc(&d, r#"{"jsonrpc":"2.0","id":10,"method":"router.nope"}"#)
                .await
                .1
        )["error"]["code"],
        -32601
    );
    assert_eq!(
        json(
            &rpc(&d, r#"{"jsonrpc":"2.0","id":11,"method":"nodot"}"#)
                .await
                .1
        )["error"]["code"],
        -32601
    );

    // The same over rpc.sock, plus the standard endpoints of every Hero rpc socket.
    let (s, _, b) = uds(
        &d.rpc,
        request(
            "POST",
            "/rpc",
            r#"{"jsonrpc":"2.0","id":1,"method":"router.health"}"#,
        ),
    )
    .await;
    assert_eq!(
        (
            s.as_u16(),
            json(std::str::from_utf8(&b).unwrap())["result"]["status"].as_str()
        ),
        (200, Some("ok"))
    );
    for path in ["/openrpc.json", "/health", "/.well-known/heroservice.json"] {
        let (s, _, b) = uds(&d.rpc, request("GET", path, "")).await;
        assert_eq!(s, 200, "{path}");
        json(std::str::from_utf8(&b).unwrap());
    }
    let (s, _, b) = uds(&d.rpc, request("GET", "/.well-known/heroservice.json", "")).await;
    assert_eq!(
        (
            s.as_u16(),
            json(std::str::from_utf8(&b).unwrap())["protocol"].as_str()
        ),
        (200, Some("openrpc"))
    );
    d.stop().await;
}

#[tokio::test]
async fn ids_round_trip_exactly_through_forwarding() {
    let (_root, d, _svcs) = daemon_with_services(&[]).await;
    for id in ["1", "-1", "1.5", "\"x\"", "null", "18446744073709551616"] {
        for method in ["alpha.echo", "router.health"] {
            let body = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":[1]}}"#);
            let (s, text) = rpc(&d, &body).await;
            assert_eq!(s, 200);
            assert!(
                text.contains(&format!(r#""id":{id}"#)),
                "{method} id {id}: {text}"
            );
        }
    }
    let (_, text) = rpc(
        &d,
        r#"{"jsonrpc":"2.0","id":1,"method":"alpha.echo","params":{"b":1.10, "a":[1,2]}}"#,
    )
    .await;
    assert!(
        text.contains(r#"{"b":1.10, "a":[1,2]}"#),
        "params pass through byte for byte: {text}"
    );
    d.stop().await;
}

#[tokio::test]
async fn notifications_and_batches() {
    let (_root, d, _svcs) = daemon_with_services(&[]).await;
    let (s, _, b) = tcp(
        &d,
        request(
            "POST",
            "/rpc",
            r#"{"jsonrpc":"2.0","method":"alpha.echo","params":[1]}"#,
        ),
    )
    .await;
    assert_eq!((s.as_u16(), b.len()), (204, 0));
    let (s, _, b) = tcp(
        &d,
        request(
            "POST",
            "/rpc",
            r#"{"jsonrpc":"2.0","method":"router.health"}"#,
        ),
    )
    .await;
    assert_eq!((s.as_u16(), b.len()), (204, 0));

    let batch = r#"[
        {"jsonrpc":"2.0","id":"h","method":"router.health"},
        {"jsonrpc":"2.0","id":1,"method":"alpha.add","params":[2,3]},
        {"jsonrpc":"2.0","method":"beta.echo","params":["note"]},
        {"jsonrpc":"2.0","id":2,"method":"beta.echo","params":["b"]},
        {"jsonrpc":"2.0","id":3,"method":"nosuch.call"},
        7
    ]"#;
    let (s, text) = rpc(&d, batch).await;
    assert_eq!(s, 200);
    let v = json(&text);
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 5, "notification omitted: {text}");
    assert_eq!(arr[0]["id"], "h");
    assert_eq!(arr[0]["result"]["status"], "ok");
    assert_eq!(
        (arr[1]["id"].as_i64(), arr[1]["result"].as_i64()),
        (Some(1), Some(5))
    );
    assert_eq!(arr[2]["result"], serde_json::json!(["b"]));
    assert_eq!(
        (arr[3]["id"].as_i64(), arr[3]["error"]["code"].as_i64()),
        (Some(3), Some(-32001))
    );
    assert_eq!(arr[3]["error"]["data"]["service"], "nosuch");
    assert_eq!(arr[4]["error"]["code"], -32600);

    let (s, _, b) = tcp(&d, request("POST", "/rpc", r#"[{"jsonrpc":"2.0","method":"alpha.echo"},{"jsonrpc":"2.0","method":"router.health"}]"#)).await;
    assert_eq!(
        (s.as_u16(), b.len()),
        (204, 0),
        "an all-notification batch gets no body"
    );
    let v = json(&rpc(&d, "[]").await.1);
    assert_eq!(
        (v["error"]["code"].as_i64(), v["id"].is_null()),
        (Some(-32600), true)
    );
    d.stop().await;
}

#[tokio::test]
async fn router_error_codes() {
    let root = tempfile::tempdir().unwrap();
    let _ok = spawn(ServiceConfig::new(root.path(), "ok")).await.unwrap();
    dead_socket(&service_dir(root.path(), "dead").join("rpc.sock"));
    let _busy = busy_socket(&service_dir(root.path(), "jammed").join("rpc.sock"));
    // A service that answers HTTP but not JSON-RPC.
    let junk = service_dir(root.path(), "junk").join("rpc.sock");
    let junk_l = tokio::net::UnixListener::bind(&junk).unwrap();
    let app = axum::Router::new().route(
        "/rpc",
        axum::routing::post(|| async { "hello, not json-rpc" }),
    );
    tokio::spawn(async move { axum::serve(junk_l, app).await.unwrap() });
    let d = start_daemon(serve_config(root.path(), &["--upstream-timeout", "500ms"])).await;

    let err = |v: serde_json::Value| {
        (
            v["error"]["code"].as_i64().unwrap(),
            v["error"]["data"]["service"].as_str().map(str::to_owned),
        )
    };
    let call =
        |m: &str, p: &str| format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{m}","params":{p}}}"#);
    assert_eq!(
        err(json(&rpc(&d, &call("ghost.x", "[]")).await.1)),
        (-32001, Some("ghost".into()))
    );
    assert_eq!(
        err(json(&rpc(&d, &call("dead.x", "[]")).await.1)),
        (-32002, Some("dead".into()))
    );
    assert_eq!(
        err(json(&rpc(&d, &call("jammed.x", "[]")).await.1)),
        (-32002, Some("jammed".into()))
    );
    assert_eq!(
        err(json(&rpc(&d, &call("ok.sleep_ms", "[3000]")).await.1)),
        (-32003, Some("ok".into()))
    );
    assert_eq!(
        err(json(&rpc(&d, &call("junk.x", "[]")).await.1)),
        (-32004, Some("junk".into()))
    );
    let v = json(&rpc(&d, &call("ok.nosuchmethod", "[]")).await.1);
    assert_eq!(
        v["error"]["code"], -32601,
        "the service's own answer is returned as is"
    );
    let v = json(&rpc(&d, "{not json").await.1);
    assert_eq!(
        (v["error"]["code"].as_i64(), v["id"].is_null()),
        (Some(-32700), true)
    );
    let (_, text) = rpc(&d, r#"{"jsonrpc":"2.0","id":1,"method":"dead.x"}"#).await;
    assert!(
        json(&text)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("dead"),
        "a message a person can act on: {text}"
    );
    d.stop().await;
}

#[tokio::test]
async fn http_routes_prefix_query_and_headers() {
    let root = tempfile::tempdir().unwrap();
    let _svc = spawn(ServiceConfig::new(root.path(), "svc")).await.unwrap();
    let mut ui = ServiceConfig::new(root.path(), "legacy");
    ui.kind = "ui".into();
    let _ui = spawn(ui).await.unwrap();
    let mut web = ServiceConfig::new(root.path(), "svc");
    web.kind = "web_docs".into();
    let _web = spawn(web).await.unwrap();
    let d = start_daemon(serve_config(root.path(), &[])).await;

    let mut req = request("GET", "/svc/rpc/headers?x=1&y=a%20b", "");
    req.headers_mut()
        .insert("x-hero-context", "7".parse().unwrap());
    req.headers_mut()
        .insert("x-hero-claims", "admin".parse().unwrap());
    req.headers_mut()
        .insert("x-custom", "kept".parse().unwrap());
    let (s, _, b) = tcp(&d, req.clone()).await;
    assert_eq!(s, 200);
    let v = json(std::str::from_utf8(&b).unwrap());
    assert_eq!(v["path"], "/headers");
    assert_eq!(v["query"], "x=1&y=a%20b");
    assert_eq!(v["x-forwarded-prefix"], "/svc/rpc");
    assert_eq!(v["x-forwarded-for"], "127.0.0.1");
    assert_eq!(v["x-custom"], "kept");
    assert!(
        v.get("x-hero-context").is_none() && v.get("x-hero-claims").is_none(),
        "stripped on TCP: {v}"
    );
    let (_, _, b) = uds(&d.admin, req).await;
    let v = json(std::str::from_utf8(&b).unwrap());
    assert_eq!(
        (v["x-hero-context"].as_str(), v["x-hero-claims"].as_str()),
        (Some("7"), Some("admin")),
        "kept on the Unix socket"
    );

    let (s, _, b) = tcp(&d, request("GET", "/legacy/admin/headers", "")).await;
    assert_eq!(s, 200, "admin falls back to ui.sock");
    assert_eq!(
        json(std::str::from_utf8(&b).unwrap())["x-forwarded-prefix"],
        "/legacy/admin"
    );
    let (s, _, b) = tcp(&d, request("GET", "/svc/docs/headers", "")).await;
    assert_eq!(s, 200, "a web name reaches web_<name>.sock");
    assert_eq!(json(std::str::from_utf8(&b).unwrap())["path"], "/headers");

    // Without the trailing slash a page's relative URLs would break: GET and HEAD are sent to
    // the slash form, the query kept; other methods are forwarded as before (to `/`).
    for (method, path, location) in [
        ("GET", "/svc/docs", "/svc/docs/"),
        ("HEAD", "/svc/docs", "/svc/docs/"),
        ("GET", "/svc/rpc?x=1&y=%20", "/svc/rpc/?x=1&y=%20"),
        ("GET", "/nosuch/web", "/nosuch/web/"),
    ] {
        let (s, h, _) = tcp(&d, request(method, path, "")).await;
        assert_eq!(s, 308, "{method} {path}");
        assert_eq!(h["location"], location, "{method} {path}");
        assert_eq!(h["x-hero-router-error"], "add_slash");
    }
    // The service itself answers the slash form and a POST without the slash (its 404 for
    // `/`, not one of the router's).
    for (method, path) in [("GET", "/svc/docs/"), ("POST", "/svc/docs")] {
        let (_, h, _) = tcp(&d, request(method, path, "{}")).await;
        assert!(
            h.get("x-hero-router-error").is_none(),
            "{method} {path} reached the service: {h:?}"
        );
    }

    // rpc.sock routes nothing: its 404 says what it serves and where the rest is.
    for path in ["/", "/svc/rpc/headers", "/docs/"] {
        let (s, _, b) = uds(&d.rpc, request("GET", path, "")).await;
        assert_eq!(s, 404, "{path}");
        let error = json(std::str::from_utf8(&b).unwrap())["error"].to_string();
        assert!(
            error.contains("rpc.sock serves POST /rpc") && error.contains("on admin.sock and TCP"),
            "{path}: {error}"
        );
    }

    let (s, _, b) = tcp(&d, request("GET", "/health", "")).await;
    assert_eq!(
        (
            s.as_u16(),
            json(std::str::from_utf8(&b).unwrap())["status"].as_str()
        ),
        (200, Some("ok"))
    );
    let (s, _, b) = tcp(&d, request("GET", "/api/services", "")).await;
    assert_eq!(s, 200);
    assert!(
        json(std::str::from_utf8(&b).unwrap())
            .as_array()
            .unwrap()
            .len()
            >= 3
    );
    let (s, h, b) = tcp(&d, request("GET", "/metrics", "")).await;
    let text = String::from_utf8(b.to_vec()).unwrap();
    assert_eq!(s, 200);
    assert!(
        h["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert!(
        text.contains(r#"hero_router_requests_total{service="svc",kind="rpc",status="200"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"hero_router_sockets{state="live"}"#)
            && text.contains("hero_router_scans_total"),
        "{text}"
    );
    d.stop().await;
}

#[tokio::test]
async fn http_error_statuses() {
    let root = tempfile::tempdir().unwrap();
    let _svc = spawn(ServiceConfig::new(root.path(), "svc")).await.unwrap();
    dead_socket(&service_dir(root.path(), "dead").join("rpc.sock"));
    let _busy = busy_socket(&service_dir(root.path(), "jammed").join("rpc.sock"));
    let d = start_daemon(serve_config(
        root.path(),
        &["--upstream-timeout", "500ms", "--max-body", "1KiB"],
    ))
    .await;
    let cases = [
        ("GET", "/ghost/rpc/x", 404, Some("ghost")),
        ("GET", "/svc/nosock/x", 404, Some("svc")),
        ("GET", "/dead/rpc/health", 502, Some("dead")),
        ("GET", "/jammed/rpc/health", 503, Some("jammed")),
        ("GET", "/svc/rpc/../../etc/passwd", 400, None),
        ("GET", "/svc/rpc/%2e%2e/x", 400, None),
        ("GET", "/svc/rpc/a%2Fb", 400, None),
        ("GET", "/svc/rpc/a%00b", 400, None),
        ("GET", "/bad.name/rpc/x", 400, None),
        ("GET", "/nothing", 404, None),
    ];
    for (method, path, status, service) in cases {
        let (s, h, b) = tcp(&d, request(method, path, "")).await;
        assert_eq!(s.as_u16(), status, "{path}");
        let v = json(std::str::from_utf8(&b).unwrap());
        assert!(v["error"].is_string(), "{path}: {v}");
        assert_eq!(v["service"].as_str(), service, "{path}");
        assert_eq!(h.contains_key("retry-after"), status == 503, "{path}");
    }
    // Timeout: the response head does not come within --upstream-timeout.
    let slow = r#"{"jsonrpc":"2.0","id":1,"method":"sleep_ms","params":[3000]}"#;
    let (s, _, _) = tcp(&d, request("POST", "/svc/rpc/rpc", slow)).await;
    assert_eq!(s, 504);
    // Body over --max-body, declared and streamed.
    let big = "x".repeat(4096);
    let (s, _, b) = tcp(&d, request("POST", "/svc/rpc/upload", &big)).await;
    assert_eq!(s, 413, "{b:?}");
    let (s, _, _) = tcp(&d, request("POST", "/rpc", &big)).await;
    assert_eq!(s, 413);
    // A wrong method on one of the router's own endpoints: 405 with a JSON reason.
    let (s, _, b) = tcp(&d, request("GET", "/rpc", "")).await;
    assert_eq!(s, 405);
    assert!(
        json(std::str::from_utf8(&b).unwrap())["error"]
            .as_str()
            .unwrap()
            .contains("POST /rpc")
    );
    // The daemon is still up.
    assert_eq!(
        rpc(&d, r#"{"jsonrpc":"2.0","id":1,"method":"router.health"}"#)
            .await
            .0,
        200
    );
    d.stop().await;
}

#[tokio::test]
async fn websocket_echo_through_the_proxy() {
    let (_root, d, _svcs) = daemon_with_services(&[]).await;
    let url = format!("ws://{}/alpha/rpc/ws", d.tcp);
    let (mut ws, resp) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert_eq!(resp.status(), 101);
    use tokio_tungstenite::tungstenite::Message;
    ws.send(Message::text("hello")).await.unwrap();
    let echoed = ws.next().await.unwrap().unwrap();
    assert_eq!(echoed, Message::text("hello"));
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::binary(vec![1u8, 2, 3])
    );
    ws.close(None).await.unwrap();
    d.stop().await;
}

#[tokio::test]
async fn sse_events_arrive_as_they_are_produced() {
    let (_root, d, _svcs) = daemon_with_services(&[]).await;
    // The second event comes only after a minute: if the proxy buffered the stream, the first
    // would not arrive before the deadline.
    let stream = tokio::net::TcpStream::connect(d.tcp).await.unwrap();
    let (mut tx, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let resp = tx
        .send_request(request("GET", "/alpha/rpc/sse?n=2&interval_ms=60000", ""))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.into_body();
    let first = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let frame = body
                .frame()
                .await
                .expect("stream ended")
                .expect("stream error");
            if let Ok(data) = frame.into_data() {
                if !data.is_empty() {
                    return data;
                }
            }
        }
    })
    .await
    .expect("the first event must arrive long before the stream ends");
    assert!(
        String::from_utf8_lossy(&first).contains(r#""seq":0"#),
        "{first:?}"
    );
    drop(body);
    d.stop().await;
}

#[tokio::test]
async fn a_100_mb_upload_streams_through() {
    let (_root, d, _svcs) = daemon_with_services(&["--max-body", "200MiB"]).await;
    const CHUNK: usize = 64 * 1024;
    const TOTAL: usize = 100 * 1024 * 1024;
    let before = common::peak_rss_kib();
    let chunks =
        futures_util::stream::iter((0..TOTAL / CHUNK).map(|_| {
            Ok::<_, std::io::Error>(hyper::body::Frame::data(Bytes::from(vec![7u8; CHUNK])))
        }));
    let body = http_body_util::StreamBody::new(chunks);
    let req = http::Request::post("/alpha/rpc/upload")
        .header("host", "localhost")
        .body(body)
        .unwrap();
    let stream = tokio::net::TcpStream::connect(d.tcp).await.unwrap();
    let (mut tx, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let resp = tx.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let b = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        json(std::str::from_utf8(&b).unwrap())["bytes"],
        TOTAL as u64
    );
    // Client, router and service share this process: had anything buffered the body whole,
    // the peak would have grown by at least 100 MB.
    let grown_mib = (common::peak_rss_kib().saturating_sub(before)) / 1024;
    assert!(grown_mib < 50, "peak RSS grew by {grown_mib} MiB");
    d.stop().await;
}

#[tokio::test]
async fn a_replaced_socket_never_gets_the_old_servers_connection() {
    let root = tempfile::tempdir().unwrap();
    let path = service_dir(root.path(), "svc").join("web_who.sock");
    let serve = |who: &'static str, l: tokio::net::UnixListener| {
        let app = axum::Router::new().route("/", axum::routing::get(move || async move { who }));
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() })
    };
    let _old = serve("old", tokio::net::UnixListener::bind(&path).unwrap());
    let d = start_daemon(serve_config(root.path(), &[])).await;
    let (_, _, b) = tcp(&d, request("GET", "/svc/who/", "")).await;
    assert_eq!(b, Bytes::from("old"));
    // A new server takes the path while the old one keeps running (and keeps its pooled
    // keep-alive connection from the router).
    std::fs::remove_file(&path).unwrap();
    let _new = serve("new", tokio::net::UnixListener::bind(&path).unwrap());
    d.rescan().await;
    for _ in 0..5 {
        let (_, _, b) = tcp(&d, request("GET", "/svc/who/", "")).await;
        assert_eq!(b, Bytes::from("new"));
    }
    d.stop().await;
}

#[tokio::test]
async fn shutdown_lets_the_request_in_flight_finish() {
    let root = tempfile::tempdir().unwrap();
    // A service that says when a request has arrived, then takes 300 ms to answer it.
    let arrived = std::sync::Arc::new(tokio::sync::Notify::new());
    let l =
        tokio::net::UnixListener::bind(service_dir(root.path(), "slow").join("rpc.sock")).unwrap();
    let a = arrived.clone();
    let app = axum::Router::new().route(
        "/rpc",
        axum::routing::post(move |body: String| {
            let a = a.clone();
            async move {
                // The router's catalog asks for `rpc.discover`; only the test's call counts.
                if !body.contains("\"work\"") {
                    return r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"no"}}"#;
                }
                a.notify_one();
                // The service's own work time, during which the router shuts down.
                tokio::time::sleep(Duration::from_millis(300)).await; // the simulated work itself, not a wait
                r#"{"jsonrpc":"2.0","id":1,"result":"done"}"#
            }
        }),
    );
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    let d = start_daemon(serve_config(root.path(), &[])).await;
    assert!(matches!(
        hero_socket::OwnerLock::try_existing(&d.rpc).unwrap(),
        hero_socket::TryLock::Held
    ));
    let addr = d.tcp;
    let in_flight = tokio::spawn(async move {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        common::exchange(
            stream,
            request(
                "POST",
                "/rpc",
                r#"{"jsonrpc":"2.0","id":1,"method":"slow.work"}"#,
            ),
        )
        .await
    });
    arrived.notified().await;
    let (rpc_path, admin_path) = (d.rpc.clone(), d.admin.clone());
    d.token.cancel();
    let (s, headers, b) = in_flight.await.unwrap();
    assert_eq!(s, 200);
    assert_eq!(json(std::str::from_utf8(&b).unwrap())["result"], "done");
    // The connection's last answer says so.
    assert_eq!(
        headers.get("connection").map(|v| v.as_bytes()),
        Some(&b"close"[..])
    );
    d.task.await.unwrap().unwrap();
    assert!(
        !rpc_path.exists() && !admin_path.exists(),
        "own sockets are gone after exit"
    );
    assert!(
        hero_socket::lock_path(&rpc_path).exists(),
        "lock files stay"
    );
}

#[tokio::test]
async fn hostile_input_gets_clear_errors_and_the_daemon_stays_up() {
    let root = tempfile::tempdir().unwrap();
    let _svc = spawn(ServiceConfig::new(root.path(), "svc")).await.unwrap();
    let d = start_daemon(serve_config(
        root.path(),
        &["--header-timeout", "300ms", "--max-header-size", "16KiB"],
    ))
    .await;

    // Invalid UTF-8 and invalid JSON.
    let req = http::Request::post("/rpc")
        .header("host", "localhost")
        .body(Full::new(Bytes::from_static(b"\xff\xfe{")))
        .unwrap();
    let (s, _, b) = tcp(&d, req).await;
    assert_eq!(
        (
            s.as_u16(),
            json(std::str::from_utf8(&b).unwrap())["error"]["code"].as_i64()
        ),
        (200, Some(-32700))
    );
    // 100,000 levels deep.
    let deep = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"svc.echo","params":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert_eq!(json(&rpc(&d, &deep).await.1)["error"]["code"], -32700);
    // A batch of 100,000 elements: one bounded error.
    let batch = format!(
        "[{}]",
        vec![r#"{"jsonrpc":"2.0","id":1,"method":"router.health"}"#; 100_000].join(",")
    );
    let (s, text) = rpc(&d, &batch).await;
    assert_eq!(s, 200);
    let v = json(&text);
    assert_eq!(v["error"]["code"], -32600);
    assert!(
        v["error"]["message"].as_str().unwrap().contains("limit"),
        "{v}"
    );
    // Headers too big.
    let mut req = request("GET", "/health", "");
    req.headers_mut()
        .insert("x-big", "a".repeat(32 * 1024).parse().unwrap());
    let stream = tokio::net::TcpStream::connect(d.tcp).await.unwrap();
    let (s, _, _) = common::exchange(stream, req).await;
    assert_eq!(s, 431);
    // A client that sends its headers one byte at a time, too slowly: cut off, with a 4xx if
    // anything is answered at all.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut slow = tokio::net::TcpStream::connect(d.tcp).await.unwrap();
    slow.write_all(b"G").await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), slow.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the slow client must be disconnected");
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
        "{answer}"
    );
    // A client that stops sending its body half way, to /rpc, to a service through the proxy
    // (the body streams to it), or in chunks: 408 once it paused for --header-timeout, and
    // the connection ends (it held a connection slot, and a slot of the service's).
    for (path, framing, first) in [
        ("/rpc", "Content-Length: 100", &b"{"[..]),
        ("/svc/rpc/rpc", "Content-Length: 100", b"{"),
        ("/svc/rpc/rpc", "Transfer-Encoding: chunked", b"1\r\n{\r\n"),
    ] {
        let mut stalled = tokio::net::TcpStream::connect(d.tcp).await.unwrap();
        let head = format!("POST {path} HTTP/1.1\r\nHost: localhost\r\n{framing}\r\n\r\n");
        stalled.write_all(head.as_bytes()).await.unwrap();
        stalled.write_all(first).await.unwrap();
        let mut answer = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(20), stalled.read_to_end(&mut answer)).await;
        assert!(
            read.is_ok(),
            "{path}: a stalled body must end its connection"
        );
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{path}: {answer}");
        assert!(
            answer.contains("body_timeout") && answer.contains("stalled"),
            "{answer}"
        );
    }
    // Still up.
    assert_eq!(
        rpc(&d, r#"{"jsonrpc":"2.0","id":1,"method":"router.health"}"#)
            .await
            .0,
        200
    );
    let (s, _, _) = tcp(&d, request("GET", "/svc/rpc/health", "")).await;
    assert_eq!(s, 200);
    d.stop().await;
}

/// A first line that is no request line is answered as soon as it is seen (TLS or SSH on the
/// HTTP port, HTTP/0.9, a space in the target), not after --header-timeout of silence.
#[tokio::test]
async fn a_head_that_is_already_no_request_is_refused_at_once() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let root = tempfile::tempdir().unwrap();
    let d = start_daemon(serve_config(root.path(), &["--header-timeout", "1h"])).await;
    for (sent, status, says) in [
        (
            &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..],
            400,
            "malformed",
        ),
        (b"SSH-2.0-OpenSSH_9.6\r\n", 400, "malformed"),
        (b"GET /x\r\n", 400, "request line"),
        (b"GET /a b HTTP/1.1\r\nHost: localhost\r\n", 400, "%20"),
    ] {
        let mut s = tokio::net::TcpStream::connect(d.tcp).await.unwrap();
        s.write_all(sent).await.unwrap();
        let mut answer = Vec::new();
        // The head never ends: only a refusal of what came so far ends the connection.
        let read = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut answer));
        assert!(read.await.is_ok(), "{sent:?}: no answer");
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")) && answer.contains(says),
            "{sent:?}: {answer}"
        );
    }
    d.stop().await;
}

#[tokio::test]
async fn per_service_concurrency_is_bounded() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let root = tempfile::tempdir().unwrap();
    let _other = spawn(ServiceConfig::new(root.path(), "other"))
        .await
        .unwrap();
    const LIMIT: usize = 2;
    // A service that records how many requests it is handling at once, and answers none until
    // LIMIT of them are in it together: then it answers those. A router that lets LIMIT calls
    // through at once gets every answer and a peak of exactly LIMIT, whatever the scheduling;
    // one that let fewer through never gets an answer (the calls time out). One that let more
    // through shows a peak over LIMIT only if the extra call reaches the service before a
    // group leaves the gate: the bound itself is `upstream::pool`'s unit test.
    let (now, peak) = (
        std::sync::Arc::new(AtomicUsize::new(0)),
        std::sync::Arc::new(AtomicUsize::new(0)),
    );
    let gate = std::sync::Arc::new(tokio::sync::Barrier::new(LIMIT));
    let l = tokio::net::UnixListener::bind(service_dir(root.path(), "counted").join("rpc.sock"))
        .unwrap();
    let (n, p) = (now.clone(), peak.clone());
    let app = axum::Router::new().route(
        "/rpc",
        axum::routing::post(move |body: String| {
            let (n, p, gate) = (n.clone(), p.clone(), gate.clone());
            async move {
                // Each answer names its call: the router passes on no answer for another id.
                let call = json(&body);
                let answer = format!(r#"{{"jsonrpc":"2.0","id":{},"result":"ok"}}"#, call["id"]);
                // The router's own calls (the catalog's rpc.discover) are not the test's.
                if call["method"] == "rpc.discover" {
                    return answer;
                }
                let cur = n.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(cur, Ordering::SeqCst);
                gate.wait().await;
                n.fetch_sub(1, Ordering::SeqCst);
                answer
            }
        }),
    );
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    let d = start_daemon(serve_config(
        root.path(),
        &[
            "--max-inflight-per-service",
            &LIMIT.to_string(),
            "--upstream-timeout",
            "10s",
        ],
    ))
    .await;
    // A multiple of LIMIT: every group fills the gate.
    let batch = format!(
        "[{}]",
        (0..4 * LIMIT)
            .map(|i| format!(r#"{{"jsonrpc":"2.0","id":{i},"method":"counted.x"}}"#))
            .collect::<Vec<_>>()
            .join(",")
    );
    let v = json(&rpc(&d, &batch).await.1);
    assert_eq!(v.as_array().unwrap().len(), 4 * LIMIT);
    // All answered: the gate opened every time, so batch elements ran LIMIT at once (a
    // sequential batch would have left the first call at the gate until it timed out).
    assert!(
        v.as_array().unwrap().iter().all(|r| r["result"] == "ok"),
        "{v}"
    );
    let seen = peak.load(Ordering::SeqCst);
    // And never more than the limit at once.
    assert_eq!(
        seen, LIMIT,
        "the service saw {seen} concurrent calls with a limit of {LIMIT}"
    );
    // Another service is not affected by this one's limit.
    assert_eq!(
        json(
            &rpc(
                &d,
                r#"{"jsonrpc":"2.0","id":3,"method":"other.add","params":[1,2]}"#
            )
            .await
            .1
        )["result"],
        3
    );
    d.stop().await;
}

#[tokio::test]
async fn sockets_deeper_than_sockaddr_un_still_work() {
    let top = tempfile::tempdir().unwrap();
    let root = top.path().join("r".repeat(100));
    std::fs::create_dir_all(&root).unwrap();
    let svc = spawn(ServiceConfig::new(&root, "deep")).await.unwrap();
    assert!(svc.path().as_os_str().len() > 107);
    let d = start_daemon(serve_config(&root, &[])).await;
    let v = json(
        &rpc(
            &d,
            r#"{"jsonrpc":"2.0","id":1,"method":"router.service","params":["deep"]}"#,
        )
        .await
        .1,
    );
    assert_eq!(v["result"]["sockets"][0]["state"], "live", "{v}");
    assert_eq!(
        json(
            &rpc(
                &d,
                r#"{"jsonrpc":"2.0","id":1,"method":"deep.add","params":[1,2]}"#
            )
            .await
            .1
        )["result"],
        3
    );
    let (s, _, _) = tcp(&d, request("GET", "/deep/rpc/health", "")).await;
    assert_eq!(s, 200);
    d.stop().await;
    svc.shutdown().await;
}

/// `--shutdown-grace` bounds how long shutdown waits for a request the service never answers.
#[tokio::test]
async fn shutdown_waits_only_the_grace_for_requests_in_flight() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let root = tempfile::tempdir().unwrap();
    // A service that takes every request and never answers it.
    let l =
        tokio::net::UnixListener::bind(service_dir(root.path(), "stuck").join("rpc.sock")).unwrap();
    let (arrived, mut arrived_rx) = tokio::sync::mpsc::channel::<()>(4);
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut s, _)) = l.accept().await {
            let mut buf = Vec::new();
            if common::raw::read_request(&mut s, &mut buf).await.is_some() {
                let _ = arrived.send(()).await;
                held.push(s);
            }
        }
    });
    let d = start_daemon(serve_config(
        root.path(),
        &["--shutdown-grace", "200ms", "--upstream-timeout", "1h"],
    ))
    .await;
    let addr = d.tcp;
    let in_flight = tokio::spawn(async move {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /stuck/rpc/x HTTP/1.1\r\nhost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest).await;
    });
    arrived_rx.recv().await.unwrap();
    d.token.cancel();
    // The default grace is 10 s; this one is 200 ms: shutdown ends well within the deadline.
    tokio::time::timeout(Duration::from_secs(5), d.task)
        .await
        .expect("serve ended after the grace, not after the default 10 s")
        .unwrap()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), in_flight)
        .await
        .expect("the stuck client's connection was closed")
        .unwrap();
}

#[tokio::test]
async fn routed_calls_are_counted_under_their_service() {
    let (_root, d, _svcs) = daemon_with_services(&[]).await;
    let call =
        |m: &str, id: u32| format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{m}","params":[1]}}"#);
    for i in 0..3 {
        assert_eq!(rpc(&d, &call("alpha.echo", i)).await.0, 200);
    }
    assert_eq!(rpc(&d, &call("beta.echo", 9)).await.0, 200);
    let batch = format!("[{},{}]", call("beta.echo", 1), call("beta.add", 2));
    assert_eq!(rpc(&d, &batch).await.0, 200);
    assert_eq!(rpc(&d, &call("router.health", 1)).await.0, 200);
    // Several services in one batch, and names not in the table, count as the router's.
    let mixed = format!("[{},{}]", call("alpha.echo", 1), call("beta.echo", 2));
    assert_eq!(rpc(&d, &mixed).await.0, 200);
    assert_eq!(rpc(&d, &call("made_up.echo", 1)).await.0, 200);

    let (_, _, b) = tcp(&d, request("GET", "/metrics", "")).await;
    let text = String::from_utf8(b.to_vec()).unwrap();
    let count = |service: &str| {
        let key = format!(
            r#"hero_router_requests_total{{service="{service}",kind="rpc",status="200"}} "#
        );
        text.lines()
            .find_map(|l| l.strip_prefix(key.as_str()))
            .map(|n| n.parse::<u64>().unwrap())
    };
    assert_eq!(count("alpha"), Some(3), "{text}");
    assert_eq!(count("beta"), Some(2), "{text}");
    assert_eq!(count("hero_router"), Some(3), "{text}");
    assert!(!text.contains("made_up"), "{text}");
    d.stop().await;
}

/// An error the router answers for a request to a service is counted under that service,
/// also when the error itself names none (a body over `--max-body`), as the traffic counts it.
#[tokio::test]
async fn router_made_errors_are_counted_under_the_service_asked_for() {
    let (_root, d, _svcs) = daemon_with_services(&["--max-body", "1KiB"]).await;
    let big = "x".repeat(4096);
    for _ in 0..2 {
        let (s, _, _) = tcp(&d, request("POST", "/alpha/rpc/rpc", &big)).await;
        assert_eq!(s, 413);
    }
    let (s, _, _) = tcp(&d, request("GET", "/nosuch/rpc/x", "")).await;
    assert_eq!(s, 404);
    let (_, _, b) = tcp(&d, request("GET", "/metrics", "")).await;
    let text = String::from_utf8(b.to_vec()).unwrap();
    let count = |service: &str, status: u16| {
        let key = format!(
            r#"hero_router_requests_total{{service="{service}",kind="-",status="{status}"}} "#
        );
        text.lines()
            .find_map(|l| l.strip_prefix(key.as_str()))
            .map(|n| n.parse::<u64>().unwrap())
    };
    assert_eq!(count("alpha", 413), Some(2), "{text}");
    assert_eq!(count("-", 413), None, "{text}");
    assert_eq!(count("-", 404), Some(1), "{text}");
    d.stop().await;
}

/// A routed call's answer is passed on as it is when it is one JSON-RPC 2.0 response object
/// (CONTRACT §4), whatever id it names; an answer without an id, or with an error that is no
/// error object, is `-32004` naming the service and what is wrong.
#[tokio::test]
async fn a_routed_answer_that_is_no_json_rpc_response_is_32004() {
    let root = tempfile::tempdir().unwrap();
    let sock = service_dir(root.path(), "fake").join("rpc.sock");
    let l = tokio::net::UnixListener::bind(&sock).unwrap();
    let app = axum::Router::new().route(
        "/rpc",
        axum::routing::post(|body: String| async move {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            let answer = match v["method"].as_str().unwrap() {
                "noid" => r#"{"jsonrpc":"2.0","result":1}"#.to_owned(),
                "otherid" => r#"{"jsonrpc":"2.0","id":"other","result":1}"#.to_owned(),
                "errstr" => format!(r#"{{"jsonrpc":"2.0","id":{},"error":"just a string"}}"#, v["id"]),
                "errnocode" => {
                    format!(r#"{{"jsonrpc":"2.0","id":{},"error":{{"message":"m"}}}}"#, v["id"])
                }
                "nullid" => {
                    r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"bad","data":7}}"#
                        .to_owned()
                }
                // The same id as another JSON text: the same id.
                "respelled" => r#"{"jsonrpc":"2.0","id":1.5,"result":"ok"}"#.to_owned(),
                // Bytes that are not UTF-8, in a member the router does not read.
                "badutf8" => {
                    let mut answer =
                        format!(r#"{{"jsonrpc":"2.0","id":{},"result":1,"x":"?"}}"#, v["id"])
                            .into_bytes();
                    let at = answer.len() - 3;
                    answer[at] = 0xff;
                    return answer.into_response();
                }
                _ => format!(r#"{{"jsonrpc":"2.0","id":{},"result":"fine"}}"#, v["id"]),
            };
            answer.into_response()
        }),
    );
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    let d = start_daemon(serve_config(root.path(), &[])).await;
    let call = |m: &str, id: &str| format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"fake.{m}"}}"#);
    for (m, what) in [
        ("noid", "without an id"),
        ("errstr", "integer code"),
        ("errnocode", "integer code"),
        // The router relays text: such an answer was checked, then dropped, and a call with
        // an id got no answer at all.
        ("badutf8", "not UTF-8"),
    ] {
        let v = json(&rpc(&d, &call(m, r#""q""#)).await.1);
        assert_eq!(v["id"], "q", "{m}: {v}");
        assert_eq!(v["error"]["code"], -32004, "{m}: {v}");
        assert_eq!(v["error"]["data"]["service"], "fake", "{m}: {v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("fake") && message.contains(what),
            "{m}: {v}"
        );
    }
    // JSON-RPC responses pass as they are, whatever id they name.
    for (m, body) in [
        ("otherid", r#"{"jsonrpc":"2.0","id":"other","result":1}"#),
        (
            "nullid",
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"bad","data":7}}"#,
        ),
        ("respelled", r#"{"jsonrpc":"2.0","id":1.5,"result":"ok"}"#),
    ] {
        let (_, text) = rpc(&d, &call(m, "1.50")).await;
        assert_eq!(text, body, "{m}");
    }
    // In a batch each element is answered on its own, in order.
    let batch = format!("[{},{}]", call("errstr", "1"), call("good", "2"));
    let v = json(&rpc(&d, &batch).await.1);
    assert_eq!(
        (v[0]["id"].as_i64(), v[0]["error"]["code"].as_i64()),
        (Some(1), Some(-32004)),
        "{v}"
    );
    assert_eq!(
        (v[1]["id"].as_i64(), &v[1]["result"]),
        (Some(2), &serde_json::json!("fine")),
        "{v}"
    );
    d.stop().await;
}

/// `hero_router.<m>` is the router's own method `<m>`, answered in-process as its socket would
/// answer it: never relayed there, so a method of many `hero_router.` prefixes cannot make the
/// router call itself once per prefix. Unknown router methods name the method as written
/// (cut to 256 bytes).
#[tokio::test]
async fn own_service_calls_are_answered_in_process() {
    let root = tempfile::tempdir().unwrap();
    let d = start_daemon(serve_config(root.path(), &["--upstream-timeout", "30s"])).await;
    let call = |m: &str| format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{m}"}}"#);
    let v = json(&rpc(&d, &call("hero_router.router.health")).await.1);
    assert_eq!(v["result"]["status"], "ok", "{v}");
    // Each prefix a hop would have taken off: the answer of the method without them, at once.
    let deep = format!("{}router.health", "hero_router.".repeat(300));
    let v = json(&rpc(&d, &call(&deep)).await.1);
    assert_eq!(v["result"]["status"], "ok", "{v}");
    let deep_nope = format!("{}router.nope", "hero_router.".repeat(300));
    for m in [
        "router.nope",
        "hero_router.router.nope",
        "hero_router.echo",
        deep_nope.as_str(),
    ] {
        let v = json(&rpc(&d, &call(m)).await.1);
        assert_eq!(v["error"]["code"], -32601, "{m}: {v}");
        // As written, up to 256 bytes (a longer name ends in `…` there).
        let shown = if m.len() > 256 {
            format!("{}…", &m[..256])
        } else {
            m.to_owned()
        };
        assert_eq!(
            v["error"]["message"],
            format!("method not found: {shown}"),
            "{m}"
        );
    }
    // `rpc.discover` takes no params, like the other methods without any.
    let v = json(
        &rpc(
            &d,
            r#"{"jsonrpc":"2.0","id":1,"method":"rpc.discover","params":[1]}"#,
        )
        .await
        .1,
    );
    assert_eq!(v["error"]["code"], -32602, "{v}");
    d.stop().await;
}

/// The answers of one `/rpc` body share `--max-body`: a batch holds all its answers at once,
/// so they may not take more together than one answer may (a batch of 30 answers of 15 MiB
/// held 2.3 GB). Calls past the limit get `-32004` naming it; the rest are answered, in
/// order, and a single call of the same size is answered whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batchs_answers_together_stay_within_max_body() {
    static REPLY: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":1,"result":"{}"}}"#,
            "a".repeat(400 * 1024)
        );
        let mut reply = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        reply.extend_from_slice(body.as_bytes());
        reply
    });
    let root = tempfile::tempdir().unwrap();
    let _big =
        common::raw::Upstream::bind(root.path(), "big", |_| common::raw::Reply::Send(&REPLY));
    let d = start_daemon(serve_config(root.path(), &["--max-body", "1MiB"])).await;
    let (status, one) = common::rpc(&d, r#"{"jsonrpc":"2.0","id":1,"method":"big.m"}"#).await;
    assert_eq!(status, 200);
    assert_eq!(
        json(&one)["result"].as_str().map(str::len),
        Some(400 * 1024)
    );
    let batch: Vec<String> = (0..6)
        .map(|i| format!(r#"{{"jsonrpc":"2.0","id":{i},"method":"big.m"}}"#))
        .collect();
    let (status, text) = common::rpc(&d, &format!("[{}]", batch.join(","))).await;
    assert_eq!(status, 200);
    let answers = json(&text);
    let answers = answers.as_array().expect("a reply array");
    assert_eq!(answers.len(), 6, "one answer per call");
    let whole = answers.iter().filter(|a| a["result"].is_string()).count();
    assert_eq!(whole, 2, "two answers of 400 KiB fit in 1 MiB: {text:.300}");
    for a in answers.iter().filter(|a| a["result"].is_null()) {
        assert_eq!(a["error"]["code"], -32004, "{a}");
        let message = a["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("answers of this batch together")
                && message.contains("1048576 bytes (--max-body)"),
            "{message}"
        );
    }
    d.stop().await;
}

/// While the first scan is still going (past the `--upstream-timeout` a request waits for
/// it), `router.services` and `router.methods` are `-32603` saying the router is starting,
/// not an empty list a script reads as "no services"; a routed call's `-32001` says so too,
/// and a proxied request, `GET /api/services` or a docs page is 503 "starting". Once the scan is in, the
/// same calls answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_still_on_its_first_scan_says_so() {
    let root = tempfile::tempdir().unwrap();
    let _svc =
        std::os::unix::net::UnixListener::bind(service_dir(root.path(), "svc").join("rpc.sock"))
            .unwrap();
    let cfg = serve_config(root.path(), &["--upstream-timeout", "200ms"]);
    // The first listing of `svc` waits until the test lets it go.
    let (release, held) = std::sync::mpsc::channel::<()>();
    let held = std::sync::Mutex::new(Some(held));
    let svc_dir = root.path().join("svc");
    let hook: hero_router::test_hooks::ListHook =
        std::sync::Arc::new(move |dir: &std::path::Path| {
            if dir == svc_dir {
                if let Some(rx) = held.lock().unwrap().take() {
                    let _ = rx.recv_timeout(Duration::from_secs(20));
                }
            }
        });
    let d = common::launch_daemon(cfg, Some(hook)).await;
    let call = async |method: &str| {
        let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}"}}"#);
        let (status, _, text) = tcp(&d, request("POST", "/rpc", &body)).await;
        assert_eq!(status, 200);
        json(std::str::from_utf8(&text).unwrap())
    };
    for method in ["router.services", "router.methods"] {
        let v = call(method).await;
        assert_eq!(v["error"]["code"], -32603, "{method}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("the router is still starting"),
            "{v}"
        );
    }
    let v = call("svc.m").await;
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("still starting"),
        "{v}"
    );
    // A proxied request and `GET /api/services` are 503 with `Retry-After`, not a 404 for a
    // service that is there or an empty list.
    for path in ["/svc/rpc/x", "/api/services", "/docs/"] {
        let (status, headers, body) = tcp(&d, request("GET", path, "")).await;
        assert_eq!(status, 503, "{path}");
        assert_eq!(headers["x-hero-router-error"], "starting", "{path}");
        assert_eq!(headers["retry-after"], "1", "{path}");
        let v = json(std::str::from_utf8(&body).unwrap());
        assert!(
            v["error"]
                .as_str()
                .unwrap()
                .starts_with("the router is still starting: its first scan of"),
            "{path}: {v}"
        );
    }
    // The MCP gateway too, in JSON-RPC (its clients read nothing else).
    for path in ["/mcp/svc", "/mcp"] {
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
        let mut req = request("POST", path, body);
        req.headers_mut().insert(
            "accept",
            "application/json, text/event-stream".parse().unwrap(),
        );
        let (status, _, text) = tcp(&d, req).await;
        assert_eq!(status, 503, "{path}");
        let v = json(std::str::from_utf8(&text).unwrap());
        assert_eq!(v["error"]["code"], -32600, "{path}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("the router is still starting"),
            "{path}: {v}"
        );
    }
    release.send(()).unwrap();
    d.handle.ready().await;
    let v = call("router.services").await;
    let names: Vec<&str> = v["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"svc"), "{v}");
    let (status, _, body) = tcp(&d, request("GET", "/api/services", "")).await;
    assert_eq!(status, 200);
    assert!(
        json(std::str::from_utf8(&body).unwrap())
            .to_string()
            .contains("\"svc\"")
    );
    d.stop().await;
}

/// A huge method or service name is echoed cut to 256 bytes (ending in `…`), not whole: the
/// error for a 1 MiB method name stays small.
#[tokio::test]
async fn a_huge_name_is_echoed_cut() {
    let (_root, d, _svcs) = daemon_with_services(&[]).await;
    let long = "x".repeat(1 << 20);
    for method in [format!("{long}.m"), format!("router.{long}"), long.clone()] {
        let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}"}}"#);
        let (status, text) = rpc(&d, &body).await;
        assert_eq!(status, 200);
        assert!(text.len() < 2048, "{} bytes: {}", text.len(), &text[..300]);
        let v = json(&text);
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.ends_with("x…"), "{message}");
    }
    d.stop().await;
}

/// A shutdown does not wait for a scan stuck on the file system (a hung FUSE or NFS root):
/// the background tasks get a moment once the requests have drained, then the router stops
/// without them and removes its sockets. It took as long as the scan before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_scan_does_not_hold_the_shutdown() {
    let root = tempfile::tempdir().unwrap();
    let _svc =
        std::os::unix::net::UnixListener::bind(service_dir(root.path(), "svc").join("rpc.sock"))
            .unwrap();
    let cfg = serve_config(
        root.path(),
        &["--upstream-timeout", "200ms", "--shutdown-grace", "1s"],
    );
    // Every listing of `svc` hangs until the test ends.
    let (release, held) = std::sync::mpsc::channel::<()>();
    let held = std::sync::Mutex::new(held);
    let (entered_tx, entered) = tokio::sync::mpsc::unbounded_channel::<()>();
    let svc_dir = root.path().join("svc");
    let hook: hero_router::test_hooks::ListHook =
        std::sync::Arc::new(move |dir: &std::path::Path| {
            if dir == svc_dir {
                let _ = entered_tx.send(());
                let _ = held.lock().unwrap().recv_timeout(Duration::from_secs(120));
            }
        });
    let d = common::launch_daemon(cfg, Some(hook)).await;
    let mut entered = entered;
    tokio::time::timeout(Duration::from_secs(20), entered.recv())
        .await
        .expect("the scan reached the service directory");
    let stopped = tokio::time::timeout(Duration::from_secs(60), d.stop()).await;
    let _ = release.send(());
    stopped.expect("stopped while the scan was still stuck");
    assert!(
        !root.path().join("hero_router/rpc.sock").exists(),
        "own sockets removed"
    );
}
