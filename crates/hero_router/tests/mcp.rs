//! The MCP gateway (docs/docs-and-mcp.md#mcp-gateway) against the real router and example services
//! on real sockets, driven by rmcp's own client in both protocol revisions (2025-11-25 with the
//! `initialize` handshake, 2026-07-28 stateless), over TCP and admin.sock; the wire rules
//! rmcp's client never breaks (headers, versions, Origin) are checked with raw requests.

mod common;

use std::path::Path;
use std::time::Duration;

use common::mcp::{BOTH, DEADLINE, McpClient, Revision, call, code, connect, connect_admin, text};
use common::{Daemon, dead_socket, json, serve_config, start_daemon, tcp, uds};
use hero_example_service::{RunningService, ServiceConfig, Spec, spawn};
use hero_router::Catalog;
use http_body_util::Full;
use rmcp::model::{PaginatedRequestParams, ServerNotification, SubscriptionFilter};
use serde_json::{Value, json};

fn example(root: &Path, name: &str, spec: Spec) -> ServiceConfig {
    ServiceConfig {
        spec,
        ..ServiceConfig::new(root, name)
    }
}

/// Waits until the catalog satisfies `pred`.
async fn catalog_until(d: &Daemon, pred: impl Fn(&Catalog) -> bool) {
    let mut rx = d.handle.catalogs();
    tokio::time::timeout(DEADLINE, rx.wait_for(|c| pred(c)))
        .await
        .expect("the catalog did not get there before the deadline")
        .unwrap();
}

fn has_spec(c: &Catalog, name: &str) -> bool {
    c.get(name).is_some_and(|e| e.document.is_some())
}

/// A router with the example service `name` (rich spec) running and in its catalog.
async fn with_example(name: &str) -> (tempfile::TempDir, Daemon, RunningService) {
    let dir = tempfile::tempdir().unwrap();
    let d = start_daemon(serve_config(dir.path(), &[])).await;
    let svc = spawn(example(dir.path(), name, Spec::Rich)).await.unwrap();
    d.rescan().await;
    catalog_until(&d, |c| has_spec(c, name)).await;
    (dir, d, svc)
}

/// The listed tools' names, but the router's own (`hero_router__router_*`: the router is a
/// service with a spec like any other).
async fn names(client: &McpClient) -> Vec<String> {
    let tools = client.list_all_tools().await.unwrap();
    tools
        .into_iter()
        .map(|t| t.name.into_owned())
        .filter(|n| !n.starts_with("hero_router__"))
        .collect()
}

#[tokio::test]
async fn both_revisions_list_and_call_over_tcp() {
    let (_dir, d, _svc) = with_example("example").await;
    for rev in BOTH {
        let client = connect(&d, "/mcp/example", rev).await;
        let info = client.peer_info().expect("server info");
        let version = info.protocol_version.to_string();
        match rev {
            Revision::Handshake => assert_eq!(version, "2025-11-25"),
            Revision::Stateless => assert_eq!(version, "2026-07-28"),
        }
        let tools = client.list_all_tools().await.unwrap();
        let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
        assert_eq!(names, ["echo", "sleep_ms", "add", "fail"], "{rev:?}");
        let add = &tools[2];
        assert_eq!(
            add.description.as_deref(),
            Some(
                "Returns a + b (integers stay integers).\n\nWhen both numbers are integers and their sum fits in 64 bits, the sum is an integer; otherwise it is the floating-point sum."
            )
        );
        assert_eq!(add.input_schema["required"], json!(["a", "b"]));
        assert!(
            !Value::Object((*add.input_schema).clone())
                .to_string()
                .contains("$ref")
        );
        let output = add.output_schema.as_ref().expect("outputSchema");
        assert_eq!(output["type"], "object");
        assert_eq!(output["required"], json!(["result"]));

        // By position: named arguments, sent as [a, b] (the service adds the array).
        let r = call(&client, "add", json!({"b": 40, "a": 2}))
            .await
            .unwrap();
        assert_eq!(r.is_error, Some(false), "{rev:?}: {}", text(&r));
        assert_eq!(r.structured_content, Some(json!({"result": 42})), "{rev:?}");
        assert_eq!(text(&r), "42");

        // By name: echo returns its params as sent, an object.
        let r = call(&client, "echo", json!({"value": "hello"}))
            .await
            .unwrap();
        assert_eq!(r.is_error, Some(false), "{rev:?}: {}", text(&r));
        assert_eq!(
            r.structured_content,
            Some(json!({"result": {"value": "hello"}})),
            "{rev:?}"
        );

        // An upstream JSON-RPC error is a tool result the agent reads.
        let r = call(&client, "fail", json!({})).await.unwrap();
        assert_eq!(r.is_error, Some(true), "{rev:?}");
        let t = text(&r);
        assert!(
            t.contains("service example answered error -32000: requested failure"),
            "{t}"
        );

        // An argument a by-position method has no place for: a tool error, not a guess.
        let r = call(&client, "add", json!({"a": 1, "b": 2, "c": 3}))
            .await
            .unwrap();
        assert_eq!(r.is_error, Some(true));
        assert!(text(&r).contains("unknown argument \"c\""), "{}", text(&r));

        // An unknown tool is a protocol error.
        let e = call(&client, "nope", json!({})).await.unwrap_err();
        assert_eq!(code(&e), -32602, "{rev:?}: {e}");
        client.cancel().await.unwrap();
    }
    d.stop().await;
}

