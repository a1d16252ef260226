//! The scanner: discovers services, probes their sockets, reaps dead ones, publishes the table.
//!
//! One task owns all mutable state ([`Scanner::run`]). It wakes for:
//!
//! - the **periodic full scan**, every `--scan-interval` ± 5 % jitter. Only these scans advance
//!   refusal streaks, and they are the source of truth;
//! - **directory-watch events** (inotify through `notify`): the touched service directories are
//!   re-scanned at once, so a new socket is routable within milliseconds. A socket that refuses
//!   right after it appeared is usually bound but not listening yet, so it is re-probed soon
//!   after with a growing delay. A new directory is re-listed right after its watch is added,
//!   since sockets bound before that are never reported;
//! - **scan requests** (`router.scan`), answered with a [`ScanSummary`].
//!
//! After each scan a new immutable [`Table`] is published through a `watch` channel, and every
//! change is an [`Event`] (logged once, and broadcast).

pub(crate) mod discover;
pub(crate) mod hero_proc;
pub(crate) mod probe;
pub(crate) mod reaper;
mod records;
pub(crate) mod state;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use notify::Watcher;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::registry::events::Event;
use crate::registry::names::{Ignored, OWN_SERVICE, valid_service_name};
use crate::registry::state::{SkipReason, SocketState};
use crate::registry::table::{LastScan, Service, Socket, Table};
use crate::registry::{self, Registry, ScanSummary, TableWriter};
use discover::{ListHook, SocketPath};
use hero_proc::Running;
use probe::ProbePool;
use reaper::{ReapHook, ReapOutcome};
use records::Records;
use state::{Observation, ProbeCause, ReapPolicy};

/// Scanner settings (docs/sockets-and-reaping.md, docs/serve.md#flags).
#[derive(Debug, Clone)]
pub struct ScannerConfig {
    /// The socket root.
    pub root: PathBuf,
    /// `--scan-interval`: time between periodic full scans.
    pub scan_interval: Duration,
    /// `--probe-timeout`: a probe batch that takes longer counts its sockets as busy.
    pub probe_timeout: Duration,
    /// Reaping rules 1–2 and `--no-reap`.
    pub reap: ReapPolicy,
    /// At most this many probe batches run at once, so a scan of many sockets is bounded and
    /// one slow path delays only its own batch.
    pub probe_concurrency: usize,
    /// `--hero-proc-method`: the hero_proc method that lists services and their states.
    pub hero_proc_method: String,
    /// How long to wait for hero_proc before skipping rule 7.
    pub hero_proc_timeout: Duration,
    /// Watch the directory for changes (off only in one-shot `scan`).
    pub watch: bool,
}

/// The scanner task's state. Build with [`Scanner::new`], then [`Scanner::run`] it, or drive
/// single scans with [`Scanner::scan_full`].
pub struct Scanner {
    cfg: ScannerConfig,
    records: Records,
    ignored: Vec<Ignored>,
    /// Runs every probe: a fixed number of threads.
    pool: Arc<ProbePool>,
    /// Where tables and events are published, and scan requests come from.
    out: TableWriter,
    hook: Option<ReapHook>,
    probe_hook: Option<ProbeHook>,
    list_hook: Option<ListHook>,
    generation: u64,
    /// A full scan has succeeded.
    ready: bool,
    last_scan: Option<LastScan>,
}

/// A test seam called right before each probe, on the blocking thread that probes.
#[cfg_attr(not(any(test, feature = "test-util")), allow(unreachable_pub))]
pub type ProbeHook = Arc<dyn Fn(&Path) + Send + Sync>;

/// First re-probe of a socket that refused right after it appeared.
const SETTLE_FIRST: Duration = Duration::from_millis(1);
/// Longest pause between such re-probes.
const SETTLE_MAX: Duration = Duration::from_millis(500);
/// A refused socket younger than this is presumed to be starting up, and re-probed.
const SETTLE_WINDOW: Duration = Duration::from_secs(3);
/// Sockets per blocking probe batch.
const PROBE_BATCH: usize = 32;
/// From this many sockets on, a full scan reads the kernel's socket table once instead of
/// connecting to every socket (below it, the connects are cheaper than reading the table of
/// every Unix socket on the machine).
const TABLE_PROBE_MIN: usize = 512;

