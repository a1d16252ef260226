//! The owner lock (`<sock>.lock`) and binding a socket under it.

use std::ffi::OsString;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use rustix::fs::{FileType, FlockOperation, Mode, OFlags, flock, fstat, open};
use rustix::io::Errno;
use rustix::net::{
    AddressFamily, SocketAddrUnix, SocketFlags, SocketType, bind, listen, socket_with,
};

use crate::identity::{FileKind, Stat, stat_nofollow};
use crate::probe::{ConnectOutcome, connect_probe};

/// `<sock>.lock`: the owner-lock path of a socket path.
pub fn lock_path(sock: &Path) -> PathBuf {
    let mut name = OsString::from(sock.as_os_str());
    name.push(".lock");
    PathBuf::from(name)
}

/// An exclusive `flock` on a socket's `.lock` file, released when dropped (or when the process
/// dies, however it dies).
#[derive(Debug)]
pub struct OwnerLock {
    _fd: OwnedFd,
    path: PathBuf,
}

/// The answer of [`OwnerLock::try_existing`].
#[derive(Debug)]
pub enum TryLock {
    /// Nobody held the lock; we hold it now.
    Acquired(OwnerLock),
    /// Somebody holds it: the socket has a living owner.
    Held,
    /// There is no lock file: the socket's owner does not cooperate.
    NoLockFile,
}

/// Why [`OwnedSocket::bind`] failed.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// Another process holds the owner lock.
    #[error("{path} is owned by another running process (it holds {lock})", path = .path.display(), lock = .lock.display())]
    AlreadyOwned {
        /// The socket path.
        path: PathBuf,
        /// The lock file somebody else holds.
        lock: PathBuf,
    },
    /// A process that does not use the owner lock is listening at the path.
    #[error("{path} is a live socket of a process that does not hold its owner lock; refusing to replace it", path = .path.display())]
    InUse {
        /// The socket path.
        path: PathBuf,
    },
    /// Something that is not a socket is at the path; it is never removed.
    #[error("{path} exists and is not a socket; refusing to remove it", path = .path.display())]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// The socket's directory is a symlink or not a directory: a socket is only ever bound in
    /// a real directory (a scanner, which never follows symlinks, would not see it, and the
    /// socket would land wherever the link points).
    #[error("{path} is a symlink or not a directory; a socket is bound only in a real directory: remove it", path = .path.display())]
    NotADirectory {
        /// The directory path.
        path: PathBuf,
    },
    /// A syscall failed. The message carries the OS error, so it is not also a `source`: a
    /// chain of causes (`{:#}`) would print it twice.
    #[error("{op} {path}: {error}", path = .path.display())]
    Io {
        /// What we were doing.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The error.
        error: io::Error,
    },
}

/// How to bind an owned socket.
#[derive(Debug, Clone)]
pub struct BindOptions {
    /// Permission bits set on the socket file before it listens (e.g. `0o660`).
    pub mode: Option<u32>,
    /// `listen(2)` backlog.
    pub backlog: i32,
    /// How long to wait for a lock somebody else holds. A reaper holds it for microseconds; a
    /// running owner holds it forever, so this is short.
    pub lock_wait: Duration,
}

/// A listening socket bound under its owner lock. Keep it (or the [`SocketGuard`] from
/// [`OwnedSocket::into_parts`]) alive as long as the socket serves.
#[derive(Debug)]
pub struct OwnedSocket {
    listener: UnixListener,
    guard: SocketGuard,
}

/// The owner lock of a bound socket plus what the socket file looked like right after bind.
#[derive(Debug)]
pub struct SocketGuard {
    lock: OwnerLock,
    path: PathBuf,
    stat: Stat,
}

// === impl OwnerLock ===

