//! The catalog fetcher (docs/catalog.md): a task beside the scanner that keeps every live
//! service's manifest and OpenRPC document in the registry.
//!
//! It reads the table and writes only the catalog. It wakes for:
//!
//! - a **new table**: a service whose fetch target (its live `rpc` socket, else its first live
//!   socket) is new or is another file than last time (a restart) is fetched;
//! - a **refresh request** (`router.scan` for every service, `router.spec` with `refresh`
//!   for one) and every `--catalog-refresh`: fetched again whatever their socket;
//! - a **finished fetch**: the entry is rebuilt ([`fetch::entry`]), published, and a changed
//!   fingerprint or state is one `catalog_changed` event.
//!
//! Fetches run concurrently, [`CatalogConfig::concurrency`] slots of them, each bounded by
//! the catalog timeout and size cap, through the proxy's upstream pool: a hung or huge answer
//! costs only its own entry, and a scan, a probe or a routed request never waits for one.
//!
//! A failed fetch keeps the last good document (the entry is `stale`) and is retried with
//! backoff, 1 s, 2 s, 4 s … up to `--catalog-refresh`; until it succeeds again the service is
//! a suspect and fetches in a small lane of its own ([`schedule`]), so services that hang
//! never delay a well-behaved one.

mod fetch;
mod reasons;
mod refs;
mod schedule;
pub(crate) mod validate;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque, btree_map};
use std::path::Path;
use std::sync::Arc;

use hero_socket::Identity;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::CatalogConfig;
use crate::registry::catalog::{Catalog, CatalogEntry};
use crate::registry::events::{Event, unix_ms};
use crate::registry::names::OWN_SERVICE;
use crate::registry::state::SocketState;
use crate::registry::table::{Service, Socket, Table};
use crate::registry::{CatalogRequest, CatalogWriter, Registry};
use crate::upstream::{Key, Pool};
use fetch::{Fetched, Limits};
use reasons::Reasons;
use schedule::Lane;

pub use fetch::USER_AGENT;
pub(crate) use fetch::own_entry;

/// The socket a service's documents are fetched from, as the table saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    /// Shared with the pool key of every fetch from it.
    path: Arc<Path>,
    identity: Option<Identity>,
    rpc: bool,
}

/// The catalog fetcher. Build it with [`Fetcher::new`] and [`Fetcher::run`] it.
///
/// Its bookkeeping costs the same per service whatever the number of services: what it knows
/// of a service is one [`Record`], the maps are keyed by the service's one shared name
/// ([`Fetcher::name`]), and no step walks a queue or the retry list to find one service (a
/// thousand services failing together once made every table change cost millions of string
/// comparisons).
pub(crate) struct Fetcher {
    cfg: CatalogConfig,
    /// The router's own entry, made from its own documents (never fetched).
    own: Arc<CatalogEntry>,
    pool: Arc<Pool>,
    registry: Registry,
    out: CatalogWriter,
    /// Every service with an entry, in name order (the catalog's order).
    records: BTreeMap<Arc<str>, Record>,
    /// Fetches running, by service.
    running: HashMap<Arc<str>, Running>,
    /// Fetches waiting for a free slot, by lane; the services in them are in `queued`.
    fresh_queue: VecDeque<Arc<str>>,
    suspect_queue: VecDeque<Arc<str>>,
    /// The services in a queue. What to fetch from is read from the table when the fetch
    /// starts: a refresh queues every service at once, and a target apiece made this map six
    /// times the size (1.6 MB at 10,000 services, measured with heaptrack).
    queued: HashSet<Arc<str>>,
    /// When failed services are fetched again, in time order (each also in its record).
    retries: BTreeSet<(Instant, Arc<str>)>,
    /// Services asked for again while their fetch ran: fetched once more after it.
    again: HashSet<Arc<str>>,
    /// Who waits for a service's next fetch to finish.
    waiters: HashMap<String, Vec<oneshot::Sender<()>>>,
    tasks: JoinSet<(Arc<str>, Target, Fetched)>,
    /// One copy of each reason text the entries hold.
    reasons: Reasons,
    /// Entries changed since the catalog was last published.
    dirty: bool,
    /// When the catalog was last published.
    published: tokio::time::Instant,
}

