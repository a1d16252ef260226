//! The allow-list never opens by accident (docs/access-and-security.md#access-file): when the
//! access file vanishes or turns empty while the file's last applied entries were not empty, the
//! running router keeps those entries until the file has stayed empty (or absent) for
//! [`EMPTY_GRACE`].
//!
//! An editor that saves by truncating the file and then writing it shows the watcher an empty
//! file for a moment; applying it would open the router to every client for that moment (an
//! empty list allows everyone). [`decide`] is the whole rule, a plain function over the
//! watcher's [`Guard`], what one look at the file found ([`Look`]) and the time, so the test
//! below walks every transition with a clock it owns. [`super::file::watch`] applies its
//! [`Step`]s.

use tokio::time::{Duration, Instant};

/// How long the file must stay empty or absent before an empty list replaces a non-empty one.
/// Editors write within milliseconds of truncating (a save was seen to take ~300 ms on a slow
/// disk), so 2 s is well past any save, and short enough that a deliberate emptying
/// (`hero_router access clear --yes`, or deleting the file) still takes effect promptly.
#[cfg_attr(not(any(test, feature = "test-util")), allow(unreachable_pub))]
pub const EMPTY_GRACE: Duration = Duration::from_secs(2);

/// What the watcher remembers about the file's entries between looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Guard {
    /// The entries last applied from the file were none: an empty file changes nothing.
    Open,
    /// The entries last applied from the file were some.
    Closed,
    /// Entries are in force, and the file has been empty or absent since `since`; they stay
    /// until `since + grace`.
    Holding {
        /// The first look that found the file empty.
        since: Instant,
    },
}

/// What one look at the file found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Look {
    /// A valid file with at least one entry.
    Entries,
    /// No file, or a valid file with no entries (blank or comment lines only).
    Empty,
    /// A file with a bad line: the last good list stays in force, whatever the guard.
    Bad,
}

/// What the watcher does after a look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Apply what the look read (entries, or none).
    Apply,
    /// Keep the entries in force and look again at `until` (no later); `warn` on the first look
    /// of a stretch of emptiness, so each stretch logs one warning.
    Hold {
        /// Log the warning now.
        warn: bool,
        /// When the stretch has lasted the grace period.
        until: Instant,
    },
    /// Keep the last good list and report the bad file.
    KeepBad,
}

// === impl Guard ===

impl Guard {
    /// The guard of a router that starts with the file's entries applied: [`Guard::Closed`] if
    /// it had any.
    pub(crate) fn starting(has_entries: bool) -> Guard {
        if has_entries {
            Guard::Closed
        } else {
            Guard::Open
        }
    }

    /// When the watcher must look again without a file event: the end of a hold.
    pub(crate) fn deadline(self, grace: Duration) -> Option<Instant> {
        match self {
            Guard::Holding { since } => Some(since + grace),
            Guard::Open | Guard::Closed => None,
        }
    }
}

/// The rule: what to do about `look` at `now`, and the guard after it.
pub(crate) fn decide(guard: Guard, look: Look, now: Instant, grace: Duration) -> (Step, Guard) {
    match (guard, look) {
        (_, Look::Entries) => (Step::Apply, Guard::Closed),
        (Guard::Open, Look::Empty) => (Step::Apply, Guard::Open),
        (Guard::Closed, Look::Empty) => (
            Step::Hold {
                warn: true,
                until: now + grace,
            },
            Guard::Holding { since: now },
        ),
        (Guard::Holding { since }, Look::Empty) if now >= since + grace => {
            (Step::Apply, Guard::Open)
        }
        (Guard::Holding { since }, Look::Empty) => (
            Step::Hold {
                warn: false,
                until: since + grace,
            },
            guard,
        ),
        // A bad file is not an empty one: a later emptiness is a new stretch.
        (Guard::Holding { .. }, Look::Bad) => (Step::KeepBad, Guard::Closed),
        (Guard::Open | Guard::Closed, Look::Bad) => (Step::KeepBad, guard),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(2);

    #[test]
    fn every_transition() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let holding = Guard::Holding { since: t0 };
        let hold = |warn, until| Step::Hold { warn, until };
        // (guard, look, now) → (step, next guard)
        let cases = [
            // Open: whatever the file says is applied at once (nothing to open).
            (Guard::Open, Look::Entries, t0, Step::Apply, Guard::Closed),
            (Guard::Open, Look::Empty, t0, Step::Apply, Guard::Open),
            (Guard::Open, Look::Bad, t0, Step::KeepBad, Guard::Open),
            // Closed: entries apply; emptiness starts a hold with one warning.
            (Guard::Closed, Look::Entries, t0, Step::Apply, Guard::Closed),
            (
                Guard::Closed,
                Look::Empty,
                t0,
                hold(true, ms(2000)),
                holding,
            ),
            (Guard::Closed, Look::Bad, t0, Step::KeepBad, Guard::Closed),
            // Holding: entries end the hold (an editor's write after its truncate).
            (holding, Look::Entries, ms(1), Step::Apply, Guard::Closed),
            (holding, Look::Entries, ms(5000), Step::Apply, Guard::Closed),
            // Still empty within the grace: keep holding, no second warning, same deadline.
            (holding, Look::Empty, t0, hold(false, ms(2000)), holding),
            (
                holding,
                Look::Empty,
                ms(1999),
                hold(false, ms(2000)),
                holding,
            ),
            // Empty for the whole grace: the empty list applies.
            (holding, Look::Empty, ms(2000), Step::Apply, Guard::Open),
            (holding, Look::Empty, ms(60_000), Step::Apply, Guard::Open),
            // A bad file while holding: the last good list stays, and the stretch is over.
            (holding, Look::Bad, ms(1), Step::KeepBad, Guard::Closed),
            (holding, Look::Bad, ms(5000), Step::KeepBad, Guard::Closed),
        ];
        for (guard, look, now, step, next) in cases {
            assert_eq!(
                decide(guard, look, now, GRACE),
                (step, next),
                "{guard:?} + {look:?} at {:?}",
                now - t0
            );
        }
    }

    #[test]
    fn a_truncate_then_write_never_applies_the_empty_list() {
        let t0 = Instant::now();
        let mut guard = Guard::starting(true);
        let mut now = t0;
        for _ in 0..1000 {
            for look in [Look::Empty, Look::Entries] {
                let (step, next) = decide(guard, look, now, GRACE);
                assert!(
                    !(look == Look::Empty && step == Step::Apply),
                    "an empty list applied at {:?}",
                    now - t0
                );
                guard = next;
                now += Duration::from_millis(300);
            }
        }
        assert_eq!(guard, Guard::Closed);
    }

    #[test]
    fn a_file_left_empty_applies_after_the_grace_and_then_freely() {
        let t0 = Instant::now();
        let (step, guard) = decide(Guard::starting(true), Look::Empty, t0, GRACE);
        assert_eq!(guard.deadline(GRACE), Some(t0 + GRACE));
        assert!(matches!(step, Step::Hold { warn: true, .. }));
        let (step, guard) = decide(guard, Look::Empty, t0 + GRACE, GRACE);
        assert_eq!((step, guard), (Step::Apply, Guard::Open));
        assert_eq!(guard.deadline(GRACE), None);
        // Once open, emptiness is no news, and new entries apply at once.
        assert_eq!(
            decide(guard, Look::Empty, t0 + GRACE, GRACE),
            (Step::Apply, Guard::Open)
        );
        assert_eq!(Guard::starting(false), Guard::Open);
    }
}
