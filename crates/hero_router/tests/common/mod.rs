//! Shared helpers for the integration tests: real sockets in a temp root.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hero_router::ScannerConfig;
use hero_router::events::Event;
use hero_router::scanner::state::ReapPolicy;
use hero_socket::{ConnectOutcome, connect_probe};
use rustix::net::{
    AddressFamily, SocketAddrUnix, SocketFlags, SocketType, bind, connect, listen, socket_with,
};
use tokio::sync::broadcast;

/// A scanner config for tests: reaping on, grace 0, streak `stale_after`, no watch.
pub fn cfg(root: &Path, stale_after: u32) -> ScannerConfig {
    ScannerConfig {
        root: root.to_path_buf(),
        scan_interval: Duration::from_secs(3600),
        probe_timeout: Duration::from_secs(1),
        reap: ReapPolicy {
            enabled: true,
            stale_after,
            grace: Duration::ZERO,
        },
        probe_concurrency: 4,
        hero_proc_method: "service.status_all".into(),
        hero_proc_timeout: Duration::from_millis(500),
        watch: false,
    }
}

pub fn service_dir(root: &Path, name: &str) -> PathBuf {
    let d = root.join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A socket file whose listener is gone: refuses connections.
pub fn dead_socket(path: &Path) {
    drop(UnixListener::bind(path).unwrap());
    assert_eq!(connect_probe(path), ConnectOutcome::Refused);
}

/// A listener whose backlog is full: connect says EAGAIN. Keep the returned fds alive.
pub fn busy_socket(path: &Path) -> Vec<OwnedFd> {
    let addr = SocketAddrUnix::new(path).unwrap();
    let listener = socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .unwrap();
    bind(&listener, &addr).unwrap();
    listen(&listener, 0).unwrap();
    let mut fds = vec![listener];
    for _ in 0..64 {
        if connect_probe(path) == ConnectOutcome::Busy {
            return fds;
        }
        let c = socket_with(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        let _ = connect(&c, &addr);
        fds.push(c);
    }
    panic!("could not fill the backlog of {}", path.display());
}

/// Waits for the first event matching `pred`, up to `deadline`.
pub async fn wait_event(
    rx: &mut broadcast::Receiver<Event>,
    deadline: Duration,
    pred: impl Fn(&Event) -> bool,
) -> Event {
    tokio::time::timeout(deadline, async {
        loop {
            match rx.recv().await {
                Ok(ev) if pred(&ev) => return ev,
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("event channel closed: {e}"),
            }
        }
    })
    .await
    .expect("event did not arrive before the deadline")
}

pub fn changed_to(ev: &Event, path: &Path, state: &str) -> bool {
    matches!(ev, Event::SocketChanged { socket, to, .. } if socket == &path.display().to_string() && *to == state)
}
