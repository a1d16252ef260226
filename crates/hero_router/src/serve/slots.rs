//! Connection slots per listener, and shedding: at the limit the router keeps accepting and
//! makes room by closing the connection that has waited longest for a request head (a
//! slowloris client, or an idle keep-alive one), never one in the middle of a request.
//!
//! A connection marks its phase with one atomic store per transition, so keeping the phases
//! costs nothing per request that anyone waits on; only admission at the limit looks at them.
//! Ending a connection (shed, or shutdown for all of them) is a flag and a waker: checking it
//! per request takes no lock.

use std::collections::HashMap;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;

use futures_util::task::AtomicWaker;
use tokio::time::Instant;

/// `phase` of a connection that is serving a request.
const BUSY: u64 = u64::MAX;

/// The connections of one listener.
pub(super) struct ConnSlots {
    max: usize,
    epoch: Instant,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    live: HashMap<u64, Arc<ConnSlot>>,
}

/// One connection's place: its phase, and the flag that ends it.
pub(super) struct ConnSlot {
    /// Microseconds since the listener's epoch at which the connection began to wait for its
    /// current request head, or [`BUSY`].
    phase: AtomicU64,
    /// Set when the connection is shed or shutdown begins: the answer in flight is its last.
    closing: AtomicBool,
    /// Wakes the connection's task when `closing` is set.
    waker: AtomicWaker,
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
    /// Serve the connection; `Some(idle_for)` if another one was shed to make room.
    Admitted(SlotGuard, Option<std::time::Duration>),
    /// Every slot is serving a request: answer 503 and close.
    Full,
}

// === impl ConnSlots ===

impl ConnSlots {
    /// Slots for at most `max` connections at once (at least one).
    pub(super) fn new(max: usize) -> Arc<ConnSlots> {
        Arc::new(ConnSlots {
            max: max.max(1),
            epoch: Instant::now(),
            inner: Mutex::default(),
        })
    }

    /// Takes a slot for a new connection, shedding the connection that has waited longest for
    /// a head if all slots are taken.
    pub(super) fn admit(self: &Arc<Self>) -> Admission {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut shed = None;
        if inner.live.len() >= self.max {
            let victim = inner
                .live
                .iter()
                .map(|(id, s)| (s.phase.load(Ordering::Relaxed), *id))
                .filter(|(phase, _)| *phase != BUSY)
                .min();
            let Some((since, id)) = victim else {
                return Admission::Full;
            };
            if let Some(s) = inner.live.remove(&id) {
                s.close();
            }
            let now = self.epoch.elapsed().as_micros() as u64;
            shed = Some(std::time::Duration::from_micros(now.saturating_sub(since)));
        }
        inner.next_id += 1;
        let id = inner.next_id;
        let slot = Arc::new(ConnSlot {
            // A new connection starts out waiting for its first head.
            phase: AtomicU64::new(self.epoch.elapsed().as_micros() as u64),
            closing: AtomicBool::new(false),
            waker: AtomicWaker::new(),
            epoch: self.epoch,
        });
        inner.live.insert(id, slot.clone());
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

    /// Connections holding a slot.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().unwrap().live.len()
    }
}

// === impl ConnSlot ===

impl ConnSlot {
    /// The connection now waits for a request head (since `now`): it may be shed.
    pub(super) fn reading_head(&self, now: Instant) {
        let since = now.saturating_duration_since(self.epoch).as_micros() as u64;
        self.phase.store(since.min(BUSY - 1), Ordering::Relaxed);
    }

    /// The connection is serving a request: it is never shed.
    pub(super) fn busy(&self) {
        self.phase.store(BUSY, Ordering::Relaxed);
    }

    /// Ends the connection after its answer in flight.
    pub(super) fn close(&self) {
        self.closing.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// True once the connection was shed or shutdown began.
    pub(super) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Resolves once the connection is shed or shutdown begins. Only one task (the
    /// connection's own) may wait on it.
    pub(super) async fn closed(&self) {
        poll_fn(|cx| {
            if self.is_closing() {
                return Poll::Ready(());
            }
            self.waker.register(cx.waker());
            if self.is_closing() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
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
            inner.live.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(a: Admission) -> (SlotGuard, Option<std::time::Duration>) {
        match a {
            Admission::Admitted(g, shed) => (g, shed),
            Admission::Full => panic!("expected a slot"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_limit_the_longest_waiting_head_is_shed() {
        let slots = ConnSlots::new(3);
        let mut guards: Vec<_> = (0..3).map(|_| admitted(slots.admit()).0).collect();
        tokio::time::advance(std::time::Duration::from_secs(1)).await;
        // 0 is busy, 1 started waiting for a head just now, 2 has waited since it came.
        guards[0].busy();
        guards[1].reading_head(Instant::now());
        let (g, shed) = admitted(slots.admit());
        assert_eq!(shed, Some(std::time::Duration::from_secs(1)));
        let closing: Vec<bool> = guards.iter().map(|g| g.is_closing()).collect();
        assert_eq!(closing, [false, false, true]);
        assert_eq!(slots.len(), 3);
        // The shed connection's guard leaves the new one's slot alone.
        drop(guards.pop());
        assert_eq!(slots.len(), 3);
        drop(g);
        assert_eq!(slots.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn when_every_connection_is_busy_a_new_one_is_refused() {
        let slots = ConnSlots::new(2);
        let guards: Vec<_> = (0..2).map(|_| admitted(slots.admit()).0).collect();
        for g in &guards {
            g.busy();
        }
        assert!(matches!(slots.admit(), Admission::Full));
        guards[1].reading_head(Instant::now());
        let (g, shed) = admitted(slots.admit());
        assert_eq!(shed, Some(std::time::Duration::ZERO));
        assert!(guards[1].is_closing() && !guards[0].is_closing());
        // Shutdown ends every connection still holding a slot, and wakes its task.
        let waiting = tokio::spawn({
            let slot = g.slot.clone();
            async move { slot.closed().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        slots.close_all();
        waiting.await.unwrap();
        assert!(guards[0].is_closing());
    }
}
