//! Removing one stale socket without ever removing a live one (rules 4–6 of
//! docs/sockets-and-reaping.md#reap-rules).
//!
//! [`reap`] runs only for a record that [`super::state::reap_check`] cleared, and after the
//! hero_proc guard. In order:
//!
//! 1. **Owner lock.** If `<sock>.lock` exists it must be free; we then hold it until we are done,
//!    so no cooperative owner can bind the path under us.
//! 2. **Re-check.** With the lock held: `lstat` must show the same file (dev, ino, ctime ns) as at
//!    the first refusal, a fresh connect must still be refused, and the kernel's socket table
//!    (`sock_diag`) must show no socket bound to the file: a service between `bind()` and
//!    `listen()` refuses connections exactly like a dead one, but its socket is bound. Then one
//!    more `lstat`: the socket table of a busy host takes milliseconds to read, and a socket
//!    bound at the path meanwhile must not be moved at all.
//! 3. **Rename aside.** `renameat2(RENAME_NOREPLACE)` moves whatever is at the path *now* to a
//!    private name in the same directory. From here on we only touch the private name, so a
//!    socket bound at the path after this instant is never ours to touch.
//! 4. **Verify.** The private name must hold the very inode we judged (same dev, ino and birth
//!    time; a rename changes ctime but not birth time), it must still refuse connections, and no
//!    kernel socket may be bound to it. If not, it was a live or new socket that raced in
//!    between steps 2 and 3: it is renamed back with `RENAME_NOREPLACE`. It was unreachable for
//!    a few microseconds (the checks that send a new socket back come first, the socket table
//!    last); its inode never changed. If it passes, it is dead for good: `bind()`
//!    never attaches to an existing file, so no process can ever make this inode live again.
//! 5. **Unlink** the private name.
//!
//! ENOENT at any step means somebody else removed the file: that is success. Every directory
//! operation is relative to a directory fd opened with `O_NOFOLLOW`, so a service directory
//! swapped for a symlink mid-way cannot lead us outside the root.
//!
//! The [`ReapHook`] is a test seam: it runs between the steps so a test can re-bind, remove or
//! replace the file at exactly that point, every time.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hero_socket::{
    BoundSockets, ConnectOutcome, FileKind, Identity, OwnerLock, Stat, TryLock, connect_probe,
    stat_at,
};
use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags, open, renameat_with, unlinkat};
use rustix::io::Errno;

use crate::registry::state::SkipReason;

/// The points between the removal steps where a [`ReapHook`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReapStep {
    /// After the checks under the lock (identity, re-probe, socket table), before the last
    /// look at the path.
    Checked,
    /// After the last look at the path, before the rename aside.
    BeforeRename,
    /// After the rename aside, before verifying the staged file.
    AfterRename,
    /// After verifying, before unlinking the staged file.
    BeforeUnlink,
}

/// A test seam called at each [`ReapStep`] with the socket path and the staged path.
pub(crate) type ReapHook = Arc<dyn Fn(ReapStep, &Path, &Path) + Send + Sync>;

/// How one reap attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReapOutcome {
    /// We removed the stale socket.
    Reaped,
    /// The file vanished on its own at some step (ENOENT). Success.
    AlreadyGone,
    /// A rule said no; nothing was removed.
    Skipped(SkipReason),
    /// The owner's lock file could not be opened or locked (rule 4 cannot be checked): why.
    LockFailed(String),
    /// A syscall failed in a way we do not expect; nothing live was removed.
    Failed(String),
}

// === impl ReapOutcome ===

