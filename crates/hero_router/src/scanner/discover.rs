//! Walks the socket root: which directories are services, which files are their sockets.
//!
//! Only directory entries are read here (`readdir` plus the entry's own type, which never
//! follows a symlink). Nothing is opened, probed or changed.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// The directory the router keeps its own sockets in.
pub const OWN_SERVICE: &str = "hero_router";

/// One socket candidate: a `*.sock` entry directly inside a service directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketPath {
    /// The file stem: `rpc`, `admin`, `web_<name>`, …
    pub kind: String,
    /// Full path.
    pub path: PathBuf,
}

/// A top-level entry that is not a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ignored {
    /// Full path.
    pub path: String,
    /// Why it is not a service.
    pub reason: String,
}

/// What one walk of the root found.
#[derive(Debug, Default, Clone)]
pub struct Discovered {
    /// Service name → its socket candidates, sorted by kind.
    pub services: BTreeMap<String, Vec<SocketPath>>,
    /// Entries that are not services.
    pub ignored: Vec<Ignored>,
    /// Service directories holding files a reaper moved aside (`.<name>.reap-<pid>-<n>`).
    pub staged: Vec<PathBuf>,
}

/// True if `name` is a valid service name: `^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`.
pub fn valid_service_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')
}

/// Walks the whole root.
pub fn discover(root: &Path) -> io::Result<Discovered> {
    let mut out = Discovered::default();
    for entry in fs::read_dir(root)? {
        let entry = entry?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            out.ignored.push(ignored(&path, "name is not UTF-8"));
            continue;
        };
        let ft = entry.file_type()?;
        if !valid_service_name(&name) {
            out.ignored.push(ignored(&path, "invalid service name"));
        } else if ft.is_symlink() {
            out.ignored.push(ignored(&path, "symlink (never followed)"));
        } else if !ft.is_dir() {
            out.ignored.push(ignored(&path, "not a directory"));
        } else {
            let (sockets, staged) = list_sockets(&path)?;
            if staged {
                out.staged.push(path);
            }
            out.services.insert(name, sockets);
        }
    }
    out.ignored.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Lists the `*.sock` entries of one service directory. `Ok(None)` if the directory is gone or
/// is no longer a real directory.
pub fn discover_service(root: &Path, name: &str) -> io::Result<Option<Vec<SocketPath>>> {
    let dir = root.join(name);
    match fs::symlink_metadata(&dir) {
        Ok(md) if md.is_dir() => {}
        Ok(_) => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    }
    match list_sockets(&dir) {
        Ok((s, _)) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The `*.sock` entries of a directory, and whether it also holds staged reap files.
fn list_sockets(dir: &Path) -> io::Result<(Vec<SocketPath>, bool)> {
    let mut out = Vec::new();
    let mut staged = false;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str() else {
            continue;
        };
        staged |= name.starts_with('.') && name.contains(".reap-");
        let Some(kind) = name.strip_suffix(".sock") else {
            continue;
        };
        if kind.is_empty() {
            continue;
        }
        out.push(SocketPath {
            kind: kind.to_owned(),
            path: entry.path(),
        });
    }
    out.sort_by(|a, b| a.kind.cmp(&b.kind));
    Ok((out, staged))
}

fn ignored(path: &Path, reason: &str) -> Ignored {
    Ignored {
        path: path.display().to_string(),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names() {
        for ok in ["a", "hero_proc", "A-1", "x".repeat(64).as_str(), "9lives"] {
            assert!(valid_service_name(ok), "{ok}");
        }
        for bad in [
            "",
            "_x",
            "-x",
            ".hidden",
            "a b",
            "a.b",
            "é",
            "x".repeat(65).as_str(),
            "..",
        ] {
            assert!(!valid_service_name(bad), "{bad}");
        }
    }

    #[test]
    fn walk_classifies_entries() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        fs::create_dir(r.join("svc")).unwrap();
        fs::write(r.join("svc/rpc.sock"), b"").unwrap();
        fs::write(r.join("svc/rpc.sock.lock"), b"").unwrap();
        fs::write(r.join("svc/.rpc.sock.reap-1-0"), b"").unwrap();
        fs::write(r.join("svc/.sock"), b"").unwrap();
        fs::write(r.join("svc/notes.txt"), b"").unwrap();
        fs::create_dir(r.join("svc/web_docs.sock")).unwrap();
        fs::create_dir(r.join("bad name")).unwrap();
        fs::write(r.join("plain"), b"").unwrap();
        std::os::unix::fs::symlink("/", r.join("link")).unwrap();

        let d = discover(r).unwrap();
        let kinds: Vec<_> = d.services["svc"].iter().map(|s| s.kind.as_str()).collect();
        assert_eq!(kinds, ["rpc", "web_docs"]);
        assert_eq!(d.services.len(), 1);
        let reasons: Vec<_> = d.ignored.iter().map(|i| i.reason.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "invalid service name",
                "symlink (never followed)",
                "not a directory"
            ]
        );
        assert_eq!(discover_service(r, "link").unwrap(), None);
        assert_eq!(discover_service(r, "gone").unwrap(), None);
    }
}
