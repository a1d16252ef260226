//! Probing in batches on the probe pool: a hung path costs its batch-mates one wait, a full
//! scan of many sockets reads the kernel's socket table instead of connecting to each.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::oneshot;

use super::discover;
use super::probe::ProbePool;
use super::state::Observation;
use super::{ProbeHook, Scanner, probe};

/// The services of one scan, by index.
pub(super) type Names = Arc<Vec<String>>;
/// The sockets of one scan to probe: the index of their service in [`Names`] and their kind.
pub(super) type Wanted = Arc<Vec<(u32, String)>>;

/// Sockets per blocking probe batch.
const PROBE_BATCH: usize = 32;
/// From this many sockets on, a full scan reads the kernel's socket table once instead of
/// connecting to every socket (below it, the connects are cheaper than reading the table of
/// every Unix socket on the machine).
const TABLE_PROBE_MIN: usize = 512;

// === impl Scanner ===

impl Scanner {
    /// Probes every wanted socket; one observation per socket, in order. A full scan of many
    /// sockets reads the kernel's socket table once instead of connecting to each (see
    /// [`probe::judge`]); a socket the table cannot judge, or every socket if the table cannot be
    /// read, gets a real connect.
    pub(super) async fn probe_all(
        &self,
        names: &Names,
        wanted: &Wanted,
        full: bool,
    ) -> Vec<Observation> {
        if !full || wanted.len() < TABLE_PROBE_MIN {
            return self
                .run_batches(names, wanted, probe::probe, probe::timed_out)
                .await;
        }
        // Every `look` before the table is read: a socket bound after its look is then in it.
        let looks = self
            .run_batches(names, wanted, probe::look, || {
                probe::Looked::Done(probe::timed_out())
            })
            .await;
        let bound = match tokio::task::spawn_blocking(hero_socket::BoundSockets::query).await {
            Ok(Ok(bound)) => Some(bound),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "kernel socket table unavailable; connecting to each socket");
                None
            }
            Err(_) => None,
        };
        // Consumed in order, the looks' buffer becomes the observations' (same layout: std
        // collects in place), so a scan of 10,000 sockets holds one such list, not three.
        let mut out: Vec<Option<Observation>> = looks
            .into_iter()
            .enumerate()
            .map(|(i, l)| match (&bound, l) {
                (_, probe::Looked::Done(obs)) => Some(obs),
                (Some(b), l) => probe::judge(&l, b).or_else(|| {
                    // Not in the table: dead, or skipped by the dump. A file a real connect
                    // found refused and that the table still does not list stays refused
                    // without a new connect: a file nothing is bound to can never be bound
                    // again, and if it is a starting service's, the table lists it once it
                    // listens.
                    let (service, kind) = &wanted[i];
                    let rec = self.records.socket(&names[*service as usize], kind)?;
                    probe::still_refused(&l, rec)
                }),
                (None, _) => None,
            })
            .collect();
        let undecided: Vec<usize> = (0..out.len()).filter(|i| out[*i].is_none()).collect();
        if !undecided.is_empty() {
            let subset = Arc::new(undecided.iter().map(|i| wanted[*i].clone()).collect());
            let connected = self
                .run_batches(names, &subset, probe::probe, probe::timed_out)
                .await;
            for (i, obs) in undecided.into_iter().zip(connected) {
                out[i] = Some(obs);
            }
        }
        out.into_iter()
            .map(|o| o.unwrap_or_else(probe::timed_out))
            .collect()
    }

    /// Runs `work` on the path of every wanted socket (service index in `names`, kind) in
    /// bounded concurrent batches on the probe pool; one result per socket, in order
    /// (`stalled()` for one whose work did not finish in time).
    pub(super) async fn run_batches<T: Send + 'static>(
        &self,
        names: &Names,
        wanted: &Wanted,
        work: fn(&Path) -> T,
        stalled: fn() -> T,
    ) -> Vec<T> {
        let timeout = self.cfg.probe_timeout;
        let root: Arc<Path> = Arc::from(self.cfg.root.as_path());
        let n = wanted.len();
        let mut batches: Vec<(usize, Vec<T>)> =
            futures_util::stream::iter((0..n).step_by(PROBE_BATCH))
                .map(|start| {
                    let range = start..(start + PROBE_BATCH).min(n);
                    let (pool, hook) = (self.pool.clone(), self.probe_hook.clone());
                    let (root, names, wanted) = (root.clone(), names.clone(), wanted.clone());
                    async move {
                        let batch = Batch {
                            pool,
                            root,
                            names,
                            wanted,
                            timeout,
                            hook,
                            work,
                            stalled,
                        };
                        (start, batch.run(range).await)
                    }
                })
                .buffer_unordered(self.cfg.probe_concurrency.max(1))
                .collect()
                .await;
        batches.sort_unstable_by_key(|(start, _)| *start);
        // Sized once: collecting the batches' results would grow by doubling (16,384 slots
        // for a scan of 10,000 sockets).
        let mut out = Vec::with_capacity(n);
        for (_, obs) in batches {
            out.extend(obs);
        }
        out
    }
}

