//! The registry: the one place that owns what the router knows about the services, and the
//! one way to read it.
//!
//! Data flows one way. The scanner writes the table (services, sockets, states) and its events
//! through a [`TableWriter`]; every front (the proxy, the JSON-RPC methods, the CLI's daemon
//! side) reads through a [`Registry`], a cheap cloneable handle. A reader can ask for a scan
//! ([`Registry::scan_now`]) but never changes what is published.
//!
//! - [`table`]: the published snapshot, swapped whole;
//! - [`events`]: one event per change, logged once and broadcast;
//! - [`state`]: the socket states and skipped-reap reasons of CONTRACT §2;
//! - [`names`]: which names in the root are services.

pub mod events;
pub mod names;
pub mod state;
pub mod table;

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};

use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use events::{EVENT_CAPACITY, Event};
use table::Table;

/// A cheap, cloneable reader of the registry, which can also ask the scanner for a scan.
#[derive(Clone)]
pub struct Registry {
    stats: Arc<ScanStats>,
    table: watch::Receiver<Arc<Table>>,
    events: broadcast::Sender<Event>,
    requests: mpsc::Sender<ScanRequest>,
    /// Why the scanner, or a task fed by it, stopped for good (set by whoever supervises it).
    /// From then on the table is frozen, and `router.health` says so.
    failure: Arc<OnceLock<String>>,
}

/// The scanner's side of the registry: it publishes tables and events, and answers scan
/// requests.
pub struct TableWriter {
    pub(crate) table: watch::Sender<Arc<Table>>,
    pub(crate) events: broadcast::Sender<Event>,
    pub(crate) requests: mpsc::Receiver<ScanRequest>,
    pub(crate) stats: Arc<ScanStats>,
}

/// A request for a full scan, answered with its summary.
pub(crate) struct ScanRequest {
    pub(crate) reply: oneshot::Sender<ScanSummary>,
}

/// Counts of one scan, as `router.scan` returns them (CONTRACT §4).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ScanSummary {
    /// Services seen.
    pub services: usize,
    /// Sockets seen.
    pub sockets: usize,
    /// Live sockets.
    pub live: usize,
    /// Busy sockets.
    pub busy: usize,
    /// Refused sockets (after reaping).
    pub refused: usize,
    /// Paths removed by this scan.
    pub reaped: Vec<String>,
    /// Wall time of the scan.
    pub duration_ms: u64,
}

/// Counters of the scanner's own work: what it was asked to look at, and what it did.
#[derive(Debug, Default)]
pub struct ScanStats {
    /// Watch events received, whether they mattered or not.
    pub watch_events: AtomicU64,
    /// Batches of watch events handled.
    pub watch_batches: AtomicU64,
    /// Full scans run.
    pub full_scans: AtomicU64,
    /// Partial scans run (watch events and settle re-probes that named a service).
    pub partial_scans: AtomicU64,
}

/// A new registry for `root`: the readers' handle and the scanner's writer. The table starts
/// empty and not yet scanned.
pub fn channel(root: PathBuf) -> (Registry, TableWriter) {
    let (table_tx, table_rx) = watch::channel(Arc::new(Table {
        root,
        ..Table::default()
    }));
    let (events, _) = broadcast::channel(EVENT_CAPACITY);
    let (req_tx, requests) = mpsc::channel(16);
    let stats = Arc::new(ScanStats::default());
    let registry = Registry {
        stats: stats.clone(),
        table: table_rx,
        events: events.clone(),
        requests: req_tx,
        failure: Arc::default(),
    };
    let writer = TableWriter {
        table: table_tx,
        events,
        requests,
        stats,
    };
    (registry, writer)
}

// === impl Registry ===

impl Registry {
    /// The current table.
    pub fn table(&self) -> Arc<Table> {
        self.table.borrow().clone()
    }

    /// A receiver that sees every published table.
    pub fn tables(&self) -> watch::Receiver<Arc<Table>> {
        self.table.clone()
    }

    /// The scanner's counters.
    pub fn stats(&self) -> &ScanStats {
        &self.stats
    }

    /// Subscribes to the registry's events.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Runs a full scan now (it does not advance refusal streaks) and returns its summary.
    /// `None` if the scanner has stopped.
    pub async fn scan_now(&self) -> Option<ScanSummary> {
        let (reply, rx) = oneshot::channel();
        self.requests.send(ScanRequest { reply }).await.ok()?;
        rx.await.ok()
    }

    /// Waits until the first full scan has been published, whether or not it could read the
    /// root (`Table::ready` says whether one succeeded).
    pub async fn ready(&self) {
        let mut rx = self.table.clone();
        let _ = rx.wait_for(|t| t.scanned()).await;
    }

    /// Records that the scanner (or a task that depends on it) failed and will not come back.
    /// The first reason recorded wins.
    pub fn mark_failed(&self, reason: String) {
        let _ = self.failure.set(reason);
    }

    /// Why the scanner failed, if [`Registry::mark_failed`] was called.
    pub fn failure(&self) -> Option<&str> {
        self.failure.get().map(String::as_str)
    }
}
