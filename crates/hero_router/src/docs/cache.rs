//! The one owner of rendered docs (docs/docs-and-mcp.md#render-budget): pages
//! built off the connection shards, cached by the document's fingerprint, one render per
//! page however many ask for it at once.
//!
//! - **Off the shards.** A render runs on a small pool of its own threads (`hero-render-N`,
//!   half the cores, at least one, at nice 19) fed by a bounded queue, not on the
//!   connection thread that asked for it, and not through `spawn_blocking`: that pool grows
//!   to 512 threads, so sixteen hostile pages would be sixteen threads taking the CPU from
//!   the shards, and the shards' runtimes each have their own. A full queue is answered
//!   `503` at once rather than waited on.
//! - **Cached.** A page is kept under its [`Key`]: what is built, the document's
//!   fingerprint, and what the page shows that is not in the document (the service's name,
//!   title, version, description, why the document is invalid). A second request is a map
//!   lookup. At most [`MAX_ENTRIES`] pages and [`MAX_BYTES`] bytes are kept; the one used
//!   least recently goes first.
//! - **Single-flight.** The first request for a page queues its render and waits; requests
//!   for the same page meanwhile wait for that render. A render runs to the end even if
//!   everyone who asked has gone, and its page is kept for the next.
//! - **Budgeted.** Each render gets a [`Budget`]; over it, the render stops and its short
//!   "too large" page is what is cached.
//!
//! Users: `GET /docs/{service}` and `/docs/{service}.md` ([`super::pages`]), the dashboard's
//! detail view (its methods) and the generated clients (`GET /docs/{service}/client.py|.ts`).

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::watch;

use super::Page;
use super::budget::Budget;
use super::pages::Format;

/// Most pages kept.
pub(crate) const MAX_ENTRIES: usize = 256;
/// Most bytes of pages kept: a few dozen large pages, while a page may be 16 MiB.
pub(crate) const MAX_BYTES: usize = 64 << 20;
/// Most renders waiting for a thread; a request past this is answered `503`. Each distinct
/// page is one render, so this is reached only by many different documents at once.
const QUEUE: usize = 64;
/// The render threads' niceness, the lowest: when cores are short, the connection shards
/// come first, and a page waits. With 16 clients asking for `$ref`-bomb pages on 2 cores, a
/// routed call's p99 went from about 0.6 ms idle to 2.8–5.2 ms at nice 10, and stayed
/// within the machine's noise at 19 (`tests/render.rs`).
const NICE: i32 = 19;

/// What is built from a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    /// A docs page.
    Page(Format),
    /// The dashboard's list of methods (JSON).
    Methods,
    /// A generated client module, by its file extension (`py`, `ts`).
    Client(&'static str),
}

/// What a cached page is kept under: everything it depends on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    /// What is built.
    pub(crate) kind: Kind,
    /// The document's fingerprint (`sha256:…`).
    pub(crate) fingerprint: String,
    /// What the page shows that is not in the document (empty for [`Kind::Methods`]).
    pub(crate) shown: Shown,
}

/// The fields of a page's header that come from the registry, not the document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct Shown {
    /// The service's name.
    pub(crate) name: String,
    /// Its title (the manifest's first).
    pub(crate) title: Option<String>,
    /// Its version.
    pub(crate) version: Option<String>,
    /// Its description.
    pub(crate) description: Option<String>,
    /// Why its document is invalid, if it is.
    pub(crate) invalid: Option<String>,
}

/// How the cache answered, as an RFC 9211 `Cache-Status` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// Rendered before.
    Hit,
    /// Rendered for this request.
    Miss,
    /// Rendered for another request that asked first, while this one waited.
    Collapsed,
}

/// The render queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Busy;

/// How much the cache keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Keep {
    /// Most pages.
    pub(crate) entries: usize,
    /// Most bytes of pages.
    pub(crate) bytes: usize,
}

/// The cache and its render threads.
pub(crate) struct Renderer {
    state: Mutex<State>,
    jobs: SyncSender<Job>,
    budget: Budget,
    keep: Keep,
}

/// A render, ready to run on a render thread.
type Job = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct State {
    slots: HashMap<Key, Slot>,
    /// Bytes of the pages kept.
    bytes: usize,
    /// Pages kept (slots that are not rendering).
    kept: usize,
    /// A counter stamping each use, for "least recently used".
    clock: u64,
}

enum Slot {
    /// Being rendered: the page arrives here.
    Rendering(watch::Receiver<Option<Arc<Page>>>),
    /// Rendered.
    Ready { page: Arc<Page>, used: u64 },
}

/// The renderer every listener and the dashboard share, started on first use.
pub(crate) fn shared() -> &'static Arc<Renderer> {
    static SHARED: OnceLock<Arc<Renderer>> = OnceLock::new();
    SHARED.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Renderer::start(
            (cores / 2).max(1),
            QUEUE,
            Budget::default(),
            Keep::default(),
        )
    })
}

// === impl Keep ===

impl Default for Keep {
    fn default() -> Keep {
        Keep {
            entries: MAX_ENTRIES,
            bytes: MAX_BYTES,
        }
    }
}

