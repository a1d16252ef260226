//! Traffic you can see (CONTRACT §15): request ids, trace context and the access log.
//!
//! The ids and the trace context are checked in-process, against a raw upstream that records
//! exactly what it received. The access log is checked on the real binary's stderr: every
//! kind of request, refused ones included, gives exactly one line with the right fields, in
//! JSON and in text.

mod common;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use common::raw::{Reply, Upstream, header};
use common::{json, serve_config, start_daemon};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream, UnixStream};

/// An answer that names an id of the service's own: the router must put its own on the answer.
const OK_WITH_ID: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Request-Id: the-service-own\r\n\r\nok";

/// Where a raw request goes.
enum To<'a> {
    Tcp(SocketAddr),
    /// TCP from this source address.
    TcpFrom(&'a str, SocketAddr),
    Unix(&'a Path),
}

/// Sends `raw` (which should say `connection: close`) and reads the answer to its end:
/// the head and the body as they came.
async fn exchange(to: To<'_>, raw: &[u8]) -> (String, Vec<u8>) {
    let mut out = Vec::new();
    match to {
        To::Tcp(addr) => {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(raw).await.unwrap();
            let _ = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out)).await;
        }
        To::TcpFrom(source, addr) => {
            let source: IpAddr = source.parse().unwrap();
            let socket = TcpSocket::new_v4().unwrap();
            socket.bind(SocketAddr::new(source, 0)).unwrap();
            let mut s = socket.connect(addr).await.unwrap();
            s.write_all(raw).await.unwrap();
            let _ = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out)).await;
        }
        To::Unix(path) => {
            let mut s = UnixStream::connect(path).await.unwrap();
            s.write_all(raw).await.unwrap();
            let _ = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out)).await;
        }
    }
    let end = common::raw::find(&out, b"\r\n\r\n").expect("a response head") + 4;
    let head = String::from_utf8_lossy(&out[..end]).into_owned();
    (head, out[end..].to_vec())
}

fn get_with(path: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut raw = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        raw.push_str(&format!("{k}: {v}\r\n"));
    }
    raw.push_str("\r\n");
    raw.into_bytes()
}

fn post(path: &str, body: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut raw = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        raw.push_str(&format!("{k}: {v}\r\n"));
    }
    raw.push_str("\r\n");
    raw.push_str(body);
    raw.into_bytes()
}

/// Every value of header `name` in a raw head.
fn headers_named<'a>(head: &'a str, name: &str) -> Vec<&'a str> {
    head.lines()
        .skip(1)
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
        .collect()
}

