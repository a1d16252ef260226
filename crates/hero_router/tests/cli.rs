//! The real binary: `scan`, exit codes, `serve` start-up, second-instance refusal, SIGTERM.
#![allow(clippy::disallowed_types)] // synchronous tests polling real processes: no tokio clock here

mod common;

use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{dead_socket, eventually, service_dir};
use hero_socket::{ConnectOutcome, connect_probe};

const BIN: &str = env!("CARGO_BIN_EXE_hero_router");

fn run(args: &[&str], root: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--socket-dir")
        .arg(root)
        // No access file or node config of the machine's user leaks in.
        .env("HOME", root)
        .output()
        .unwrap()
}

fn start_serve(root: &Path) -> Child {
    let child = common::serve_command(root)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rpc = root.join("hero_router/rpc.sock");
    assert!(
        eventually(Duration::from_secs(20), || connect_probe(&rpc)
            == ConnectOutcome::Connected),
        "router did not start"
    );
    child
}

fn stop(mut child: Child) -> Output {
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let _ = child.stdin.take();
    child.wait_with_output().unwrap()
}

#[test]
fn scan_prints_a_readable_table_and_a_stable_json_shape() {
    let root = tempfile::tempdir().unwrap();
    let svc = service_dir(root.path(), "alpha");
    let _live = UnixListener::bind(svc.join("rpc.sock")).unwrap();
    dead_socket(&svc.join("admin.sock"));
    std::fs::create_dir(root.path().join("not valid")).unwrap();

    let out = run(&["scan"], root.path());
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("SERVICE") && text.contains("STATE") && text.contains("WHY"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("alpha") && l.contains("rpc") && l.contains("live")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("admin") && l.contains("refused") && l.contains("ECONNREFUSED")),
        "{text}"
    );
    assert!(
        text.contains("ignored:") && text.contains("invalid service name"),
        "{text}"
    );

    let out = run(&["scan", "--json"], root.path());
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["ignored", "reaped", "root", "services"]);
    assert_eq!(v["root"], root.path().display().to_string());
    let s = &v["services"][0];
    assert_eq!(
        (s["name"].as_str(), s["status"].as_str()),
        (Some("alpha"), Some("healthy"))
    );
    for sock in s["sockets"].as_array().unwrap() {
        for key in ["kind", "path", "state", "since_unix_ms"] {
            assert!(sock.get(key).is_some(), "{key} missing in {sock}");
        }
    }
    assert_eq!(v["ignored"][0]["reason"], "invalid service name");
    assert_eq!(v["reaped"], serde_json::json!([]));
    assert!(
        svc.join("admin.sock").exists(),
        "scan without --reap is read-only"
    );
}

#[test]
fn scan_reap_removes_only_old_stale_sockets() {
    let root = tempfile::tempdir().unwrap();
    let svc = service_dir(root.path(), "alpha");
    let _live = UnixListener::bind(svc.join("rpc.sock")).unwrap();
    let dead = svc.join("admin.sock");
    dead_socket(&dead);

    // Within the default 10 s grace: kept, and both forms say why.
    let out = run(
        &["scan", "--json", "--reap", "--stale-after", "2"],
        root.path(),
    );
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["reaped"], serde_json::json!([]));
    assert!(dead.exists());
    let sockets = v["services"][0]["sockets"].as_array().unwrap();
    let kept: Vec<_> = sockets
        .iter()
        .map(|s| (s["kind"].as_str().unwrap(), s.get("reap_skipped").cloned()))
        .collect();
    assert_eq!(
        kept,
        [("admin", Some(serde_json::json!("grace"))), ("rpc", None)],
        "only the refused socket has a reason: {sockets:?}"
    );
    let out = run(&["scan", "--reap", "--stale-after", "2"], root.path());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.lines().any(|l| l.contains("admin")
            && l.contains("refused")
            && l.contains("kept: younger than --reap-grace")),
        "{text}"
    );
    // A read-only scan keeps everything and does not say so on every row.
    let out = run(&["scan"], root.path());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains("kept:"), "{text}");

    let out = run(
        &[
            "scan",
            "--json",
            "--reap",
            "--stale-after",
            "2",
            "--reap-grace",
            "0s",
        ],
        root.path(),
    );
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["reaped"], serde_json::json!([dead.display().to_string()]));
    assert!(!dead.exists());
    assert_eq!(
        connect_probe(&svc.join("rpc.sock")),
        ConnectOutcome::Connected
    );
}

