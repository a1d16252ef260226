//! Walks the socket root: which directories are services, which files are their sockets.
//!
//! Only directory entries are read here (`readdir` plus the entry's own type, which never
//! follows a symlink). Nothing is opened, probed or changed.
//!
//! Errors are per entry: a service directory that cannot be listed (permissions), that vanished
//! or stopped being a directory since the root was read is reported for that entry alone, and the
//! walk goes on. Only the root itself failing fails the walk.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::registry::names::{Ignored, valid_service_name};

/// Writes the path of `service`'s `kind` socket (`<root>/<service>/<kind>.sock`) into `buf`.
///
/// A walk keeps only the kinds it found, and a probe or a record writes the path when it needs
/// it: a scan of 10,000 sockets held a copy of every path at once (0.6 MB of each scan's peak,
/// measured with heaptrack).
pub(crate) fn socket_path(buf: &mut PathBuf, root: &Path, service: &str, kind: &str) {
    buf.as_mut_os_string().clear();
    buf.push(root);
    buf.push(service);
    buf.push(kind);
    buf.as_mut_os_string().push(".sock");
}

/// A test seam called with each service directory right before it is listed (a test can make
/// one vanish or change between reading the root and reading the directory).
#[cfg_attr(not(any(test, feature = "test-util")), allow(unreachable_pub))]
pub type ListHook = Arc<dyn Fn(&Path) + Send + Sync>;

/// What one walk of the root found.
#[derive(Debug, Default, Clone)]
pub(crate) struct Discovered {
    /// Service name → the kinds of its socket candidates (`*.sock` entries directly inside
    /// its directory), sorted.
    pub services: BTreeMap<String, Vec<String>>,
    /// Service directories that exist but could not be listed → why.
    pub unlisted: BTreeMap<String, String>,
    /// Entries that are not services.
    pub ignored: Vec<Ignored>,
    /// Service directories holding files a reaper moved aside (`.<name>.reap-<pid>-<n>`).
    pub staged: Vec<PathBuf>,
}

/// Walks the whole root. `Err` only if the root itself cannot be read.
pub(crate) fn discover(root: &Path, hook: Option<&ListHook>) -> io::Result<Discovered> {
    let mut out = Discovered::default();
    for entry in fs::read_dir(root)? {
        let entry = entry?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            out.ignored
                .push(ignored(&path, "name is not UTF-8: not a service name"));
            continue;
        };
        let ft = match entry.file_type() {
            Ok(ft) => ft,
            // Gone since the root was read.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                out.ignored
                    .push(ignored(&path, &format!("cannot read its type: {e}")));
                continue;
            }
        };
        if !valid_service_name(&name) {
            out.ignored.push(ignored(&path, "invalid service name"));
        } else if ft.is_symlink() {
            out.ignored.push(ignored(&path, "symlink (never followed)"));
        } else if !ft.is_dir() {
            out.ignored.push(ignored(&path, "not a directory"));
        } else {
            if let Some(hook) = hook {
                hook(&path);
            }
            match list_sockets(&path) {
                Ok(listing) => {
                    for odd in &listing.not_utf8 {
                        out.ignored.push(ignored(
                            odd,
                            "socket name is not UTF-8: never probed or reaped (rename it)",
                        ));
                    }
                    if listing.staged {
                        out.staged.push(path);
                    }
                    out.services.insert(name, listing.kinds);
                }
                // Removed since the root was read: the service is gone.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                // Replaced by something else since the root was read.
                Err(e) if e.kind() == io::ErrorKind::NotADirectory => {
                    out.ignored.push(ignored(&path, "not a directory"));
                }
                Err(e) => {
                    out.unlisted.insert(name, e.kind().to_string());
                }
            }
        }
    }
    out.ignored.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Lists the `*.sock` entries of one service directory. `Ok(None)` if the directory is gone or
/// is no longer a real directory; `Err` if it is there but cannot be listed.
pub(crate) fn discover_service(root: &Path, name: &str) -> io::Result<Option<Vec<String>>> {
    let dir = root.join(name);
    match fs::symlink_metadata(&dir) {
        Ok(md) if md.is_dir() => {}
        Ok(_) => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    }
    match list_sockets(&dir) {
        Ok(listing) => Ok(Some(listing.kinds)),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// What a service directory holds.
struct Listing {
    /// The kinds of its `*.sock` entries, sorted.
    kinds: Vec<String>,
    /// It also holds staged reap files.
    staged: bool,
    /// `*.sock` entries whose names are not UTF-8: no kind can name them, so they are shown
    /// as ignored rather than left unseen.
    not_utf8: Vec<PathBuf>,
}

/// Lists one service directory.
fn list_sockets(dir: &Path) -> io::Result<Listing> {
    use std::os::unix::ffi::OsStrExt;
    let mut out = Vec::new();
    let mut staged = false;
    let mut not_utf8 = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str() else {
            if file_name.as_bytes().ends_with(b".sock") {
                not_utf8.push(entry.path());
            }
            continue;
        };
        staged |= name.starts_with('.') && name.contains(".reap-");
        let Some(kind) = name.strip_suffix(".sock") else {
            continue;
        };
        if kind.is_empty() {
            continue;
        }
        out.push(kind.to_owned());
    }
    out.sort();
    // A pushed-to list has room for four; most services have one socket, and a full scan
    // holds every service's list at once (1.8 MB of spare room at 10,000 services).
    out.shrink_to_fit();
    Ok(Listing {
        kinds: out,
        staged,
        not_utf8,
    })
}

fn ignored(path: &Path, reason: &str) -> Ignored {
    Ignored {
        path: escaped(path),
        reason: reason.to_owned(),
    }
}

/// `path` as text, a byte that is not UTF-8 written `\xFF`: the name can be typed back
/// (`$'\xff'` in a shell) to find the file, where U+FFFD could not.
fn escaped(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt as _;
    let mut out = String::new();
    for chunk in path.as_os_str().as_bytes().utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