// === impl Status ===

impl Status {
    /// The `Cache-Status` header value.
    pub(crate) fn header(self) -> &'static str {
        match self {
            Status::Hit => "hero_router; hit",
            Status::Miss => "hero_router; fwd=miss",
            Status::Collapsed => "hero_router; fwd=miss; collapsed",
        }
    }
}

// === impl Renderer ===

impl Renderer {
    /// Starts `threads` render threads with a queue of `queue` renders; each render gets
    /// `budget`, and the cache keeps what `keep` allows.
    pub(crate) fn start(threads: usize, queue: usize, budget: Budget, keep: Keep) -> Arc<Renderer> {
        let (jobs, rx) = mpsc::sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("hero-render-{i}"))
                .spawn(move || work(&rx));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a docs render thread");
            }
        }
        Arc::new(Renderer {
            state: Mutex::new(State::default()),
            jobs,
            budget,
            keep,
        })
    }

    /// The page under `key`: kept, being rendered (then waited for), or rendered now by
    /// `render` on a render thread. Without a key (a document without a fingerprint) the
    /// page is rendered off the shard but not kept.
    pub(crate) async fn get<F>(
        self: &Arc<Self>,
        key: Option<Key>,
        render: F,
    ) -> Result<(Arc<Page>, Status), Busy>
    where
        F: FnOnce(&Budget) -> Page + Send + 'static,
    {
        let (mut rx, status) = {
            let mut state = self.lock();
            state.clock += 1;
            let now = state.clock;
            match key.as_ref().and_then(|k| state.slots.get_mut(k)) {
                Some(Slot::Ready { page, used }) => {
                    *used = now;
                    return Ok((page.clone(), Status::Hit));
                }
                Some(Slot::Rendering(rx)) => (rx.clone(), Status::Collapsed),
                None => {
                    let (tx, rx) = watch::channel(None);
                    let (this, job_key, budget) = (self.clone(), key.clone(), self.budget);
                    let job: Job = Box::new(move || {
                        let page = catch_unwind(AssertUnwindSafe(|| render(&budget)));
                        let (page, keep) = match page {
                            Ok(page) => (Arc::new(page), true),
                            // A bug, not a property of the document: said, not kept.
                            Err(panic) => (Arc::new(Page::failed(&*panic)), false),
                        };
                        this.finish(job_key, &page, keep);
                        let _ = tx.send(Some(page));
                    });
                    match self.jobs.try_send(job) {
                        Ok(()) => {}
                        Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                            return Err(Busy);
                        }
                    }
                    if let Some(key) = key {
                        state.slots.insert(key, Slot::Rendering(rx.clone()));
                    }
                    (rx, Status::Miss)
                }
            }
        };
        match rx.wait_for(Option::is_some).await {
            Ok(page) => page.clone().map(|page| (page, status)).ok_or(Busy),
            // The render was dropped unrun (its thread is gone): nothing will come.
            Err(_) => Err(Busy),
        }
    }

    /// Keeps a rendered page (or forgets a failed render), then makes room.
    fn finish(&self, key: Option<Key>, page: &Arc<Page>, keep: bool) {
        let Some(key) = key else { return };
        let mut state = self.lock();
        let size = page.text.len();
        if !keep || size > self.keep.bytes {
            state.slots.remove(&key);
            return;
        }
        state.clock += 1;
        let used = state.clock;
        let old = state.slots.insert(
            key.clone(),
            Slot::Ready {
                page: page.clone(),
                used,
            },
        );
        if let Some(Slot::Ready { page, .. }) = old {
            state.bytes -= page.text.len();
            state.kept -= 1;
        }
        state.bytes += size;
        state.kept += 1;
        while state.kept > self.keep.entries || state.bytes > self.keep.bytes {
            let oldest = state
                .slots
                .iter()
                .filter(|(k, _)| **k != key)
                .filter_map(|(k, slot)| match slot {
                    Slot::Ready { used, .. } => Some((*used, k)),
                    Slot::Rendering(_) => None,
                })
                .min_by_key(|(used, _)| *used)
                .map(|(_, k)| k.clone());
            let Some(oldest) = oldest else { break };
            if let Some(Slot::Ready { page, .. }) = state.slots.remove(&oldest) {
                state.bytes -= page.text.len();
                state.kept -= 1;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A render thread: lowers its priority, then runs renders until the queue is gone.
fn work(jobs: &Mutex<Receiver<Job>>) {
    lower_priority();
    loop {
        let job = jobs.lock().unwrap_or_else(|p| p.into_inner()).recv();
        match job {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

/// Sets this thread's niceness to [`NICE`]. Linux applies `setpriority` to one thread when
/// given its thread id, which `/proc/thread-self` names (`{pid}/task/{tid}`).
fn lower_priority() {
    let tid = std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name()?.to_str()?.parse::<i32>().ok())
        .and_then(rustix::process::Pid::from_raw);
    let Some(tid) = tid else { return };
    if let Err(e) = rustix::process::setpriority_process(Some(tid), NICE) {
        tracing::debug!(error = %e, "cannot lower the docs render thread's priority");
    }
}

#[cfg(test)]
mod tests;
