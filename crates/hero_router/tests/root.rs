//! The socket root itself failing: lost and re-created, replaced, unreadable. Real directories,
//! the daemon in-process, and a second `serve` as a real process.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::Duration;

use common::{json, rpc, serve_config, service_dir, start_daemon, wait_event};
use hero_router::{Event, Stamped};
use tokio::sync::broadcast;

/// The router's own `rpc.sock` answers `router.health`.
async fn own_socket_answers(root: &Path) -> bool {
    let path = root.join("hero_router/rpc.sock");
    let Ok(stream) = tokio::net::UnixStream::connect(&path).await else {
        return false;
    };
    let (s, _, b) = common::exchange(
        stream,
        common::request(
            "POST",
            "/rpc",
            r#"{"jsonrpc":"2.0","id":1,"method":"router.health"}"#,
        ),
    )
    .await;
    s == 200 && json(std::str::from_utf8(&b).unwrap())["result"]["version"].is_string()
}

/// Waits until the router's own `rpc.sock` answers again after the root was replaced. Nothing
/// announces the rebinding (it follows [`Event::RootReplaced`]), so the test looks again after
/// each scan the router completes (a periodic one comes every scan interval), up to 20 s.
async fn own_socket_answers_again(root: &Path, events: &mut broadcast::Receiver<Stamped>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !own_socket_answers(root).await {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        wait_event(events, left, |e| matches!(e, Event::ScanCompleted { .. })).await;
    }
}

/// A second `serve` on `root` exits 1 and names the running instance.
fn second_serve_is_refused(root: &Path) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hero_router"))
        .args(["serve", "--no-tcp", "--socket-dir"])
        .arg(root)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("already running") && stderr.contains("rpc.sock"),
        "{stderr}"
    );
}

/// `<root>/hero_router` that is a symlink (to a directory outside the root) or a file:
/// `serve` exits 1 naming it, and binds nothing where the link points (its sockets would be
/// outside the root, and the scanner, which never follows a symlink, would not list it).
#[test]
fn serve_refuses_an_own_directory_that_is_a_symlink_or_a_file() {
    let root = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let own = root.path().join("hero_router");
    std::os::unix::fs::symlink(elsewhere.path(), &own).unwrap();
    let serve = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_hero_router"))
            .args(["serve", "--no-tcp", "--socket-dir"])
            .arg(root.path())
            .env("HOME", root.path())
            .output()
            .unwrap()
    };
    for what in ["a symlink", "a file"] {
        let out = serve();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "{} is a symlink or not a directory",
                own.display()
            )),
            "{what}: {stderr}"
        );
        assert_eq!(
            std::fs::read_dir(elsewhere.path()).unwrap().count(),
            0,
            "nothing bound where the link points"
        );
        std::fs::remove_file(&own).unwrap();
        std::fs::write(&own, b"not a directory").unwrap();
    }
}

