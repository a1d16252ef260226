//! Low-level Unix-socket facts shared by hero_router and by Hero services.
//!
//! Three things live here, each a thin layer over one or two syscalls:
//!
//! - [`Identity`] and [`stat_nofollow`]: which file instance a path names right now (`statx`
//!   without following symlinks: device, inode, ctime and, where the filesystem keeps it, birth
//!   time).
//! - [`connect_probe`]: a non-blocking `connect(2)` that says what is listening at a path
//!   ([`ConnectOutcome`]). A full backlog is [`ConnectOutcome::Busy`], never refused.
//! - [`OwnedSocket::bind`] and [`OwnerLock`]: the cooperative way to own a socket path. The owner
//!   takes `flock(LOCK_EX)` on `<sock>.lock` before it removes a stale file or binds, and holds it
//!   for the socket's whole life. Anyone who can take the lock knows nobody owns the path, and no
//!   cooperative owner can bind there while the lock is held.
//!
//! - [`BoundSockets`]: which socket files have a live kernel socket bound to them, which tells a
//!   dead socket file from one whose owner is between `bind()` and `listen()`.
//! - [`root::resolve_root`]: where the socket root is (`--socket-dir`, `$HERO_SOCKET_DIR`,
//!   `$PATH_SOCKET`, `$HOME/hero/var/sockets`), the one rule the router and services share.
//!
//! The lock file is never deleted by anyone: deleting it would let two owners lock two different
//! inodes under the same name.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

mod bound;
mod identity;
mod owner;
mod probe;
pub mod root;

pub use bound::BoundSockets;
pub use identity::{FileKind, Identity, Stat, stat_at, stat_nofollow};
pub use owner::{BindError, BindOptions, OwnedSocket, OwnerLock, SocketGuard, TryLock, lock_path};
pub use probe::{ConnectOutcome, connect_probe, reachable};
