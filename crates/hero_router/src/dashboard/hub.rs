//! The dashboard's live feed (`GET /api/events`, docs/dashboard.md#live-feed).
//!
//! One task turns what the registry publishes (its events, and every new table and catalog)
//! into numbered server-sent-event frames, each serialised once, kept in a bounded log and
//! broadcast to every open page. A page reads them through a [`Feed`]:
//!
//! - the first frame is a `snapshot` (the whole table, health, traffic and the recent
//!   events), then `service`, `socket`, `reap` and `scan` frames in the order the hub made
//!   them, and a `traffic` frame (per-service req/s for the table's sparklines) at most once a
//!   second while it changes and a page is open;
//! - a page's queue is its cursor in one broadcast ring of [`HubConfig::buffer`] frames, so a
//!   hundred pages cost a hundred cursors, not a hundred copies. A page that falls further
//!   behind gets a fresh `snapshot`, and so does every page when the hub itself fell behind the
//!   registry: never a silent gap;
//! - a page that reconnects with a `Last-Event-ID` this hub still holds gets exactly the frames
//!   it missed; an id from another router instance, or one trimmed from the log, gets a
//!   snapshot;
//! - a comment (`: ping`) every [`HubConfig::heartbeat`] keeps proxies from timing the stream
//!   out, and makes a write fail soon after the page has gone.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::watch;
use tokio::time::{Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::registry::catalog::{Catalog, ServiceView};
use crate::registry::events::{Event, Stamped};
use crate::registry::table::{Service, Socket, Table};
use crate::shared::Shared;

/// Frames a page may fall behind before it gets a fresh snapshot instead. Also how far back a
/// `Last-Event-ID` resume reaches.
pub(crate) const DEFAULT_BUFFER: usize = 1024;

/// How often an idle stream gets a comment: well under the usual 60 s proxy idle timeout.
pub(crate) const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(15);

/// Most bytes of frames the log keeps, whatever their number: a scan of a large root or a
/// catalog filling in makes a burst of `service` frames of kilobytes each, and a page that far
/// behind is better served by a snapshot.
pub(super) const LOG_BYTES: usize = 512 * 1024;

/// Notable events (state changes, reaps, skipped reaps, catalog changes, manual scans) kept for
/// the "recent events" list of a new page.
pub(crate) const RECENT: usize = 200;

/// How long a snapshot may be shared: its health part (uptime) ages.
const SNAPSHOT_TTL: Duration = Duration::from_secs(1);

/// How long a page waits before reconnecting after the stream broke (the SSE `retry` field).
const RETRY_MS: u64 = 2000;

/// How often the table's traffic may be sent (when it changed and a page is open).
const TRAFFIC_EVERY: Duration = Duration::from_secs(1);
/// The hub's bounds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HubConfig {
    /// Frames kept for lagging pages and resumes ([`DEFAULT_BUFFER`]).
    pub buffer: usize,
    /// Interval of the keep-alive comment ([`DEFAULT_HEARTBEAT`]).
    pub heartbeat: Duration,
}

/// The feed's shared end: cheap to clone, one per router.
#[derive(Clone)]
pub(crate) struct Hub {
    inner: Arc<Inner>,
}

/// One page's stream of frames; see the module docs.
pub(crate) struct Feed {
    inner: Arc<Inner>,
    rx: broadcast::Receiver<Arc<Frame>>,
    /// The id of the last frame this page has (a snapshot counts as every frame up to its id).
    last: u64,
    queue: VecDeque<Bytes>,
    ping: Interval,
}

struct Inner {
    /// The registry the feed follows, and the health its snapshots carry.
    shared: Arc<Shared>,
    config: HubConfig,
    /// Tells one router's event ids from another's: a page that reconnects after a restart
    /// must not resume from the ids of the instance before.
    instance: u32,
    log: Mutex<Log>,
    frames: broadcast::Sender<Arc<Frame>>,
    /// The last snapshot frame: pages that connect together (a router restart reconnects them
    /// all) share one, as long as no frame came since and it is younger than [`SNAPSHOT_TTL`].
    snapshot: Mutex<Option<(u64, tokio::time::Instant, Bytes)>>,
}