// === impl Scanner ===

impl Scanner {
    /// Creates the scanner and a new registry it writes to; the registry's reader handle.
    /// Nothing runs until [`Scanner::run`] or a scan call.
    pub fn new(cfg: ScannerConfig) -> (Scanner, Registry) {
        let (registry, writer) = registry::channel(cfg.root.clone());
        (Scanner::with_writer(cfg, writer), registry)
    }

    /// Creates the scanner writing to an existing registry.
    pub fn with_writer(cfg: ScannerConfig, writer: TableWriter) -> Scanner {
        let pool = Arc::new(ProbePool::new(cfg.probe_concurrency));
        Scanner {
            cfg,
            records: Records::default(),
            ignored: Vec::new(),
            pool,
            out: writer,
            hook: None,
            probe_hook: None,
            list_hook: None,
            generation: 0,
            ready: false,
            last_scan: None,
        }
    }

    /// Installs a test seam that runs on the blocking pool right before each probe (a test can
    /// make one path as slow as a hung filesystem).
    pub fn with_probe_hook(mut self, hook: ProbeHook) -> Self {
        self.probe_hook = Some(hook);
        self
    }

    /// Installs a test seam that runs on the blocking pool right before each service directory
    /// is listed (a test can make one vanish between reading the root and listing it).
    pub fn with_list_hook(mut self, hook: ListHook) -> Self {
        self.list_hook = Some(hook);
        self
    }

    /// Installs a test seam that runs between the removal steps of every reap.
    pub fn with_reap_hook(mut self, hook: ReapHook) -> Self {
        self.hook = Some(hook);
        self
    }

    /// The last published table.
    pub fn table(&self) -> Arc<Table> {
        self.out.table.borrow().clone()
    }

    /// Heap bytes the scanner holds for what it knows: its records, the ignored entries, and
    /// the published table. An estimate by capacities (not the allocator's view), exact enough
    /// that anything growing from scan to scan shows.
    pub fn footprint(&self) -> usize {
        use std::mem::size_of;
        let s = |x: &String| x.capacity();
        let ignored = |v: &Vec<Ignored>| {
            v.capacity() * size_of::<Ignored>()
                + v.iter().map(|i| s(&i.path) + s(&i.reason)).sum::<usize>()
        };
        let table = self.out.table.borrow();
        let published: usize = table.services.capacity() * size_of::<Arc<Service>>()
            + table
                .services
                .iter()
                .map(|svc| {
                    size_of::<Service>()
                        + s(&svc.name)
                        + svc.error.as_ref().map_or(0, s)
                        + svc.sockets.capacity() * size_of::<Socket>()
                        + svc
                            .sockets
                            .iter()
                            .map(|k| s(&k.kind) + s(&k.path) + records::detail_heap(&k.detail))
                            .sum::<usize>()
                })
                .sum::<usize>()
            + ignored(&table.ignored);
        self.records.footprint() + ignored(&self.ignored) + published
    }

