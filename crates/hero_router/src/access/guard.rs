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
mod tests;