#[test]
fn a_busy_tcp_port_fails_cleanly() {
    let root = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run(
        &["serve", "--listen", &addr, "--admin-listen", "127.0.0.1:0"],
        root.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.lines().last().unwrap_or_default().contains(&addr),
        "{err}"
    );
    assert!(
        !root.path().join("hero_router/rpc.sock").exists(),
        "no own socket left behind"
    );
}

#[test]
fn exit_codes() {
    let root = tempfile::tempdir().unwrap();
    let bad = run(&["serve", "--scan-interval", "often"], root.path());
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("often"));
    // A log filter that does not parse is a bad flag value too.
    let bad = run(&["serve", "--no-tcp", "--log-level", "[[nope"], root.path());
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--log-level"));

    let out = run(&["list"], root.path());
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("no router running at") && err.contains("hero_router/rpc.sock"),
        "{err}"
    );

    // A missing root is created (0755), and scanned empty.
    let missing = root.path().join("nope");
    let out = Command::new(BIN)
        .args(["scan", "--json", "--socket-dir"])
        .arg(&missing)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(hero_socket::stat_nofollow(&missing).unwrap().mode, 0o755);
    // A root that is a file is a runtime error.
    let file = root.path().join("file");
    std::fs::write(&file, b"").unwrap();
    let out = Command::new(BIN)
        .args(["scan", "--socket-dir"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));

    // `serve` on a root that is a file, and on a root whose `hero_router` is a file: one line
    // each, naming what is wrong, the OS error said once.
    let out = Command::new(BIN)
        .args(["serve", "--no-tcp", "--socket-dir"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.lines().count() == 1 && err.contains("is not a directory"),
        "{err}"
    );
    let blocked = root.path().join("blocked");
    std::fs::create_dir(&blocked).unwrap();
    std::fs::write(blocked.join("hero_router"), b"").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--no-tcp", "--socket-dir"])
        .arg(&blocked)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!(
            "{} is a symlink or not a directory",
            blocked.join("hero_router").display()
        )),
        "names the file in the way: {err}"
    );
    assert!(err.matches("os error").count() <= 1, "said once: {err}");
}

/// SIGHUP (the terminal of `make run` closed) is a graceful shutdown like SIGTERM: exit 0,
/// own sockets removed. A second signal while in-flight requests drain stops the router at
/// once (exit 1) instead of waiting out `--shutdown-grace`.
#[test]
fn sighup_stops_gracefully_and_a_second_signal_stops_at_once() {
    let signal = |child: &Child, sig| {
        let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
        rustix::process::kill_process(pid, sig).unwrap();
    };
    let root = tempfile::tempdir().unwrap();
    let router = start_serve(root.path());
    signal(&router, rustix::process::Signal::HUP);
    let out = router.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(
        log.contains("shutdown requested") && log.contains("SIGHUP"),
        "{log}"
    );
    assert!(!root.path().join("hero_router/rpc.sock").exists());

    // A service that takes a request and never answers: the drain would wait a minute. It
    // says when the call arrived (the scanner's probes connect and send nothing).
    let svc = common::service_dir(root.path(), "mute");
    let mute = UnixListener::bind(svc.join("rpc.sock")).unwrap();
    let (asked, asked_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in mute.incoming().flatten() {
            let asked = asked.clone();
            let mut reader = c.try_clone().unwrap();
            // The call, not the catalog's fetch of the spec: its method is `m`.
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                let mut chunk = [0u8; 4096];
                while let Ok(n @ 1..) = std::io::Read::read(&mut reader, &mut chunk) {
                    seen.extend_from_slice(&chunk[..n]);
                    if seen.windows(12).any(|w| w == br#""method":"m""#) {
                        let _ = asked.send(());
                        return;
                    }
                }
            });
            held.push(c);
        }
    });
    let mut router = common::serve_command(root.path())
        .args(["--shutdown-grace", "60s", "--upstream-timeout", "60s"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = common::stderr_lines(&mut router);
    let rpc = root.path().join("hero_router/rpc.sock");
    assert!(
        eventually(Duration::from_secs(20), || connect_probe(&rpc)
            == ConnectOutcome::Connected),
        "router did not start"
    );
    let caller = Command::new(BIN)
        .args(["call", "mute", "m", "--timeout", "60s", "--socket-dir"])
        .arg(root.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    asked_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the call reached the service");
    let wait_line = |pred: &dyn Fn(&str) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = lines.recv_timeout(left).expect("no such line");
            if pred(&line) {
                return;
            }
        }
    };
    signal(&router, rustix::process::Signal::TERM);
    wait_line(&|l| l.contains("shutdown requested"));
    // While it drains, the CLI says it is stopping, not that no router runs.
    assert!(
        eventually(Duration::from_secs(20), || {
            let out = run(&["health"], root.path());
            String::from_utf8_lossy(&out.stderr).contains("it is shutting down or starting")
        }),
        "{}",
        String::from_utf8_lossy(&run(&["health"], root.path()).stderr)
    );
    signal(&router, rustix::process::Signal::TERM);
    wait_line(&|l| l.contains("second signal while draining"));
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = router.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "still draining after a second signal"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(1));
    // The call the router dropped is the router's doing, not the service's, in the CLI's words.
    let out = caller.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("closed the connection without answering (it may be shutting down"),
        "{err}"
    );
}

