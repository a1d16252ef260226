//! Logging and output can never take the router down: the real binary with a closed stderr, a
//! closed stdout, and stderr on a pipe.
#![allow(clippy::disallowed_types)] // synchronous tests polling real processes: no tokio clock here

mod common;

use std::io::{Read as _, Write as _};
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::Duration;

use common::{eventually, service_dir};
use hero_socket::{ConnectOutcome, connect_probe};
use rustix::pipe::{PipeFlags, pipe_with};

const BIN: &str = env!("CARGO_BIN_EXE_hero_router");

/// A pipe whose reading end is already closed: every write to it fails with EPIPE.
fn broken_pipe() -> OwnedFd {
    let (reader, writer) = pipe_with(PipeFlags::CLOEXEC).unwrap();
    drop(reader);
    writer
}

/// Kills the child if the test fails before it stops it.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `serve --no-tcp` on `root` with the given stderr, once its rpc.sock accepts.
fn serve(root: &Path, stderr: impl Into<Stdio>) -> KillOnDrop {
    let child = Command::new(BIN)
        .args(["serve", "--no-tcp", "--log-level", "info", "--socket-dir"])
        .arg(root)
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let rpc = root.join("hero_router/rpc.sock");
    assert!(
        eventually(Duration::from_secs(20), || connect_probe(&rpc)
            == ConnectOutcome::Connected
            || child.0.try_wait().unwrap().is_some()),
        "router did not start"
    );
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "the router exited at start-up: {:?}",
        child.0.try_wait()
    );
    child
}

