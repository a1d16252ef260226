//! The scanner against real sockets in a temp root: every state, every reap rule, the watch.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::Duration;

use common::{busy_socket, cfg, changed_to, dead_socket, service_dir, wait_event};
use hero_example_service::{ServiceConfig, spawn};
use hero_router::ProbeCause;
use hero_router::Scanner;
use hero_router::{Event, Stamped};
use hero_router::{ServiceStatus, Table};
use hero_router::{SkipReason, SocketState};
use hero_socket::{OwnerLock, lock_path};
use tokio_util::sync::CancellationToken;

fn state_of(table: &Table, service: &str, kind: &str) -> Option<SocketState> {
    table
        .service(service)?
        .sockets
        .iter()
        .find(|s| s.kind == kind)
        .map(|s| s.state)
}

/// Runs a scanner with the directory watch on (periodic scans an hour apart), subscribed to its
/// events from the start.
fn run_watching(
    root: &Path,
) -> (
    hero_router::Registry,
    tokio::sync::broadcast::Receiver<Stamped>,
    CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let mut c = cfg(root, 3);
    c.watch = true;
    let (scanner, h) = Scanner::new(c);
    let events = h.subscribe();
    let token = CancellationToken::new();
    let task = tokio::spawn(scanner.run(token.clone()));
    (h, events, token, task)
}

fn skip_reasons(
    events: &mut tokio::sync::broadcast::Receiver<Stamped>,
) -> Vec<(String, SkipReason)> {
    let mut out = Vec::new();
    while let Ok(ev) = events.try_recv() {
        if let Event::ReapSkipped { socket, reason, .. } = ev.event {
            out.push((socket, reason));
        }
    }
    out
}

#[tokio::test]
async fn every_state_and_ignored_entry_in_one_scan() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let outside = tempfile::tempdir().unwrap();

    let live = spawn(ServiceConfig::new(r, "live_svc")).await.unwrap();
    let busy_dir = service_dir(r, "busy_svc");
    let _busy = busy_socket(&busy_dir.join("rpc.sock"));
    let dead_dir = service_dir(r, "dead_svc");
    dead_socket(&dead_dir.join("rpc.sock"));
    let ui_only = service_dir(r, "ui_only");
    let _ui = UnixListener::bind(ui_only.join("admin.sock")).unwrap();
    let odd = service_dir(r, "odd");
    std::fs::write(odd.join("x.sock"), b"not a socket").unwrap();
    std::fs::create_dir(odd.join("dir.sock")).unwrap();
    std::os::unix::fs::symlink(live.path(), odd.join("link_live.sock")).unwrap();
    let outside_file = outside.path().join("secret");
    std::fs::write(&outside_file, b"keep").unwrap();
    std::os::unix::fs::symlink(&outside_file, odd.join("link_out.sock")).unwrap();
    std::fs::create_dir(r.join("bad name")).unwrap();
    std::fs::create_dir(r.join("_under")).unwrap();
    std::fs::write(r.join("plainfile"), b"").unwrap();
    std::os::unix::fs::symlink(&busy_dir, r.join("alias")).unwrap();

    let (mut scanner, _h) = Scanner::new(cfg(r, 1));
    let s = scanner.scan_full(ProbeCause::Manual).await;
    let t = scanner.table();

    assert_eq!(state_of(&t, "live_svc", "rpc"), Some(SocketState::Live));
    assert_eq!(
        state_of(&t, "busy_svc", "rpc"),
        Some(SocketState::Busy),
        "a full backlog is busy, never refused"
    );
    assert_eq!(state_of(&t, "dead_svc", "rpc"), Some(SocketState::Refused));
    assert_eq!(state_of(&t, "ui_only", "admin"), Some(SocketState::Live));
    for kind in ["x", "dir", "link_live", "link_out"] {
        assert_eq!(
            state_of(&t, "odd", kind),
            Some(SocketState::NotSocket),
            "{kind}"
        );
    }
    let status: BTreeMap<_, _> = t
        .services
        .iter()
        .map(|s| (s.name.as_str(), s.status))
        .collect();
    assert_eq!(status["live_svc"], ServiceStatus::Healthy);
    assert_eq!(status["busy_svc"], ServiceStatus::Degraded);
    assert_eq!(status["dead_svc"], ServiceStatus::Unhealthy);
    assert_eq!(status["ui_only"], ServiceStatus::NonRpc);
    assert_eq!(status["odd"], ServiceStatus::Unhealthy);
    assert!(
        t.service("alias").is_none(),
        "a symlinked directory is never followed"
    );

    let ignored: BTreeMap<String, String> = t
        .ignored
        .iter()
        .map(|i| {
            (
                Path::new(&i.path)
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
                i.reason.clone(),
            )
        })
        .collect();
    assert_eq!(ignored["bad name"], "invalid service name");
    assert_eq!(ignored["_under"], "invalid service name");
    assert_eq!(ignored["plainfile"], "not a directory");
    assert_eq!(ignored["alias"], "symlink (never followed)");
    assert_eq!((s.live, s.busy, s.refused), (2, 1, 1));
    // A manual scan never reaps, even with grace 0 and a streak of 1.
    assert!(s.reaped.is_empty());
    live.shutdown().await;
}

