//! The registry: the one place that owns what the router knows about the services, and the
//! one way to read it.
//!
//! Data flows one way. The scanner writes the table (services, sockets, states) and its events
//! through a [`TableWriter`]; every front (the proxy, the JSON-RPC methods, the CLI's daemon
//! side) reads through a [`Registry`], a cheap cloneable handle. A reader can ask for a scan
//! ([`Registry::scan_now`]) but never changes what is published.
//!
//! - [`table`]: the published snapshot, swapped whole;
//! - [`catalog`]: every service's manifest and OpenRPC document, written by the catalog
//!   fetcher through a [`CatalogWriter`] and swapped whole like the table;
//! - [`events`]: one event per change, logged once and broadcast;
//! - [`state`]: the socket states and skipped-reap reasons of docs/sockets-and-reaping.md;
//! - [`names`]: which names in the root are services.

pub(crate) mod catalog;
pub(crate) mod events;
pub(crate) mod names;
pub(crate) mod state;
pub(crate) mod table;

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};

use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use catalog::Catalog;
use events::{Events, Stamped};
use table::Table;

/// A cheap, cloneable reader of the registry, which can also ask the scanner for a scan.
#[derive(Clone)]
pub struct Registry {
    stats: Arc<ScanStats>,
    table: watch::Receiver<Arc<Table>>,
    events: Events,
    requests: mpsc::Sender<ScanRequest>,
    /// Why the scanner, or a task fed by it, stopped for good (set by whoever supervises it).
    /// From then on the table is frozen, and `router.health` says so.
    failure: Arc<OnceLock<String>>,
    catalog: watch::Receiver<Arc<Catalog>>,
    catalog_requests: mpsc::Sender<CatalogRequest>,
    /// The catalog's one writer, until the catalog fetcher claims it.
    catalog_writer: Arc<Mutex<Option<CatalogWriter>>>,
}

/// The catalog fetcher's side of the registry: it publishes the catalog and its events, and
/// answers refresh requests.
pub struct CatalogWriter {
    pub(crate) catalog: watch::Sender<Arc<Catalog>>,
    pub(crate) events: Events,
    pub(crate) requests: mpsc::Receiver<CatalogRequest>,
}

/// A request to fetch catalog documents again, whether or not their socket changed.
pub(crate) struct CatalogRequest {
    /// One service, or every one.
    pub(crate) service: Option<String>,
    /// Answered once the service's documents were fetched (or there was nothing to fetch).
    pub(crate) reply: Option<oneshot::Sender<()>>,
}

/// The scanner's side of the registry: it publishes tables and events, and answers scan
/// requests.
pub struct TableWriter {
    pub(crate) table: watch::Sender<Arc<Table>>,
    pub(crate) events: Events,
    pub(crate) requests: mpsc::Receiver<ScanRequest>,
    pub(crate) stats: Arc<ScanStats>,
}

/// A request for a full scan, answered with its summary.
pub(crate) struct ScanRequest {
    pub(crate) reply: oneshot::Sender<Result<ScanSummary, ScanError>>,
}

/// Why a full scan that was asked for has no summary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    /// The scanner has stopped (the router is shutting down, or the scanner failed).
    #[error("the scanner has stopped")]
    Stopped,
    /// The root could not be listed, so nothing was scanned; the table is as it was.
    #[error(
        "cannot read the socket root {root}: {error}; the table is kept as it was (check that the router's user may list the directory)"
    )]
    Root {
        /// The root.
        root: String,
        /// What listing it said.
        error: String,
    },
}

/// Counts of one scan, as `router.scan` returns them (docs/json-rpc.md#scan-result).
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
pub(crate) fn channel(root: PathBuf) -> (Registry, TableWriter) {
    let (table_tx, table_rx) = watch::channel(Arc::new(Table {
        root,
        ..Table::default()
    }));
    let events = Events::new();
    let (req_tx, requests) = mpsc::channel(16);
    let stats = Arc::new(ScanStats::default());
    let (catalog_tx, catalog_rx) = watch::channel(Arc::new(Catalog::default()));
    let (catalog_req_tx, catalog_requests) = mpsc::channel(64);
    let catalog_writer = CatalogWriter {
        catalog: catalog_tx,
        events: events.clone(),
        requests: catalog_requests,
    };
    let registry = Registry {
        stats: stats.clone(),
        table: table_rx,
        events: events.clone(),
        requests: req_tx,
        failure: Arc::default(),
        catalog: catalog_rx,
        catalog_requests: catalog_req_tx,
        catalog_writer: Arc::new(Mutex::new(Some(catalog_writer))),
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
    pub fn subscribe(&self) -> broadcast::Receiver<Stamped> {
        self.events.subscribe()
    }

    /// Runs a full scan now (it does not advance refusal streaks) and returns its summary.
    /// `None` if the scanner has stopped.
    pub async fn scan_now(&self) -> Result<ScanSummary, ScanError> {
        let (reply, rx) = oneshot::channel();
        let sent = self.requests.send(ScanRequest { reply }).await;
        sent.map_err(|_| ScanError::Stopped)?;
        rx.await.unwrap_or(Err(ScanError::Stopped))
    }

    /// Waits until the first full scan has been published, whether or not it could read the
    /// root (`Table::ready` says whether one succeeded).
    pub async fn ready(&self) {
        let mut rx = self.table.clone();
        let _ = rx.wait_for(|t| t.scanned()).await;
    }

    /// Waits (at most `limit`) for the first full scan, if it has not finished yet.
    pub(crate) async fn wait_ready(&self, limit: std::time::Duration) {
        if !self.table().scanned() {
            let _ = tokio::time::timeout(limit, self.ready()).await;
        }
    }

    /// The `router.services` result as JSON text, written straight from the table and the
    /// catalog (a thousand services never become a tree of `Value`s).
    pub(crate) fn services_json(&self) -> Box<serde_json::value::RawValue> {
        let (table, catalog) = (self.table(), self.catalog());
        let views: Vec<_> = table.services.iter().map(|s| catalog.view(s)).collect();
        crate::json::raw(&views)
    }

    /// The `router.service` result for `name` as JSON text; `None` if it is not in the table.
    pub(crate) fn service_json(&self, name: &str) -> Option<Box<serde_json::value::RawValue>> {
        let (table, catalog) = (self.table(), self.catalog());
        table
            .service(name)
            .map(|s| crate::json::raw(&catalog.view(s)))
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

    /// The current catalog.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.borrow().clone()
    }

    /// A receiver that sees every published catalog.
    pub fn catalogs(&self) -> watch::Receiver<Arc<Catalog>> {
        self.catalog.clone()
    }

    /// Fetches `service`'s documents again and waits until that is done (bounded by the
    /// fetcher's timeout). False if no catalog fetcher runs.
    pub async fn refresh_catalog(&self, service: &str) -> bool {
        let (reply, rx) = oneshot::channel();
        let req = CatalogRequest {
            service: Some(service.to_owned()),
            reply: Some(reply),
        };
        self.catalog_requests.send(req).await.is_ok() && rx.await.is_ok()
    }

    /// Asks for every service's documents to be fetched again; does not wait.
    pub fn refresh_catalog_all(&self) {
        let _ = self.catalog_requests.try_send(CatalogRequest {
            service: None,
            reply: None,
        });
    }

    /// The catalog's writer, for the one catalog fetcher; `None` once claimed.
    pub fn claim_catalog_writer(&self) -> Option<CatalogWriter> {
        self.catalog_writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}

#[cfg(test)]
mod tests;
