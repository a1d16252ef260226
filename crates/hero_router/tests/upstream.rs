//! The router's requests to services written the way many people write them (the connection rules
//! of docs/http.md#upstream-connections, docs/catalog.md): Python's `http.server` in four
//! connection behaviours, and a hyper service that keeps connections alive, against every kind of
//! request the router makes to a service. Every request to a healthy service succeeds, except a
//! forwarded request that may not be repeated, on a connection the service closed while it was
//! idle: that one fails with an error that says so.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::mcp::{DEADLINE, McpClient, Revision, call, connect, text};
use common::{Daemon, json, request, rpc, serve_config, service_dir, start_daemon, tcp};
use hero_example_service::silent::SilentService;
use hero_socket::{ConnectOutcome, connect_probe};
use serde_json::{Value, json};

/// Python's `http.server`, as `tests/fixtures/service.py` runs it.
const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/service.py");

/// How a service treats its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    /// Closes after a `Connection: close` request without saying so (http.server, HTTP/1.1).
    Silent,
    /// Closes idle keep-alive connections at random moments.
    Idle,
    /// Answers HTTP/1.0 and closes.
    Http10,
    /// Says `Connection: close` in every answer.
    Close,
    /// Keeps every connection alive (hyper, the example service).
    KeepAlive,
    /// Keeps connections alive on one thread: it serves one connection at a time.
    Single,
}

const ALL: [Behaviour; 5] = [
    Behaviour::Silent,
    Behaviour::Idle,
    Behaviour::Http10,
    Behaviour::Close,
    Behaviour::KeepAlive,
];

impl Behaviour {
    fn mode(self) -> Option<&'static str> {
        match self {
            Behaviour::Silent => Some("silent"),
            Behaviour::Idle => Some("idle"),
            Behaviour::Http10 => Some("http10"),
            Behaviour::Close => Some("close"),
            Behaviour::Single => Some("single"),
            Behaviour::KeepAlive => None,
        }
    }
}

/// A Python service process, killed when dropped.
struct Python(Child);

impl Drop for Python {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running service of either kind.
#[allow(dead_code)]
enum Service {
    Python(Python),
    Hyper(hero_example_service::RunningService),
}

/// Starts `name` with `behaviour` under `root` and waits until its socket accepts.
/// `discover_only`: it serves its spec by `rpc.discover` alone.
async fn start(root: &Path, name: &str, behaviour: Behaviour, discover_only: bool) -> Service {
    let sock = service_dir(root, name).join("rpc.sock");
    let service = match behaviour.mode() {
        Some(mode) => {
            let mut cmd = Command::new("python3");
            cmd.arg(FIXTURE).arg(&sock).arg(mode);
            if discover_only {
                cmd.arg("--discover-only");
            }
            let child = cmd
                .stdin(Stdio::null())
                .spawn()
                .expect("python3 runs the fixture service (.ci/run installs it)");
            Service::Python(Python(child))
        }
        None => {
            let cfg = hero_example_service::ServiceConfig::new(root, name);
            Service::Hyper(hero_example_service::spawn(cfg).await.unwrap())
        }
    };
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while connect_probe(&sock) != ConnectOutcome::Connected {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} did not start"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    service
}

/// What the router answered a request of one kind, or why it failed.
type Outcome = Result<(), String>;

/// A proxied `GET /{svc}/rpc/health`.
async fn proxied_get(d: &Daemon, svc: &str) -> Outcome {
    let (status, _, body) = tcp(d, request("GET", &format!("/{svc}/rpc/health"), "")).await;
    let body = String::from_utf8_lossy(&body).into_owned();
    if status != 200 || json(&body)["status"] != "ok" {
        return Err(format!("{status}: {body}"));
    }
    Ok(())
}

/// A proxied `POST /{svc}/rpc/rpc`: the service's own JSON-RPC endpoint through the proxy.
async fn proxied_post(d: &Daemon, svc: &str) -> Outcome {
    let call = r#"{"jsonrpc":"2.0","id":7,"method":"add","params":{"a":1,"b":2}}"#;
    let (status, _, body) = tcp(d, request("POST", &format!("/{svc}/rpc/rpc"), call)).await;
    let body = String::from_utf8_lossy(&body).into_owned();
    if status != 200 || json(&body)["result"] != 3 {
        return Err(format!("{status}: {body}"));
    }
    Ok(())
}

/// A method-routed call through the router's `/rpc`.
async fn routed(d: &Daemon, svc: &str) -> Outcome {
    let call =
        format!(r#"{{"jsonrpc":"2.0","id":7,"method":"{svc}.add","params":{{"a":1,"b":2}}}}"#);
    let (status, body) = rpc(d, &call).await;
    if status != 200 || json(&body)["result"] != 3 {
        return Err(format!("{status}: {body}"));
    }
    Ok(())
}

/// The catalog fetches the service's documents again (its manifest, its spec by
/// `GET /openrpc.json` or `rpc.discover`) and has a valid spec.
async fn catalog(d: &Daemon, svc: &str) -> Outcome {
    let call = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"router.spec","params":{{"name":"{svc}","refresh":true}}}}"#
    );
    let (_, body) = rpc(d, &call).await;
    if json(&body)["result"]["openrpc"] != "1.3.2" {
        return Err(format!("router.spec: {body}"));
    }
    let state = spec_state(d, svc).await;
    if state["state"] != "ok" {
        return Err(format!("spec {state}"));
    }
    Ok(())
}

