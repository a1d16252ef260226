//! The router's own sockets and its instance lock.
//!
//! - The **instance lock** is an abstract Unix socket (`@hero_router/<hash of the root>`) bound
//!   for the process's life. It is not a file, so nothing done to the root can remove it: a
//!   second `serve` on the same root always finds it taken and exits 1.
//! - `rpc.sock` and `admin.sock` are bound the cooperative way (owner lock, mode 0660). When the
//!   scanner reports the root deleted or replaced, they are bound again in the new root, under
//!   new owner locks, and the old accept loops stop (their connections finish).
//! - At shutdown each is removed only if it is still ours.

use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixListener as StdUnixListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use hero_socket::{BindError, BindOptions, OwnedSocket, SocketGuard};
use tokio::net::UnixListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::ServeError;
use super::listener::{self, AnyListener, App};
use crate::registry::Registry;
use crate::registry::events::{Event, Stamped};
use crate::registry::names::OWN_SERVICE;

/// The abstract-socket lock held while a router serves `root`.
pub(super) struct InstanceLock {
    _socket: StdUnixListener,
}

/// Takes the instance lock of `root` (which must exist): `AlreadyRunning` if another router
/// holds it.
pub(super) fn instance_lock(root: &Path) -> Result<InstanceLock, ServeError> {
    let canonical = std::fs::canonicalize(root)
        .with_context(|| format!("cannot resolve socket root {}", root.display()))?;
    let name = instance_name(&canonical);
    let addr = UnixAddr::from_abstract_name(&name).context("instance lock name")?;
    match StdUnixListener::bind_addr(&addr) {
        Ok(socket) => Ok(InstanceLock { _socket: socket }),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(already_running(root)),
        Err(e) => Err(anyhow::Error::new(e)
            .context("cannot take the instance lock")
            .into()),
    }
}

/// `hero_router/` and two FNV-1a hashes of the canonical root path: stable across builds and
/// versions (a router upgraded in place must still see the old one), far below the 107 bytes
/// an abstract name may have.
fn instance_name(root: &Path) -> Vec<u8> {
    let fnv = |seed: u64| {
        root.as_os_str()
            .as_encoded_bytes()
            .iter()
            .fold(seed, |h, b| {
                (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
            })
    };
    format!(
        "hero_router/{:016x}{:016x}",
        fnv(0xcbf2_9ce4_8422_2325),
        fnv(0x6c62_272e_07bb_0142)
    )
    .into_bytes()
}

fn already_running(root: &Path) -> ServeError {
    ServeError::AlreadyRunning {
        root: root.to_path_buf(),
        rpc: root.join(OWN_SERVICE).join("rpc.sock"),
    }
}

/// Binds `<root>/hero_router/<kind>.sock` the cooperative way.
pub(super) fn own_socket(
    root: &Path,
    kind: &str,
) -> Result<(UnixListener, SocketGuard), ServeError> {
    let path = root.join(OWN_SERVICE).join(format!("{kind}.sock"));
    let opts = BindOptions {
        mode: Some(0o660),
        backlog: 1024,
        lock_wait: Duration::from_millis(300),
    };
    let owned = match OwnedSocket::bind(&path, &opts) {
        Ok(o) => o,
        Err(BindError::AlreadyOwned { .. }) => return Err(already_running(root)),
        Err(e) => return Err(anyhow::Error::new(e).into()),
    };
    let (std_listener, guard) = owned.into_parts();
    std_listener
        .set_nonblocking(true)
        .context("set_nonblocking")?;
    let listener = UnixListener::from_std(std_listener).context("register own socket")?;
    Ok((listener, guard))
}

/// The accept loops of the own sockets, every generation of them, and the guards of the
/// current one.
pub(super) struct OwnSockets {
    root: PathBuf,
    rpc_app: Arc<App>,
    gateway: Arc<App>,
    stop: CancellationToken,
    /// Stops the current generation's accept loops.
    current: CancellationToken,
    servers: Vec<JoinHandle<()>>,
    guards: Vec<SocketGuard>,
}

impl OwnSockets {
    /// Serves the sockets bound at start-up; every accept loop stops with `stop`.
    pub(super) fn start(
        root: PathBuf,
        rpc: (UnixListener, SocketGuard),
        admin: (UnixListener, SocketGuard),
        rpc_app: Arc<App>,
        gateway: Arc<App>,
        stop: CancellationToken,
    ) -> OwnSockets {
        let mut own = OwnSockets {
            root,
            rpc_app,
            gateway,
            current: stop.child_token(),
            stop,
            servers: Vec::new(),
            guards: Vec::new(),
        };
        own.serve(rpc, admin);
        own
    }

    fn serve(&mut self, rpc: (UnixListener, SocketGuard), admin: (UnixListener, SocketGuard)) {
        self.current.cancel();
        self.current = self.stop.child_token();
        self.guards = vec![rpc.1, admin.1];
        for (l, app) in [(rpc.0, &self.rpc_app), (admin.0, &self.gateway)] {
            self.servers.push(tokio::spawn(listener::serve(
                AnyListener::Unix(l),
                app.clone(),
                self.current.clone(),
            )));
        }
    }

    /// Binds both sockets again (the root was replaced, or one of them was deleted) and
    /// serves them instead of the old ones.
    async fn rebind(&mut self) -> Result<(), ServeError> {
        // The old sockets go first: their guards hold the owner locks the new ones take, and
        // one still there (its twin was deleted) would be in the way. Each is removed only if
        // the file at its path is still ours: in a replaced root it is not.
        let old = std::mem::take(&mut self.guards);
        let root = self.root.clone();
        let bound = tokio::task::spawn_blocking(move || {
            for guard in old {
                let _ = guard.remove_if_ours();
            }
            let rpc = own_socket(&root, "rpc")?;
            let admin = own_socket(&root, "admin")?;
            Ok::<_, ServeError>((rpc, admin))
        })
        .await
        .map_err(|e| anyhow::anyhow!("rebinding own sockets: {e}"))??;
        self.serve(bound.0, bound.1);
        Ok(())
    }

    /// Whether one of the own sockets is no longer there as a socket (deleted by hand or with
    /// its directory, or its directory replaced by something else).
    fn one_is_missing(&self) -> bool {
        use std::os::unix::fs::FileTypeExt as _;
        ["rpc", "admin"].iter().any(|kind| {
            let path = self.root.join(OWN_SERVICE).join(format!("{kind}.sock"));
            !std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_socket())
        })
    }

    /// Whether both own sockets are at their paths as this router bound them last.
    fn both_ours(&self) -> bool {
        self.guards.len() == 2 && self.guards.iter().all(SocketGuard::is_still_ours)
    }

    /// Every accept loop ever started, to wait for at shutdown; and the current guards.
    pub(super) fn finish(self) -> (Vec<JoinHandle<()>>, Vec<SocketGuard>) {
        (self.servers, self.guards)
    }
}

