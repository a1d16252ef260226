//! `hero_router scan`: one scan of the root without a daemon.
//!
//! Read-only by default. With `--reap`, a daemon's streak across periodic scans is simulated
//! inside the one run: the root is probed `--stale-after` times, [`REAP_ROUND_PAUSE`] apart,
//! each round counting as a periodic scan; only the last round may reap, and every other rule
//! (grace, identity, owner lock, re-probe, hero_proc) still applies. A socket younger than
//! `--reap-grace` is therefore never removed by a one-shot scan either.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::cli::{ScanArgs, terminal_safe};
use crate::config::scanner_config;
use crate::registry::names::Ignored;
use crate::registry::table::Service;
use crate::scanner::Scanner;
use crate::scanner::state::ProbeCause;

/// Pause between the probe rounds of `scan --reap`.
pub(crate) const REAP_ROUND_PAUSE: Duration = Duration::from_millis(200);

/// What `scan --json` prints (docs/cli.md#scan).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ScanReport {
    /// The socket root.
    pub root: String,
    /// Every service with its sockets.
    pub services: Vec<std::sync::Arc<Service>>,
    /// Top-level entries that are not services.
    pub ignored: Vec<Ignored>,
    /// Paths removed (only with `--reap`).
    pub reaped: Vec<String>,
    /// Whether the scan could remove stale sockets (`--reap`).
    #[serde(skip)]
    pub reaping: bool,
}

/// Runs the scan.
pub(crate) async fn run(root: PathBuf, args: &ScanArgs) -> anyhow::Result<ScanReport> {
    // docs/sockets-and-reaping.md#socket-root: the root is created (0755) if missing, by every
    // command that uses it.
    hero_socket::root::create_root(&root)?;
    // A root that cannot be listed is this command's one error line, before the scanner
    // (which would warn as a daemon does, "keeping the table as it was") looks at it.
    if let Err(e) = std::fs::read_dir(&root) {
        anyhow::bail!("cannot read the socket root {}: {e}", root.display());
    }
    let cfg = scanner_config(root.clone(), &args.probe, Duration::ZERO, args.reap, false);
    let (mut scanner, _handle) = Scanner::new(cfg);
    let mut reaped = Vec::new();
    if args.reap {
        for round in 0..args.probe.stale_after {
            if round > 0 {
                tokio::time::sleep(REAP_ROUND_PAUSE).await;
            }
            reaped.extend(scanner.scan_full(ProbeCause::Periodic).await.reaped);
        }
    } else {
        scanner.scan_full(ProbeCause::Manual).await;
    }
    let table = scanner.table();
    if let Some(e) = table.root_error() {
        anyhow::bail!("cannot read the socket root {}: {e}", root.display());
    }
    Ok(ScanReport {
        root: root.display().to_string(),
        services: table.services.clone(),
        ignored: table.ignored.clone(),
        reaped,
        reaping: args.reap,
    })
}

/// Renders the report as a table a person can read.
pub(crate) fn render_text(r: &ScanReport) -> String {
    let mut rows = vec![[
        "SERVICE".to_owned(),
        "STATUS".to_owned(),
        "SOCKET".to_owned(),
        "STATE".to_owned(),
        "WHY".to_owned(),
    ]];
    for s in &r.services {
        let status = serde_json::to_value(s.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        if s.sockets.is_empty() {
            // A directory that cannot be listed has no sockets we know of, and says why.
            let why = s.error.as_deref().unwrap_or("no *.sock files").to_owned();
            rows.push([s.name.clone(), status.clone(), "-".into(), "-".into(), why]);
        }
        for sock in &s.sockets {
            let why = match sock.reap_skipped {
                // A read-only scan keeps everything; saying so on every row is noise.
                Some(reason) if r.reaping => format!("{}; kept: {}", sock.detail, reason.explain()),
                _ => sock.detail.to_string(),
            };
            rows.push([
                s.name.clone(),
                status.clone(),
                sock.kind.clone(),
                sock.state.to_string(),
                why,
            ]);
        }
    }
    // Names and details come from the file system: one cell each, nothing that drives the
    // terminal.
    for cell in rows.iter_mut().flatten() {
        if let std::borrow::Cow::Owned(safe) = terminal_safe(cell) {
            *cell = safe;
        }
    }
    let widths: Vec<usize> = (0..5)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = format!("root: {}\n", terminal_safe(&r.root));
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    if r.services.is_empty() {
        out.push_str("(no services)\n");
    }
    if !r.ignored.is_empty() {
        out.push_str("\nignored:\n");
        for i in &r.ignored {
            let _ = writeln!(out, "  {}  ({})", terminal_safe(&i.path), i.reason);
        }
    }
    if !r.reaped.is_empty() {
        out.push_str("\nreaped:\n");
        for p in &r.reaped {
            let _ = writeln!(out, "  {}", terminal_safe(p));
        }
    }
    out
}

#[cfg(test)]
mod tests;
