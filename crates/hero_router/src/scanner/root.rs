//! The socket root: noticing it replaced, deleted or unreadable, and recovering (docs/sockets-and-reaping.md#the-root).

use std::path::Path;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Scanner, display, summarize};
use crate::registry::events::Event;
use crate::registry::events::unix_ms;
use crate::registry::table::LastScan;
use crate::registry::{ScanError, ScanSummary};

// === impl Scanner ===

impl Scanner {
    /// Checks that the root is still the directory the scanner watches; if it was deleted or
    /// replaced, creates it again if needed, re-arms the watch (the old one died with the old
    /// directory) and emits [`Event::RootReplaced`]. The watch alone cannot be trusted to report
    /// a deletion: the kernel reports a directory deleted only once nothing holds a file under
    /// it open, and the router holds its owner locks there. So this runs before every full
    /// scan, and on watch events that removed or renamed something at the top of the root.
    /// A watch that could not be made (at start-up, or since) is tried again here.
    pub(super) async fn look_after_root(
        &mut self,
        known: &mut Option<(u64, u64)>,
        watcher: &mut Option<notify::RecommendedWatcher>,
        watch_tx: &mpsc::UnboundedSender<notify::Event>,
    ) {
        let Some(recreated) = self.recover_root(known) else {
            if self.cfg.watch && watcher.is_none() {
                // The watch failed before (no inotify instance was free, say): try again,
                // quietly, so that a shortage at boot does not cost the router's whole life.
                if let Ok(w) = self.try_watcher(watch_tx.clone()) {
                    *watcher = Some(w);
                    self.records.forget_watches();
                    tracing::info!(root = %self.cfg.root.display(), "directory watch available again");
                }
            }
            return;
        };
        if self.cfg.watch {
            *watcher = self.start_watcher(watch_tx.clone());
            self.records.forget_watches();
        }
        self.emit(Event::RootReplaced {
            root: display(&self.cfg.root),
            recreated,
        });
    }

    /// Compares the root with the one the scanner knows (`known`): `Some(recreated)` if it was
    /// missing (then created again, 0755) or replaced by another directory. An unreadable root
    /// that is still the same directory is not a replacement (the scans report it).
    ///
    /// A root that cannot be created again is logged once (and again only if the reason
    /// changes), not at every scan: it is tried again before each one.
    pub(super) fn recover_root(&mut self, known: &mut Option<(u64, u64)>) -> Option<bool> {
        let root = &self.cfg.root;
        let (now, recreated) = match root_identity(root) {
            Ok(id) => (id, false),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Err(e) = hero_socket::root::create_root(root) {
                    let error = e.to_string();
                    if self.root_lost.as_deref() != Some(error.as_str()) {
                        tracing::error!(root = %root.display(), error = error.as_str(), "the socket root is gone and cannot be created again; trying again before every scan");
                        self.root_lost = Some(error);
                    }
                    return None;
                }
                if self.root_lost.take().is_some() {
                    tracing::info!(root = %root.display(), "the socket root could be created again");
                }
                (root_identity(root).ok()?, true)
            }
            Err(_) => return None,
        };
        let replaced = known.is_some_and(|k| k != now);
        *known = Some(now);
        (replaced || recreated).then_some(recreated)
    }

    /// The answer of a full scan that could not read the root: the table stays as it was,
    /// and says why.
    pub(super) fn unchanged(&mut self, error: String, started: Instant) -> ScanSummary {
        let duration_ms = started.elapsed().as_millis() as u64;
        if self.last_scan.as_ref().and_then(|s| s.error.as_deref()) != Some(error.as_str()) {
            tracing::warn!(root = %self.cfg.root.display(), error = error.as_str(), "cannot read the socket root; keeping the table as it was");
        }
        self.last_scan = Some(LastScan {
            at_unix_ms: unix_ms(),
            duration_ms,
            ok: false,
            error: Some(error),
        });
        let table = self.publish(true, false);
        ScanSummary {
            duration_ms,
            ..summarize(&table)
        }
    }

    /// The answer to a scan that was asked for: its summary, or why the root could not be
    /// scanned.
    pub(super) fn answer(&self, summary: ScanSummary) -> Result<ScanSummary, ScanError> {
        match self.last_scan.as_ref().and_then(|s| s.error.clone()) {
            None => Ok(summary),
            Some(error) => Err(ScanError::Root {
                root: self.cfg.root.display().to_string(),
                error,
            }),
        }
    }

    /// Logs once when the root can be read again after failing.
    pub(super) fn root_readable(&self) {
        if let Some(e) = self.last_scan.as_ref().and_then(|s| s.error.as_deref()) {
            tracing::info!(root = %self.cfg.root.display(), was = e, "the socket root can be read again");
        }
    }
}

/// The root's (dev, ino), following a symlink (the root may be one).
pub(super) fn root_identity(root: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(root)?;
    Ok((md.dev(), md.ino()))
}
