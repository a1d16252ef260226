//! One probe of one socket path: `lstat` first, then a non-blocking connect.

use std::borrow::Cow;
use std::io;
use std::path::Path;

use hero_socket::{ConnectOutcome, FileKind, connect_probe, stat_nofollow};

use super::state::{Observation, SocketState};

/// Classifies `path` (CONTRACT §2). Never follows a symlink: the file type comes from `lstat`,
/// and only a real socket file is connected to. `state: None` means the path is gone.
pub fn probe(path: &Path) -> Observation {
    let st = match stat_nofollow(path) {
        Ok(st) => st,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return gone(),
        Err(e) => return denied(None, format!("stat: {e}").into()),
    };
    let identity = Some(st.identity);
    let kind = match st.kind {
        FileKind::Socket => return connect(path, identity),
        FileKind::Regular => "a regular file",
        FileKind::Directory => "a directory",
        FileKind::Symlink => "a symlink (never followed)",
        FileKind::Other => "not a socket (fifo or device)",
    };
    Observation {
        state: Some(SocketState::NotSocket),
        identity,
        detail: kind.into(),
    }
}

fn connect(path: &Path, identity: Option<hero_socket::Identity>) -> Observation {
    let (state, detail) = match connect_probe(path) {
        ConnectOutcome::Connected => (SocketState::Live, "connect ok".into()),
        ConnectOutcome::Busy => (SocketState::Busy, "connect: EAGAIN, backlog full".into()),
        ConnectOutcome::Refused => (SocketState::Refused, "connect: ECONNREFUSED".into()),
        ConnectOutcome::Denied => (SocketState::Denied, "connect: permission denied".into()),
        ConnectOutcome::Missing => return gone(),
        // An errno we cannot interpret (e.g. a path too long for sockaddr_un): we cannot reach
        // it, and we must never reap what we cannot judge.
        ConnectOutcome::Other(e) => return denied(identity, format!("connect: {e}").into()),
    };
    Observation {
        state: Some(state),
        identity,
        detail,
    }
}

/// The observation for a probe that did not finish within `--probe-timeout`.
pub fn timed_out() -> Observation {
    Observation {
        state: Some(SocketState::Busy),
        identity: None,
        detail: "probe timed out".into(),
    }
}

fn gone() -> Observation {
    Observation {
        state: None,
        identity: None,
        detail: "gone".into(),
    }
}

fn denied(identity: Option<hero_socket::Identity>, detail: Cow<'static, str>) -> Observation {
    Observation {
        state: Some(SocketState::Denied),
        identity,
        detail,
    }
}

/// A job for the probe pool.
type Job = Box<dyn FnOnce() + Send>;

/// A fixed pool of probe threads. However many sockets there are and however long a probe
/// hangs (a stuck filesystem), the probes of every scan run on these threads and no others, so
/// the number of threads (and the memory each one's allocator keeps) never grows. A hung probe
/// holds its thread until the syscall returns; the others go on.
pub(crate) struct ProbePool {
    jobs: std::sync::mpsc::Sender<Job>,
}

impl ProbePool {
    /// Starts `threads` probe threads (at least one). They end when the pool is dropped.
    pub(crate) fn new(threads: usize) -> ProbePool {
        let (jobs, rx) = std::sync::mpsc::channel::<Job>();
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("hero-probe-{i}"))
                .spawn(move || {
                    loop {
                        let job = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "cannot start a probe thread");
            }
        }
        ProbePool { jobs }
    }

    /// Runs `job` on a probe thread.
    pub(crate) fn run(&self, job: Job) {
        let _ = self.jobs.send(job);
    }
}
