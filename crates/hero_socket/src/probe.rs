//! One non-blocking `connect(2)` to a Unix socket path.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, open};

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
    let (_dir, path) = match reachable(path) {
        Ok(r) => r,
        Err(e) => return classify(Err(e)),
    };
    let addr = match SocketAddrUnix::new(&path) {
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

/// The longest path a `sockaddr_un` holds (108 bytes with the terminating NUL on Linux).
const SUN_PATH_MAX: usize = 107;

/// A path that `connect(2)` accepts for `path`. Paths too long for a `sockaddr_un` are reached
/// through `/proc/self/fd/<dirfd>/<name>`; the returned fd must stay open until connected.
pub fn reachable(path: &Path) -> rustix::io::Result<(Option<OwnedFd>, PathBuf)> {
    if path.as_os_str().len() <= SUN_PATH_MAX {
        return Ok((None, path.to_path_buf()));
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(Errno::NAMETOOLONG);
    };
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let fd = open(dir, flags, Mode::empty())?;
    let short = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd())).join(name);
    if short.as_os_str().len() > SUN_PATH_MAX {
        return Err(Errno::NAMETOOLONG);
    }
    Ok((Some(fd), short))
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
    fn paths_longer_than_sockaddr_un_are_reached_through_proc() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("d".repeat(60)).join("e".repeat(60));
        std::fs::create_dir_all(&deep).unwrap();
        let path = deep.join("rpc.sock");
        assert!(path.as_os_str().len() > SUN_PATH_MAX);
        // Bind through the same trick: the plain path is too long for bind(2) as well.
        let (_fd, short) = reachable(&path).unwrap();
        let _l = std::os::unix::net::UnixListener::bind(&short).unwrap();
        assert_eq!(connect_probe(&path), ConnectOutcome::Connected);
        assert_eq!(
            connect_probe(&deep.join("none.sock")),
            ConnectOutcome::Missing
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
