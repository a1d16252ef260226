//! Names in the socket root: which are services, which are not, and the router's own.

use serde::Serialize;

/// The directory the router keeps its own sockets in.
pub(crate) const OWN_SERVICE: &str = "hero_router";

/// True if `name` is a valid service name: `^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`.
pub(crate) fn valid_service_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')
}

/// A top-level entry that is not a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ignored {
    /// Full path.
    pub path: String,
    /// Why it is not a service.
    pub reason: String,
}