#[tokio::test]
async fn reaping_touches_only_the_dead_socket() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let outside = tempfile::tempdir().unwrap();
    let outside_dead = outside.path().join("dead.sock");
    dead_socket(&outside_dead);

    let dead = service_dir(r, "dead_svc").join("rpc.sock");
    dead_socket(&dead);
    std::fs::write(lock_path(&dead), b"").unwrap();
    let odd = service_dir(r, "odd");
    std::fs::write(odd.join("x.sock"), b"data").unwrap();
    std::os::unix::fs::symlink(&outside_dead, odd.join("link.sock")).unwrap();
    std::os::unix::fs::symlink(outside.path(), r.join("escape")).unwrap();
    let own = service_dir(r, "hero_router").join("rpc.sock");
    dead_socket(&own);

    let (mut scanner, h) = Scanner::new(cfg(r, 1));
    let mut events = h.subscribe();
    let s = scanner.scan_full(ProbeCause::Periodic).await;

    assert_eq!(s.reaped, vec![dead.display().to_string()]);
    assert!(!dead.exists());
    assert!(lock_path(&dead).exists(), "lock files are never deleted");
    assert_eq!(std::fs::read(odd.join("x.sock")).unwrap(), b"data");
    assert!(odd.join("link.sock").symlink_metadata().is_ok());
    assert!(
        outside_dead.exists(),
        "nothing outside the root is touched, even through a symlink"
    );
    assert!(own.exists(), "the router's own sockets are never reaped");
    let skips = skip_reasons(&mut events);
    assert!(
        skips.contains(&(own.display().to_string(), SkipReason::OwnSocket)),
        "{skips:?}"
    );
}

#[tokio::test]
async fn rule_1_streak_counts_only_periodic_scans() {
    let root = tempfile::tempdir().unwrap();
    let dead = service_dir(root.path(), "svc").join("rpc.sock");
    dead_socket(&dead);
    let (mut scanner, h) = Scanner::new(cfg(root.path(), 3));
    let mut events = h.subscribe();
    for _ in 0..10 {
        assert!(
            scanner
                .scan_full(ProbeCause::Manual)
                .await
                .reaped
                .is_empty()
        );
    }
    for _ in 0..2 {
        assert!(
            scanner
                .scan_full(ProbeCause::Periodic)
                .await
                .reaped
                .is_empty()
        );
    }
    assert!(dead.exists());
    assert!(skip_reasons(&mut events).contains(&(dead.display().to_string(), SkipReason::Streak)));
    // Control: the third periodic refusal reaps.
    assert_eq!(
        scanner.scan_full(ProbeCause::Periodic).await.reaped.len(),
        1
    );
    assert!(!dead.exists());
}

/// A rebuilt service (its refusal streak ticked) holds the same path allocation as the table
/// before it and as the scanner's records: a table of 10,000 sockets copies no path.
#[tokio::test]
async fn a_rebuilt_service_shares_its_socket_paths() {
    let root = tempfile::tempdir().unwrap();
    let dead = service_dir(root.path(), "svc").join("rpc.sock");
    dead_socket(&dead);
    let (mut scanner, h) = Scanner::new(cfg(root.path(), 10));
    scanner.scan_full(ProbeCause::Periodic).await;
    let first = h.table();
    scanner.scan_full(ProbeCause::Periodic).await;
    let second = h.table();
    let (a, b) = (
        first.service("svc").unwrap(),
        second.service("svc").unwrap(),
    );
    assert_eq!(
        (a.sockets[0].refused_streak, b.sockets[0].refused_streak),
        (1, 2),
        "the service was rebuilt"
    );
    assert_eq!(*b.sockets[0].path, *dead);
    assert!(std::sync::Arc::ptr_eq(
        &a.sockets[0].path,
        &b.sockets[0].path
    ));
}

#[tokio::test]
async fn rule_2_grace_alone_prevents_reap() {
    let root = tempfile::tempdir().unwrap();
    let dead = service_dir(root.path(), "svc").join("rpc.sock");
    dead_socket(&dead);
    let mut c = cfg(root.path(), 1);
    c.reap.grace = Duration::from_secs(3600);
    let (mut scanner, h) = Scanner::new(c);
    let mut events = h.subscribe();
    for _ in 0..5 {
        assert!(
            scanner
                .scan_full(ProbeCause::Periodic)
                .await
                .reaped
                .is_empty()
        );
    }
    assert!(dead.exists());
    let skips = skip_reasons(&mut events);
    assert_eq!(
        skips,
        vec![(dead.display().to_string(), SkipReason::Grace)],
        "one event, not one per scan"
    );
}

