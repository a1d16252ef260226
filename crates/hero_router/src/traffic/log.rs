//! The access log: one line per finished request on the `hero_router::access` target
//! (docs in the README's "Logs and traffic").
//!
//! A request's connection builds a [`Record`] (plain data, nothing formatted) and hands it to
//! a bounded queue with a non-blocking send; a thread of its own formats and writes it. A log
//! reader that cannot keep up (a full pipe, a stalled collector) blocks only that thread: once
//! the queue is full, records are dropped and counted
//! (`hero_router_access_log_dropped_total` in `/metrics`), and requests never wait.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, SystemTime};

use serde_json::json;
use tracing_subscriber::fmt::MakeWriter as _;

use super::RequestId;

/// The tracing target of access lines.
pub(crate) const TARGET: &str = "hero_router::access";
/// Records waiting for the writer at most; more are dropped and counted.
const QUEUE: usize = 4096;

/// Access lines dropped because the writer could not keep up. Process-wide, like stderr.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// `--access-log`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AccessLogFormat {
    /// No access log.
    Off,
    /// nginx-like lines (combined format, plus the route, the times and the ids).
    Text,
    /// One JSON object per line.
    Json,
}

/// The access log's sending side, shared by every connection.
#[derive(Debug)]
pub(crate) struct AccessLog {
    tx: Option<SyncSender<Record>>,
    query: bool,
}

/// Where a request went, as the access line names it.
#[derive(Debug, Default, Clone)]
pub(crate) struct RouteLabel {
    /// The service (`hero_router` for the router's own endpoints); `None` if it was refused
    /// or routed nowhere.
    pub service: Option<String>,
    /// The socket kind (`rpc`, `ui`, `web_x`) or what the router served (`own`, `docs`,
    /// `dashboard`, `mcp`).
    pub kind: Option<String>,
    /// The JSON-RPC methods of a `/rpc` body (a batch lists them), or the MCP method.
    pub methods: Vec<String>,
    /// The tool of an MCP `tools/call`.
    pub tool: Option<String>,
}

/// One finished request, as plain data: formatted on the writer's thread.
#[derive(Debug)]
pub(crate) struct Record {
    /// When it finished.
    pub time: SystemTime,
    /// The TCP peer; `None` on a Unix socket.
    pub client: Option<IpAddr>,
    /// The listener it came in on.
    pub listener: &'static str,
    /// The method (`-` if the head could not be read).
    pub method: String,
    /// The path (with the query only under `--access-log-query`).
    pub path: String,
    /// HTTP/1.0 rather than 1.1.
    pub http10: bool,
    /// Where it went.
    pub route: RouteLabel,
    /// The status sent (`0` if none was).
    pub status: u16,
    /// Bytes read from the client (head and body).
    pub bytes_in: u64,
    /// Bytes sent to the client.
    pub bytes_out: u64,
    /// From the complete head to the last byte of the answer.
    pub total: Duration,
    /// Waiting for a service's answer head, if a service was asked.
    pub upstream: Option<Duration>,
    /// The request id.
    pub request_id: RequestId,
    /// The W3C trace id.
    pub trace_id: [u8; 32],
}

/// Access lines dropped so far because the writer could not keep up.
pub(crate) fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

// === impl AccessLog ===

