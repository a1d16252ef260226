//! The service catalog (docs/catalog.md) against real services on real sockets: what is fetched,
//! when it is fetched again, and what hostile services cost.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Daemon, json, rpc, serve_config, service_dir, start_daemon, wait_event};
use hero_example_service::{ServiceConfig, Spec, spawn};
use hero_router::Catalog;
use hero_router::Event;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

const DEADLINE: Duration = Duration::from_secs(10);

fn example(root: &Path, name: &str, spec: Spec) -> ServiceConfig {
    ServiceConfig {
        spec,
        ..ServiceConfig::new(root, name)
    }
}

async fn call(d: &Daemon, method: &str, params: Value) -> Value {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let (status, text) = rpc(d, &body.to_string()).await;
    assert_eq!(status, 200, "{text}");
    json(&text)
}

async fn service(d: &Daemon, name: &str) -> Value {
    let v = call(d, "router.service", serde_json::json!([name])).await;
    v["result"].clone()
}

fn changed_for(ev: &Event, name: &str) -> bool {
    matches!(ev, Event::CatalogChanged { service, .. } if service == name)
}

/// Waits until the catalog satisfies `pred`.
async fn catalog_until(d: &Daemon, pred: impl Fn(&Catalog) -> bool) {
    let mut rx = d.handle.catalogs();
    tokio::time::timeout(DEADLINE, rx.wait_for(|c| pred(c)))
        .await
        .expect("the catalog did not get there before the deadline")
        .unwrap();
}

fn fetched(c: &Catalog, name: &str) -> Option<u64> {
    c.get(name)?.spec.fetched_unix_ms
}

#[tokio::test]
async fn a_started_service_is_fetched_a_restart_refetches_and_a_rescan_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let d = start_daemon(serve_config(dir.path(), &[])).await;
    let mut events = d.handle.subscribe();
    let svc = spawn(example(dir.path(), "svc", Spec::Rich)).await.unwrap();
    let ev = wait_event(&mut events, DEADLINE, |e| changed_for(e, "svc")).await;
    let Event::CatalogChanged {
        fingerprint, state, ..
    } = ev
    else {
        unreachable!()
    };
    assert_eq!(state, "ok");
    let first = fingerprint.expect("a document");
    assert!(
        first.starts_with("sha256:") && first.len() == 7 + 64,
        "{first}"
    );

    let s = service(&d, "svc").await;
    assert_eq!(s["title"], "Hero example service", "manifest first: {s}");
    assert_eq!(s["version"], env!("CARGO_PKG_VERSION"));
    assert!(s["methods_count"].as_u64().unwrap() >= 4, "{s}");
    assert_eq!(s["spec"]["state"], "ok");
    assert_eq!(s["spec"]["fingerprint"], first.as_str());
    assert!(s["spec"]["openrpc"].is_string());
    let at = s["spec"]["fetched_unix_ms"].as_u64().unwrap();

    // A scan that finds the same socket file fetches nothing. The refresh of another service
    // is a fence: the fetcher looks at the newest table while handling it.
    let _other = spawn(example(dir.path(), "other", Spec::None))
        .await
        .unwrap();
    d.rescan().await;
    assert!(d.handle.refresh_catalog("other").await);
    assert_eq!(
        fetched(&d.handle.catalog(), "svc"),
        Some(at),
        "not fetched again"
    );

    // A restart (a new socket file) is fetched again; a new document is a new fingerprint.
    svc.shutdown().await;
    let mut doc = call(&d, "router.spec", serde_json::json!(["svc"])).await["result"].clone();
    doc["info"]["version"] = "9.9.9".into();
    let _svc = spawn(example(dir.path(), "svc", Spec::Document(doc)))
        .await
        .unwrap();
    let ev = wait_event(&mut events, DEADLINE, |e| changed_for(e, "svc")).await;
    let Event::CatalogChanged { fingerprint, .. } = ev else {
        unreachable!()
    };
    let second = fingerprint.unwrap();
    assert_ne!(second, first);
    let spec = call(&d, "router.spec", serde_json::json!({"name": "svc"})).await;
    assert_eq!(spec["result"]["info"]["version"], "9.9.9");

    // `router.scan` fetches every service again.
    let before = fetched(&d.handle.catalog(), "svc").unwrap();
    let scan = call(&d, "router.scan", serde_json::json!([])).await;
    assert!(scan["result"]["services"].as_u64().is_some(), "{scan}");
    catalog_until(&d, |c| fetched(c, "svc") > Some(before)).await;
    d.stop().await;
}