#[test]
fn serve_refuses_a_second_instance_and_cleans_up_on_sigterm() {
    let root = tempfile::tempdir().unwrap();
    let first = start_serve(root.path());
    let rpc = root.path().join("hero_router/rpc.sock");
    let admin = root.path().join("hero_router/admin.sock");
    let mode = hero_socket::stat_nofollow(&rpc).unwrap().mode;
    assert_eq!(
        mode & 0o007,
        0,
        "own sockets are 0660 or stricter, got {mode:o}"
    );

    let health = run(&["health"], root.path());
    assert!(
        health.status.success(),
        "{}",
        String::from_utf8_lossy(&health.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&health.stdout).unwrap();
    assert_eq!(v["status"], "ok");
    let list = run(&["list", "--json"], root.path());
    assert!(list.status.success());
    let v: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "hero_router"),
        "{v}"
    );

    let second = Command::new(BIN)
        .args(["serve", "--no-tcp", "--socket-dir"])
        .arg(root.path())
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1));
    let err = String::from_utf8(second.stderr).unwrap();
    let line = err.lines().last().unwrap_or_default();
    assert!(
        line.contains(&root.path().display().to_string())
            && line.contains(&rpc.display().to_string()),
        "{err}"
    );
    assert_eq!(
        connect_probe(&rpc),
        ConnectOutcome::Connected,
        "the first instance is untouched"
    );

    let out = stop(first);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !rpc.exists() && !admin.exists(),
        "own sockets removed on shutdown"
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("hero_router starting") && log.contains("stale_after"),
        "{log}"
    );
}

#[test]
fn call_and_spec_through_the_running_router() {
    let root = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _svc = rt
        .block_on(hero_example_service::spawn(
            hero_example_service::ServiceConfig::new(root.path(), "calc"),
        ))
        .unwrap();
    let router = start_serve(root.path());

    let out = run(&["call", "calc", "add", "[2, 40]"], root.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), "42");
    let out = run(&["call", "calc", "fail"], root.path());
    assert_eq!(out.status.code(), Some(1), "a JSON-RPC error exits 1");
    assert!(String::from_utf8_lossy(&out.stderr).contains("requested failure"));
    let out = run(&["call", "nosuch", "x"], root.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such service"));
    // PARAMS_JSON that is not JSON is a usage error, found before anything is sent.
    let out = run(&["call", "calc", "add", "{not json"], root.path());
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("PARAMS_JSON"));
    let out = run(&["spec", "calc"], root.path());
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["info"]["title"], "Hero example service");
    let out = run(&["list"], root.path());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.lines().any(|l| l.starts_with("calc")
            && l.contains("healthy")
            && l.contains("rpc=live")
            && l.contains("Hero example service")
            && l.contains(env!("CARGO_PKG_VERSION"))
            && l.contains("5 methods")
            && l.contains("spec=ok")),
        "{text}"
    );
    assert!(stop(router).status.success());
}

