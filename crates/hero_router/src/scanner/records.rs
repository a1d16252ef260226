//! What the scanner knows between scans, and the services it publishes from it.
//!
//! A scan updates records in place: a socket whose probe says what it said last time costs no
//! allocation, and a service none of whose sockets changed is published as the same
//! `Arc<Service>` as before. So a full scan of a steady root allocates next to nothing and the
//! memory held is the same from one scan to the next.
//!
//! A service's sockets are a [`Sockets`] list sorted by kind, exactly as long as it needs to
//! be: most services have one to a few sockets, and a `BTreeMap` would give each of them a
//! whole node for eleven (2.2 KB per one-socket service, measured with heaptrack).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::state::{self, Observation, ProbeCause, SocketRecord};
use crate::registry::state::SocketState;
use crate::registry::table::{Service, ServiceStatus, Socket};

/// One socket: where it is, what the state machine knows, and the pass that last saw it.
#[derive(Debug)]
pub(super) struct SockEntry {
    /// Shared with the table's [`Socket::path`].
    pub(super) path: Arc<Path>,
    pub(super) rec: SocketRecord,
    seen: u64,
}

/// A service's sockets by kind: a list sorted by kind, allocated to its exact length.
#[derive(Debug, Default)]
pub(super) struct Sockets {
    entries: Vec<(String, SockEntry)>,
}

/// One service's sockets (by kind), its listing error, and its last published form.
#[derive(Debug, Default)]
pub(super) struct ServiceRecords {
    pub(super) sockets: Sockets,
    /// Why the directory could not be listed at the last look.
    error: Option<String>,
    /// The service as last published; dropped whenever something in it changes.
    published: Option<Arc<Service>>,
    /// Since when a scan has found its directory without a socket.
    empty_since: Option<Instant>,
    /// Left out of the table: its directory has had no socket for the grace. Kept here so
    /// the directory stays watched and the service comes back with its first socket.
    hidden: bool,
    /// Its directory is watched ([`Records::watch_new`]).
    watched: bool,
}

/// A state change to report: `from` and `to` as the contract names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Change {
    pub(super) service: String,
    pub(super) socket: String,
    pub(super) from: &'static str,
    pub(super) to: &'static str,
}

/// Every service the scanner knows.
#[derive(Debug, Default)]
pub(super) struct Records {
    services: BTreeMap<String, ServiceRecords>,
    /// Counts observation passes, so sockets a pass did not see can be swept.
    pass: u64,
    /// Services dropped while their directory was watched: unwatched at the next
    /// [`Records::watch_new`].
    unwatch: Vec<String>,
}

// === impl Sockets ===

impl Sockets {
    fn find(&self, kind: &str) -> Result<usize, usize> {
        self.entries.binary_search_by(|(k, _)| k.as_str().cmp(kind))
    }

    /// The entry of `kind`.
    pub(super) fn get(&self, kind: &str) -> Option<&SockEntry> {
        self.find(kind).ok().map(|i| &self.entries[i].1)
    }

    /// The entry of `kind`, to change.
    pub(super) fn get_mut(&mut self, kind: &str) -> Option<&mut SockEntry> {
        self.find(kind).ok().map(|i| &mut self.entries[i].1)
    }

    /// Adds (or replaces) the entry of `kind`, growing the list by exactly one: a service's
    /// sockets are added once and then kept, so the list never holds spare room.
    pub(super) fn insert(&mut self, kind: &str, entry: SockEntry) {
        match self.find(kind) {
            Ok(i) => self.entries[i].1 = entry,
            Err(i) => {
                self.entries.reserve_exact(1);
                self.entries.insert(i, (kind.to_owned(), entry));
            }
        }
    }

    /// Removes the entry of `kind`.
    pub(super) fn remove(&mut self, kind: &str) -> Option<SockEntry> {
        let i = self.find(kind).ok()?;
        let (_, entry) = self.entries.remove(i);
        self.release();
        Some(entry)
    }

    /// Keeps the entries `keep` says yes to.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&SockEntry) -> bool) {
        self.entries.retain(|(_, e)| keep(e));
        self.release();
    }

    /// Gives the room of removed entries back, once a quarter or more of it is spare.
    fn release(&mut self) {
        if self.entries.len() <= self.entries.capacity() * 3 / 4 {
            self.entries.shrink_to_fit();
        }
    }

    /// True if there is none.
    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// (kind, entry) in kind order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&String, &SockEntry)> {
        self.entries.iter().map(|(k, e)| (k, e))
    }

    /// The entries in kind order.
    pub(super) fn values(&self) -> impl Iterator<Item = &SockEntry> {
        self.entries.iter().map(|(_, e)| e)
    }
}

// === impl Records ===

impl Records {
    /// Starts a pass of observations.
    pub(super) fn begin(&mut self) {
        self.pass += 1;
    }

