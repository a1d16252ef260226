//! The access file: reading it, editing it atomically (`hero_router access …`), and reloading
//! it into a running router when it changes.
//!
//! Edits keep comments and blank lines, refuse a file that already has a bad line (the router
//! would refuse it too), and replace the file in one `rename`: the router never reads half a
//! file. Each edit holds an exclusive `flock` on `.<name>.lock` beside the file from its read to
//! its rename, so two editors at the same instant both get their change.

use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ipnet::IpNet;
use notify::Watcher as _;
use tokio::sync::mpsc;
use tokio::time::Duration;
use tokio_util::sync::CancellationToken;

use super::{Access, BadEntry, BadLine, entry_of_line, parse_entry, parse_file};
use crate::config::{ENV_HOME, Env};

/// The access file below `$HOME`.
pub const DEFAULT_IN_HOME: &str = "hero/cfg/hero_router/access.txt";
/// How often a running router looks at the file even without a watch event (the directory
/// may not exist yet, or the watch may miss a change on some file systems).
pub const POLL_EVERY: Duration = Duration::from_secs(5);

/// Why the access file cannot be used or edited.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
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
    /// `remove` of an entry the file does not have.
    #[error("{entry} is not in the access file {path}", path = .path.display())]
    NotPresent {
        /// The entry as given.
        entry: String,
        /// The file.
        path: PathBuf,
    },
}

/// What an edit did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edited {
    /// The entry was added.
    Added,
    /// The file already allowed exactly this network; nothing was written.
    AlreadyPresent,
    /// This many lines were removed.
    Removed(usize),
}

/// `--access-file`'s default: `$HOME/hero/cfg/hero_router/access.txt`.
pub fn default_path(env: &impl Env) -> Option<PathBuf> {
    env.get(ENV_HOME)
        .map(|home| PathBuf::from(home).join(DEFAULT_IN_HOME))
}

/// The file's entries; a missing file has none.
pub fn load(path: &Path) -> Result<Vec<IpNet>, FileError> {
    let text = read(path)?;
    parse_file(&text).map_err(|error| FileError::Invalid {
        path: path.to_owned(),
        error,
    })
}

/// The file's entry lines as written, without comments.
pub fn list(path: &Path) -> Result<Vec<String>, FileError> {
    load(path)?;
    let text = read(path)?;
    Ok(text
        .lines()
        .filter_map(entry_of_line)
        .map(str::to_owned)
        .collect())
}

/// Adds `entry` (validated first) unless the file already has that network.
pub fn add(path: &Path, entry: &str) -> Result<Edited, FileError> {
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

/// Removes every line whose entry is the same network as `entry`.
pub fn remove(path: &Path, entry: &str) -> Result<Edited, FileError> {
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
    write_atomically(path, &joined(&kept))?;
    Ok(Edited::Removed(gone.len()))
}

/// Removes every entry (comment lines stay): everyone is allowed again, unless `--allow`
/// flags say otherwise.
pub fn clear(path: &Path) -> Result<Edited, FileError> {
    let _lock = EditLock::take(path, false)?;
    let text = read(path)?;
    let (gone, kept): (Vec<&str>, Vec<&str>) =
        text.lines().partition(|line| entry_of_line(line).is_some());
    if !gone.is_empty() {
        write_atomically(path, &joined(&kept))?;
    }
    Ok(Edited::Removed(gone.len()))
}

/// An exclusive `flock` on `.<name>.lock` beside the access file, held from an edit's read to
/// its rename; released when dropped.
struct EditLock {
    /// Held for its lock: closing it releases the lock.
    _file: Option<fs::File>,
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
            return Ok(EditLock { _file: None });
        }
        let lock = dir.join(format!(".{}.lock", file_name(path)));
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(lock)
            .map_err(io_err)?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| io_err(e.into()))?;
        Ok(EditLock { _file: Some(file) })
    }
}

/// The directory the access file is in.
fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// The access file's name, for the names of its temporary and lock files.
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

fn read(path: &Path) -> Result<String, FileError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
        Err(error) => Err(FileError::Io {
            action: "read",
            path: path.to_owned(),
            error,
        }),
    }
}

/// Writes `text` to a temporary file beside `path` (same mode as the old file, else 0644),
/// syncs it, and renames it over `path`; creates the directory if needed.
fn write_atomically(path: &Path, text: &str) -> Result<(), FileError> {
    let io_err = |error| FileError::Io {
        action: "write",
        path: path.to_owned(),
        error,
    };
    let dir = parent(path);
    fs::create_dir_all(dir).map_err(io_err)?;
    let tmp = dir.join(format!(".{}.{}.tmp", file_name(path), std::process::id()));
    let mode = fs::metadata(path).map_or(0o644, |m| m.permissions().mode() & 0o7777);
    let written = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        // The rename itself is durable once the directory is synced.
        fs::File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written.map_err(io_err)
}

