//! HTTP routing onto service sockets (docs/http.md#proxy): where a route goes, the upstream
//! connections it uses, and the errors it can end in.
//!
//! `/{service}/{kind}/{rest…}` goes to `<root>/{service}/{kind}.sock` (`admin` falls back to
//! `ui.sock`; a name that is not a socket kind reaches `web_{name}.sock`), with the prefix
//! stripped and the query kept. The bytes on the wire are `crate::http1`'s and the engine's
//! ([`forward`]): bodies stream both ways and are never buffered whole, a WebSocket
//! upgrade is bridged byte for byte, a response body (SSE included) has no deadline, only the
//! response head does (`--upstream-timeout`).

pub(crate) mod error;
pub(crate) mod forward;
pub(crate) mod path;
pub(crate) mod watchdog;

use std::net::SocketAddr;

use crate::registry::state::SocketState;
use crate::registry::table::Table;
use error::ProxyError;

/// Which kind of listener a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// A TCP listener, with the peer address.
    Tcp(SocketAddr),
    /// One of the router's Unix sockets: callers are trusted.
    Unix,
}

/// The socket a route resolved to, as its place in the table (no copy of any name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Target {
    /// Index of the service in `Table::services`.
    pub service: usize,
    /// Index of the socket in that service's `sockets`.
    pub socket: usize,
}

impl Target {
    /// The service.
    pub(crate) fn service<'t>(&self, table: &'t Table) -> &'t crate::registry::table::Service {
        &table.services[self.service]
    }

    /// The socket.
    pub(crate) fn socket<'t>(&self, table: &'t Table) -> &'t crate::registry::table::Socket {
        &table.services[self.service].sockets[self.socket]
    }
}

/// Resolves `/{service}/{kind}` against the table: the socket if it is live or busy.
pub(crate) fn resolve(table: &Table, service: &str, kind: &str) -> Result<Target, ProxyError> {
    let Ok(si) = table
        .services
        .binary_search_by(|s| s.name.as_str().cmp(service))
    else {
        return Err(ProxyError::NoService {
            service: service.to_owned(),
        });
    };
    let svc = &table.services[si];
    // `admin` falls back to `ui`; any other name falls back to `web_<name>`.
    let fallback = |s: &crate::registry::table::Socket| match kind {
        "admin" => s.kind == "ui",
        _ => s.kind.strip_prefix("web_") == Some(kind),
    };
    let ki = svc
        .sockets
        .iter()
        .position(|s| s.kind == kind)
        .or_else(|| svc.sockets.iter().position(fallback))
        .ok_or_else(|| ProxyError::NoSocket {
            service: service.to_owned(),
            kind: kind.to_owned(),
        })?;
    let sock = &svc.sockets[ki];
    match sock.state {
        SocketState::Live | SocketState::Busy => Ok(Target {
            service: si,
            socket: ki,
        }),
        state => Err(ProxyError::Down {
            service: service.to_owned(),
            detail: format!("its {} socket is {state}", sock.kind),
        }),
    }
}
