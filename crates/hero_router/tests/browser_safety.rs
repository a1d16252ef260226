//! What a web page may make the router do (docs/access-and-security.md), over raw HTTP against the
//! daemon in-process: the Host check, the cross-origin refusal on the router's own endpoints and on
//! a service's JSON-RPC socket, the admin listener's own origin, and the headers on the router's
//! pages. `browser_attacks.rs` runs the same attacks from pages in headless Chromium.

mod common;

use std::path::Path;

use bytes::Bytes;
use common::victim::Victim;
use common::{Daemon, admin, json, serve_config, start_daemon, tcp, uds};
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A request with these headers (and `host` as given).
fn req(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> http::Request<Full<Bytes>> {
    let mut r = http::Request::builder().method(method).uri(path);
    for (name, value) in headers {
        r = r.header(*name, *value);
    }
    r.body(Full::new(Bytes::from(body.to_owned()))).unwrap()
}

async fn daemon(root: &Path) -> Daemon {
    let cfg = serve_config(root, &["--server-name", "router.test"]);
    let d = start_daemon(cfg).await;
    d.rescan().await;
    d
}

const POKE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"victim.poke"}"#;
const POKE_DIRECT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"poke"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_routers_names_reach_it() {
    let dir = tempfile::tempdir().unwrap();
    let victim = Victim::bind(dir.path());
    let d = daemon(dir.path()).await;
    let port = d.tcp.port();
    let names = [
        format!("127.0.0.1:{port}"),
        "127.0.0.1".to_owned(),
        "localhost".to_owned(),
        format!("localhost:{port}"),
        format!("foo.localhost:{port}"),
        "router.test".to_owned(),
        format!("router.test:{port}"),
    ];
    for host in &names {
        let (status, _, _) = tcp(&d, req("GET", "/health", &[("host", host)], "")).await;
        assert_eq!(status, 200, "Host {host}");
        let (status, _, _) = tcp(&d, req("POST", "/rpc", &[("host", host)], POKE)).await;
        assert_eq!(status, 200, "Host {host}");
    }
    assert_eq!(victim.posts(), names.len(), "every call by a router's name");
    for host in [
        format!("attacker.example:{port}"),
        "attacker.example".to_owned(),
        "127.0.0.2".to_owned(),
        "[::1]".to_owned(),
        "localhost.attacker.example".to_owned(),
    ] {
        for (method, path, body) in [
            ("GET", "/health", ""),
            ("GET", "/api/services", ""),
            ("POST", "/rpc", POKE),
            ("POST", "/victim/rpc/", POKE_DIRECT),
            ("POST", "/mcp", "{}"),
            ("GET", "/docs/", ""),
        ] {
            let (status, headers, body) =
                tcp(&d, req(method, path, &[("host", &host)], body)).await;
            assert_eq!(status, 421, "Host {host} {method} {path}");
            assert_eq!(headers["x-hero-router-error"], "misdirected");
            assert_eq!(headers["connection"], "close");
            let body = json(std::str::from_utf8(&body).unwrap());
            assert_eq!(body["error"], "misdirected");
            assert_eq!(body["host"], host.as_str());
        }
        // The admin listener checks the same names.
        let (status, _, _) = admin(&d, req("GET", "/api/services", &[("host", &host)], "")).await;
        assert_eq!(status, 421, "admin listener, Host {host}");
    }
    assert_eq!(victim.posts(), names.len(), "no call by another name");
    // An absolute-form target names the host too.
    let mut s = tokio::net::TcpStream::connect(d.tcp).await.unwrap();
    s.write_all(b"GET http://attacker.example/health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).await.unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 421 "),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    // A Unix-socket caller names nothing the router could check.
    let (status, _, _) = uds(
        &d.admin,
        req("GET", "/health", &[("host", "attacker.example")], ""),
    )
    .await;
    assert_eq!(status, 200);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipv6_listener_answers_to_its_literal() {
    let dir = tempfile::tempdir().unwrap();
    // Not every machine has IPv6 loopback; without it there is nothing to check.
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback here");
        return;
    }
    let d = start_daemon(serve_config(dir.path(), &["--listen", "[::1]:0"])).await;
    let v6 = d.tcp_all.iter().find(|a| a.is_ipv6()).copied().unwrap();
    for host in [format!("[::1]:{}", v6.port()), "[::1]".to_owned()] {
        let s = tokio::net::TcpStream::connect(v6).await.unwrap();
        let (status, _, _) =
            common::exchange(s, req("GET", "/health", &[("host", &host)], "")).await;
        assert_eq!(status, 200, "Host {host}");
    }
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_page_from_another_origin_drives_the_router() {
    let dir = tempfile::tempdir().unwrap();
    let victim = Victim::bind(dir.path());
    let d = daemon(dir.path()).await;
    let last_scan = || async {
        let (_, body) =
            common::rpc(&d, r#"{"jsonrpc":"2.0","id":1,"method":"router.health"}"#).await;
        json(&body)["result"]["last_scan"]["at_unix_ms"].clone()
    };
    let scanned = last_scan().await;
    let own = format!("http://{}", d.tcp);
    let admin_own = format!("http://{}", d.admin_tcp.unwrap());
    // What a page elsewhere sends: its Origin (or `null`), or only Sec-Fetch-Site, with the
    // content types a form or a no-cors fetch may use.
    let provenances: Vec<Vec<(&str, &str)>> = vec![
        vec![("origin", "http://evil.example")],
        vec![("origin", "null")],
        vec![("origin", "http://127.0.0.1:1")],
        vec![("sec-fetch-site", "cross-site")],
        vec![("origin", &admin_own)],
    ];
    let content_types = [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/json",
    ];
    for provenance in &provenances {
        for content_type in content_types {
            let mut headers = provenance.clone();
            headers.push(("content-type", content_type));
            headers.push(("host", "localhost"));
            for (method, path, body) in [
                ("POST", "/rpc", POKE),
                (
                    "POST",
                    "/rpc",
                    r#"{"jsonrpc":"2.0","id":1,"method":"router.scan"}"#,
                ),
                ("POST", "/victim/rpc/", POKE_DIRECT),
                ("POST", "/victim/rpc/rpc", POKE_DIRECT),
                (
                    "POST",
                    "/mcp",
                    r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"victim__poke"}}"#,
                ),
                ("POST", "/mcp/victim", "{}"),
                ("GET", "/api/services", ""),
            ] {
                let (status, h, body) = tcp(&d, req(method, path, &headers, body)).await;
                assert_eq!(status, 403, "{provenance:?} {content_type} {method} {path}");
                assert_eq!(h["x-hero-router-error"], "foreign_origin");
                let body = json(std::str::from_utf8(&body).unwrap());
                assert_eq!(body["error"], "foreign_origin");
            }
        }
    }
    // The dashboard's actions and API on the admin listener: a service's page (the service
    // listener's origin) is foreign there.
    for origin in ["http://evil.example", "null", own.as_str()] {
        let headers = [("origin", origin), ("host", "localhost")];
        for (method, path) in [
            ("POST", "/api/scan"),
            ("GET", "/api/events"),
            ("GET", "/api/services"),
            ("POST", "/rpc"),
        ] {
            let (status, h, _) = admin(&d, req(method, path, &headers, POKE)).await;
            assert_eq!(
                status, 403,
                "{origin} {method} {path} on the admin listener"
            );
            assert_eq!(h["x-hero-router-error"], "foreign_origin");
        }
    }
    assert_eq!(victim.posts(), 0, "no call reached the service");
    assert_eq!(last_scan().await, scanned, "no scan was made");

    // Controls: no Origin (curl, SDKs), and a page of the same origin, get through.
    let same = format!("http://localhost:{}", d.tcp.port());
    let host = format!("localhost:{}", d.tcp.port());
    for headers in [
        vec![("host", "localhost")],
        vec![("host", host.as_str()), ("origin", same.as_str())],
    ] {
        let (status, _, _) = tcp(&d, req("POST", "/rpc", &headers, POKE)).await;
        assert_eq!(status, 200, "{headers:?}");
        let (status, _, _) = tcp(&d, req("POST", "/victim/rpc/", &headers, POKE_DIRECT)).await;
        assert_eq!(status, 200, "{headers:?}");
    }
    assert_eq!(victim.posts(), 4);
    let admin_host = d.admin_tcp.unwrap().to_string();
    let headers = [
        ("host", admin_host.as_str()),
        ("origin", admin_own.as_str()),
    ];
    let (status, _, _) = admin(&d, req("POST", "/api/scan", &headers, "")).await;
    assert_eq!(status, 200, "the dashboard's own page");
    assert_ne!(last_scan().await, scanned);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_names_do_not_grow_the_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let _victim = Victim::bind(dir.path());
    let d = daemon(dir.path()).await;
    let get = |path: &str| req("GET", path, &[("host", "localhost")], "");
    for i in 0..20 {
        let (status, _, _) = tcp(&d, get(&format!("/made{i}/rpc/"))).await;
        assert_eq!(status, 404);
    }
    let (status, _, _) = tcp(&d, get("/victim/nosuchkind/")).await;
    assert_eq!(status, 404);
    let (_, _, metrics) = tcp(&d, get("/metrics")).await;
    let metrics = String::from_utf8(metrics.to_vec()).unwrap();
    assert!(!metrics.contains("service=\"made"), "{metrics}");
    // A service in the table keeps its label for its errors.
    assert!(metrics.contains("service=\"victim\""), "{metrics}");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_has_an_origin_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let _victim = Victim::bind(dir.path());
    let d = daemon(dir.path()).await;
    let get = |path: &str, accept: &str| {
        req(
            "GET",
            path,
            &[("host", "localhost"), ("accept", accept)],
            "",
        )
    };
    // The service listener: no dashboard; `/` says where it is.
    let (status, headers, body) = tcp(&d, get("/", "text/html,application/xhtml+xml")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    let html = String::from_utf8(body.to_vec()).unwrap();
    let admin_url = format!("http://{}/", d.admin_tcp.unwrap());
    assert!(
        html.contains(&format!(r#"<a href="{admin_url}">"#)),
        "{html}"
    );
    let (_, _, body) = tcp(&d, get("/", "*/*")).await;
    assert_eq!(
        json(std::str::from_utf8(&body).unwrap())["dashboard"],
        admin_url.as_str()
    );
    for path in ["/api/events", "/api/scan", "/api/dashboard/service/victim"] {
        let (status, headers, _) = tcp(&d, get(path, "*/*")).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(headers["x-hero-router-error"], "on_admin_listener");
    }
    // The admin listener: the dashboard, and nothing of any service (no proxy, no MCP).
    let (status, _, body) = admin(&d, get("/", "text/html")).await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("<table id=\"services\">"));
    for path in ["/victim/rpc/", "/mcp", "/mcp/victim", "/anything"] {
        let (status, headers, _) = admin(&d, get(path, "*/*")).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(headers["x-hero-router-error"], "not_on_admin_listener");
    }
    for path in ["/health", "/metrics", "/api/services", "/docs/"] {
        let (status, _, _) = admin(&d, get(path, "*/*")).await;
        assert_eq!(status, 200, "{path} on the admin listener");
    }
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_routers_pages_carry_their_headers() {
    let dir = tempfile::tempdir().unwrap();
    let svc =
        hero_example_service::spawn(hero_example_service::ServiceConfig::new(dir.path(), "calc"))
            .await
            .unwrap();
    let d = daemon(dir.path()).await;
    let mut catalogs = d.handle.catalogs();
    tokio::time::timeout(
        common::mcp::DEADLINE,
        catalogs.wait_for(|c| c.get("calc").is_some_and(|e| e.document.is_some())),
    )
    .await
    .unwrap()
    .unwrap();
    let get = |path: &str| req("GET", path, &[("host", "localhost")], "");
    let mcp_post = |content_type: &str, body: &str| {
        let accept = "application/json, text/event-stream";
        let headers = [
            ("host", "localhost"),
            ("content-type", content_type),
            ("accept", accept),
        ];
        req("POST", "/mcp/calc", &headers, body)
    };
    let pages = [
        ("dashboard", admin(&d, get("/")).await),
        ("docs page", tcp(&d, get("/docs/calc")).await),
        ("docs markdown", tcp(&d, get("/docs/calc.md")).await),
        ("docs index", tcp(&d, get("/docs/")).await),
        ("landing", tcp(&d, get("/")).await),
        ("health", tcp(&d, get("/health")).await),
        ("an error", tcp(&d, get("/nosuch/rpc/")).await),
        (
            "a refusal",
            tcp(
                &d,
                req("GET", "/health", &[("host", "attacker.example")], ""),
            )
            .await,
        ),
        (
            "an API answer",
            admin(&d, get("/api/dashboard/service/calc")).await,
        ),
        // The MCP gateway's answers, rmcp's refusals among them.
        ("an MCP refusal (405)", tcp(&d, get("/mcp/calc")).await),
        (
            "an MCP refusal (415)",
            tcp(&d, mcp_post("text/plain", "{}")).await,
        ),
        (
            "an MCP answer",
            tcp(
                &d,
                mcp_post(
                    "application/json",
                    r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
                ),
            )
            .await,
        ),
    ];
    for (what, (status, headers, _)) in pages {
        let csp = headers
            .get("content-security-policy")
            .unwrap_or_else(|| panic!("{what} ({status}) has no CSP"))
            .to_str()
            .unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
        assert!(
            !csp.contains("script-src 'unsafe-inline'") && !csp.contains("'unsafe-eval'"),
            "{what}: {csp}"
        );
        assert!(csp.contains("default-src 'none'"), "{what}: {csp}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{what}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{what}");
    }
    svc.shutdown().await;
    d.stop().await;
}