/// True for an id the router made: 16 characters of Crockford base32.
fn generated(id: &str) -> bool {
    id.len() == 16
        && id
            .bytes()
            .all(|b| b"0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains(&b))
}

/// The request the upstream saw whose `x-request-id` is `id`.
fn seen_with_id(up: &Upstream, id: &str) -> String {
    let seen = up.requests();
    let matching: Vec<&String> = seen
        .iter()
        .filter(|r| headers_named(r, "x-request-id") == [id])
        .collect();
    assert_eq!(
        matching.len(),
        1,
        "exactly one request upstream carried id {id} (and only that one): {seen:#?}"
    );
    matching[0].clone()
}

/// A router with `extra` flags in front of a recording service `svc`.
async fn with_svc(extra: &[&str]) -> (tempfile::TempDir, Upstream, common::Daemon) {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::bind(root.path(), "svc", |_| Reply::SendAndClose(OK_WITH_ID));
    let d = start_daemon(serve_config(root.path(), extra)).await;
    d.rescan().await;
    (root, up, d)
}

#[tokio::test]
async fn request_ids_are_generated_kept_from_trusted_callers_and_everywhere() {
    let (_root, up, d) = with_svc(&[]).await;

    // No id: one is made, sent to the service and returned (not the service's own).
    let (head, body) = exchange(To::Tcp(d.tcp), &get_with("/svc/rpc/a", &[])).await;
    assert_eq!(body, b"ok", "{head}");
    let ids = headers_named(&head, "x-request-id");
    assert_eq!(ids.len(), 1, "one id on the answer: {head}");
    let made = ids[0];
    assert!(generated(made), "a generated id: {made}");
    seen_with_id(&up, made);

    // An untrusted TCP client's id is replaced, on the way in and on the way out.
    let (head, _) = exchange(
        To::Tcp(d.tcp),
        &get_with("/svc/rpc/b", &[("X-Request-Id", "client-chosen")]),
    )
    .await;
    let replaced = header(&head, "x-request-id").unwrap();
    assert!(generated(replaced), "{head}");
    assert_ne!(replaced, made, "ids are unique");
    assert!(replaced > made, "ids sort in the order they were made");
    let seen = seen_with_id(&up, replaced);
    assert!(!seen.contains("client-chosen"), "{seen}");

    // A Unix-socket caller's well-formed id is kept (admin.sock proxies).
    let (head, _) = exchange(
        To::Unix(&d.admin),
        &get_with(
            "/svc/rpc/c",
            &[("x_request_id", "x"), ("X-Request-Id", "unix-caller-7")],
        ),
    )
    .await;
    assert_eq!(
        headers_named(&head, "x-request-id"),
        ["unix-caller-7"],
        "{head}"
    );
    let seen = seen_with_id(&up, "unix-caller-7");
    assert!(
        !seen.contains("x_request_id"),
        "underscore spellings never pass: {seen}"
    );

    // ... but not a malformed one (too long, or not visible ASCII).
    for bad in ["a".repeat(129), "has space".to_owned()] {
        let (head, _) = exchange(
            To::Unix(&d.admin),
            &get_with("/svc/rpc/d", &[("X-Request-Id", &bad)]),
        )
        .await;
        let id = header(&head, "x-request-id").unwrap();
        assert!(generated(id), "{bad:?} replaced: {head}");
        seen_with_id(&up, id);
    }
    let longest = "b".repeat(128);
    let (head, _) = exchange(
        To::Unix(&d.admin),
        &get_with("/svc/rpc/e", &[("X-Request-Id", &longest)]),
    )
    .await;
    assert_eq!(header(&head, "x-request-id"), Some(longest.as_str()));

    // Errors the router makes carry the id in the header and the body.
    let (head, body) = exchange(To::Tcp(d.tcp), &get_with("/nosuch/rpc/", &[])).await;
    let id = header(&head, "x-request-id").unwrap();
    let body = json(&String::from_utf8(body).unwrap());
    assert_eq!(body["request_id"], id, "{body}");
    assert_eq!(body["error"], "no such service: nosuch");
    let (head, body) = exchange(
        To::Unix(&d.admin),
        &post(
            "/rpc",
            r#"[{"jsonrpc":"2.0","id":1,"method":"nosuch.x"},{"jsonrpc":"2.0","id":2,"method":"router.service","params":["nosuch"]}]"#,
            &[("X-Request-Id", "rpc-call-1")],
        ),
    )
    .await;
    assert_eq!(header(&head, "x-request-id"), Some("rpc-call-1"), "{head}");
    let body = json(&String::from_utf8(body).unwrap());
    for answer in body.as_array().unwrap() {
        assert_eq!(
            answer["error"]["data"]["request_id"], "rpc-call-1",
            "{body}"
        );
        assert_eq!(answer["error"]["data"]["service"], "nosuch", "{body}");
    }
    // Own pages carry it too.
    let (head, _) = exchange(To::Tcp(d.tcp), &get_with("/health", &[])).await;
    assert!(generated(header(&head, "x-request-id").unwrap()), "{head}");
    d.stop().await;
}

#[tokio::test]
async fn a_trusted_proxy_keeps_its_request_id() {
    let (_root, up, d) = with_svc(&["--trusted-proxy", "127.0.0.1/32"]).await;
    let (head, _) = exchange(
        To::Tcp(d.tcp),
        &get_with("/svc/rpc/a", &[("X-Request-Id", "from-the-proxy")]),
    )
    .await;
    assert_eq!(
        header(&head, "x-request-id"),
        Some("from-the-proxy"),
        "{head}"
    );
    seen_with_id(&up, "from-the-proxy");
    d.stop().await;
}

/// `(trace id, parent id, flags)` of the one valid `traceparent` of a request head.
fn one_traceparent(seen: &str) -> (String, String, String) {
    let parents = headers_named(seen, "traceparent");
    assert_eq!(parents.len(), 1, "one traceparent: {seen}");
    traceparent(parents[0])
}

/// `(trace id, parent id, flags)` of a valid version-00 `traceparent`.
fn traceparent(value: &str) -> (String, String, String) {
    let parts: Vec<&str> = value.split('-').collect();
    assert_eq!(parts.len(), 4, "{value}");
    assert_eq!(parts[0], "00", "{value}");
    assert_eq!(
        (parts[1].len(), parts[2].len(), parts[3].len()),
        (32, 16, 2),
        "{value}"
    );
    assert!(
        value
            .bytes()
            .all(|b| b == b'-' || b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert!(parts[1].bytes().any(|b| b != b'0') && parts[2].bytes().any(|b| b != b'0'));
    (parts[1].into(), parts[2].into(), parts[3].into())
}

#[tokio::test]
async fn trace_context_is_continued_with_the_routers_span_or_started() {
    let (_root, up, d) = with_svc(&[]).await;
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let client_span = "b7ad6b7169203331";
    let valid = format!("00-{trace}-{client_span}-01");
    let sent = |headers: Vec<(&'static str, String)>| {
        let (tcp, up) = (d.tcp, &up);
        async move {
            let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let (head, _) = exchange(To::Tcp(tcp), &get_with("/svc/rpc/t", &h)).await;
            let id = header(&head, "x-request-id").unwrap().to_owned();
            seen_with_id(up, &id)
        }
    };

    // Valid: same trace, the router's own span as the parent, flags kept, tracestate passed.
    let seen = sent(vec![
        ("traceparent", valid.clone()),
        ("tracestate", "vendor=x".into()),
    ])
    .await;
    let (t, span, flags) = one_traceparent(&seen);
    assert_eq!((t.as_str(), flags.as_str()), (trace, "01"), "{seen}");
    assert_ne!(span, client_span, "a new span id: {seen}");
    assert_eq!(headers_named(&seen, "tracestate"), ["vendor=x"], "{seen}");
    // Each request is a span of its own.
    let again = sent(vec![("traceparent", valid.clone())]).await;
    let (t2, span2, _) = one_traceparent(&again);
    assert_eq!(t2, trace);
    assert_ne!(span2, span);

    // Malformed ones (and their tracestate) are replaced by a new trace.
    for bad in [
        format!("00-{trace}-{client_span}-01-extra"),
        format!("ff-{trace}-{client_span}-01"),
        format!("00-{}-{client_span}-01", "0".repeat(32)),
        format!("00-{trace}-{}-01", "0".repeat(16)),
        format!("00-{}-{client_span}-01", trace.to_uppercase()),
        "garbage".to_owned(),
    ] {
        let seen = sent(vec![
            ("traceparent", bad.clone()),
            ("tracestate", "vendor=x".into()),
        ])
        .await;
        let (t, _, _) = one_traceparent(&seen);
        assert_ne!(t, trace, "{bad}: a new trace");
        assert!(
            headers_named(&seen, "tracestate").is_empty(),
            "{bad}: {seen}"
        );
    }
    // Two traceparent headers are malformed too.
    let seen = sent(vec![("traceparent", valid.clone()), ("traceparent", valid)]).await;
    assert_ne!(one_traceparent(&seen).0, trace);
    // Absent: started.
    let seen = sent(vec![]).await;
    one_traceparent(&seen);
    d.stop().await;
}

// === the access log, on the real binary's stderr ===

/// Kills the child if the test fails before it stops it.
struct Router {
    child: Child,
    lines: Receiver<String>,
    /// Every stderr line read so far.
    seen: Vec<String>,
    tcp: SocketAddr,
    admin_sock: std::path::PathBuf,
}

impl Drop for Router {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Router {
    /// `serve` on `root` with TCP on port 0 and `extra` flags, once it says where it listens.
    fn start(root: &Path, extra: &[&str]) -> Router {
        let mut child = common::serve_command(root)
            .args([
                "--scan-interval",
                "1h",
                "--log-level",
                "warn,hero_router::serve=info,hero_router::access=info",
            ])
            .args(extra)
            .env_remove("HERO_ROUTER_ACCESS_LOG")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = common::stderr_lines(&mut child);
        let mut router = Router {
            child,
            lines,
            seen: Vec::new(),
            tcp: "127.0.0.1:1".parse().unwrap(),
            admin_sock: root.join("hero_router/admin.sock"),
        };
        let marker = "services, /rpc, /mcp and /docs: http://";
        let line = router.wait_for(|l| l.contains(marker));
        let addr = line.split(marker).nth(1).unwrap().trim_end_matches('/');
        router.tcp = addr.parse().unwrap();
        router
    }

    /// Waits for a stderr line that `pred` accepts (20 s at most) and returns it.
    fn wait_for(&mut self, pred: impl Fn(&str) -> bool) -> String {
        self.wait_within(Duration::from_secs(20), pred)
            .unwrap_or_else(|| panic!("no such line on stderr; got:\n{}", self.seen.join("\n")))
    }

    /// [`Router::wait_for`] for at most `within`: `None` if no such line came.
    fn wait_within(&mut self, within: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        if let Some(l) = self.seen.iter().find(|l| pred(l)) {
            return Some(l.clone());
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let l = self.lines.recv_timeout(left).ok()?;
            self.seen.push(l.clone());
            if pred(&l) {
                return Some(l);
            }
        }
    }

    /// Every stderr line so far (after a marker request's line came, so earlier ones are in).
    fn lines_with(&mut self, needle: &str) -> Vec<String> {
        self.seen
            .iter()
            .filter(|l| l.contains(needle))
            .cloned()
            .collect()
    }
}

/// The JSON access line for request `id`: exactly one, parsed.
fn json_line(r: &mut Router, id: &str) -> Value {
    let needle = format!("\"request_id\":\"{id}\"");
    r.wait_for(|l| l.contains(&needle));
    let lines = r.lines_with(&needle);
    assert_eq!(lines.len(), 1, "one line for {id}: {lines:#?}");
    let v = json(&lines[0]);
    assert_eq!(v["target"], "hero_router::access", "{v}");
    for field in [
        "time",
        "client",
        "listener",
        "method",
        "path",
        "status",
        "bytes_in",
        "bytes_out",
        "duration_ms",
        "request_id",
        "trace_id",
    ] {
        assert!(!v[field].is_null(), "{field} in {v}");
    }
    assert_eq!(v["trace_id"].as_str().unwrap().len(), 32, "{v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_request_is_one_json_access_line() {
    let root = tempfile::tempdir().unwrap();
    let _up = Upstream::bind(root.path(), "svc", |_| Reply::SendAndClose(OK_WITH_ID));
    let _ws = Upstream::bind(root.path(), "ws", |_| {
        Reply::SendAndClose(
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\nbye",
        )
    });
    let mut r = Router::start(
        root.path(),
        &[
            "--access-log",
            "json",
            "--allow",
            "127.0.0.1/32",
            "--max-header-size",
            "2KiB",
        ],
    );
    let tcp = r.tcp;
    let id_of = |head: &str| header(head, "x-request-id").unwrap().to_owned();

    // Proxied HTTP, the query dropped.
    let raw = get_with("/svc/rpc/x?token=secret", &[]);
    let (head, body) = exchange(To::Tcp(tcp), &raw).await;
    let v = json_line(&mut r, &id_of(&head));
    assert_eq!(v["bytes_in"], raw.len(), "{v}");
    assert_eq!(v["bytes_out"], head.len() + body.len(), "{v}");
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(
        (v["service"].as_str(), v["kind"].as_str()),
        (Some("svc"), Some("rpc"))
    );
    assert_eq!(v["path"], "/svc/rpc/x", "{v}");
    assert_eq!(
        (v["method"].as_str(), v["listener"].as_str()),
        (Some("GET"), Some("service"))
    );
    assert_eq!(v["client"], "127.0.0.1");
    assert!(v["upstream_ms"].as_f64().is_some(), "{v}");
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let (head, _) = exchange(
        To::Tcp(tcp),
        &get_with(
            "/svc/rpc/y",
            &[("traceparent", &format!("00-{trace}-00f067aa0ba902b7-01"))],
        ),
    )
    .await;
    assert_eq!(json_line(&mut r, &id_of(&head))["trace_id"], trace);

    // /rpc: a batch names its methods.
    let body = r#"[{"jsonrpc":"2.0","id":1,"method":"router.health"},{"jsonrpc":"2.0","id":2,"method":"svc.echo"}]"#;
    let (head, _) = exchange(To::Tcp(tcp), &post("/rpc", body, &[])).await;
    let v = json_line(&mut r, &id_of(&head));
    assert_eq!(
        v["methods"],
        serde_json::json!(["router.health", "svc.echo"]),
        "{v}"
    );
    assert_eq!(
        (v["kind"].as_str(), v["status"].as_u64()),
        (Some("rpc"), Some(200))
    );

    // MCP: tools/call names the tool.
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"svc__echo","arguments":{}}}"#;
    let (head, _) = exchange(
        To::Tcp(tcp),
        &post(
            "/mcp",
            body,
            &[("Accept", "application/json, text/event-stream")],
        ),
    )
    .await;
    let v = json_line(&mut r, &id_of(&head));
    assert_eq!(
        (v["kind"].as_str(), v["tool"].as_str()),
        (Some("mcp"), Some("svc__echo")),
        "{v}"
    );
    assert_eq!(v["methods"], serde_json::json!(["tools/call"]), "{v}");
    // A tool call that reaches its service is that service's request, with its wait.
    let ex =
        hero_example_service::spawn(hero_example_service::ServiceConfig::new(root.path(), "ex"))
            .await
            .unwrap();
    let spec = r#"{"jsonrpc":"2.0","id":1,"method":"router.spec","params":["ex"]}"#;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = exchange(To::Tcp(tcp), &post("/rpc", spec, &[])).await;
        if String::from_utf8_lossy(&body).contains("\"result\"") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "ex's spec never came"
        );
        tokio::time::sleep(Duration::from_millis(20)).await; // poll interval, bounded by the deadline
    }
    let body =
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}"#;
    let (head, _) = exchange(
        To::Tcp(tcp),
        &post(
            "/mcp/ex",
            body,
            &[("Accept", "application/json, text/event-stream")],
        ),
    )
    .await;
    let v = json_line(&mut r, &id_of(&head));
    assert_eq!(
        (
            v["service"].as_str(),
            v["kind"].as_str(),
            v["tool"].as_str()
        ),
        (Some("ex"), Some("mcp"), Some("echo")),
        "{v}"
    );
    assert!(v["upstream_ms"].as_f64().is_some(), "{v}");
    ex.shutdown().await;

    // A WebSocket upgrade: one line when the bridge ends, with its duration.
    let mut up = b"GET /ws/rpc/socket HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n".to_vec();
    up.extend_from_slice(b"hello");
    let (head, body) = exchange(To::Tcp(tcp), &up).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(body, b"bye");
    let v = json_line(&mut r, &id_of(&head));
    assert_eq!(
        (v["status"].as_u64(), v["service"].as_str()),
        (Some(101), Some("ws")),
        "{v}"
    );
    // The head, and what went through the bridge before the service closed it.
    assert!(
        v["bytes_in"].as_u64().unwrap() >= up.len() as u64 - 5,
        "{v}"
    );
    assert_eq!(v["bytes_out"], head.len() + body.len(), "{v}");

    // The router's own pages, on TCP and a Unix socket.
    let (head, _) = exchange(To::Tcp(tcp), &get_with("/health", &[])).await;
    let v = json_line(&mut r, &id_of(&head));
    assert_eq!(
        (v["service"].as_str(), v["kind"].as_str()),
        (Some("hero_router"), Some("own"))
    );
    let sock = r.admin_sock.clone();
    let (head, _) = exchange(
        To::Unix(&sock),
        &get_with("/metrics", &[("X-Request-Id", "from-unix-1")]),
    )
    .await;
    assert_eq!(id_of(&head), "from-unix-1");
    let v = json_line(&mut r, "from-unix-1");
    assert_eq!(
        (v["client"].as_str(), v["listener"].as_str()),
        (Some("unix"), Some("admin.sock"))
    );

    // Refused before routing: allow-list, framing, size, host.
    let refused: Vec<(To<'_>, Vec<u8>, u16)> = vec![
        (To::TcpFrom("127.0.0.2", tcp), get_with("/health", &[]), 403),
        (
            To::Tcp(tcp),
            b"GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".to_vec(),
            400,
        ),
        (
            To::Tcp(tcp),
            get_with("/health", &[("X-Big", &"x".repeat(3000))]),
            431,
        ),
        (
            To::Tcp(tcp),
            b"GET /health HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n".to_vec(),
            421,
        ),
    ];
    for (to, raw, want) in refused {
        let (head, body) = exchange(to, &raw).await;
        assert_eq!(head[9..12].parse::<u16>().unwrap(), want, "{head}");
        let id = id_of(&head);
        let body = json(&String::from_utf8(body).unwrap());
        assert_eq!(body["request_id"], id.as_str(), "{body}");
        let v = json_line(&mut r, &id);
        assert_eq!(v["status"], want, "{v}");
        assert_eq!(v["path"], "/health", "{v}");
    }
    // Refused for its Origin, whatever it asked for: routed nowhere (`-`).
    let evil = [("Origin", "http://evil.example")];
    for path in ["/rpc", "/mcp", "/svc/rpc/x"] {
        let (head, _) = exchange(To::Tcp(tcp), &post(path, "{}", &evil)).await;
        assert_eq!(&head[9..12], "403", "{head}");
        let v = json_line(&mut r, &id_of(&head));
        assert_eq!(v["path"], path, "{v}");
        assert_eq!(
            (&v["service"], &v["kind"]),
            (&Value::Null, &Value::Null),
            "{v}"
        );
    }
    // Nothing logged twice, nothing without an id.
    let access: Vec<String> = r.lines_with("\"target\":\"hero_router::access\"");
    let mut ids = HashMap::new();
    for l in &access {
        *ids.entry(json(l)["request_id"].as_str().unwrap().to_owned())
            .or_insert(0) += 1;
    }
    assert!(ids.values().all(|n| *n == 1), "{access:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_lines_read_like_nginx_with_the_route() {
    let root = tempfile::tempdir().unwrap();
    let _up = Upstream::bind(root.path(), "svc", |_| Reply::SendAndClose(OK_WITH_ID));
    let mut r = Router::start(root.path(), &["--access-log-query"]);
    let (head, _) = exchange(To::Tcp(r.tcp), &get_with("/svc/rpc/x?q=1", &[])).await;
    let id = header(&head, "x-request-id").unwrap().to_owned();
    let needle = format!("request_id={id} ");
    let line = r.wait_for(|l| l.contains(&needle));
    assert_eq!(r.lines_with(&needle).len(), 1);
    assert!(line.contains("hero_router::access"), "{line}");
    let nginx = line.split("hero_router::access: ").nth(1).unwrap();
    assert!(nginx.starts_with("127.0.0.1 - - ["), "{nginx}");
    assert!(
        nginx.contains("] \"GET /svc/rpc/x?q=1 HTTP/1.1\" 200 "),
        "{nginx}"
    );
    for field in [
        " route=svc/rpc ",
        " listener=service ",
        " in=",
        " ms=",
        " upstream_ms=",
        " trace_id=",
    ] {
        assert!(nginx.contains(field), "{field} in {nginx}");
    }
    // A batch names its methods in the route.
    let body = r#"[{"jsonrpc":"2.0","id":1,"method":"router.health"},{"jsonrpc":"2.0","id":2,"method":"router.services"}]"#;
    let (head, _) = exchange(To::Tcp(r.tcp), &post("/rpc", body, &[])).await;
    let needle = format!("request_id={} ", header(&head, "x-request-id").unwrap());
    let line = r.wait_for(|l| l.contains(&needle));
    assert!(
        line.contains(" route=hero_router/rpc:router.health,router.services "),
        "{line}"
    );
    // The last request before a SIGTERM is logged too: the writer gets to write it.
    let (head, _) = exchange(To::Tcp(r.tcp), &get_with("/health", &[])).await;
    let needle = format!("request_id={} ", header(&head, "x-request-id").unwrap());
    let pid = rustix::process::Pid::from_raw(r.child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let status = r.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    r.wait_for(|l| l.contains(&needle));
}

/// An exchange that did not end as a service's whole answer says why on its line: the
/// router's error answer (a 502 for a head past the limits, in the words the client got), or
/// what cut a body short after its head went out (a service that closed early, a malformed
/// chunk). A whole answer has no `error`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_says_why_an_exchange_failed() {
    let root = tempfile::tempdir().unwrap();
    let _whole = Upstream::bind(root.path(), "whole", |_| Reply::SendAndClose(OK_WITH_ID));
    let _short = Upstream::bind(root.path(), "short", |_| {
        Reply::SendAndClose(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    });
    let _chunks = Upstream::bind(root.path(), "chunks", |_| {
        Reply::SendAndClose(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n",
        )
    });
    let _wide = Upstream::bind(root.path(), "wide", |_| {
        // A head of 300 header lines: past the 256 a service may send.
        static HEAD: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
            let mut head = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n".to_vec();
            for i in 0..300 {
                head.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
            }
            head.extend_from_slice(b"\r\n");
            head
        });
        Reply::SendAndClose(&HEAD)
    });
    let mut r = Router::start(root.path(), &["--access-log", "json"]);
    let mut error_of = async |svc: &str| {
        let raw =
            format!("GET /{svc}/rpc/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        let (head, body) = exchange(To::Tcp(r.tcp), raw.as_bytes()).await;
        let v = json_line(&mut r, header(&head, "x-request-id").unwrap());
        (head, body, v)
    };
    let (head, _, v) = error_of("whole").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(v.get("error").is_none(), "{v}");
    let (head, body, v) = error_of("short").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, b"abc");
    assert_eq!(
        v["error"], "the service closed the connection before the end of its body",
        "{v}"
    );
    let (_, _, v) = error_of("chunks").await;
    assert_eq!(v["error"], "the service's chunked body is malformed", "{v}");
    let (head, body, v) = error_of("wide").await;
    assert!(head.starts_with("HTTP/1.1 502"), "{head}");
    let error = v["error"].as_str().unwrap();
    assert!(error.contains("more than 256 header lines"), "{error}");
    assert!(
        String::from_utf8_lossy(&body).contains(error),
        "the line says what the client was told: {v} / {}",
        String::from_utf8_lossy(&body)
    );
    // A routed call the router answered with its own error (HTTP 200): the line has the code
    // and the message; a batch says how many of its calls failed, and the first.
    let mut rpc_error_of = async |body: &str| {
        let raw = format!(
            "POST /rpc HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let (head, _) = exchange(To::Tcp(r.tcp), raw.as_bytes()).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        json_line(&mut r, header(&head, "x-request-id").unwrap())
    };
    let v = rpc_error_of(r#"{"jsonrpc":"2.0","id":1,"method":"ghost.m"}"#).await;
    assert_eq!(v["error"], "-32001 no such service: ghost", "{v}");
    let v = rpc_error_of(
        r#"[{"jsonrpc":"2.0","id":1,"method":"ghost.m"},{"jsonrpc":"2.0","id":2,"method":"router.health"},{"jsonrpc":"2.0","id":3,"method":"phantom.m"}]"#,
    )
    .await;
    let error = v["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("2 of 3 calls failed; the first: -32001 no such service: "),
        "{v}"
    );
    let v = rpc_error_of(r#"{"jsonrpc":"2.0","id":1,"method":"router.health"}"#).await;
    assert!(v.get("error").is_none(), "{v}");
}

/// `bytes_out` is every byte the client got, the `100 Continue` the router sent before reading
/// the body included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_out_counts_the_100_continue() {
    let root = tempfile::tempdir().unwrap();
    let mut r = Router::start(root.path(), &["--access-log", "json"]);
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"router.health"}"#;
    let mut c = TcpStream::connect(r.tcp).await.unwrap();
    let head = format!(
        "POST /rpc HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    c.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        while common::raw::find(&got, b"\r\n\r\n").is_none() {
            let mut chunk = [0u8; 256];
            let n = c.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed before 100 Continue");
            got.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .expect("100 Continue before the deadline");
    assert!(got.starts_with(b"HTTP/1.1 100 Continue\r\n"), "{got:?}");
    c.write_all(body.as_bytes()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), c.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8(got.clone()).unwrap();
    let final_head = &text[text.find("\r\n\r\n").unwrap() + 4..];
    assert!(final_head.starts_with("HTTP/1.1 200"), "{text}");
    let v = json_line(&mut r, header(final_head, "x-request-id").unwrap());
    assert_eq!(v["bytes_out"], got.len(), "{v}");
}

/// A stream whose client closed ends when the router sees the close, not at its next write:
/// an MCP `subscriptions/listen` stream writes only when the tool list changes, and dead
/// streams held their client's connection slots (a client reconnecting often pushed out its
/// own live listener). Its line comes once it ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_whose_client_closed_ends_at_once() {
    let root = tempfile::tempdir().unwrap();
    let mut r = Router::start(root.path(), &["--access-log", "json"]);
    let body = r#"{"jsonrpc":"2.0","id":3,"method":"subscriptions/listen","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}},"notifications":{"toolsListChanged":true}}}"#;
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMcp-Protocol-Version: 2026-07-28\r\nMcp-Method: subscriptions/listen\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut c = TcpStream::connect(r.tcp).await.unwrap();
    c.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        // The head; then the stream waits for a change.
        while !String::from_utf8_lossy(&got).contains("\r\n\r\n") {
            let mut chunk = [0u8; 4096];
            let n = c.read(&mut chunk).await.unwrap();
            assert!(
                n > 0,
                "the stream closed: {}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .expect("the head before the deadline");
    let text = String::from_utf8_lossy(&got).into_owned();
    assert!(
        text.starts_with("HTTP/1.1 200") && text.contains("text/event-stream"),
        "{text}"
    );
    drop(c);
    // Half rmcp's keep-alive interval (15 s): ended by the close, not by a failed write.
    let line = r.wait_within(Duration::from_millis(7_500), |l| {
        l.contains("\"path\":\"/mcp\"")
    });
    let line = line.expect("the closed stream ended");
    assert_eq!(json(&line)["status"], 200, "{line}");
}

// === per-service traffic ===

#[tokio::test]
async fn router_traffic_counts_requests_and_errors_by_class_per_service() {
    let (root, _up, d) = with_svc(&[]).await;
    let _bad = Upstream::bind(root.path(), "bad", |n| {
        Reply::SendAndClose(if n % 2 == 0 {
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
        } else {
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
        })
    });
    d.rescan().await;
    for _ in 0..20 {
        exchange(To::Tcp(d.tcp), &get_with("/svc/rpc/x", &[])).await;
    }
    // 404 (each connection's first request), then a router-made 404 for a socket it lacks.
    for _ in 0..3 {
        exchange(To::Tcp(d.tcp), &get_with("/bad/rpc/x", &[])).await;
    }
    exchange(To::Tcp(d.tcp), &get_with("/svc/nosuchkind/", &[])).await;
    exchange(To::Tcp(d.tcp), &get_with("/health", &[])).await;
    let (_, body) = common::rpc(&d, r#"{"jsonrpc":"2.0","id":1,"method":"router.traffic"}"#).await;
    let traffic = json(&body)["result"].clone();
    let by_name = |name: &str| {
        traffic["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {traffic}"))
            .clone()
    };
    let svc = by_name("svc");
    let m1 = &svc["windows"]["1m"];
    assert_eq!(m1["requests"], 21, "{m1}");
    assert_eq!(m1["errors"]["router"], 1, "{m1}");
    assert_eq!(m1["errors"]["service_4xx"], 0, "{m1}");
    assert!(m1["p50_ms"].as_f64().unwrap() > 0.0, "{m1}");
    assert!(m1["rps"].as_f64().unwrap() > 0.0, "{m1}");
    let bad = by_name("bad")["windows"]["15m"].clone();
    assert_eq!(
        (
            bad["requests"].as_u64(),
            bad["errors"]["service_4xx"].as_u64()
        ),
        (Some(3), Some(3)),
        "{bad}"
    );
    // The router's own endpoints are a series of their own; made-up names are not.
    by_name("hero_router");
    assert!(!traffic.to_string().contains("nosuchkind"));
    // The same numbers on the admin listener's /api/traffic.
    let (status, _, body) = common::admin(&d, common::request("GET", "/api/traffic", "")).await;
    assert_eq!(status, 200);
    let api = json(std::str::from_utf8(&body).unwrap());
    let svc_api = api["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "svc")
        .unwrap()
        .clone();
    assert_eq!(svc_api["windows"]["15m"]["requests"], 21);
    d.stop().await;
}

/// A `/rpc` call the router had to answer with its own error (here `-32004`: the service's
/// answer is no JSON-RPC) counts as a router error of that service, though its HTTP status is
/// 200; a call the service answered, even with its own error, does not.
#[tokio::test]
async fn a_routed_call_that_got_a_router_error_counts_as_one() {
    let (root, _up, d) = with_svc(&[]).await;
    let _bad = Upstream::bind(root.path(), "notrpc", |_| {
        Reply::Send(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
    });
    d.rescan().await;
    let (status, body) = common::rpc(&d, r#"{"jsonrpc":"2.0","id":1,"method":"notrpc.x"}"#).await;
    assert_eq!(
        (status, json(&body)["error"]["code"].as_i64()),
        (200, Some(-32004)),
        "{body}"
    );
    let (_, body) = common::rpc(&d, r#"{"jsonrpc":"2.0","id":1,"method":"router.traffic"}"#).await;
    let traffic = json(&body)["result"].clone();
    let m1 = traffic["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "notrpc")
        .unwrap_or_else(|| panic!("{traffic}"))["windows"]["1m"]
        .clone();
    assert_eq!(
        (m1["requests"].as_u64(), m1["errors"]["router"].as_u64()),
        (Some(1), Some(1)),
        "{m1}"
    );
    d.stop().await;
}

/// A request still waiting for its service when shutdown's grace runs out is cut off, and
/// still gets its one access line (status 0: nothing was sent), like every other request; a
/// routed `/rpc` call is named as its answer would have been, by its service and method.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_cut_off_at_shutdown_gets_its_line() {
    let root = tempfile::tempdir().unwrap();
    let mut arrived = hang_service(root.path());
    let mut r = Router::start(
        root.path(),
        &["--access-log", "json", "--shutdown-grace", "1s"],
    );
    let requests = [
        get_with("/hang/rpc/wait", &[]),
        post(
            "/rpc",
            r#"{"jsonrpc":"2.0","id":7,"method":"hang.wait"}"#,
            &[],
        ),
    ];
    let mut clients = Vec::new();
    for request in &requests {
        let mut c = TcpStream::connect(r.tcp).await.unwrap();
        c.write_all(request).await.unwrap();
        tokio::time::timeout(Duration::from_secs(20), arrived.recv())
            .await
            .expect("the request reached the service")
            .unwrap();
        clients.push(c);
    }
    let pid = rustix::process::Pid::from_raw(r.child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let proxied = json(&r.wait_for(|l| l.contains("\"path\":\"/hang/rpc/wait\"")));
    let routed = json(&r.wait_for(|l| l.contains("\"path\":\"/rpc\"")));
    for v in [&proxied, &routed] {
        assert_eq!(v["status"], 0, "{v}");
        assert_eq!(v["service"], "hang", "{v}");
        assert_eq!(v["bytes_out"], 0, "{v}");
    }
    assert_eq!(
        routed["methods"],
        serde_json::json!(["hang.wait"]),
        "{routed}"
    );
}

/// A service `hang` that takes every request and never answers; the receiver hears of each
/// request that arrived.
fn hang_service(root: &Path) -> tokio::sync::mpsc::UnboundedReceiver<()> {
    let sock = common::service_dir(root, "hang").join("rpc.sock");
    let l = tokio::net::UnixListener::bind(sock).unwrap();
    let (arrived_tx, arrived) = tokio::sync::mpsc::unbounded_channel::<()>();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let arrived_tx = arrived_tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                while common::raw::read_request(&mut s, &mut buf).await.is_some() {
                    let _ = arrived_tx.send(());
                }
            });
        }
    });
    arrived
}

/// A routed call that timed out (-32003) waited for no answer: `upstream_ms` is null, as for a
/// proxied 504, not the time waited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_without_an_answer_has_no_upstream_time() {
    let root = tempfile::tempdir().unwrap();
    let _arrived = hang_service(root.path());
    let mut r = Router::start(
        root.path(),
        &["--access-log", "json", "--upstream-timeout", "1s"],
    );
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"hang.x"}"#;
    let (head, body) = exchange(To::Tcp(r.tcp), &post("/rpc", call, &[])).await;
    let answer = json(&String::from_utf8(body).unwrap());
    assert_eq!(answer["error"]["code"], -32003, "{answer}");
    let v = json_line(&mut r, header(&head, "x-request-id").unwrap());
    assert_eq!(v["service"], "hang", "{v}");
    assert_eq!(v["upstream_ms"], Value::Null, "{v}");
}
