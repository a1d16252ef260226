//! Hostile pages in a real browser (docs/access-and-security.md): headless Chromium (Debian's
//! `chromium`) driven by pip `playwright` through `tests/browser/attacks.py`, against the daemon
//! in-process. A page on another origin tries CSRF (no-cors fetches and text/plain forms) on
//! `/rpc`, a service's `/{svc}/rpc/`, `/mcp` and the dashboard's `/api/scan`; a DNS-rebound
//! page (Chromium maps attacker.example to 127.0.0.1) tries to read `/api/services`,
//! `/api/events`, `/rpc` and to call MCP; a page a service serves through the router tries the
//! dashboard's API and feed, and to frame the dashboard. None succeeds: the victim service is
//! never called, no scan is made, nothing is read, the frame stays empty.
//!
//! The legitimate dashboard working end to end in the same browser is `dashboard_browser.rs`.
//! Without a browser the test says so and passes, unless `HERO_REQUIRE_BROWSER=1` (see
//! `common::browser_python`).

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::victim::Victim;
use common::{json, serve_config, service_dir, start_daemon};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The whole browser run; it fails rather than hangs.
const DEADLINE: Duration = Duration::from_secs(180);

/// A service's web page (`/evil/ui/`), the same HTML for any request: what a service may serve.
fn evil_page(root: &Path) {
    let l = tokio::net::UnixListener::bind(service_dir(root, "evil").join("web_ui.sock")).unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk).await {
                        Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                        _ => return,
                    }
                }
                let head = String::from_utf8_lossy(&buf);
                let path = head.split(' ').nth(1).unwrap_or("");
                // Its service worker asks for the whole origin as its scope.
                let (kind, extra, body) = if path.ends_with("/sw.js") {
                    (
                        "text/javascript",
                        "service-worker-allowed: /\r\n",
                        "self.addEventListener('fetch', (e) => e.respondWith(new Response('hijacked')));",
                    )
                } else {
                    (
                        "text/html",
                        "",
                        "<!doctype html><title>a service's page</title><body><p>evil</p>",
                    )
                };
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: {kind}\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(answer.as_bytes()).await;
            });
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_pages_cannot_steer_the_router() {
    let Some(python) = common::browser_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let victim = Victim::bind(dir.path());
    evil_page(dir.path());
    let d = start_daemon(serve_config(dir.path(), &[])).await;
    d.rescan().await;
    let health = || async {
        let (_, body) =
            common::rpc(&d, r#"{"jsonrpc":"2.0","id":1,"method":"router.health"}"#).await;
        json(&body)["result"].clone()
    };
    let scanned = health().await["last_scan"]["at_unix_ms"].clone();
    let elsewhere = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = serde_json::json!({
        "router": format!("http://{}", d.tcp),
        "admin": format!("http://{}", d.admin_tcp.unwrap()),
        "service_page": format!("http://{}/evil/ui/", d.tcp),
        // A port nothing listens on once the script starts: its page is served by the script.
        "elsewhere": format!("http://{}", elsewhere.local_addr().unwrap()),
        "chromium": std::env::var("HERO_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
    });
    drop(elsewhere);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/attacks.py");
    let run = tokio::process::Command::new(&python)
        .arg(&script)
        .arg(config.to_string())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(DEADLINE, run)
        .await
        .expect("the browser run did not end in time")
        .unwrap();
    assert!(
        out.status.success(),
        "the browser script failed: {}",
        out.status
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let seen: Value = json(stdout.lines().next().expect("the script's findings"));
    eprintln!("{seen:#}");

    // 1. Another origin: the requests left the browser, and none was acted on or read.
    let csrf = &seen["csrf"];
    assert!(
        csrf["reads"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r == "unreadable"),
        "{csrf}"
    );
    assert_eq!(
        csrf["forms"],
        serde_json::json!(["posted", "posted", "posted"]),
        "{csrf}"
    );
    assert_eq!(csrf["image"], "refused", "{csrf}");
    // 2. DNS rebinding: every request to either listener under the rebound name is misdirected.
    let rebound = seen["rebound"].as_array().unwrap();
    assert_eq!(rebound.len(), 14, "seven requests on each listener");
    for r in rebound {
        assert_eq!(r["status"], 421, "{r}");
        assert!(!r["body"].as_str().unwrap().contains("victim"), "{r}");
    }
    // 3. A service's page: the dashboard's API unreadable, its feed refused, no frame.
    let page = &seen["service_page"];
    assert!(
        page["reads"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r == "unreadable"),
        "{page}"
    );
    assert_eq!(page["feed"], "refused", "{page}");
    // Its service worker cannot take the origin's root, where the router's own pages are: the
    // router drops the service's `Service-Worker-Allowed: /`.
    let worker = seen["service_worker"].as_str().unwrap();
    assert!(worker.starts_with("refused: SecurityError"), "{worker}");
    let frame = &seen["frame"];
    assert_eq!(frame["dashboard_shown"], false, "{frame}");
    assert!(
        !frame["console"].as_array().unwrap().is_empty(),
        "the browser refused the frame by the dashboard's frame-ancestors: {frame}"
    );

    // Nothing happened on the router's side: no call, no scan.
    assert_eq!(
        victim.posts(),
        0,
        "a hostile page called the victim service"
    );
    assert_eq!(
        health().await["last_scan"]["at_unix_ms"],
        scanned,
        "a hostile page made the router scan"
    );
    assert_eq!(
        victim.gets(),
        0,
        "a page of the same site reached the victim service with a GET"
    );
    // Control: the same calls without a page behind them reach the service.
    let get = common::request("GET", "/victim/rpc/poke", "");
    let (status, _, _) = common::tcp(&d, get).await;
    assert_eq!(status.as_u16(), 200);
    assert_eq!(victim.gets(), 1);
    let (status, _) = common::rpc(&d, r#"{"jsonrpc":"2.0","id":1,"method":"victim.poke"}"#).await;
    assert_eq!(status, 200);
    assert_eq!(victim.posts(), 1);
    d.stop().await;
}
