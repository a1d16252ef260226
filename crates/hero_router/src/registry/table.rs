//! The live service table: an immutable snapshot, swapped whole after every scan.
//!
//! Readers (the front end, the CLI, tests) take an `Arc<Table>` and keep it for as long as they
//! need it; the scanner never mutates a published table, it builds the next one.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use crate::registry::names::Ignored;
use crate::registry::state::{SkipReason, SocketState};

/// One published snapshot of every service and socket under the root.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Table {
    /// The socket root.
    pub root: PathBuf,
    /// Services sorted by name (shared with the tables before and after this one while they
    /// do not change).
    pub services: Vec<Arc<Service>>,
    /// Top-level entries that are not services.
    pub ignored: Vec<Ignored>,
    /// True once a full scan has succeeded (the root could be read).
    pub ready: bool,
    /// The last full scan: when it ran and whether it could read the root. `None` until the
    /// first one has finished.
    pub last_scan: Option<LastScan>,
    /// Increases with every published table.
    pub generation: u64,
}

/// The outcome of a full scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastScan {
    /// When it finished (Unix ms).
    pub at_unix_ms: u64,
    /// How long it took.
    pub duration_ms: u64,
    /// The root could be read (every service was scanned, each one as far as it could be).
    pub ok: bool,
    /// Why the root could not be read.
    pub error: Option<String>,
}

/// A service as `router.services` shows it (docs/json-rpc.md#service-object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Service {
    /// Directory name.
    pub name: String,
    /// Derived from its sockets, see [`ServiceStatus`].
    pub status: ServiceStatus,
    /// Its sockets sorted by kind.
    pub sockets: Vec<Socket>,
    /// Why its directory could not be listed, if it could not: its known sockets are still
    /// probed by path, new ones cannot be seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One socket of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Socket {
    /// File stem: `rpc`, `admin`, `web_<name>`, …
    pub kind: String,
    /// Full path (shared with the scanner's records, the catalog and the upstream pool's
    /// keys: a table of 10,000 sockets holds no copy of its own).
    #[serde(serialize_with = "lossy")]
    pub path: Arc<Path>,
    /// Current state.
    pub state: SocketState,
    /// Unix ms of the last state change.
    pub since_unix_ms: u64,
    /// Why the state is what it is (errno, file type).
    pub detail: Cow<'static, str>,
    /// Consecutive periodic scans that found this file refused.
    pub refused_streak: u32,
    /// Why the last reap round kept this refused socket (a reap reason code), if it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reap_skipped: Option<SkipReason>,
    /// The file's identity at the last probe: the upstream pool is keyed by it, so a replaced
    /// socket never gets a connection that belonged to the old server.
    #[serde(skip)]
    pub identity: Option<hero_socket::Identity>,
}

/// A service's overall status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceStatus {
    /// Its `rpc` socket is live.
    Healthy,
    /// Its `rpc` socket is busy.
    Degraded,
    /// No live or busy `rpc` socket, and not `non_rpc`.
    Unhealthy,
    /// No `rpc` socket at all, but another socket is live.
    NonRpc,
}

// === impl Table ===

impl Table {
    /// True once a full scan has finished, whether or not it could read the root.
    pub fn scanned(&self) -> bool {
        self.last_scan.is_some()
    }

    /// Why the root could not be read at the last full scan.
    pub fn root_error(&self) -> Option<&str> {
        self.last_scan.as_ref().and_then(|s| s.error.as_deref())
    }

    /// Looks a service up by name.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services
            .binary_search_by(|s| s.name.as_str().cmp(name))
            .ok()
            .map(|i| &*self.services[i])
    }
}

// === impl ServiceStatus ===

impl ServiceStatus {
    /// Derives the status from a service's sockets.
    pub fn of(sockets: &[Socket]) -> ServiceStatus {
        match sockets.iter().find(|s| s.kind == "rpc").map(|s| s.state) {
            Some(SocketState::Live) => ServiceStatus::Healthy,
            Some(SocketState::Busy) => ServiceStatus::Degraded,
            Some(_) => ServiceStatus::Unhealthy,
            None if sockets.iter().any(|s| s.state == SocketState::Live) => ServiceStatus::NonRpc,
            None => ServiceStatus::Unhealthy,
        }
    }
}

/// A path as JSON text: lossy where it is not UTF-8, as the table has always shown it.
fn lossy<S: serde::Serializer>(path: &Arc<Path>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&path.display())
}

#[cfg(test)]
mod tests;
