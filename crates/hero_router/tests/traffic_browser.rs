//! The dashboard's traffic charts in a real browser (headless Chromium through
//! `tests/browser/traffic.py`, as `dashboard_browser.rs` runs it): load against two services
//! makes their sparklines move, and the detail view's numbers and latency chart match
//! `router.traffic`. Skipped (passing) without the browser unless `HERO_REQUIRE_BROWSER=1`.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::raw::{OK, Reply, Upstream};
use common::start_daemon;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The whole browser run; it fails rather than hangs.
const DEADLINE: Duration = Duration::from_secs(180);

/// Requests `path` on `addr` over one keep-alive connection, about 50 a second, until `stop`.
async fn load(addr: std::net::SocketAddr, path: &'static str, stop: Arc<AtomicBool>) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let mut pace = tokio::time::interval(Duration::from_millis(20));
    let mut buf = vec![0u8; 4096];
    while !stop.load(Ordering::SeqCst) {
        pace.tick().await;
        s.write_all(request.as_bytes()).await.unwrap();
        // One small answer: its head and body come in one read here.
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0, "the router closed the load connection");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_makes_the_sparklines_move_and_the_detail_matches_router_traffic() {
    let Some(python) = common::browser_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let _alpha = Upstream::bind(dir.path(), "alpha", |_| Reply::Send(OK));
    let _beta = Upstream::bind(dir.path(), "beta", |_| {
        Reply::Send(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")
    });
    let d = start_daemon(common::serve_config(dir.path(), &[])).await;
    d.rescan().await;
    let stop = Arc::new(AtomicBool::new(false));
    let loads = [
        tokio::spawn(load(d.tcp, "/alpha/rpc/x", stop.clone())),
        tokio::spawn(load(d.tcp, "/beta/rpc/x", stop.clone())),
    ];
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("traffic-browser");
    let common::BrowserScript {
        mut child,
        mut stdin,
        mut lines,
    } = common::browser_script(&python, "traffic.py", &common::dashboard_args(&d, &shots));
    let mut done = false;
    let mut loads = Some(loads);
    let run = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            match line.as_str() {
                "stop load" => {
                    stop.store(true, Ordering::SeqCst);
                    for l in loads.take().unwrap() {
                        l.await.unwrap();
                    }
                    stdin.write_all(b"ok\n").await.unwrap();
                }
                "done" => done = true,
                other => println!("browser: {other}"),
            }
        }
        (child.wait().await.unwrap(), done)
    };
    common::browser_ran(run, DEADLINE, &shots, &["dashboard-traffic.png"]).await;
    d.stop().await;
}
