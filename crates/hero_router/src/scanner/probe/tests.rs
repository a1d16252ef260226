use super::*;

fn id(ino: u64) -> Identity {
    Identity {
        dev: 1,
        ino,
        ctime_ns: 5,
    }
}

fn record(state: SocketState, identity: Option<Identity>, detail: &'static str) -> SocketRecord {
    SocketRecord {
        state,
        since_unix_ms: 0,
        refused_streak: 1,
        first_refusal: identity,
        identity,
        detail: detail.into(),
        last_skip: None,
    }
}

#[test]
fn only_the_same_file_refused_by_a_connect_stays_refused_unconnected() {
    let refused = record(SocketState::Refused, Some(id(7)), REFUSED);
    let obs = still_refused(&Looked::Socket(id(7)), &refused).expect("same file");
    assert_eq!(obs.state, Some(SocketState::Refused));
    assert_eq!(obs.identity, Some(id(7)));

    // Another file at the path (a restart): connect to it.
    assert_eq!(still_refused(&Looked::Socket(id(8)), &refused), None);
    let restarted = Identity {
        ctime_ns: 6,
        ..id(7)
    };
    assert_eq!(still_refused(&Looked::Socket(restarted), &refused), None);
    // A file the last probe found in any other state: connect to it.
    for state in [
        SocketState::Live,
        SocketState::Busy,
        SocketState::Denied,
        SocketState::NotSocket,
    ] {
        let last = record(state, Some(id(7)), REFUSED);
        assert_eq!(
            still_refused(&Looked::Socket(id(7)), &last),
            None,
            "{state:?}"
        );
    }
    // Refused for another reason than a refused connect, or without a known file.
    let odd = record(SocketState::Refused, Some(id(7)), "probe timed out");
    assert_eq!(still_refused(&Looked::Socket(id(7)), &odd), None);
    let unknown = record(SocketState::Refused, None, REFUSED);
    assert_eq!(still_refused(&Looked::Socket(id(7)), &unknown), None);
    // What `lstat` already decided is not a socket to connect to.
    assert_eq!(still_refused(&Looked::Done(gone()), &refused), None);
}

/// A socket file whose listener is gone: refuses connections (polled: a process forked at
/// this instant holds a copy of the listener until it execs).
fn dead_socket(path: &Path) {
    drop(std::os::unix::net::UnixListener::bind(path).unwrap());
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while hero_socket::connect_probe(path) != ConnectOutcome::Refused {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} still accepts",
            path.display()
        );
        std::thread::yield_now();
    }
}

/// A listener whose backlog is full: connect says EAGAIN. Keep the returned fds alive.
fn busy_socket(path: &Path) -> Vec<std::os::fd::OwnedFd> {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let addr = SocketAddrUnix::new(path).unwrap();
    let stream = |flags| {
        rustix::net::socket_with(AddressFamily::UNIX, SocketType::STREAM, flags, None).unwrap()
    };
    let listener = stream(SocketFlags::CLOEXEC);
    rustix::net::bind(&listener, &addr).unwrap();
    rustix::net::listen(&listener, 0).unwrap();
    let mut fds = vec![listener];
    for _ in 0..64 {
        if hero_socket::connect_probe(path) == ConnectOutcome::Busy {
            return fds;
        }
        let c = stream(SocketFlags::NONBLOCK | SocketFlags::CLOEXEC);
        let _ = rustix::net::connect(&c, &addr);
        fds.push(c);
    }
    panic!("could not fill the backlog of {}", path.display());
}

/// The kernel's socket table says what a connect would: for every kind of path, the
/// observation judged from the table equals the one a real connect gives.
#[test]
fn the_socket_table_judges_like_a_connect() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().to_path_buf();
    let mut keep: Vec<Box<dyn std::any::Any>> = Vec::new();
    keep.push(Box::new(
        std::os::unix::net::UnixListener::bind(dir.join("live.sock")).unwrap(),
    ));
    keep.push(Box::new(busy_socket(&dir.join("busy.sock"))));
    dead_socket(&dir.join("dead.sock"));
    // Bound, not listening: a service between bind() and listen().
    let starting = rustix::net::socket(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::STREAM,
        None,
    )
    .unwrap();
    rustix::net::bind(
        &starting,
        &rustix::net::SocketAddrUnix::new(dir.join("starting.sock")).unwrap(),
    )
    .unwrap();
    keep.push(Box::new(starting));
    keep.push(Box::new(
        std::os::unix::net::UnixDatagram::bind(dir.join("dgram.sock")).unwrap(),
    ));
    std::fs::write(dir.join("file.sock"), b"").unwrap();
    std::fs::create_dir(dir.join("dir.sock")).unwrap();
    std::os::unix::fs::symlink(dir.join("live.sock"), dir.join("link.sock")).unwrap();
    let paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let looks: Vec<_> = paths.iter().map(|p| look(p)).collect();
    let bound = hero_socket::BoundSockets::query().unwrap();
    let mut judged = 0;
    for (path, looked) in paths.iter().zip(&looks) {
        // Judge first: a real connect to a listener leaves a connection in its queue.
        let Some(from_table) = judge(looked, &bound) else {
            continue;
        };
        let connected = probe(path);
        assert_eq!(
            (from_table.state, from_table.identity),
            (connected.state, connected.identity),
            "{}: table {from_table:?}, connect {connected:?}",
            path.display()
        );
        judged += 1;
    }
    // Everything but the datagram socket (the table leaves other socket types to a connect)
    // and the dead file (a dump can skip entries, so nothing bound proves nothing).
    assert_eq!(judged, paths.len() - 2, "{paths:?}");
    let states: std::collections::BTreeMap<String, Option<SocketState>> = paths
        .iter()
        .zip(&looks)
        .filter_map(|(p, l)| {
            let obs = judge(l, &bound)?;
            Some((p.file_name()?.to_string_lossy().into_owned(), obs.state))
        })
        .collect();
    assert_eq!(states["live.sock"], Some(SocketState::Live));
    assert_eq!(states["busy.sock"], Some(SocketState::Busy));
    assert!(!states.contains_key("dead.sock"));
    assert_eq!(states["starting.sock"], Some(SocketState::Refused));
    drop(keep);
}

/// `probe_all` turns the looks of a scan into its observations in the same buffer, which std
/// does only while the two have one layout.
#[test]
fn a_look_and_an_observation_share_a_layout() {
    use std::alloc::Layout;
    assert_eq!(
        Layout::new::<Looked>(),
        Layout::new::<Option<Observation>>()
    );
}