/// `call` sends PARAMS_JSON as written and prints the result with every number as the
/// service wrote it (an integer wider than 64 bits, a long decimal, `1e2`), as `/rpc` passes
/// them on.
#[test]
fn call_keeps_every_number_as_written() {
    let root = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _in_rt = rt.enter();
    let wide = common::raw::Upstream::bind(root.path(), "wide", |_| {
        common::raw::Reply::Send(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 102\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"big\":12345678901234567890123,\"e\":1e2,\"dec\":0.10000000000000000555}}",
        )
    });
    let router = start_serve(root.path());
    let params = "[12345678901234567890123, 0.1000000000000000055511151231257827, 1e2]";
    let out = run(&["call", "wide", "m", params], root.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "{\n  \"big\": 12345678901234567890123,\n  \"e\": 1e2,\n  \"dec\": 0.10000000000000000555\n}\n"
    );
    let seen = wide.requests().concat();
    assert!(seen.contains(&format!("\"params\":{params}")), "{seen}");
    assert!(stop(router).status.success());
}

/// A service's text reaches the operator's terminal inert: `call` prints a result whose
/// strings hold DEL, a C1 CSI and a right-to-left override (JSON lets them stand raw) as
/// `\uXXXX` escapes, the same JSON value.
#[test]
fn call_prints_a_services_control_characters_as_json_escapes() {
    let root = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _in_rt = rt.enter();
    let _svc = common::raw::Upstream::bind(root.path(), "loud", |_| {
        common::raw::Reply::Send(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 54\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"t\u{202e}\":\"a\u{7f}b\u{9b}31mc\"}}"
                .as_bytes(),
        )
    });
    let router = start_serve(root.path());
    let out = run(&["call", "loud", "m"], root.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text, "{\n  \"t\\u202e\": \"a\\u007fb\\u009b31mc\"\n}\n",
        "{text:?}"
    );
    let printed: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(printed["t\u{202e}"], "a\u{7f}b\u{9b}31mc");
    assert!(stop(router).status.success());
}

/// When the router does not answer, the CLI says which router and what happened in its own
/// terms: its own deadline (not the router's --upstream-timeout), the router's refusal in the
/// router's words, a socket it may not use.
#[test]
fn the_cli_says_why_the_router_did_not_answer() {
    let root = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _in_rt = rt.enter();
    let sock = root.path().join("hero_router/rpc.sock");
    // A "router" that refuses every request the way the router refuses a head over its limit.
    let refusing = common::raw::Upstream::bind(root.path(), "hero_router", |_| {
        common::raw::Reply::SendAndClose(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: application/json\r\nContent-Length: 82\r\n\r\n{\"error\":\"request head is larger than the limit of 100 bytes (--max-header-size)\"}",
        )
    });
    let out = run(&["health"], root.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "the router at {} refused the call",
            sock.display()
        )) && err.contains("larger than the limit of 100 bytes (--max-header-size) (HTTP 431)"),
        "{err}"
    );
    drop(refusing);
    std::fs::remove_file(&sock).unwrap();
    // One that takes the call and never answers: the CLI's own limit.
    let _hung = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let out = run(
        &["call", "--timeout", "300ms", "calc", "add", "[1, 2]"],
        root.path(),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "no answer from the router at {} within 300ms",
            sock.display()
        )) && err.contains("call --timeout"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    // A socket the caller may not write to is not "no router running".
    if common::is_root() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600)).unwrap();
        common::give_to_nobody(root.path());
        std::os::unix::fs::lchown(&sock, Some(0), Some(0)).unwrap();
        let bin = common::nobody_bin();
        let out = bin
            .command()
            .args(["health", "--socket-dir"])
            .arg(root.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("cannot connect to the router at")
                && err.contains("Permission denied")
                && !err.contains("no router running"),
            "{err}"
        );
    }
}

/// `scan` of a root it cannot read, or of a root that is a symlink to nothing: one line that
/// says so, in the command's words (not the daemon's "keeping the table as it was" warning
/// too, not "File exists").
#[test]
fn scan_of_a_root_it_cannot_use_says_why_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let dangling = dir.path().join("dangling");
    std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
    let out = run(&["scan"], &dangling);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("is a symlink to") && err.contains("does not exist"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    if common::is_root() {
        use std::os::unix::fs::PermissionsExt;
        let root = dir.path().join("closed");
        std::fs::create_dir(&root).unwrap();
        common::give_to_nobody(dir.path());
        std::os::unix::fs::lchown(&root, Some(0), Some(0)).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700)).unwrap();
        let bin = common::nobody_bin();
        let out = bin
            .command()
            .args(["scan", "--socket-dir"])
            .arg(&root)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.starts_with("hero_router: cannot read the socket root"),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

