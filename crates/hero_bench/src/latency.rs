//! The discovery-latency benchmark: how long after `bind` returns the directory watch makes a
//! new socket live, with periodic scans too rare to help.

use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use hero_router::{Event, Stamped};
use hero_router::{Registry, Scanner};
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::measure::{Stats, ms};

/// Service directories that exist before the scanner starts.
const DIRS: usize = 50;
/// How long one socket may take before it counts as missed.
const DEADLINE: Duration = Duration::from_secs(5);

/// Latencies of one variant.
#[derive(Debug, Clone, Default)]
pub(crate) struct Variant {
    /// Sockets bound.
    pub(crate) runs: usize,
    /// bind → `SocketChanged{to: "live"}`, in ms, for the sockets that made it.
    pub(crate) latency: Stats,
    /// Sockets with no live event within [`DEADLINE`].
    pub(crate) misses: usize,
    /// Sockets first reported `refused` (bound but not yet listening when probed).
    pub(crate) via_refused: usize,
    /// What the table said about the first few missed sockets.
    pub(crate) miss_notes: Vec<String>,
}

/// What one wait saw.
struct Seen {
    /// bind → live event, or `None` if the deadline passed first.
    latency: Option<Duration>,
    /// A `refused` event for the path came first.
    via_refused: bool,
}

/// Runs both variants: `binds` sockets in watched directories, `new_dirs` sockets each in a
/// directory made just before. Returns (existing dirs, new dirs).
pub(crate) async fn run(binds: usize, new_dirs: usize) -> anyhow::Result<(Variant, Variant)> {
    let dir = tempfile::Builder::new().prefix("hero_bench").tempdir()?;
    let root = dir.path();
    for s in 0..DIRS {
        std::fs::create_dir(root.join(format!("svc_{s:02}")))?;
    }
    let (scanner, handle) = Scanner::new(crate::bench_config(root, true));
    let mut events = handle.subscribe();
    let token = CancellationToken::new();
    let task = tokio::spawn(scanner.run(token.clone()));
    let result = async {
        tokio::time::timeout(DEADLINE, handle.ready())
            .await
            .context("scanner never ready")?;
        let mut tables = handle.tables();
        tokio::time::timeout(DEADLINE, tables.wait_for(|t| t.services.len() >= DIRS))
            .await
            .context("scanner never saw the service directories")??;
        // The directories are watched right after the first scan, then re-listed (a
        // non-full scan); wait for that so the first bind does not race the watch.
        let settle = Instant::now() + Duration::from_secs(2);
        while let Ok(Ok(ev)) = tokio::time::timeout_at(settle, events.recv()).await {
            if matches!(ev.event, Event::ScanCompleted { full: false, .. }) {
                break;
            }
        }
        let mut held = Vec::with_capacity(binds + new_dirs);
        let in_dirs = (0..binds).map(|i| root.join(format!("svc_{:02}/web_{i}.sock", i % DIRS)));
        let existing = variant(in_dirs, false, &mut events, &mut held, &handle).await?;
        let new = (0..new_dirs).map(|j| root.join(format!("new_{j:03}/rpc.sock")));
        let fresh = variant(new, true, &mut events, &mut held, &handle).await?;
        Ok((existing, fresh))
    }
    .await;
    token.cancel();
    task.await.context("scanner task panicked")?;
    result
}

/// Binds a listener at each path (after creating its directory if `mkdir`) and waits for its
/// live event before the next.
async fn variant(
    paths: impl Iterator<Item = PathBuf>,
    mkdir: bool,
    events: &mut Receiver<Stamped>,
    held: &mut Vec<UnixListener>,
    handle: &Registry,
) -> anyhow::Result<Variant> {
    let (mut v, mut samples) = (Variant::default(), Vec::new());
    for path in paths {
        if mkdir {
            std::fs::create_dir(path.parent().unwrap_or(&path))?;
        }
        let seen = bind_and_wait(&path, events, held).await?;
        v.runs += 1;
        v.via_refused += usize::from(seen.via_refused);
        match seen.latency {
            Some(d) => samples.push(ms(d)),
            None => {
                v.misses += 1;
                if v.miss_notes.len() < 5 {
                    v.miss_notes.push(miss_note(&path, handle));
                }
            }
        }
    }
    v.latency = Stats::new(samples);
    Ok(v)
}

/// Binds a listener at `path` and waits for its live event.
async fn bind_and_wait(
    path: &Path,
    events: &mut Receiver<Stamped>,
    held: &mut Vec<UnixListener>,
) -> anyhow::Result<Seen> {
    // Forget whatever happened before this bind.
    while let Ok(_) | Err(TryRecvError::Lagged(_)) = events.try_recv() {}
    held.push(UnixListener::bind(path).with_context(|| format!("bind {}", path.display()))?);
    let t0 = Instant::now();
    let want = path.display().to_string();
    let deadline = t0 + DEADLINE;
    let mut via_refused = false;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(Stamped {
                event: Event::SocketChanged { socket, to, .. },
                ..
            })) if socket == want => match to {
                "live" => {
                    return Ok(Seen {
                        latency: Some(t0.elapsed()),
                        via_refused,
                    });
                }
                "refused" => via_refused = true,
                _ => {}
            },
            Ok(Ok(_)) | Ok(Err(RecvError::Lagged(_))) => {}
            Ok(Err(RecvError::Closed)) => bail!("scanner stopped"),
            Err(_) => {
                return Ok(Seen {
                    latency: None,
                    via_refused,
                });
            }
        }
    }
}

/// What the table says about a socket whose live event never came.
fn miss_note(path: &Path, handle: &Registry) -> String {
    let want = path.display().to_string();
    let table = handle.table();
    let sock = table
        .services
        .iter()
        .flat_map(|s| &s.sockets)
        .find(|s| *s.path == *path);
    let state = sock.map_or("absent from the table".to_owned(), |s| {
        format!("{} ({})", s.state, s.detail)
    });
    format!("{want}: after {DEADLINE:?} the table says {state}")
}
