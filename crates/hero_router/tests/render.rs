//! Docs rendering never blocks routing (docs/docs-and-mcp.md#render-budget): the whole daemon
//! in-process (temp root, TCP port 0) with example services serving hostile documents.
//!
//! - A page is rendered once, off the connection shards: while it renders, a routed call
//!   goes through; sixteen requests for it at once get one render (`cache-status`: one miss,
//!   the rest collapsed onto it); the next request is a hit. The same for the Markdown page
//!   and the dashboard's detail view.
//! - Sixteen clients asking for `$ref`-bomb pages and details do not slow a routed call:
//!   its p99 stays within twice its idle p99, and the process stays under 150 MB.
//! - A page over the render budget is a short page that says so and links the document,
//!   kept like a page; the CLI prints the same page and says so on stderr.
//!
//! The tests take turns (one lock): each measures latency or memory of the whole process.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{Daemon, json, request, serve_config, start_daemon, tcp};
use hero_example_service::{RunningService, ServiceConfig, Spec, spawn};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

const DEADLINE: Duration = Duration::from_secs(60);

/// One test at a time: they measure the latency and memory of the whole process.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A `$ref` bomb: each of `levels` schemas refers `width` times to the next, and each of
/// `methods` methods takes and returns the first, so expanding it copies without end but for
/// the dereference's bounds (each method and component is cut at 50,000 copied values, the
/// document at 500,000). `tag` makes the document, and so its fingerprint, the test's own.
fn ref_bomb(tag: &str, methods: usize, width: usize, levels: usize) -> Value {
    let mut schemas = serde_json::Map::new();
    for i in 0..levels {
        let next = json!({
            "$ref": format!("#/components/schemas/L{}", i + 1),
            "description": "a field of the next level",
        });
        let fields: serde_json::Map<String, Value> = (0..width)
            .map(|w| (format!("f{w}"), next.clone()))
            .collect();
        schemas.insert(
            format!("L{i}"),
            json!({ "type": "object", "description": format!("level {i}"), "properties": fields }),
        );
    }
    schemas.insert(format!("L{levels}"), json!({ "type": "string" }));
    let methods: Vec<Value> = (0..methods)
        .map(|i| {
            json!({
                "name": format!("boom{i}"),
                "summary": "Takes and returns the bomb.",
                "params": [{ "name": "x", "schema": { "$ref": "#/components/schemas/L0" } }],
                "result": { "name": "y", "schema": { "$ref": "#/components/schemas/L0" } },
            })
        })
        .collect();
    json!({
        "openrpc": "1.3.2",
        "info": { "title": format!("Bomb {tag}"), "version": "1.0.0" },
        "methods": methods,
        "components": { "schemas": schemas },
    })
}

/// A document whose pages are over the budget: 50 methods with 10 examples each, all of one
/// 400 KB value, 200 MB of examples (4 MB copied per method) from a 400 KB document.
fn example_bomb() -> Value {
    let pairing = json!({
        "name": "big",
        "params": [{ "$ref": "#/components/examples/Big" }],
        "result": { "name": "r", "value": 1 },
    });
    let methods: Vec<Value> = (0..50)
        .map(|i| {
            json!({
                "name": format!("m{i}"),
                "params": [{ "name": "x", "schema": { "type": "string" } }],
                "result": { "name": "r", "schema": { "type": "integer" } },
                "examples": vec![pairing.clone(); 10],
            })
        })
        .collect();
    json!({
        "openrpc": "1.3.2",
        "info": { "title": "Too big", "version": "1.0.0" },
        "methods": methods,
        "components": { "examples": { "Big": { "name": "x", "value": "b".repeat(400_000) } } },
    })
}

/// A router with these services, once the catalog holds every one's document.
async fn daemon(services: Vec<(&str, Spec)>) -> (tempfile::TempDir, Daemon, Vec<RunningService>) {
    let root = tempfile::tempdir().unwrap();
    let mut running = Vec::new();
    let mut names = Vec::new();
    for (name, spec) in services {
        let cfg = ServiceConfig {
            spec,
            ..ServiceConfig::new(root.path(), name)
        };
        running.push(spawn(cfg).await.unwrap());
        names.push(name.to_owned());
    }
    let d = start_daemon(serve_config(root.path(), &["--upstream-timeout", "10s"])).await;
    let mut catalogs = d.handle.catalogs();
    let fetched = catalogs.wait_for(|c| {
        names
            .iter()
            .all(|n| c.get(n).is_some_and(|e| e.document.is_some()))
    });
    tokio::time::timeout(DEADLINE, fetched)
        .await
        .expect("the catalog did not fetch every document in time")
        .unwrap();
    (root, d, running)
}

/// `GET path`: status, `cache-status` (empty if none), body.
async fn get(d: &Daemon, path: &str) -> (u16, String, String) {
    // The dashboard's API is on the admin listener, the docs on either.
    let (s, h, b) = if path.starts_with("/api/") {
        common::admin(d, request("GET", path, "")).await
    } else {
        tcp(d, request("GET", path, "")).await
    };
    let cache = h
        .get("cache-status")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (s.as_u16(), cache, String::from_utf8(b.to_vec()).unwrap())
}

