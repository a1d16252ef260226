//! Connection slots per listener, and shedding. The router keeps accepting at every limit and
//! makes room by closing a connection; which one is [`make_room`]'s decision:
//!
//! - A client address at `--max-connections-per-client` loses its own oldest connection: one
//!   waiting for a request head (an idle keep-alive one) if it has any, else its oldest one in
//!   the middle of a request (a stream). Another client's connections are never touched, so
//!   one client cannot lock the others out however many streams it opens.
//! - A listener at `--max-connections` closes the connection that has waited longest for a
//!   request head (a slowloris client, or an idle keep-alive one), never one in the middle of
//!   a request; if every one is mid-request, the new one gets a 503.
//!
//! A client is its TCP peer's IP address, an IPv4-mapped IPv6 address taken as the IPv4 one
//! (as the allow-list takes it); Unix-socket connections have none and only the listener's
//! limit applies.
//!
//! A connection marks its phase with one atomic store per transition, so keeping the phases
//! costs nothing per request that anyone waits on; only admission looks at them, under the
//! listener's lock. Ending a connection (shed, or shutdown for all of them) is a flag and a
//! waker: checking it per request takes no lock.

use std::collections::HashMap;
use std::future::poll_fn;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use futures_util::task::AtomicWaker;
use tokio::time::Instant;

/// `phase` of a connection that is serving a request.
const BUSY: u64 = u64::MAX;

/// The connections of one listener.
pub(super) struct ConnSlots {
    max: usize,
    per_client: usize,
    epoch: Instant,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    live: HashMap<u64, Arc<ConnSlot>>,
    /// The connections of each client address, oldest first.
    clients: HashMap<IpAddr, Vec<(u64, Arc<ConnSlot>)>>,
}

/// One connection's place: its phase, and the flags that end it.
pub(super) struct ConnSlot {
    /// Microseconds since the listener's epoch at which the connection began to wait for its
    /// current request head, or [`BUSY`].
    phase: AtomicU64,
    /// Set when the connection is shed or shutdown begins: the answer in flight is its last.
    closing: AtomicBool,
    /// Set when the connection is shed for a newer one of its client: whatever it is doing (a
    /// stream, an upload) ends now rather than at its end.
    cut: AtomicBool,
    /// Wakes the connection's task when `closing` is set.
    waker: AtomicWaker,
    /// The client address, for TCP.
    client: Option<IpAddr>,
    epoch: Instant,
}

/// A connection's hold on its slot; released on drop.
pub(super) struct SlotGuard {
    slots: Arc<ConnSlots>,
    id: u64,
    slot: Arc<ConnSlot>,
}

/// What admission decided.
pub(super) enum Admission {
    /// Serve the connection; `Some` if another one was shed to make room.
    Admitted(SlotGuard, Option<Shed>),
    /// Every slot is serving a request: answer 503 and close.
    Full,
}

/// The connection shed to admit a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shed {
    /// The client was at its limit: one of its own, which had waited this long for a request
    /// head (`None`: it was in the middle of a request, such as a stream).
    Own(Option<Duration>),
    /// The listener was full: the connection that had waited this long for a request head.
    Idle(Duration),
}

/// A connection as [`make_room`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Held {
    /// Admission order: a smaller id came earlier.
    pub(super) id: u64,
    /// When it began to wait for its current request head (microseconds since the listener's
    /// epoch); `None` while it is in the middle of a request.
    pub(super) waiting_since: Option<u64>,
}

/// How a new connection gets its place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Room {
    /// Below every limit.
    Free,
    /// The client is at its limit: shed this connection of its own.
    Own(Held),
    /// The listener is full: shed this connection waiting for a request head.
    Idle(Held),
    /// The listener is full and every connection is in the middle of a request: refuse.
    Full,
}

/// Decides how a new connection gets its place. `own` are the connections of the new one's
/// client (none on a Unix socket), `live` how many the listener holds; `all` lists those, and
/// is called only when the listener is full.
///
/// The client's own limit comes first: at it, the client's connection waiting longest for a
/// request head is shed, else (all of them mid-request) its oldest one, and the listener's
/// count does not grow. Otherwise, at `max`, the connection that has waited longest for a
/// head, whoever's; none waiting: [`Room::Full`].
pub(super) fn make_room<I: Iterator<Item = Held>>(
    own: &[Held],
    live: usize,
    max: usize,
    per_client: usize,
    all: impl FnOnce() -> I,
) -> Room {
    if own.len() >= per_client {
        let oldest = || own.iter().min_by_key(|h| h.id).copied();
        if let Some(h) = waiting_longest(own.iter().copied()).or_else(oldest) {
            return Room::Own(h);
        }
    }
    if live < max {
        return Room::Free;
    }
    waiting_longest(all()).map_or(Room::Full, Room::Idle)
}

/// The connection that has waited longest for a request head (the earlier one of a tie).
fn waiting_longest(conns: impl Iterator<Item = Held>) -> Option<Held> {
    conns
        .filter(|h| h.waiting_since.is_some())
        .min_by_key(|h| (h.waiting_since, h.id))
}

// === impl ConnSlots ===

impl ConnSlots {
    /// Slots for at most `max` connections at once, and at most `per_client` of one client
    /// address (each at least one).
    pub(super) fn new(max: usize, per_client: usize) -> Arc<ConnSlots> {
        Arc::new(ConnSlots {
            max: max.max(1),
            per_client: per_client.max(1),
            epoch: Instant::now(),
            inner: Mutex::default(),
        })
    }

