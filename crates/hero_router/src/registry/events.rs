//! Lifecycle events: every socket state change, every reap and skipped reap, every scan.
//!
//! Each event is logged once (docs/serve.md#logs) and broadcast to subscribers (tests, the front
//! end), so nobody has to sleep and poll to see the scanner act.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::broadcast;

use crate::registry::state::SkipReason;

/// Capacity of the event broadcast. A subscriber that falls further behind gets `Lagged` and
/// should re-read the table.
pub(crate) const EVENT_CAPACITY: usize = 4096;

/// The sending side of the event broadcast, held by the registry's writers: every event is
/// logged once and stamped here, when its writer emits it.
#[derive(Clone)]
pub(crate) struct Events {
    tx: broadcast::Sender<Stamped>,
}

/// An event as subscribers receive it, with the time its writer emitted it (a subscriber that
/// gets to it later still shows when it happened).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamped {
    /// What happened.
    pub event: Event,
    /// When it was emitted, in ms since the epoch.
    pub at_unix_ms: u64,
}

/// Something the scanner did or saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A socket changed state. A new socket comes `from: "absent"`; a vanished one goes
    /// `to: "gone"`.
    SocketChanged {
        /// Service name.
        service: String,
        /// Socket path.
        socket: String,
        /// Previous state, or `absent`.
        from: &'static str,
        /// New state, or `gone`.
        to: &'static str,
    },
    /// A stale socket was removed (`reason: "stale"`), or vanished by itself while being
    /// removed (`reason: "already_gone"`).
    Reaped {
        /// Service name.
        service: String,
        /// Socket path.
        socket: String,
        /// `stale` or `already_gone`.
        reason: &'static str,
    },
    /// A refused socket was kept. Emitted when the reason changes, not on every scan.
    ReapSkipped {
        /// Service name.
        service: String,
        /// Socket path.
        socket: String,
        /// Why it was kept.
        reason: SkipReason,
        /// Extra detail for errors.
        detail: String,
    },
    /// The socket root was deleted (and re-created by the router) or replaced by another
    /// directory: the watch was re-armed, and the router's own sockets must be bound again.
    RootReplaced {
        /// The socket root.
        root: String,
        /// The router created it again (it was missing).
        recreated: bool,
    },
    /// A service's catalog document changed: a new fingerprint (or none any more), or a new
    /// state.
    CatalogChanged {
        /// Service name.
        service: String,
        /// `sha256:<hex>` of the new document, if there is one.
        fingerprint: Option<String>,
        /// The spec's state (`ok`, `invalid`, `absent`, `error`).
        state: &'static str,
        /// Why it is not `ok`.
        reason: Option<String>,
    },
    /// A service left the table: its directory has had no socket for `empty_for` (the reap
    /// grace). Its first new socket brings it back (`SocketChanged` from `absent`).
    ServiceDropped {
        /// Service name.
        service: String,
        /// How long the directory had been without a socket.
        empty_for: std::time::Duration,
    },
    /// A scan finished.
    ScanCompleted {
        /// Full scan (`true`) or a watch-triggered scan of some services.
        full: bool,
        /// Whether it was periodic.
        periodic: bool,
        /// Sockets seen.
        sockets: usize,
        /// Table generation published by this scan.
        generation: u64,
    },
}

// === impl Events ===

impl Events {
    /// A broadcast of [`EVENT_CAPACITY`] events.
    pub(crate) fn new() -> Events {
        Events {
            tx: broadcast::channel(EVENT_CAPACITY).0,
        }
    }

    /// Logs `event`, stamps it with the time now and sends it to every subscriber.
    pub(crate) fn emit(&self, event: Event) {
        event.log();
        // No subscriber is not an error: the log line is written either way.
        let _ = self.tx.send(Stamped {
            event,
            at_unix_ms: unix_ms(),
        });
    }

    /// A receiver of every event emitted from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Stamped> {
        self.tx.subscribe()
    }
}

// === impl Event ===

impl Event {
    /// Writes the event's one log line.
    pub fn log(&self) {
        match self {
            Event::SocketChanged {
                service,
                socket,
                from,
                to,
            } => {
                tracing::info!(service, socket, from, to, "socket state changed");
            }
            Event::Reaped {
                service,
                socket,
                reason,
            } => {
                tracing::info!(service, socket, reason, "reaped stale socket");
            }
            Event::ReapSkipped {
                service,
                socket,
                reason,
                detail,
            } if reason.is_error() => {
                tracing::warn!(
                    service,
                    socket,
                    reason = reason.as_str(),
                    detail,
                    "reap failed; socket kept"
                );
            }
            Event::ReapSkipped {
                service,
                socket,
                reason,
                detail,
            } => {
                tracing::info!(
                    service,
                    socket,
                    reason = reason.as_str(),
                    detail,
                    "reap skipped"
                );
            }
            Event::RootReplaced { root, recreated } => {
                tracing::warn!(
                    root,
                    recreated,
                    "the socket root was deleted or replaced; watching it again and binding the router's sockets again"
                );
            }
            Event::CatalogChanged {
                service,
                fingerprint,
                state,
                reason,
            } => {
                tracing::info!(
                    service,
                    fingerprint = fingerprint.as_deref(),
                    state,
                    reason = reason.as_deref(),
                    "catalog_changed"
                );
            }
            Event::ServiceDropped { service, empty_for } => {
                tracing::info!(
                    service,
                    empty_for = ?empty_for,
                    "service dropped from the table: its directory has no sockets"
                );
            }
            Event::ScanCompleted {
                full,
                periodic,
                sockets,
                generation,
            } => {
                tracing::debug!(full, periodic, sockets, generation, "scan completed");
            }
        }
    }
}

/// Wall clock in ms since the epoch (the stamp of records, catalog entries and the live feed).
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