#[tokio::test]
async fn the_all_services_endpoint_prefixes_names_over_admin_sock() {
    let (dir, d, _a) = with_example("alpha").await;
    let _b = spawn(example(dir.path(), "beta", Spec::Rich))
        .await
        .unwrap();
    d.rescan().await;
    catalog_until(&d, |c| has_spec(c, "beta")).await;
    for rev in BOTH {
        let client = connect_admin(&d, "/mcp", rev).await;
        let names = names(&client).await;
        assert_eq!(
            names,
            [
                "alpha__echo",
                "alpha__sleep_ms",
                "alpha__add",
                "alpha__fail",
                "beta__echo",
                "beta__sleep_ms",
                "beta__add",
                "beta__fail"
            ],
            "{rev:?}"
        );
        let r = call(&client, "beta__add", json!({"a": 1, "b": 2}))
            .await
            .unwrap();
        assert_eq!(r.structured_content, Some(json!({"result": 3})), "{rev:?}");
        // The router's own methods are tools too.
        let r = call(&client, "hero_router__router_health", json!({}))
            .await
            .unwrap();
        assert_eq!(r.is_error, Some(false), "{}", text(&r));
        assert_eq!(r.structured_content.unwrap()["status"], "ok");
        client.cancel().await.unwrap();
    }
    d.stop().await;
}

#[tokio::test]
async fn a_dead_service_is_a_tool_error_and_leaves_the_all_services_list() {
    let (dir, d, svc) = with_example("example").await;
    for rev in BOTH {
        let all = connect(&d, "/mcp", rev).await;
        assert_eq!(names(&all).await.len(), 4);
        all.cancel().await.unwrap();
    }
    let path = svc.path().to_path_buf();
    svc.shutdown().await;
    // The socket file stays and refuses: the service is in the table, down.
    let _ = std::fs::remove_file(&path);
    dead_socket(&path);
    d.rescan().await;
    let status = d.handle.table().service("example").unwrap().status;
    assert_ne!(status, hero_router::ServiceStatus::Healthy);
    for rev in BOTH {
        let one = connect(&d, "/mcp/example", rev).await;
        let r = call(&one, "add", json!({"a": 1, "b": 2})).await.unwrap();
        assert_eq!(r.is_error, Some(true), "{rev:?}");
        let t = text(&r);
        assert!(
            t.contains("service example") && t.contains("retry once it runs again"),
            "{t}"
        );
        one.cancel().await.unwrap();
        let all = connect(&d, "/mcp", rev).await;
        assert!(names(&all).await.is_empty(), "{rev:?}");
        // Its tools keep their names for a call: the call says the service is down.
        let r = call(&all, "example__add", json!({"a": 1, "b": 2}))
            .await
            .unwrap();
        assert_eq!(r.is_error, Some(true));
        all.cancel().await.unwrap();
    }
    // Gone from the root entirely: the tool is unknown, and the merged endpoint says its
    // service went away (it had tools here), as the service's own endpoint does; a name of no
    // service that ever had tools gets how to find the tools there are.
    std::fs::remove_dir_all(dir.path().join("example")).unwrap();
    d.rescan().await;
    let all = connect(&d, "/mcp", Revision::Stateless).await;
    let e = call(&all, "example__add", json!({})).await.unwrap_err();
    assert_eq!(code(&e), -32602);
    let e = e.to_string();
    assert!(
        e.contains("unknown tool example__add") && e.contains("service example is not running now"),
        "{e}"
    );
    let e = call(&all, "nosuch__add", json!({})).await.unwrap_err();
    let e = e.to_string();
    assert!(
        e.contains("unknown tool nosuch__add") && e.contains("tools/list"),
        "{e}"
    );
    all.cancel().await.unwrap();
    // Its own endpoint, which clients used, stays: no tools, and why (a 404 would read as the
    // whole server failing). A call of its old tool says the same.
    for rev in BOTH {
        let one = connect(&d, "/mcp/example", rev).await;
        let about = one
            .peer_info()
            .unwrap()
            .instructions
            .clone()
            .unwrap_or_default();
        assert!(
            about.contains("service example is not running now"),
            "{about}"
        );
        assert!(one.list_all_tools().await.unwrap().is_empty(), "{rev:?}");
        let e = call(&one, "add", json!({"a": 1, "b": 2}))
            .await
            .unwrap_err();
        assert_eq!(code(&e), -32602);
        assert!(
            e.to_string().contains("service example is not running now"),
            "{e}"
        );
        one.cancel().await.unwrap();
    }
    // A service the gateway never served is still unknown.
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    let (status, _, _) = post(&d, "/mcp/never", &[], init).await;
    assert_eq!(status, 404);
    d.stop().await;
}

/// A document with `names` as methods (no params, a result of any kind: the example
/// service's `echo` of no params answers `null`).
fn doc(names: &[&str]) -> Value {
    let methods: Vec<Value> = names
        .iter()
        .map(|n| json!({"name": n, "params": [], "result": {"name": "r", "schema": {}}}))
        .collect();
    json!({"openrpc": "1.3.2", "info": {"title": "t", "version": "1"}, "methods": methods})
}