struct Log {
    /// The last [`HubConfig::buffer`] frames, oldest first, at most [`LOG_BYTES`] of them.
    frames: VecDeque<Arc<Frame>>,
    /// The size of `frames` on the wire.
    bytes: usize,
    /// The last [`RECENT`] notable frames, oldest first.
    recent: VecDeque<Arc<Frame>>,
    /// The id of the newest frame (0: none yet).
    last: u64,
}

/// One event, serialised once for every page.
struct Frame {
    id: u64,
    kind: Kind,
    /// The whole SSE frame.
    wire: Bytes,
    /// Where the event's JSON is in `wire` (kept once: a `service` frame is kilobytes).
    data: std::ops::Range<usize>,
}

/// The SSE event names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Service,
    Socket,
    Reap,
    Scan,
    /// Not sent: tells every page to take a fresh snapshot (the hub lost registry events).
    Resync,
    /// Per-service req/s and errors, at most once a second, when they changed.
    Traffic,
}

/// The data of a `service` frame that the table or the catalog changed, serialised straight
/// into the frame: building a JSON tree first made a refresh of thousands of services cost
/// tens of thousands of short-lived allocations a second (measured with heaptrack).
#[derive(Serialize)]
pub(super) struct ServiceFrame<'a> {
    pub(super) service: &'a str,
    pub(super) name: &'a str,
    /// `null` once the service is gone.
    pub(super) view: Option<ServiceView<'a>>,
    /// What the catalog fetcher said changed (a `CatalogChanged` event's frame).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) catalog: Option<CatalogFrame<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) removed: Option<bool>,
    /// How long the directory had no socket (a `ServiceDropped` event's frame).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) empty_for_ms: Option<u64>,
    pub(super) at_unix_ms: u64,
}

/// The `catalog` part of a `service` frame made from a `CatalogChanged` event.
#[derive(Serialize)]
pub(super) struct CatalogFrame<'a> {
    pub(super) state: &'a str,
    pub(super) fingerprint: Option<&'a str>,
    pub(super) reason: Option<&'a str>,
}

/// A frame's data: each variant is written straight into the frame, in the shape
/// docs/dashboard.md gives for its event.
#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum FrameData<'a> {
    Service(ServiceFrame<'a>),
    Socket {
        service: &'a str,
        socket: &'a str,
        /// The socket's file stem (`rpc`, `admin`, `web_ui`).
        kind: &'a str,
        from: &'a str,
        to: &'a str,
        at_unix_ms: u64,
    },
    Reap {
        service: &'a str,
        socket: &'a str,
        reason: &'a str,
        /// Only a skipped reap has one.
        #[serde(skip_serializing_if = "Option::is_none")]
        detail: Option<&'a str>,
        skipped: bool,
        at_unix_ms: u64,
    },
    Scan {
        full: bool,
        periodic: bool,
        sockets: usize,
        generation: u64,
        /// Services in the table the scan published.
        services: usize,
        at_unix_ms: u64,
    },
    RootReplaced {
        root_replaced: bool,
        root: &'a str,
        recreated: bool,
        at_unix_ms: u64,
    },
}

/// The hub's task: it alone writes the log.
struct Pump {
    inner: Arc<Inner>,
    events: broadcast::Receiver<Stamped>,
    tables: watch::Receiver<Arc<Table>>,
    catalogs: watch::Receiver<Arc<Catalog>>,
    table: Arc<Table>,
    catalog: Arc<Catalog>,
    /// The last `traffic` frame's data, so an unchanged one is not sent again.
    traffic: Value,
    /// Services whose `ServiceDropped` event made a removal frame since the last table: the
    /// table that drops them says nothing more.
    dropped: std::collections::HashSet<String>,
}

// === impl Hub ===

