//! The dashboard over real TCP (its own admin listener) against the daemon in-process: the
//! event stream (snapshot first, a started service, a reap, a resume), its framing read by an
//! independent HTTP/1.1 parser (hyper's client) and by an HTTP/1.0 client reading to the close,
//! the page, the service detail, the Origin check on actions, and the service listener's
//! pointer to it.

mod common;

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use common::{Daemon, admin, dead_socket, json, request, service_dir, start_daemon, tcp};
use hero_example_service::{ServiceConfig, Spec, spawn};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DEADLINE: Duration = Duration::from_secs(20);

/// Serve flags for these tests: `extra` after fast-scan defaults.
fn config(root: &Path, extra: &[&str]) -> hero_router::Config {
    let mut args = vec![
        "hero_router",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    common::config_from_args(root, &args)
}

/// One server-sent event.
#[derive(Debug)]
struct Sse {
    id: Option<String>,
    event: String,
    data: Value,
}

/// An open `GET /api/events`, its body read frame by frame through hyper's HTTP/1.1 client.
struct Stream {
    body: hyper::body::Incoming,
    buf: Vec<u8>,
    headers: http::HeaderMap,
    _conn: tokio::task::JoinHandle<()>,
}

impl Stream {
    async fn open(d: &Daemon, last_event_id: Option<&str>) -> Stream {
        let tcp = tokio::net::TcpStream::connect(d.admin_tcp.unwrap())
            .await
            .unwrap();
        let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        let conn = tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = http::Request::builder()
            .uri("/api/events")
            .header("host", "localhost")
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let resp = tx
            .send_request(req.body(Empty::<Bytes>::new()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let (parts, body) = resp.into_parts();
        Stream {
            body,
            buf: Vec::new(),
            headers: parts.headers,
            _conn: conn,
        }
    }

    /// The next event with data (comments and `retry` skipped).
    async fn next(&mut self) -> Sse {
        tokio::time::timeout(DEADLINE, async {
            loop {
                if let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
                    let block: Vec<u8> = self.buf.drain(..end + 2).collect();
                    if let Some(ev) = parse_block(&String::from_utf8(block).unwrap()) {
                        return ev;
                    }
                    continue;
                }
                let frame = self
                    .body
                    .frame()
                    .await
                    .expect("the stream ended")
                    .expect("the stream broke");
                if let Ok(data) = frame.into_data() {
                    self.buf.extend_from_slice(&data);
                }
            }
        })
        .await
        .expect("no event before the deadline")
    }

    /// The first event satisfying `pred`, skipping others.
    async fn until(&mut self, what: &str, pred: impl Fn(&Sse) -> bool) -> Sse {
        tokio::time::timeout(DEADLINE, async {
            loop {
                let ev = self.next().await;
                if pred(&ev) {
                    return ev;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {what} before the deadline"))
    }
}

fn parse_block(block: &str) -> Option<Sse> {
    let (mut id, mut event, mut data) = (None, None, None);
    for line in block.lines() {
        match line.split_once(": ") {
            Some(("id", v)) => id = Some(v.to_owned()),
            Some(("event", v)) => event = Some(v.to_owned()),
            Some(("data", v)) => data = Some(json(v)),
            _ => {}
        }
    }
    Some(Sse {
        id,
        event: event?,
        data: data?,
    })
}

/// Waits until the catalog holds `service`'s document.
async fn document_of(d: &Daemon, service: &str) {
    let mut catalogs = d.handle.catalogs();
    tokio::time::timeout(
        DEADLINE,
        catalogs.wait_for(|c| c.get(service).is_some_and(|e| e.document.is_some())),
    )
    .await
    .expect("the catalog has the document in time")
    .unwrap();
}

fn example(root: &Path, name: &str) -> ServiceConfig {
    ServiceConfig {
        spec: Spec::Rich,
        ..ServiceConfig::new(root, name)
    }
}

#[tokio::test]
async fn the_stream_starts_with_the_table_and_follows_a_service_and_a_reap() {
    let dir = tempfile::tempdir().unwrap();
    let d = start_daemon(config(
        dir.path(),
        &[
            "--scan-interval",
            "100ms",
            "--stale-after",
            "1",
            "--reap-grace",
            "0s",
        ],
    ))
    .await;
    let mut s = Stream::open(&d, None).await;
    // hyper read the body: chunked framing, as HTTP/1.1 wants for a body without a length.
    assert_eq!(s.headers["content-type"], "text/event-stream");
    assert_eq!(s.headers["transfer-encoding"], "chunked");
    assert!(s.headers.get("content-length").is_none());

    let first = s.next().await;
    assert_eq!(first.event, "snapshot", "{first:?}");
    let names: Vec<_> = first.data["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["hero_router"], "the whole table");
    assert_eq!(first.data["health"]["ready"], true);

    // A service starts: its socket comes from absent to live, and the service is sent whole.
    let svc = spawn(example(dir.path(), "calc")).await.unwrap();
    let rpc = svc.path().display().to_string();
    let ev = s
        .until("socket event", |e| {
            e.event == "socket" && e.data["socket"] == rpc.as_str()
        })
        .await;
    assert_eq!(
        (&ev.data["from"], &ev.data["to"]),
        (&"absent".into(), &"live".into())
    );
    assert_eq!(ev.data["service"], "calc");
    assert_eq!(ev.data["kind"], "rpc");
    let ev = s
        .until("service event", |e| {
            e.event == "service" && e.data["view"]["status"] == "healthy"
        })
        .await;
    assert_eq!(ev.data["name"], "calc");
    assert_eq!(ev.data["view"]["sockets"][0]["path"], rpc.as_str());

    // A dead socket is reaped on the next periodic scan.
    let dead = service_dir(dir.path(), "gone").join("rpc.sock");
    dead_socket(&dead);
    let dead = dead.display().to_string();
    let ev = s
        .until("reap event", |e| {
            e.event == "reap" && e.data["socket"] == dead.as_str()
        })
        .await;
    assert_eq!(ev.data["skipped"], false);
    assert_eq!(ev.data["reason"], "stale");
    // Ids go forward.
    assert!(ev.id.is_some());
    svc.shutdown().await;
    d.stop().await;
}

#[tokio::test]
async fn a_page_that_reconnects_with_last_event_id_gets_what_it_missed() {
    let dir = tempfile::tempdir().unwrap();
    let d = start_daemon(config(dir.path(), &["--scan-interval", "1h"])).await;
    let mut s = Stream::open(&d, None).await;
    let snapshot = s.next().await;
    assert_eq!(snapshot.event, "snapshot");
    let id = snapshot.id.unwrap();
    drop(s);

    // While the page is away, a service starts.
    let svc = spawn(example(dir.path(), "calc")).await.unwrap();
    let rpc = svc.path().display().to_string();
    let mut events = d.handle.subscribe();
    d.rescan().await;
    common::wait_event(&mut events, DEADLINE, |e| {
        matches!(e, hero_router::Event::ScanCompleted { full: true, .. })
    })
    .await;

    let mut resumed = Stream::open(&d, Some(&id)).await;
    let first = resumed.next().await;
    assert_ne!(first.event, "snapshot", "resumed, not restarted: {first:?}");
    let missed = |e: &Sse| e.event == "socket" && e.data["socket"] == rpc.as_str();
    if !missed(&first) {
        resumed.until("the missed socket event", missed).await;
    }
    // An id from another router instance gets a snapshot, which has the service.
    let mut other = Stream::open(&d, Some("00000000-1")).await;
    let first = other.next().await;
    assert_eq!(first.event, "snapshot");
    assert!(first.data["services"].to_string().contains(&rpc));
    svc.shutdown().await;
    d.stop().await;
}

/// The feed streams for as long as its page is open, which says nothing of how fast the router
/// answered: its request counts in `router.traffic` with the latency to its head, not the
/// stream's whole life (a 3 s stream used to put hero_router's p99 at 4 s).
#[tokio::test]
async fn the_feed_counts_its_latency_to_the_head_not_its_life() {
    let dir = tempfile::tempdir().unwrap();
    let d = start_daemon(config(dir.path(), &["--scan-interval", "1s"])).await;
    let opened = tokio::time::Instant::now();
    let mut s = Stream::open(&d, None).await;
    // Three periodic scans, one a second: the stream stays open for two seconds at least.
    for _ in 0..3 {
        s.until("a periodic scan", |e| {
            e.event == "scan" && e.data["periodic"] == true
        })
        .await;
    }
    drop(s);
    let open_ms = opened.elapsed().as_secs_f64() * 1000.0;
    let own = feed_counted(&d, DEADLINE)
        .await
        .expect("the feed is counted once it closed");
    let p99 = own["p99_ms"].as_f64().unwrap();
    assert!(
        p99 < open_ms / 2.0,
        "latency to the head, not the {open_ms} ms the stream was open: {own}"
    );
    d.stop().await;
}

/// hero_router's own traffic (its last minute) once a request more than the looks at it is
/// counted: a feed counts when the router sees it end, and each look (`router.traffic`)
/// counts after its own answer. `None` if that takes longer than `within`.
async fn feed_counted(d: &Daemon, within: Duration) -> Option<Value> {
    let mut looks = 0;
    tokio::time::timeout(within, async {
        loop {
            let (_, body) =
                common::rpc(d, r#"{"jsonrpc":"2.0","id":1,"method":"router.traffic"}"#).await;
            let traffic = json(&body)["result"].clone();
            let own = traffic["services"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["name"] == "hero_router")
                .map(|s| s["windows"]["1m"].clone());
            if let Some(own) = own.filter(|w| w["requests"].as_u64() > Some(looks)) {
                return own;
            }
            looks += 1;
            tokio::time::sleep(Duration::from_millis(50)).await; // a poll, not a wait for it
        }
    })
    .await
    .ok()
}

/// Reads until the connection closes; panics after the deadline.
async fn read_to_close(s: &mut tokio::net::TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    tokio::time::timeout(DEADLINE, s.read_to_end(&mut out))
        .await
        .expect("the connection was not closed")
        .unwrap();
    out
}

#[tokio::test]
async fn an_http_1_0_client_gets_the_stream_unframed_until_the_close() {
    let dir = tempfile::tempdir().unwrap();
    let d = start_daemon(config(dir.path(), &[])).await;

    // The page: a known length, then the close.
    let admin_addr = d.admin_tcp.unwrap();
    let mut c = tokio::net::TcpStream::connect(admin_addr).await.unwrap();
    c.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
    let page = String::from_utf8(read_to_close(&mut c).await).unwrap();
    let (head, body) = page.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("HTTP/1.") && head.contains(" 200 "),
        "{head}"
    );
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_owned)
        })
        .expect("the page has a length")
        .parse()
        .unwrap();
    assert_eq!(body.len(), len);
    assert!(body.contains("<table id=\"services\">"));

    // The stream: no chunk framing (HTTP/1.0 has none), the body runs until the router stops.
    let mut c = tokio::net::TcpStream::connect(admin_addr).await.unwrap();
    c.write_all(b"GET /api/events HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(16).any(|w| w == b"event: snapshot\n") {
        let n = tokio::time::timeout(DEADLINE, c.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let head = head.to_ascii_lowercase();
    assert!(!head.contains("transfer-encoding"), "{head}");
    assert!(!head.contains("content-length"), "{head}");
    assert!(
        body.starts_with("retry: 2000\n\nid: "),
        "raw events: {body:?}"
    );
    let stop = tokio::spawn(d.stop());
    read_to_close(&mut c).await;
    stop.await.unwrap();
}

#[tokio::test]
async fn actions_from_a_foreign_origin_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = start_daemon(config(dir.path(), &[])).await;
    let host = d.admin_tcp.unwrap().to_string();
    let service_origin = format!("http://{}", d.tcp);
    let post = |origin: Option<&str>| {
        let mut r = http::Request::builder()
            .method("POST")
            .uri("/api/scan")
            .header("host", host.as_str());
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        r.body(http_body_util::Full::new(Bytes::new())).unwrap()
    };
    // Another site, a sandboxed frame, another name of the router, and a page a service
    // serves (the service listener's origin): none of them is the dashboard's origin.
    let foreign = [
        "http://evil.example",
        "null",
        "http://localhost",
        &service_origin,
    ];
    for origin in foreign {
        let (status, headers, body) = admin(&d, post(Some(origin))).await;
        assert_eq!(status, 403, "Origin {origin}");
        assert_eq!(headers["x-hero-router-error"], "foreign_origin");
        let body = json(std::str::from_utf8(&body).unwrap());
        assert_eq!(body["error"], "foreign_origin", "{body}");
        assert_eq!(body["origin"], origin, "{body}");
    }
    // Control: the dashboard's own page, and a client that sends no Origin (curl).
    for origin in [Some(format!("http://{host}")), None] {
        let (status, _, body) = admin(&d, post(origin.as_deref())).await;
        assert_eq!(status, 200);
        let body = json(std::str::from_utf8(&body).unwrap());
        assert_eq!(body["services"], 1, "the router.scan result: {body}");
    }
    let (status, headers, _) = admin(&d, request("GET", "/api/scan", "")).await;
    assert_eq!(status, 405);
    assert_eq!(headers["allow"], "POST");
    d.stop().await;
}

#[tokio::test]
async fn the_page_and_the_detail_show_a_service_and_its_methods() {
    let dir = tempfile::tempdir().unwrap();
    let d = start_daemon(config(dir.path(), &[])).await;
    let svc = spawn(example(dir.path(), "calc")).await.unwrap();
    d.rescan().await;
    document_of(&d, "calc").await;

    for listener in ["admin listener", "admin.sock"] {
        let (status, headers, body) = match listener {
            "admin listener" => admin(&d, request("GET", "/", "")).await,
            _ => common::uds(&d.admin, request("GET", "/", "")).await,
        };
        assert_eq!(status, 200, "{listener}");
        assert_eq!(headers["content-type"], "text/html; charset=utf-8");
        let html = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            html.contains(r#"<tr data-name="calc" data-status="healthy">"#),
            "{listener}"
        );
        assert!(html.contains("Hero example service"));
        // Only its own inline script and style may run; it cannot be framed.
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'sha256-")
                && !csp.contains("unsafe-inline")
                && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        // The MCP links point to the service listener (the attribute as minijinja escapes it;
        // a browser reads it back as the URL).
        let url = format!("http://{}", d.tcp).replace('/', "&#x2f;");
        assert!(
            html.contains(&format!(r#"data-service-url="{url}""#)),
            "{listener}: {}",
            &html[..html.find("<body").unwrap_or(0) + 80]
        );
    }
    // The service listener has no dashboard: its `/` says where it is.
    let (status, _, body) = tcp(&d, request("GET", "/", "")).await;
    assert_eq!(status, 200);
    let landing = json(std::str::from_utf8(&body).unwrap());
    assert_eq!(
        landing["dashboard"],
        format!("http://{}/", d.admin_tcp.unwrap())
    );
    let (status, headers, _) = tcp(&d, request("GET", "/api/dashboard/service/calc", "")).await;
    assert_eq!(status, 404);
    assert_eq!(headers["x-hero-router-error"], "on_admin_listener");

    let (status, _, body) = admin(&d, request("GET", "/api/dashboard/service/calc", "")).await;
    assert_eq!(status, 200);
    let detail = json(std::str::from_utf8(&body).unwrap());
    assert_eq!(detail["service"]["status"], "healthy");
    assert_eq!(detail["links"]["docs"], "/docs/calc");
    assert_eq!(detail["links"]["mcp"], "/mcp/calc");
    let add = detail["methods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "add")
        .expect("add is listed");
    let params: Vec<_> = add["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].clone())
        .collect();
    assert_eq!(params, ["a", "b"]);
    // The form's example params are a real call.
    let call = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "calc.add", "params": add["example_params"]});
    let (status, answer) = common::rpc(&d, &call.to_string()).await;
    assert_eq!(status, 200);
    assert!(json(&answer)["result"].is_number(), "{answer}");

    let (status, _, body) = admin(&d, request("GET", "/api/dashboard/service/nope", "")).await;
    assert_eq!(status, 404);
    assert_eq!(json(std::str::from_utf8(&body).unwrap())["service"], "nope");
    svc.shutdown().await;
    d.stop().await;
}

/// A document with more methods than the detail lists (1,000) says so in `methods_note`,
/// with the count and where all of them are, rather than cut the list in silence.
#[tokio::test]
async fn a_detail_that_lists_part_of_the_methods_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let d = start_daemon(config(dir.path(), &[])).await;
    let methods: Vec<Value> = (0..1200)
        .map(|i| serde_json::json!({"name": format!("m{i}"), "params": [], "result": {"name": "r", "schema": {}}}))
        .collect();
    let doc = serde_json::json!({
        "openrpc": "1.3.2",
        "info": {"title": "big", "version": "1"},
        "methods": methods,
    });
    let cfg = ServiceConfig {
        spec: Spec::Document(doc),
        ..ServiceConfig::new(dir.path(), "big")
    };
    let svc = spawn(cfg).await.unwrap();
    d.rescan().await;
    document_of(&d, "big").await;
    let (status, _, body) = admin(&d, request("GET", "/api/dashboard/service/big", "")).await;
    assert_eq!(status, 200);
    let detail = json(std::str::from_utf8(&body).unwrap());
    assert_eq!(detail["methods"].as_array().unwrap().len(), 1000);
    assert_eq!(detail["service"]["methods_count"], 1200);
    let note = detail["methods_note"].as_str().unwrap_or_default();
    assert!(
        note.starts_with("Only the first 1000 of its 1200 methods are listed here")
            && note.contains("/docs/big/openrpc.json"),
        "{note}"
    );
    svc.shutdown().await;
    d.stop().await;
}