#[tokio::test]
async fn a_restart_with_other_methods_changes_the_list_and_notifies() {
    let dir = tempfile::tempdir().unwrap();
    let d = start_daemon(serve_config(dir.path(), &[])).await;
    let svc = spawn(example(
        dir.path(),
        "svc",
        Spec::Document(doc(&["one", "two"])),
    ))
    .await
    .unwrap();
    d.rescan().await;
    catalog_until(&d, |c| has_spec(c, "svc")).await;
    let first = d
        .handle
        .catalog()
        .get("svc")
        .unwrap()
        .spec
        .fingerprint
        .clone();

    let client = connect(&d, "/mcp", Revision::Stateless).await;
    assert_eq!(names(&client).await, ["svc__one", "svc__two"]);
    let mut changes = client
        .listen(SubscriptionFilter::builder().tools_list_changed().build())
        .await
        .unwrap();

    svc.shutdown().await;
    let _svc = spawn(example(
        dir.path(),
        "svc",
        Spec::Document(doc(&["one", "three.x"])),
    ))
    .await
    .unwrap();
    d.rescan().await;
    let note = tokio::time::timeout(DEADLINE, changes.next())
        .await
        .expect("no list_changed before the deadline")
        .unwrap();
    assert!(
        matches!(
            note,
            Some(ServerNotification::ToolListChangedNotification(_))
        ),
        "{note:?}"
    );
    catalog_until(&d, |c| {
        c.get("svc").is_some_and(|e| e.spec.fingerprint != first)
    })
    .await;
    assert_eq!(names(&client).await, ["svc__one", "svc__three_x"]);
    changes.cancel().await.unwrap();

    // The handshake revision has no stream to be told on: it is told not to expect one.
    let old = connect(&d, "/mcp", Revision::Handshake).await;
    let caps = &old.peer_info().unwrap().capabilities;
    assert_eq!(caps.tools.as_ref().unwrap().list_changed, Some(false));
    assert_eq!(names(&old).await, ["svc__one", "svc__three_x"]);
    old.cancel().await.unwrap();
    client.cancel().await.unwrap();
    d.stop().await;
}

#[tokio::test]
async fn a_150_method_service_is_listed_in_pages_of_100() {
    let dir = tempfile::tempdir().unwrap();
    let d = start_daemon(serve_config(dir.path(), &[])).await;
    let methods: Vec<String> = (0..150).map(|i| format!("m.{i:03}")).collect();
    let refs: Vec<&str> = methods.iter().map(String::as_str).collect();
    let _svc = spawn(example(dir.path(), "big", Spec::Document(doc(&refs))))
        .await
        .unwrap();
    d.rescan().await;
    catalog_until(&d, |c| has_spec(c, "big")).await;
    for rev in BOTH {
        let client = connect(&d, "/mcp/big", rev).await;
        let first = client.list_tools(None).await.unwrap();
        assert_eq!(first.tools.len(), 100, "{rev:?}");
        let cursor = first.next_cursor.clone().expect("a next cursor");
        let second = client
            .list_tools(Some(
                PaginatedRequestParams::default().with_cursor(Some(cursor)),
            ))
            .await
            .unwrap();
        assert_eq!(second.tools.len(), 50);
        assert_eq!(second.next_cursor, None);
        let all = names(&client).await;
        let expected: Vec<String> = (0..150).map(|i| format!("m_{i:03}")).collect();
        assert_eq!(all, expected);
        // No cursor of this endpoint: not one at all, or another service's.
        for cursor in ["x", "other/3", "a/0"] {
            let bad = client
                .list_tools(Some(
                    PaginatedRequestParams::default().with_cursor(Some(cursor.into())),
                ))
                .await
                .unwrap_err();
            assert_eq!(code(&bad), -32602, "{cursor}");
        }
        client.cancel().await.unwrap();
    }
    d.stop().await;
}

/// A raw `POST` to the gateway over TCP.
async fn post(
    d: &Daemon,
    path: &str,
    headers: &[(&str, &str)],
    body: Value,
) -> (u16, http::HeaderMap, Value) {
    let req = http::Request::builder()
        .method("POST")
        .uri(path)
        .header("host", d.tcp.to_string())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    let mut req = req
        .body(Full::new(bytes::Bytes::from(body.to_string())))
        .unwrap();
    for (k, v) in headers {
        let name = http::HeaderName::from_bytes(k.as_bytes()).unwrap();
        req.headers_mut().insert(name, v.parse().unwrap());
    }
    let (status, headers, body) = tcp(d, req).await;
    let body = if body.is_empty() {
        Value::Null
    } else {
        json(std::str::from_utf8(&body).unwrap())
    };
    (status.as_u16(), headers, body)
}

fn meta_2026() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    })
}

