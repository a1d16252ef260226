//! The access file: reading it, editing it atomically (`hero_router access …`), and reloading
//! it into a running router when it changes.
//!
//! Edits keep comments and blank lines, refuse a file that already has a bad line (the router
//! would refuse it too), and replace the file in one `rename` of a fresh temporary file
//! ([`crate::safe_write`]): the router never reads half a file, and no symlink is written
//! through. Each edit holds an exclusive `flock` on `.<name>.lock` beside the file from its read
//! to its rename, so two editors at the same instant both get their change. An edit that would
//! leave the file with no entries, which allows every client, is refused unless confirmed
//! ([`Emptying`]).
//!
//! The watcher applies the file's entries as they change, except that an empty or vanished
//! file replaces a non-empty list only once it has stayed so for [`super::guard::EMPTY_GRACE`]
//! (see [`super::guard`]).

use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ipnet::IpNet;
use notify::Watcher as _;
use rustix::fs::{Mode, OFlags};
use tokio::sync::mpsc;
use tokio::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use super::guard::{self, Guard, Look, Step};
use super::{Access, BadEntry, BadLine, entry_of_line, parse_entry, parse_file};
use hero_socket::root::{ENV_HOME, Env};

/// The access file below `$HOME`.
pub(crate) const DEFAULT_IN_HOME: &str = "hero/cfg/hero_router/access.txt";
/// How often a running router looks at the file even without a watch event (the directory
/// may not exist yet, or the watch may miss a change on some file systems).
pub(crate) const POLL_EVERY: Duration = Duration::from_secs(5);

/// When entries `new`, read from a file that last changed at `changed_at`, may replace the
/// list in force, `current`: now (`None`) if they let no one in who is not in already, else
/// once the file has been still for `settle` (the emptiness grace: an editor's save is over by
/// then). A file written in place, in pieces, can end a piece mid-line (`127.0.0.0/3` of
/// `127.0.0.0/30`: a network nobody wrote); a change that only shuts clients out applies at
/// once.
pub(crate) fn settles_at(
    current: &super::AllowList,
    new: &[IpNet],
    changed_at: Instant,
    now: Instant,
    settle: Duration,
) -> Option<Instant> {
    let until = changed_at + settle;
    (now < until && !current.covers(new)).then_some(until)
}

/// Why the access file cannot be used or edited.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FileError {
    /// It cannot be read or written.
    #[error("cannot {action} the access file {path}: {error}", path = .path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        error: io::Error,
    },
    /// A line of it is not an entry.
    #[error("the access file {path} is not valid: {error}", path = .path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The bad line.
        error: BadLine,
    },
    /// An entry given on the command line is not an entry (a usage error).
    #[error("{0}")]
    BadEntry(#[from] BadEntry),
    /// The edit lock's name is a symbolic link, which the router does not lock through.
    #[error(
        "{lock} is a symbolic link; the router locks only a file of its own there: remove the link and try again",
        lock = .lock.display()
    )]
    LockIsSymlink {
        /// The lock file's path.
        lock: PathBuf,
    },
    /// `remove` of an entry the file does not have.
    #[error("{entry} is not in the access file {path}", path = .path.display())]
    NotPresent {
        /// The entry as given.
        entry: String,
        /// The file.
        path: PathBuf,
    },
    /// The edit would leave the file with no entries, and was not confirmed ([`Emptying`]);
    /// nothing was written.
    #[error(
        "this would remove {last} of the access file {path}, and a router using it would then allow every client (unless serve has --allow)",
        last = the_last(*.removed),
        path = .path.display()
    )]
    WouldOpen {
        /// How many entries the edit would remove.
        removed: usize,
        /// The file.
        path: PathBuf,
    },
}

/// Whether an edit may leave the file with no entries: an empty list allows every client
/// (unless `serve` has `--allow`), so that takes a confirmation (`--yes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Emptying {
    /// Refuse with [`FileError::WouldOpen`]; nothing is written.
    Refuse,
    /// The operator confirmed it.
    Confirmed,
}

/// What an edit did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Edited {
    /// The entry was added.
    Added,
    /// The file already allowed exactly this network; nothing was written.
    AlreadyPresent,
    /// This many lines were removed.
    Removed(usize),
}

/// `--access-file`'s default: `$HOME/hero/cfg/hero_router/access.txt`.
pub(crate) fn default_path(env: &impl Env) -> Option<PathBuf> {
    env.get(ENV_HOME)
        .map(|home| PathBuf::from(home).join(DEFAULT_IN_HOME))
}

