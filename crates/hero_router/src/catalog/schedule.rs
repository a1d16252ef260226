//! When the catalog fetches, as plain functions over data: how long to wait after failures,
//! and which fetch may take a slot.
//!
//! Slots are fair (docs/catalog.md#limits-and-fairness): a service whose last fetch failed
//! slowly is a *suspect* and fetches in a lane of its own, a quarter of the slots; a fetch that has run longer
//! than [`SLOW`] leaves the fresh lane's count (it no longer holds a slot a well-behaved service
//! could use). So services that hang delay each other, never a new well-behaved one.

use std::time::Duration;

use tokio::time::Instant;

/// A fresh fetch running this long counts as slow: it stops holding a fresh slot. A
/// well-behaved service answers both documents in a few milliseconds.
pub(crate) const SLOW: Duration = Duration::from_millis(250);

/// The first retry's delay; each failure in a row doubles it.
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// The lane a fetch runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    /// Its last fetch succeeded, or it was never fetched.
    Fresh,
    /// Its last fetch failed: it shares the suspects' few slots.
    Suspect,
}

/// How many fetches hold slots of each lane.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Load {
    /// Fresh fetches younger than [`SLOW`].
    pub(crate) fresh: usize,
    /// Suspects' fetches.
    pub(crate) suspect: usize,
}

/// The delay before fetching again after `failures` failed fetches in a row (1 → 1 s, 2 →
/// 2 s, 3 → 4 s …), never longer than `cap` (`--catalog-refresh`).
pub(crate) fn backoff(failures: u32, cap: Duration) -> Duration {
    let doublings = failures.saturating_sub(1).min(31);
    FIRST_RETRY
        .checked_mul(1 << doublings)
        .unwrap_or(cap)
        .min(cap)
}

/// The lane of a service with `failures` failed fetches in a row, the last of which was
/// `slow` (it ran [`SLOW`] or longer). A fetch that failed fast (an answer that is not JSON, a
/// refused connection) cost its slot no time: the service retries in the fresh lane rather
/// than queue behind services that hang.
pub(crate) fn lane(failures: u32, slow: bool) -> Lane {
    if failures > 0 && slow {
        Lane::Suspect
    } else {
        Lane::Fresh
    }
}

/// The slots each lane holds at `now`, from the running fetches' lanes and start times.
pub(crate) fn load(running: impl IntoIterator<Item = (Lane, Instant)>, now: Instant) -> Load {
    let mut load = Load::default();
    for (lane, started) in running {
        match lane {
            Lane::Fresh if now.duration_since(started) < SLOW => load.fresh += 1,
            Lane::Fresh => {}
            Lane::Suspect => load.suspect += 1,
        }
    }
    load
}

/// True if a fetch in `lane` may start now, with `concurrency` slots (`--catalog-concurrency`)
/// and `load` taken.
pub(crate) fn may_start(lane: Lane, load: Load, concurrency: usize) -> bool {
    let concurrency = concurrency.max(1);
    match lane {
        Lane::Fresh => load.fresh < concurrency,
        Lane::Suspect => load.suspect < (concurrency / 4).max(1),
    }
}

/// When the running fetches' load next changes by time alone: the first fresh fetch to turn
/// slow (a slot frees then).
pub(crate) fn next_change(
    running: impl IntoIterator<Item = (Lane, Instant)>,
    now: Instant,
) -> Option<Instant> {
    running
        .into_iter()
        .filter(|(lane, started)| *lane == Lane::Fresh && now.duration_since(*started) < SLOW)
        .map(|(_, started)| started + SLOW)
        .min()
}

#[cfg(test)]
mod tests;
