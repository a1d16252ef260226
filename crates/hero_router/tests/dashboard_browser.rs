//! The dashboard in a real browser: headless Chromium (Debian's `chromium`) driven by pip
//! `playwright` through `tests/browser/dashboard.py`, against the daemon in-process on TCP.
//!
//! The script loads the page, sees the table, sees a service appear live when this test binds
//! it, opens its page, calls a method through the "try it" form, sees the service go unhealthy
//! when this test kills it, reconnects by itself when the router restarts, and saves screenshots under `target/tmp/dashboard-browser/`.
//!
//! Where the browser or playwright is missing the test says so and passes, unless
//! `HERO_REQUIRE_BROWSER=1` (set by `.ci/run`, which installs both): then it fails.
//! `HERO_BROWSER_PYTHON` names the Python with playwright (default `python3`),
//! `HERO_CHROMIUM` the browser (default `/usr/bin/chromium`).

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{dead_socket, start_daemon};
use hero_example_service::{ServiceConfig, Spec, spawn};
use tokio::io::AsyncWriteExt;

/// The whole browser run; it fails rather than hangs.
const DEADLINE: Duration = Duration::from_secs(180);

fn unix_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_works_in_headless_chromium() {
    let Some(python) = common::browser_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Services named like what every JavaScript object has: the page must not take them for
    // its own data (they are unhealthy: a plain file where the socket would be).
    for name in ["constructor", "toString"] {
        std::fs::write(common::service_dir(dir.path(), name).join("rpc.sock"), b"").unwrap();
    }
    let d = start_daemon(common::serve_config(dir.path(), &[])).await;
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-browser");
    let common::BrowserScript {
        mut child,
        mut stdin,
        mut lines,
    } = common::browser_script(
        &python,
        "dashboard.py",
        &[
            common::dashboard_args(&d, &shots),
            vec![format!("http://{}", d.tcp)],
        ]
        .concat(),
    );
    let mut svc = None;
    let mut done = false;
    let mut d = Some(d);
    let run = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            match line.as_str() {
                "start calc" => {
                    let cfg = ServiceConfig {
                        spec: Spec::Rich,
                        ..ServiceConfig::new(dir.path(), "calc")
                    };
                    svc = Some(spawn(cfg).await.unwrap());
                    let reply = format!("ok {}\n", unix_ms());
                    stdin.write_all(reply.as_bytes()).await.unwrap();
                }
                "kill calc" => {
                    // A crash: the server is gone, its socket file stays and refuses.
                    let s: hero_example_service::RunningService = svc.take().unwrap();
                    let path = s.path().to_path_buf();
                    s.shutdown().await;
                    dead_socket(&path);
                    stdin.write_all(b"ok\n").await.unwrap();
                }
                "restart router" => {
                    // Same root, same ports (the ones the OS gave the first instance).
                    let old = d.take().unwrap();
                    let listen = old.tcp.to_string();
                    let admin = old.admin_tcp.unwrap().to_string();
                    old.stop().await;
                    let cfg = common::serve_config(
                        dir.path(),
                        &["--listen", &listen, "--admin-listen", &admin],
                    );
                    d = Some(start_daemon(cfg).await);
                    stdin.write_all(b"ok\n").await.unwrap();
                }
                "done" => done = true,
                other => println!("browser: {other}"),
            }
        }
        (child.wait().await.unwrap(), done)
    };
    let shot_names = [
        "dashboard-table.png",
        "dashboard-service.png",
        "dashboard-narrow.png",
    ];
    common::browser_ran(run, DEADLINE, &shots, &shot_names).await;
    d.unwrap().stop().await;
}