/// A start refused because another process (without the owner lock) listens at
/// `hero_router/admin.sock` leaves no `rpc.sock` of its own behind, and names the socket.
#[test]
fn a_start_refused_at_admin_sock_leaves_no_rpc_sock() {
    let root = tempfile::tempdir().unwrap();
    let own = root.path().join("hero_router");
    std::fs::create_dir(&own).unwrap();
    let _foreign = std::os::unix::net::UnixListener::bind(own.join("admin.sock")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hero_router"))
        .args(["serve", "--no-tcp", "--socket-dir"])
        .arg(root.path())
        .env("HOME", root.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr
            .contains("admin.sock is a live socket of a process that does not hold its owner lock"),
        "{stderr}"
    );
    assert!(!own.join("rpc.sock").exists(), "rpc.sock left behind");
    assert!(
        own.join("admin.sock").exists(),
        "the foreign socket is untouched"
    );
}

/// A root that is gone and cannot be created again (its parent is read-only to the router)
/// is logged once, not at every scan while it stays so, and once more when it is back.
#[test]
fn a_root_that_cannot_be_created_again_is_logged_once() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().unwrap();
    let root = parent.path().join("sockets");
    std::fs::create_dir(&root).unwrap();
    let nobody = common::is_root().then(common::nobody_bin);
    let mut command = match &nobody {
        Some(bin) => {
            // Permission bits do not bind root: the router runs as nobody.
            common::give_to_nobody(parent.path());
            bin.command()
        }
        None => std::process::Command::new(env!("CARGO_BIN_EXE_hero_router")),
    };
    let mut child = command
        .args(["serve", "--no-tcp", "--scan-interval", "1s", "--log-level"])
        .arg(format!("{},hero_router::scanner=info", common::LOG_EVENTS))
        .arg("--socket-dir")
        .arg(&root)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let logged = common::stderr_lines(&mut child);
    let next = |what: &str, pred: &dyn Fn(&str) -> bool, seen: &mut Vec<String>| loop {
        let line = logged
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no {what}; got:\n{}", seen.join("\n")));
        seen.push(line.clone());
        if pred(&line) {
            return line;
        }
    };
    let mut seen = Vec::new();
    let full_scan = |l: &str| l.contains("scan completed") && l.contains("full=true");
    next("first full scan", &full_scan, &mut seen);
    std::fs::set_permissions(parent.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
    std::fs::remove_dir_all(&root).unwrap();
    let lost = "cannot be created again";
    next("lost-root line", &|l| l.contains(lost), &mut seen);
    // Three more periodic scans, each of which tried again.
    for _ in 0..3 {
        next("periodic scan", &full_scan, &mut seen);
    }
    std::fs::set_permissions(parent.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    next(
        "root back",
        &|l| l.contains("could be created again"),
        &mut seen,
    );
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        seen.iter().filter(|l| l.contains(lost)).count(),
        1,
        "logged once: {seen:#?}"
    );
}

#[tokio::test]
async fn a_deleted_root_is_created_again_with_its_sockets_and_its_watch() {
    let parent = tempfile::tempdir().unwrap();
    let root = parent.path().join("sockets");
    std::fs::create_dir(&root).unwrap();
    let mut c = serve_config(&root, &[]);
    // The kernel reports a deleted directory only once nothing under it is held open, and the
    // router holds its owner locks there: the check before each periodic scan finds it.
    c.scanner.scan_interval = Duration::from_secs(2);
    let d = start_daemon(c).await;
    let mut events = d.handle.subscribe();
    std::fs::remove_dir_all(&root).unwrap();
    let ev = wait_event(&mut events, Duration::from_secs(20), |e| {
        matches!(e, Event::RootReplaced { .. })
    })
    .await;
    assert!(
        matches!(
            ev,
            Event::RootReplaced {
                recreated: true,
                ..
            }
        ),
        "{ev:?}"
    );
    wait_event(&mut events, Duration::from_secs(20), |e| {
        matches!(e, Event::ScanCompleted { full: true, .. })
    })
    .await;
    // The scanner made it again, 0755; the router bound its sockets again.
    let mode = std::fs::metadata(&root).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o755);
    own_socket_answers_again(&root, &mut events).await;
    // The watch is back: a new service is seen without a full scan (the next periodic one is
    // two seconds away; the watch takes milliseconds).
    let full_scans = || {
        d.handle
            .stats()
            .full_scans
            .load(std::sync::atomic::Ordering::SeqCst)
    };
    let before = full_scans();
    let path = service_dir(&root, "fresh").join("rpc.sock");
    let _l = UnixListener::bind(&path).unwrap();
    wait_event(&mut events, Duration::from_secs(20), |e| {
        common::changed_to(e, &path, "live")
    })
    .await;
    assert_eq!(
        full_scans(),
        before,
        "found by a full scan, not by the watch"
    );
    let (_, text) = rpc(
        &d,
        r#"{"jsonrpc":"2.0","id":1,"method":"router.service","params":["fresh"]}"#,
    )
    .await;
    assert_eq!(json(&text)["result"]["status"], "healthy", "{text}");
    // And no second router can start beside this one, whatever happened to the files.
    second_serve_is_refused(&root);
    d.stop().await;
}

#[tokio::test]
async fn a_replaced_root_is_watched_again_and_gets_the_routers_sockets() {
    let parent = tempfile::tempdir().unwrap();
    let root = parent.path().join("sockets");
    std::fs::create_dir(&root).unwrap();
    let mut c = serve_config(&root, &[]);
    // The periodic check notices a replacement the watch cannot see.
    c.scanner.scan_interval = Duration::from_millis(200);
    let d = start_daemon(c).await;
    let mut events = d.handle.subscribe();
    // Swapped for another directory (a deploy that moves the old one aside).
    std::fs::rename(&root, parent.path().join("old")).unwrap();
    std::fs::create_dir(&root).unwrap();
    let ev = wait_event(&mut events, Duration::from_secs(20), |e| {
        matches!(e, Event::RootReplaced { .. })
    })
    .await;
    assert!(
        matches!(
            ev,
            Event::RootReplaced {
                recreated: false,
                ..
            }
        ),
        "{ev:?}"
    );
    own_socket_answers_again(&root, &mut events).await;
    second_serve_is_refused(&root);
    d.stop().await;
}