/// One routed call, `example.add` through `POST /rpc`; how long it took.
async fn routed_call(d: &Daemon) -> Duration {
    let started = Instant::now();
    let (s, body) = common::rpc(
        d,
        r#"{"jsonrpc":"2.0","id":1,"method":"example.add","params":[2,3]}"#,
    )
    .await;
    let took = started.elapsed();
    assert_eq!(
        (s, json(&body)["result"].as_u64()),
        (200, Some(5)),
        "{body}"
    );
    took
}

/// The 99th percentile of `samples`.
fn p99(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[(samples.len() * 99).div_ceil(100) - 1]
}

#[tokio::test]
async fn a_page_renders_once_off_the_shards_then_is_a_hit() {
    let _turn = TURN.lock().await;
    let (_root, d, _svcs) = daemon(vec![
        ("example", Spec::Rich),
        ("bomb", Spec::Document(ref_bomb("once", 8, 4, 8))),
    ])
    .await;
    let d = Arc::new(d);

    for path in ["/docs/bomb", "/docs/bomb.md", "/api/dashboard/service/bomb"] {
        // Sixteen requests for the page nobody asked for yet, all at once.
        let asked: Vec<_> = (0..16)
            .map(|_| {
                let d = d.clone();
                tokio::spawn(async move { get(&d, path).await })
            })
            .collect();
        // While the page renders, the connection threads route: these calls are answered
        // before any of the sixteen (today's code answers them after a render it waited for).
        for _ in 0..5 {
            routed_call(&d).await;
        }
        let pending = asked.iter().filter(|t| !t.is_finished()).count();
        assert_eq!(
            pending, 16,
            "{path}: a page was answered before the routed calls"
        );
        let mut answers = Vec::new();
        for t in asked {
            answers.push(t.await.unwrap());
        }
        let (status, _, first) = &answers[0];
        assert_eq!(*status, 200, "{path}: {first}");
        assert!(
            answers.iter().all(|(_, _, b)| b == first),
            "{path}: one page"
        );
        let misses = answers
            .iter()
            .filter(|(_, c, _)| c == "hero_router; fwd=miss")
            .count();
        let shared = answers
            .iter()
            .filter(|(_, c, _)| c == "hero_router; fwd=miss; collapsed" || c == "hero_router; hit")
            .count();
        assert_eq!((misses, shared), (1, 15), "{path}: one render for sixteen");

        // The next request is a lookup.
        let (status, cache, again) = get(&d, path).await;
        assert_eq!(
            (status, cache.as_str()),
            (200, "hero_router; hit"),
            "{path}"
        );
        assert_eq!(&again, first);
    }
    let (_, _, html) = get(&d, "/docs/bomb").await;
    assert!(
        html.contains("bomb.boom7") && html.contains("truncated:"),
        "{html}"
    );
    let detail = json(&get(&d, "/api/dashboard/service/bomb").await.2);
    assert_eq!(detail["methods"].as_array().map(Vec::len), Some(8));
    assert_eq!(detail["service"]["name"], "bomb");
    // The raw document and the index are not pages of the cache.
    let (status, cache, _) = get(&d, "/docs/bomb/openrpc.json").await;
    assert_eq!((status, cache.as_str()), (200, ""));
    Arc::into_inner(d).unwrap().stop().await;
}

/// Sixteen clients in a loop over `pages` (each its own connection, read to the end), on a
/// thread of their own so that reading pages costs the measured client nothing. Counts
/// answers in `answered`; stops when `stop` is set.
fn hostile_clients(
    (service, admin): (SocketAddr, SocketAddr),
    pages: Vec<String>,
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicUsize>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let clients = (0..16).map(|k| {
                let (pages, stop, answered) = (pages.clone(), stop.clone(), answered.clone());
                tokio::spawn(async move {
                    // Each starts on another page, so every page is asked for at once.
                    let mut i = k;
                    while !stop.load(Ordering::SeqCst) {
                        let path = &pages[i % pages.len()];
                        i += 1;
                        let addr = if path.starts_with("/api/") {
                            admin
                        } else {
                            service
                        };
                        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
                        let head = format!(
                            "GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n"
                        );
                        s.write_all(head.as_bytes()).await.unwrap();
                        let mut answer = Vec::new();
                        s.read_to_end(&mut answer).await.unwrap();
                        assert!(answer.starts_with(b"HTTP/1.1 200 "), "{path}");
                        answered.fetch_add(1, Ordering::SeqCst);
                    }
                })
            });
            for c in futures_util::future::join_all(clients).await {
                c.unwrap();
            }
        });
    })
}

