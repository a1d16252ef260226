//! The states the registry publishes for a socket, and why a reap was skipped
//! (docs/sockets-and-reaping.md).

use std::fmt;

use serde::Serialize;

/// The five states of docs/sockets-and-reaping.md#probe-states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SocketState {
    /// Connect succeeded.
    Live,
    /// Connect returned EAGAIN or timed out: a full backlog. Never reaped.
    Busy,
    /// ECONNREFUSED on a real socket file. Reaped only under every reap rule
    /// (docs/sockets-and-reaping.md#reap-rules).
    Refused,
    /// EACCES / EPERM (or the socket cannot be probed at all). Never reaped.
    Denied,
    /// Not a socket: regular file, directory, symlink. Never reaped.
    NotSocket,
}

/// Why a refused socket was not reaped. Codes are stable: they appear in logs and events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// `--no-reap`.
    NoReap,
    /// Not refused on enough consecutive periodic scans (rule 1).
    Streak,
    /// Younger than `--reap-grace` (rule 2).
    Grace,
    /// Not the same file as at the first refusal (rule 3).
    IdentityChanged,
    /// A living owner holds the `.lock` (rule 4).
    OwnerLocked,
    /// The lock file could not be opened or locked.
    LockError,
    /// The re-probe just before removal did not say refused (rule 5).
    #[serde(rename = "reprobe_not_refused")]
    Reprobe,
    /// A process has a socket bound to the file (between `bind()` and `listen()`), so it is
    /// not dead although it refuses connections.
    Bound,
    /// hero_proc reports the service running (rule 7).
    HeroProcRunning,
    /// The router's own directory.
    OwnSocket,
    /// The file could not be proven to be the same instance after the rename-aside (no birth
    /// time on this filesystem and no owner lock), so it was put back.
    Unverifiable,
    /// After the rename-aside the file was a different or live socket; it was put back.
    Restored,
    /// A syscall failed unexpectedly (logged as a warning); the file was kept.
    Error,
}

// === impl SocketState ===

impl SocketState {
    /// The contract's name of the state.
    pub fn as_str(self) -> &'static str {
        match self {
            SocketState::Live => "live",
            SocketState::Busy => "busy",
            SocketState::Refused => "refused",
            SocketState::Denied => "denied",
            SocketState::NotSocket => "not_socket",
        }
    }
}

impl fmt::Display for SocketState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === impl SkipReason ===

impl SkipReason {
    /// Every reason, in the order of docs/sockets-and-reaping.md#skip-reasons.
    pub const ALL: [SkipReason; 13] = [
        SkipReason::NoReap,
        SkipReason::Streak,
        SkipReason::Grace,
        SkipReason::IdentityChanged,
        SkipReason::OwnerLocked,
        SkipReason::LockError,
        SkipReason::Reprobe,
        SkipReason::Bound,
        SkipReason::Restored,
        SkipReason::Unverifiable,
        SkipReason::Error,
        SkipReason::HeroProcRunning,
        SkipReason::OwnSocket,
    ];

    /// The stable reason code.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::NoReap => "no_reap",
            SkipReason::Streak => "streak",
            SkipReason::Grace => "grace",
            SkipReason::IdentityChanged => "identity_changed",
            SkipReason::OwnerLocked => "owner_locked",
            SkipReason::LockError => "lock_error",
            SkipReason::Reprobe => "reprobe_not_refused",
            SkipReason::Bound => "bound",
            SkipReason::HeroProcRunning => "hero_proc_running",
            SkipReason::OwnSocket => "own_socket",
            SkipReason::Unverifiable => "unverifiable",
            SkipReason::Restored => "restored",
            SkipReason::Error => "error",
        }
    }

    /// The reason in words, for the CLI (docs/sockets-and-reaping.md#skip-reasons).
    pub fn explain(self) -> &'static str {
        match self {
            SkipReason::NoReap => "reaping is off",
            SkipReason::Streak => "not refused on --stale-after scans in a row yet",
            SkipReason::Grace => "younger than --reap-grace",
            SkipReason::IdentityChanged => "another file than at the first refusal",
            SkipReason::OwnerLocked => "a process holds its .lock",
            SkipReason::LockError => "its .lock could not be opened or locked",
            SkipReason::Reprobe => "the re-probe before removal did not say refused",
            SkipReason::Bound => "a process has it bound but not listening",
            SkipReason::HeroProcRunning => "hero_proc reports the service running",
            SkipReason::OwnSocket => "the router's own socket",
            SkipReason::Unverifiable => "could not be proven the same file; put back",
            SkipReason::Restored => "another or a live socket after the rename; put back",
            SkipReason::Error => "a system call failed (see the log)",
        }
    }

    /// True for reasons that deserve a `warn`.
    pub fn is_error(self) -> bool {
        matches!(self, SkipReason::Error | SkipReason::LockError)
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
