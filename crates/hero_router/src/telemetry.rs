//! Logging: `tracing` to stderr, text or JSON, filtered by `--log-level` or `$RUST_LOG`.
//!
//! Logging can never take the daemon down. The writer ([`Stderr`]) never reports an error to
//! tracing-subscriber, whose fallback for a failed write is an `eprintln!` that panics when
//! stderr is gone, killing whichever task was logging. A line that cannot be written (the
//! reader of a log pipe died: EPIPE; a closed descriptor: EBADF; a full non-blocking pipe) is
//! dropped and counted instead; `/metrics` shows the count as
//! `hero_router_log_lines_dropped_total`. Colour codes are only written to a terminal.

use std::io::{self, IsTerminal as _};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Log output format (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Log lines dropped because stderr could not take them. Process-wide, like stderr itself.
static DROPPED: AtomicU64 = AtomicU64::new(0);
/// `--log-format json` is in force (writers of their own lines, the access log's, follow it).
static JSON: AtomicBool = AtomicBool::new(false);

/// A [`MakeWriter`] for stderr whose writers never fail: see the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Stderr;

/// Writes each `write` call whole to `inner`, or drops it and counts it in `dropped`; never
/// returns an error. tracing-subscriber writes one formatted event with one `write_all`, so
/// one `write` here is one log line.
#[derive(Debug)]
pub(crate) struct LineWriter<'a, W> {
    inner: W,
    dropped: &'a AtomicU64,
}

/// Installs the global subscriber. `default` applies when neither `--log-level` nor `RUST_LOG`
/// is set.
pub(crate) fn init(format: LogFormat, level: Option<&str>, default: &str) -> Result<(), InitError> {
    let mut bad_env = None;
    let filter = match level {
        Some(l) => EnvFilter::try_new(quiet_rmcp(l))
            .map_err(|e| InitError::Filter(format!("{l:?}: {e}")))?,
        // An empty variable counts as unset (as every empty variable does); one that does
        // not parse is said once the logger runs, and the default applies.
        None => match std::env::var(EnvFilter::DEFAULT_ENV) {
            Ok(env) if !env.trim().is_empty() => match EnvFilter::try_new(quiet_rmcp(&env)) {
                Ok(filter) => filter,
                Err(e) => {
                    bad_env = Some(format!("{env:?}: {e}"));
                    EnvFilter::new(quiet_rmcp(default))
                }
            },
            _ => EnvFilter::new(quiet_rmcp(default)),
        },
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Stderr)
        // Escape codes are noise in a file or a log collector's pipe, and unwanted where
        // NO_COLOR (https://no-color.org) is set to anything.
        .with_ansi(colour(
            io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR"),
        ))
        // Its fallback for a failed write is an `eprintln!`, which panics when stderr is gone.
        // Our writer never fails, so this only guards against that path coming back.
        .log_internal_errors(false);
    JSON.store(format == LogFormat::Json, Ordering::Relaxed);
    match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    }
    .map_err(|e| InitError::Install(e.to_string()))?;
    if let Some(bad) = bad_env {
        tracing::warn!("RUST_LOG does not parse ({bad}); logging at the default level instead");
    }
    Ok(())
}

/// Whether log lines carry colour: only on a terminal, and not when `NO_COLOR` is set to
/// anything but the empty string.
fn colour(terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

/// `filter` with rmcp's own lines held to warnings (its request loop's silenced), unless it
/// names rmcp or asks for everything at `debug` or `trace`: rmcp logs several lines at `info`
/// for every MCP request it serves, a warning for every error answer (an unknown tool, bad
/// arguments: a client's mistake, told to the client), and its request loop an `ERROR` for
/// every stream a client closes (`failed to send pending response during drain`: a listener
/// going away, the normal end of one), which would drown the router's own in a busy gateway.
/// What a call came to, the router logs itself.
pub(crate) fn quiet_rmcp(filter: &str) -> String {
    const QUIET_RMCP: &str = "rmcp=warn,rmcp::service=off";
    let everything = matches!(
        filter.trim().to_ascii_lowercase().as_str(),
        "debug" | "trace"
    );
    if everything || filter.contains("rmcp") {
        filter.to_owned()
    } else if filter.trim().is_empty() {
        QUIET_RMCP.to_owned()
    } else {
        format!("{filter},{QUIET_RMCP}")
    }
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InitError {
    /// `--log-level` is not a filter: a usage error.
    #[error("invalid --log-level {0}")]
    Filter(String),
    /// The subscriber could not be installed.
    #[error("cannot install the logger: {0}")]
    Install(String),
}

/// True if the installed logger writes JSON lines.
pub(crate) fn json_lines() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// Log lines dropped so far because stderr could not take them.
pub(crate) fn dropped_lines() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

// === impl Stderr ===

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = LineWriter<'static, io::StderrLock<'static>>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter::new(io::stderr().lock(), &DROPPED)
    }
}

// === impl LineWriter ===

impl<'a, W: io::Write> LineWriter<'a, W> {
    /// A writer onto `inner` that counts what it drops in `dropped`.
    pub(crate) fn new(inner: W, dropped: &'a AtomicU64) -> Self {
        LineWriter { inner, dropped }
    }
}

impl<W: io::Write> io::Write for LineWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // `write_all` retries EINTR and short writes; anything else loses the line. Claiming
        // it was written keeps tracing-subscriber off its panicking fallback.
        if self.inner.write_all(buf).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let _ = self.inner.flush();
        Ok(())
    }
}

#[cfg(test)]
mod tests;

/// Allows one event per second; counts the ones it suppressed in between.
#[derive(Debug)]
pub(crate) struct RateLimit {
    state: std::sync::Mutex<(Option<tokio::time::Instant>, u64)>,
}

impl RateLimit {
    /// A limiter that allows the first event.
    pub(crate) const fn new() -> RateLimit {
        RateLimit {
            state: std::sync::Mutex::new((None, 0)),
        }
    }

    /// `Some(suppressed)` if this event may be logged, with how many were suppressed before it.
    pub(crate) fn should_log(&self) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.0
            .is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(1))
        {
            let suppressed = s.1;
            *s = (Some(tokio::time::Instant::now()), 0);
            Some(suppressed)
        } else {
            s.1 += 1;
            None
        }
    }
}

impl RateLimit {
    /// The events suppressed since the last one logged, once a second has passed since it
    /// (and resets the count): what a burst that ended left unsaid.
    pub(crate) fn take_suppressed(&self) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let due =
            s.0.is_some_and(|t| t.elapsed() >= std::time::Duration::from_secs(1));
        if due && s.1 > 0 {
            let suppressed = std::mem::take(&mut s.1);
            Some(suppressed)
        } else {
            None
        }
    }
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit::new()
    }
}