/// Tries to remove the stale socket at `path`, which was first refused as `expected`.
pub(crate) fn reap(path: &Path, expected: Identity, hook: Option<&ReapHook>) -> ReapOutcome {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return ReapOutcome::Failed(format!("{} has no parent directory", path.display()));
    };
    let name = Path::new(name);
    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let dirfd = match open(dir, dir_flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return ReapOutcome::AlreadyGone,
        Err(e) => return ReapOutcome::Failed(format!("open {}: {e}", dir.display())),
    };

    // Rule 4: the lock, held until this function returns.
    let lock = match OwnerLock::try_existing(path) {
        Ok(TryLock::Acquired(lock)) => Some(lock),
        Ok(TryLock::NoLockFile) => None,
        Ok(TryLock::Held) => return ReapOutcome::Skipped(SkipReason::OwnerLocked),
        Err(e) => {
            let lock = hero_socket::lock_path(path);
            return ReapOutcome::LockFailed(format!("lock {}: {e}", lock.display()));
        }
    };

    // Rules 3 and 5 once more, under the lock.
    let before = match stat_at(&dirfd, name) {
        Ok(st) => st,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return ReapOutcome::AlreadyGone,
        Err(e) => return ReapOutcome::Failed(format!("stat {}: {e}", path.display())),
    };
    if before.kind != FileKind::Socket || before.identity != expected {
        return ReapOutcome::Skipped(SkipReason::IdentityChanged);
    }
    match connect_probe(&reachable(&dirfd, name, path)) {
        ConnectOutcome::Refused => {}
        ConnectOutcome::Missing => return ReapOutcome::AlreadyGone,
        _ => return ReapOutcome::Skipped(SkipReason::Reprobe),
    }
    // Without the kernel's socket table only the grace period protects a socket between
    // bind() and listen(); the other checks still hold.
    let diag = BoundSockets::query().ok();
    if diag.as_ref().is_some_and(|d| d.is_bound(&before.identity)) {
        return ReapOutcome::Skipped(SkipReason::Bound);
    }
    if before.btime_ns.is_none() && lock.is_none() && diag.is_none() {
        return ReapOutcome::Skipped(SkipReason::Unverifiable);
    }

    // Rule 6: rename aside, verify, unlink.
    let staged = staged_name(name);
    let staged_path = dir.join(&staged);
    let call = |step| {
        if let Some(hook) = hook {
            hook(step, path, &staged_path);
        }
    };
    call(ReapStep::Checked);
    // The checks take time (the socket table of a busy host is read in milliseconds): a
    // socket bound at the path meanwhile is seen here, before anything moves, rather than
    // moved aside and back (out of sight meanwhile, and another binder could take the path).
    match stat_at(&dirfd, name) {
        Ok(now) if now.kind == FileKind::Socket && now.identity == before.identity => {}
        Ok(_) => return ReapOutcome::Skipped(SkipReason::IdentityChanged),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return ReapOutcome::AlreadyGone,
        Err(e) => return ReapOutcome::Failed(format!("stat {}: {e}", path.display())),
    }
    call(ReapStep::BeforeRename);
    match renameat_with(&dirfd, name, &dirfd, &staged, RenameFlags::NOREPLACE) {
        Ok(()) => {}
        Err(Errno::NOENT) => return ReapOutcome::AlreadyGone,
        Err(e) => return ReapOutcome::Failed(format!("rename {} aside: {e}", path.display())),
    }
    call(ReapStep::AfterRename);
    match verify(&dirfd, &staged, &staged_path, &before, lock.is_some()) {
        Verdict::Gone => return ReapOutcome::AlreadyGone,
        Verdict::Stale => {}
        Verdict::Other(reason) => return restore(&dirfd, &staged, name, &staged_path, reason),
    }
    call(ReapStep::BeforeUnlink);
    match unlinkat(&dirfd, &staged, AtFlags::empty()) {
        Ok(()) => ReapOutcome::Reaped,
        Err(Errno::NOENT) => ReapOutcome::AlreadyGone,
        Err(e) => ReapOutcome::Failed(format!("unlink {}: {e}", staged_path.display())),
    }
}

enum Verdict {
    Gone,
    Stale,
    Other(SkipReason),
}

fn verify(
    dirfd: &OwnedFd,
    staged: &Path,
    staged_path: &Path,
    before: &Stat,
    locked: bool,
) -> Verdict {
    let after = match stat_at(dirfd, staged) {
        Ok(st) => st,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Verdict::Gone,
        Err(_) => return Verdict::Other(SkipReason::Unverifiable),
    };
    // The cheap checks first: what they send back goes back within microseconds (a socket
    // bound at the path just before the rename, moved aside with it).
    let same_inode =
        before.identity.dev == after.identity.dev && before.identity.ino == after.identity.ino;
    if !same_inode || before.same_instance(&after) == Some(false) {
        return Verdict::Other(SkipReason::Restored);
    }
    match connect_probe(&reachable(dirfd, staged, staged_path)) {
        ConnectOutcome::Refused => {}
        ConnectOutcome::Missing => return Verdict::Gone,
        _ => return Verdict::Other(SkipReason::Restored),
    }
    let diag = BoundSockets::query().ok();
    // Without birth time, the owner lock (nobody could re-bind) or the socket table (nothing
    // bound to it is ever live again) must vouch for the inode.
    let same = before
        .same_instance(&after)
        .unwrap_or(locked || diag.is_some());
    if !same || diag.is_some_and(|d| d.is_bound(&after.identity)) {
        return Verdict::Other(SkipReason::Restored);
    }
    Verdict::Stale
}