/// What the fetcher knows of a service that has an entry: one record, not one map per fact
/// (three hash maps beside the entries held 2.5 MB at 8,000 failing services, measured with
/// heaptrack; a hash map at 8,000 items has 16,384 slots).
struct Record {
    /// The entry as last built, published with the catalog.
    entry: Arc<CatalogEntry>,
    /// The target it was fetched from (`None`: the router's own entry, never fetched).
    source: Option<Target>,
    /// Failed fetches in a row.
    failures: u32,
    /// The last fetch failed after running [`schedule::SLOW`] or longer (it hung, or nearly).
    slow: bool,
    /// When its failed fetch runs again: its key in `retries`.
    retry_at: Option<Instant>,
}

/// A fetch in flight.
struct Running {
    target: Target,
    lane: Lane,
    started: Instant,
}

/// Capacity an empty queue keeps; beyond it, a drained queue gives its memory back.
const DRAINED_KEEP: usize = 64;

/// Finished fetches are published together at most this often (a thousand fetches finishing
/// one after another are not a thousand copies of the catalog), and never later.
const PUBLISH_EVERY: std::time::Duration = std::time::Duration::from_millis(25);

impl Fetcher {
    /// A fetcher writing through `out`, reading the table from `registry`, fetching through
    /// `pool`; `own` is the router's own entry ([`own_entry`]).
    pub(crate) fn new(
        cfg: CatalogConfig,
        own: CatalogEntry,
        pool: Arc<Pool>,
        registry: Registry,
        out: CatalogWriter,
    ) -> Fetcher {
        Fetcher {
            cfg,
            own: Arc::new(own),
            pool,
            registry,
            out,
            records: BTreeMap::new(),
            running: HashMap::new(),
            fresh_queue: VecDeque::new(),
            suspect_queue: VecDeque::new(),
            queued: HashSet::new(),
            retries: BTreeSet::new(),
            again: HashSet::new(),
            waiters: HashMap::new(),
            tasks: JoinSet::new(),
            reasons: Reasons::default(),
            dirty: false,
            published: tokio::time::Instant::now(),
        }
    }