/// The service's `spec` as `router.service` shows it.
async fn spec_state(d: &Daemon, svc: &str) -> Value {
    let call =
        format!(r#"{{"jsonrpc":"2.0","id":1,"method":"router.service","params":["{svc}"]}}"#);
    let (_, body) = rpc(d, &call).await;
    json(&body)["result"]["spec"].clone()
}

/// An MCP `tools/call` of `add` on `/mcp/{svc}`.
async fn mcp(client: &McpClient) -> Outcome {
    let r = call(client, "add", json!({"a": 1, "b": 2}))
        .await
        .map_err(|e| format!("tools/call: {e}"))?;
    if r.is_error == Some(true) || text(&r) != "3" {
        return Err(format!("tools/call: {}", text(&r)));
    }
    Ok(())
}

/// `hero_router call SVC add` through the running router.
fn cli(root: &Path, svc: &str) -> Outcome {
    let out = hero_router_cli(root, &["call", svc, "add", r#"{"a":1,"b":2}"#]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || stdout.trim() != "3" {
        return Err(format!(
            "exit {:?}: {stdout} {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

fn hero_router_cli(root: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hero_router"))
        .arg("--socket-dir")
        .arg(root)
        .args(args)
        .output()
        .unwrap()
}

/// True if `error` is the one failure allowed: a forwarded call that may not be repeated,
/// on a connection a service closed while it was idle, refused with that reason.
fn closed_while_idle(behaviour: Behaviour, error: &str) -> bool {
    behaviour == Behaviour::Idle && error.contains("closed a kept connection without answering")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_kind_works_with_every_kind_of_service() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let d = start_daemon(serve_config(root, &[])).await;
    let mut services = Vec::new();
    for b in ALL {
        let name = format!("{b:?}").to_lowercase();
        services.push(start(root, &name, b, false).await);
        if b != Behaviour::KeepAlive {
            // The spec by `rpc.discover` alone: the catalog's fallback.
            services.push(start(root, &format!("{name}_discover"), b, true).await);
        }
    }
    d.rescan().await;
    let names = |b: Behaviour| {
        let name = format!("{b:?}").to_lowercase();
        let mut all = vec![name.clone()];
        if b != Behaviour::KeepAlive {
            all.push(format!("{name}_discover"));
        }
        all
    };

    // Every spec lands `ok` without help: the first fetches, as the catalog makes them.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    for b in ALL {
        for svc in names(b) {
            loop {
                let state = spec_state(&d, &svc).await;
                if state["state"] == "ok" {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{svc}: the first fetch did not land ok: {state}"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }

    const ROUNDS: usize = 25;
    let mut report = Vec::new();
    for b in ALL {
        let svc = format!("{b:?}").to_lowercase();
        let client = connect(&d, &format!("/mcp/{svc}"), Revision::Stateless).await;
        let mut failures: Vec<String> = Vec::new();
        let mut allowed = 0;
        for round in 0..ROUNDS {
            let outcomes: [(&str, bool, Outcome); 5] = [
                ("proxied GET", true, proxied_get(&d, &svc).await),
                ("proxied POST", false, proxied_post(&d, &svc).await),
                ("routed /rpc", false, routed(&d, &svc).await),
                ("MCP tools/call", false, mcp(&client).await),
                ("catalog", true, catalog(&d, &svc).await),
            ];
            for (kind, idempotent, outcome) in outcomes {
                match outcome {
                    Ok(()) => {}
                    Err(e) if !idempotent && closed_while_idle(b, &e) => allowed += 1,
                    Err(e) => failures.push(format!("{b:?} round {round} {kind}: {e}")),
                }
            }
            if b != Behaviour::KeepAlive {
                let fallback = catalog(&d, &format!("{svc}_discover")).await;
                if let Err(e) = fallback {
                    failures.push(format!("{b:?} round {round} rpc.discover fallback: {e}"));
                }
            }
        }
        // The CLI is a process per call: fewer rounds.
        for round in 0..5 {
            match cli(root, &svc) {
                Ok(()) => {}
                Err(e) if closed_while_idle(b, &e) => allowed += 1,
                Err(e) => failures.push(format!("{b:?} round {round} hero_router call: {e}")),
            }
        }
        client.cancel().await.unwrap();
        assert!(failures.is_empty(), "{failures:#?}");
        report.push(format!("{b:?}: {allowed} refused as closed while idle"));
    }
    eprintln!("{report:#?}");
    d.stop().await;
    drop(services);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_services_own_errors_keep_their_origin() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let d = start_daemon(serve_config(root, &[])).await;
    let _svc = start(root, "dyn", Behaviour::Silent, false).await;
    d.rescan().await;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while spec_state(&d, "dyn").await["state"] != "ok" {
        assert!(tokio::time::Instant::now() < deadline, "no spec");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let client = connect(&d, "/mcp", Revision::Stateless).await;
    for code in [-32001, -32002, -32003, -32004, -32005] {
        let params = json!({"code": code, "message": "user not found"});
        // /rpc: the service's error as it sent it.
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "dyn.fail", "params": params});
        let (_, answer) = rpc(&d, &body.to_string()).await;
        let error = &json(&answer)["error"];
        assert_eq!(error["code"], code, "{answer}");
        assert_eq!(error["message"], "user not found", "{answer}");
        assert_eq!(error["data"], json!({"from": "fixture"}), "{answer}");
        // MCP: an error result that quotes the service, never the router's wording.
        let r = call(&client, "dyn__fail", params.clone()).await.unwrap();
        let t = text(&r);
        assert_eq!(r.is_error, Some(true));
        assert!(
            t.contains("user not found") && t.contains(&code.to_string()) && !t.contains("gone"),
            "{code}: {t}"
        );
        // The CLI: the service's message, exit 1.
        let out = hero_router_cli(root, &["call", "dyn", "fail", &params.to_string()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("user not found"), "{code}: {err}");
    }

    // The router's own methods answer as the hero_router service: their errors are theirs.
    let r = call(
        &client,
        "hero_router__router_service",
        json!({"name": "nosuch"}),
    )
    .await
    .unwrap();
    let t = text(&r);
    assert_eq!(r.is_error, Some(true));
    assert!(
        t.contains("no such service: nosuch") && !t.contains("gone"),
        "{t}"
    );
    // An unknown tool is unknown; it is never said to belong to a service that is "gone".
    for tool in ["nosuch__tool", "dyn__nosuch", "plain"] {
        let e = call(&client, tool, json!({}))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown tool") && !e.contains("gone"),
            "{tool}: {e}"
        );
    }
    client.cancel().await.unwrap();
    d.stop().await;
}

/// Reads one answer (head and a `content-length` body) from `s`, with what was read past it
/// left in `buf`; `None` at a clean end of stream.
async fn read_answer(
    s: &mut tokio::net::TcpStream,
    buf: &mut Vec<u8>,
) -> Option<(String, Vec<u8>)> {
    use tokio::io::AsyncReadExt;
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8(buf[..end + 4].to_vec()).unwrap();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (n, v) = l.split_once(':')?;
                    n.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().unwrap())
                })
                .expect("an answer with a length");
            while buf.len() < end + 4 + length {
                let mut chunk = [0u8; 4096];
                let n = s.read(&mut chunk).await.unwrap();
                assert!(n > 0, "cut in the body");
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = buf[end + 4..end + 4 + length].to_vec();
            buf.drain(..end + 4 + length);
            return Some((head.to_ascii_lowercase(), body));
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.unwrap();
        if n == 0 {
            assert!(buf.is_empty(), "cut in a head");
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http10_keep_alive_pipelines_through_the_router() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let d = start_daemon(serve_config(root, &[])).await;
    let _svc = start(root, "old", Behaviour::KeepAlive, false).await;
    d.rescan().await;
    let keep = "Connection: keep-alive\r\n";
    let rpc_body = r#"{"jsonrpc":"2.0","id":1,"method":"old.add","params":[2,3]}"#;
    let requests = [
        format!("GET /old/rpc/health HTTP/1.0\r\n{keep}\r\n"),
        format!("GET /health HTTP/1.0\r\n{keep}\r\n"),
        format!(
            "POST /rpc HTTP/1.0\r\nContent-Length: {}\r\n{keep}\r\n{rpc_body}",
            rpc_body.len()
        ),
        format!("HEAD /old/rpc/health HTTP/1.0\r\n{keep}\r\n"),
        format!("GET /old/rpc/health HTTP/1.0\r\n{keep}\r\n"),
        // The last one does not ask: its answer closes the connection.
        "GET /old/rpc/health HTTP/1.0\r\n\r\n".to_owned(),
    ];
    let mut s = tokio::net::TcpStream::connect(d.tcp).await.unwrap();
    // All at once: pipelined.
    s.write_all(requests.concat().as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    for (i, req) in requests.iter().enumerate() {
        let head_request = req.starts_with("HEAD");
        let (head, body) = if head_request {
            // A HEAD answer announces a length it does not send.
            let (head, _) = tokio::time::timeout(DEADLINE, read_head_only(&mut s, &mut buf))
                .await
                .unwrap();
            (head, Vec::new())
        } else {
            tokio::time::timeout(DEADLINE, read_answer(&mut s, &mut buf))
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("request {i} got no answer"))
        };
        assert!(head.starts_with("http/1.1 200"), "{i}: {head}");
        let last = i == requests.len() - 1;
        let told = if last {
            "connection: close"
        } else {
            "connection: keep-alive"
        };
        assert!(head.contains(told), "{i}: {head}");
        if i == 2 {
            assert_eq!(json(std::str::from_utf8(&body).unwrap())["result"], 5);
        }
    }
    assert!(
        read_answer(&mut s, &mut buf).await.is_none(),
        "closed after the answer to the request that did not ask to keep it"
    );
    d.stop().await;
}

/// Reads a head alone (a `HEAD` answer).
async fn read_head_only(s: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> (String, ()) {
    use tokio::io::AsyncReadExt;
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8(buf[..end + 4].to_vec()).unwrap();
            buf.drain(..end + 4);
            return (head.to_ascii_lowercase(), ());
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed before a head");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A socket that accepts and never answers, as a hung service does: each connection is held.
fn hanging(path: PathBuf) {
    let l = tokio::net::UnixListener::bind(path).unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_services_do_not_delay_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for i in 0..64 {
        hanging(service_dir(root, &format!("hang{i:02}")).join("rpc.sock"));
    }
    // A catalog timeout far beyond the test's deadline: a new service that waited for the
    // hung fetches to time out (four rounds of 16 slots) could never make it.
    let d = start_daemon(serve_config(root, &["--catalog-timeout", "120s"])).await;
    d.rescan().await;
    let started = tokio::time::Instant::now();
    let _svc = start(root, "fresh", Behaviour::KeepAlive, false).await;
    d.rescan().await;
    let deadline = started + Duration::from_secs(30);
    while spec_state(&d, "fresh").await["state"] != "ok" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new service's spec is stuck behind 64 hanging services"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!(
        "the new service's spec was ok {:?} after it started, with 64 hung fetches",
        started.elapsed()
    );
    // The hung ones are still being fetched (none has timed out yet).
    assert_eq!(spec_state(&d, "hang00").await["state"], "absent");
    d.stop().await;
}

/// A spec with `add` and the given other method.
fn silent_spec(other: &str) -> String {
    let spec = json!({
        "openrpc": "1.3.2",
        "info": {"title": "Silent", "version": "1"},
        "methods": [
            {"name": "add", "params": [
                {"name": "a", "schema": {"type": "integer"}},
                {"name": "b", "schema": {"type": "integer"}}
            ], "result": {"name": "sum", "schema": {"type": "integer"}}},
            {"name": other, "params": [], "result": {"name": "r", "schema": {}}}
        ]
    });
    spec.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_closer_restarting_a_thousand_times_keeps_its_tools() {
    use rmcp::model::{ServerNotification, SubscriptionFilter};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let path = service_dir(root, "silent").join("rpc.sock");
    let spec = silent_spec("ping");
    let mut instance = SilentService::start_over(&path, spec.clone()).unwrap();
    let d = start_daemon(serve_config(root, &[])).await;
    d.rescan().await;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while spec_state(&d, "silent").await["state"] != "ok" {
        assert!(tokio::time::Instant::now() < deadline, "no first spec");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(instance.spec_fetches(), 1);

    let client = Arc::new(connect(&d, "/mcp/silent", Revision::Stateless).await);
    let mut changes = client
        .listen(SubscriptionFilter::builder().tools_list_changed().build())
        .await
        .unwrap();
    let notes = Arc::new(AtomicUsize::new(0));
    let counted = notes.clone();
    let counter = tokio::spawn(async move {
        while let Ok(Some(note)) = changes.next().await {
            if matches!(note, ServerNotification::ToolListChangedNotification(_)) {
                counted.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    // A client that lists the tools all along: never an empty list.
    let stop = Arc::new(AtomicBool::new(false));
    let lister = {
        let (client, stop) = (client.clone(), stop.clone());
        tokio::spawn(async move {
            let mut lists = 0usize;
            while !stop.load(Ordering::SeqCst) {
                let tools = client.list_all_tools().await.unwrap();
                let names: Vec<_> = tools.iter().map(|t| t.name.to_string()).collect();
                assert_eq!(names, ["add", "ping"], "after {lists} lists");
                lists += 1;
            }
            lists
        })
    };

    const RESTARTS: usize = 1000;
    for i in 0..RESTARTS {
        instance = SilentService::start_over(&path, spec.clone()).unwrap();
        d.rescan().await;
        // The catalog fetches the new instance's spec (a restart is a new socket file).
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while instance.spec_fetches() == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "restart {i}: the spec was not fetched again"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    stop.store(true, Ordering::SeqCst);
    let lists = lister.await.unwrap();
    let state = spec_state(&d, "silent").await;
    assert_eq!(state["state"], "ok", "{state}");

    // A real change is told, once: any spurious notice during the restarts would have come
    // before it on the same stream.
    instance = SilentService::start_over(&path, silent_spec("pong")).unwrap();
    d.rescan().await;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while notes.load(Ordering::SeqCst) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the real change was not told"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let tools = client.list_all_tools().await.unwrap();
    let names: Vec<_> = tools.iter().map(|t| t.name.to_string()).collect();
    assert_eq!(names, ["add", "pong"]);
    assert_eq!(
        notes.load(Ordering::SeqCst),
        1,
        "a list_changed during {RESTARTS} restarts that changed nothing"
    );
    eprintln!("{RESTARTS} restarts, {lists} tool lists, none empty");
    counter.abort();
    drop(instance);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fetch_keeps_the_document_stale_and_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let path = service_dir(root, "flaky").join("rpc.sock");
    let instance = SilentService::start_over(&path, silent_spec("ping")).unwrap();
    let d = start_daemon(serve_config(root, &[])).await;
    d.rescan().await;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while spec_state(&d, "flaky").await["state"] != "ok" {
        assert!(tokio::time::Instant::now() < deadline, "no first spec");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let good = spec_state(&d, "flaky").await;
    let client = connect(&d, "/mcp/flaky", Revision::Stateless).await;

    // A hiccup: the next fetch gets no answer. The document stays, marked stale.
    instance.set_failing(true);
    let refresh = r#"{"jsonrpc":"2.0","id":1,"method":"router.spec","params":{"name":"flaky","refresh":true}}"#;
    let (_, body) = rpc(&d, refresh).await;
    assert_eq!(json(&body)["result"]["info"]["title"], "Silent", "{body}");
    let stale = spec_state(&d, "flaky").await;
    assert_eq!(stale["state"], "stale", "{stale}");
    assert_eq!(stale["fingerprint"], good["fingerprint"]);
    assert_eq!(
        stale["fetched_unix_ms"], good["fetched_unix_ms"],
        "the last success"
    );
    let reason = stale["reason"].as_str().unwrap();
    assert!(reason.contains("GET /openrpc.json"), "{reason}");
    let tools = client.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), 2, "the tools stay");
    assert!(mcp(&client).await.is_ok());
    let page = tcp(&d, request("GET", "/docs/flaky.md", "")).await;
    assert_eq!(page.0, 200, "the docs stay");

    // The service recovers: the catalog's own retry (about a second later; the refresh
    // interval is minutes) makes it ok again, nobody asking.
    instance.set_failing(false);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let state = spec_state(&d, "flaky").await;
        if state["state"] == "ok" {
            assert_ne!(state["fetched_unix_ms"], good["fetched_unix_ms"]);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no retry brought it back: {state}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    client.cancel().await.unwrap();
    drop(instance);
    d.stop().await;
}

/// The Python code block of the README's "Writing a service" section.
fn readme_python_service() -> String {
    let readme = include_str!("../../../README.md");
    let section = readme
        .split("\n## Writing a service\n")
        .nth(1)
        .expect("the README has a \"Writing a service\" section");
    let code = section
        .split("```python\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("the section has a Python example");
    code.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readmes_python_service_works() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let script = root.join("service.py");
    std::fs::write(&script, readme_python_service()).unwrap();
    let _service = Python(
        Command::new("python3")
            .arg(&script)
            .env("HERO_SOCKET_DIR", root)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let sock = root.join("pyadd/rpc.sock");
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while connect_probe(&sock) != ConnectOutcome::Connected {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the example did not start"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let d = start_daemon(serve_config(root, &[])).await;
    d.rescan().await;
    // What the README promises: the call, the spec, and the tool.
    let out = hero_router_cli(root, &["call", "pyadd", "add", r#"{"a": 2, "b": 3}"#]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "5",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = hero_router_cli(root, &["spec", "pyadd"]);
    assert!(out.status.success());
    assert_eq!(
        json(&String::from_utf8_lossy(&out.stdout))["info"]["title"],
        "Adder"
    );
    assert_eq!(spec_state(&d, "pyadd").await["state"], "ok");
    let client = connect(&d, "/mcp/pyadd", Revision::Stateless).await;
    assert!(mcp(&client).await.is_ok());
    client.cancel().await.unwrap();
    d.stop().await;
}

/// A service that answers the first request on each connection (keeping it open) and closes
/// the connection on the second, unanswered or after `junk` (what a service writes when it
/// reads bytes a client left on the connection as a request): a pooled connection that fails
/// just as it is reused, every time. With `delay`, the second request is closed that long after
/// it came (a service that fails on a request, or dies, rather than closing an idle connection).
fn on_reuse(
    path: PathBuf,
    junk: Option<&'static [u8]>,
    delay: Duration,
) -> tokio::task::JoinHandle<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::UnixListener::bind(path).unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut answered = 0;
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        let mut chunk = [0u8; 4096];
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    if answered == 1 {
                        // The service's time on the request: the behaviour under test.
                        tokio::time::sleep(delay).await;
                        // The second request: closed, unanswered (or answered with junk).
                        if let Some(junk) = junk {
                            let _ = s.write_all(junk).await;
                        }
                        return;
                    }
                    buf.drain(..end + 4);
                    let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if s.write_all(ok).await.is_err() {
                        return;
                    }
                    answered += 1;
                }
            });
        }
    })
}

/// A kept connection the service closes unanswered well after the request came (it failed on
/// it, or died) is not blamed on an idle close: the message says the service closed without
/// answering, as on a fresh connection.
#[tokio::test]
async fn a_kept_connection_closed_long_after_the_request_is_no_idle_race() {
    let why =
        "service reuse broke the connection (the service closed the connection without answering)";
    reused_connections_fail(None, Duration::from_millis(300), why).await;
}

/// CONTRACT §5: a forwarded request on a reused connection that closes before the first byte
/// of its answer is sent again on a fresh one only if it is `GET` or `HEAD`; `PUT`, `DELETE`,
/// `OPTIONS` and `POST` get 502 with the reason instead.
#[tokio::test]
async fn only_get_and_head_are_sent_again_after_a_reused_connection_dies() {
    let why = "closed a kept connection without answering (it may have closed it as idle just then, or failed on this request); the request was not sent again";
    reused_connections_fail(None, Duration::ZERO, why).await;
}

/// The same when the reused connection answers garbage (an HTTP/0.9 error page, as Python's
/// http.server writes for the bytes of a chunked body it did not read).
#[tokio::test]
async fn only_get_and_head_are_sent_again_after_a_reused_connection_answers_garbage() {
    let junk = b"<!DOCTYPE HTML>\n<html><body>Error response 400</body></html>\n";
    reused_connections_fail(Some(junk), Duration::ZERO, "malformed").await;
}

/// A service whose reused connections fail (closed, or `junk` then closed): `GET` and `HEAD`
/// are sent again on a fresh connection, any other method gets a 502 that says `why`.
async fn reused_connections_fail(junk: Option<&'static [u8]>, delay: Duration, why: &str) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let d = start_daemon(serve_config(root, &[])).await;
    let _svc = on_reuse(service_dir(root, "reuse").join("rpc.sock"), junk, delay);
    d.rescan().await;
    // One client connection: it stays on one connection thread, whose pool it reuses.
    let mut s = tokio::net::TcpStream::connect(d.tcp).await.unwrap();
    let mut buf = Vec::new();
    let mut ask = async |method: &str| {
        use tokio::io::AsyncWriteExt;
        let head = format!("{method} /reuse/rpc/x HTTP/1.1\r\nHost: {}\r\n\r\n", d.tcp);
        s.write_all(head.as_bytes()).await.unwrap();
        if method == "HEAD" {
            // No body follows an answer to HEAD, whatever its content-length says.
            return (read_head_only(&mut s, &mut buf).await.0, String::new());
        }
        let (head, body) = read_answer(&mut s, &mut buf).await.expect("an answer");
        (head, String::from_utf8(body).unwrap())
    };
    for method in ["GET", "HEAD", "PUT", "DELETE", "OPTIONS", "POST"] {
        // A fresh connection: answered, and pooled.
        let (head, _) = ask("GET").await;
        assert!(head.starts_with("http/1.1 200"), "{head}");
        // The pooled one is reused, and the service closes it unanswered.
        let (head, body) = ask(method).await;
        if matches!(method, "GET" | "HEAD") {
            assert!(head.starts_with("http/1.1 200"), "{method}: {head}{body}");
        } else {
            assert!(head.starts_with("http/1.1 502"), "{method}: {head}{body}");
            assert!(body.contains(why), "{method}: {body}");
        }
    }
    d.stop().await;
}

/// Uploads `size` bytes with `PUT /{svc}/rpc/upload` (chunked or with a length), writing
/// while it reads, and returns the answer's status line.
async fn upload(d: &Daemon, svc: &str, size: usize, chunked: bool) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = tokio::net::TcpStream::connect(d.tcp).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let framing = if chunked {
        "Transfer-Encoding: chunked".to_owned()
    } else {
        format!("Content-Length: {size}")
    };
    let head = format!("PUT /{svc}/rpc/upload HTTP/1.1\r\nHost: localhost\r\n{framing}\r\n\r\n");
    let writer = tokio::spawn(async move {
        let piece = vec![b'x'; 64 * 1024];
        let mut out = head.into_bytes();
        let mut left = size;
        while left > 0 || !out.is_empty() {
            let n = left.min(piece.len());
            if chunked && n > 0 {
                out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
            }
            out.extend_from_slice(&piece[..n]);
            if chunked {
                out.extend_from_slice(if n > 0 { b"\r\n" } else { b"0\r\n\r\n" });
            }
            left -= n;
            // The router stops reading once the answer came: the rest may not go.
            if wr.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
    });
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    let read = async {
        while !got.windows(2).any(|w| w == b"\r\n") {
            match rd.read(&mut chunk).await {
                Ok(n) if n > 0 => got.extend_from_slice(&chunk[..n]),
                _ => break,
            }
        }
    };
    tokio::time::timeout(DEADLINE, read)
        .await
        .expect("no answer to the upload");
    writer.abort();
    let line = String::from_utf8_lossy(&got);
    line.lines().next().unwrap_or("(nothing)").to_owned()
}

/// Python's `http.server` answers a method it lacks (`PUT`) with 501 and closes without
/// reading the upload. That answer is the client's, whatever part of the upload had gone:
/// never a 502 from a write the service stopped reading (issue: about 4 in 10 were).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_the_service_refuses_unread_gets_the_services_answer() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let d = start_daemon(serve_config(root, &[])).await;
    let _old = start(root, "old", Behaviour::Http10, false).await;
    let _new = start(root, "new", Behaviour::Silent, false).await;
    d.rescan().await;
    for svc in ["old", "new"] {
        for (i, chunked) in [false, true].into_iter().cycle().take(12).enumerate() {
            let status = upload(&d, svc, 4 << 20, chunked).await;
            assert!(
                status.starts_with("HTTP/1.1 501"),
                "{svc}, upload {i} (chunked: {chunked}): {status}"
            );
        }
    }
    d.stop().await;
}

/// A router with `args` in front of Python's single-threaded `http.server` (`single`).
async fn single_threaded(args: &[&str]) -> (tempfile::TempDir, Daemon, Service) {
    let dir = tempfile::tempdir().unwrap();
    let d = start_daemon(serve_config(dir.path(), args)).await;
    let svc = start(dir.path(), "single", Behaviour::Single, false).await;
    d.rescan().await;
    (dir, d, svc)
}

/// A single-threaded HTTP/1.1 service (Python's http.server without its threading mix-in)
/// serves the connection it has until the client closes it. Requests one after another, each
/// from a new client connection (so on alternating connection threads), all reach it: the
/// router reuses the one connection it keeps idle, whichever thread kept it, rather than
/// queue a new one behind it (which waited for --upstream-timeout, every other request).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_threaded_keep_alive_service_serves_requests_one_after_another() {
    let (_root, d, _svc) = single_threaded(&["--upstream-timeout", "3s"]).await;
    // Each request says `Connection: close`: the router ends the client connection, and
    // returns the upstream one it kept for it, as it answers.
    let once = async |request: String| {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(d.tcp).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        let read = tokio::time::timeout(DEADLINE, s.read_to_end(&mut answer)).await;
        read.expect("an answer").unwrap();
        String::from_utf8_lossy(&answer).into_owned()
    };
    let call = r#"{"jsonrpc":"2.0","id":7,"method":"single.add","params":{"a":1,"b":2}}"#;
    for i in 0..8 {
        let get = "GET /single/rpc/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
        let answer = once(get.to_owned()).await;
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "request {i}, proxied: {answer}"
        );
        let post = format!(
            "POST /rpc HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{call}",
            call.len()
        );
        let answer = once(post).await;
        let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        assert_eq!(json(body)["result"], 3, "request {i}, routed: {answer}");
    }
    d.stop().await;
}

/// A client that stops reading a large answer is cut off after `--send-timeout`: it held the
/// service's connection while the router streamed the answer, and a single-threaded service
/// (http.server) answered nobody else meanwhile, for as long as that client kept its
/// connection open. Everyone else got 504.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_does_not_hold_a_single_threaded_service() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_root, d, _svc) =
        single_threaded(&["--upstream-timeout", "30s", "--send-timeout", "1s"]).await;
    // The one that stops: asks for 64 MiB, reads the head and nothing more.
    let mut stuck = tokio::net::TcpStream::connect(d.tcp).await.unwrap();
    stuck
        .write_all(b"GET /single/rpc/big HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    tokio::time::timeout(DEADLINE, stuck.read_exact(&mut head))
        .await
        .expect("the head of the big answer")
        .unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    // Another client: answered once the stuck one is cut off, long before --upstream-timeout.
    assert_eq!(proxied_get(&d, "single").await, Ok(()));
    // The stuck client's connection was ended.
    let mut rest = Vec::new();
    let ended = tokio::time::timeout(DEADLINE, async {
        loop {
            rest.clear();
            rest.reserve(1 << 20);
            match stuck.read_buf(&mut rest).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stuck client's connection stays open");
    d.stop().await;
}

/// A single-threaded HTTP/1.1 service is not left waiting on a connection the router keeps
/// idle. The twelve calls of one batch all get their answer, one after another: each waited on
/// a new connection behind the one the last call left idle, first until --upstream-timeout,
/// then one idle time each (twelve of them are more than the 5 s allowed here). And after a
/// routed call, with no more traffic, another client of the socket gets its answer (the idle
/// connection was closed only when the router next had a request, however long that took).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_threaded_service_is_not_held_by_an_idle_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (root, d, _svc) = single_threaded(&["--upstream-timeout", "5s"]).await;
    let root = root.path();
    let calls: Vec<Value> = (0..12)
        .map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "single.add", "params": {"a": i, "b": 1}}))
        .collect();
    let (status, body) = rpc(&d, &Value::Array(calls).to_string()).await;
    assert_eq!(status, 200, "{body}");
    let answers = json(&body);
    for i in 0..12 {
        assert_eq!(answers[i]["result"], i + 1, "call {i}: {body}");
    }
    // Another client, straight onto the socket, with the router quiet.
    let sock = service_dir(root, "single").join("rpc.sock");
    let mut direct = tokio::net::UnixStream::connect(&sock).await.unwrap();
    direct
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(DEADLINE, direct.read_to_end(&mut answer))
        .await
        .expect("the service answers another client")
        .unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    d.stop().await;
}

/// A service that answers any request with a body over 1000 bytes at once, with a 413 and a
/// JSON-RPC error, and closes without reading the body (as many servers refuse an upload), or,
/// `reads_on`, reads the body on slowly without closing.
fn refuses_large_bodies(path: PathBuf, reads_on: bool) -> tokio::task::JoinHandle<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::UnixListener::bind(path).unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let end = loop {
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break end;
                    }
                    let mut chunk = [0u8; 4096];
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                // Small requests (the catalog's fetches) get a plain 404.
                let answer = if length > 1000 {
                    let body = r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"request too large"}}"#;
                    format!(
                        "HTTP/1.1 413 Payload Too Large\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    )
                } else {
                    "HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
                        .to_owned()
                };
                let _ = s.write_all(answer.as_bytes()).await;
                if reads_on {
                    // 8 KiB every 50 ms (the service's pace is the behaviour under test),
                    // until the router closes.
                    let mut chunk = [0u8; 8192];
                    while matches!(s.read(&mut chunk).await, Ok(n) if n > 0) {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                // Closed with the body unread.
            });
        }
    })
}

/// A service that answers before it has read the request's body, and closes, gets its answer
/// passed on through `/rpc` as it is through the proxy; the router's next write failing
/// (broken pipe) is not the story ("sending the request failed: Broken pipe").
#[tokio::test]
async fn a_routed_call_gets_the_answer_a_service_gave_before_reading_its_body() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // A service reading 160 KiB a second would take a minute for 10 MB: the answer it gave
    // comes back long before this limit, or it is a -32003 instead.
    let d = start_daemon(serve_config(root, &["--upstream-timeout", "5s"])).await;
    let _early = refuses_large_bodies(service_dir(root, "early").join("rpc.sock"), false);
    let _slow = refuses_large_bodies(service_dir(root, "slow").join("rpc.sock"), true);
    d.rescan().await;
    for (service, size) in [("early", 300_000), ("early", 900_000), ("slow", 10_000_000)] {
        let call = json!({"jsonrpc": "2.0", "id": 7, "method": format!("{service}.echo"),
                          "params": ["x".repeat(size)]});
        let (status, body) = rpc(&d, &call.to_string()).await;
        assert_eq!(status, 200, "{body}");
        let v = json(&body);
        // The service's answer as it is (docs/json-rpc.md), its null id included.
        assert_eq!(v["id"], Value::Null, "{body}");
        assert_eq!(
            v["error"]["code"], -32600,
            "the service's own error: {body}"
        );
        assert_eq!(v["error"]["message"], "request too large", "{body}");
    }
    d.stop().await;
}

/// A keep-alive client that goes quiet after a proxied request does not keep the upstream
/// connection it was given for longer than the pool keeps an idle one: a single-threaded
/// service answers a routed call meanwhile (it waited for --upstream-timeout, or until that
/// client's --header-timeout ended its connection).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_keep_alive_client_does_not_hold_a_single_threaded_service() {
    use tokio::io::AsyncWriteExt;
    let (_root, d, _svc) =
        single_threaded(&["--upstream-timeout", "30s", "--header-timeout", "60s"]).await;
    let mut quiet = tokio::net::TcpStream::connect(d.tcp).await.unwrap();
    quiet
        .write_all(b"GET /single/rpc/health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let (head, _) = read_answer(&mut quiet, &mut buf).await.expect("an answer");
    assert!(head.starts_with("http/1.1 200"), "{head}");
    // The client stays connected and says nothing more; a routed call comes meanwhile.
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"single.add","params":{"a":2,"b":3}}"#;
    let (status, body) = tokio::time::timeout(DEADLINE, rpc(&d, call))
        .await
        .expect("the routed call is answered while the other client is quiet");
    assert_eq!(
        (status, json(&body)["result"].clone()),
        (200, json!(5)),
        "{body}"
    );
    // The quiet client's connection still works.
    quiet
        .write_all(b"GET /single/rpc/health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let (head, _) = read_answer(&mut quiet, &mut buf)
        .await
        .expect("a second answer");
    assert!(head.starts_with("http/1.1 200"), "{head}");
    d.stop().await;
}

/// A slow reader over TCP keeps its connection under `--send-timeout`: the kernel's timer
/// sees the window it opens as it reads, where a write could only see the router's buffer
/// free again, megabytes later (a reader of 64 KiB a second was cut at the limit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_is_not_cut_by_the_send_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_root, d, _svc) = single_threaded(&["--send-timeout", "1s"]).await;
    let mut s = tokio::net::TcpStream::connect(d.tcp).await.unwrap();
    s.write_all(b"GET /single/rpc/big HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    // 64 KiB every 200 ms, for three times the limit: the buffers stay full all along.
    let mut got = 0usize;
    let mut chunk = vec![0u8; 64 * 1024];
    let slow_until = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < slow_until {
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "cut off after {got} bytes");
        got += n;
        tokio::time::sleep(Duration::from_millis(200)).await; // the reader's pace is the point
    }
    // Then the rest, as fast as it comes: all of it.
    let mut rest = Vec::new();
    tokio::time::timeout(DEADLINE, s.read_to_end(&mut rest))
        .await
        .expect("the rest of the answer")
        .unwrap();
    got += rest.len();
    let body = 64 << 20;
    assert!(got > body, "{got} bytes, the body alone is {body}");
    d.stop().await;
}

/// A client that keeps sending on its keep-alive connection does not have a single-threaded
/// service to itself: a routed call from another client is answered meanwhile (it waited in
/// the service's backlog until --upstream-timeout, as the busy client's connection was kept for
/// its next request, every time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_keep_alive_client_shares_a_single_threaded_service() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use tokio::io::AsyncWriteExt;
    let (_root, d, _svc) = single_threaded(&["--upstream-timeout", "5s"]).await;
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let busy = tokio::spawn({
        let (stop, served, addr) = (stop.clone(), served.clone(), d.tcp);
        async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            let mut buf = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                s.write_all(b"GET /single/rpc/health HTTP/1.1\r\nHost: localhost\r\n\r\n")
                    .await
                    .unwrap();
                let (head, _) = read_answer(&mut s, &mut buf).await.expect("an answer");
                assert!(head.starts_with("http/1.1 200"), "{head}");
                served.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    // Once the busy client is going, three routed calls, one after another.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while served.load(Ordering::Relaxed) < 10 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the busy client got no answers"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for i in 0..3 {
        let call = format!(
            r#"{{"jsonrpc":"2.0","id":{i},"method":"single.add","params":{{"a":{i},"b":1}}}}"#
        );
        let (status, body) = rpc(&d, &call).await;
        assert_eq!(
            (status, json(&body)["result"].clone()),
            (200, json!(i + 1)),
            "{body}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    busy.await.unwrap();
    d.stop().await;
}
