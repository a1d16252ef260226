//! One probe of one socket path: `lstat` first, then a non-blocking connect.
//!
//! A probe has two halves. [`look`] is the `lstat` (and, for a socket, whether we may write to
//! it, which `connect(2)` requires). The second half is a non-blocking connect ([`probe`] does
//! both); or, for a large scan, the kernel's socket table read once for every socket
//! ([`judge`]): for every socket it lists, the table says what the connect would return, by the
//! kernel's own rules, without making 100,000 connects (each of which costs a lookup in the
//! kernel's table of every bound Unix socket on the machine, and leaves a connection in the
//! service's accept queue). A socket the table does not list (dead, or skipped by a dump taken
//! while sockets came and went) still gets a real connect.

use std::borrow::Cow;
use std::io;
use std::path::Path;

use hero_socket::{BoundSockets, ConnectOutcome, FileKind, Identity, connect_probe, stat_nofollow};

use super::state::{Observation, SocketRecord};
use crate::registry::state::SocketState;

/// The first half of a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Looked {
    /// A socket file we may write to: a connect decides the rest.
    Socket(Identity),
    /// Anything else is already an observation.
    Done(Observation),
}

/// `lstat` (never following a symlink), and for a socket file whether we may write to it.
pub(crate) fn look(path: &Path) -> Looked {
    let st = match stat_nofollow(path) {
        Ok(st) => st,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Looked::Done(gone()),
        Err(e) => return Looked::Done(denied(None, format!("stat: {e}").into())),
    };
    let identity = Some(st.identity);
    let kind = match st.kind {
        FileKind::Socket => {
            // connect(2) needs write permission on the socket file.
            let access = rustix::fs::accessat(
                rustix::fs::CWD,
                path,
                rustix::fs::Access::WRITE_OK,
                rustix::fs::AtFlags::EACCESS,
            );
            return match access {
                Ok(()) => Looked::Socket(st.identity),
                Err(e) if e == rustix::io::Errno::NOENT => Looked::Done(gone()),
                Err(e) if e == rustix::io::Errno::ACCESS || e == rustix::io::Errno::PERM => {
                    Looked::Done(denied(identity, "connect: permission denied".into()))
                }
                // Anything odd (a path too long, say): let the connect tell.
                Err(_) => Looked::Socket(st.identity),
            };
        }
        FileKind::Regular => "a regular file",
        FileKind::Directory => "a directory",
        FileKind::Symlink => "a symlink (never followed)",
        FileKind::Other => "not a socket (fifo or device)",
    };
    Looked::Done(Observation {
        state: Some(SocketState::NotSocket),
        identity,
        detail: kind.into(),
    })
}

/// Classifies `path` (docs/sockets-and-reaping.md#probe-states). Never follows a symlink: the file
/// type comes from `lstat`, and only a real socket file is connected to. `state: None` means the
/// path is gone.
pub(crate) fn probe(path: &Path) -> Observation {
    match look(path) {
        Looked::Done(obs) => obs,
        Looked::Socket(id) => connect(path, Some(id)),
    }
}

/// The second half of a probe from the kernel's socket table, read after every `look` of the
/// scan: what the connect would have returned. `None` where the table cannot say; then a real
/// connect must.
pub(crate) fn judge(looked: &Looked, bound: &BoundSockets) -> Option<Observation> {
    match looked {
        Looked::Done(obs) => Some(obs.clone()),
        Looked::Socket(id) => bound
            .connect_outcome(id)
            .map(|outcome| observe(outcome, Some(*id))),
    }
}

/// A socket file the kernel's table does not list, already found refused by a real connect
/// as this same file: still refused, without a new connect. `None` if the record says
/// anything else, or is of another file.
pub(crate) fn still_refused(looked: &Looked, last: &SocketRecord) -> Option<Observation> {
    let Looked::Socket(id) = looked else {
        return None;
    };
    let refused = last.state == SocketState::Refused && last.detail == REFUSED;
    (refused && last.identity == Some(*id)).then(|| Observation {
        state: Some(SocketState::Refused),
        identity: Some(*id),
        detail: REFUSED.into(),
    })
}

/// What a refused connect says.
const REFUSED: &str = "connect: ECONNREFUSED";

fn connect(path: &Path, identity: Option<Identity>) -> Observation {
    observe(connect_probe(path), identity)
}

/// The observation for a connect outcome.
fn observe(outcome: ConnectOutcome, identity: Option<Identity>) -> Observation {
    let (state, detail) = match outcome {
        ConnectOutcome::Connected => (SocketState::Live, "connect ok".into()),
        ConnectOutcome::Busy => (SocketState::Busy, "connect: EAGAIN, backlog full".into()),
        ConnectOutcome::Refused => (SocketState::Refused, REFUSED.into()),
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
pub(crate) fn timed_out() -> Observation {
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

fn denied(identity: Option<Identity>, detail: Cow<'static, str>) -> Observation {
    Observation {
        state: Some(SocketState::Denied),
        identity,
        detail,
    }
}

/// A job for the probe pool.
type Job = Box<dyn FnOnce() + Send>;

/// A bounded pool of probe threads. However many sockets there are and however long a probe
/// hangs (a stuck filesystem), the probes of every scan run on these threads and no others, so
/// the number of threads (and the memory each one's allocator keeps) never grows past its
/// bound. A hung probe holds its thread until the syscall returns; the others go on.
///
/// Threads start when a job finds none idle, not all at once: a root of a few services never
/// needs sixteen, and each thread costs its stack and allocator pages for as long as the
/// router runs (idle `serve` had 16 probe threads of which two ever ran a probe).
pub(crate) struct ProbePool {
    jobs: std::sync::mpsc::Sender<Job>,
    threads: std::sync::Arc<Threads>,
}

/// What the probe threads share: the job queue and how many of them there are.
struct Threads {
    rx: std::sync::Mutex<std::sync::mpsc::Receiver<Job>>,
    /// Threads started (or starting), at most `max`.
    started: std::sync::atomic::AtomicUsize,
    /// Threads waiting for a job.
    idle: std::sync::atomic::AtomicUsize,
    max: usize,
}

impl ProbePool {
    /// A pool of at most `threads` probe threads (at least one). They end when the pool is
    /// dropped.
    pub(crate) fn new(threads: usize) -> ProbePool {
        let (jobs, rx) = std::sync::mpsc::channel::<Job>();
        ProbePool {
            jobs,
            threads: std::sync::Arc::new(Threads {
                rx: std::sync::Mutex::new(rx),
                started: 0.into(),
                idle: 0.into(),
                max: threads.max(1),
            }),
        }
    }

    /// Runs `job` on a probe thread, starting one if none is idle and the bound allows.
    pub(crate) fn run(&self, job: Job) {
        use std::sync::atomic::Ordering::SeqCst;
        let _ = self.jobs.send(job);
        let t = &self.threads;
        if t.idle.load(SeqCst) > 0 {
            return;
        }
        let Ok(i) = t
            .started
            .fetch_update(SeqCst, SeqCst, |n| (n < t.max).then_some(n + 1))
        else {
            return;
        };
        let threads = t.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("hero-probe-{i}"))
            .spawn(move || {
                loop {
                    threads.idle.fetch_add(1, SeqCst);
                    let job = threads.rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    threads.idle.fetch_sub(1, SeqCst);
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                }
            });
        if let Err(e) = spawned {
            t.started.fetch_sub(1, SeqCst);
            tracing::warn!(error = %e, "cannot start a probe thread");
        }
    }
}

#[cfg(test)]
mod tests;
