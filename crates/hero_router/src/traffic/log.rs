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
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, SystemTime};

use super::RequestId;

/// The tracing target of access lines.
pub(crate) const TARGET: &str = "hero_router::access";
/// Records waiting for the writer at most; more are dropped and counted. The queue is std's
/// linked channel, bounded by a count: an array channel of this size would take ~1.7 MB of
/// memory at start-up whether or not a request ever comes (its slots are written when it is
/// made), the linked one takes blocks as records arrive and frees them as they are written.
const QUEUE: usize = 4096;

/// Longest JSON-RPC method, MCP method or tool name a line keeps, in bytes. The request chose
/// them: a longer one is cut and ends in `…`, so a queued line never holds a body's worth.
pub(super) const MAX_NAME: usize = 128;
/// Most method names a line lists (a batch's first ones).
pub(crate) const MAX_METHODS: usize = 32;
/// Longest path a line keeps, in bytes (cut the same way).
pub(super) const MAX_PATH: usize = 2048;
/// The longest `error` kept, in bytes (it may quote what a service sent).
pub(super) const MAX_ERROR: usize = 512;

/// A name the request chose (a JSON-RPC or MCP method, a tool) as a line keeps it: at most
/// [`MAX_NAME`] bytes. Taken where the name is read, so a huge one is never copied whole.
pub(crate) fn label(s: &str) -> String {
    clipped(s, MAX_NAME)
}

/// At most `max` bytes of `s` (on a character boundary), `…` after a cut.
fn clipped(s: &str, max: usize) -> String {
    crate::json::cut_str(s, max)
}

/// Cuts `s` in place as [`clipped`] does (into a string of its own size: a huge one's
/// allocation is not kept).
fn clip(s: &mut String, max: usize) {
    if s.len() > max {
        *s = clipped(s, max);
    }
}

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

impl AccessLogFormat {
    /// Its name, as `--access-log` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            AccessLogFormat::Off => "off",
            AccessLogFormat::Text => "text",
            AccessLogFormat::Json => "json",
        }
    }
}

/// The access log's sending side, shared by every connection.
#[derive(Debug)]
pub(crate) struct AccessLog {
    tx: Option<Queue>,
    query: bool,
}

/// The sending side of the writer's queue, and how many records wait in it.
#[derive(Debug)]
struct Queue {
    tx: Sender<Record>,
    waiting: Arc<AtomicUsize>,
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
    /// Why the exchange did not end as a service's whole answer: the router's error answer,
    /// or what cut a proxied body short. `None` for a whole answer.
    pub error: Option<String>,
}