    /// Runs until `token` is cancelled.
    ///
    /// Besides scanning, it looks after the root itself: after every full scan, and whenever
    /// the watch reports the root deleted or moved, it compares the root's identity with the
    /// one it started with. A missing root is created again (0755, as at start-up); a missing
    /// or replaced root gets a new watch and a [`Event::RootReplaced`], on which `serve` binds
    /// the router's own sockets again.
    pub async fn run(mut self, token: CancellationToken) {
        let (watch_tx, mut watch_rx) = mpsc::unbounded_channel();
        let mut watcher = if self.cfg.watch {
            self.start_watcher(watch_tx.clone())
        } else {
            None
        };
        let mut watched = BTreeSet::new();
        let mut root_id = root_identity(&self.cfg.root).ok();
        let mut settling: BTreeMap<String, (Instant, Duration)> = BTreeMap::new();
        let mut next_scan = Instant::now();
        loop {
            let settle_due = settling.values().map(|(at, _)| *at).min();
            let touched: BTreeSet<String> = tokio::select! {
                _ = token.cancelled() => break,
                _ = tokio::time::sleep_until(next_scan) => {
                    self.look_after_root(&mut root_id, &mut watcher, &mut watched, &watch_tx).await;
                    self.scan_full(ProbeCause::Periodic).await;
                    next_scan = Instant::now() + jitter(self.cfg.scan_interval);
                    BTreeSet::new()
                }
                Some(req) = self.out.requests.recv() => {
                    self.look_after_root(&mut root_id, &mut watcher, &mut watched, &watch_tx).await;
                    let summary = self.scan_full(ProbeCause::Manual).await;
                    let _ = req.reply.send(summary);
                    BTreeSet::new()
                }
                Some(first) = watch_rx.recv() => {
                    let mut names = BTreeSet::new();
                    let mut check_root = self.services_of(first, &mut names);
                    while let Ok(more) = watch_rx.try_recv() {
                        check_root |= self.services_of(more, &mut names);
                    }
                    self.out.stats.watch_batches.fetch_add(1, Ordering::Relaxed);
                    if check_root {
                        self.look_after_root(&mut root_id, &mut watcher, &mut watched, &watch_tx).await;
                    }
                    self.scan_services(&names).await;
                    names
                }
                _ = sleep_until_opt(settle_due) => {
                    let now = Instant::now();
                    let due: BTreeSet<String> =
                        settling.iter().filter(|(_, (at, _))| *at <= now).map(|(n, _)| n.clone()).collect();
                    self.scan_services(&due).await;
                    due
                }
            };
            // Re-probe soon whatever refused right after it appeared; stop once it settled.
            for name in &touched {
                if self.has_young_refused(name) {
                    let delay = settling
                        .get(name)
                        .map_or(SETTLE_FIRST, |(_, d)| (*d * 2).min(SETTLE_MAX));
                    settling.insert(name.clone(), (Instant::now() + delay, delay));
                } else {
                    settling.remove(name);
                }
            }
            if let Some(w) = watcher.as_mut() {
                let added = self.sync_watches(w, &mut watched);
                if !added.is_empty() {
                    self.scan_services(&added).await;
                }
            }
        }
        tracing::debug!("scanner stopped");
    }

    /// Checks that the root is still the directory the scanner watches; if it was deleted or
    /// replaced, creates it again if needed, re-arms the watch (the old one died with the old
    /// directory) and emits [`Event::RootReplaced`]. The watch alone cannot be trusted to report
    /// a deletion: the kernel reports a directory deleted only once nothing holds a file under
    /// it open, and the router holds its owner locks there. So this runs before every full
    /// scan, and on watch events that removed or renamed something at the top of the root.
    async fn look_after_root(
        &mut self,
        known: &mut Option<(u64, u64)>,
        watcher: &mut Option<notify::RecommendedWatcher>,
        watched: &mut BTreeSet<String>,
        watch_tx: &mpsc::UnboundedSender<notify::Event>,
    ) {
        let Some(recreated) = self.recover_root(known) else {
            return;
        };
        if self.cfg.watch {
            *watcher = self.start_watcher(watch_tx.clone());
            watched.clear();
        }
        self.emit(Event::RootReplaced {
            root: display(&self.cfg.root),
            recreated,
        });
    }