#[tokio::test]
async fn wire_rules_of_both_revisions() {
    let (_dir, d, _svc) = with_example("example").await;
    // 2025-11-25: initialize answers JSON, no session id (nothing to lose on a restart).
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"}}});
    let (status, headers, body) = post(&d, "/mcp", &[], init).await;
    assert_eq!(status, 200, "{body}");
    assert!(headers.get("mcp-session-id").is_none());
    assert_eq!(body["result"]["protocolVersion"], "2025-11-25");
    assert_eq!(headers["content-type"], "application/json");

    // Every name of the router (rmcp's own check, off here, would take only loopback names),
    // and no other: a rebound name, an address it does not listen on
    // (docs/access-and-security.md#host-check).
    let port = d.tcp.port();
    let own = [
        format!("127.0.0.1:{port}"),
        "127.0.0.1".into(),
        "localhost".into(),
        format!("svc.localhost:{port}"),
    ];
    for host in &own {
        let ping = json!({"jsonrpc": "2.0", "id": 9, "method": "ping"});
        let (status, _, body) = post(&d, "/mcp", &[("host", host)], ping).await;
        assert_eq!(status, 200, "Host {host}: {body}");
    }
    for host in [
        "hero.example:9988",
        "[::1]:9988",
        "[2001:db8::1]:80",
        "10.1.2.3",
    ] {
        let ping = json!({"jsonrpc": "2.0", "id": 9, "method": "ping"});
        let (status, headers, body) = post(&d, "/mcp", &[("host", host)], ping).await;
        assert_eq!(status, 421, "Host {host}: {body}");
        assert_eq!(headers["x-hero-router-error"], "misdirected");
        assert_eq!(body["error"], "misdirected");
    }

    // 2026-07-28: a request is served with no handshake before it.
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {"_meta": meta_2026()}});
    let (status, _, body) = post(
        &d,
        "/mcp/example",
        &[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/list"),
        ],
        list.clone(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["tools"].as_array().unwrap().len(), 4);
    assert_eq!(body["result"]["resultType"], "complete");
    assert!(body["result"]["ttlMs"].is_u64() && body["result"]["cacheScope"].is_string());

    // curl's default Accept, and `application/*`, take JSON: served (rmcp wants both types
    // named, and said 406).
    for accept in ["*/*", "application/*"] {
        let ping = json!({"jsonrpc": "2.0", "id": 9, "method": "ping"});
        let (status, _, body) = post(&d, "/mcp", &[("accept", accept)], ping).await;
        assert_eq!(status, 200, "Accept {accept}: {body}");
    }

    // Its required Mcp-Method header missing: 400 with -32020.
    let (status, _, body) = post(
        &d,
        "/mcp/example",
        &[("mcp-protocol-version", "2026-07-28")],
        list,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], -32020, "{body}");

    // An unsupported version: 400 with -32022 naming the supported ones.
    let mut meta = meta_2026();
    meta["io.modelcontextprotocol/protocolVersion"] = json!("2099-01-01");
    let bad = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {"_meta": meta}});
    let (status, _, body) = post(
        &d,
        "/mcp/example",
        &[
            ("mcp-protocol-version", "2099-01-01"),
            ("mcp-method", "tools/list"),
        ],
        bad,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], -32022, "{body}");
    assert!(body.to_string().contains("2026-07-28"), "{body}");

    // A tools/call of the new revision names its tool in Mcp-Name.
    let call = json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {
        "_meta": meta_2026(), "name": "add", "arguments": {"a": 1, "b": 1}}});
    let (status, _, body) = post(
        &d,
        "/mcp/example",
        &[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "add"),
        ],
        call,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["structuredContent"], json!({"result": 2}));

    // GET has no stream here: 405.
    let get = common::request("GET", "/mcp", "");
    let (status, _, _) = tcp(&d, get).await;
    assert_eq!(status.as_u16(), 405);

    // The requests above are counted under their own label.
    let (_, _, metrics) = tcp(&d, common::request("GET", "/metrics", "")).await;
    let metrics = String::from_utf8(metrics.to_vec()).unwrap();
    let line = r#"hero_router_requests_total{service="hero_router",kind="mcp",status="200"} "#;
    assert!(metrics.contains(line), "{metrics}");
    d.stop().await;
}

#[tokio::test]
async fn a_foreign_origin_is_refused_and_unknown_services_are_404() {
    let (_dir, d, _svc) = with_example("example").await;
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    let (status, headers, body) = post(
        &d,
        "/mcp",
        &[("origin", "http://evil.example")],
        ping.clone(),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(headers["x-hero-router-error"], "foreign_origin");
    assert_eq!(body["error"], "foreign_origin");
    assert_eq!(body["origin"], "http://evil.example");
    // The router's own origin is fine.
    let own = format!("http://{}", d.tcp);
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"}}});
    let (status, _, body) = post(&d, "/mcp/example", &[("origin", &own)], init.clone()).await;
    assert_eq!(status, 200, "{body}");
    // A trailing slash is the same endpoint, as for `/mcp/`.
    let (status, _, body) = post(&d, "/mcp/example/", &[], init.clone()).await;
    assert_eq!(status, 200, "{body}");
    // Over admin.sock too.
    let mut req = common::request("POST", "/mcp/example", &ping.to_string());
    req.headers_mut()
        .insert("origin", "http://evil.example".parse().unwrap());
    let (status, _, _) = uds(&d.admin, req).await;
    assert_eq!(status.as_u16(), 403);

    let (status, headers, body) = post(&d, "/mcp/nosuch", &[], init.clone()).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["service"], "nosuch");
    // The id the answer carries is in the body too, as in every error body the router makes.
    assert_eq!(
        body["request_id"],
        headers["x-request-id"].to_str().unwrap()
    );
    let (status, _, _) = post(&d, "/mcp/bad.name", &[], init).await;
    assert_eq!(status, 400);
    // rpc.sock serves no MCP.
    let req = common::request("POST", "/mcp", &ping.to_string());
    let (status, _, _) = uds(&d.rpc, req).await;
    assert_ne!(status.as_u16(), 200);
    d.stop().await;
}

#[tokio::test]
async fn a_client_right_after_a_service_appears_sees_its_tools() {
    let dir = tempfile::tempdir().unwrap();
    let d = start_daemon(serve_config(dir.path(), &[])).await;
    let _svc = spawn(example(dir.path(), "fresh", Spec::Rich))
        .await
        .unwrap();
    // In the table, its spec perhaps not fetched yet: the list waits for that fetch.
    d.rescan().await;
    let client = connect(&d, "/mcp", Revision::Handshake).await;
    assert_eq!(
        names(&client).await,
        [
            "fresh__echo",
            "fresh__sleep_ms",
            "fresh__add",
            "fresh__fail"
        ]
    );
    client.cancel().await.unwrap();
    d.stop().await;
}

#[tokio::test]
async fn a_timeout_is_a_tool_error_that_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let d = start_daemon(serve_config(dir.path(), &["--upstream-timeout", "200ms"])).await;
    let _svc = spawn(example(dir.path(), "slow", Spec::Rich))
        .await
        .unwrap();
    d.rescan().await;
    catalog_until(&d, |c| has_spec(c, "slow")).await;
    let client = connect(&d, "/mcp/slow", Revision::Stateless).await;
    let r = call(&client, "sleep_ms", json!({"ms": 5000}))
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(true));
    let t = text(&r);
    assert!(
        t.contains("did not answer within the upstream timeout") && t.contains("retry later"),
        "{t}"
    );
    client.cancel().await.unwrap();
    // The call the service never answered counts as the router's error in its traffic, as
    // the same call through /rpc does.
    let slow = common::traffic_of(&d, "slow").await;
    assert_eq!(slow["windows"]["1m"]["errors"]["router"], 1, "{slow}");
    d.stop().await;
}