#[test]
fn markdown_and_html_render_the_running_routers_specs() {
    let root = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let spawn = |name: &str, spec| {
        let cfg = hero_example_service::ServiceConfig {
            spec,
            ..hero_example_service::ServiceConfig::new(root.path(), name)
        };
        rt.block_on(hero_example_service::spawn(cfg)).unwrap()
    };
    let _calc = spawn("calc", hero_example_service::Spec::Rich);
    let _none = spawn("nospec", hero_example_service::Spec::None);
    // A service whose page would be the index's file.
    let _index = spawn("index", hero_example_service::Spec::Rich);
    let router = start_serve(root.path());
    let fetched = || {
        let out = run(&["list", "--json"], root.path());
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let state = |n: &str| {
            v.as_array()
                .into_iter()
                .flatten()
                .find(|s| s["name"] == n)
                .map(|s| s["spec"]["fetched_unix_ms"].is_u64())
        };
        ["calc", "nospec", "index"]
            .iter()
            .all(|n| state(n) == Some(true))
    };
    assert!(
        eventually(Duration::from_secs(20), fetched),
        "catalog filled"
    );

    let out = run(&["markdown", "calc"], root.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let md = String::from_utf8(out.stdout).unwrap();
    assert!(md.starts_with("# Hero example service"), "{md}");
    assert!(md.contains("## `add`") && md.contains("calc.add"), "{md}");

    let out = run(&["html", "calc"], root.path());
    assert!(out.status.success());
    let html = String::from_utf8(out.stdout).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("calc.add"));
    assert!(!html.contains("<script"), "no scripts");

    // --out: one file per service with a spec, and an index linking them.
    let dir = root.path().join("site");
    let out = run(&["html", "--out", dir.to_str().unwrap()], root.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = String::from_utf8(out.stdout).unwrap();
    for file in [
        "calc.html",
        "hero_router.html",
        "index.html",
        "index.service.html",
    ] {
        assert!(dir.join(file).is_file(), "{file}: {listed}");
        assert!(listed.contains(file), "{listed}");
    }
    assert_eq!(listed.lines().count(), 4, "each file once: {listed}");
    assert!(!dir.join("nospec.html").exists(), "no spec, no page");
    let index = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(index.contains("href=\"calc.html\""), "{index}");
    assert!(index.contains("href=\"index.service.html\""), "{index}");
    assert!(index.contains("<title>API docs"), "{index}");
    let page = std::fs::read_to_string(dir.join("index.service.html")).unwrap();
    assert!(page.contains("index.add"), "the service's page");
    // A written page links nothing of the router's `/docs/` (it would not resolve beside
    // the files): it names the commands that write the clients.
    let calc = std::fs::read_to_string(dir.join("calc.html")).unwrap();
    assert!(
        !calc.contains("href=\"/docs/") && !calc.contains("href=\"&#x2f;docs"),
        "{calc}"
    );
    assert!(
        calc.contains("<code>hero_router client python calc</code>"),
        "{calc}"
    );
    let dir = root.path().join("md");
    let out = run(
        &["markdown", "calc", "calc", "--out", dir.to_str().unwrap()],
        root.path(),
    );
    assert!(out.status.success());
    assert!(dir.join("calc.md").is_file() && dir.join("index.md").is_file());
    let listed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        listed.lines().count(),
        2,
        "a service named twice is written once: {listed}"
    );
    let index = std::fs::read_to_string(dir.join("index.md")).unwrap();
    assert_eq!(index.matches("(calc.md)").count(), 1, "{index}");
    let calc = std::fs::read_to_string(dir.join("calc.md")).unwrap();
    assert!(!calc.contains("](/docs/"), "{calc}");
    assert!(
        calc.contains("- Clients: `hero_router client python calc`"),
        "{calc}"
    );
    assert!(!dir.join("hero_router.md").exists(), "only what was asked");

    let out = run(&["markdown", "nosuch"], root.path());
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no such service: nosuch (`hero_router list` shows"),
        "{err}"
    );
    let out = run(&["html", "nospec"], root.path());
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("has no spec") && err.lines().count() == 1,
        "{err}"
    );
    assert!(stop(router).status.success());
}