impl Hub {
    /// Starts the hub over `shared`'s registry, with the default bounds. Must be called
    /// inside a tokio runtime; the hub's task ends when the scanner stops publishing.
    pub(crate) fn start(shared: Arc<Shared>, token: CancellationToken) -> Hub {
        Hub::start_with(
            shared,
            HubConfig {
                buffer: DEFAULT_BUFFER,
                heartbeat: DEFAULT_HEARTBEAT,
            },
            token,
        )
    }

    /// Starts the hub with the given bounds. Its pump stops when `token` is cancelled (the
    /// router's shutdown): it holds the registry, so its channels alone would never end it.
    pub(crate) fn start_with(
        shared: Arc<Shared>,
        config: HubConfig,
        token: CancellationToken,
    ) -> Hub {
        let registry = &shared.registry;
        let (events, mut tables, mut catalogs) =
            (registry.subscribe(), registry.tables(), registry.catalogs());
        let (table, catalog) = (
            tables.borrow_and_update().clone(),
            catalogs.borrow_and_update().clone(),
        );
        let buffer = config.buffer.max(1);
        let inner = Arc::new(Inner {
            shared,
            config: HubConfig { buffer, ..config },
            instance: fastrand::u32(..),
            log: Mutex::new(Log {
                frames: VecDeque::with_capacity(buffer),
                bytes: 0,
                recent: VecDeque::new(),
                last: 0,
            }),
            frames: broadcast::channel(buffer).0,
            snapshot: Mutex::new(None),
        });
        let pump = Pump {
            inner: inner.clone(),
            events,
            tables,
            catalogs,
            table,
            catalog,
            // No traffic yet: nothing to send until there is some.
            traffic: json!({"services": {}}),
            dropped: std::collections::HashSet::new(),
        };
        tokio::spawn(async move {
            tokio::select! {
                () = pump.run() => {}
                () = token.cancelled() => {}
            }
        });
        Hub { inner }
    }

    /// The bytes of frames the log keeps.
    #[cfg(test)]
    pub(super) fn log_bytes(&self) -> usize {
        self.inner.lock().bytes
    }

    /// A new page's feed. `last_event_id`: the `Last-Event-ID` header of a reconnecting page.
    pub(crate) fn feed(&self, last_event_id: Option<&str>) -> Feed {
        let inner = &self.inner;
        let mut queue = VecDeque::new();
        queue.push_back(Bytes::from(format!("retry: {RETRY_MS}\n\n")));
        let (rx, mut last, replay) = {
            // Subscribing under the lock: every frame after `last` reaches `rx`.
            let log = inner.lock();
            let rx = inner.frames.subscribe();
            let replay = last_event_id.and_then(|id| log.since(inner.parse_id(id)?));
            (rx, log.last, replay)
        };
        match replay {
            Some(frames) => queue.extend(frames),
            None => {
                // The snapshot may be newer than `last`: the frames it covers are not sent.
                let (covered, wire) = inner.snapshot();
                last = covered;
                queue.push_back(wire);
            }
        }
        let heartbeat = inner.config.heartbeat;
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Feed {
            inner: inner.clone(),
            rx,
            last,
            queue,
            ping,
        }
    }

    /// The id of the newest frame, for tests that wait until the hub has caught up.
    #[cfg(test)]
    pub(crate) fn last_id(&self) -> u64 {
        self.inner.lock().last
    }

    /// The recent frames about `service`, oldest first, as `{"id", "event", "data"}` objects.
    pub(crate) fn history(&self, service: &str) -> Vec<Value> {
        let log = self.inner.lock();
        log.recent
            .iter()
            .filter_map(|f| {
                let data: Value = serde_json::from_str(f.data()).ok()?;
                (data["service"] == service).then(|| f.recent_json_value(data))
            })
            .collect()
    }
}

// === impl Feed ===