/// The file's entries; a missing file has none.
pub(crate) fn load(path: &Path) -> Result<Vec<IpNet>, FileError> {
    let text = read(path)?;
    parse_file(&text).map_err(|error| FileError::Invalid {
        path: path.to_owned(),
        error,
    })
}

/// The file's entry lines as written, without comments.
pub(crate) fn list(path: &Path) -> Result<Vec<String>, FileError> {
    load(path)?;
    let text = read(path)?;
    Ok(text
        .lines()
        .filter_map(entry_of_line)
        .map(str::to_owned)
        .collect())
}

/// Adds `entry` (validated first) unless the file already has that network.
pub(crate) fn add(path: &Path, entry: &str) -> Result<Edited, FileError> {
    let net = parse_entry(entry)?;
    let _lock = EditLock::take(path, true)?;
    let text = read(path)?;
    check(path, &text)?;
    if text
        .lines()
        .filter_map(entry_of_line)
        .any(|e| parse_entry(e) == Ok(net))
    {
        return Ok(Edited::AlreadyPresent);
    }
    let mut out = text;
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(entry.trim());
    out.push('\n');
    write_atomically(path, &out)?;
    Ok(Edited::Added)
}

/// Removes every line whose entry is the same network as `entry`. Removing the last entries
/// takes [`Emptying::Confirmed`].
pub(crate) fn remove(path: &Path, entry: &str, emptying: Emptying) -> Result<Edited, FileError> {
    let net = parse_entry(entry)?;
    let _lock = EditLock::take(path, false)?;
    let text = read(path)?;
    check(path, &text)?;
    let (gone, kept): (Vec<&str>, Vec<&str>) = text
        .lines()
        .partition(|line| entry_of_line(line).is_some_and(|e| parse_entry(e) == Ok(net)));
    if gone.is_empty() {
        return Err(FileError::NotPresent {
            entry: entry.trim().to_owned(),
            path: path.to_owned(),
        });
    }
    if !kept.iter().any(|line| entry_of_line(line).is_some()) {
        refuse_to_empty(path, gone.len(), emptying)?;
    }
    write_atomically(path, &joined(&kept))?;
    Ok(Edited::Removed(gone.len()))
}

/// Removes every entry (comment lines stay): everyone is allowed again, unless `--allow`
/// flags say otherwise. Clearing a file that has entries takes [`Emptying::Confirmed`].
pub(crate) fn clear(path: &Path, emptying: Emptying) -> Result<Edited, FileError> {
    let _lock = EditLock::take(path, false)?;
    let text = read(path)?;
    let (gone, kept): (Vec<&str>, Vec<&str>) =
        text.lines().partition(|line| entry_of_line(line).is_some());
    if !gone.is_empty() {
        refuse_to_empty(path, gone.len(), emptying)?;
        write_atomically(path, &joined(&kept))?;
    }
    Ok(Edited::Removed(gone.len()))
}

/// "the last entry", "the last 3 entries".
fn the_last(n: usize) -> String {
    match n {
        1 => "the last entry".to_owned(),
        n => format!("the last {n} entries"),
    }
}

/// An edit that would leave no entry, unless confirmed.
fn refuse_to_empty(path: &Path, removed: usize, emptying: Emptying) -> Result<(), FileError> {
    match emptying {
        Emptying::Confirmed => Ok(()),
        Emptying::Refuse => Err(FileError::WouldOpen {
            removed,
            path: path.to_owned(),
        }),
    }
}

/// An exclusive `flock` on `.<name>.lock` beside the access file, held from an edit's read to
/// its rename; released when dropped.
struct EditLock {
    /// Held for its lock: closing it releases the lock.
    _fd: Option<OwnedFd>,
}

impl EditLock {
    /// Waits for the lock. Without `create`, a missing directory means there is no file to
    /// edit, and no lock is needed (nor made).
    fn take(path: &Path, create: bool) -> Result<EditLock, FileError> {
        let io_err = |error| FileError::Io {
            action: "lock",
            path: path.to_owned(),
            error,
        };
        let dir = parent(path);
        if create {
            fs::create_dir_all(dir).map_err(io_err)?;
        } else if !dir.exists() {
            return Ok(EditLock { _fd: None });
        }
        let lock = dir.join(format!(".{}.lock", file_name(path)));
        // O_NOFOLLOW: a symlink planted at the lock's name fails the edit (ELOOP) rather than
        // create or lock a file elsewhere.
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::open(&lock, flags, Mode::from_raw_mode(0o644)).map_err(|e| {
            if e == rustix::io::Errno::LOOP {
                return FileError::LockIsSymlink { lock: lock.clone() };
            }
            io_err(e.into())
        })?;
        use rustix::fs::FlockOperation::{LockExclusive, NonBlockingLockExclusive};
        match rustix::fs::flock(&fd, NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                // Another edit holds it (or a process that hangs): say why nothing happens.
                eprintln!(
                    "waiting for {}: another edit of {} holds it",
                    lock.display(),
                    path.display()
                );
                rustix::fs::flock(&fd, LockExclusive).map_err(|e| io_err(e.into()))?;
            }
            Err(e) => return Err(io_err(e.into())),
        }
        Ok(EditLock { _fd: Some(fd) })
    }
}

