//! Reaping: which refused sockets may go, the guards before each unlink, and recovery of what
//! a crashed reaper left aside (docs/sockets-and-reaping.md).

use std::path::{Path, PathBuf};

use super::hero_proc::Running;
use super::reaper::ReapOutcome;
use super::{Scanner, display, hero_proc, reaper, state};
use crate::registry::events::Event;
use crate::registry::events::unix_ns;
use crate::registry::names::OWN_SERVICE;
use crate::registry::state::{SkipReason, SocketState};

// === impl Scanner ===

impl Scanner {
    /// Applies the reap rules to every refused socket; returns the paths removed.
    pub(super) async fn reap_candidates(&mut self) -> Vec<String> {
        let now_ns = unix_ns();
        let mut candidates = Vec::new();
        let mut skips = Vec::new();
        for (service, svc) in self.records.iter() {
            for (kind, entry) in svc.sockets.iter() {
                let (path, rec) = (&entry.path, &entry.rec);
                if rec.state != SocketState::Refused {
                    continue;
                }
                let verdict = if service == OWN_SERVICE {
                    Err(SkipReason::OwnSocket)
                } else {
                    state::reap_check(rec, &self.cfg.reap, now_ns)
                };
                match (verdict, rec.first_refusal) {
                    (Ok(()), Some(first)) => {
                        candidates.push((service.clone(), kind.clone(), path.clone(), first))
                    }
                    (Ok(()), None) => skips.push((
                        service.clone(),
                        kind.clone(),
                        SkipReason::IdentityChanged,
                        String::new(),
                    )),
                    (Err(reason), _) => {
                        skips.push((service.clone(), kind.clone(), reason, String::new()))
                    }
                }
            }
        }
        if !candidates.is_empty() {
            match hero_proc::running_services(
                &self.cfg.root,
                &self.cfg.hero_proc_method,
                self.cfg.hero_proc_timeout,
            )
            .await
            {
                Running::Known(running) => candidates.retain(|(service, kind, _, _)| {
                    let keep = !running.contains(service);
                    if !keep {
                        skips.push((
                            service.clone(),
                            kind.clone(),
                            SkipReason::HeroProcRunning,
                            String::new(),
                        ));
                    }
                    keep
                }),
                Running::Unknown(why) => {
                    tracing::debug!(reason = why.as_str(), "hero_proc guard skipped")
                }
            }
        }
        let hook = self.hook.clone();
        let jobs: Vec<_> = candidates
            .iter()
            .map(|(_, _, p, first)| (p.clone(), *first))
            .collect();
        let outcomes = tokio::task::spawn_blocking(move || {
            jobs.into_iter()
                .map(|(p, first)| reaper::reap(&p, first, hook.as_ref()))
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        let mut reaped = Vec::new();
        for ((service, kind, path, _), outcome) in candidates.into_iter().zip(outcomes) {
            let socket = display(&path);
            match outcome {
                ReapOutcome::Reaped | ReapOutcome::AlreadyGone => {
                    let reason = if outcome == ReapOutcome::Reaped {
                        "stale"
                    } else {
                        "already_gone"
                    };
                    self.records.remove_socket(&service, &kind);
                    self.emit(Event::Reaped {
                        service: service.clone(),
                        socket: socket.clone(),
                        reason,
                    });
                    self.emit(Event::SocketChanged {
                        service,
                        socket: socket.clone(),
                        from: "refused",
                        to: "gone",
                    });
                    reaped.push(socket);
                }
                ReapOutcome::Skipped(reason) => skips.push((service, kind, reason, String::new())),
                ReapOutcome::LockFailed(detail) => {
                    skips.push((service, kind, SkipReason::LockError, detail))
                }
                ReapOutcome::Failed(detail) => {
                    skips.push((service, kind, SkipReason::Error, detail))
                }
            }
        }
        for (service, kind, reason, detail) in skips {
            self.note_skip(&service, &kind, reason, detail);
        }
        reaped
    }

    /// Finishes removals a crashed reaper left half-done (see [`reaper::recover_staged`]).
    /// Returns the paths it removed, as a scan's `reaped` lists them.
    pub(super) async fn recover_staged(&mut self, dirs: Vec<PathBuf>) -> Vec<String> {
        let own = self.cfg.root.join(OWN_SERVICE);
        let dirs: Vec<PathBuf> = dirs.into_iter().filter(|d| *d != own).collect();
        let mut removed = Vec::new();
        if dirs.is_empty() {
            return removed;
        }
        let results = tokio::task::spawn_blocking(move || {
            dirs.iter()
                .flat_map(|d| reaper::recover_staged(d))
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        for r in results {
            match r {
                reaper::Recovered::Restored(p) => {
                    tracing::warn!(socket = %p.display(), reason = "crash_leftover", "restored a socket a crashed reaper had moved aside");
                }
                reaper::Recovered::Removed(p) => {
                    let service = p
                        .parent()
                        .and_then(Path::file_name)
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    removed.push(display(&p));
                    self.emit(Event::Reaped {
                        service,
                        socket: display(&p),
                        reason: "crash_leftover",
                    });
                }
                reaper::Recovered::Kept(p, why) => {
                    tracing::debug!(socket = %p.display(), reason = why, "staged reap file kept");
                }
            }
        }
        removed
    }
}
