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
//!                  │ registry: watch<Arc<Table>> (swapped whole), broadcast<Event> (+ one log line each)
//!                  v
//!        readers only: proxy, rpc, CLI, metrics, tests
//! ```
//!
//! Modules:
//! - [`registry`]: what the router knows and publishes (the table, socket states, events) and
//!   the [`Registry`] handle every front reads it through.
//! - [`scanner`]: discovery, probing, the state machine ([`scanner::state`]), reaping; the
//!   registry's table writer.
//! - [`config`] and [`cli`]: flags, environment, defaults.
//! - [`rpc`]: the JSON-RPC front end (own codec, router methods, forwarding).
//! - [`http1`]: HTTP/1.1 framing, the one authority for every byte the router parses or writes.
//! - [`proxy`]: HTTP routing onto service sockets, the upstream pool, errors.
//! - [`mcp`]: the MCP gateway, every service's methods as tools for AI agents.
//! - [`serve`]: the daemon and its accept loops; [`scan_cmd`]: one-shot `hero_router scan`.
//! - [`dashboard`] (`GET /`, `/api/…` on the admin listener) and [`mcp`]: the router's own HTTP
//!   applications, behind the connection driver.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod access;
pub mod browser;
pub mod catalog;
pub mod cli;
pub mod commands;
pub mod config;
pub mod dashboard;
pub mod docs;
pub mod http1;
pub mod json;
pub mod jsonrpc;
pub mod mcp;
pub mod metrics;
pub mod proxy;
pub mod registry;
pub mod rpc;
pub mod safe_write;
pub mod scan_cmd;
pub mod scanner;
pub mod serve;
pub mod telemetry;
#[cfg(test)]
mod test_util;
pub mod upstream;

pub use config::Config;
pub use registry::table::Table;
pub use registry::{Registry, ScanSummary};
pub use scanner::{Scanner, ScannerConfig};

/// The router's version, as reported by `router.health` and the start-up log line.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