/// The venv's python with the `mcp` package (scripts/mcp_venv.sh, which .ci/run runs).
fn python_mcp() -> Option<std::path::PathBuf> {
    let py = match std::env::var_os("HERO_MCP_PYTHON") {
        Some(p) => std::path::PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/mcp-venv/bin/python"),
    };
    py.exists().then_some(py)
}

/// Runs the third-party Python client with `args`; `None` when it is not installed, which
/// only a developer's machine may be (in CI, .ci/run names it in $HERO_MCP_PYTHON and the
/// test fails without it).
async fn run_python_client(args: &[String]) -> Option<std::process::Output> {
    let Some(python) = python_mcp() else {
        assert!(
            std::env::var_os("CI").is_none() && std::env::var_os("HERO_MCP_PYTHON").is_none(),
            "the Python mcp client is missing: run `bash scripts/mcp_venv.sh` (.ci/run does)"
        );
        eprintln!("skipped the Python client: `bash scripts/mcp_venv.sh` installs it");
        return None;
    };
    let run = tokio::process::Command::new(&python)
        .args(args)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the Python client did not finish before the deadline")
        .unwrap();
    Some(out)
}

/// A third-party client, the Python `mcp` package, lists and calls tools through the router
/// in both revisions (scripts/mcp_smoke.py).
#[tokio::test]
async fn the_python_mcp_client_lists_and_calls_in_both_revisions() {
    let (_dir, d, _svc) = with_example("example").await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/mcp_smoke.py");
    let args = [
        script.display().to_string(),
        format!("http://{}", d.tcp),
        "example".to_owned(),
    ];
    let Some(out) = run_python_client(&args).await else {
        return;
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("[legacy] negotiated 2025-11-25"),
        "{stdout}"
    );
    assert!(
        stdout.contains("[2026-07-28] negotiated 2026-07-28"),
        "{stdout}"
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
    d.stop().await;
}

#[tokio::test]
async fn mcp_config_prints_a_pasteable_configuration() {
    let (_dir, d, _svc) = with_example("example").await;
    let bin = env!("CARGO_BIN_EXE_hero_router");
    // The daemon runs on this test's runtime: the CLI is awaited, never waited for.
    let run = async |args: &[&str]| {
        tokio::process::Command::new(bin)
            .arg("mcp-config")
            .args(args)
            .arg("--socket-dir")
            .arg(&d.root)
            .output()
            .await
            .unwrap()
    };
    let out = run(&["--url", "http://127.0.0.1:9988"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = json(std::str::from_utf8(&out.stdout).unwrap());
    assert_eq!(
        config,
        json!({"mcpServers": {
            "hero_router": {"type": "http", "url": "http://127.0.0.1:9988/mcp"},
            "example": {"type": "http", "url": "http://127.0.0.1:9988/mcp/example"},
        }})
    );
    // Without --url: the service listener the running router reports.
    let out = run(&["example"]).await;
    let config = json(std::str::from_utf8(&out.stdout).unwrap());
    assert_eq!(
        config["mcpServers"]["example"]["url"],
        format!("http://{}/mcp/example", d.tcp)
    );
    let out = run(&["nosuch"]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no such service: nosuch"), "{err}");
    d.stop().await;
}

#[tokio::test]
async fn a_service_named_router_cannot_run_the_routers_own_methods() {
    // A service called `router` whose spec claims `services` and `scan`: its tools are its
    // own, called on its own socket; the router's methods are only `hero_router__router_*`.
    let dir = tempfile::tempdir().unwrap();
    let d = start_daemon(serve_config(dir.path(), &[])).await;
    let _svc = spawn(example(
        dir.path(),
        "router",
        Spec::Document(doc(&["services", "scan", "echo"])),
    ))
    .await
    .unwrap();
    d.rescan().await;
    catalog_until(&d, |c| has_spec(c, "router")).await;
    let client = connect(&d, "/mcp", Revision::Stateless).await;
    let all: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.into_owned())
        .collect();
    assert!(all.contains(&"router__services".to_owned()), "{all:?}");
    assert!(
        all.contains(&"hero_router__router_services".to_owned()),
        "{all:?}"
    );
    // Its `services` is its own: the example service has no such method.
    let r = call(&client, "router__services", json!({})).await.unwrap();
    assert_eq!(r.is_error, Some(true));
    let t = text(&r);
    assert!(
        t.contains("service router does not implement services"),
        "{t}"
    );
    // Its `echo` reaches it (and echoes no params: `null`).
    let r = call(&client, "router__echo", json!({})).await.unwrap();
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    assert_eq!(text(&r), "null");
    // The router's own method, by its own name, answers the router's table.
    let r = call(&client, "hero_router__router_services", json!({}))
        .await
        .unwrap();
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    assert!(text(&r).contains("\"hero_router\""), "{}", text(&r));
    client.cancel().await.unwrap();
    d.stop().await;
}

/// A spec that says `add` returns a string and takes integers; the service answers its
/// integer sum anyway.
fn off_schema_doc() -> Value {
    json!({
        "openrpc": "1.3.2",
        "info": {"title": "off", "version": "1"},
        "methods": [{
            "name": "add",
            "paramStructure": "by-position",
            "params": [
                {"name": "a", "required": true, "description": "The first addend.",
                 "schema": {"$ref": "#/components/schemas/Int"}},
                {"name": "b", "required": true, "schema": {"$ref": "#/components/schemas/Int"}},
            ],
            "result": {"name": "sum", "schema": {"type": "string"}},
        }],
        "components": {"schemas": {"Int": {"type": "integer", "description": "A JSON integer."}}},
    })
}

/// The Python `mcp` client calls a tool whose result is off its declared schema (it would
/// raise on a `structuredContent` that does not match) and one with a wrong argument.
const OFF_SCHEMA_PY: &str = r#"
import asyncio, sys
from mcp import Client

async def main(url):
    for mode in ("legacy", "2026-07-28"):
        async with Client(url, mode=mode) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            a = tools["add"].input_schema["properties"]["a"]
            assert a["description"] == "The first addend.", a
            r = await client.call_tool("add", {"a": 2, "b": 3})
            text = " ".join(getattr(c, "text", "") for c in r.content)
            assert r.is_error and r.structured_content is None, r
            assert "does not match the tool's outputSchema" in text and text.endswith(" 5"), r
            r = await client.call_tool("add", {"a": "two", "b": 3})
            text = " ".join(getattr(c, "text", "") for c in r.content)
            assert r.is_error and 'argument "a"' in text and "integer" in text, r
            print(f"[{mode}] ok")

asyncio.run(main(sys.argv[1]))
"#;

#[tokio::test]
async fn a_result_off_its_schema_is_an_error_result_with_its_text_and_a_wrong_argument_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = start_daemon(serve_config(dir.path(), &[])).await;
    let _svc = spawn(example(dir.path(), "off", Spec::Document(off_schema_doc())))
        .await
        .unwrap();
    d.rescan().await;
    catalog_until(&d, |c| has_spec(c, "off")).await;
    for rev in BOTH {
        let client = connect(&d, "/mcp/off", rev).await;
        let tools = client.list_all_tools().await.unwrap();
        // The parameter's own description, not its component's.
        assert_eq!(
            tools[0].input_schema["properties"]["a"]["description"],
            "The first addend."
        );
        // Declared a string, answered 5: no structured content that would make a client
        // throw; an error result (clients check none) that says why, then the text as sent.
        let r = call(&client, "add", json!({"a": 2, "b": 3})).await.unwrap();
        assert_eq!(r.is_error, Some(true), "{rev:?}: {}", text(&r));
        assert_eq!(r.structured_content, None, "{rev:?}");
        let t = text(&r);
        assert!(
            t.starts_with("service off answered add with a result that does not match the tool's outputSchema (at /result: ")
                && t.contains("string")
                && t.ends_with("\n5"),
            "{t}"
        );
        // Wrong type, missing: each names the argument and what was expected, before any
        // call reaches the service.
        let r = call(&client, "add", json!({"a": "two", "b": 3}))
            .await
            .unwrap();
        assert_eq!(r.is_error, Some(true));
        let t = text(&r);
        assert!(
            t.starts_with("add: argument \"a\": ")
                && t.contains("\"two\"")
                && t.contains("integer"),
            "{t}"
        );
        let r = call(&client, "add", json!({"a": 1})).await.unwrap();
        assert_eq!(r.is_error, Some(true));
        assert_eq!(text(&r), "add: missing argument \"b\": expected integer");
        client.cancel().await.unwrap();
    }
    // A third-party client that checks results against their schema does not throw.
    let args = [
        "-c".to_owned(),
        OFF_SCHEMA_PY.to_owned(),
        format!("http://{}/mcp/off", d.tcp),
    ];
    if let Some(out) = run_python_client(&args).await {
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success()
                && stdout.contains("[legacy] ok")
                && stdout.contains("[2026-07-28] ok"),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    d.stop().await;
}

/// A raw `POST` to the gateway over TCP with `content_type`, `accept` and `body` as given.
async fn post_raw(d: &Daemon, content_type: &str, accept: &str, body: &str) -> (u16, Value) {
    let req = http::Request::builder()
        .method("POST")
        .uri("/mcp/example")
        .header("host", d.tcp.to_string())
        .header("content-type", content_type)
        .header("accept", accept)
        .header("mcp-protocol-version", "2025-11-25")
        .body(Full::new(bytes::Bytes::from(body.to_owned())))
        .unwrap();
    let (status, headers, body) = tcp(d, req).await;
    assert_eq!(headers["content-type"], "application/json", "{status}");
    let text = std::str::from_utf8(&body).unwrap();
    (status.as_u16(), json(text))
}

/// Malformed requests get JSON-RPC errors in JSON bodies that say what to fix, not rmcp's
/// plain-text refusals or another mistake's code; a client that accepts JSON only is served.
#[tokio::test]
async fn malformed_requests_get_json_rpc_errors_that_say_what_to_fix() {
    let (_dir, d, _svc) = with_example("example").await;
    let both = "application/json, text/event-stream";
    // Not JSON (a number out of range): a parse error.
    let (status, v) = post_raw(&d, "application/json", both, "1e400").await;
    assert_eq!(
        (status, v["error"]["code"].as_i64()),
        (400, Some(-32700)),
        "{v}"
    );
    assert!(v["error"]["data"]["request_id"].is_string(), "{v}");
    // A method the gateway leaves to rmcp: rmcp's error, with the request's id added.
    let unknown = r#"{"jsonrpc":"2.0","id":4,"method":"nosuch/method"}"#;
    let (status, v) = post_raw(&d, "application/json", both, unknown).await;
    assert_eq!(
        (status, v["error"]["code"].as_i64()),
        (200, Some(-32601)),
        "{v}"
    );
    assert!(v["error"]["data"]["request_id"].is_string(), "{v}");
    // No JSON-RPC message (no "jsonrpc"): 400 -32600, not rmcp's 415.
    let bare = r#"{"id":5,"method":"tools/list"}"#;
    let (status, v) = post_raw(&d, "application/json", both, bare).await;
    assert_eq!(
        (status, v["error"]["code"].as_i64()),
        (400, Some(-32600)),
        "{v}"
    );
    assert_eq!(v["id"], 5);
    // Arguments that are not an object: invalid params, with the request's id.
    let call = r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"add","arguments":[1,2]}}"#;
    let (status, v) = post_raw(&d, "application/json", both, call).await;
    assert_eq!(
        (status, v["error"]["code"].as_i64()),
        (200, Some(-32602)),
        "{v}"
    );
    assert_eq!(v["id"], 9);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("must be an object"),
        "{v}"
    );
    // A client that accepts JSON only gets JSON, which is all the gateway sends.
    let ping = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    let (status, v) = post_raw(&d, "application/json", "application/json", ping).await;
    assert_eq!((status, &v["result"]), (200, &json!({})), "{v}");
    let add = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"add","arguments":{"a":1,"b":2}}}"#;
    let (status, v) = post_raw(&d, "application/json", "application/json", add).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["result"]["structuredContent"],
        json!({"result": 3}),
        "{v}"
    );
    // rmcp's own refusals (a body it does not take, an Accept without JSON) keep their
    // status and become JSON-RPC errors in JSON.
    let (status, v) = post_raw(&d, "text/plain", both, ping).await;
    assert_eq!(
        (status, v["error"]["code"].as_i64()),
        (415, Some(-32600)),
        "{v}"
    );
    let (status, v) = post_raw(&d, "application/json", "text/html", ping).await;
    assert_eq!(
        (status, v["error"]["code"].as_i64()),
        (406, Some(-32600)),
        "{v}"
    );
    // Every method is held to the media type (rmcp let tools/list through).
    let list = r#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#;
    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        let (status, v) = post_raw(&d, content_type, both, list).await;
        assert_eq!(
            (status, v["error"]["code"].as_i64()),
            (415, Some(-32600)),
            "{content_type}: {v}"
        );
    }
    let (status, v) = post_raw(&d, "application/json; charset=utf-8", both, list).await;
    assert_eq!(status, 200, "{v}");
    // An unknown tool's name is echoed cut, not whole.
    let long = "x".repeat(100_000);
    let call = format!(
        r#"{{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{{"name":"{long}","arguments":{{}}}}}}"#
    );
    let (status, v) = post_raw(&d, "application/json", both, &call).await;
    assert_eq!((status, v["error"]["code"].as_i64()), (200, Some(-32602)));
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.len() < 2_000 && message.contains("xxx…"),
        "{}",
        message.len()
    );
    // So is a method rmcp does not know (its own error echoes it).
    let unknown = format!(r#"{{"jsonrpc":"2.0","id":7,"method":"{long}"}}"#);
    let (status, v) = post_raw(&d, "application/json", both, &unknown).await;
    assert_eq!((status, v["error"]["code"].as_i64()), (200, Some(-32601)));
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.len() < 2_000, "{}", message.len());
    d.stop().await;
}