/// What identifies one version of the file: a new inode (a rename), a new size or mtime.
fn identity(path: &Path) -> Option<(u64, u64, i64, i64, u64)> {
    let m = fs::metadata(path).ok()?;
    Some((m.dev(), m.ino(), m.mtime(), m.mtime_nsec(), m.size()))
}

/// Reloads `path` into `access` whenever it changes, until `token` is cancelled: on a watch
/// event in its directory, and every [`POLL_EVERY`]. A file that turns invalid is reported
/// once per change and the last good list stays in force; a removed file allows everyone
/// (unless `--allow` flags say otherwise), as a missing one does at start-up.
pub async fn watch(path: PathBuf, access: Arc<Access>, token: CancellationToken) {
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let mut watcher: Option<notify::RecommendedWatcher> = None;
    let mut seen = identity(&path);
    let mut tick = tokio::time::interval(POLL_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if watcher.is_none() {
            watcher = start_watch(&path, tx.clone());
        }
        tokio::select! {
            () = token.cancelled() => return,
            _ = tick.tick() => {}
            Some(()) = rx.recv() => while rx.try_recv().is_ok() {},
        }
        let now = identity(&path);
        if now == seen {
            continue;
        }
        seen = now;
        match load(&path) {
            Ok(nets) => {
                tracing::info!(
                    file = %path.display(),
                    entries = nets.len(),
                    "access file reloaded"
                );
                access.set_file(nets);
            }
            Err(e) => tracing::error!("{e}; the previous allow-list stays in force"),
        }
    }
}

/// A watch on the file's directory, reporting any event about the file; `None` while the
/// directory does not exist.
fn start_watch(path: &Path, tx: mpsc::UnboundedSender<()>) -> Option<notify::RecommendedWatcher> {
    let dir = path.parent()?.to_owned();
    let name = path.file_name()?.to_owned();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            if event.paths.iter().any(|p| p.file_name() == Some(&name)) {
                let _ = tx.send(());
            }
        }
    })
    .ok()?;
    watcher
        .watch(&dir, notify::RecursiveMode::NonRecursive)
        .ok()?;
    Some(watcher)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_keep_comments_and_are_validated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cfg/hero_router/access.txt");
        assert_eq!(list(&path).unwrap(), Vec::<String>::new());
        assert_eq!(add(&path, "10.0.0.0/8").unwrap(), Edited::Added);
        assert_eq!(add(&path, "10.1.0.0/8").unwrap(), Edited::AlreadyPresent);
        assert_eq!(add(&path, " mycelium ").unwrap(), Edited::Added);
        assert!(matches!(
            add(&path, "10.0.0.300"),
            Err(FileError::BadEntry(_))
        ));
        let text = fs::read_to_string(&path).unwrap();
        fs::write(&path, format!("# the node's peers\n{text}")).unwrap();
        assert_eq!(list(&path).unwrap(), ["10.0.0.0/8", "mycelium"]);
        assert_eq!(remove(&path, "400::/7").unwrap(), Edited::Removed(1));
        assert!(matches!(
            remove(&path, "192.0.2.1"),
            Err(FileError::NotPresent { .. })
        ));
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "# the node's peers\n10.0.0.0/8\n"
        );
        assert_eq!(clear(&path).unwrap(), Edited::Removed(1));
        assert_eq!(fs::read_to_string(&path).unwrap(), "# the node's peers\n");
        // No temporary file is left behind: the file and its edit lock.
        let mut names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, [".access.txt.lock", "access.txt"]);
    }

    #[test]
    fn editors_at_the_same_instant_all_get_their_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cfg/access.txt");
        let start = std::sync::Barrier::new(8);
        std::thread::scope(|s| {
            for t in 0..8 {
                let (path, start) = (&path, &start);
                s.spawn(move || {
                    start.wait();
                    for i in 0..10 {
                        assert_eq!(add(path, &format!("10.0.{t}.{i}")).unwrap(), Edited::Added);
                    }
                    assert_eq!(
                        remove(path, &format!("10.0.{t}.0")).unwrap(),
                        Edited::Removed(1)
                    );
                });
            }
        });
        let entries = list(&path).unwrap();
        assert_eq!(entries.len(), 8 * 9, "{entries:?}");
        for t in 0..8 {
            for i in 1..10 {
                assert!(
                    entries.contains(&format!("10.0.{t}.{i}")),
                    "10.0.{t}.{i} lost"
                );
            }
        }
    }

    #[test]
    fn removing_from_a_missing_directory_makes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("none/access.txt");
        assert_eq!(clear(&path).unwrap(), Edited::Removed(0));
        assert!(matches!(
            remove(&path, "10.0.0.1"),
            Err(FileError::NotPresent { .. })
        ));
        assert!(!dir.path().join("none").exists());
    }

    #[test]
    fn a_bad_file_is_not_edited() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.txt");
        fs::write(&path, "10.0.0.1\nbogus\n").unwrap();
        let e = add(&path, "10.0.0.2").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "10.0.0.1\nbogus\n");
        assert!(load(&path).is_err());
    }
}
