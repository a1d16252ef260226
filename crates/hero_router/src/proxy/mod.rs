//! HTTP routing onto service sockets (CONTRACT §5): where a route goes, the upstream
//! connections it uses, and the errors it can end in.
//!
//! `/{service}/{kind}/{rest…}` goes to `<root>/{service}/{kind}.sock` (`admin` falls back to
//! `ui.sock`; a name that is not a socket kind reaches `web_{name}.sock`), with the prefix
//! stripped and the query kept. The bytes on the wire are `crate::http1`'s and the connection
//! driver's (`serve::conn`): bodies stream both ways and are never buffered whole, a WebSocket
//! upgrade is bridged byte for byte, a response body (SSE included) has no deadline, only the
//! response head does (`--upstream-timeout`).

pub mod client;
pub mod error;
pub mod path;
pub mod pool;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::scanner::ScannerHandle;
use crate::scanner::state::SocketState;
use crate::table::Table;
use error::ProxyError;

/// Which kind of listener a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A TCP listener, with the peer address.
    Tcp(SocketAddr),
    /// One of the router's Unix sockets: callers are trusted.
    Unix,
}

/// What the proxy needs.
pub struct ProxyCtx {
    /// The live table.
    pub scanner: ScannerHandle,
    /// Upstream connections (the only pool).
    pub pool: std::sync::Arc<pool::Pool>,
    /// Deadline for the response head.
    pub upstream_timeout: Duration,
    /// `--max-body`.
    pub max_body: u64,
    /// `--trust-forwarded-headers`.
    pub trust_forwarded_headers: bool,
}

/// The socket a route resolved to.
#[derive(Debug)]
pub struct Target {
    /// Service name.
    pub service: String,
    /// Socket kind as it exists (`admin`, `ui`, `web_docs`, …).
    pub kind: String,
    /// Path of the socket.
    pub path: PathBuf,
    /// Its identity when the table last saw it.
    pub identity: Option<hero_socket::Identity>,
}

/// Resolves `/{service}/{kind}` against the table.
pub fn resolve(table: &Table, service: &str, kind: &str) -> Result<Target, ProxyError> {
    let Some(svc) = table.service(service) else {
        return Err(ProxyError::NoService {
            service: service.to_owned(),
        });
    };
    // `admin` falls back to `ui`; any other name falls back to `web_<name>`.
    let fallback = |s: &&crate::table::Socket| match kind {
        "admin" => s.kind == "ui",
        _ => s.kind.strip_prefix("web_") == Some(kind),
    };
    let sock = svc
        .sockets
        .iter()
        .find(|s| s.kind == kind)
        .or_else(|| svc.sockets.iter().find(fallback))
        .ok_or_else(|| ProxyError::NoSocket {
            service: service.to_owned(),
            kind: kind.to_owned(),
        })?;
    match sock.state {
        SocketState::Live | SocketState::Busy => Ok(Target {
            service: service.to_owned(),
            kind: sock.kind.clone(),
            path: sock.path.clone().into(),
            identity: sock.identity,
        }),
        state => Err(ProxyError::Down {
            service: service.to_owned(),
            detail: format!("its {} socket is {state}", sock.kind),
        }),
    }
}