/// A request over `--max-body` is 413 with a JSON-RPC error an MCP client can read, not the
/// router's plain error object; the same limit on a proxied request keeps the plain one.
#[tokio::test]
async fn a_request_over_the_body_limit_is_a_json_rpc_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = start_daemon(serve_config(dir.path(), &["--max-body", "1KiB"])).await;
    let _svc = spawn(example(dir.path(), "example", Spec::Rich))
        .await
        .unwrap();
    d.rescan().await;
    catalog_until(&d, |c| has_spec(c, "example")).await;
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"echo","arguments":{{"value":"{}"}}}}}}"#,
        "x".repeat(2048)
    );
    let (status, v) = post_raw(
        &d,
        "application/json",
        "application/json, text/event-stream",
        &big,
    )
    .await;
    assert_eq!(status, 413, "{v}");
    assert_eq!(v["jsonrpc"], "2.0", "{v}");
    assert_eq!(v["error"]["code"], -32600, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("larger than the limit of 1024 bytes (--max-body)"),
        "{v}"
    );
    assert!(v["error"]["data"]["request_id"].is_string(), "{v}");
    let req = common::request("POST", "/example/rpc/rpc", &"x".repeat(2048));
    let (status, _, body) = tcp(&d, req).await;
    assert_eq!(status, 413);
    let plain = json(std::str::from_utf8(&body).unwrap());
    assert!(
        plain["error"].as_str().unwrap().contains("--max-body"),
        "{plain}"
    );
    d.stop().await;
}