/// The router's own entry is made, not fetched: asking for it again answers at once, and
/// `router.spec {"refresh": true}` for it returns its document (it used to wait for a fetch
/// that never came, until the client's timeout).
#[tokio::test]
async fn refreshing_the_routers_own_entry_answers() {
    let dir = tempfile::tempdir().unwrap();
    let d = start_daemon(serve_config(dir.path(), &[])).await;
    let refreshed = tokio::time::timeout(DEADLINE, d.handle.refresh_catalog("hero_router"))
        .await
        .expect("a refresh of the router's own entry never answered");
    assert!(refreshed);
    assert!(d.handle.catalog().get("hero_router").is_some());
    let params = serde_json::json!({"name": "hero_router", "refresh": true});
    let spec = tokio::time::timeout(DEADLINE, call(&d, "router.spec", params))
        .await
        .expect("router.spec with refresh for the router never answered");
    assert_eq!(spec["result"]["info"]["title"], "hero_router", "{spec}");
}

#[tokio::test]
async fn invalid_and_absent_specs_say_why_and_methods_list_the_healthy_ones() {
    let dir = tempfile::tempdir().unwrap();
    let d = start_daemon(serve_config(dir.path(), &[])).await;
    let _a = spawn(example(dir.path(), "alpha", Spec::Rich))
        .await
        .unwrap();
    let _b = spawn(example(dir.path(), "broken", Spec::Invalid))
        .await
        .unwrap();
    let _n = spawn(example(dir.path(), "nospec", Spec::None))
        .await
        .unwrap();
    catalog_until(&d, |c| {
        ["alpha", "broken", "nospec"]
            .iter()
            .all(|n| fetched(c, n).is_some())
    })
    .await;

    let broken = service(&d, "broken").await;
    assert_eq!(broken["spec"]["state"], "invalid", "{broken}");
    let reason = broken["spec"]["reason"].as_str().unwrap();
    assert!(reason.contains("at /"), "says where: {reason}");
    // Kept and served, so a person can read what is wrong.
    let doc = call(&d, "router.spec", serde_json::json!(["broken"])).await;
    assert_eq!(doc["result"]["openrpc"], "1.3.2", "{doc}");

    let nospec = service(&d, "nospec").await;
    assert_eq!(nospec["spec"]["state"], "absent", "{nospec}");
    assert!(nospec["methods_count"].is_null());
    assert_eq!(
        nospec["title"], "Hero example service",
        "the manifest still counts"
    );
    let err = call(&d, "router.spec", serde_json::json!(["nospec"])).await;
    assert_eq!(err["error"]["code"], -32005, "{err}");
    assert_eq!(err["error"]["data"]["service"], "nospec");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("neither GET /openrpc.json nor rpc.discover"),
        "{err}"
    );
    let unknown = call(&d, "router.spec", serde_json::json!(["ghost"])).await;
    assert_eq!(unknown["error"]["code"], -32001);

    let methods = call(&d, "router.methods", serde_json::json!([])).await;
    let list = methods["result"].as_array().unwrap();
    let names: Vec<&str> = list.iter().map(|m| m["method"].as_str().unwrap()).collect();
    assert!(names.contains(&"alpha.add"), "{names:?}");
    assert!(names.iter().all(|n| !n.starts_with("nospec.")));
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted, "sorted");
    let add = list.iter().find(|m| m["method"] == "alpha.add").unwrap();
    assert_eq!(add["service"], "alpha");
    assert!(add["summary"].is_string());

    let all = call(&d, "router.services", serde_json::json!([])).await;
    let alpha = all["result"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "alpha")
        .unwrap();
    for field in ["title", "version", "description", "methods_count", "spec"] {
        assert!(!alpha[field].is_null(), "{field} in {alpha}");
    }
    d.stop().await;
}