#[test]
fn out_files_replace_a_symlink_and_never_write_through_it() {
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    std::fs::write(&victim, "not yours\n").unwrap();
    let made = outside.path().join("made-by-the-index");
    let dir = root.path().join("site");
    std::fs::create_dir(&dir).unwrap();
    // At a page's name, at the index's name (dangling: writing through it would create a file
    // outside), and at names a temporary file might have.
    std::os::unix::fs::symlink(&victim, dir.join("hero_router.md")).unwrap();
    std::os::unix::fs::symlink(&made, dir.join("index.md")).unwrap();
    for name in [".hero_router.md.tmp", "hero_router.md.tmp", ".index.md.tmp"] {
        std::os::unix::fs::symlink(&victim, dir.join(name)).unwrap();
    }
    let router = start_serve(root.path());
    let out = run(
        &["markdown", "hero_router", "--out", dir.to_str().unwrap()],
        root.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let victim_now = std::fs::read_to_string(&victim).unwrap();
    assert!(victim_now == "not yours\n", "written through the link");
    assert!(!made.exists(), "nothing created outside --out");
    for page in ["hero_router.md", "index.md"] {
        let meta = std::fs::symlink_metadata(dir.join(page)).unwrap();
        assert!(meta.is_file(), "{page} is a regular file now");
    }
    let page = std::fs::read_to_string(dir.join("hero_router.md")).unwrap();
    assert!(page.starts_with("# "), "{page}");
    assert!(stop(router).status.success());
}

#[test]
fn running_out_of_file_descriptors_never_stops_the_accept_loop() {
    let root = tempfile::tempdir().unwrap();
    let log = root.path().join("router.log");
    // A router with very few file descriptors, and its log in a file.
    let script = format!(
        "ulimit -n 64; exec {BIN} serve --listen 127.0.0.1:0 --log-format json --socket-dir {} 2> {}",
        root.path().display(),
        log.display()
    );
    let started = Instant::now();
    let mut child = KillOnDrop(
        Command::new("sh")
            .arg("-c")
            .arg(&script)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let rpc = root.path().join("hero_router/rpc.sock");
    let up = eventually(Duration::from_secs(20), || {
        connect_probe(&rpc) == ConnectOutcome::Connected
    });
    assert!(
        up,
        "the router did not come up with 64 descriptors (exit: {:?}); its log:\n{}",
        child.0.try_wait(),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let addr = eventually_addr(&log);
    // Hold far more connections than the router has descriptors for.
    let mut held = Vec::new();
    for _ in 0..200 {
        if let Ok(s) = std::net::TcpStream::connect(addr) {
            held.push(s);
        }
    }
    // Wait until the loop has hit EMFILE (its log says so), then free everything.
    let hit = eventually(Duration::from_secs(20), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("accept failed")
    });
    assert!(hit, "EMFILE should have been hit and logged");
    drop(held);
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "the router must still be running"
    );
    // It serves again.
    assert!(
        eventually(Duration::from_secs(30), || run(&["health"], root.path())
            .status
            .success()),
        "serves again"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let errors = text.lines().filter(|l| l.contains("accept failed")).count();
    assert!(
        errors >= 1,
        "EMFILE should have been hit and logged:\n{text}"
    );
    let secs = started.elapsed().as_secs() + 1;
    assert!(
        errors as u64 <= secs,
        "accept errors are logged at most once a second: {errors} in {secs} s"
    );
    let pid = rustix::process::Pid::from_raw(child.0.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    assert!(child.0.wait().unwrap().success());
}

/// Kills the child if the test fails before it stops it.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads the TCP address from the router's JSON start-up line.
fn eventually_addr(log: &Path) -> std::net::SocketAddr {
    let mut found = None;
    assert!(eventually(Duration::from_secs(20), || {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        found = text
            .lines()
            .filter(|l| l.contains("hero_router starting"))
            .find_map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).ok()?;
                let tcp = v["tcp"]
                    .as_str()?
                    .trim_matches(|c| c == '[' || c == ']')
                    .to_owned();
                tcp.parse().ok()
            });
        found.is_some()
    }));
    found.unwrap()
}