    /// Runs until `token` is cancelled.
    pub(crate) async fn run(mut self, token: CancellationToken) {
        let mut tables = self.registry.tables();
        let refresh = self.cfg.refresh.max(std::time::Duration::from_secs(1));
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + refresh, refresh);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let table = tables.borrow_and_update().clone();
        self.reconcile(&table, false);
        loop {
            let next_retry = self.retries.first().map(|(at, _)| *at);
            let next_slot = self.next_slot_change();
            tokio::select! {
                _ = token.cancelled() => break,
                changed = tables.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let table = tables.borrow_and_update().clone();
                    self.reconcile(&table, false);
                }
                Some(req) = self.out.requests.recv() => self.request(req),
                _ = tick.tick() => {
                    let table = self.registry.table();
                    self.reconcile(&table, true);
                }
                Some(done) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    if let Ok((service, target, fetched)) = done {
                        self.finished(service, target, fetched);
                    }
                    // Every other fetch that has finished too: a finished task waiting here
                    // holds its whole future.
                    while let Some(done) = self.tasks.try_join_next() {
                        if let Ok((service, target, fetched)) = done {
                            self.finished(service, target, fetched);
                        }
                    }
                    self.start_queued();
                }
                _ = tokio::time::sleep_until(self.published + PUBLISH_EVERY), if self.dirty => {
                    self.publish();
                }
                // A failed service's retry is due.
                _ = sleep_until_some(next_retry) => {
                    self.due_retries();
                }
                // A fresh fetch turned slow: its slot is free for the next one.
                _ = sleep_until_some(next_slot) => self.start_queued(),
            }
            // Publish at once when nothing more is coming, or when the last one is old enough.
            if self.dirty && (self.running.is_empty() || self.published.elapsed() >= PUBLISH_EVERY)
            {
                self.publish();
            }
        }
        self.tasks.abort_all();
    }

    fn request(&mut self, req: CatalogRequest) {
        let table = self.registry.table();
        match req.service {
            None => self.reconcile(&table, true),
            // The router's own entry is never fetched: make sure it is there and published,
            // then answer (a waiter would wait for a fetch that never comes).
            Some(name) if name == OWN_SERVICE => {
                self.reconcile(&table, false);
                if self.dirty {
                    self.publish();
                }
                if let Some(reply) = req.reply {
                    let _ = reply.send(());
                }
            }
            Some(name) => {
                let fetching = table.service(&name).and_then(live_socket).is_some();
                if let (true, Some(reply)) = (fetching, req.reply) {
                    self.waiters.entry(name.clone()).or_default().push(reply);
                }
                // Without a target the reply is dropped here: the caller stops waiting.
                self.refetch(&table, &name);
            }
        }
    }

    /// The service's name as the fetcher's maps hold it: one allocation per service, shared.
    fn name(&self, name: &str) -> Arc<str> {
        let known = (self.records.get_key_value(name).map(|(k, _)| k))
            .or_else(|| self.running.get_key_value(name).map(|(k, _)| k))
            .or_else(|| self.queued.get(name));
        match known {
            Some(k) => k.clone(),
            None => Arc::from(name),
        }
    }

    /// Brings the fetches in line with `table`: new or restarted services (every one if
    /// `force_all`) are fetched; entries of services no longer in the table are dropped.
    fn reconcile(&mut self, table: &Table, force_all: bool) {
        let gone = gone(&self.records, &table.services);
        for name in &gone {
            if let Some((name, record)) = self.records.remove_entry(name)
                && let Some(at) = record.retry_at
            {
                self.retries.remove(&(at, name));
            }
        }
        let mut changed = !gone.is_empty();
        for service in &table.services {
            changed |= self.consider(service, force_all);
        }
        self.start_queued();
        self.dirty |= changed;
    }

    /// Fetches `name` again, whether or not its socket changed (if it is in `table`).
    fn refetch(&mut self, table: &Table, name: &str) {
        if let Some(service) = table.service(name) {
            self.dirty |= self.consider(service, true);
        }
        self.start_queued();
    }

    /// Queues `service`'s fetch if it has a live socket and is new, restarted or `forced`;
    /// true if this changed the entries (the router's own entry).
    fn consider(&mut self, service: &Service, forced: bool) -> bool {
        let name = service.name.as_str();
        if name == OWN_SERVICE {
            // The router knows its own documents.
            if self.records.contains_key(name) {
                return false;
            }
            let record = Record {
                entry: self.own.clone(),
                source: None,
                failures: 0,
                slow: false,
                retry_at: None,
            };
            self.records.insert(Arc::from(name), record);
            return true;
        }
        let Some((socket, rpc)) = live_socket(service) else {
            return false;
        };
        if let Some(running) = self.running.get(name) {
            if forced || !running.target.is(socket, rpc) {
                let name = self.name(name);
                self.again.insert(name);
            }
            return false;
        }
        let fetched_from = self.records.get(name).and_then(|r| r.source.as_ref());
        if !forced && fetched_from.is_some_and(|t| t.is(socket, rpc)) {
            return false;
        }
        if self.queued.contains(name) {
            // It fetches from what the table says when it starts.
            return false;
        }
        let name = self.name(name);
        match self.lane_of(&name) {
            Lane::Fresh => self.fresh_queue.push_back(name.clone()),
            Lane::Suspect => self.suspect_queue.push_back(name.clone()),
        }
        self.queued.insert(name);
        false
    }

    fn lane_of(&self, service: &str) -> Lane {
        self.records
            .get(service)
            .map_or(Lane::Fresh, |r| schedule::lane(r.failures, r.slow))
    }

    /// The running fetches' lanes and start times.
    fn lanes(&self) -> impl Iterator<Item = (Lane, Instant)> + '_ {
        self.running.values().map(|r| (r.lane, r.started))
    }

    /// When a slot frees by time alone, if a fetch waits for one.
    fn next_slot_change(&self) -> Option<Instant> {
        if self.fresh_queue.is_empty() {
            return None;
        }
        schedule::next_change(self.lanes(), Instant::now())
    }

    /// Starts queued fetches while their lanes have slots: fresh ones first.
    fn start_queued(&mut self) {
        let table = self.registry.table();
        loop {
            let load = schedule::load(self.lanes(), Instant::now());
            let concurrency = self.cfg.concurrency;
            let next = if !self.fresh_queue.is_empty()
                && schedule::may_start(Lane::Fresh, load, concurrency)
            {
                self.fresh_queue.pop_front().map(|n| (n, Lane::Fresh))
            } else if schedule::may_start(Lane::Suspect, load, concurrency) {
                self.suspect_queue.pop_front().map(|n| (n, Lane::Suspect))
            } else {
                None
            };
            let Some((name, lane)) = next else {
                self.release_drained_queues();
                return;
            };
            if !self.queued.remove(&name) {
                continue;
            }
            let Some((socket, rpc)) = table.service(&name).and_then(live_socket) else {
                // Gone, or nothing of it is live any more: nothing to fetch, and whoever
                // waits for this fetch stops waiting.
                self.waiters.remove(&*name);
                continue;
            };
            let target = Target::of(socket, rpc);
            self.running.insert(
                name.clone(),
                Running {
                    target: target.clone(),
                    lane,
                    started: Instant::now(),
                },
            );
            let pool = self.pool.clone();
            let limits = Limits {
                timeout: self.cfg.timeout,
                max_document: self.cfg.max_document,
            };
            self.tasks.spawn(async move {
                let key = Key::new(target.path.clone(), target.identity);
                let fetched = fetch::fetch(&pool, &key, &name, target.rpc, limits).await;
                (name, target, fetched)
            });
        }
    }

    /// Gives back the queues' memory once they are empty. A refresh queues every service at
    /// once, so the queues and `queued` grow to the size of the table; kept at that size, they
    /// would hold ~200 bytes per service between refreshes for nothing (1.6 MB at 8,000
    /// services, measured with heaptrack).
    fn release_drained_queues(&mut self) {
        if self.queued.is_empty() && self.queued.capacity() > DRAINED_KEEP {
            self.queued = HashSet::new();
        }
        for queue in [&mut self.fresh_queue, &mut self.suspect_queue] {
            if queue.is_empty() && queue.capacity() > DRAINED_KEEP {
                *queue = VecDeque::new();
            }
        }
    }

    /// Queues the failed services whose retry is due.
    fn due_retries(&mut self) {
        let now = Instant::now();
        let table = self.registry.table();
        while let Some((at, _)) = self.retries.first() {
            if *at > now {
                break;
            }
            let (_, name) = self.retries.pop_first().expect("not empty");
            if let Some(record) = self.records.get_mut(&name) {
                record.retry_at = None;
            }
            if let Some(service) = table.service(&name) {
                self.dirty |= self.consider(service, true);
            }
        }
        self.start_queued();
    }

    fn finished(&mut self, service: Arc<str>, target: Target, fetched: Fetched) {
        let took = self.running.remove(&service).map(|r| r.started.elapsed());
        let slow = took.is_some_and(|t| t >= schedule::SLOW);
        let table = self.registry.table();
        if table.service(&service).is_some() {
            let failed = fetched.failed();
            let prev = self.records.get(&service);
            let mut entry = fetch::entry(fetched, prev.map(|r| &*r.entry), unix_ms());
            self.reasons.share(&mut entry.spec.reason);
            self.reasons.share(&mut entry.manifest_error);
            let changed = prev.is_none_or(|p| {
                p.entry.spec.fingerprint != entry.spec.fingerprint
                    || p.entry.spec.state != entry.spec.state
            });
            let event = changed.then(|| Event::CatalogChanged {
                service: service.to_string(),
                fingerprint: entry.spec.fingerprint.as_deref().map(str::to_owned),
                state: entry.spec.state.as_str(),
                reason: entry.spec.reason.as_deref().map(str::to_owned),
            });
            let entry = Arc::new(entry);
            let record = match self.records.entry(service.clone()) {
                btree_map::Entry::Occupied(o) => {
                    let record = o.into_mut();
                    record.entry = entry;
                    record.source = Some(target);
                    record
                }
                btree_map::Entry::Vacant(v) => v.insert(Record {
                    entry,
                    source: Some(target),
                    failures: 0,
                    slow: false,
                    retry_at: None,
                }),
            };
            record.count(&service, failed, slow, &mut self.retries, self.cfg.refresh);
            self.dirty = true;
            if let Some(event) = event {
                // Whoever hears of the change finds it in the catalog.
                self.publish();
                self.emit(event);
            }
        }
        if let Some(waiters) = self.waiters.remove(&*service) {
            // A waiter reads the catalog as soon as it is told: publish first.
            self.publish();
            for w in waiters {
                let _ = w.send(());
            }
        }
        if self.again.remove(&service) {
            let table = self.registry.table();
            self.refetch(&table, &service);
        }
    }

    fn publish(&mut self) {
        let entries = (self.records.iter())
            .map(|(name, r)| (name.clone(), r.entry.clone()))
            .collect();
        self.out.catalog.send_replace(Arc::new(Catalog { entries }));
        self.dirty = false;
        self.published = tokio::time::Instant::now();
    }

    fn emit(&self, event: Event) {
        self.out.events.emit(event);
    }
}