/// What a fake service answers to one request path.
#[derive(Clone)]
enum Answer {
    /// These bytes, as a 200 with this content type.
    Ok(&'static str, Arc<Vec<u8>>),
    /// 404.
    NotFound,
    /// A head promising `len` bytes, then bytes until the reader goes away.
    Endless(usize),
    /// Read the request, never answer.
    Hang,
}

/// A service on `<root>/<name>/rpc.sock` that answers by request path; counts requests.
fn fake(root: &Path, name: &str, answer: fn(&str) -> Answer) -> Arc<AtomicUsize> {
    let l = UnixListener::bind(service_dir(root, name).join("rpc.sock")).unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                while let Some(head) = common::raw::read_any_request(&mut s, &mut buf).await {
                    seen.fetch_add(1, Ordering::SeqCst);
                    let path = head.split(' ').nth(1).unwrap_or("").to_owned();
                    let (kind, body) = match answer(&path) {
                        Answer::Ok(kind, body) => (kind, body),
                        Answer::NotFound => {
                            let _ = s
                                .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
                                .await;
                            continue;
                        }
                        Answer::Endless(len) => {
                            let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {len}\r\n\r\n");
                            let _ = s.write_all(head.as_bytes()).await;
                            let chunk = vec![b' '; 64 * 1024];
                            while s.write_all(&chunk).await.is_ok() {}
                            return;
                        }
                        Answer::Hang => {
                            let mut sink = [0u8; 1024];
                            while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {}
                            return;
                        }
                    };
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: {kind}\r\ncontent-length: {}\r\n\r\n",
                        body.len()
                    );
                    if s.write_all(head.as_bytes()).await.is_err()
                        || s.write_all(&body).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    count
}

fn ok_json(text: &str) -> Answer {
    Answer::Ok("application/json", Arc::new(text.as_bytes().to_vec()))
}

const MANIFEST: &str = r#"{"protocol":"openrpc","title":"Fake","version":"1.0.0"}"#;

/// A valid-looking document whose one method returns `schema`, with `schemas` as its
/// component schemas.
fn doc_with(schema: &str, schemas: &str) -> String {
    let doc = serde_json::json!({
        "openrpc": "1.3.2",
        "info": {"title": "t", "version": "1"},
        "methods": [{"name": "m", "params": [], "result": {"name": "r", "schema": json(schema)}}],
        "components": {"schemas": json(schemas)},
    });
    doc.to_string()
}

const CYCLE: &str =
    r##"{"A": {"$ref": "#/components/schemas/B"}, "B": {"$ref": "#/components/schemas/A"}}"##;

#[tokio::test]
async fn hostile_services_cost_only_their_own_entry() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let d = start_daemon(serve_config(root, &["--catalog-timeout", "500ms"])).await;
    fake(root, "garbage", |p| match p {
        "/openrpc.json" => ok_json("{{{{ not json"),
        "/rpc" => ok_json("also not json"),
        _ => ok_json(MANIFEST),
    });
    fake(root, "html", |p| match p {
        "/.well-known/heroservice.json" => Answer::NotFound,
        _ => Answer::Ok(
            "text/html",
            Arc::new(b"<!doctype html><h1>Welcome to nginx</h1>".to_vec()),
        ),
    });
    fake(root, "huge", |p| match p {
        "/openrpc.json" => Answer::Endless(50 << 20),
        _ => ok_json(MANIFEST),
    });
    fake(root, "cycle", |p| match p {
        "/openrpc.json" => ok_json(&doc_with(r##"{"$ref":"#/components/schemas/A"}"##, CYCLE)),
        _ => ok_json(MANIFEST),
    });
    fake(root, "dangling", |p| match p {
        "/openrpc.json" => ok_json(&doc_with(
            r##"{"$ref":"#/components/schemas/Nowhere"}"##,
            "{}",
        )),
        _ => ok_json(MANIFEST),
    });
    fake(root, "future", |p| match p {
        "/openrpc.json" => {
            ok_json(r#"{"openrpc":"9.9.9","info":{"title":"t","version":"1"},"methods":[]}"#)
        }
        _ => ok_json(MANIFEST),
    });
    fake(root, "listmanifest", |p| match p {
        "/openrpc.json" => ok_json(&doc_with("{}", "{}")),
        _ => ok_json("[1, 2, 3]"),
    });
    // No GET /openrpc.json, and rpc.discover too large or too slow: a failed fetch (retried),
    // in the same words as for GET, not "serves neither" or the upstream timeout.
    fake(root, "bigdiscover", |p| match p {
        "/rpc" => Answer::Endless(50 << 20),
        _ => Answer::NotFound,
    });
    fake(root, "slowdiscover", |p| match p {
        "/rpc" => Answer::Hang,
        _ => Answer::NotFound,
    });
    // A manifest past a float's range is named so, not "not JSON".
    fake(root, "hugenum", |p| match p {
        "/openrpc.json" => ok_json(&doc_with("{}", "{}")),
        _ => ok_json(r#"{"title":"t","x":1e400}"#),
    });
    let hung = fake(root, "hung", |_| Answer::Hang);
    fake(root, "hung2", |_| Answer::Hang);
    let _good = spawn(example(root, "good", Spec::Rich)).await.unwrap();
    d.rescan().await;

    // While the hung service holds its fetch, routing to another service is unaffected.
    let sum = call(&d, "good.add", serde_json::json!([2, 3])).await;
    assert_eq!(sum["result"], 5, "{sum}");

    let names = [
        "garbage",
        "html",
        "huge",
        "cycle",
        "dangling",
        "future",
        "listmanifest",
        "hung",
        "hung2",
        "bigdiscover",
        "slowdiscover",
        "hugenum",
        "good",
    ];
    catalog_until(&d, |c| names.iter().all(|n| fetched(c, n).is_some())).await;
    let spec = |s: &Value| (s["spec"]["state"].clone(), s["spec"]["reason"].to_string());
    let expect = [
        ("garbage", "error", "not JSON"),
        ("html", "error", "not JSON"),
        ("huge", "error", "larger than"),
        ("cycle", "invalid", "$ref cycle"),
        (
            "dangling",
            "invalid",
            "unresolved $ref #/components/schemas/Nowhere",
        ),
        ("future", "invalid", "9.9.9"),
        ("hung", "error", "no whole answer within 500ms"),
        (
            "bigdiscover",
            "error",
            "rpc.discover: the answer is larger than 4194304 bytes",
        ),
        (
            "slowdiscover",
            "error",
            "rpc.discover: no whole answer within 500ms",
        ),
    ];
    for (name, state, why) in expect {
        let s = service(&d, name).await;
        let (got_state, reason) = spec(&s);
        assert_eq!(got_state, state, "{name}: {s}");
        assert!(
            reason.contains(why),
            "{name}: {reason:?} should say {why:?}"
        );
    }
    // Equal reasons are one shared text, whichever services give them: the two hung
    // services at least.
    let catalog = d.handle.catalog();
    let reasons: Vec<Arc<str>> = names
        .iter()
        .filter_map(|n| catalog.get(n))
        .flat_map(|e| [e.spec.reason.clone(), e.manifest_error.clone()])
        .flatten()
        .collect();
    let mut equal_pairs = 0;
    for (i, a) in reasons.iter().enumerate() {
        for b in &reasons[i + 1..] {
            if a == b {
                equal_pairs += 1;
                assert!(Arc::ptr_eq(a, b), "{a:?} is held twice");
            }
        }
    }
    assert!(equal_pairs >= 1, "no two equal reasons among {reasons:?}");
    let hugenum = catalog.get("hugenum").unwrap();
    let why = hugenum.manifest_error.as_deref().unwrap_or_default();
    assert!(
        why.starts_with(
            "GET /.well-known/heroservice.json answered JSON with a number the router cannot hold"
        ),
        "{why}"
    );
    // A manifest that is not an object is not used; the spec's info stands in.
    let lm = service(&d, "listmanifest").await;
    assert_eq!(lm["title"], "t", "{lm}");
    let good = service(&d, "good").await;
    assert_eq!(good["spec"]["state"], "ok", "{good}");
    assert!(
        hung.load(Ordering::SeqCst) >= 1,
        "the hung service was asked"
    );
    d.stop().await;
}

#[tokio::test]
async fn docs_pages_over_http_and_reserved_paths() {
    use common::{request, tcp, uds};
    let dir = tempfile::tempdir().unwrap();
    let d = start_daemon(serve_config(dir.path(), &[])).await;
    let _svc = spawn(example(dir.path(), "svc", Spec::Rich)).await.unwrap();
    let _none = spawn(example(dir.path(), "nospec", Spec::None))
        .await
        .unwrap();
    let _broken = spawn(example(dir.path(), "broken", Spec::Invalid))
        .await
        .unwrap();
    // A service named like a router path: method-routable, but /docs/… is the router's.
    let _docs = spawn(example(dir.path(), "docs", Spec::Rich))
        .await
        .unwrap();
    catalog_until(&d, |c| {
        ["svc", "nospec", "docs", "broken"]
            .iter()
            .all(|n| fetched(c, n).is_some())
    })
    .await;
    let get = |path: &str| request("GET", path, "");

    let (s, h, b) = tcp(&d, get("/docs/")).await;
    assert_eq!(s, 200);
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    // The HTML escaper writes `/` as `&#x2f;` in attributes, which a browser reads as `/`.
    let index = String::from_utf8(b.to_vec())
        .unwrap()
        .replace("&#x2f;", "/");
    assert!(index.contains("href=\"/docs/svc\""), "{index}");
    assert!(!index.contains("href=\"/docs/nospec\""), "no spec, no link");

    let (s, _, b) = tcp(&d, get("/docs/svc")).await;
    assert_eq!(s, 200);
    let html = String::from_utf8(b.to_vec()).unwrap();
    assert!(html.contains("svc.add") && html.contains("Hero example service"));
    let (s, h, b) = uds(&d.admin, get("/docs/svc.md")).await;
    assert_eq!(s, 200, "admin.sock serves docs too");
    assert_eq!(h["content-type"], "text/markdown; charset=utf-8");
    assert!(
        String::from_utf8(b.to_vec())
            .unwrap()
            .starts_with("# Hero example service")
    );
    let (s, _, b) = tcp(&d, get("/docs/svc/openrpc.json")).await;
    assert_eq!(s, 200);
    let spec = call(&d, "router.spec", serde_json::json!(["svc"])).await;
    assert_eq!(json(std::str::from_utf8(&b).unwrap()), spec["result"]);

    // An invalid document is documented as it is, and its page says first why it is invalid.
    for path in ["/docs/broken", "/docs/broken.md"] {
        let (s, _, b) = tcp(&d, get(path)).await;
        assert_eq!(s, 200, "{path}");
        let page = String::from_utf8(b.to_vec()).unwrap();
        let why = page
            .find("not valid OpenRPC")
            .expect("the page says it is invalid");
        assert!(page[why..].contains("required property"), "{path}: {page}");
        assert!(why < page.find("echo").unwrap(), "before the methods");
    }

    let (s, h, b) = tcp(&d, get("/docs/nospec")).await;
    assert_eq!(s, 404);
    assert_eq!(h["x-hero-router-error"], "no_spec");
    assert!(String::from_utf8_lossy(&b).contains("neither GET /openrpc.json"));
    let (s, h, _) = tcp(&d, get("/docs/ghost")).await;
    assert_eq!(s, 404);
    assert_eq!(h["x-hero-router-error"], "no_service");
    let (s, _, _) = tcp(&d, request("POST", "/docs/svc", "")).await;
    assert_eq!(s, 405);
    // A path under /docs/ that is no page says which pages there are, not how to proxy.
    for path in ["/docs/svc/other", "/docs/svc.html"] {
        let (s, h, b) = tcp(&d, get(path)).await;
        assert_eq!(s, 404, "{path}");
        assert_eq!(h["x-hero-router-error"], "no_route");
        let text = String::from_utf8_lossy(&b);
        assert!(text.contains("no docs page at this path"), "{path}: {text}");
    }
    // Never on rpc.sock.
    let (s, _, _) = uds(&d.rpc, get("/docs/")).await;
    assert_eq!(s, 404);
    // `/docs/rpc/…` is not the `docs` service's rpc socket; `/api/…` and `/mcp/…` are never
    // proxied either. The service stays reachable by method.
    for path in ["/docs/rpc/health", "/api/anything", "/mcp/rpc/health"] {
        let (s, _, _) = tcp(&d, get(path)).await;
        assert_eq!(s, 404, "{path}");
    }
    let (s, _, _) = tcp(&d, get("/svc/rpc/health")).await;
    assert_eq!(s, 200, "other services are proxied as usual");
    let sum = call(&d, "docs.add", serde_json::json!([1, 2])).await;
    assert_eq!(sum["result"], 3);
    d.stop().await;
}

/// A service that answers `GET /openrpc.json` with an HTML page and does not implement
/// `rpc.discover` serves something at the document's place, only not JSON: its spec is an
/// `error` that says so, not `absent` (which would also drop a good document it had before).
#[tokio::test]
async fn a_page_at_the_documents_place_is_an_error_that_says_not_json() {
    let dir = tempfile::tempdir().unwrap();
    let listener = UnixListener::bind(service_dir(dir.path(), "html").join("rpc.sock")).unwrap();
    let app = axum::Router::new()
        .route(
            "/openrpc.json",
            axum::routing::get(|| async { axum::response::Html("<html><body>hi</body></html>") }),
        )
        .route(
            "/rpc",
            axum::routing::post(|| async {
                axum::Json(serde_json::json!({"jsonrpc": "2.0", "id": 1,
                    "error": {"code": -32601, "message": "method not found"}}))
            }),
        );
    let served = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let d = start_daemon(serve_config(dir.path(), &[])).await;
    d.rescan().await;
    catalog_until(&d, |c| fetched(c, "html").is_some()).await;
    let html = service(&d, "html").await;
    assert_eq!(html["spec"]["state"], "error", "{html}");
    let reason = html["spec"]["reason"].as_str().unwrap();
    assert!(reason.contains("not JSON"), "{reason}");
    served.abort();
    d.stop().await;
}

/// A document as deep as the catalog keeps (docs/catalog.md#validation: 100 levels) is kept and
/// served whole by `router.spec`; one level deeper is a failed fetch that keeps the last good
/// document (`stale`), with a reason that names the request and the limit.
#[tokio::test]
async fn the_deepest_kept_document_is_served_and_a_deeper_one_keeps_the_last() {
    const KEPT: usize = 100;
    static LEVELS: AtomicUsize = AtomicUsize::new(KEPT);
    /// A valid document nested `levels` deep (the root object is level 1).
    fn deep_doc(levels: usize) -> String {
        let inner = levels - 1;
        format!(
            r#"{{"openrpc":"1.3.2","info":{{"title":"t","version":"1"}},"methods":[],"x-deep":{}{}}}"#,
            "[".repeat(inner),
            "]".repeat(inner)
        )
    }
    fn answer(path: &str) -> Answer {
        match path {
            "/openrpc.json" => ok_json(&deep_doc(LEVELS.load(Ordering::SeqCst))),
            _ => Answer::NotFound,
        }
    }
    let dir = tempfile::tempdir().unwrap();
    fake(dir.path(), "deep", answer);
    let d = start_daemon(serve_config(dir.path(), &[])).await;
    d.rescan().await;
    catalog_until(&d, |c| fetched(c, "deep").is_some()).await;
    let entry = service(&d, "deep").await;
    assert_eq!(entry["spec"]["state"], "ok", "{entry}");
    let served = call(&d, "router.spec", serde_json::json!(["deep"])).await;
    assert_eq!(
        served["result"],
        json(&deep_doc(KEPT)),
        "the whole document: {served:.200}"
    );

    LEVELS.store(KEPT + 1, Ordering::SeqCst);
    let refreshed = call(
        &d,
        "router.spec",
        serde_json::json!({"name": "deep", "refresh": true}),
    )
    .await;
    assert_eq!(refreshed["result"], json(&deep_doc(KEPT)), "the kept one");
    let entry = service(&d, "deep").await;
    assert_eq!(entry["spec"]["state"], "stale", "{entry}");
    assert_eq!(
        entry["spec"]["reason"],
        "GET /openrpc.json answered a document nested deeper than 100 levels"
    );
    d.stop().await;
}

/// `router.spec` answers the document as the service served it, every number as written: an
/// integer wider than 64 bits, a decimal with more digits than a double holds, `1e2` (they went
/// through a double on the way out).
#[tokio::test]
async fn router_spec_keeps_every_number_as_written() {
    fn answer(path: &str) -> Answer {
        match path {
            "/openrpc.json" => ok_json(
                r#"{"openrpc":"1.3.2","info":{"title":"t","version":"1"},"methods":[],"x-n":123456789012345678901234567890,"x-m":1e2,"x-d":0.10000000000000000001}"#,
            ),
            _ => Answer::NotFound,
        }
    }
    let dir = tempfile::tempdir().unwrap();
    fake(dir.path(), "nums", answer);
    let d = start_daemon(serve_config(dir.path(), &[])).await;
    d.rescan().await;
    catalog_until(&d, |c| fetched(c, "nums").is_some()).await;
    let (status, body) = common::rpc(
        &d,
        r#"{"jsonrpc":"2.0","id":1,"method":"router.spec","params":["nums"]}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for written in [
        r#""x-n":123456789012345678901234567890"#,
        r#""x-m":1e2"#,
        r#""x-d":0.10000000000000000001"#,
    ] {
        assert!(body.contains(written), "{written} in {body}");
    }
    d.stop().await;
}

/// A service whose fetch failed fast (not JSON) retries on time however many services hang:
/// it used to queue as a suspect behind them (96 hung services, 4 suspect slots, 2 s each: a
/// retry waited most of a minute). Only a fetch that failed slowly makes a suspect.
#[tokio::test]
async fn a_fast_failure_retries_on_time_beside_hung_services() {
    static GOOD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);
    fn flaky(path: &str) -> Answer {
        match path {
            "/openrpc.json" if GOOD.load(Ordering::SeqCst) => ok_json(&doc_with("{}", "{}")),
            "/openrpc.json" => Answer::Ok("text/html", Arc::new(b"<html>oops</html>".to_vec())),
            _ => Answer::NotFound,
        }
    }
    let state = |c: &Catalog| c.get("flaky").map(|e| e.spec.state.as_str());
    let dir = tempfile::tempdir().unwrap();
    let hangers: Vec<String> = (0..96).map(|i| format!("hang{i:02}")).collect();
    for name in &hangers {
        fake(dir.path(), name, |_| Answer::Hang);
    }
    fake(dir.path(), "flaky", flaky);
    let d = start_daemon(serve_config(dir.path(), &[])).await;
    d.rescan().await;
    // Every hung service has failed once (suspects, retrying), flaky is fine.
    catalog_until(&d, |c| {
        state(c) == Some("ok") && hangers.iter().all(|n| fetched(c, n).is_some())
    })
    .await;
    // Flaky breaks (a fetch that fails at once), then mends.
    GOOD.store(false, Ordering::SeqCst);
    let refresh = serde_json::json!({"name": "flaky", "refresh": true});
    call(&d, "router.spec", refresh).await;
    assert_eq!(service(&d, "flaky").await["spec"]["state"], "stale");
    GOOD.store(true, Ordering::SeqCst);
    let mut rx = d.handle.catalogs();
    tokio::time::timeout(
        Duration::from_secs(20),
        rx.wait_for(|c| state(c) == Some("ok")),
    )
    .await
    .expect("flaky's retry waited behind the hung services")
    .unwrap();
    d.stop().await;
}

/// A service whose rpc socket is busy (its backlog full) has no spec for one reason, said the
/// same in the service table, the docs and `router.spec`: it was `null`, "not fetched yet" and
/// "no live socket" before.
#[tokio::test]
async fn a_busy_service_says_why_it_has_no_spec_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let _held = common::busy_socket(&service_dir(dir.path(), "busy").join("rpc.sock"));
    let d = start_daemon(serve_config(dir.path(), &[])).await;
    d.rescan().await;
    let why = "its rpc socket is busy (backlog full): the spec is fetched once it accepts";
    let entry = service(&d, "busy").await;
    assert_eq!(entry["status"], "degraded", "{entry}");
    assert_eq!(entry["spec"]["state"], "absent", "{entry}");
    assert_eq!(entry["spec"]["reason"], why, "{entry}");
    let spec = call(&d, "router.spec", serde_json::json!(["busy"])).await;
    assert_eq!(spec["error"]["data"]["reason"], why, "{spec}");
    let (status, _, body) = common::tcp(&d, common::request("GET", "/docs/busy", "")).await;
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains(why), "{body:?}");
    d.stop().await;
}

/// A service named `router` is listed and its spec kept, but `router.methods` does not offer
/// `router.add` (the router answers `router.*` itself), and `hero_router call router add` is
/// refused as a usage error instead of calling the router's own method. A service named `rpc`
/// keeps every method but `discover`.
#[tokio::test]
async fn a_service_named_router_is_not_offered_by_method_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = start_daemon(serve_config(dir.path(), &[])).await;
    let _router = spawn(example(dir.path(), "router", Spec::Rich))
        .await
        .unwrap();
    let _rpc = spawn(example(dir.path(), "rpc", Spec::Rich)).await.unwrap();
    catalog_until(&d, |c| {
        ["router", "rpc"].iter().all(|n| fetched(c, n).is_some())
    })
    .await;
    let methods = call(&d, "router.methods", serde_json::json!([])).await;
    let names: Vec<&str> = methods["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["method"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"rpc.add"), "{names:?}");
    assert!(
        names
            .iter()
            .all(|n| !n.starts_with("router.") && *n != "rpc.discover"),
        "only names /rpc routes to the service: {names:?}"
    );
    assert_eq!(service(&d, "router").await["spec"]["state"], "ok");
    let sock_dir = dir.path().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_hero_router"))
            .args(["call", "router", "health", "--socket-dir"])
            .arg(&sock_dir)
            .env("HOME", &sock_dir)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("router.health is the router's own method") && out.stdout.is_empty(),
        "{err}"
    );
    d.stop().await;
}
