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
mod refs;
mod schedule;
pub(crate) mod validate;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use hero_socket::Identity;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::CatalogConfig;
use crate::registry::catalog::{Catalog, CatalogEntry};
use crate::registry::events::Event;
use crate::registry::names::OWN_SERVICE;
use crate::registry::state::SocketState;
use crate::registry::table::{Service, Table};
use crate::registry::{CatalogRequest, CatalogWriter, Registry};
use crate::upstream::{Key, Pool};
use fetch::{Fetched, Limits};
use schedule::Lane;

pub use fetch::USER_AGENT;
pub(crate) use fetch::own_entry;

/// The socket a service's documents are fetched from, as the table saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    path: PathBuf,
    identity: Option<Identity>,
    rpc: bool,
}

/// The catalog fetcher. Build it with [`Fetcher::new`] and [`Fetcher::run`] it.
pub(crate) struct Fetcher {
    cfg: CatalogConfig,
    /// The router's own entry, made from its own documents (never fetched).
    own: Arc<CatalogEntry>,
    pool: Arc<Pool>,
    registry: Registry,
    out: CatalogWriter,
    entries: BTreeMap<String, Arc<CatalogEntry>>,
    /// The target each entry was fetched from.
    sources: HashMap<String, Target>,
    /// Fetches running, by service.
    running: HashMap<String, Running>,
    /// Fetches waiting for a free slot, by lane.
    fresh_queue: VecDeque<(String, Target)>,
    suspect_queue: VecDeque<(String, Target)>,
    queued: HashSet<String>,
    /// Failed fetches in a row, by service (absent: none).
    failures: HashMap<String, u32>,
    /// When each failed service is fetched again, in time order.
    retries: BTreeSet<(Instant, String)>,
    /// Services asked for again while their fetch ran: fetched once more after it.
    again: HashSet<String>,
    /// Who waits for a service's next fetch to finish.
    waiters: HashMap<String, Vec<oneshot::Sender<()>>>,
    tasks: JoinSet<(String, Target, Fetched)>,
    /// Entries changed since the catalog was last published.
    dirty: bool,
    /// When the catalog was last published.
    published: tokio::time::Instant,
}

