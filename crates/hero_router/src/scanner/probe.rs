//! One probe of one socket path: `lstat` first, then a non-blocking connect.

use std::io;
use std::path::Path;

use hero_socket::{ConnectOutcome, FileKind, connect_probe, stat_nofollow};

use super::state::{Observation, SocketState};

/// Classifies `path` (CONTRACT §2). Never follows a symlink: the file type comes from `lstat`,
/// and only a real socket file is connected to. `state: None` means the path is gone.
pub fn probe(path: &Path) -> Observation {
    let st = match stat_nofollow(path) {
        Ok(st) => st,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return gone(),
        Err(e) => return denied(None, format!("stat: {e}")),
    };
    let identity = Some(st.identity);
    let kind = match st.kind {
        FileKind::Socket => return connect(path, identity),
        FileKind::Regular => "a regular file",
        FileKind::Directory => "a directory",
        FileKind::Symlink => "a symlink (never followed)",
        FileKind::Other => "not a socket (fifo or device)",
    };
    Observation {
        state: Some(SocketState::NotSocket),
        identity,
        detail: kind.to_owned(),
    }
}

fn connect(path: &Path, identity: Option<hero_socket::Identity>) -> Observation {
    let (state, detail) = match connect_probe(path) {
        ConnectOutcome::Connected => (SocketState::Live, "connect ok".to_owned()),
        ConnectOutcome::Busy => (
            SocketState::Busy,
            "connect: EAGAIN, backlog full".to_owned(),
        ),
        ConnectOutcome::Refused => (SocketState::Refused, "connect: ECONNREFUSED".to_owned()),
        ConnectOutcome::Denied => (SocketState::Denied, "connect: permission denied".to_owned()),
        ConnectOutcome::Missing => return gone(),
        // An errno we cannot interpret (e.g. a path too long for sockaddr_un): we cannot reach
        // it, and we must never reap what we cannot judge.
        ConnectOutcome::Other(e) => return denied(identity, format!("connect: {e}")),
    };
    Observation {
        state: Some(state),
        identity,
        detail,
    }
}

/// The observation for a probe that did not finish within `--probe-timeout`.
pub fn timed_out() -> Observation {
    Observation {
        state: Some(SocketState::Busy),
        identity: None,
        detail: "probe timed out".to_owned(),
    }
}

fn gone() -> Observation {
    Observation {
        state: None,
        identity: None,
        detail: "gone".to_owned(),
    }
}

fn denied(identity: Option<hero_socket::Identity>, detail: String) -> Observation {
    Observation {
        state: Some(SocketState::Denied),
        identity,
        detail,
    }
}
