//! The directory watch (inotify through `notify`): which service directories an event touches,
//! and keeping one watch per service directory.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use notify::{EventKindMask, Watcher};
use tokio::sync::mpsc;

use super::Scanner;
use crate::registry::names::valid_service_name;

/// A service directory could not be watched at the last sync (logged once per stretch).
static DIR_WATCH_FAILING: AtomicBool = AtomicBool::new(false);

// === impl Scanner ===

impl Scanner {
    /// A watch of the root, or `None` (said in a warning) if the kernel will not give one.
    pub(super) fn start_watcher(
        &self,
        tx: mpsc::UnboundedSender<notify::Event>,
    ) -> Option<notify::RecommendedWatcher> {
        self.try_watcher(tx)
            .map_err(|why| tracing::warn!(error = %why, "directory watch unavailable; relying on periodic scans"))
            .ok()
    }

    /// A watch of the root, or why there is none.
    pub(super) fn try_watcher(
        &self,
        tx: mpsc::UnboundedSender<notify::Event>,
    ) -> Result<notify::RecommendedWatcher, String> {
        let handler = move |res: notify::Result<notify::Event>| {
            if let Ok(ev) = res {
                let _ = tx.send(ev);
            }
        };
        // Entries appearing, vanishing and renamed are all the scanner needs. The kernel filters
        // the rest: notify's default also asks for every open, and each scan opens every
        // service directory, so a root of 10,000 services sent 10,000 events per scan to
        // a watch that ignores them (docs/sockets-and-reaping.md#scans).
        let kinds = EventKindMask::CREATE | EventKindMask::REMOVE | EventKindMask::MODIFY_NAME;
        let config = notify::Config::default().with_event_kinds(kinds);
        let mut w = notify::RecommendedWatcher::new(handler, config).map_err(|e| e.to_string())?;
        w.watch(&self.cfg.root, notify::RecursiveMode::NonRecursive)
            .map_err(|e| format!("cannot watch the socket root: {e}"))?;
        Ok(w)
    }

    /// Watches every service directory in the records that is not watched yet, unwatches
    /// those of dropped services; returns the newly watched ones.
    pub(super) fn sync_watches(&mut self, w: &mut notify::RecommendedWatcher) -> BTreeSet<String> {
        let root = &self.cfg.root;
        for name in self.records.take_unwatched() {
            let _ = w.unwatch(&root.join(name));
        }
        let mut failed: Option<(String, &'static str)> = None;
        let watched = self.records.watch_new(|name| {
            match w.watch(&root.join(name), notify::RecursiveMode::NonRecursive) {
                Ok(()) => true,
                // Gone (or no directory) since it was listed: nothing to watch, and the next
                // scan drops it; not a failure to report.
                Err(e) if watch_target_gone(&e) => false,
                Err(e) => {
                    failed.get_or_insert_with(|| (format!("{name}: {e}"), why_unwatched(&e)));
                    false
                }
            }
        });
        // Said once per stretch of failures: the directories are tried again at every sync.
        match failed {
            Some((first, why)) if !DIR_WATCH_FAILING.swap(true, Ordering::Relaxed) => {
                tracing::warn!(error = %first, "cannot watch a service directory ({why}); its new sockets wait for the periodic scan");
            }
            None if DIR_WATCH_FAILING.swap(false, Ordering::Relaxed) => {
                tracing::info!("every service directory is watched again");
            }
            _ => {}
        }
        watched
    }

    /// Maps a watch event to the service directories it touched; returns true if it touched
    /// the root itself (deleted, moved). Only entries appearing, vanishing or being renamed
    /// matter: opens and reads (our own scans cause those) would feed back into endless rescans.
    pub(super) fn services_of(&self, ev: notify::Event, out: &mut BTreeSet<String>) -> bool {
        use notify::EventKind;
        use notify::event::ModifyKind;
        self.out.stats.watch_events.fetch_add(1, Ordering::Relaxed);
        let relevant = matches!(
            ev.kind,
            EventKind::Create(_)
                | EventKind::Remove(_)
                | EventKind::Modify(ModifyKind::Name(_) | ModifyKind::Any)
                | EventKind::Any
                | EventKind::Other
        );
        if !relevant {
            return false;
        }
        // The root itself moved or went, or something at its top did (a deleted root loses
        // its children first): worth one look at the root.
        let root_touched = matches!(
            ev.kind,
            EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_)) | EventKind::Any
        ) && ev
            .paths
            .iter()
            .any(|p| p == &self.cfg.root || p.parent() == Some(self.cfg.root.as_path()));
        for path in ev.paths {
            let name = if path.parent() == Some(self.cfg.root.as_path()) {
                path.file_name()
            } else if path.parent().and_then(Path::parent) == Some(self.cfg.root.as_path()) {
                path.parent().and_then(Path::file_name)
            } else {
                None
            };
            if let Some(name) = name
                .and_then(|n| n.to_str())
                .filter(|n| valid_service_name(n))
            {
                out.insert(name.to_owned());
            }
        }
        root_touched
    }
}

/// The watch failed because its directory is gone or is no directory any more.
fn watch_target_gone(e: &notify::Error) -> bool {
    match &e.kind {
        notify::ErrorKind::PathNotFound => true,
        notify::ErrorKind::Io(io) => matches!(
            io.kind(),
            std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
        ),
        _ => false,
    }
}

/// Why a service directory could not be watched, as an operator fixes it.
fn why_unwatched(e: &notify::Error) -> &'static str {
    match &e.kind {
        notify::ErrorKind::MaxFilesWatch => "inotify limits: raise fs.inotify.max_user_watches",
        notify::ErrorKind::Io(io) if io.raw_os_error() == Some(28) => {
            "inotify limits: raise fs.inotify.max_user_watches"
        }
        notify::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::PermissionDenied => {
            "permission denied"
        }
        _ => "the watch failed",
    }
}

#[cfg(test)]
mod tests;