/// A fetch in flight.
struct Running {
    target: Target,
    lane: Lane,
    started: Instant,
}

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
            entries: BTreeMap::new(),
            sources: HashMap::new(),
            running: HashMap::new(),
            fresh_queue: VecDeque::new(),
            suspect_queue: VecDeque::new(),
            queued: HashSet::new(),
            failures: HashMap::new(),
            retries: BTreeSet::new(),
            again: HashSet::new(),
            waiters: HashMap::new(),
            tasks: JoinSet::new(),
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
        self.reconcile(&table, None);
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
                    self.reconcile(&table, None);
                }
                Some(req) = self.out.requests.recv() => self.request(req),
                _ = tick.tick() => {
                    let table = self.registry.table();
                    self.reconcile(&table, Some(&Force::All));
                }
                Some(done) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    if let Ok((service, target, fetched)) = done {
                        self.finished(service, target, fetched);
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
            None => self.reconcile(&table, Some(&Force::All)),
            // The router's own entry is never fetched: make sure it is there and published,
            // then answer (a waiter would wait for a fetch that never comes).
            Some(name) if name == OWN_SERVICE => {
                self.reconcile(&table, None);
                if self.dirty {
                    self.publish();
                }
                if let Some(reply) = req.reply {
                    let _ = reply.send(());
                }
            }
            Some(name) => {
                let fetching = table.service(&name).and_then(target).is_some();
                if let (true, Some(reply)) = (fetching, req.reply) {
                    self.waiters.entry(name.clone()).or_default().push(reply);
                }
                // Without a target the reply is dropped here: the caller stops waiting.
                self.reconcile(&table, Some(&Force::One(name)));
            }
        }
    }

    /// Brings the fetches in line with `table`: new or restarted services (and the forced
    /// ones) are fetched; entries of services no longer in the table are dropped.
    fn reconcile(&mut self, table: &Table, force: Option<&Force>) {
        let before = self.entries.len();
        self.entries.retain(|name, _| table.service(name).is_some());
        self.sources.retain(|name, _| table.service(name).is_some());
        self.failures
            .retain(|name, _| table.service(name).is_some());
        self.retries
            .retain(|(_, name)| table.service(name).is_some());
        let mut changed = self.entries.len() != before;
        for service in &table.services {
            let name = &service.name;
            if name == OWN_SERVICE {
                // The router knows its own documents.
                if !self.entries.contains_key(name) {
                    self.entries.insert(name.clone(), self.own.clone());
                    changed = true;
                }
                continue;
            }
            let Some(target) = target(service) else {
                continue;
            };
            let forced = force.is_some_and(|f| f.covers(name));
            if let Some(running) = self.running.get(name) {
                if forced || running.target != target {
                    self.again.insert(name.clone());
                }
                continue;
            }
            if !forced && self.sources.get(name) == Some(&target) {
                continue;
            }
            if self.queued.insert(name.clone()) {
                let queue = match schedule::lane(self.failures_of(name)) {
                    Lane::Fresh => &mut self.fresh_queue,
                    Lane::Suspect => &mut self.suspect_queue,
                };
                queue.push_back((name.clone(), target));
            } else if let Some(slot) = self
                .fresh_queue
                .iter_mut()
                .chain(self.suspect_queue.iter_mut())
                .find(|(n, _)| n == name)
            {
                slot.1 = target;
            }
        }
        self.start_queued();
        self.dirty |= changed;
    }

    fn failures_of(&self, service: &str) -> u32 {
        self.failures.get(service).copied().unwrap_or(0)
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
            let Some(((name, target), lane)) = next else {
                return;
            };
            self.queued.remove(&name);
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
                let key = Key {
                    path: Arc::from(target.path.as_path()),
                    identity: target.identity,
                };
                let fetched = fetch::fetch(&pool, &key, &name, target.rpc, limits).await;
                (name, target, fetched)
            });
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
            self.reconcile(&table, Some(&Force::One(name)));
        }
    }

    /// Counts a failure (and schedules the retry) or a success of `service`'s fetch.
    fn count(&mut self, service: &str, failed: bool) {
        self.retries.retain(|(_, name)| name != service);
        if !failed {
            self.failures.remove(service);
            return;
        }
        let failures = self.failures.entry(service.to_owned()).or_default();
        *failures = failures.saturating_add(1);
        let delay = schedule::backoff(*failures, self.cfg.refresh);
        self.retries
            .insert((Instant::now() + delay, service.to_owned()));
    }

    fn finished(&mut self, service: String, target: Target, fetched: Fetched) {
        self.running.remove(&service);
        let table = self.registry.table();
        if table.service(&service).is_some() {
            self.count(&service, fetched.failed());
            let prev = self.entries.get(&service);
            let entry = fetch::entry(fetched, prev.map(Arc::as_ref), unix_ms());
            let changed = prev.is_none_or(|p| {
                p.spec.fingerprint != entry.spec.fingerprint || p.spec.state != entry.spec.state
            });
            let event = changed.then(|| Event::CatalogChanged {
                service: service.clone(),
                fingerprint: entry.spec.fingerprint.clone(),
                state: entry.spec.state.as_str(),
                reason: entry.spec.reason.clone(),
            });
            self.entries.insert(service.clone(), Arc::new(entry));
            self.sources.insert(service.clone(), target);
            self.dirty = true;
            if let Some(event) = event {
                // Whoever hears of the change finds it in the catalog.
                self.publish();
                self.emit(event);
            }
        }
        if let Some(waiters) = self.waiters.remove(&service) {
            // A waiter reads the catalog as soon as it is told: publish first.
            self.publish();
            for w in waiters {
                let _ = w.send(());
            }
        }
        if self.again.remove(&service) {
            let table = self.registry.table();
            self.reconcile(&table, Some(&Force::One(service)));
        }
    }

    fn publish(&mut self) {
        self.out.catalog.send_replace(Arc::new(Catalog {
            entries: self.entries.clone(),
        }));
        self.dirty = false;
        self.published = tokio::time::Instant::now();
    }

    fn emit(&self, event: Event) {
        event.log();
        let _ = self.out.events.send(event);
    }
}

/// Which services a refresh covers.
enum Force {
    All,
    One(String),
}

impl Force {
    fn covers(&self, name: &str) -> bool {
        match self {
            Force::All => true,
            Force::One(n) => n == name,
        }
    }
}

/// Where a service's documents come from: its live rpc socket, else its first live socket
/// (for the manifest alone); `None` while nothing of it is live.
fn target(service: &Service) -> Option<Target> {
    let live = |kind: Option<&str>| {
        service
            .sockets
            .iter()
            .find(|s| s.state == SocketState::Live && kind.is_none_or(|k| s.kind == k))
    };
    let (socket, rpc) = match live(Some("rpc")) {
        Some(s) => (s, true),
        None => (live(None)?, false),
    };
    Some(Target {
        path: PathBuf::from(&socket.path),
        identity: socket.identity,
        rpc,
    })
}

/// Sleeps until `at`, or forever if there is no such moment.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