impl OwnerLock {
    /// Tries, without waiting, to take the lock of an *existing* lock file. Never creates one.
    /// A lock path that is a symlink or not a regular file is an error: it is not ours to judge.
    pub fn try_existing(sock: &Path) -> io::Result<TryLock> {
        let path = lock_path(sock);
        // O_NONBLOCK so a FIFO planted at the lock path cannot hang us; O_NOFOLLOW so a
        // symlink is never followed.
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let fd = match open(&path, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(TryLock::NoLockFile),
            Err(e) => return Err(e.into()),
        };
        if FileType::from_raw_mode(fstat(&fd)?.st_mode) != FileType::RegularFile {
            return Err(io::Error::other(format!(
                "{} is not a regular file",
                path.display()
            )));
        }
        match flock(&fd, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(TryLock::Acquired(OwnerLock { _fd: fd, path })),
            Err(Errno::WOULDBLOCK) => Ok(TryLock::Held),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates the lock file if needed and takes the lock, retrying for up to `wait`.
    pub fn acquire(sock: &Path, wait: Duration) -> Result<OwnerLock, BindError> {
        let path = lock_path(sock);
        let io_err = |op, error: Errno| BindError::Io {
            op,
            path: path.clone(),
            error: error.into(),
        };
        let flags = OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = open(&path, flags, Mode::from_raw_mode(0o600)).map_err(|e| io_err("open", e))?;
        let deadline = Instant::now() + wait;
        let mut pause = Duration::from_micros(200);
        loop {
            match flock(&fd, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => return Ok(OwnerLock { _fd: fd, path }),
                Err(Errno::WOULDBLOCK) if Instant::now() < deadline => {
                    thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                Err(Errno::WOULDBLOCK) => {
                    return Err(BindError::AlreadyOwned {
                        path: sock.to_path_buf(),
                        lock: path,
                    });
                }
                Err(e) => return Err(io_err("flock", e)),
            }
        }
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

// === impl BindOptions ===

impl Default for BindOptions {
    fn default() -> Self {
        BindOptions {
            mode: Some(0o660),
            backlog: 1024,
            lock_wait: Duration::from_secs(2),
        }
    }
}

// === impl OwnedSocket ===

impl OwnedSocket {
    /// Owns `path` the cooperative way: take `<path>.lock`, remove a stale socket file (only a
    /// socket that refuses connections), bind, set the mode, listen. Creates the parent directory.
    pub fn bind(path: &Path, opts: &BindOptions) -> Result<OwnedSocket, BindError> {
        let io_err = |op, error: io::Error| BindError::Io {
            op,
            path: path.to_path_buf(),
            error,
        };
        if let Some(parent) = path.parent() {
            match stat_nofollow(parent) {
                Ok(st) if st.kind != FileKind::Directory => {
                    return Err(BindError::NotADirectory {
                        path: parent.to_path_buf(),
                    });
                }
                Ok(_) => {}
                Err(_) => std::fs::create_dir_all(parent)
                    .map_err(|e| io_err("create directory for", e))?,
            }
        }
        let lock = OwnerLock::acquire(path, opts.lock_wait)?;
        match stat_nofollow(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("stat", e)),
            Ok(st) if st.kind != FileKind::Socket => {
                return Err(BindError::NotASocket {
                    path: path.to_path_buf(),
                });
            }
            Ok(_) => match connect_probe(path) {
                // We hold the lock, so no cooperative owner can be binding here right now.
                ConnectOutcome::Refused | ConnectOutcome::Missing => {
                    match std::fs::remove_file(path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(io_err("remove stale", e)),
                    }
                }
                _ => {
                    return Err(BindError::InUse {
                        path: path.to_path_buf(),
                    });
                }
            },
        }
        let fd = listen_on(path, opts).map_err(|e| io_err("bind", e.into()))?;
        let stat = stat_nofollow(path).map_err(|e| io_err("stat", e))?;
        Ok(OwnedSocket {
            listener: UnixListener::from(fd),
            guard: SocketGuard {
                lock,
                path: path.to_path_buf(),
                stat,
            },
        })
    }

    /// The listening socket (blocking; call `set_nonblocking(true)` before handing it to tokio).
    pub fn listener(&self) -> &UnixListener {
        &self.listener
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.guard.path
    }

    /// Splits into the listener and the guard that must outlive it.
    pub fn into_parts(self) -> (UnixListener, SocketGuard) {
        (self.listener, self.guard)
    }
}

fn listen_on(path: &Path, opts: &BindOptions) -> rustix::io::Result<OwnedFd> {
    let (_dir, short) = crate::probe::reachable(path)?;
    let addr = SocketAddrUnix::new(&short)?;
    let fd = socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    bind(&fd, &addr)?;
    if let Some(mode) = opts.mode {
        // Before listen(): nobody can connect while the mode is still the umask's.
        rustix::fs::chmod(path, Mode::from_raw_mode(mode))?;
    }
    listen(&fd, opts.backlog)?;
    Ok(fd)
}

// === impl SocketGuard ===

impl SocketGuard {
    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The owner lock held for this socket.
    pub fn lock(&self) -> &OwnerLock {
        &self.lock
    }

    /// True if the path still names the socket we bound.
    pub fn is_still_ours(&self) -> bool {
        matches!(stat_nofollow(&self.path), Ok(now) if now.identity == self.stat.identity)
    }

    /// Unlinks the socket if it is still ours, then releases the lock (never deleting the lock
    /// file). Returns whether it unlinked.
    pub fn remove_if_ours(self) -> io::Result<bool> {
        // The lock is held until `self` drops at the end of this function, so no cooperative
        // owner can have re-bound the path between the check and the unlink.
        if !self.is_still_ours() {
            return Ok(false);
        }
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> BindOptions {
        BindOptions {
            lock_wait: Duration::from_millis(50),
            ..BindOptions::default()
        }
    }

    #[test]
    fn bind_sets_mode_and_holds_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("svc").join("rpc.sock");
        let owned = OwnedSocket::bind(&path, &opts()).unwrap();
        assert_eq!(stat_nofollow(&path).unwrap().mode, 0o660);
        assert_eq!(connect_probe(&path), ConnectOutcome::Connected);
        assert!(matches!(
            OwnerLock::try_existing(&path).unwrap(),
            TryLock::Held
        ));
        let err = OwnedSocket::bind(&path, &opts()).unwrap_err();
        assert!(matches!(err, BindError::AlreadyOwned { .. }), "{err}");
        // The failed second bind did not disturb the first.
        assert_eq!(connect_probe(owned.path()), ConnectOutcome::Connected);
    }

    #[test]
    fn bind_replaces_only_a_stale_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rpc.sock");
        drop(UnixListener::bind(&path).unwrap());
        assert_eq!(connect_probe(&path), ConnectOutcome::Refused);
        let owned = OwnedSocket::bind(&path, &opts()).unwrap();
        assert_eq!(connect_probe(&path), ConnectOutcome::Connected);
        let (_listener, guard) = owned.into_parts();
        assert!(guard.is_still_ours());
        assert!(guard.remove_if_ours().unwrap());
        assert!(!path.exists());
        assert!(lock_path(&path).exists(), "the lock file is never deleted");
        assert!(matches!(
            OwnerLock::try_existing(&path).unwrap(),
            TryLock::Acquired(_)
        ));
    }

    #[test]
    fn bind_never_steals_a_live_socket_or_removes_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("live.sock");
        let _l = UnixListener::bind(&live).unwrap();
        assert!(matches!(
            OwnedSocket::bind(&live, &opts()),
            Err(BindError::InUse { .. })
        ));
        assert_eq!(connect_probe(&live), ConnectOutcome::Connected);

        let file = dir.path().join("file.sock");
        std::fs::write(&file, b"keep").unwrap();
        assert!(matches!(
            OwnedSocket::bind(&file, &opts()),
            Err(BindError::NotASocket { .. })
        ));
        assert_eq!(std::fs::read(&file).unwrap(), b"keep");
    }

    /// A socket is bound only in a real directory: a symlinked directory would put it (and
    /// its lock) wherever the link points, outside the root a scanner sees; a file where the
    /// directory should be gets a message that names it.
    #[test]
    fn bind_refuses_a_symlinked_or_non_directory_parent() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let linked = dir.path().join("svc");
        std::os::unix::fs::symlink(elsewhere.path(), &linked).unwrap();
        let e = OwnedSocket::bind(&linked.join("rpc.sock"), &opts()).unwrap_err();
        assert!(
            matches!(&e, BindError::NotADirectory { path } if *path == linked),
            "{e}"
        );
        assert!(
            e.to_string().contains("is a symlink or not a directory"),
            "{e}"
        );
        assert_eq!(
            std::fs::read_dir(elsewhere.path()).unwrap().count(),
            0,
            "nothing was made where the link points"
        );
        let file = dir.path().join("plain");
        std::fs::write(&file, b"keep").unwrap();
        let e = OwnedSocket::bind(&file.join("rpc.sock"), &opts()).unwrap_err();
        assert!(
            matches!(&e, BindError::NotADirectory { path } if *path == file),
            "{e}"
        );
        assert_eq!(std::fs::read(&file).unwrap(), b"keep");
        // A missing directory is still made.
        let fresh = dir.path().join("new/deeper/rpc.sock");
        assert!(OwnedSocket::bind(&fresh, &opts()).is_ok());
    }

    #[test]
    fn remove_if_ours_leaves_a_replacement_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rpc.sock");
        let (listener, guard) = OwnedSocket::bind(&path, &opts()).unwrap().into_parts();
        drop(listener);
        std::fs::remove_file(&path).unwrap();
        let _other = UnixListener::bind(&path).unwrap();
        assert!(!guard.remove_if_ours().unwrap());
        assert_eq!(connect_probe(&path), ConnectOutcome::Connected);
    }

    #[test]
    fn try_existing_without_lock_file_and_on_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rpc.sock");
        assert!(matches!(
            OwnerLock::try_existing(&path).unwrap(),
            TryLock::NoLockFile
        ));
        std::os::unix::fs::symlink("/etc/hostname", lock_path(&path)).unwrap();
        assert!(OwnerLock::try_existing(&path).is_err());
    }
}