#[tokio::test]
async fn rule_3_identity_change_restarts_the_streak() {
    let root = tempfile::tempdir().unwrap();
    let dead = service_dir(root.path(), "svc").join("rpc.sock");
    dead_socket(&dead);
    let (mut scanner, _h) = Scanner::new(cfg(root.path(), 2));
    scanner.scan_full(ProbeCause::Periodic).await;
    // The service respawned and died again: a new file (often the same inode on ext4).
    std::fs::remove_file(&dead).unwrap();
    dead_socket(&dead);
    let replaced = hero_socket::stat_nofollow(&dead).unwrap().identity;
    assert!(
        scanner
            .scan_full(ProbeCause::Periodic)
            .await
            .reaped
            .is_empty(),
        "streak restarted"
    );
    assert_eq!(
        hero_socket::stat_nofollow(&dead).unwrap().identity,
        replaced
    );
    assert_eq!(
        scanner.scan_full(ProbeCause::Periodic).await.reaped.len(),
        1
    );
}

#[tokio::test]
async fn rule_4_owner_lock_alone_prevents_reap() {
    let root = tempfile::tempdir().unwrap();
    let dead = service_dir(root.path(), "svc").join("rpc.sock");
    dead_socket(&dead);
    let lock = OwnerLock::acquire(&dead, Duration::ZERO).unwrap();
    let (mut scanner, h) = Scanner::new(cfg(root.path(), 1));
    let mut events = h.subscribe();
    for _ in 0..3 {
        assert!(
            scanner
                .scan_full(ProbeCause::Periodic)
                .await
                .reaped
                .is_empty()
        );
    }
    assert!(dead.exists());
    assert!(
        skip_reasons(&mut events).contains(&(dead.display().to_string(), SkipReason::OwnerLocked))
    );
    // The table says why the file is still there.
    let table = scanner.table();
    let socket = table.services[0].sockets.iter().find(|s| s.kind == "rpc");
    assert_eq!(
        socket.map(|s| s.reap_skipped),
        Some(Some(SkipReason::OwnerLocked))
    );
    drop(lock);
    // A child another test thread forked meanwhile shares the lock's open file until it
    // execs (a fork with a uid change copies this whole process first), so the lock may
    // outlive the drop briefly: scan until it is gone, with a deadline.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let reaped = scanner.scan_full(ProbeCause::Periodic).await.reaped;
        if reaped.len() == 1 {
            break;
        }
        let table = scanner.table();
        let reason = table.services[0].sockets[0].reap_skipped;
        assert_eq!(
            reason,
            Some(SkipReason::OwnerLocked),
            "{:?}",
            table.services
        );
        assert!(tokio::time::Instant::now() < deadline, "still locked");
        tokio::time::sleep(Duration::from_millis(20)).await; // poll interval, bounded by the deadline
    }
}

/// A fake hero_proc on `<root>/hero_proc/rpc.sock` answering every call with `result`.
async fn fake_hero_proc(root: &Path, result: serde_json::Value) -> CancellationToken {
    let sock =
        hero_socket::OwnedSocket::bind(&root.join("hero_proc/rpc.sock"), &Default::default())
            .unwrap();
    let (std_l, guard) = sock.into_parts();
    std_l.set_nonblocking(true).unwrap();
    let listener = tokio::net::UnixListener::from_std(std_l).unwrap();
    let app =
        axum::Router::new().route(
            "/rpc",
            axum::routing::post(move || {
                let result = result.clone();
                async move {
                    axum::Json(serde_json::json!({"jsonrpc": "2.0", "id": 1, "result": result}))
                }
            }),
        );
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let _guard = guard;
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { t.cancelled().await })
            .await
            .unwrap();
    });
    token
}

#[tokio::test]
async fn rule_7_hero_proc_guard_alone_prevents_reap() {
    let root = tempfile::tempdir().unwrap();
    let dead = service_dir(root.path(), "svc").join("rpc.sock");
    dead_socket(&dead);
    let other = service_dir(root.path(), "other").join("rpc.sock");
    dead_socket(&other);
    let stop = fake_hero_proc(root.path(), serde_json::json!([{"name": "svc", "state": "running"}, {"name": "other", "state": "exited"}])).await;
    let (mut scanner, h) = Scanner::new(cfg(root.path(), 1));
    let mut events = h.subscribe();
    let s = scanner.scan_full(ProbeCause::Periodic).await;
    // Control: `other` differs from `svc` only in what hero_proc says, and it is reaped.
    assert_eq!(
        s.reaped,
        vec![other.display().to_string()],
        "only the service hero_proc says exited"
    );
    assert!(dead.exists());
    assert!(
        skip_reasons(&mut events)
            .contains(&(dead.display().to_string(), SkipReason::HeroProcRunning))
    );
    stop.cancel();
}