/// A `tools/call` of a tool that is not there asked no service: it counts as the router's
/// error in the traffic, as a routed call to a service that is not there does.
#[tokio::test]
async fn an_unknown_tool_counts_as_the_routers_error() {
    let (_dir, d, _svc) = with_example("example").await;
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"nosuch","arguments":{}}}"#;
    let both = "application/json, text/event-stream";
    let (status, v) = post_raw(&d, "application/json", both, call).await;
    assert_eq!((status, v["error"]["code"].as_i64()), (200, Some(-32602)));
    // Counted as its exchange ends, maybe just after the answer was read: looked at until it
    // is there (the looks themselves are calls the router answers without error).
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let own = loop {
        let own = common::traffic_of(&d, "hero_router").await;
        if own["windows"]["1m"]["errors"]["router"] != 0 || tokio::time::Instant::now() > deadline {
            break own;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(own["windows"]["1m"]["errors"]["router"], 1, "{own}");
    d.stop().await;
}

/// A JSON-RPC response a client posts (the gateway sends no requests it could answer) is
/// accepted with 202 and no body, as Streamable HTTP has it; not a "method" complaint.
#[tokio::test]
async fn a_posted_response_is_accepted() {
    let (_dir, d, _svc) = with_example("example").await;
    for body in [
        r#"{"jsonrpc":"2.0","id":5,"result":{}}"#,
        r#"{"jsonrpc":"2.0","id":"a","error":{"code":-1,"message":"no"}}"#,
    ] {
        let req = http::Request::builder()
            .method("POST")
            .uri("/mcp/example")
            .header("host", d.tcp.to_string())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(Full::new(bytes::Bytes::from(body)))
            .unwrap();
        let (status, _, answer) = tcp(&d, req).await;
        assert_eq!(status, 202, "{body}: {answer:?}");
        assert!(answer.is_empty(), "{answer:?}");
    }
    d.stop().await;
}

/// `hero_router serve` as a process with `log_args`, its stderr in `log`; the MCP request
/// `initialize` (always served by rmcp, never the fast path) sent `n` times over admin.sock;
/// then the process is stopped and its log returned.
async fn log_of_initializes(log_args: &[&str], n: usize) -> String {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr.log");
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_hero_router"))
        .arg("serve")
        .args(["--no-tcp", "--socket-dir"])
        .arg(&root)
        .args(log_args)
        .env_remove("RUST_LOG")
        .stderr(std::fs::File::create(&log).unwrap())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let admin = root.join("hero_router/admin.sock");
    assert!(
        common::eventually(DEADLINE, || hero_socket::connect_probe(&admin)
            == hero_socket::ConnectOutcome::Connected),
        "the router did not start"
    );
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"}}});
    for _ in 0..n {
        let mut req = common::request("POST", "/mcp", &init.to_string());
        let h = req.headers_mut();
        h.insert("content-type", "application/json".parse().unwrap());
        h.insert(
            "accept",
            "application/json, text/event-stream".parse().unwrap(),
        );
        let (status, _, _) = uds(&admin, req).await;
        assert_eq!(status.as_u16(), 200);
    }
    let pid = rustix::process::Pid::from_raw(child.id().unwrap() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    tokio::time::timeout(DEADLINE, child.wait())
        .await
        .expect("the router did not stop")
        .unwrap();
    std::fs::read_to_string(&log).unwrap()
}

/// rmcp logs several lines at `info` for every request it serves; the router's default
/// filter holds it to warnings (an operator tailing the log sees the router's own lines),
/// and naming rmcp brings them back.
#[tokio::test]
async fn rmcp_lines_stay_out_of_the_default_log() {
    let rmcp_lines = |log: &str| log.lines().filter(|l| l.contains("rmcp")).count();
    let quiet = log_of_initializes(&[], 20).await;
    assert!(quiet.contains("hero_router starting"), "{quiet}");
    assert_eq!(rmcp_lines(&quiet), 0, "{quiet}");
    let loud = log_of_initializes(&["--log-level", "info,rmcp=info"], 20).await;
    assert!(rmcp_lines(&loud) >= 20, "{loud}");
}

/// A service `name` whose one method `add` (no params) answers 3, and which keeps the headers
/// of every call it gets.
async fn recording_service(
    root: &Path,
    name: &str,
) -> (
    std::sync::Arc<std::sync::Mutex<Vec<http::HeaderMap>>>,
    tokio::task::JoinHandle<()>,
) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let listener = tokio::net::UnixListener::bind(dir.join("rpc.sock")).unwrap();
    let document = doc(&["add"]);
    let record = seen.clone();
    let app = axum::Router::new()
        .route(
            "/openrpc.json",
            axum::routing::get(move || async move { axum::Json(document) }),
        )
        .route(
            "/rpc",
            axum::routing::post(move |headers: http::HeaderMap| async move {
                record.lock().unwrap().push(headers);
                axum::Json(json!({"jsonrpc": "2.0", "id": 1, "result": 3}))
            }),
        );
    let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (seen, task)
}

#[tokio::test]
async fn a_tool_call_carries_the_request_id_and_trace_and_counts_as_the_services_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let (seen, service) = recording_service(dir.path(), "calc").await;
    let d = start_daemon(serve_config(dir.path(), &[])).await;
    d.rescan().await;
    catalog_until(&d, |c| has_spec(c, "calc")).await;

    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "add", "arguments": {}}});
    let (status, headers, body) = post(
        &d,
        "/mcp/calc",
        &[
            ("mcp-protocol-version", "2025-11-25"),
            ("traceparent", &format!("00-{trace}-{client_span}-01")),
        ],
        call,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["content"][0]["text"], "3", "{body}");
    let id = headers["x-request-id"].to_str().unwrap();
    // The service got the request's id, and the trace with the router's span as parent.
    let got = seen.lock().unwrap().pop().expect("the service was called");
    assert_eq!(got["x-request-id"], id, "{got:?}");
    let parent = got["traceparent"].to_str().unwrap();
    let parts: Vec<&str> = parent.split('-').collect();
    assert_eq!(
        (parts[0], parts[1], parts[3]),
        ("00", trace, "01"),
        "{parent}"
    );
    assert_ne!(parts[2], client_span, "the router's own span: {parent}");

    // The call counts as the service's traffic, as a routed call through /rpc does.
    let calc = common::traffic_of(&d, "calc").await;
    assert_eq!(calc["windows"]["1m"]["requests"], 1, "{calc}");

    // An error the gateway makes names the request's id, as every error the router makes.
    let unknown = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "nosuch", "arguments": {}}});
    let (status, headers, body) = post(
        &d,
        "/mcp/calc",
        &[("mcp-protocol-version", "2025-11-25")],
        unknown,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["error"]["code"], -32602, "{body}");
    assert_eq!(
        body["error"]["data"]["request_id"],
        headers["x-request-id"].to_str().unwrap(),
        "{body}"
    );
    service.abort();
    d.stop().await;
}