/// Service names, and the sockets to probe: the index of their service and their kind.
pub(super) fn flatten(listed: Vec<(String, Vec<String>)>) -> (Names, Wanted) {
    let mut names = Vec::with_capacity(listed.len());
    let mut wanted = Vec::with_capacity(listed.iter().map(|(_, s)| s.len()).sum());
    for (name, socks) in listed {
        let i = names.len() as u32;
        names.push(name);
        wanted.extend(socks.into_iter().map(|kind| (i, kind)));
    }
    (Arc::new(names), Arc::new(wanted))
}

/// One batch of probe work: `work` on the paths of `wanted[range]`, on the probe pool.
struct Batch<T> {
    pool: Arc<ProbePool>,
    root: Arc<Path>,
    names: Names,
    wanted: Wanted,
    timeout: Duration,
    hook: Option<ProbeHook>,
    work: fn(&Path) -> T,
    stalled: fn() -> T,
}

impl<T: Send + 'static> Batch<T> {
    /// Runs the batch; one result per path, in order.
    ///
    /// Work that makes no progress for `timeout` (a hung filesystem) counts as `stalled()`, and
    /// the paths after it are done again in a fresh job, so a stuck path costs its batch-mates
    /// nothing but that one wait. The worker reports once, at the end: the waiting side only
    /// looks at its progress when a `timeout` passes, so a normal batch costs one wake-up.
    async fn run(self, range: std::ops::Range<usize>) -> Vec<T> {
        let mut out = Vec::with_capacity(range.len());
        let mut rest = range;
        while !rest.is_empty() {
            let progress = Arc::new(std::sync::Mutex::new(Vec::with_capacity(rest.len())));
            let abandoned = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let (done_tx, mut done_rx) = oneshot::channel::<()>();
            let (root, names) = (self.root.clone(), self.names.clone());
            let (todo, wanted, hook, progress2, abandoned2, work) = (
                rest.clone(),
                self.wanted.clone(),
                self.hook.clone(),
                progress.clone(),
                abandoned.clone(),
                self.work,
            );
            self.pool.run(Box::new(move || {
                let mut path = PathBuf::new();
                for (service, kind) in &wanted[todo] {
                    if abandoned2.load(std::sync::atomic::Ordering::Relaxed) {
                        return;
                    }
                    discover::socket_path(&mut path, &root, &names[*service as usize], kind);
                    if let Some(h) = &hook {
                        h(&path);
                    }
                    let result = work(&path);
                    progress2
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(result);
                }
                let _ = done_tx.send(());
            }));
            let mut seen = 0;
            loop {
                match tokio::time::timeout(self.timeout, &mut done_rx).await {
                    Ok(_) => break,
                    Err(_) => {
                        let now = progress.lock().unwrap_or_else(|e| e.into_inner()).len();
                        if now == seen {
                            break;
                        }
                        seen = now;
                    }
                }
            }
            abandoned.store(true, std::sync::atomic::Ordering::Relaxed);
            let done: Vec<T> =
                std::mem::take(&mut *progress.lock().unwrap_or_else(|e| e.into_inner()));
            let got = done.len();
            out.extend(done);
            if got == rest.len() {
                break;
            }
            // `wanted[rest.start + got]` is the one that stalled (or panicked).
            out.push((self.stalled)());
            rest = (rest.start + got + 1).min(rest.end)..rest.end;
        }
        out
    }
}