/// The directory the access file is in.
fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// The access file's name, for the name of its lock file.
fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(|| "access".into(), |n| n.to_string_lossy().into_owned())
}

fn joined(lines: &[&str]) -> String {
    lines.iter().flat_map(|l| [*l, "\n"]).collect()
}

fn check(path: &Path, text: &str) -> Result<(), FileError> {
    parse_file(text)
        .map(drop)
        .map_err(|error| FileError::Invalid {
            path: path.to_owned(),
            error,
        })
}

/// Largest access file read: two million entries take about 30 MB.
const MAX_FILE: u64 = 64 << 20;

/// The file's text; a missing file is empty. Only a regular file of at most [`MAX_FILE`]
/// bytes is read (a symlink to one is followed): a FIFO would block the reader until a writer
/// came, `/dev/zero` would never end.
fn read(path: &Path) -> Result<String, FileError> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let io_err = |error| FileError::Io {
        action: "read",
        path: path.to_owned(),
        error,
    };
    let file = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => return Err(io_err(e)),
    };
    let meta = file.metadata().map_err(io_err)?;
    if !meta.is_file() {
        return Err(io_err(io::Error::other("it is not a regular file")));
    }
    // Said by its size, without reading it (the read below still stops at the limit, for a
    // file that grows meanwhile).
    if meta.len() > MAX_FILE {
        let why = format!("it is larger than {} MiB", MAX_FILE >> 20);
        return Err(io_err(io::Error::other(why)));
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    if bytes.len() as u64 > MAX_FILE {
        let why = format!("it is larger than {} MiB", MAX_FILE >> 20);
        return Err(io_err(io::Error::other(why)));
    }
    String::from_utf8(bytes)
        .map_err(|e| io_err(io::Error::new(io::ErrorKind::InvalidData, e.utf8_error())))
}

/// Replaces the file with `text` through [`crate::safe_write`] (a fresh temporary file,
/// renamed over it: never a write through a symlink); creates the directory if needed.
fn write_atomically(path: &Path, text: &str) -> Result<(), FileError> {
    let io_err = |error| FileError::Io {
        action: "write",
        path: path.to_owned(),
        error,
    };
    fs::create_dir_all(parent(path)).map_err(io_err)?;
    crate::safe_write::write(path, text.as_bytes()).map_err(io_err)
}