// === impl Record ===

impl Record {
    /// Counts a failure of the fetch of `service` (this record's), `slow` or not, and
    /// schedules its retry in `retries`, or counts a success.
    fn count(
        &mut self,
        service: &Arc<str>,
        failed: bool,
        slow: bool,
        retries: &mut BTreeSet<(Instant, Arc<str>)>,
        refresh: std::time::Duration,
    ) {
        if let Some(at) = self.retry_at.take() {
            retries.remove(&(at, service.clone()));
        }
        self.slow = failed && slow;
        if !failed {
            self.failures = 0;
            return;
        }
        self.failures = self.failures.saturating_add(1);
        let at = Instant::now() + schedule::backoff(self.failures, refresh);
        retries.insert((at, service.clone()));
        self.retry_at = Some(at);
    }
}

// === impl Target ===

impl Target {
    fn of(socket: &Socket, rpc: bool) -> Target {
        Target {
            path: socket.path.clone(),
            identity: socket.identity,
            rpc,
        }
    }

    /// True if this is the target `socket` would be (no allocation).
    fn is(&self, socket: &Socket, rpc: bool) -> bool {
        self.rpc == rpc && self.identity == socket.identity && self.path == socket.path
    }
}

/// Where a service's documents come from: its live rpc socket (true), else its first live
/// socket (for the manifest alone); `None` while nothing of it is live.
fn live_socket(service: &Service) -> Option<(&Socket, bool)> {
    let live = |kind: Option<&str>| {
        service
            .sockets
            .iter()
            .find(|s| s.state == SocketState::Live && kind.is_none_or(|k| s.kind == k))
    };
    match live(Some("rpc")) {
        Some(s) => Some((s, true)),
        None => Some((live(None)?, false)),
    }
}

/// The services of `entries` that `services` (sorted by name, as a table holds them) no
/// longer has: one walk of both in name order, not a search of the table per entry (the
/// fetcher reconciles on every table, and at 10,000 services those searches were 4 % of
/// `serve`'s CPU, measured with `perf`).
fn gone<V>(entries: &BTreeMap<Arc<str>, V>, services: &[Arc<Service>]) -> Vec<Arc<str>> {
    let mut table = services.iter().map(|s| s.name.as_str()).peekable();
    let mut gone = Vec::new();
    for name in entries.keys() {
        while table.next_if(|t| *t < &**name).is_some() {}
        if table.peek() != Some(&&**name) {
            gone.push(name.clone());
        }
    }
    gone
}

/// Sleeps until `at`, or forever if there is no such moment.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
