//! The socket state machine and reap eligibility, as plain functions over data.
//!
//! Nothing here does I/O. [`advance`] folds one probe [`Observation`] into a socket's
//! [`SocketRecord`]; [`reap_check`] says whether a record may be reaped by the rules that need
//! no I/O (rules 1–3 of docs/sockets-and-reaping.md#reap-rules). The I/O rules (owner lock,
//! re-probe, hero_proc, removal) live in `reaper.rs` and run only after [`reap_check`] said yes.

use std::borrow::Cow;
use std::time::Duration;

use hero_socket::Identity;

use crate::registry::state::{SkipReason, SocketState};

/// Why a probe ran. Only periodic scans advance the refusal streak (rule 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeCause {
    /// The periodic full scan.
    Periodic,
    /// A directory-watch event or its follow-up re-probes.
    Watch,
    /// A scan asked for by an operator (`router.scan`, `hero_router scan`).
    Manual,
}

/// What one probe of one path saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Observation {
    /// The state, or `None` when the path vanished.
    pub state: Option<SocketState>,
    /// The file's identity from the probe's `lstat`.
    pub identity: Option<Identity>,
    /// A short human explanation (errno, file type); static text in every common case.
    pub detail: Cow<'static, str>,
}

/// What the router remembers about one socket path between scans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SocketRecord {
    /// Current state.
    pub state: SocketState,
    /// Unix ms of the last state change.
    pub since_unix_ms: u64,
    /// Consecutive periodic scans that saw this same file refused.
    pub refused_streak: u32,
    /// Identity of the file at the first refusal of the current streak.
    pub first_refusal: Option<Identity>,
    /// Identity at the last probe.
    pub identity: Option<Identity>,
    /// Last probe's explanation.
    pub detail: Cow<'static, str>,
    /// The last skipped-reap reason that was logged, so a repeated reason is logged once.
    pub last_skip: Option<SkipReason>,
}

/// Reap settings (docs/sockets-and-reaping.md#reap-rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReapPolicy {
    /// `--no-reap` turns this off.
    pub enabled: bool,
    /// `--stale-after`: consecutive periodic refusals needed.
    pub stale_after: u32,
    /// `--reap-grace`: minimum age of the socket file's ctime.
    pub grace: Duration,
}

// === state machine ===

/// Folds one observation into a record. `None` in `obs.state` (path gone) is handled by the
/// caller, which drops the record; here it is treated as a fresh start.
pub(crate) fn advance(
    prev: Option<&SocketRecord>,
    obs: &Observation,
    cause: ProbeCause,
    now_unix_ms: u64,
) -> Option<SocketRecord> {
    let state = obs.state?;
    let periodic = u32::from(cause == ProbeCause::Periodic);
    let (refused_streak, first_refusal) = match (state, prev) {
        (SocketState::Refused, Some(p))
            if p.state == SocketState::Refused
                && p.first_refusal.is_some()
                && p.first_refusal == obs.identity =>
        {
            (p.refused_streak.saturating_add(periodic), p.first_refusal)
        }
        // A first refusal, or a refusal of a different file (it was replaced): start over.
        (SocketState::Refused, _) => (periodic, obs.identity),
        _ => (0, None),
    };
    let since_unix_ms = match prev {
        Some(p) if p.state == state => p.since_unix_ms,
        _ => now_unix_ms,
    };
    let last_skip = match prev {
        Some(p) if state == SocketState::Refused => p.last_skip,
        _ => None,
    };
    Some(SocketRecord {
        state,
        since_unix_ms,
        refused_streak,
        first_refusal,
        identity: obs.identity,
        detail: obs.detail.clone(),
        last_skip,
    })
}

/// Rules 1–3 plus `--no-reap`: may this record go on to the I/O checks?
///
/// `now_ns` is the wall clock in ns since the epoch (the same clock as ctime).
pub(crate) fn reap_check(
    rec: &SocketRecord,
    policy: &ReapPolicy,
    now_ns: i128,
) -> Result<(), SkipReason> {
    debug_assert_eq!(rec.state, SocketState::Refused);
    if !policy.enabled {
        return Err(SkipReason::NoReap);
    }
    if rec.refused_streak < policy.stale_after.max(1) {
        return Err(SkipReason::Streak);
    }
    let Some(id) = rec.identity else {
        return Err(SkipReason::IdentityChanged);
    };
    if rec.first_refusal != Some(id) {
        return Err(SkipReason::IdentityChanged);
    }
    let age_ns = now_ns - i128::from(id.ctime_ns);
    if age_ns < policy.grace.as_nanos() as i128 {
        return Err(SkipReason::Grace);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