impl Feed {
    /// The next frame's bytes; `None` once the hub is gone.
    pub(crate) async fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(bytes) = self.queue.pop_front() {
                return Some(bytes);
            }
            tokio::select! {
                r = self.rx.recv() => match r {
                    Ok(f) if f.id <= self.last => {}
                    Ok(f) if f.kind == Kind::Resync => self.resync(),
                    Ok(f) => {
                        self.last = f.id;
                        return Some(f.wire.clone());
                    }
                    Err(RecvError::Lagged(_)) => self.resync(),
                    Err(RecvError::Closed) => return None,
                },
                _ = self.ping.tick() => return Some(Bytes::from_static(b": ping\n\n")),
            }
        }
    }

    /// The feed as a body stream.
    pub(crate) fn into_stream(self) -> impl Stream<Item = Bytes> + Send + 'static {
        futures_util::stream::unfold(self, |mut feed| async move {
            let bytes = feed.next().await?;
            Some((bytes, feed))
        })
    }

    /// Queues a fresh snapshot: whatever this page missed is in it.
    fn resync(&mut self) {
        // Read on from the newest frame: after a lag the receiver sits at the oldest frame
        // still in the ring, which the next frame overwrites, so the page would lag again
        // and get a second snapshot one frame later. Every frame sent from here on reaches
        // the new receiver; the snapshot, taken after, covers every one sent before.
        self.rx = self.rx.resubscribe();
        let (last, wire) = self.inner.snapshot();
        self.last = last;
        self.queue.push_back(wire);
    }
}

// === impl Inner ===

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The sequence number in an id of this instance.
    fn parse_id(&self, id: &str) -> Option<u64> {
        let (instance, seq) = id.trim().split_once('-')?;
        (u32::from_str_radix(instance, 16).ok()? == self.instance)
            .then(|| seq.parse().ok())
            .flatten()
    }

    fn id(&self, seq: u64) -> String {
        format!("{:08x}-{seq}", self.instance)
    }

    /// The snapshot's id and JSON: every frame up to that id is in it.
    fn snapshot_data(&self) -> (u64, String) {
        // Read the id first: the table and catalog read after it are at least as new as
        // what the frames up to it were made from.
        let (last, recent): (u64, Vec<Arc<Frame>>) = {
            let log = self.lock();
            (log.last, log.recent.iter().cloned().collect())
        };
        let shared = &self.shared;
        let mut data = String::new();
        let _ = write!(
            data,
            r#"{{"services":{},"health":{},"traffic":{},"root":{},"recent":["#,
            shared.registry.services_json().get(),
            shared.health(),
            shared.sparklines(),
            json!(shared.registry.table().root.display().to_string()),
        );
        for (i, f) in recent.iter().enumerate() {
            if i > 0 {
                data.push(',');
            }
            f.write_recent_json(&mut data);
        }
        data.push_str("]}");
        (last, data)
    }

    fn snapshot(&self) -> (u64, Bytes) {
        let now = tokio::time::Instant::now();
        let newest = self.lock().last;
        let mut cached = self.snapshot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((last, at, wire)) = &*cached {
            if *last == newest && now.duration_since(*at) < SNAPSHOT_TTL {
                return (*last, wire.clone());
            }
        }
        let (last, data) = self.snapshot_data();
        let id = self.id(last);
        let wire = Bytes::from(format!("id: {id}\nevent: snapshot\ndata: {data}\n\n"));
        *cached = Some((last, now, wire.clone()));
        (last, wire)
    }

    /// Appends a frame to the log and sends it to every page. `data` is written straight into
    /// the frame as JSON.
    fn push(&self, kind: Kind, data: &impl Serialize, recent: bool) {
        let mut log = self.lock();
        log.last += 1;
        let id = log.last;
        let mut wire =
            format!("id: {}\nevent: {}\ndata: ", self.id(id), kind.as_str()).into_bytes();
        let start = wire.len();
        if serde_json::to_writer(&mut wire, data).is_err() {
            // Only a map with non-string keys fails, and no frame has one.
            wire.truncate(start);
            wire.extend_from_slice(b"null");
        }
        let data = start..wire.len();
        wire.extend_from_slice(b"\n\n");
        let frame = Arc::new(Frame {
            id,
            kind,
            wire: Bytes::from(wire),
            data,
        });
        log.bytes += frame.wire.len();
        log.frames.push_back(frame.clone());
        while log.frames.len() > self.config.buffer || log.bytes > LOG_BYTES {
            match log.frames.pop_front() {
                Some(old) => log.bytes -= old.wire.len(),
                None => break,
            }
        }
        if recent {
            if log.recent.len() == RECENT {
                log.recent.pop_front();
            }
            log.recent.push_back(frame.clone());
        }
        // Sent under the lock, so a page subscribing under it never misses or repeats one.
        let _ = self.frames.send(frame);
    }
}