fn restore(
    dirfd: &OwnedFd,
    staged: &Path,
    name: &Path,
    staged_path: &Path,
    reason: SkipReason,
) -> ReapOutcome {
    match renameat_with(dirfd, staged, dirfd, name, RenameFlags::NOREPLACE) {
        Ok(()) => ReapOutcome::Skipped(reason),
        Err(Errno::NOENT) => ReapOutcome::Skipped(reason),
        // The path was bound again meanwhile; the newer socket keeps it and the one we moved
        // stays under its private name: never unlink what might be live.
        Err(e) => ReapOutcome::Failed(format!(
            "the socket moved aside may be live, and its path was bound again meanwhile, so it could not go back ({e}): it stays at {} and is never unlinked",
            staged_path.display()
        )),
    }
}

/// A private name in the same directory; it does not end in `.sock`, so discovery skips it.
fn staged_name(name: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    PathBuf::from(format!(
        ".{}.reap-{}-{n}",
        name.display(),
        std::process::id()
    ))
}

/// A path that reaches `name` inside the open directory, even if the directory's own path has
/// been swapped since: `/proc/self/fd/<dirfd>/<name>` where `/proc` is mounted and the result
/// fits a `sockaddr_un`, else the plain path.
fn reachable(dirfd: &OwnedFd, name: &Path, fallback: &Path) -> PathBuf {
    let via = PathBuf::from(format!("/proc/self/fd/{}", dirfd.as_raw_fd())).join(name);
    if via.as_os_str().len() < 108 && Path::new("/proc/self/fd").is_dir() {
        via
    } else {
        fallback.to_path_buf()
    }
}

#[cfg(test)]
mod tests;

/// What [`recover_staged`] did with one staged file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Recovered {
    /// It was live (or bound) and is back under its name.
    Restored(PathBuf),
    /// It was dead and is gone.
    Removed(PathBuf),
    /// Left alone: its reaper is still running, it is not a socket, or its name is taken.
    Kept(PathBuf, &'static str),
}

/// Finishes removals that a crashed reaper left half-done in `dir`: a staged file
/// (`.<name>.reap-<pid>-<n>`) whose reaper process is gone is put back under `<name>` if a
/// socket is bound to it, or unlinked if it is dead (refused and bound to nothing).
pub(crate) fn recover_staged(dir: &Path) -> Vec<Recovered> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some((original, pid)) = file_name.to_str().and_then(parse_staged) else {
            continue;
        };
        let staged = entry.path();
        if reaper_alive(pid) {
            out.push(Recovered::Kept(staged, "reaper still running"));
            continue;
        }
        out.push(recover_one(dir, &staged, &original));
    }
    out
}

fn recover_one(dir: &Path, staged: &Path, original: &str) -> Recovered {
    let Ok(st) = hero_socket::stat_nofollow(staged) else {
        return Recovered::Kept(staged.to_path_buf(), "cannot stat");
    };
    if st.kind != FileKind::Socket {
        return Recovered::Kept(staged.to_path_buf(), "not a socket");
    }
    let bound = BoundSockets::query().map(|b| b.is_bound(&st.identity));
    let refused = connect_probe(staged) == ConnectOutcome::Refused;
    match (bound, refused) {
        (Ok(false), true) => match std::fs::remove_file(staged) {
            Ok(()) => Recovered::Removed(staged.to_path_buf()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Recovered::Removed(staged.to_path_buf())
            }
            Err(_) => Recovered::Kept(staged.to_path_buf(), "cannot remove"),
        },
        // Live, bound, or unknown: it may be somebody's socket. Put it back where it belongs.
        _ => match renameat_with(
            rustix::fs::CWD,
            staged,
            rustix::fs::CWD,
            dir.join(original),
            RenameFlags::NOREPLACE,
        ) {
            Ok(()) => Recovered::Restored(dir.join(original)),
            Err(_) => Recovered::Kept(staged.to_path_buf(), "its name is taken"),
        },
    }
}

/// `.<name>.reap-<pid>-<n>` → (`<name>`, pid).
fn parse_staged(name: &str) -> Option<(String, u32)> {
    let rest = name.strip_prefix('.')?;
    let (original, tail) = rest.rsplit_once(".reap-")?;
    let (pid, n) = tail.split_once('-')?;
    if original.is_empty()
        || !original.ends_with(".sock")
        || n.is_empty()
        || !n.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    Some((original.to_owned(), pid.parse().ok()?))
}

/// True if a process with this pid may still be reaping (we cannot tell a reused pid apart,
/// so any live process counts).
fn reaper_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        // Our own reaps run one at a time and finish before the next scan.
        return false;
    }
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    !matches!(rustix::process::test_kill_process(pid), Err(Errno::SRCH))
}
