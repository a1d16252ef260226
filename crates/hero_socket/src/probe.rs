//! One non-blocking `connect(2)` to a Unix socket path.

use std::path::Path;

use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType, connect, socket_with};

/// What a single non-blocking connect to a path said.
///
/// On Linux a `connect` to a Unix stream socket completes at once: it succeeds while the
/// listener's backlog has room, and fails with `EAGAIN` when the backlog is full. It never waits,
/// so a probe costs a few microseconds whatever the peer is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectOutcome {
    /// A listener accepted the connection into its backlog.
    Connected,
    /// The listener exists but its backlog is full (`EAGAIN`), or the connect is still in
    /// progress. Alive, never stale.
    Busy,
    /// `ECONNREFUSED`: nobody listens. Also what a regular file, a directory or a socket that is
    /// bound but not yet listening answers, so callers must look at the file type and age too.
    Refused,
    /// `EACCES` / `EPERM`: we may not connect.
    Denied,
    /// `ENOENT`: the path is gone.
    Missing,
    /// Any other errno, kept for the log.
    Other(Errno),
}

/// Connects once, without blocking, and closes the connection again.
pub fn connect_probe(path: &Path) -> ConnectOutcome {
    let addr = match SocketAddrUnix::new(path) {
        Ok(addr) => addr,
        Err(e) => return ConnectOutcome::Other(e),
    };
    let fd = match socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    ) {
        Ok(fd) => fd,
        Err(e) => return ConnectOutcome::Other(e),
    };
    classify(connect(&fd, &addr))
}

/// Maps a connect result to an outcome. Separate from the syscall so every errno is testable.
pub(crate) fn classify(result: rustix::io::Result<()>) -> ConnectOutcome {
    match result {
        Ok(()) => ConnectOutcome::Connected,
        Err(Errno::AGAIN | Errno::INPROGRESS | Errno::ALREADY | Errno::TIMEDOUT) => {
            ConnectOutcome::Busy
        }
        Err(Errno::CONNREFUSED) => ConnectOutcome::Refused,
        Err(Errno::ACCESS | Errno::PERM) => ConnectOutcome::Denied,
        Err(Errno::NOENT) => ConnectOutcome::Missing,
        Err(e) => ConnectOutcome::Other(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_errno_maps_to_its_outcome() {
        assert_eq!(classify(Ok(())), ConnectOutcome::Connected);
        assert_eq!(classify(Err(Errno::AGAIN)), ConnectOutcome::Busy);
        assert_eq!(classify(Err(Errno::INPROGRESS)), ConnectOutcome::Busy);
        assert_eq!(classify(Err(Errno::TIMEDOUT)), ConnectOutcome::Busy);
        assert_eq!(classify(Err(Errno::CONNREFUSED)), ConnectOutcome::Refused);
        assert_eq!(classify(Err(Errno::ACCESS)), ConnectOutcome::Denied);
        assert_eq!(classify(Err(Errno::PERM)), ConnectOutcome::Denied);
        assert_eq!(classify(Err(Errno::NOENT)), ConnectOutcome::Missing);
        assert_eq!(
            classify(Err(Errno::NOTDIR)),
            ConnectOutcome::Other(Errno::NOTDIR)
        );
    }

    #[test]
    fn real_listener_refused_file_and_missing() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("live.sock");
        let _l = std::os::unix::net::UnixListener::bind(&live).unwrap();
        assert_eq!(connect_probe(&live), ConnectOutcome::Connected);

        let dead = dir.path().join("dead.sock");
        drop(std::os::unix::net::UnixListener::bind(&dead).unwrap());
        assert_eq!(connect_probe(&dead), ConnectOutcome::Refused);

        let file = dir.path().join("file.sock");
        std::fs::write(&file, b"").unwrap();
        assert_eq!(connect_probe(&file), ConnectOutcome::Refused);

        assert_eq!(
            connect_probe(&dir.path().join("none.sock")),
            ConnectOutcome::Missing
        );
    }
}