// === impl Log ===

impl Log {
    /// The frames after `seq`, if the log still holds every one of them and none is a resync.
    fn since(&self, seq: u64) -> Option<Vec<Bytes>> {
        if seq > self.last {
            return None;
        }
        let oldest = self.frames.front().map_or(self.last + 1, |f| f.id);
        if seq + 1 < oldest {
            return None;
        }
        let missed: Vec<_> = self.frames.iter().filter(|f| f.id > seq).collect();
        if missed.iter().any(|f| f.kind == Kind::Resync) {
            return None;
        }
        Some(missed.into_iter().map(|f| f.wire.clone()).collect())
    }
}

// === impl Frame ===

impl Frame {
    /// `{"id": N, "event": S, "data": {…}}`, for the snapshot's `recent` list.
    fn write_recent_json(&self, out: &mut String) {
        let _ = write!(
            out,
            r#"{{"id":{},"event":"{}","data":{}}}"#,
            self.id,
            self.kind.as_str(),
            self.data()
        );
    }

    /// The event's JSON.
    fn data(&self) -> &str {
        // Cut from a String at char boundaries: always UTF-8.
        std::str::from_utf8(&self.wire[self.data.clone()]).unwrap_or("null")
    }

    fn recent_json_value(&self, data: Value) -> Value {
        json!({"id": self.id, "event": self.kind.as_str(), "data": data})
    }
}

// === impl Kind ===

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Service => "service",
            Kind::Socket => "socket",
            Kind::Reap => "reap",
            Kind::Scan => "scan",
            Kind::Resync => "resync",
            Kind::Traffic => "traffic",
        }
    }
}

// === impl Pump ===

