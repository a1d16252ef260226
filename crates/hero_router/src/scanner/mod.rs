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
//!
//! This file holds the task and the scans; each other concern has its file: `watch.rs` (the
//! directory watch), `root.rs` (a root replaced, deleted or unreadable), `batches.rs` (probing
//! on the probe pool), `reaping.rs` (choosing and guarding unlinks; `reaper.rs` does one),
//! `records.rs` (what is known between scans), `state.rs` (the pure state machine).

mod batches;
pub(crate) mod discover;
pub(crate) mod hero_proc;
pub(crate) mod probe;
pub(crate) mod reaper;
mod reaping;
mod records;
mod root;
pub(crate) mod state;
mod watch;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::registry::events::{Event, unix_ms, unix_ns};
use crate::registry::names::Ignored;
use crate::registry::state::{SkipReason, SocketState};
use crate::registry::table::{LastScan, Service, Socket, Table};
use crate::registry::{self, Registry, ScanSummary, TableWriter};
use batches::flatten;
use discover::ListHook;
use probe::ProbePool;
use reaper::ReapHook;
use records::Records;
use root::root_identity;
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
    /// Why the root, gone, could not be created again, as last logged: logged once until it
    /// changes or the root is back.
    root_lost: Option<String>,
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
            root_lost: None,
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
                            // The path is the records' (shared), counted there.
                            .map(|k| s(&k.kind) + records::detail_heap(&k.detail))
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
        let mut root_id = root_identity(&self.cfg.root).ok();
        let mut settling: BTreeMap<String, (Instant, Duration)> = BTreeMap::new();
        let mut next_scan = Instant::now();
        loop {
            let settle_due = settling.values().map(|(at, _)| *at).min();
            let touched: BTreeSet<String> = tokio::select! {
                // A shutdown wins over a scan that is due at the same moment.
                biased;
                _ = token.cancelled() => break,
                _ = tokio::time::sleep_until(next_scan) => {
                    self.look_after_root(&mut root_id, &mut watcher, &watch_tx).await;
                    self.scan_full(ProbeCause::Periodic).await;
                    next_scan = Instant::now() + jitter(self.cfg.scan_interval);
                    BTreeSet::new()
                }
                Some(req) = self.out.requests.recv() => {
                    self.look_after_root(&mut root_id, &mut watcher, &watch_tx).await;
                    let summary = self.scan_full(ProbeCause::Manual).await;
                    let _ = req.reply.send(self.answer(summary));
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
                        self.look_after_root(&mut root_id, &mut watcher, &watch_tx).await;
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
                let added = self.sync_watches(w);
                if !added.is_empty() {
                    self.scan_services(&added).await;
                }
            }
        }
        tracing::debug!("scanner stopped");
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
        let mut listed: Vec<(String, Vec<String>)> = found.services.into_iter().collect();
        for name in errors.keys() {
            listed.push((name.clone(), self.records.known(name)));
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
        let mut reaped = if cause == ProbeCause::Watch {
            Vec::new()
        } else {
            self.reap_candidates().await
        };
        if cause == ProbeCause::Periodic && self.cfg.reap.enabled {
            reaped.extend(self.recover_staged(found.staged).await);
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
                    errors.insert(name.clone(), e.kind().to_string());
                    listed.push((name.clone(), self.records.known(&name)));
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

    /// Folds the observations of `wanted` (sockets of the services in `names`) into the
    /// records, emitting events. Sockets of those services that were not observed are gone.
    fn apply(
        &mut self,
        names: &[String],
        wanted: &[(u32, String)],
        observations: Vec<Observation>,
        cause: ProbeCause,
    ) {
        let now = unix_ms();
        let mut path = PathBuf::new();
        self.records.begin();
        for name in names {
            self.records.service_mut(name);
        }
        for ((service, kind), obs) in wanted.iter().zip(&observations) {
            let service = &names[*service as usize];
            discover::socket_path(&mut path, &self.cfg.root, service, kind);
            if let Some(change) = self.records.observe(service, kind, &path, obs, cause, now) {
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
        self.out.events.emit(event);
    }
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