#[tokio::test]
async fn events_for_appear_change_and_vanish() {
    let root = tempfile::tempdir().unwrap();
    let dir = service_dir(root.path(), "svc");
    let path = dir.join("rpc.sock");
    let (mut scanner, h) = Scanner::new(cfg(root.path(), 5));
    let mut events = h.subscribe();
    let l = UnixListener::bind(&path).unwrap();
    scanner.scan_full(ProbeCause::Manual).await;
    let ev = wait_event(&mut events, Duration::from_secs(1), |e| {
        matches!(e, Event::SocketChanged { .. })
    })
    .await;
    assert_eq!(
        ev,
        Event::SocketChanged {
            service: "svc".into(),
            socket: path.display().to_string(),
            from: "absent",
            to: "live"
        }
    );
    drop(l);
    scanner.scan_full(ProbeCause::Manual).await;
    wait_event(&mut events, Duration::from_secs(1), |e| {
        changed_to(e, &path, "refused")
    })
    .await;
    let before = scanner.table().service("svc").unwrap().sockets[0].since_unix_ms;
    scanner.scan_full(ProbeCause::Manual).await;
    assert_eq!(
        scanner.table().service("svc").unwrap().sockets[0].since_unix_ms,
        before,
        "since moves only on change"
    );
    std::fs::remove_file(&path).unwrap();
    scanner.scan_full(ProbeCause::Manual).await;
    wait_event(&mut events, Duration::from_secs(1), |e| {
        changed_to(e, &path, "gone")
    })
    .await;
    std::fs::remove_dir(&dir).unwrap();
    scanner.scan_full(ProbeCause::Manual).await;
    assert!(scanner.table().services.is_empty());
}