impl Pump {
    async fn run(mut self) {
        let mut traffic = tokio::time::interval(TRAFFIC_EVERY);
        traffic.set_missed_tick_behavior(MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                // Events first: a scan's socket changes come before the table it publishes.
                biased;
                ev = self.events.recv() => match ev {
                    Ok(ev) => self.on_event(ev),
                    Err(RecvError::Lagged(n)) => {
                        self.inner.push(Kind::Resync, &json!({"missed": n}), false);
                    }
                    Err(RecvError::Closed) => break,
                },
                r = self.tables.changed() => match r {
                    Ok(()) => self.sync_table(),
                    Err(_) => break,
                },
                r = self.catalogs.changed() => match r {
                    Ok(()) => self.sync_catalog(None),
                    Err(_) => break,
                },
                _ = traffic.tick() => self.push_traffic(),
            }
        }
    }

    /// Sends the per-service traffic if a page is open and it changed since the last frame.
    fn push_traffic(&mut self) {
        if self.inner.frames.receiver_count() == 0 {
            return;
        }
        let now = self.inner.shared.sparklines();
        if now["services"] != self.traffic["services"] {
            let mut data = now.clone();
            data["at_unix_ms"] = json!(crate::registry::events::unix_ms());
            self.inner.push(Kind::Traffic, &data, false);
            self.traffic = now;
        }
    }

    /// A frame for `ev`, stamped when its writer emitted it.
    fn on_event(&mut self, ev: Stamped) {
        match &ev.event {
            // The fetcher publishes the catalog before it says so.
            Event::CatalogChanged { service, .. } => self.sync_catalog(Some(service)),
            // The table this scan published comes first.
            Event::ScanCompleted { .. } => self.sync_table(),
            Event::ServiceDropped { service, .. } => {
                self.dropped.insert(service.clone());
            }
            _ => {}
        }
        let (kind, data, recent) = event_frame(&ev, &self.table, &self.catalog);
        self.inner.push(kind, &data, recent);
    }

    /// A `service` frame for every service that changed, appeared or went since the last
    /// table.
    fn sync_table(&mut self) {
        let next = self.tables.borrow_and_update().clone();
        if Arc::ptr_eq(&next, &self.table) {
            return;
        }
        let old = std::mem::replace(&mut self.table, next.clone());
        let (a, b) = (&old.services, &next.services);
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            match (a.get(i), b.get(j)) {
                (Some(x), Some(y)) if x.name == y.name => {
                    if !Arc::ptr_eq(x, y) && !same_on_the_page(x, y) {
                        self.push_service(y);
                    }
                    i += 1;
                    j += 1;
                }
                (Some(x), Some(y)) if x.name < y.name => {
                    self.push_gone(&x.name);
                    i += 1;
                }
                (Some(x), None) => {
                    self.push_gone(&x.name);
                    i += 1;
                }
                (_, Some(y)) => {
                    // Back in the table: its next removal is news again.
                    self.dropped.remove(&y.name);
                    self.push_service(y);
                    j += 1;
                }
                (None, None) => break,
            }
        }
    }

    /// A `service` frame for every service in the table whose catalog entry changed, but
    /// `skip`. One merge walk over the two catalogs' sorted entries: an entry the fetcher did
    /// not touch is the same `Arc` in both (and so is its name), so the walk costs a pointer
    /// comparison per entry, no more than the fetcher's own copy of the map when it published;
    /// only changed entries look their service up in the table.
    fn sync_catalog(&mut self, skip: Option<&str>) {
        let next = self.catalogs.borrow_and_update().clone();
        if Arc::ptr_eq(&next, &self.catalog) {
            return;
        }
        let old = std::mem::replace(&mut self.catalog, next.clone());
        let mut changed: Vec<&str> = Vec::new();
        let (mut a, mut b) = (
            old.entries.iter().peekable(),
            next.entries.iter().peekable(),
        );
        loop {
            let name = match (a.peek(), b.peek()) {
                (Some((x, ex)), Some((y, ey))) if Arc::ptr_eq(x, y) || x == y => {
                    let same = Arc::ptr_eq(ex, ey);
                    let name: &str = y;
                    a.next();
                    b.next();
                    if same {
                        continue;
                    }
                    Some(name)
                }
                // An entry only one side has: gone, or new.
                (Some((x, _)), Some((y, _))) if x < y => a.next().map(|(n, _)| &**n),
                (Some(_), None) => a.next().map(|(n, _)| &**n),
                (_, Some(_)) => b.next().map(|(n, _)| &**n),
                (None, None) => break,
            };
            if let Some(name) = name.filter(|n| Some(*n) != skip) {
                changed.push(name);
            }
        }
        for name in changed {
            if let Some(s) = self.table.service(name) {
                self.push_service(s);
            }
        }
    }

    fn push_service(&self, s: &Service) {
        let data = ServiceFrame {
            view: Some(self.catalog.view(s)),
            ..ServiceFrame::bare(&s.name, crate::registry::events::unix_ms())
        };
        self.inner.push(Kind::Service, &data, false);
    }

    /// A removal frame for `name`, unless its `ServiceDropped` event made one already.
    fn push_gone(&mut self, name: &str) {
        if self.dropped.remove(name) {
            return;
        }
        let data = ServiceFrame {
            removed: Some(true),
            ..ServiceFrame::bare(name, crate::registry::events::unix_ms())
        };
        self.inner.push(Kind::Service, &data, false);
    }
}

