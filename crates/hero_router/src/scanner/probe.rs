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
mod tests {
    use super::*;

    fn id(ino: u64) -> Identity {
        Identity {
            dev: 1,
            ino,
            ctime_ns: 5,
        }
    }

    fn record(
        state: SocketState,
        identity: Option<Identity>,
        detail: &'static str,
    ) -> SocketRecord {
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
}
