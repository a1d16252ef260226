//! A core task that dies makes the router say so and stop, rather than route from a frozen
//! table. Its own test binary: it installs a process-wide tracing subscriber that breaks the
//! scanner the way a failing log writer used to (a panic inside a log call).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use common::{json, request, serve_config, start_daemon, uds};
use tokio::sync::Notify;
use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt as _};

/// The scanner's log line for a socket state change: this layer panics on it.
const SCANNER_LINE: &str = "socket state changed";
/// The start of the supervisor's error line: this layer holds it until the test releases it,
/// so the test can look at the router between the failure and the shutdown.
const SUPERVISOR_LINE: &str = "a core task failed";

/// The supervisor reached its error line.
static REACHED: Notify = Notify::const_new();
/// The test has looked; the supervisor may go on.
static RELEASED: (Mutex<bool>, Condvar) = (Mutex::new(false), Condvar::new());
static INSTALLED: AtomicBool = AtomicBool::new(false);

struct Sabotage;

/// Lets the held supervisor go on when dropped, also when an assertion fails first.
struct Release;

impl Drop for Release {
    fn drop(&mut self) {
        let (lock, cv) = &RELEASED;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cv.notify_all();
    }
}

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for Sabotage {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut msg = Message(String::new());
        event.record(&mut msg);
        if msg.0 == SCANNER_LINE {
            panic!("log writer failed");
        }
        if msg.0.starts_with(SUPERVISOR_LINE) {
            REACHED.notify_one();
            let (lock, cv) = &RELEASED;
            let released = lock.lock().unwrap();
            // Bounded, so a broken test cannot hang the run.
            let _ = cv
                .wait_timeout_while(released, Duration::from_secs(30), |r| !*r)
                .unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_panicking_scanner_degrades_health_and_stops_the_router_with_an_error() {
    assert!(
        !INSTALLED.swap(true, Ordering::SeqCst),
        "one test per binary"
    );
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_test_writer())
        .with(Sabotage);
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let root = tempfile::tempdir().unwrap();
    // The router's own sockets are new to the first scan: it logs their state change and dies.
    let d = start_daemon(serve_config(root.path(), &[])).await;
    tokio::time::timeout(Duration::from_secs(20), REACHED.notified())
        .await
        .expect("the supervisor never reported the dead scanner");
    let release = Release;

    let health = r#"{"jsonrpc":"2.0","id":1,"method":"router.health"}"#;
    let (status, _, body) = uds(&d.rpc, request("POST", "/rpc", health)).await;
    assert_eq!(status, 200);
    let v = json(std::str::from_utf8(&body).unwrap());
    let result = &v["result"];
    assert_eq!(result["status"], "degraded", "{v}");
    assert_eq!(result["ready"], false, "{v}");
    let reason = result["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("scanner") && reason.contains("log writer failed"),
        "the reason names the task and its panic: {v}"
    );
    let (_, _, body) = uds(&d.rpc, request("GET", "/health", "")).await;
    let v = json(std::str::from_utf8(&body).unwrap());
    assert_eq!(
        (v["status"].as_str(), v["ready"].as_bool()),
        (Some("degraded"), Some(false)),
        "{v}"
    );

    drop(release);
    let result = tokio::time::timeout(Duration::from_secs(20), d.task)
        .await
        .expect("the router shuts down on its own")
        .unwrap();
    let err = result.expect_err("run_with_scanner reports the failure");
    assert!(
        err.to_string().contains("the scanner task panicked"),
        "{err:#}"
    );
    assert!(
        !d.rpc.exists() && !d.admin.exists(),
        "an orderly shutdown: own sockets removed"
    );
}