/// Whether a page would show `a` and `b` alike: everything but the refusal streaks, which
/// tick on every scan while a refused socket waits to be reaped (forever with `--no-reap`, or
/// while its owner holds the lock) and which the page does not show. A frame per such service
/// per scan would cost every page a re-render for nothing; a snapshot carries the counts.
pub(super) fn same_on_the_page(a: &Service, b: &Service) -> bool {
    let socket = |x: &Socket, y: &Socket| {
        (&x.kind, &x.path, x.state, x.since_unix_ms, &x.detail)
            == (&y.kind, &y.path, y.state, y.since_unix_ms, &y.detail)
    };
    a.status == b.status
        && a.error == b.error
        && a.sockets.len() == b.sockets.len()
        && a.sockets.iter().zip(&b.sockets).all(|(x, y)| socket(x, y))
}

/// A socket path's kind: its file stem.
fn socket_kind(path: &str) -> &str {
    let file = path.rsplit('/').next().unwrap_or(path);
    file.strip_suffix(".sock").unwrap_or(file)
}

/// The frame of a registry event, read against the table and catalog the hub holds (already
/// brought up to date with what the event's writer published before it): its SSE event name,
/// its data, and whether it goes to the "recent events" list.
pub(super) fn event_frame<'a>(
    ev: &'a Stamped,
    table: &'a Table,
    catalog: &'a Catalog,
) -> (Kind, FrameData<'a>, bool) {
    let at_unix_ms = ev.at_unix_ms;
    match &ev.event {
        Event::SocketChanged {
            service,
            socket,
            from,
            to,
        } => {
            let data = FrameData::Socket {
                service,
                socket,
                kind: socket_kind(socket),
                from,
                to,
                at_unix_ms,
            };
            (Kind::Socket, data, true)
        }
        Event::Reaped {
            service,
            socket,
            reason,
        } => {
            let data = FrameData::Reap {
                service,
                socket,
                reason,
                detail: None,
                skipped: false,
                at_unix_ms,
            };
            (Kind::Reap, data, true)
        }
        Event::ReapSkipped {
            service,
            socket,
            reason,
            detail,
        } => {
            let data = FrameData::Reap {
                service,
                socket,
                reason: reason.as_str(),
                detail: Some(detail),
                skipped: true,
                at_unix_ms,
            };
            (Kind::Reap, data, true)
        }
        Event::CatalogChanged {
            service,
            fingerprint,
            state,
            reason,
        } => {
            let data = ServiceFrame {
                view: table.service(service).map(|s| catalog.view(s)),
                catalog: Some(CatalogFrame {
                    state,
                    fingerprint: fingerprint.as_deref(),
                    reason: reason.as_deref(),
                }),
                ..ServiceFrame::bare(service, at_unix_ms)
            };
            (Kind::Service, FrameData::Service(data), true)
        }
        Event::ServiceDropped { service, empty_for } => {
            let data = ServiceFrame {
                removed: Some(true),
                empty_for_ms: Some(empty_for.as_millis() as u64),
                ..ServiceFrame::bare(service, at_unix_ms)
            };
            (Kind::Service, FrameData::Service(data), true)
        }
        Event::ScanCompleted {
            full,
            periodic,
            sockets,
            generation,
        } => {
            let data = FrameData::Scan {
                full: *full,
                periodic: *periodic,
                sockets: *sockets,
                generation: *generation,
                services: table.services.len(),
                at_unix_ms,
            };
            (Kind::Scan, data, *full && !*periodic)
        }
        Event::RootReplaced { root, recreated } => {
            let data = FrameData::RootReplaced {
                root_replaced: true,
                root,
                recreated: *recreated,
                at_unix_ms,
            };
            (Kind::Scan, data, true)
        }
    }
}

// === impl ServiceFrame ===

impl<'a> ServiceFrame<'a> {
    /// The frame of `service` with no view and nothing else set, made at `at_unix_ms`.
    pub(super) fn bare(service: &'a str, at_unix_ms: u64) -> ServiceFrame<'a> {
        ServiceFrame {
            service,
            name: service,
            view: None,
            catalog: None,
            removed: None,
            empty_for_ms: None,
            at_unix_ms,
        }
    }
}