/// An empty `RUST_LOG` counts as unset (the default level, `info`), and one that does not
/// parse is said, then the default applies: neither silences the log.
#[test]
fn an_empty_or_bad_rust_log_never_silences_the_log() {
    for (value, warns) in [("", false), ("hero_router=[[[", true)] {
        let root = tempfile::tempdir().unwrap();
        let mut child = KillOnDrop(
            common::serve_command(root.path())
                .env("RUST_LOG", value)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        // Every line up to the start-up line (the warning, if any, comes first).
        let lines = common::stderr_lines(&mut child.0);
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !seen
            .iter()
            .any(|l: &String| l.contains("hero_router starting"))
        {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => seen.push(line),
                Err(_) => panic!("RUST_LOG={value:?}: no start-up line in {seen:#?}"),
            }
        }
        let warned = seen.iter().any(|l| l.contains("RUST_LOG does not parse"));
        assert_eq!(warned, warns, "RUST_LOG={value:?}: {seen:#?}");
    }
}

/// What a service says reaches the terminal as text, never as control: a title with a
/// newline and an escape sequence stays on its own row of `list`, and an error message with
/// them stays `call`'s one stderr line.
#[test]
fn service_text_cannot_forge_rows_or_drive_the_terminal() {
    let root = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sock = service_dir(root.path(), "evil").join("rpc.sock");
    rt.block_on(async {
        let l = tokio::net::UnixListener::bind(&sock).unwrap();
        let app = axum::Router::new()
            .route(
                "/.well-known/heroservice.json",
                axum::routing::get(|| async {
                    r#"{"title":"evil\nfake-row healthy 9.9 99 methods\u001b[31mRED","version":"1\n2"}"#
                }),
            )
            .route(
                "/rpc",
                axum::routing::post(|body: String| async move {
                    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                    format!(
                        r#"{{"jsonrpc":"2.0","id":{},"error":{{"code":1,"message":"line one\nline two\u001b[31mred\u202e"}}}}"#,
                        v["id"]
                    )
                }),
            );
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    });
    let router = start_serve(root.path());
    let titled = || {
        let out = run(&["list", "--json"], root.path());
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v.as_array()
            .into_iter()
            .flatten()
            .any(|s| s["name"] == "evil" && s["title"].is_string())
    };
    assert!(eventually(Duration::from_secs(20), titled), "manifest read");
    let out = run(&["list"], root.path());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains('\u{1b}'), "{text:?}");
    assert!(!text.lines().any(|l| l.starts_with("fake-row")), "{text:?}");
    let row: Vec<&str> = text.lines().filter(|l| l.starts_with("evil")).collect();
    assert_eq!(row.len(), 1, "{text:?}");
    assert!(row[0].contains(r"evil\u{a}fake-row"), "{text:?}");
    let out = run(&["call", "evil", "x"], root.path());
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(
        !err.contains('\u{1b}') && !err.contains('\u{202e}'),
        "{err:?}"
    );
    assert!(err.contains(r"line one\u{a}line two"), "{err:?}");
    assert!(stop(router).status.success());
}

/// A relative `--socket-dir` is made absolute: every path the router shows can be used from
/// anywhere.
#[test]
fn a_relative_root_is_shown_absolute() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service_dir(&dir.path().join("rel"), "alpha");
    let _live = UnixListener::bind(svc.join("rpc.sock")).unwrap();
    let out = Command::new(BIN)
        .args(["scan", "--json", "--socket-dir", "rel"])
        .current_dir(dir.path())
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["root"], dir.path().join("rel").display().to_string());
    let path = v["services"][0]["sockets"][0]["path"].as_str().unwrap();
    assert!(Path::new(path).is_absolute(), "{path}");
}

/// Every SERVICE argument takes a service's name: `call a.b m` is a usage error, not a call
/// of service `a`'s method `b.m`; `client`, `markdown`, `html` and `mcp-config` say the same
/// (exit 2) rather than ask the router for a service that cannot exist.
#[test]
fn a_service_argument_must_be_a_service_name() {
    let root = tempfile::tempdir().unwrap();
    for args in [
        &["call", "a.b", "m"][..],
        &["spec", "a/b"],
        &["call", "", "m"],
        &["client", "python", "a.b"],
        &["markdown", "ok", "a.b"],
        &["html", "../x"],
        &["mcp-config", "a b"],
    ] {
        let out = run(args, root.path());
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("not a service name"), "{args:?}: {err}");
    }
}