    /// The service's records, created if new.
    pub(super) fn service_mut(&mut self, name: &str) -> &mut ServiceRecords {
        if !self.services.contains_key(name) {
            self.services
                .insert(name.to_owned(), ServiceRecords::default());
        }
        self.services.get_mut(name).expect("just inserted")
    }

    /// Every service with its records.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&String, &ServiceRecords)> {
        self.services.iter()
    }

    /// Service names.
    pub(super) fn names(&self) -> impl Iterator<Item = &String> {
        self.services.keys()
    }

    /// The services dropped while their directory was watched (and not known again since):
    /// their watches are to go.
    pub(super) fn take_unwatched(&mut self) -> Vec<String> {
        let mut gone = std::mem::take(&mut self.unwatch);
        gone.retain(|name| !self.services.contains_key(name));
        gone
    }

    /// Watches the directory of every service not watched yet (`watch` says whether that
    /// worked); the newly watched ones.
    ///
    /// Whether a directory is watched is a flag in its service's record, not a set of names
    /// beside the records: at 10,000 services that set was another copy of every name (0.5 MB)
    /// and two lookups per service after every scan.
    pub(super) fn watch_new(&mut self, mut watch: impl FnMut(&str) -> bool) -> BTreeSet<String> {
        let mut added = BTreeSet::new();
        for (name, svc) in &mut self.services {
            if !svc.watched && watch(name) {
                svc.watched = true;
                added.insert(name.clone());
            }
        }
        added
    }

    /// Forgets every watch (the watcher was replaced): the next [`Records::watch_new`]
    /// watches every directory again.
    pub(super) fn forget_watches(&mut self) {
        self.unwatch.clear();
        for svc in self.services.values_mut() {
            svc.watched = false;
        }
    }

    /// Folds one probe of `service`'s `kind` socket at `path` into the records; the state
    /// change, if there was one.
    pub(super) fn observe(
        &mut self,
        service: &str,
        kind: &str,
        path: &Path,
        obs: &Observation,
        cause: ProbeCause,
        now_unix_ms: u64,
    ) -> Option<Change> {
        let pass = self.pass;
        let svc = self.service_mut(service);
        let prev = svc.sockets.get(kind);
        let from = prev.map_or("absent", |e| e.rec.state.as_str());
        let change = |to| Change {
            service: service.to_owned(),
            socket: path.display().to_string(),
            from,
            to,
        };
        let Some(rec) = state::advance(prev.map(|e| &e.rec), obs, cause, now_unix_ms) else {
            return svc.sockets.remove(kind).map(|_| {
                svc.published = None;
                change("gone")
            });
        };
        let to = rec.state.as_str();
        match svc.sockets.get_mut(kind) {
            Some(e) => {
                e.seen = pass;
                if e.rec != rec || *e.path != *path {
                    e.rec = rec;
                    if *e.path != *path {
                        e.path = Arc::from(path);
                    }
                    svc.published = None;
                }
            }
            None => {
                svc.sockets.insert(
                    kind,
                    SockEntry {
                        path: Arc::from(path),
                        rec,
                        seen: pass,
                    },
                );
                svc.published = None;
            }
        }
        (from != to).then(|| change(to))
    }

    /// Removes the sockets of `service` that this pass did not see; their changes to `gone`.
    pub(super) fn sweep(&mut self, service: &str) -> Vec<Change> {
        let pass = self.pass;
        let Some(svc) = self.services.get_mut(service) else {
            return Vec::new();
        };
        let mut gone = Vec::new();
        svc.sockets.retain(|e| {
            let keep = e.seen == pass;
            if !keep {
                gone.push(Change {
                    service: service.to_owned(),
                    socket: e.path.display().to_string(),
                    from: e.rec.state.as_str(),
                    to: "gone",
                });
            }
            keep
        });
        if !gone.is_empty() {
            svc.published = None;
        }
        gone
    }

    /// Forgets a service; the changes of its sockets to `gone`.
    pub(super) fn drop_service(&mut self, name: &str) -> Vec<Change> {
        let Some(svc) = self.services.remove(name) else {
            return Vec::new();
        };
        if svc.watched {
            self.unwatch.push(name.to_owned());
        }
        svc.sockets
            .entries
            .into_iter()
            .map(|(_, e)| Change {
                service: name.to_owned(),
                socket: e.path.display().to_string(),
                from: e.rec.state.as_str(),
                to: "gone",
            })
            .collect()
    }

    /// Notes whether `name`'s directory has sockets. A service whose directory has had none
    /// (and no listing error) for `grace` leaves the table: true when that happens now. Its
    /// first socket brings it back.
    pub(super) fn settle(&mut self, name: &str, now: Instant, grace: Duration) -> bool {
        let Some(svc) = self.services.get_mut(name) else {
            return false;
        };
        if !svc.sockets.is_empty() || svc.error.is_some() {
            svc.empty_since = None;
            if svc.hidden {
                svc.hidden = false;
                svc.published = None;
            }
            return false;
        }
        let since = *svc.empty_since.get_or_insert(now);
        if svc.hidden || now.duration_since(since) < grace {
            return false;
        }
        svc.hidden = true;
        true
    }

    /// Removes one socket (it was reaped).
    pub(super) fn remove_socket(&mut self, service: &str, kind: &str) {
        if let Some(svc) = self.services.get_mut(service) {
            if svc.sockets.remove(kind).is_some() {
                svc.published = None;
            }
        }
    }

    /// A socket's record, to note what is not published (the last skipped-reap reason).
    pub(super) fn socket_mut(&mut self, service: &str, kind: &str) -> Option<&mut SockEntry> {
        self.services.get_mut(service)?.sockets.get_mut(kind)
    }

    /// Sets or clears a service's listing error; true if it changed.
    pub(super) fn set_error(&mut self, name: &str, error: Option<String>) -> bool {
        let svc = self.service_mut(name);
        if svc.error == error {
            return false;
        }
        svc.error = error;
        svc.published = None;
        true
    }

    /// Why `name`'s directory could not be listed at the last look.
    pub(super) fn error(&self, name: &str) -> Option<&String> {
        self.services.get(name)?.error.as_ref()
    }

    /// The record of `service`'s `kind` socket.
    pub(super) fn socket(&self, service: &str, kind: &str) -> Option<&SocketRecord> {
        Some(&self.services.get(service)?.sockets.get(kind)?.rec)
    }

    /// The kinds of the sockets known for `service`, to probe by path.
    pub(super) fn known(&self, service: &str) -> Vec<String> {
        self.services.get(service).map_or_else(Vec::new, |svc| {
            svc.sockets.iter().map(|(k, _)| k.clone()).collect()
        })
    }

    /// True if a socket of `service` refuses and its file is younger than `window_ns`.
    pub(super) fn has_young_refused(&self, service: &str, now_ns: i128, window_ns: i128) -> bool {
        self.services.get(service).is_some_and(|svc| {
            svc.sockets.values().any(|e| {
                e.rec.state == SocketState::Refused
                    && e.rec
                        .identity
                        .is_some_and(|id| now_ns - i128::from(id.ctime_ns) < window_ns)
            })
        })
    }

    /// Every service as the table shows it, rebuilding only those that changed.
    pub(super) fn publish(&mut self) -> Vec<Arc<Service>> {
        self.services
            .iter_mut()
            .filter(|(_, svc)| !svc.hidden)
            .map(|(name, svc)| match &svc.published {
                Some(published) => published.clone(),
                None => {
                    let published = Arc::new(build(name, svc));
                    svc.published = Some(published.clone());
                    published
                }
            })
            .collect()
    }

    /// Heap bytes the records hold, by capacities (see `Scanner::footprint`).
    pub(super) fn footprint(&self) -> usize {
        use std::mem::size_of;
        self.services
            .iter()
            .map(|(name, svc)| {
                size_of::<(String, ServiceRecords)>()
                    + name.capacity()
                    + svc.error.as_ref().map_or(0, String::capacity)
                    + svc.sockets.entries.capacity() * size_of::<(String, SockEntry)>()
                    + svc
                        .sockets
                        .iter()
                        .map(|(kind, e)| {
                            // The path's one allocation (the table shares it).
                            kind.capacity()
                                + size_of::<[usize; 2]>()
                                + e.path.as_os_str().len()
                                + detail_heap(&e.rec.detail)
                        })
                        .sum::<usize>()
            })
            .sum()
    }
}

/// Heap bytes of a detail text (none when it is a static one).
#[allow(clippy::ptr_arg)] // whether it is borrowed is the point
pub(super) fn detail_heap(detail: &std::borrow::Cow<'static, str>) -> usize {
    match detail {
        std::borrow::Cow::Borrowed(_) => 0,
        std::borrow::Cow::Owned(s) => s.capacity(),
    }
}

fn build(name: &str, svc: &ServiceRecords) -> Service {
    let sockets: Vec<Socket> = svc
        .sockets
        .iter()
        .map(|(kind, e)| Socket {
            kind: kind.clone(),
            path: e.path.clone(),
            state: e.rec.state,
            since_unix_ms: e.rec.since_unix_ms,
            detail: e.rec.detail.clone(),
            refused_streak: e.rec.refused_streak,
            reap_skipped: e.rec.last_skip,
            identity: e.rec.identity,
        })
        .collect();
    Service {
        name: name.to_owned(),
        status: ServiceStatus::of(&sockets),
        sockets,
        error: svc
            .error
            .as_ref()
            .map(|e| format!("cannot list the directory: {e}")),
    }
}

#[cfg(test)]
mod tests;