impl Record {
    /// Cuts what the request chose (path, method names, tool) to the line's limits.
    pub(super) fn bound(&mut self) {
        clip(&mut self.method, MAX_NAME);
        clip(&mut self.path, MAX_PATH);
        if let Some(error) = &mut self.error {
            clip(error, MAX_ERROR);
        }
        self.route.methods.truncate(MAX_METHODS);
        for m in &mut self.route.methods {
            clip(m, MAX_NAME);
        }
        if let Some(tool) = &mut self.route.tool {
            clip(tool, MAX_NAME);
        }
    }
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
        let (tx, rx) = channel();
        let waiting = Arc::new(AtomicUsize::new(0));
        let written = waiting.clone();
        let spawned = std::thread::Builder::new()
            .name("hero-access-log".into())
            .spawn(move || write_lines(rx, &written, format));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the access log's writer; access log off");
            return AccessLog::off();
        }
        AccessLog {
            tx: Some(Queue { tx, waiting }),
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

    /// Queues `record` without waiting; a full queue drops it and counts it. The names and the
    /// path a request chose are cut to [`MAX_NAME`] and [`MAX_PATH`] first: the queue holds at
    /// most [`QUEUE`] lines of a few KiB, whatever the requests were.
    pub(crate) fn send(&self, mut record: Record) {
        let Some(queue) = &self.tx else {
            return;
        };
        record.bound();
        // Counted before it is sent, so the writer never counts it out first.
        if queue.waiting.fetch_add(1, Ordering::Relaxed) >= QUEUE || queue.tx.send(record).is_err()
        {
            queue.waiting.fetch_sub(1, Ordering::Relaxed);
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Most bytes of lines the writer gathers into one write.
const BATCH: usize = 64 * 1024;
/// The writer's pause after a write. While it sleeps, lines gather in the queue and a
/// connection's send wakes nobody: without it, the writer would empty the queue, park, and
/// cost the next request a wake-up (a system call and a context switch) per line. A line is
/// written at most this late.
pub(crate) const GATHER: std::time::Duration = std::time::Duration::from_millis(10);

/// The writer thread: formats and writes records until every sender is gone. Lines queued
/// together go out in one write (under load, one system call for many lines); a write that
/// fails loses its lines, counted.
fn write_lines(rx: Receiver<Record>, waiting: &AtomicUsize, format: AccessLogFormat) {
    let mut batch = String::with_capacity(BATCH);
    while let Ok(first) = rx.recv() {
        batch.clear();
        // The target's filter, as for any tracing event (`hero_router::access=off`).
        let enabled = tracing::enabled!(target: TARGET, tracing::Level::INFO);
        let json_logs = crate::telemetry::json_lines();
        let mut lines = 0;
        let mut next = Some(first);
        while let Some(record) = next {
            waiting.fetch_sub(1, Ordering::Relaxed);
            if enabled {
                push_line(&record, format, json_logs, &mut batch);
                lines += 1;
            }
            next = if batch.len() < BATCH {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        if lines > 0
            && std::io::stderr()
                .lock()
                .write_all(batch.as_bytes())
                .is_err()
        {
            DROPPED.fetch_add(lines, Ordering::Relaxed);
        }
        // The writer's own thread, never a runtime's: this sleep holds up no task.
        std::thread::sleep(GATHER);
    }
}

/// One line for `record`, newline included: a JSON object (`--access-log json`), or the text
/// line after the prefix the rest of the log has (`--log-format text`) or inside the object
/// it has (`--log-format json`).
fn push_line(record: &Record, format: AccessLogFormat, json_logs: bool, out: &mut String) {
    match format {
        AccessLogFormat::Json => json_line(record, out),
        AccessLogFormat::Text if json_logs => {
            let mut line = String::with_capacity(256);
            text_line(record, &mut line);
            let _ = write!(
                out,
                "{{\"timestamp\":\"{}\",\"level\":\"INFO\",\"message\":",
                humantime::format_rfc3339_micros(record.time)
            );
            push_json_str(out, &line);
            let _ = write!(out, ",\"target\":\"{TARGET}\"}}");
        }
        AccessLogFormat::Text => {
            let _ = write!(
                out,
                "{}  INFO {TARGET}: ",
                humantime::format_rfc3339_micros(record.time)
            );
            text_line(record, out);
        }
        AccessLogFormat::Off => return,
    }
    out.push('\n');
}

/// `text` as a JSON string.
fn push_json_str(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A time in ms with three decimals, or the text that says there is none.
struct Ms(Option<Duration>, &'static str);

impl std::fmt::Display for Ms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(d) => write!(f, "{:.3}", ms(d)),
            None => f.write_str(self.1),
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
/// ms=… upstream_ms=… request_id=… trace_id=…`, and ` error="…"` if there was one.
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
        " listener={} in={} ms={:.3} upstream_ms={} request_id=",
        r.listener,
        r.bytes_in,
        ms(r.total),
        Ms(r.upstream, "-"),
    );
    push_escaped(out, r.request_id.as_str());
    out.push_str(" trace_id=");
    out.push_str(std::str::from_utf8(&r.trace_id).unwrap_or("-"));
    if let Some(error) = &r.error {
        out.push_str(" error=\"");
        push_escaped(out, error);
        out.push('"');
    }
}

/// A JSON line's object (no newline): one flat object, written without building a tree.
pub(crate) fn json_line(r: &Record, out: &mut String) {
    let _ = write!(
        out,
        "{{\"time\":\"{}\",\"target\":\"{TARGET}\",\"client\":",
        humantime::format_rfc3339_millis(r.time)
    );
    match r.client {
        Some(ip) => {
            let _ = write!(out, "\"{ip}\"");
        }
        None => out.push_str("\"unix\""),
    }
    let _ = write!(out, ",\"listener\":\"{}\",\"method\":", r.listener);
    push_json_str(out, &r.method);
    out.push_str(",\"path\":");
    push_json_str(out, &r.path);
    let version = if r.http10 { "HTTP/1.0" } else { "HTTP/1.1" };
    let _ = write!(out, ",\"protocol\":\"{version}\",\"service\":");
    let opt = |out: &mut String, v: &Option<String>| match v {
        Some(v) => push_json_str(out, v),
        None => out.push_str("null"),
    };
    opt(out, &r.route.service);
    out.push_str(",\"kind\":");
    opt(out, &r.route.kind);
    if !r.route.methods.is_empty() {
        out.push_str(",\"methods\":[");
        for (i, m) in r.route.methods.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_json_str(out, m);
        }
        out.push(']');
    }
    if let Some(tool) = &r.route.tool {
        out.push_str(",\"tool\":");
        push_json_str(out, tool);
    }
    let _ = write!(
        out,
        ",\"status\":{},\"bytes_in\":{},\"bytes_out\":{},\"duration_ms\":{:.3},\"upstream_ms\":{},\"request_id\":",
        r.status,
        r.bytes_in,
        r.bytes_out,
        ms(r.total),
        Ms(r.upstream, "null"),
    );
    push_json_str(out, r.request_id.as_str());
    let _ = write!(
        out,
        ",\"trace_id\":\"{}\"",
        std::str::from_utf8(&r.trace_id).unwrap_or("-")
    );
    if let Some(error) = &r.error {
        out.push_str(",\"error\":");
        push_json_str(out, error);
    }
    out.push('}');
}
