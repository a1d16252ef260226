//! hero_router: the one router of a Hero OS node.
//!
//! Every Hero service listens on Unix sockets under one root (`<root>/<service>/<kind>.sock`).
//! The router finds them, probes them, keeps a live table, removes the sockets of services that
//! really died, and (in [`serve`]) answers on its own sockets and TCP.
//!
//! ```text
//!              notify (inotify)        periodic tick ± jitter       router.scan
//!                    \                         |                        /
//!                     v                        v                       v
//!   ┌──────────────────────── scanner task (one owner of all state) ─────────────────────┐
//!   │ discover ─► probe (lstat + non-blocking connect, bounded batches) ─► state::advance │
//!   │                                                     │                               │
//!   │        reap_check (rules 1–3) ─► hero_proc guard ─► reaper::reap (lock, re-check,   │
//!   │                                                      rename aside, verify, unlink) │
//!   └──────────────┬──────────────────────────────────────────┬──────────────────────────┘
//!                  │ registry: watch<Arc<Table>> (swapped whole), broadcast<Stamped> (+ one log line each)
//!                  v
//!        readers only: proxy, rpc, CLI, metrics, tests
//! ```
//!
//! Modules, from the bottom of the dependency graph up (no module imports one above it; a
//! test, `tests/module_graph.rs`, keeps it so):
//! - `http1` (HTTP/1.1 framing, the one authority for every byte the router parses or
//!   writes), `jsonrpc` (the JSON-RPC envelope and the router's error codes), `browser` (what a
//!   web page may make the router do), `json`, `safe_write`;
//! - `registry`: what the router knows and publishes (the table, socket states, the catalog,
//!   events) and the [`Registry`] handle every front reads it through;
//! - `upstream`: the one client every request to a service goes through (the pool, the
//!   connection rules, JSON-RPC calls); `proxy`: routes onto service sockets and the router's
//!   own errors;
//! - `access` (the allow-list), `telemetry` (logging), [`cli`] (the flags);
//! - `scanner`: discovery, probing, the state machine, reaping: the registry's table writer;
//!   `catalog`: manifests and OpenRPC documents: the registry's catalog writer;
//! - `rpc` (the JSON-RPC front end), `docs`, `clients` (typed clients generated from the specs),
//!   `mcp` (the MCP gateway), `dashboard`, `metrics`;
//! - `config` (flags and environment resolved), `serve` (the daemon: listeners, the
//!   connection driver, the one routing decision), `scan_cmd`, and [`commands`] (the binary).
//!
//! The public API is what the binary, the benchmarks and the integration tests need: the
//! daemon ([`Config`], [`Listeners`], [`run`], [`run_with_scanner`]), the scanner and the
//! registry it writes, and with the `test-util` feature, the test seams in [`test_hooks`].
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

mod access;
mod app;
mod browser;
mod catalog;
pub mod cli;
mod clients;
pub mod commands;
mod config;
mod dashboard;
mod docs;
mod http1;
mod json;
mod jsonrpc;
mod mcp;
mod metrics;
mod proxy;
mod registry;
mod rpc;
mod safe_write;
mod scan_cmd;
mod scanner;
mod serve;
mod shared;
mod telemetry;
#[cfg(test)]
mod test_util;
mod traffic;
mod upstream;

pub use catalog::USER_AGENT;
pub use config::Config;
pub use registry::catalog::{Catalog, CatalogEntry, SpecState};
pub use registry::events::{Event, Stamped};
pub use registry::state::{SkipReason, SocketState};
pub use registry::table::{ServiceStatus, Table};
pub use registry::{Registry, ScanError, ScanSummary};
pub use scanner::state::{ProbeCause, ReapPolicy};
pub use scanner::{Scanner, ScannerConfig};
pub use serve::{Listeners, run, run_with_scanner};

/// Seams for the integration tests and benchmarks: hooks that make a race happen every time,
/// and pure parts checked on their own. Only with the `test-util` feature.
#[cfg(any(test, feature = "test-util"))]
pub mod test_hooks {
    pub use crate::access::guard::EMPTY_GRACE;
    pub use crate::catalog::validate::{Validation, validate as validate_openrpc};
    pub use crate::clients::{Lang as ClientLang, generate as generate_client};
    pub use crate::docs::{DocService, IndexEntry, html, index_html, index_markdown, markdown};
    pub use crate::http1::{BadChunk, ChunkedDecoder};
    pub use crate::safe_write::write as safe_write;
    pub use crate::scanner::ProbeHook;
    pub use crate::scanner::discover::ListHook;
}

/// The router's version, as reported by `router.health` and the start-up log line.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