/// What identifies one version of the file: a new inode (a rename), a new size, mtime or
/// ctime (a `chmod` or `chown` that makes it readable changes only the ctime).
fn identity(path: &Path) -> Option<(u64, u64, i64, i64, i64, i64, u64)> {
    let m = fs::metadata(path).ok()?;
    Some((
        m.dev(),
        m.ino(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
        m.size(),
    ))
}

/// Reloads `path` into `access` whenever it changes, until `token` is cancelled: on a watch
/// event in its directory, and every [`POLL_EVERY`]. A file that turns invalid is reported
/// once per change and the last good list stays in force. A file that vanishes or has no
/// entries left replaces non-empty entries only after it has stayed so for
/// [`guard::EMPTY_GRACE`] (one warning when that starts); then every client is allowed (unless
/// `--allow` flags say otherwise), as with a missing file at start-up. A change that lets
/// someone in applies once the file has been still for the same grace ([`settles_at`]); one
/// that only shuts clients out applies at once.
pub(crate) async fn watch(path: PathBuf, access: Arc<Access>, token: CancellationToken) {
    watch_with_grace(path, access, token, guard::EMPTY_GRACE).await;
}

/// [`watch`] with another grace period for emptiness and widening (tests shorten it).
pub(crate) async fn watch_with_grace(
    path: PathBuf,
    access: Arc<Access>,
    token: CancellationToken,
    grace: Duration,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let mut watcher: Option<notify::RecommendedWatcher> = None;
    let mut seen = identity(&path);
    // The last error reported, reported again only when it changes; and whether the file
    // could not be read, which is tried again on every look (a `chmod` may come later, or a
    // file system that does not change the times).
    let mut failing: Option<String> = None;
    let mut unreadable = false;
    // When the file last changed, and the look a widening change waits for.
    let mut changed_at = Instant::now();
    let mut settling: Option<Instant> = None;
    let mut guard = Guard::starting(access.has_file_entries());
    let mut tick = tokio::time::interval(POLL_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if watcher.is_none() {
            watcher = start_watch(&path, tx.clone());
        }
        let deadline = guard.deadline(grace);
        tokio::select! {
            () = token.cancelled() => return,
            _ = tick.tick() => {}
            Some(()) = rx.recv() => while rx.try_recv().is_ok() {},
            () = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)),
                if deadline.is_some() => {}
            () = tokio::time::sleep_until(settling.unwrap_or_else(Instant::now)),
                if settling.is_some() => {}
        }
        let now = identity(&path);
        // While a hold lasts every wake looks at the file: its end is decided by a look.
        if now == seen
            && !unreadable
            && settling.is_none()
            && !matches!(guard, Guard::Holding { .. })
        {
            continue;
        }
        if now != seen {
            changed_at = Instant::now();
        }
        seen = now;
        settling = None;
        // Off the control plane's one worker: a large file takes a while to parse.
        let loaded = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || load(&path))
                .await
                .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
        };
        // Only a permission error is tried again at each look: a FIFO, a device or a file too
        // large is judged again when it changes, like an invalid one.
        unreadable = matches!(
            &loaded,
            Err(FileError::Io { error, .. }) if error.kind() == io::ErrorKind::PermissionDenied
        );
        let look = match &loaded {
            Ok(nets) if nets.is_empty() => Look::Empty,
            Ok(_) => Look::Entries,
            Err(_) => Look::Bad,
        };
        let (step, next) = guard::decide(guard, look, Instant::now(), grace);
        guard = next;
        // A change that would let someone in waits until the file has been still a moment.
        if let (Step::Apply, Ok(nets)) = (&step, &loaded) {
            settling = settles_at(&access.list(), nets, changed_at, Instant::now(), grace);
            if settling.is_some() {
                continue;
            }
        }
        match (step, loaded) {
            (Step::Apply, Ok(nets)) => {
                failing = None;
                tracing::info!(
                    file = %path.display(),
                    entries = nets.len(),
                    "access file reloaded"
                );
                let was_open = access.list().is_open();
                access.set_file(nets);
                if !was_open && access.list().is_open() {
                    tracing::warn!(
                        file = %path.display(),
                        "the access file has no entries: every client is allowed now"
                    );
                }
            }
            (Step::Hold { warn: true, .. }, _) => tracing::warn!(
                file = %path.display(),
                grace = ?grace,
                "the access file is gone or has no entries; its last entries stay in force until it has stayed so for the grace period (an editor's save is not taken for an emptying)"
            ),
            (Step::KeepBad, Err(e)) => {
                let e = e.to_string();
                if failing.as_ref() != Some(&e) {
                    tracing::error!("{e}; the previous allow-list stays in force");
                }
                failing = Some(e);
            }
            // A hold goes on quietly. `Apply` of a bad file and `KeepBad` of a good one do not
            // happen (`decide` applies only a file it could read): they keep the list too.
            (Step::Hold { .. } | Step::Apply | Step::KeepBad, _) => {}
        }
    }
}

/// A watch on the file's directory, reporting any event about the file; `None` while the
/// directory does not exist.
fn start_watch(path: &Path, tx: mpsc::UnboundedSender<()>) -> Option<notify::RecommendedWatcher> {
    let dir = path.parent()?.to_owned();
    let name = path.file_name()?.to_owned();
    let handler = move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            if event.paths.iter().any(|p| p.file_name() == Some(&name)) {
                let _ = tx.send(());
            }
        }
    };
    // Changes and the end of a write; not opens: the loader's own reads would wake it again
    // (while an emptiness hold lasts, every wake reads the file).
    let kinds = notify::EventKindMask::CORE | notify::EventKindMask::ACCESS_CLOSE;
    let config = notify::Config::default().with_event_kinds(kinds);
    let mut watcher = notify::RecommendedWatcher::new(handler, config).ok()?;
    watcher
        .watch(&dir, notify::RecursiveMode::NonRecursive)
        .ok()?;
    Some(watcher)
}

#[cfg(test)]
mod tests;