impl AccessLog {
    /// An access log in `format`, its writer thread started (none for `off`). `query`: keep
    /// query strings (`--access-log-query`).
    pub(crate) fn start(format: AccessLogFormat, query: bool) -> AccessLog {
        if format == AccessLogFormat::Off {
            return AccessLog::off();
        }
        let (tx, rx) = sync_channel(QUEUE);
        let spawned = std::thread::Builder::new()
            .name("hero-access-log".into())
            .spawn(move || write_lines(rx, format));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the access log's writer; access log off");
            return AccessLog::off();
        }
        AccessLog {
            tx: Some(tx),
            query,
        }
    }

    /// No access log.
    pub(crate) fn off() -> AccessLog {
        AccessLog {
            tx: None,
            query: false,
        }
    }

    /// True if records are written (else the connection need not build them).
    pub(crate) fn is_on(&self) -> bool {
        self.tx.is_some()
    }

    /// True if paths keep their query.
    pub(crate) fn keeps_query(&self) -> bool {
        self.query
    }

    /// Queues `record` without waiting; a full queue drops it and counts it.
    pub(crate) fn send(&self, record: Record) {
        if let Some(tx) = &self.tx {
            if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = tx.try_send(record)
            {
                DROPPED.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The writer thread: formats and writes records until every sender is gone.
fn write_lines(rx: Receiver<Record>, format: AccessLogFormat) {
    let mut line = String::with_capacity(512);
    while let Ok(record) = rx.recv() {
        line.clear();
        match format {
            AccessLogFormat::Text => {
                text_line(&record, &mut line);
                tracing::info!(target: TARGET, "{line}");
            }
            AccessLogFormat::Json => {
                // A JSON line is the object itself, whatever `--log-format` is, so that a
                // collector parses it as it is; the target's filter still applies.
                if tracing::enabled!(target: TARGET, tracing::Level::INFO) {
                    line.push_str(&json_line(&record).to_string());
                    line.push('\n');
                    let _ = crate::telemetry::Stderr
                        .make_writer()
                        .write(line.as_bytes());
                }
            }
            AccessLogFormat::Off => {}
        }
    }
}

/// Milliseconds with three decimals.
fn ms(d: Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

/// `text` with `"` and `\` escaped and anything outside visible ASCII as `\xNN`, as nginx
/// writes a request line.
fn push_escaped(out: &mut String, text: &str) {
    for b in text.bytes() {
        match b {
            b'"' | b'\\' => {
                let _ = write!(out, "\\x{b:02X}");
            }
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\x{b:02X}");
            }
        }
    }
}

/// The route as one token: `service/kind` plus `:method,method` or `:tool`; `-` if none.
fn route_token(route: &RouteLabel, out: &mut String) {
    let start = out.len();
    if let Some(service) = &route.service {
        push_escaped(out, service);
    }
    if let Some(kind) = &route.kind {
        out.push('/');
        push_escaped(out, kind);
    }
    let mut names = route
        .tool
        .iter()
        .map(String::as_str)
        .chain(
            route
                .methods
                .iter()
                .map(String::as_str)
                .filter(|_| route.tool.is_none()),
        )
        .peekable();
    if names.peek().is_some() {
        out.push(':');
        for (i, name) in names.enumerate() {
            if i > 0 {
                out.push(',');
            }
            for c in name.chars() {
                // One token: a space or a quote would split it.
                out.push(if c.is_ascii_graphic() && c != '"' {
                    c
                } else {
                    '_'
                });
            }
        }
    }
    if out.len() == start {
        out.push('-');
    }
}

/// A text line: nginx's combined format up to the body size, then the route and the rest as
/// `key=value`:
/// `CLIENT - - [TIME] "METHOD PATH HTTP/1.1" STATUS BYTES_OUT route=… listener=… in=…
/// ms=… upstream_ms=… request_id=… trace_id=…`.
pub(crate) fn text_line(r: &Record, out: &mut String) {
    match r.client {
        Some(ip) => {
            let _ = write!(out, "{ip}");
        }
        None => out.push_str("unix"),
    }
    let _ = write!(
        out,
        " - - [{}] \"",
        humantime::format_rfc3339_millis(r.time)
    );
    push_escaped(out, &r.method);
    out.push(' ');
    push_escaped(out, &r.path);
    let version = if r.http10 { "HTTP/1.0" } else { "HTTP/1.1" };
    let _ = write!(out, " {version}\" {} {} route=", r.status, r.bytes_out);
    route_token(&r.route, out);
    let _ = write!(
        out,
        " listener={} in={} ms={:.3} upstream_ms=",
        r.listener,
        r.bytes_in,
        ms(r.total)
    );
    match r.upstream {
        Some(d) => {
            let _ = write!(out, "{:.3}", ms(d));
        }
        None => out.push('-'),
    }
    out.push_str(" request_id=");
    push_escaped(out, r.request_id.as_str());
    out.push_str(" trace_id=");
    out.push_str(std::str::from_utf8(&r.trace_id).unwrap_or("-"));
}

/// A JSON line's object.
pub(crate) fn json_line(r: &Record) -> serde_json::Value {
    let mut v = json!({
        "time": humantime::format_rfc3339_millis(r.time).to_string(),
        "target": TARGET,
        "client": r.client.map_or_else(|| "unix".to_owned(), |ip| ip.to_string()),
        "listener": r.listener,
        "method": r.method,
        "path": r.path,
        "protocol": if r.http10 { "HTTP/1.0" } else { "HTTP/1.1" },
        "service": r.route.service,
        "kind": r.route.kind,
        "status": r.status,
        "bytes_in": r.bytes_in,
        "bytes_out": r.bytes_out,
        "duration_ms": ms(r.total),
        "upstream_ms": r.upstream.map(ms),
        "request_id": r.request_id.as_str(),
        "trace_id": std::str::from_utf8(&r.trace_id).unwrap_or("-"),
    });
    if !r.route.methods.is_empty() {
        v["methods"] = json!(r.route.methods);
    }
    if let Some(tool) = &r.route.tool {
        v["tool"] = json!(tool);
    }
    v
}