    /// Compares the root with the one the scanner knows (`known`): `Some(recreated)` if it was
    /// missing (then created again, 0755) or replaced by another directory. An unreadable root
    /// that is still the same directory is not a replacement (the scans report it).
    fn recover_root(&self, known: &mut Option<(u64, u64)>) -> Option<bool> {
        let root = &self.cfg.root;
        let (now, recreated) = match root_identity(root) {
            Ok(id) => (id, false),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Err(e) = hero_socket::root::create_root(root) {
                    tracing::error!(root = %root.display(), error = %e, "the socket root is gone and cannot be created again");
                    return None;
                }
                (root_identity(root).ok()?, true)
            }
            Err(_) => return None,
        };
        let replaced = known.is_some_and(|k| k != now);
        *known = Some(now);
        (replaced || recreated).then_some(recreated)
    }

    /// Discovers and probes the whole root, reaps what the rules allow (not on watch scans),
    /// and publishes the table.
    pub async fn scan_full(&mut self, cause: ProbeCause) -> ScanSummary {
        let started = Instant::now();
        self.out.stats.full_scans.fetch_add(1, Ordering::Relaxed);
        let root = self.cfg.root.clone();
        let hook = self.list_hook.clone();
        let walk = move || discover::discover(&root, hook.as_ref());
        let found = match tokio::task::spawn_blocking(walk).await {
            Ok(Ok(found)) => found,
            // An unreadable root says nothing about the services: keep the table as it is
            // rather than report every socket gone.
            Ok(Err(e)) => return self.unchanged(e.to_string(), started),
            Err(e) => return self.unchanged(e.to_string(), started),
        };
        self.root_readable();
        self.ignored = found.ignored;
        // Services whose directory cannot be listed keep the sockets we knew of: those are
        // probed by path (in a mode-000 directory that says `denied`, which is never reaped).
        let mut errors: BTreeMap<String, String> = found.unlisted;
        let mut listed: Vec<(String, Vec<SocketPath>)> = found.services.into_iter().collect();
        for name in errors.keys() {
            let known = self.records.known(name);
            listed.push((
                name.clone(),
                known
                    .into_iter()
                    .map(|(kind, path)| SocketPath { kind, path })
                    .collect(),
            ));
        }
        let listed_names: BTreeSet<&str> = listed.iter().map(|(n, _)| n.as_str()).collect();
        let gone: Vec<String> = self
            .records
            .names()
            .filter(|n| !listed_names.contains(n.as_str()))
            .cloned()
            .collect();
        for name in gone {
            self.drop_service(&name);
        }
        self.note_errors(&mut errors, listed.iter().map(|(n, _)| n.as_str()));
        let (names, wanted) = flatten(listed);
        let observations = self.probe_all(&names, &wanted, true).await;
        self.apply(&names, &wanted, observations, cause);
        let reaped = if cause == ProbeCause::Watch {
            Vec::new()
        } else {
            self.reap_candidates().await
        };
        if cause == ProbeCause::Periodic && self.cfg.reap.enabled {
            self.recover_staged(found.staged).await;
        }
        self.ready = true;
        let duration_ms = started.elapsed().as_millis() as u64;
        self.last_scan = Some(LastScan {
            at_unix_ms: unix_ms(),
            duration_ms,
            ok: true,
            error: None,
        });
        let table = self.publish(true, cause == ProbeCause::Periodic);
        let mut summary = summarize(&table);
        summary.reaped = reaped;
        summary.duration_ms = duration_ms;
        summary
    }

    /// The answer of a full scan that could not read the root: the table stays as it was,
    /// and says why.
    fn unchanged(&mut self, error: String, started: Instant) -> ScanSummary {
        let duration_ms = started.elapsed().as_millis() as u64;
        if self.last_scan.as_ref().and_then(|s| s.error.as_deref()) != Some(error.as_str()) {
            tracing::warn!(root = %self.cfg.root.display(), error = error.as_str(), "cannot read the socket root; keeping the table as it was");
        }
        self.last_scan = Some(LastScan {
            at_unix_ms: unix_ms(),
            duration_ms,
            ok: false,
            error: Some(error),
        });
        let table = self.publish(true, false);
        ScanSummary {
            duration_ms,
            ..summarize(&table)
        }
    }

    /// Logs once when the root can be read again after failing.
    fn root_readable(&self) {
        if let Some(e) = self.last_scan.as_ref().and_then(|s| s.error.as_deref()) {
            tracing::info!(root = %self.cfg.root.display(), was = e, "the socket root can be read again");
        }
    }

    /// Records the listing error of each service in `listed` (none if it is not in
    /// `errors`); one log line when that changes for a directory, not one per scan.
    fn note_errors<'a>(
        &mut self,
        errors: &mut BTreeMap<String, String>,
        listed: impl Iterator<Item = &'a str>,
    ) {
        for name in listed {
            let error = errors.remove(name);
            let had = self.records.error(name).is_some();
            if !self.records.set_error(name, error.clone()) {
                continue;
            }
            match error {
                Some(why) => tracing::warn!(
                    service = name,
                    dir = %self.cfg.root.join(name).display(),
                    error = why.as_str(),
                    "cannot list the service directory; probing the sockets known in it"
                ),
                None if had => {
                    tracing::info!(service = name, "the service directory can be listed again")
                }
                None => {}
            }
        }
    }

    /// Re-lists and probes only the named services (a watch event). Never reaps, never
    /// advances streaks.
    pub async fn scan_services(&mut self, names: &BTreeSet<String>) {
        if names.is_empty() {
            return;
        }
        self.out.stats.partial_scans.fetch_add(1, Ordering::Relaxed);
        let root = self.cfg.root.clone();
        let names2 = names.clone();
        // Listing touches the filesystem: off the runtime threads, like the full walk.
        let listings = tokio::task::spawn_blocking(move || {
            names2
                .into_iter()
                .map(|n| {
                    let l = discover::discover_service(&root, &n);
                    (n, l)
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        let mut listed = Vec::new();
        let mut errors = BTreeMap::new();
        for (name, listing) in listings {
            match listing {
                Ok(Some(socks)) => listed.push((name, socks)),
                Ok(None) => self.drop_service(&name),
                Err(e) => {
                    let known = self.records.known(&name);
                    let socks = known
                        .into_iter()
                        .map(|(kind, path)| SocketPath { kind, path })
                        .collect();
                    errors.insert(name.clone(), e.kind().to_string());
                    listed.push((name, socks));
                }
            }
        }
        self.note_errors(&mut errors, listed.iter().map(|(n, _)| n.as_str()));
        let (names, wanted) = flatten(listed);
        let observations = self.probe_all(&names, &wanted, false).await;
        self.apply(&names, &wanted, observations, ProbeCause::Watch);
        if self.last_scan.is_some() {
            self.publish(false, false);
        }
    }

    /// Probes every wanted socket; one observation per socket, in order. A full scan of many
    /// sockets reads the kernel's socket table once instead of connecting to each (see
    /// [`probe::judge`]); a socket the table cannot judge, or every socket if the table cannot be
    /// read, gets a real connect.
    async fn probe_all(
        &self,
        names: &[String],
        wanted: &Arc<Vec<(u32, SocketPath)>>,
        full: bool,
    ) -> Vec<Observation> {
        if !full || wanted.len() < TABLE_PROBE_MIN {
            return self
                .run_batches(wanted, probe::probe, probe::timed_out)
                .await;
        }
        // Every `look` before the table is read: a socket bound after its look is then in it.
        let looks = self
            .run_batches(wanted, probe::look, || {
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
        let mut out: Vec<Option<Observation>> = looks
            .iter()
            .enumerate()
            .map(|(i, l)| match (&bound, l) {
                (_, probe::Looked::Done(obs)) => Some(obs.clone()),
                (Some(b), l) => probe::judge(l, b).or_else(|| {
                    // Not in the table: dead, or skipped by the dump. A file a real connect
                    // found refused and that the table still does not list stays refused
                    // without a new connect: a file nothing is bound to can never be bound
                    // again, and if it is a starting service's, the table lists it once it
                    // listens.
                    let (service, sock) = &wanted[i];
                    let rec = self.records.socket(&names[*service as usize], &sock.kind)?;
                    probe::still_refused(l, rec)
                }),
                (None, _) => None,
            })
            .collect();
        let undecided: Vec<usize> = (0..out.len()).filter(|i| out[*i].is_none()).collect();
        if !undecided.is_empty() {
            let subset = Arc::new(undecided.iter().map(|i| wanted[*i].clone()).collect());
            let connected = self
                .run_batches(&subset, probe::probe, probe::timed_out)
                .await;
            for (i, obs) in undecided.into_iter().zip(connected) {
                out[i] = Some(obs);
            }
        }
        out.into_iter()
            .map(|o| o.unwrap_or_else(probe::timed_out))
            .collect()
    }

    /// Runs `work` on every wanted path in bounded concurrent batches on the probe pool; one
    /// result per path, in order (`stalled()` for a path whose work did not finish in time).
    async fn run_batches<T: Send + 'static>(
        &self,
        wanted: &Arc<Vec<(u32, SocketPath)>>,
        work: fn(&Path) -> T,
        stalled: fn() -> T,
    ) -> Vec<T> {
        let timeout = self.cfg.probe_timeout;
        let n = wanted.len();
        let mut batches: Vec<(usize, Vec<T>)> =
            futures_util::stream::iter((0..n).step_by(PROBE_BATCH))
                .map(|start| {
                    let range = start..(start + PROBE_BATCH).min(n);
                    let (pool, wanted, hook) =
                        (self.pool.clone(), wanted.clone(), self.probe_hook.clone());
                    async move {
                        let batch = Batch {
                            pool,
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
        batches.into_iter().flat_map(|(_, obs)| obs).collect()
    }

    /// Folds the observations of `wanted` (sockets of the services in `names`) into the
    /// records, emitting events. Sockets of those services that were not observed are gone.
    fn apply(
        &mut self,
        names: &[String],
        wanted: &[(u32, SocketPath)],
        observations: Vec<Observation>,
        cause: ProbeCause,
    ) {
        let now = unix_ms();
        self.records.begin();
        for name in names {
            self.records.service_mut(name);
        }
        for ((service, sock), obs) in wanted.iter().zip(&observations) {
            let service = &names[*service as usize];
            if let Some(change) = self
                .records
                .observe(service, &sock.kind, &sock.path, obs, cause, now)
            {
                self.emit_change(change);
            }
        }
        for name in names {
            for change in self.records.sweep(name) {
                self.emit_change(change);
            }
        }
        let (now, grace) = (Instant::now(), self.cfg.reap.grace);
        for name in names {
            if self.records.settle(name, now, grace) {
                self.emit(Event::ServiceDropped {
                    service: name.clone(),
                    empty_for: grace,
                });
            }
        }
    }

    fn emit_change(&self, c: records::Change) {
        self.emit(Event::SocketChanged {
            service: c.service,
            socket: c.socket,
            from: c.from,
            to: c.to,
        });
    }

    /// Applies the reap rules to every refused socket; returns the paths removed.
    async fn reap_candidates(&mut self) -> Vec<String> {
        let now_ns = unix_ns();
        let mut candidates = Vec::new();
        let mut skips = Vec::new();
        for (service, svc) in self.records.iter() {
            for (kind, entry) in svc.sockets.iter() {
                let (path, rec) = (&entry.path, &entry.rec);
                if rec.state != SocketState::Refused {
                    continue;
                }
                let verdict = if service == OWN_SERVICE {
                    Err(SkipReason::OwnSocket)
                } else {
                    state::reap_check(rec, &self.cfg.reap, now_ns)
                };
                match (verdict, rec.first_refusal) {
                    (Ok(()), Some(first)) => {
                        candidates.push((service.clone(), kind.clone(), path.clone(), first))
                    }
                    (Ok(()), None) => skips.push((
                        service.clone(),
                        kind.clone(),
                        SkipReason::IdentityChanged,
                        String::new(),
                    )),
                    (Err(reason), _) => {
                        skips.push((service.clone(), kind.clone(), reason, String::new()))
                    }
                }
            }
        }
        if !candidates.is_empty() {
            match hero_proc::running_services(
                &self.cfg.root,
                &self.cfg.hero_proc_method,
                self.cfg.hero_proc_timeout,
            )
            .await
            {
                Running::Known(running) => candidates.retain(|(service, kind, _, _)| {
                    let keep = !running.contains(service);
                    if !keep {
                        skips.push((
                            service.clone(),
                            kind.clone(),
                            SkipReason::HeroProcRunning,
                            String::new(),
                        ));
                    }
                    keep
                }),
                Running::Unknown(why) => {
                    tracing::debug!(reason = why.as_str(), "hero_proc guard skipped")
                }
            }
        }
        let hook = self.hook.clone();
        let jobs: Vec<_> = candidates
            .iter()
            .map(|(_, _, p, first)| (p.clone(), *first))
            .collect();
        let outcomes = tokio::task::spawn_blocking(move || {
            jobs.into_iter()
                .map(|(p, first)| reaper::reap(&p, first, hook.as_ref()))
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        let mut reaped = Vec::new();
        for ((service, kind, path, _), outcome) in candidates.into_iter().zip(outcomes) {
            let socket = display(&path);
            match outcome {
                ReapOutcome::Reaped | ReapOutcome::AlreadyGone => {
                    let reason = if outcome == ReapOutcome::Reaped {
                        "stale"
                    } else {
                        "already_gone"
                    };
                    self.records.remove_socket(&service, &kind);
                    self.emit(Event::Reaped {
                        service: service.clone(),
                        socket: socket.clone(),
                        reason,
                    });
                    self.emit(Event::SocketChanged {
                        service,
                        socket: socket.clone(),
                        from: "refused",
                        to: "gone",
                    });
                    reaped.push(socket);
                }
                ReapOutcome::Skipped(reason) => skips.push((service, kind, reason, String::new())),
                ReapOutcome::Failed(detail) => {
                    skips.push((service, kind, SkipReason::Error, detail))
                }
            }
        }
        for (service, kind, reason, detail) in skips {
            self.note_skip(&service, &kind, reason, detail);
        }
        reaped
    }

    /// Finishes removals a crashed reaper left half-done (see [`reaper::recover_staged`]).
    async fn recover_staged(&mut self, dirs: Vec<PathBuf>) {
        let own = self.cfg.root.join(OWN_SERVICE);
        let dirs: Vec<PathBuf> = dirs.into_iter().filter(|d| *d != own).collect();
        if dirs.is_empty() {
            return;
        }
        let results = tokio::task::spawn_blocking(move || {
            dirs.iter()
                .flat_map(|d| reaper::recover_staged(d))
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        for r in results {
            match r {
                reaper::Recovered::Restored(p) => {
                    tracing::warn!(socket = %p.display(), reason = "crash_leftover", "restored a socket a crashed reaper had moved aside");
                }
                reaper::Recovered::Removed(p) => {
                    let service = p
                        .parent()
                        .and_then(Path::file_name)
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    self.emit(Event::Reaped {
                        service,
                        socket: display(&p),
                        reason: "crash_leftover",
                    });
                }
                reaper::Recovered::Kept(p, why) => {
                    tracing::debug!(socket = %p.display(), reason = why, "staged reap file kept");
                }
            }
        }
    }

    /// Emits a skipped-reap event only when the socket's reason changed since the last one.
    fn note_skip(&mut self, service: &str, kind: &str, reason: SkipReason, detail: String) {
        let Some(entry) = self.records.socket_mut(service, kind) else {
            return;
        };
        if entry.rec.last_skip == Some(reason) {
            return;
        }
        entry.rec.last_skip = Some(reason);
        let socket = display(&entry.path);
        self.emit(Event::ReapSkipped {
            service: service.to_owned(),
            socket,
            reason,
            detail,
        });
    }

    fn drop_service(&mut self, name: &str) {
        for change in self.records.drop_service(name) {
            self.emit_change(change);
        }
    }

    fn has_young_refused(&self, name: &str) -> bool {
        self.records
            .has_young_refused(name, unix_ns(), SETTLE_WINDOW.as_nanos() as i128)
    }

    fn publish(&mut self, full: bool, periodic: bool) -> Arc<Table> {
        self.generation += 1;
        let table = Arc::new(Table {
            root: self.cfg.root.clone(),
            services: self.records.publish(),
            ignored: self.ignored.clone(),
            ready: self.ready,
            last_scan: self.last_scan.clone(),
            generation: self.generation,
        });
        self.out.table.send_replace(table.clone());
        let sockets = table.services.iter().map(|s| s.sockets.len()).sum();
        self.emit(Event::ScanCompleted {
            full,
            periodic,
            sockets,
            generation: self.generation,
        });
        table
    }

    fn emit(&self, event: Event) {
        event.log();
        let _ = self.out.events.send(event);
    }

    fn start_watcher(
        &self,
        tx: mpsc::UnboundedSender<notify::Event>,
    ) -> Option<notify::RecommendedWatcher> {
        let handler = move |res: notify::Result<notify::Event>| {
            if let Ok(ev) = res {
                let _ = tx.send(ev);
            }
        };
        let mut w = match notify::recommended_watcher(handler) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "directory watch unavailable; relying on periodic scans");
                return None;
            }
        };
        if let Err(e) = w.watch(&self.cfg.root, notify::RecursiveMode::NonRecursive) {
            tracing::warn!(error = %e, "cannot watch the socket root; relying on periodic scans");
            return None;
        }
        Some(w)
    }

    /// Watches every service directory in the records; returns the newly watched ones.
    fn sync_watches(
        &self,
        w: &mut notify::RecommendedWatcher,
        watched: &mut BTreeSet<String>,
    ) -> BTreeSet<String> {
        let mut added = BTreeSet::new();
        for name in self.records.names() {
            if !watched.contains(name)
                && w.watch(
                    &self.cfg.root.join(name),
                    notify::RecursiveMode::NonRecursive,
                )
                .is_ok()
            {
                watched.insert(name.clone());
                added.insert(name.clone());
            }
        }
        watched.retain(|name| {
            let keep = self.records.contains(name);
            if !keep {
                let _ = w.unwatch(&self.cfg.root.join(name));
            }
            keep
        });
        added
    }

    /// Maps a watch event to the service directories it touched; returns true if it touched
    /// the root itself (deleted, moved). Only entries appearing, vanishing or being renamed
    /// matter: opens and reads (our own scans cause those) would feed back into endless rescans.
    fn services_of(&self, ev: notify::Event, out: &mut BTreeSet<String>) -> bool {
        use notify::EventKind;
        use notify::event::ModifyKind;
        self.out.stats.watch_events.fetch_add(1, Ordering::Relaxed);
        let relevant = matches!(
            ev.kind,
            EventKind::Create(_)
                | EventKind::Remove(_)
                | EventKind::Modify(ModifyKind::Name(_) | ModifyKind::Any)
                | EventKind::Any
                | EventKind::Other
        );
        if !relevant {
            return false;
        }
        // The root itself moved or went, or something at its top did (a deleted root loses
        // its children first): worth one look at the root.
        let root_touched = matches!(
            ev.kind,
            EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_)) | EventKind::Any
        ) && ev
            .paths
            .iter()
            .any(|p| p == &self.cfg.root || p.parent() == Some(self.cfg.root.as_path()));
        for path in ev.paths {
            let name = if path.parent() == Some(self.cfg.root.as_path()) {
                path.file_name()
            } else if path.parent().and_then(Path::parent) == Some(self.cfg.root.as_path()) {
                path.parent().and_then(Path::file_name)
            } else {
                None
            };
            if let Some(name) = name
                .and_then(|n| n.to_str())
                .filter(|n| valid_service_name(n))
            {
                out.insert(name.to_owned());
            }
        }
        root_touched
    }
}

/// Service names, and the sockets to probe with the index of their service.
fn flatten(listed: Vec<(String, Vec<SocketPath>)>) -> (Vec<String>, Arc<Vec<(u32, SocketPath)>>) {
    let mut names = Vec::with_capacity(listed.len());
    let mut wanted = Vec::with_capacity(listed.iter().map(|(_, s)| s.len()).sum());
    for (name, socks) in listed {
        let i = names.len() as u32;
        names.push(name);
        wanted.extend(socks.into_iter().map(|s| (i, s)));
    }
    (names, Arc::new(wanted))
}

/// One batch of probe work: `work` on `wanted[range]`, on the probe pool.
struct Batch<T> {
    pool: Arc<ProbePool>,
    wanted: Arc<Vec<(u32, SocketPath)>>,
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
            let (todo, wanted, hook, progress2, abandoned2, work) = (
                rest.clone(),
                self.wanted.clone(),
                self.hook.clone(),
                progress.clone(),
                abandoned.clone(),
                self.work,
            );
            self.pool.run(Box::new(move || {
                for (_, sock) in &wanted[todo] {
                    if abandoned2.load(std::sync::atomic::Ordering::Relaxed) {
                        return;
                    }
                    if let Some(h) = &hook {
                        h(&sock.path);
                    }
                    let result = work(&sock.path);
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

/// The root's (dev, ino), following a symlink (the root may be one).
fn root_identity(root: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(root)?;
    Ok((md.dev(), md.ino()))
}

fn summarize(table: &Table) -> ScanSummary {
    let mut s = ScanSummary {
        services: table.services.len(),
        ..ScanSummary::default()
    };
    for sock in table.services.iter().flat_map(|svc| &svc.sockets) {
        s.sockets += 1;
        match sock.state {
            SocketState::Live => s.live += 1,
            SocketState::Busy => s.busy += 1,
            SocketState::Refused => s.refused += 1,
            SocketState::Denied | SocketState::NotSocket => {}
        }
    }
    s
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn jitter(interval: Duration) -> Duration {
    interval.mul_f64(0.95 + fastrand::f64() * 0.1)
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

/// Wall clock in ms since the epoch (for `since_unix_ms`).
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Wall clock in ns since the epoch: the clock ctime uses.
pub(crate) fn unix_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}