    /// Takes a slot for a new connection from `client` (`None` on a Unix socket), shedding
    /// another connection as [`make_room`] decides if a limit is reached.
    pub(super) fn admit(self: &Arc<Self>, client: Option<IpAddr>) -> Admission {
        let client = client.map(|ip| ip.to_canonical());
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let own: Vec<Held> = client
            .and_then(|c| inner.clients.get(&c))
            .map_or_else(Vec::new, |conns| {
                conns.iter().map(|(id, s)| s.held(*id)).collect()
            });
        let room = make_room(&own, inner.live.len(), self.max, self.per_client, || {
            inner.live.iter().map(|(id, s)| s.held(*id))
        });
        let now = self.epoch.elapsed().as_micros() as u64;
        let waited = |h: Held| {
            h.waiting_since
                .map(|t| Duration::from_micros(now.saturating_sub(t)))
        };
        let shed = match room {
            Room::Free => None,
            Room::Full => return Admission::Full,
            Room::Own(h) => {
                if let Some(s) = inner.remove(h.id) {
                    s.cut();
                }
                Some(Shed::Own(waited(h)))
            }
            Room::Idle(h) => {
                if let Some(s) = inner.remove(h.id) {
                    s.close();
                }
                Some(Shed::Idle(waited(h).unwrap_or_default()))
            }
        };
        inner.next_id += 1;
        let id = inner.next_id;
        let slot = Arc::new(ConnSlot {
            // A new connection starts out waiting for its first head.
            phase: AtomicU64::new(now),
            closing: AtomicBool::new(false),
            cut: AtomicBool::new(false),
            waker: AtomicWaker::new(),
            client,
            epoch: self.epoch,
        });
        inner.live.insert(id, slot.clone());
        if let Some(c) = client {
            inner.clients.entry(c).or_default().push((id, slot.clone()));
        }
        Admission::Admitted(
            SlotGuard {
                slots: self.clone(),
                id,
                slot,
            },
            shed,
        )
    }

    /// Ends every connection after its answer in flight (shutdown).
    pub(super) fn close_all(&self) {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        for s in inner.live.values() {
            s.close();
        }
    }

    /// Ends now every connection whose client `denied` says no (the allow-list changed);
    /// returns how many. Unix-socket connections have no client and are never ended here.
    pub(super) fn cut_where(&self, denied: impl Fn(IpAddr) -> bool) -> usize {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut cut = 0;
        for (client, conns) in &inner.clients {
            if denied(*client) {
                for (_, slot) in conns {
                    slot.cut();
                    cut += 1;
                }
            }
        }
        cut
    }

    /// Connections holding a slot.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().unwrap().live.len()
    }

    /// Connections of `client` holding a slot.
    #[cfg(test)]
    fn len_of(&self, client: IpAddr) -> usize {
        let inner = self.inner.lock().unwrap();
        inner.clients.get(&client).map_or(0, Vec::len)
    }
}

// === impl Inner ===

impl Inner {
    /// Releases connection `id`'s slot, and its place among its client's connections.
    fn remove(&mut self, id: u64) -> Option<Arc<ConnSlot>> {
        let slot = self.live.remove(&id)?;
        if let Some(c) = slot.client {
            if let Some(conns) = self.clients.get_mut(&c) {
                conns.retain(|(i, _)| *i != id);
                if conns.is_empty() {
                    self.clients.remove(&c);
                }
            }
        }
        Some(slot)
    }
}

// === impl ConnSlot ===

impl ConnSlot {
    /// The connection now waits for a request head (since `now`): it may be shed.
    pub(super) fn reading_head(&self, now: Instant) {
        let since = now.saturating_duration_since(self.epoch).as_micros() as u64;
        self.phase.store(since.min(BUSY - 1), Ordering::Relaxed);
    }

    /// The connection is serving a request: only its own client's newer connections can shed
    /// it.
    pub(super) fn busy(&self) {
        self.phase.store(BUSY, Ordering::Relaxed);
    }

    /// Ends the connection after its answer in flight.
    pub(super) fn close(&self) {
        self.closing.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Ends the connection now: like [`close`](Self::close), and the request in flight (a
    /// stream without an end in sight, an upload) is cut too.
    pub(super) fn cut(&self) {
        self.cut.store(true, Ordering::Release);
        self.close();
    }

    /// True once the connection was shed or shutdown began.
    pub(super) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Resolves once the connection is shed or shutdown begins. Only one task (the
    /// connection's own) may wait on it.
    pub(super) async fn closed(&self) {
        self.wait_for(&self.closing).await
    }

    /// Resolves once the connection is [cut](Self::cut). Only one task (the connection's own)
    /// may wait on it.
    pub(super) async fn cut_off(&self) {
        self.wait_for(&self.cut).await
    }

    async fn wait_for(&self, flag: &AtomicBool) {
        poll_fn(|cx| {
            if flag.load(Ordering::Acquire) {
                return Poll::Ready(());
            }
            self.waker.register(cx.waker());
            if flag.load(Ordering::Acquire) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// What [`make_room`] needs of this connection.
    fn held(&self, id: u64) -> Held {
        let phase = self.phase.load(Ordering::Relaxed);
        Held {
            id,
            waiting_since: (phase != BUSY).then_some(phase),
        }
    }
}

impl std::ops::Deref for SlotGuard {
    type Target = ConnSlot;

    fn deref(&self) -> &ConnSlot {
        &self.slot
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let mut inner = self.slots.inner.lock().unwrap_or_else(|p| p.into_inner());
        // A shed connection was removed already.
        if inner
            .live
            .get(&self.id)
            .is_some_and(|s| Arc::ptr_eq(s, &self.slot))
        {
            inner.remove(self.id);
        }
    }
}

#[cfg(test)]
mod tests;

impl crate::proxy::forward::Closing for ConnSlot {
    fn is_closing(&self) -> bool {
        ConnSlot::is_closing(self)
    }

    fn closed(&self) -> impl Future<Output = ()> {
        ConnSlot::closed(self)
    }
}
