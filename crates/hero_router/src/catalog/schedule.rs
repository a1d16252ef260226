//! When the catalog fetches, as plain functions over data: how long to wait after failures,
//! and which fetch may take a slot.
//!
//! Slots are fair (docs/catalog.md#limits-and-fairness): a service whose last fetch failed is a
//! *suspect* and fetches in a lane of its own, a quarter of the slots; a fetch that has run longer
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

/// The lane of a service with `failures` failed fetches in a row.
pub(crate) fn lane(failures: u32) -> Lane {
    if failures == 0 {
        Lane::Fresh
    } else {
        Lane::Suspect
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
mod tests {
    use super::*;

    const MINUTES_5: Duration = Duration::from_secs(300);

    #[test]
    fn backoff_doubles_from_one_second_up_to_the_refresh() {
        let secs: Vec<u64> = (1..=12).map(|n| backoff(n, MINUTES_5).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(backoff(u32::MAX, MINUTES_5), MINUTES_5, "no overflow");
        assert_eq!(backoff(0, MINUTES_5), FIRST_RETRY);
        let short = Duration::from_millis(1500);
        assert_eq!(backoff(1, short), FIRST_RETRY);
        assert_eq!(backoff(2, short), short, "capped by a short refresh");
    }

    #[test]
    fn a_failure_makes_a_suspect() {
        assert_eq!(lane(0), Lane::Fresh);
        assert_eq!(lane(1), Lane::Suspect);
        assert_eq!(lane(40), Lane::Suspect);
    }

    #[test]
    fn slow_fresh_fetches_free_their_slot() {
        let t0 = Instant::now();
        let running = [
            (Lane::Fresh, t0),
            (Lane::Fresh, t0 + Duration::from_millis(100)),
            (Lane::Suspect, t0),
        ];
        assert_eq!(
            load(running, t0 + Duration::from_millis(200)),
            Load {
                fresh: 2,
                suspect: 1
            }
        );
        assert_eq!(
            load(running, t0 + SLOW),
            Load {
                fresh: 1,
                suspect: 1
            }
        );
        assert_eq!(
            load(running, t0 + SLOW * 4),
            Load {
                fresh: 0,
                suspect: 1
            }
        );
        assert_eq!(
            next_change(running, t0 + Duration::from_millis(200)),
            Some(t0 + SLOW)
        );
        assert_eq!(
            next_change(running, t0 + SLOW),
            Some(t0 + Duration::from_millis(100) + SLOW)
        );
        assert_eq!(next_change(running, t0 + SLOW * 4), None);
    }

    #[test]
    fn every_lane_and_load_is_decided() {
        // Exhaustive over small loads and concurrencies: the fresh lane has every slot, the
        // suspects a quarter (at least one), and neither lane's load touches the other's.
        for concurrency in 0..=20 {
            let fresh_cap = concurrency.max(1);
            let suspect_cap = (fresh_cap / 4).max(1);
            for fresh in 0..=24 {
                for suspect in 0..=24 {
                    let l = Load { fresh, suspect };
                    assert_eq!(
                        may_start(Lane::Fresh, l, concurrency),
                        fresh < fresh_cap,
                        "{concurrency} {l:?}"
                    );
                    assert_eq!(
                        may_start(Lane::Suspect, l, concurrency),
                        suspect < suspect_cap,
                        "{concurrency} {l:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn hanging_suspects_never_hold_a_new_services_slot() {
        // 64 suspects fetching, their lane full: a fresh service still starts at once.
        let t0 = Instant::now();
        let running = vec![(Lane::Suspect, t0); 64];
        let l = load(running.iter().copied(), t0 + Duration::from_secs(1));
        assert!(!may_start(Lane::Suspect, l, 16));
        assert!(may_start(Lane::Fresh, l, 16));
        // 64 fresh fetches that hang: once slow, they leave the fresh lane's count.
        let hung = vec![(Lane::Fresh, t0); 64];
        assert!(!may_start(Lane::Fresh, load(hung.iter().copied(), t0), 16));
        assert!(may_start(
            Lane::Fresh,
            load(hung.iter().copied(), t0 + SLOW),
            16
        ));
    }
}