#[tokio::test]
async fn the_watch_finds_new_sockets_without_a_periodic_scan() {
    let root = tempfile::tempdir().unwrap();
    let existing = service_dir(root.path(), "svc");
    let (h, mut events, token, task) = run_watching(root.path());
    h.ready().await;

    // In an existing directory.
    let a = existing.join("web_a.sock");
    let _la = UnixListener::bind(&a).unwrap();
    wait_event(&mut events, Duration::from_secs(10), |e| {
        changed_to(e, &a, "live")
    })
    .await;

    // In a directory created just now, bound before the router can watch it.
    let fresh = root.path().join("fresh");
    std::fs::create_dir(&fresh).unwrap();
    let b = fresh.join("rpc.sock");
    let _lb = UnixListener::bind(&b).unwrap();
    wait_event(&mut events, Duration::from_secs(10), |e| {
        changed_to(e, &b, "live")
    })
    .await;
    assert_eq!(
        h.table().service("fresh").unwrap().status,
        ServiceStatus::Healthy
    );

    // Removal is seen too.
    std::fs::remove_file(&a).unwrap();
    wait_event(&mut events, Duration::from_secs(10), |e| {
        changed_to(e, &a, "gone")
    })
    .await;

    // A manual scan through the handle answers with a summary. `svc` has no socket left: with
    // the test's zero grace it has left the table.
    let s = h.scan_now().await.unwrap();
    assert_eq!((s.services, s.live), (1, 1));
    assert!(h.table().service("svc").is_none());
    token.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn a_socket_bound_before_listen_becomes_live_after_settling() {
    let root = tempfile::tempdir().unwrap();
    let dir = service_dir(root.path(), "svc");
    let (h, mut events, token, task) = run_watching(root.path());
    h.ready().await;

    // Bind, let the watch see it refusing, then listen: the settle re-probes must find it live.
    let path = dir.join("rpc.sock");
    let fd = rustix::net::socket_with(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::STREAM,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )
    .unwrap();
    rustix::net::bind(&fd, &rustix::net::SocketAddrUnix::new(&path).unwrap()).unwrap();
    wait_event(&mut events, Duration::from_secs(10), |e| {
        changed_to(e, &path, "refused")
    })
    .await;
    rustix::net::listen(&fd, 16).unwrap();
    wait_event(&mut events, Duration::from_secs(10), |e| {
        changed_to(e, &path, "live")
    })
    .await;
    token.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn denied_is_reported_and_never_reaped() {
    let root = tempfile::tempdir().unwrap();
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = service_dir(root.path(), "svc");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.join("rpc.sock");
    let _l = UnixListener::bind(&path).unwrap();

    if rustix::process::geteuid().is_root() {
        // Root never gets EACCES, so the real check runs in a child that dropped to uid 65534
        // (nobody): the real `hero_router scan` binary, against a socket only root may use.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        // The build directory may not be reachable for nobody (a 0700 checkout): run a copy
        // from a directory it can enter.
        let out = common::nobody_bin()
            .command()
            .args(["scan", "--json", "--socket-dir"])
            .arg(root.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            report["services"][0]["sockets"][0]["state"], "denied",
            "{report}"
        );
    } else {
        // Not root: the owner loses write permission on its own socket and gets EACCES.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
        let (mut scanner, _h) = Scanner::new(cfg(root.path(), 1));
        scanner.scan_full(ProbeCause::Periodic).await;
        assert_eq!(
            state_of(&scanner.table(), "svc", "rpc"),
            Some(SocketState::Denied)
        );
    }
    // Never reaped, by the side that sees it denied: as root that is a child running as
    // nobody (root itself connects to any socket, so it would probe `live` and prove nothing).
    if rustix::process::geteuid().is_root() {
        let bin = common::nobody_bin();
        for _ in 0..3 {
            let out = bin
                .command()
                .args(["scan", "--json", "--reap", "--stale-after", "1"])
                .args(["--reap-grace", "0s", "--socket-dir"])
                .arg(root.path())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(
                report["services"][0]["sockets"][0]["state"], "denied",
                "{report}"
            );
            assert_eq!(report["reaped"], serde_json::json!([]), "{report}");
        }
    } else {
        let (mut scanner, _h) = Scanner::new(cfg(root.path(), 1));
        for _ in 0..3 {
            let summary = scanner.scan_full(ProbeCause::Periodic).await;
            assert!(summary.reaped.is_empty());
            assert_eq!(
                state_of(&scanner.table(), "svc", "rpc"),
                Some(SocketState::Denied)
            );
        }
    }
    assert!(path.exists());
}

#[tokio::test]
async fn an_idle_watched_root_does_not_rescan_itself() {
    let root = tempfile::tempdir().unwrap();
    let dir = service_dir(root.path(), "svc");
    let _l = UnixListener::bind(dir.join("rpc.sock")).unwrap();
    let (h, mut events, token, task) = run_watching(root.path());
    // The first full scan, then the re-listing of the directory it started watching.
    wait_event(&mut events, Duration::from_secs(10), |e| {
        matches!(e, Event::ScanCompleted { full: false, .. })
    })
    .await;
    // Our own scans open and read every directory. The watch must not hear of that: the
    // kernel reports only entries created, deleted or renamed, so no scan can feed the next.
    use std::sync::atomic::Ordering::SeqCst;
    let stats = h.stats();
    let (events_before, partial_before) = (
        stats.watch_events.load(SeqCst),
        stats.partial_scans.load(SeqCst),
    );
    const SCANS: u64 = 5;
    for _ in 0..SCANS {
        h.scan_now().await.unwrap();
    }
    // The control: one real change after the scans. The kernel queues events in order and the
    // scanner takes them in order, so once this one is counted, any event the scans caused
    // has been counted before it. Nothing announces the count: each look waits for a scan
    // round trip through the scanner's loop.
    std::fs::write(dir.join("notes.txt"), b"not a socket").unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while stats.watch_events.load(SeqCst) == events_before {
        let scanned = tokio::time::timeout_at(deadline, h.scan_now()).await;
        assert!(
            scanned.is_ok_and(|s| s.is_ok()),
            "the watch did not report a file created in a watched service directory"
        );
    }
    // Let the scanner handle what it received: a scan of its own is a message after them.
    h.scan_now().await.unwrap();
    assert_eq!(
        stats.watch_events.load(SeqCst) - events_before,
        1,
        "the watch reported events for {SCANS} scans that changed nothing (only the control \
         file's creation was due)"
    );
    assert_eq!(
        stats.partial_scans.load(SeqCst) - partial_before,
        1,
        "only the control change may cause a watch-triggered scan"
    );
    let _ = &mut events;
    token.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn a_hung_probe_costs_only_itself() {
    let root = tempfile::tempdir().unwrap();
    let mut listeners = Vec::new();
    for svc in ["a", "b"] {
        let dir = service_dir(root.path(), svc);
        for i in 0..20 {
            listeners.push(UnixListener::bind(dir.join(format!("web_{i}.sock"))).unwrap());
        }
    }
    let slow = root.path().join("a/web_3.sock");
    let mut c = cfg(root.path(), 3);
    c.probe_timeout = Duration::from_millis(200);
    // The seam makes one path as slow as a hung filesystem: its probe blocks far past the
    // probe timeout. Its batch-mates, before and after it, must still be probed.
    let s = slow.clone();
    let hook: hero_router::test_hooks::ProbeHook = std::sync::Arc::new(move |p: &Path| {
        if p == s {
            std::thread::sleep(Duration::from_secs(1)); // the simulated hang itself, not a wait
        }
    });
    let (scanner, _h) = Scanner::new(c);
    let mut scanner = scanner.with_probe_hook(hook);
    let summary = scanner.scan_full(ProbeCause::Manual).await;
    let t = scanner.table();
    let sock = |svc: &str, kind: &str| {
        t.service(svc)
            .unwrap()
            .sockets
            .iter()
            .find(|s| s.kind == kind)
            .unwrap()
            .clone()
    };
    let hung = sock("a", "web_3");
    assert_eq!(
        (hung.state, hung.detail.as_ref()),
        (SocketState::Busy, "probe timed out")
    );
    assert_eq!((summary.live, summary.busy), (39, 1), "{summary:?}");
}

#[tokio::test]
async fn periodic_scans_finish_what_a_crashed_reaper_left() {
    let root = tempfile::tempdir().unwrap();
    let dir = service_dir(root.path(), "svc");
    // pid 4194304 is above Linux's pid limit: that reaper is certainly gone.
    let dead = dir.join(".admin.sock.reap-4194304-0");
    dead_socket(&dead);
    let live_path = dir.join("rpc.sock");
    let _live = UnixListener::bind(&live_path).unwrap();
    std::fs::rename(&live_path, dir.join(".rpc.sock.reap-4194304-1")).unwrap();
    let (mut scanner, h) = Scanner::new(cfg(root.path(), 3));
    let mut events = h.subscribe();
    let summary = scanner.scan_full(ProbeCause::Periodic).await;
    assert!(!dead.exists(), "a dead socket left aside is removed");
    // And the scan says so, as it says every removal (`scan --reap` prints `reaped`).
    assert_eq!(summary.reaped, [dead.display().to_string()]);
    assert_eq!(
        hero_socket::connect_probe(&live_path),
        hero_socket::ConnectOutcome::Connected,
        "a live one is put back"
    );
    let ev = wait_event(&mut events, Duration::from_secs(1), |e| {
        matches!(e, Event::Reaped { .. })
    })
    .await;
    assert_eq!(
        ev,
        Event::Reaped {
            service: "svc".into(),
            socket: dead.display().to_string(),
            reason: "crash_leftover"
        }
    );
    // The next scan sees the restored socket.
    scanner.scan_full(ProbeCause::Manual).await;
    assert_eq!(
        state_of(&scanner.table(), "svc", "rpc"),
        Some(SocketState::Live)
    );
}

#[tokio::test]
async fn an_unreadable_root_keeps_the_table() {
    let parent = tempfile::tempdir().unwrap();
    let root = parent.path().join("root");
    let dir = service_dir(&root, "svc");
    let _l = UnixListener::bind(dir.join("rpc.sock")).unwrap();
    let (mut scanner, h) = Scanner::new(cfg(&root, 3));
    scanner.scan_full(ProbeCause::Periodic).await;
    let mut events = h.subscribe();
    // The root vanishes for a moment (an unmounted volume, a botched deploy).
    std::fs::rename(&root, parent.path().join("away")).unwrap();
    let s = scanner.scan_full(ProbeCause::Periodic).await;
    assert_eq!((s.services, s.live), (1, 1), "nothing is reported gone");
    assert_eq!(
        state_of(&scanner.table(), "svc", "rpc"),
        Some(SocketState::Live)
    );
    while let Ok(ev) = events.try_recv() {
        assert!(
            !matches!(ev.event, Event::SocketChanged { .. }),
            "unexpected {ev:?}"
        );
    }
    std::fs::rename(parent.path().join("away"), &root).unwrap();
    assert_eq!(scanner.scan_full(ProbeCause::Periodic).await.live, 1);
}

/// A service directory that vanishes between reading the root and listing it costs only
/// itself: the other services are scanned (and reaped) as usual, the scan is not a root error.
#[tokio::test]
async fn a_directory_vanishing_mid_scan_costs_only_itself() {
    let root = tempfile::tempdir().unwrap();
    let _a = UnixListener::bind(service_dir(root.path(), "a").join("rpc.sock")).unwrap();
    let _b = UnixListener::bind(service_dir(root.path(), "b").join("rpc.sock")).unwrap();
    let (scanner, h) = Scanner::new(cfg(root.path(), 1));
    let mut scanner = scanner;
    scanner.scan_full(ProbeCause::Periodic).await;
    assert_eq!(scanner.table().services.len(), 2);
    // A service dies meanwhile: the next scan must reap it, whatever happens to `b`.
    let dead = service_dir(root.path(), "c").join("rpc.sock");
    dead_socket(&dead);
    // The seam runs right before a service directory is listed.
    let victim = root.path().join("b");
    let v = victim.clone();
    let hook: hero_router::test_hooks::ListHook = std::sync::Arc::new(move |dir: &Path| {
        if dir == v {
            std::fs::remove_dir_all(dir).unwrap();
        }
    });
    let mut scanner = scanner.with_list_hook(hook);
    let mut events = h.subscribe();
    let summary = scanner.scan_full(ProbeCause::Periodic).await;
    let table = scanner.table();
    assert!(
        table.last_scan.as_ref().unwrap().ok,
        "{:?}",
        table.last_scan
    );
    assert_eq!(summary.services, 2, "a and c: {summary:?}");
    assert_eq!(state_of(&table, "a", "rpc"), Some(SocketState::Live));
    assert!(table.service("b").is_none());
    assert_eq!(summary.reaped, [dead.display().to_string()], "{summary:?}");
    let gone = wait_event(&mut events, Duration::from_secs(1), |e| {
        changed_to(e, &victim.join("rpc.sock"), "gone")
    })
    .await;
    assert!(matches!(gone, Event::SocketChanged { .. }));
}

/// A service directory the router may not list: its known sockets are still probed by path
/// (they say `denied` and are never reaped), it says why in the table, and everything else is
/// scanned and reaped as usual.
#[tokio::test]
async fn an_unreadable_service_directory_costs_only_itself() {
    let root = tempfile::tempdir().unwrap();
    let _alive = UnixListener::bind(service_dir(root.path(), "alive").join("rpc.sock")).unwrap();
    let locked = service_dir(root.path(), "locked");
    let _locked = UnixListener::bind(locked.join("rpc.sock")).unwrap();
    let dead_dir = service_dir(root.path(), "dead");
    let dead = dead_dir.join("rpc.sock");
    let lock = |mode| std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(mode));
    if rustix::process::geteuid().is_root() {
        // Permission bits do not bind root: the router runs as nobody, as a real daemon.
        common::give_to_nobody(root.path());
        let bin = common::nobody_bin();
        let mut child = bin
            .command()
            .args([
                "serve",
                "--no-tcp",
                "--log-level",
                common::LOG_EVENTS,
                "--scan-interval",
                "100ms",
            ])
            .args(["--stale-after", "1", "--reap-grace", "0s", "--socket-dir"])
            .arg(root.path())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let logged = common::stderr_lines(&mut child);
        let list = || -> serde_json::Value {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_hero_router"))
                .args(["list", "--json", "--socket-dir"])
                .arg(root.path())
                .output()
                .unwrap();
            serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
        };
        let service = |v: &serde_json::Value, name: &str| {
            v.as_array()
                .and_then(|a| a.iter().find(|s| s["name"] == name).cloned())
                .unwrap_or(serde_json::Value::Null)
        };
        // Looks again each time the router logs (every scan does), up to a deadline.
        let until = |what: &str, cond: &dyn Fn(&serde_json::Value) -> bool| {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            loop {
                let v = list();
                if cond(&v) {
                    return v;
                }
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                assert!(logged.recv_timeout(left).is_ok(), "{what}: {v}");
                while logged.try_recv().is_ok() {}
            }
        };
        until("locked known and live", &|v| {
            service(v, "locked")["sockets"][0]["state"] == "live"
        });
        lock(0o000).unwrap();
        // A service dies meanwhile: its socket must be reaped although `locked` is unreadable.
        dead_socket(&dead);
        common::give_to_nobody(&dead_dir);
        // A watch-triggered rescan of `locked` may show its socket denied before the next
        // periodic scan, which lists the root, records why its directory cannot be read.
        let v = until("dead reaped, locked denied and its error known", &|v| {
            !dead.exists()
                && service(v, "locked")["sockets"][0]["state"] == "denied"
                && service(v, "locked")["error"].is_string()
        });
        let _ = child.kill();
        let _ = child.wait();
        assert!(!dead.exists(), "{v}");
        assert!(locked.join("rpc.sock").exists());
        assert_eq!(service(&v, "alive")["sockets"][0]["state"], "live", "{v}");
        assert!(
            service(&v, "locked")["error"]
                .as_str()
                .unwrap()
                .contains("permission denied"),
            "{v}"
        );
    } else {
        let (mut scanner, _h) = Scanner::new(cfg(root.path(), 1));
        scanner.scan_full(ProbeCause::Periodic).await;
        lock(0o000).unwrap();
        dead_socket(&dead);
        let first = scanner.scan_full(ProbeCause::Periodic).await;
        let second = scanner.scan_full(ProbeCause::Periodic).await;
        let t = scanner.table();
        assert_eq!(state_of(&t, "locked", "rpc"), Some(SocketState::Denied));
        assert!(t.service("locked").unwrap().error.is_some());
        assert_eq!(state_of(&t, "alive", "rpc"), Some(SocketState::Live));
        assert_eq!(
            [first.reaped, second.reaped].concat(),
            [dead.display().to_string()]
        );
    }
    lock(0o755).unwrap();
}

/// A soak at small scale: 1,000 sockets, 200 full scans; the table's own accounting of the
/// memory it holds does not grow.
#[tokio::test]
async fn the_table_stays_the_same_size_over_many_scans() {
    let root = tempfile::tempdir().unwrap();
    let mut listeners = Vec::new();
    for s in 0..100 {
        let dir = service_dir(root.path(), &format!("svc{s}"));
        for k in 0..5 {
            listeners.push(UnixListener::bind(dir.join(format!("web_{k}.sock"))).unwrap());
            dead_socket(&dir.join(format!("old_{k}.sock")));
        }
    }
    let mut c = cfg(root.path(), 3);
    c.reap.enabled = false;
    let (mut scanner, _h) = Scanner::new(c);
    let mut sizes = Vec::new();
    for i in 0..200 {
        let cause = if i % 2 == 0 {
            ProbeCause::Periodic
        } else {
            ProbeCause::Manual
        };
        let summary = scanner.scan_full(cause).await;
        assert_eq!(
            (summary.sockets, summary.live, summary.refused),
            (1000, 500, 500)
        );
        sizes.push(scanner.footprint());
    }
    // After the first few (streaks still counting up), not one byte more.
    assert!(sizes[10] > 0);
    assert_eq!(sizes[10], sizes[199], "footprint grew: {:?}", &sizes[..]);
}

/// The socket file's ctime.
fn ctime(path: &Path) -> std::time::SystemTime {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::symlink_metadata(path).unwrap();
    let since_epoch = Duration::new(md.ctime() as u64, md.ctime_nsec() as u32);
    std::time::UNIX_EPOCH + since_epoch
}

/// Waits until the wall clock (ctime's clock) has passed `t`.
async fn wall_clock_past(t: std::time::SystemTime) {
    while let Ok(left) = t.duration_since(std::time::SystemTime::now()) {
        tokio::time::sleep(left).await; // the awaited event is the clock itself (a grace ending)
    }
}

#[tokio::test]
async fn a_service_without_sockets_leaves_the_table_after_the_grace_and_comes_back() {
    let root = tempfile::tempdir().unwrap();
    let dir = service_dir(root.path(), "svc");
    let dead = dir.join("rpc.sock");
    dead_socket(&dead);
    let grace = Duration::from_millis(300);
    let mut c = cfg(root.path(), 1);
    c.reap.grace = grace;
    let (mut scanner, h) = Scanner::new(c);
    let mut events = h.subscribe();
    let listed = |h: &hero_router::Registry| h.table().service("svc").is_some();

    // Reaped by the first scan once its file is older than the grace. The grace counts from
    // the file's ctime on the wall clock, as the reaper reads it: wait until then, no polling.
    let mut summary = scanner.scan_full(ProbeCause::Periodic).await;
    if summary.reaped.is_empty() {
        wall_clock_past(ctime(&dead) + grace).await;
        summary = scanner.scan_full(ProbeCause::Periodic).await;
    }
    assert_eq!(summary.reaped, [dead.display().to_string()], "{summary:?}");
    // Right after the reap, and on the next scan (which starts the grace), it is still there,
    // without sockets.
    let mut grace_started = None;
    for _ in 0..2 {
        let table = h.table();
        let svc = table.service("svc").expect("still listed within the grace");
        assert!(svc.sockets.is_empty());
        assert_eq!(svc.status, ServiceStatus::Unhealthy);
        scanner.scan_full(ProbeCause::Periodic).await;
        // The grace started during the first of these scans, so no later than now.
        grace_started.get_or_insert_with(tokio::time::Instant::now);
    }
    // Dropped by the first scan after the grace, with an event saying so.
    tokio::time::sleep_until(grace_started.unwrap() + grace).await;
    scanner.scan_full(ProbeCause::Periodic).await;
    assert!(!listed(&h), "still listed after the grace");
    let ev = wait_event(&mut events, Duration::from_secs(5), |e| {
        matches!(e, Event::ServiceDropped { .. })
    })
    .await;
    assert!(
        matches!(&ev, Event::ServiceDropped { service, empty_for } if service == "svc" && *empty_for == Duration::from_millis(300)),
        "{ev:?}"
    );
    // Further scans do not bring it back or say it again.
    scanner.scan_full(ProbeCause::Periodic).await;
    assert!(!listed(&h));
    while let Ok(e) = events.try_recv() {
        assert!(
            !matches!(e.event, Event::ServiceDropped { .. }),
            "said twice: {e:?}"
        );
    }
    // Its first socket brings it back.
    let _live = UnixListener::bind(&dead).unwrap();
    scanner.scan_full(ProbeCause::Periodic).await;
    let table = h.table();
    let svc = table.service("svc").expect("back with a socket");
    assert_eq!(svc.status, ServiceStatus::Healthy);
}