/// SIGTERM, then the exit status, which must come within `deadline`.
fn terminate(child: &mut KillOnDrop, deadline: Duration) -> ExitStatus {
    let pid = rustix::process::Pid::from_raw(child.0.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let mut status = None;
    eventually(deadline, || {
        status = child.0.try_wait().unwrap();
        status.is_some()
    });
    status.unwrap_or_else(|| panic!("the router ignored SIGTERM for {deadline:?}"))
}

/// A CLI command against `root`, with the given stdout.
fn cli(root: &Path, args: &[&str], stdout: impl Into<Stdio>) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--socket-dir")
        .arg(root)
        .env_remove("RUST_LOG")
        .stdout(stdout)
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

/// One HTTP/1.1 exchange on the router's rpc.sock; returns the status and the body.
fn http(root: &Path, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = UnixStream::connect(root.join("hero_router/rpc.sock")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a response head");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    (status, if chunked { unchunk(body) } else { body.into() })
}

fn unchunk(mut rest: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
}

/// The value of the unlabelled counter `name` in a `/metrics` text.
fn counter(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in:\n{metrics}"))
        .parse()
        .unwrap()
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[test]
fn a_closed_stderr_neither_freezes_nor_kills_the_daemon() {
    let root = tempfile::tempdir().unwrap();
    let mut router = serve(root.path(), broken_pipe());

    // A service that appears after start-up: the scanner logs its state change, and must live
    // through that.
    let svc = service_dir(root.path(), "svc");
    let _listener = UnixListener::bind(svc.join("rpc.sock")).unwrap();
    let (status, body) = http(
        root.path(),
        "POST",
        "/rpc",
        r#"{"jsonrpc":"2.0","id":1,"method":"router.scan"}"#,
    );
    let scan = json(&body);
    assert_eq!(status, 200, "{body}");
    assert!(scan["error"].is_null(), "router.scan failed: {body}");
    assert!(scan["result"]["live"].as_u64() >= Some(1), "{body}");

    let list = cli(root.path(), &["list", "--json"], Stdio::piped());
    assert!(list.status.success(), "{list:?}");
    let services = json(&String::from_utf8(list.stdout).unwrap());
    assert!(
        services
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "svc" && s["status"] == "healthy"),
        "the new service is routable: {services}"
    );
    let health = cli(root.path(), &["health"], Stdio::piped());
    let health = json(&String::from_utf8(health.stdout).unwrap());
    assert_eq!(
        (health["status"].as_str(), health["ready"].as_bool()),
        (Some("ok"), Some(true)),
        "{health}"
    );

    let (status, metrics) = http(root.path(), "GET", "/metrics", "");
    assert_eq!(status, 200, "{metrics}");
    let dropped = counter(&metrics, "hero_router_log_lines_dropped_total");
    assert!(dropped > 0, "the lost log lines are counted:\n{metrics}");

    assert!(
        router.0.try_wait().unwrap().is_none(),
        "the router still runs"
    );
    let status = terminate(&mut router, Duration::from_secs(15));
    assert_eq!(
        status.code(),
        Some(0),
        "SIGTERM ends it cleanly: {status:?}"
    );
    assert!(!root.path().join("hero_router/rpc.sock").exists());
}

#[test]
fn a_log_reader_that_never_reads_slows_no_request() {
    // A pipe that stays open and is never read: once its buffer is full, every write to it
    // blocks. The access log's writer waits there; requests must not.
    let (reader, writer) = pipe_with(PipeFlags::CLOEXEC).unwrap();
    let root = tempfile::tempdir().unwrap();
    let router = serve(root.path(), writer);
    let mut s = UnixStream::connect(root.path().join("hero_router/rpc.sock")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // Far more lines than the pipe (64 KiB) and the log's queue hold together.
    const BATCH: usize = 200;
    const ROUNDS: usize = 60;
    let request = "GET /health HTTP/1.1\r\nhost: localhost\r\n\r\n".repeat(BATCH);
    let mut chunk = vec![0u8; 1 << 16];
    for round in 0..ROUNDS {
        s.write_all(request.as_bytes()).unwrap();
        let mut answers = 0;
        let mut tail = Vec::new();
        while answers < BATCH {
            let n = s
                .read(&mut chunk)
                .unwrap_or_else(|e| panic!("round {round}: the router stopped answering: {e}"));
            assert!(n > 0, "round {round}: the router closed the connection");
            tail.extend_from_slice(&chunk[..n]);
            answers += tail.windows(12).filter(|w| w == b"HTTP/1.1 200").count();
            // Keep a partial status line for the next read.
            let keep = tail.len().min(11);
            tail.drain(..tail.len() - keep);
        }
    }
    let (status, metrics) = http(root.path(), "GET", "/metrics", "");
    assert_eq!(status, 200, "{metrics}");
    let dropped = counter(&metrics, "hero_router_access_log_dropped_total");
    assert!(
        dropped > 0,
        "the lines the writer could not take are counted:\n{metrics}"
    );
    let mut router = router;
    assert!(
        router.0.try_wait().unwrap().is_none(),
        "the router still runs"
    );
    drop(reader);
}

#[test]
fn cli_output_to_a_closed_pipe_ends_quietly_with_the_usual_status() {
    let root = tempfile::tempdir().unwrap();
    let mut router = serve(root.path(), Stdio::null());

    for args in [
        &["list", "--json"][..],
        &["list"],
        &["health"],
        &["scan", "--json"],
        &["scan"],
    ] {
        let out = cli(root.path(), args, broken_pipe());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(err.is_empty(), "{args:?} ends quietly, but said: {err}");
    }
    // A command that fails still fails, with its one line.
    let out = cli(root.path(), &["call", "nosuch", "x"], broken_pipe());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("no such service") && !err.contains("panicked"),
        "{err}"
    );

    assert_eq!(
        terminate(&mut router, Duration::from_secs(15)).code(),
        Some(0)
    );
}

#[test]
fn logs_to_a_pipe_carry_no_colour_codes() {
    let root = tempfile::tempdir().unwrap();
    let mut router = serve(root.path(), Stdio::piped());
    let svc = service_dir(root.path(), "svc");
    let _listener = UnixListener::bind(svc.join("rpc.sock")).unwrap();
    let (status, body) = http(
        root.path(),
        "POST",
        "/rpc",
        r#"{"jsonrpc":"2.0","id":1,"method":"router.scan"}"#,
    );
    assert_eq!(status, 200, "{body}");

    assert_eq!(
        terminate(&mut router, Duration::from_secs(15)).code(),
        Some(0)
    );
    let mut log = String::new();
    router
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(
        log.contains("hero_router starting") && log.contains("socket state changed"),
        "{log}"
    );
    assert!(
        !log.contains('\u{1b}'),
        "stderr is not a terminal, so no escape codes: {log:?}"
    );
}