/// Binds the own sockets again whenever the scanner reports the root replaced (failing that,
/// ends with an error: the supervisor stops the router so it is restarted), and whenever one
/// of them is not there as a socket after a scan or a socket event (deleted by hand, or its
/// directory replaced): failing that, it warns once per reason and tries again after the next
/// scan, so that the operator can put things right without a restart.
pub(super) async fn keep(
    own: Arc<tokio::sync::Mutex<Option<OwnSockets>>>,
    registry: Registry,
    token: CancellationToken,
) -> Result<(), String> {
    let mut events = registry.subscribe();
    let mut last_failure: Option<String> = None;
    loop {
        let ev = tokio::select! {
            _ = token.cancelled() => return Ok(()),
            ev = events.recv() => ev,
        };
        let replaced = match ev {
            Ok(Stamped {
                event: Event::RootReplaced { .. },
                ..
            }) => true,
            // Deleted by hand or with its directory: without it the CLI cannot reach the
            // router, and a second router could take the root. A scan looks too: a directory
            // replaced by a file reports no socket change.
            Ok(Stamped {
                event:
                    Event::SocketChanged { .. }
                    | Event::ServiceDropped { .. }
                    | Event::ScanCompleted { .. },
                ..
            }) => false,
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(_) => return Ok(()),
        };
        let mut guard = own.lock().await;
        let Some(own) = guard.as_mut() else {
            return Ok(());
        };
        // An old event (the sockets are back already, bound again by the event before) does
        // not unbind the live ones; nor does the root's replacement once both sockets at its
        // paths are the ones bound last (a deleted root's sockets, gone with it, were bound
        // again in the new one on the socket events that came first).
        if !replaced && !own.one_is_missing() {
            continue;
        }
        if replaced && own.both_ours() {
            continue;
        }
        // The root itself is gone: the scanner makes it again (0755, whatever the umask) and
        // says so (`RootReplaced`), and the sockets are bound then, once. Binding now would
        // make the root on the way, with the umask's mode, behind the scanner's back.
        if !replaced && !own.root.is_dir() {
            continue;
        }
        let why = if replaced {
            "the socket root was replaced"
        } else {
            "an own socket is gone"
        };
        match own.rebind().await {
            Ok(()) => {
                last_failure = None;
                tracing::warn!(root = %own.root.display(), why, "bound rpc.sock and admin.sock again");
            }
            Err(e) if replaced => {
                return Err(format!("cannot bind the router's own sockets again: {e}"));
            }
            Err(e) => {
                let e = e.to_string();
                if last_failure.as_deref() != Some(e.as_str()) {
                    tracing::warn!(root = %own.root.display(), error = %e, "an own socket is gone and cannot be bound again; trying again after each scan");
                }
                last_failure = Some(e);
            }
        }
    }
}

#[cfg(test)]
mod tests;
