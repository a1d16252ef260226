//! What the front's parts share, built once in `serve`: the registry they read, the one
//! upstream pool they reach services through, and the limits of both. The proxy, the JSON-RPC
//! front end, MCP, the docs and the dashboard all hold the same [`Shared`].

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use crate::registry::Registry;
use crate::traffic::Traffic;
use crate::upstream::Pool;

/// The context every part of the front reads.
pub(crate) struct Shared {
    /// The service table and the catalog.
    pub registry: Registry,
    /// Upstream connections (the only pool).
    pub pool: Arc<Pool>,
    /// `--upstream-timeout`: the deadline for a response head.
    pub upstream_timeout: Duration,
    /// `--max-body`, also the limit on upstream answers the router buffers.
    pub max_body: u64,
    /// Start time, for `uptime_secs`.
    pub started: Instant,
    /// Where the TCP listeners are, for `router.health`'s `listeners` (so a client such as
    /// `hero_router mcp-config` finds them): `{"service": [ADDR…], "admin": [ADDR…]}`.
    pub listeners: Value,
    /// Per-service traffic, fed by the connection driver.
    pub traffic: Arc<Traffic>,
}

// === impl Shared ===

impl Shared {
    /// The `router.health` result: `degraded`, not ready, with a `reason`, once a core task
    /// has failed (the table is frozen then).
    ///
    /// `ready`: a full scan has succeeded (and no core task failed). `status` is `degraded`,
    /// with a `reason`, while the root cannot be scanned (the table is the last good one) or
    /// after a core task failed. `last_scan` says when the last full scan ran and how it went.
    pub(crate) fn health(&self) -> Value {
        let table = self.registry.table();
        let failure = self.registry.failure();
        let reason = failure.map(str::to_owned).or_else(|| {
            table
                .root_error()
                .map(|e| format!("cannot read the socket root {}: {e}", table.root.display()))
        });
        let mut health = json!({
            "status": if reason.is_some() { "degraded" } else { "ok" },
            "version": crate::VERSION,
            "uptime_secs": self.started.elapsed().as_secs(),
            "services": table.services.len(),
            "ready": table.ready && failure.is_none(),
            "last_scan": table.last_scan,
            "listeners": self.listeners,
        });
        if let Some(reason) = reason {
            health["reason"] = json!(reason);
        }
        health
    }

    /// The dashboard's per-row traffic now ([`Traffic::sparklines`]).
    pub(crate) fn sparklines(&self) -> Value {
        self.traffic
            .sparklines(self.traffic.secs_at(Instant::now()))
    }

    /// The `router.traffic` result now.
    pub(crate) fn traffic(&self) -> Value {
        self.traffic.report(self.traffic.secs_at(Instant::now()))
    }
}

#[cfg(test)]
impl Shared {
    /// A context over `registry` with small limits and no listeners, for unit tests.
    pub(crate) fn for_tests(registry: Registry) -> Shared {
        use crate::upstream::Inflight;
        Shared {
            registry,
            pool: Arc::new(Pool::new(Duration::from_secs(1), Inflight::new(64))),
            upstream_timeout: Duration::from_secs(5),
            max_body: 1 << 20,
            started: Instant::now(),
            listeners: json!({"service": [], "admin": []}),
            traffic: Arc::default(),
        }
    }
}
