//! Where the Hero socket root is: `--socket-dir`, else `$HERO_SOCKET_DIR`, else `$PATH_SOCKET`,
//! else `$HOME/hero/var/sockets`.
//!
//! One rule for every binary that binds or scans sockets (hero_router, the example service,
//! any Hero service built on this crate), so that a router and a service started with the same
//! environment always meet in the same directory. The environment is read through [`Env`], so
//! tests pass a map instead of mutating the process environment.

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// `$HERO_SOCKET_DIR`: the socket root.
pub const ENV_SOCKET_DIR: &str = "HERO_SOCKET_DIR";
/// `$PATH_SOCKET`: the older name of the socket root, still read after `$HERO_SOCKET_DIR`.
pub const ENV_PATH_SOCKET: &str = "PATH_SOCKET";
/// `$HOME`, for the default root.
pub const ENV_HOME: &str = "HOME";
/// The default root, below `$HOME`.
pub const DEFAULT_ROOT_IN_HOME: &str = "hero/var/sockets";

/// A source of environment variables.
pub trait Env {
    /// The value of `key`, if set and not empty.
    fn get(&self, key: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

/// Neither a flag, nor `$HERO_SOCKET_DIR`, `$PATH_SOCKET` or `$HOME` says where the root is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "no socket root: pass --socket-dir or set {ENV_SOCKET_DIR} (HOME is not set either, so \
     the default $HOME/{DEFAULT_ROOT_IN_HOME} cannot be used)"
)]
pub struct NoRootError;

// === impl Env ===

impl Env for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok().filter(|v| !v.is_empty())
    }
}

impl Env for HashMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        HashMap::get(self, key).filter(|v| !v.is_empty()).cloned()
    }
}

/// The socket root: `flag` (`--socket-dir`), else `$HERO_SOCKET_DIR`, else `$PATH_SOCKET`, else
/// `$HOME/hero/var/sockets`. An empty variable counts as unset.
pub fn resolve_root(flag: Option<PathBuf>, env: &impl Env) -> Result<PathBuf, NoRootError> {
    if let Some(dir) = flag {
        return Ok(dir);
    }
    if let Some(dir) = env.get(ENV_SOCKET_DIR).or_else(|| env.get(ENV_PATH_SOCKET)) {
        return Ok(PathBuf::from(dir));
    }
    let home = env.get(ENV_HOME).ok_or(NoRootError)?;
    Ok(PathBuf::from(home).join(DEFAULT_ROOT_IN_HOME))
}

/// Creates the socket root with mode 0755 if it does not exist, and checks that it is a
/// directory. The error names the root.
pub fn create_root(root: &Path) -> io::Result<()> {
    let named = |what: &str, e: io::Error| {
        io::Error::new(
            e.kind(),
            format!("cannot {what} socket root {}: {e}", root.display()),
        )
    };
    match std::fs::metadata(root) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            format!("socket root {} is not a directory", root.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // A symlink to nothing: creating would fail with "File exists", which says
            // nothing.
            if let Ok(target) = std::fs::read_link(root) {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "socket root {} is a symlink to {}, which does not exist",
                        root.display(),
                        target.display()
                    ),
                ));
            }
            std::fs::create_dir_all(root).map_err(|e| named("create", e))?;
            std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| named("set the mode of", e))
        }
        // It may well exist: a directory on the way that cannot be searched, a symlink loop.
        Err(e) => Err(named("reach", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_dangling_symlink_root_is_named_as_one() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &root).unwrap();
        let e = create_root(&root).unwrap_err().to_string();
        assert!(
            e.contains("is a symlink to") && e.contains("nowhere") && e.contains("does not exist"),
            "{e}"
        );
        // A symlink loop is named as one, not as a symlink to nothing.
        let looped = dir.path().join("loop");
        std::os::unix::fs::symlink(&looped, &looped).unwrap();
        let e = create_root(&looped).unwrap_err().to_string();
        assert!(
            e.contains("cannot reach socket root") && !e.contains("does not exist"),
            "{e}"
        );
        // A symlink to a directory is a root like any other.
        std::fs::create_dir(dir.path().join("nowhere")).unwrap();
        create_root(&root).unwrap();
    }

    #[test]
    fn resolution_order() {
        let all = env(&[
            ("HERO_SOCKET_DIR", "/a"),
            ("PATH_SOCKET", "/b"),
            ("HOME", "/h"),
        ]);
        assert_eq!(
            resolve_root(Some("/flag".into()), &all),
            Ok(PathBuf::from("/flag"))
        );
        assert_eq!(resolve_root(None, &all), Ok(PathBuf::from("/a")));
        let no_hero = env(&[
            ("HERO_SOCKET_DIR", ""),
            ("PATH_SOCKET", "/b"),
            ("HOME", "/h"),
        ]);
        assert_eq!(resolve_root(None, &no_hero), Ok(PathBuf::from("/b")));
        assert_eq!(
            resolve_root(None, &env(&[("HOME", "/h")])),
            Ok(PathBuf::from("/h/hero/var/sockets"))
        );
        assert_eq!(resolve_root(None, &env(&[("HOME", "")])), Err(NoRootError));
        assert_eq!(resolve_root(None, &env(&[])), Err(NoRootError));
    }

    #[test]
    fn the_error_says_what_to_do() {
        let msg = NoRootError.to_string();
        assert!(
            msg.contains("--socket-dir") && msg.contains("HERO_SOCKET_DIR"),
            "{msg}"
        );
    }
}