/// A root the router may enter but not list (mode 0300): no full scan can succeed, so it is
/// not ready, its health says why, and a scan asked for is an error that says why.
#[tokio::test]
async fn a_root_that_cannot_be_listed_is_not_ready() {
    let parent = tempfile::tempdir().unwrap();
    let root = parent.path().join("sockets");
    std::fs::create_dir(&root).unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o300)).unwrap();
    const SCAN: &str = r#"{"jsonrpc":"2.0","id":1,"method":"router.scan"}"#;
    let (health, scan) = if common::is_root() {
        // Permission bits do not bind root: the router runs as nobody.
        common::give_to_nobody(&root);
        let bin = common::nobody_bin();
        let mut child = bin
            .command()
            .args(["serve", "--no-tcp", "--log-level", common::LOG_EVENTS])
            .arg("--socket-dir")
            .arg(&root)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Its first full scan, logged once its table is published (the scan failed, as it
        // must: the root cannot be listed).
        let logged = common::stderr_lines(&mut child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let line = logged.recv_timeout(left).expect("no full scan logged");
            if line.contains("scan completed") && line.contains("full=true") {
                break;
            }
        }
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hero_router"))
            .args(["health", "--socket-dir"])
            .arg(&root)
            .output()
            .unwrap();
        let scan = post_rpc(&root.join("hero_router/rpc.sock"), SCAN);
        let _ = child.kill();
        let _ = child.wait();
        let health = serde_json::from_slice(&out.stdout).expect("health answers JSON");
        (health, json(&scan))
    } else {
        eprintln!("not root: the router runs as this user, for whom mode 0300 already binds");
        let d = start_daemon(serve_config(&root, &[])).await;
        let (_, text) = rpc(&d, r#"{"jsonrpc":"2.0","id":1,"method":"router.health"}"#).await;
        let (_, scan) = rpc(&d, SCAN).await;
        d.stop().await;
        (json(&text)["result"].clone(), json(&scan))
    };
    let message = scan["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("cannot read the socket root") && message.contains("kept as it was"),
        "a scan that could not list the root is an error: {scan}"
    );
    assert_eq!(health["ready"], false, "{health}");
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["last_scan"]["ok"], false, "{health}");
    assert!(
        health["reason"]
            .as_str()
            .unwrap()
            .contains("cannot read the socket root"),
        "{health}"
    );
}

/// The body of the answer to `POST /rpc` of `body` on the socket at `path`.
fn post_rpc(path: &Path, body: &str) -> String {
    use std::io::{Read as _, Write as _};
    let mut s = std::os::unix::net::UnixStream::connect(path).unwrap();
    let head = format!(
        "POST /rpc HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (_, answer) = out.split_once("\r\n\r\n").expect("an HTTP answer");
    answer.to_owned()
}

/// The router's own `rpc.sock`, or its whole directory, deleted while it runs is bound again:
/// the CLI reaches it again, and a second `serve` is still refused.
#[tokio::test]
async fn a_deleted_own_socket_is_bound_again() {
    let root = tempfile::tempdir().unwrap();
    let mut c = serve_config(root.path(), &[]);
    c.scanner.scan_interval = Duration::from_secs(1);
    let d = start_daemon(c).await;
    let mut events = d.handle.subscribe();
    let own = root.path().join("hero_router");
    assert!(own_socket_answers(root.path()).await);
    std::fs::remove_file(own.join("rpc.sock")).unwrap();
    own_socket_answers_again(root.path(), &mut events).await;
    assert!(own.join("admin.sock").exists());
    std::fs::remove_dir_all(&own).unwrap();
    own_socket_answers_again(root.path(), &mut events).await;
    assert!(own.join("admin.sock").exists());
    // Its directory moved away and a file put in its place: the router cannot bind there and
    // says so; once the file is gone it binds again after a scan.
    std::fs::rename(&own, root.path().join("moved")).unwrap();
    std::fs::write(&own, b"in the way").unwrap();
    wait_event(&mut events, Duration::from_secs(20), |e| {
        matches!(e, Event::ScanCompleted { .. })
    })
    .await;
    std::fs::remove_file(&own).unwrap();
    own_socket_answers_again(root.path(), &mut events).await;
    second_serve_is_refused(root.path());
    d.stop().await;
}