#[tokio::test]
async fn routing_stays_fast_while_ref_bombs_render() {
    const SAMPLES: usize = 400;
    let _turn = TURN.lock().await;
    let bombs = ["bomb0", "bomb1", "bomb2", "bomb3"];
    let mut services = vec![("example", Spec::Rich)];
    services.extend(
        bombs
            .iter()
            .map(|b| (*b, Spec::Document(ref_bomb(&format!("load {b}"), 8, 4, 8)))),
    );
    common::reset_peak_rss();
    let (_root, d, _svcs) = daemon(services).await;
    for _ in 0..20 {
        routed_call(&d).await; // warm-up: first connections, first allocations
    }
    let mut idle = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        idle.push(routed_call(&d).await);
    }
    let idle = p99(idle);

    // Twelve pages nobody has asked for, each a render of about half a million values.
    let pages: Vec<String> = bombs
        .iter()
        .flat_map(|b| {
            [
                format!("/docs/{b}"),
                format!("/docs/{b}.md"),
                format!("/api/dashboard/service/{b}"),
            ]
        })
        .collect();
    let (stop, answered) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let addrs = (d.tcp, d.admin_tcp.unwrap());
    let load = hostile_clients(addrs, pages, stop.clone(), answered.clone());
    // As many samples as idle, unless routing is so slow that would take past the deadline
    // (renders on the connection threads: then a few samples show it).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut loaded = Vec::with_capacity(SAMPLES);
    while loaded.len() < SAMPLES && Instant::now() < deadline {
        loaded.push(routed_call(&d).await);
    }
    let renders_were_pending = answered.load(Ordering::SeqCst) < 16;
    stop.store(true, Ordering::SeqCst);
    let joined = tokio::task::spawn_blocking(move || load.join());
    tokio::time::timeout(DEADLINE, joined)
        .await
        .expect("the hostile clients did not stop")
        .unwrap()
        .unwrap();
    assert!(
        answered.load(Ordering::SeqCst) >= 16,
        "every page was served"
    );
    let loaded = p99(loaded);
    let peak_mb = common::peak_rss_kib() * 1024 / 1_000_000;
    eprintln!(
        "routed p99: idle {idle:?}, under 16 hostile clients {loaded:?} (renders pending \
         throughout: {renders_were_pending}); peak RSS {peak_mb} MB"
    );
    // Twice the idle p99, but at least 20 ms more: on a 2-core machine shared with other
    // builds, the scheduler alone moves a p99 of a few milliseconds by that much; a render
    // on a connection thread moves it by hundreds.
    let limit = (idle * 2).max(idle + Duration::from_millis(20));
    assert!(
        loaded <= limit,
        "routed p99 {loaded:?} under hostile rendering, idle {idle:?} (limit {limit:?})"
    );
    assert!(peak_mb < 150, "peak RSS {peak_mb} MB");
    d.stop().await;
}

#[tokio::test]
async fn a_page_over_the_budget_is_a_short_page_with_a_link_and_is_kept() {
    let _turn = TURN.lock().await;
    let (root, d, _svcs) = daemon(vec![("big", Spec::Document(example_bomb()))]).await;

    let (status, cache, html) = get(&d, "/docs/big").await;
    assert_eq!((status, cache.as_str()), (200, "hero_router; fwd=miss"));
    assert!(html.len() < 16 * 1024, "{} bytes", html.len());
    // The manifest's title comes first, as on every page.
    assert!(html.contains("<h1>Hero example service</h1>"), "{html}");
    assert!(
        html.contains("too large or complex to render: the page would be larger than 16 MiB."),
        "{html}"
    );
    // The HTML escaper writes `/` as `&#x2f;` in attributes, which a browser reads as `/`.
    assert!(
        html.contains("<a href=\"&#x2f;docs&#x2f;big&#x2f;openrpc.json\">"),
        "{html}"
    );
    let (status, cache, md) = get(&d, "/docs/big.md").await;
    assert_eq!((status, cache.as_str()), (200, "hero_router; fwd=miss"));
    assert!(md.starts_with("# Hero example service\n"), "{md}");
    assert!(md.contains("too large or complex to render"), "{md}");
    assert!(
        md.contains("[`/docs/big/openrpc.json`](/docs/big/openrpc.json)"),
        "{md}"
    );
    // The refusal is kept like a page.
    for (path, page) in [("/docs/big", &html), ("/docs/big.md", &md)] {
        let (_, cache, again) = get(&d, path).await;
        assert_eq!((cache.as_str(), &again), ("hero_router; hit", page));
    }
    // The link works.
    let (status, _, doc) = get(&d, "/docs/big/openrpc.json").await;
    assert!(status == 200 && json(&doc) == example_bomb(), "{status}");
    // The detail view lists the methods alone (not their examples): what the examples'
    // references copy is cut at the resolver's limits (1 MiB of text per method), so the
    // list is within its budget. (Over it, the list is empty and says why: a unit test.)
    let detail = json(&get(&d, "/api/dashboard/service/big").await.2);
    assert_eq!(detail["methods"].as_array().map(Vec::len), Some(50));
    assert!(
        detail["methods_note"].is_null(),
        "{}",
        detail["methods_note"]
    );

    // The CLI renders through the same code and budget, and says so.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hero_router"))
        .args(["markdown", "big", "--socket-dir"])
        .arg(root.path())
        .env("HOME", root.path())
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8(out.stdout).unwrap(), md);
    assert!(
        stderr.contains("the big docs are too large or complex to render")
            && stderr.contains("hero_router spec big"),
        "{stderr}"
    );
    d.stop().await;
}
