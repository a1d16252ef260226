//! HTTP routing onto service sockets (CONTRACT §5).
//!
//! `/{service}/{kind}/{rest…}` goes to `<root>/{service}/{kind}.sock` (`admin` falls back to
//! `ui.sock`; a name that is not a socket kind reaches `web_{name}.sock`), with the prefix
//! stripped and the query kept. Bodies stream both ways and are never buffered whole; a
//! WebSocket upgrade is bridged byte for byte; a response body (SSE included) has no deadline,
//! only the response head does (`--upstream-timeout`).
//!
//! Headers: hop-by-hop headers (RFC 9110 §7.6.1, plus those named in `Connection`) are dropped
//! both ways, except `Upgrade` on an upgrade. `X-Forwarded-Prefix` and `X-Forwarded-For` are
//! set. Client-sent `X-Hero-Context` / `X-Hero-Claims` are removed on TCP unless
//! `--trust-forwarded-headers`; Unix-socket callers are trusted.

pub mod client;
pub mod error;
pub mod h1;
pub mod path;
pub mod pool;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, StatusCode};
use hyper_util::rt::TokioIo;

use crate::scanner::ScannerHandle;
use crate::scanner::state::SocketState;
use crate::table::Table;
use client::{SendError, Upstream};
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
    /// The pooled upstream client (hyper; upgrades and requests the lean path leaves).
    pub upstream: Upstream,
    /// The lean path's upstream connections.
    pub pool: std::sync::Arc<pool::Pool>,
    /// Deadline for the response head.
    pub upstream_timeout: Duration,
    /// `--max-body`.
    pub max_body: u64,
    /// `--trust-forwarded-headers`.
    pub trust_forwarded_headers: bool,
}

const HERO_HEADERS: [&str; 2] = ["x-hero-context", "x-hero-claims"];

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

/// Proxies one request. The caller has already decided it is not one of the router's own
/// endpoints.
pub async fn proxy(
    ctx: &ProxyCtx,
    transport: Transport,
    mut req: Request<Body>,
) -> Result<(Target, Response), ProxyError> {
    let route = path::parse(req.uri().path(), req.uri().query())?.ok_or(ProxyError::NoRoute)?;
    crate::rpc::wait_ready(&ctx.scanner, ctx.upstream_timeout).await;
    let target = resolve(&ctx.scanner.table(), &route.service, &route.kind)?;
    if let Some(len) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
    {
        if len > ctx.max_body {
            return Err(ProxyError::BodyTooLarge {
                limit: ctx.max_body,
            });
        }
    }
    let upgrade = is_upgrade(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));

    let (parts, body) = req.into_parts();
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers);
    if !upgrade {
        headers.remove(header::UPGRADE);
    }
    let mut out = Request::builder()
        .method(parts.method)
        .uri(route.upstream.as_str())
        .version(http::Version::HTTP_11);
    let prefix = format!("/{}/{}", route.service, route.kind);
    if let Ok(v) = HeaderValue::from_str(&prefix) {
        headers.insert("x-forwarded-prefix", v);
    }
    match transport {
        Transport::Tcp(peer) => {
            let xff = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
                Some(prev) => format!("{prev}, {}", peer.ip()),
                None => peer.ip().to_string(),
            };
            if let Ok(v) = HeaderValue::from_str(&xff) {
                headers.insert("x-forwarded-for", v);
            }
            if !ctx.trust_forwarded_headers {
                for h in HERO_HEADERS {
                    headers.remove(h);
                }
            }
        }
        Transport::Unix => {}
    }
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    if let Some(h) = out.headers_mut() {
        *h = headers;
    }
    let body = if upgrade {
        Body::empty()
    } else {
        Body::new(http_body_util::Limited::new(body, ctx.max_body as usize))
    };
    let out = out.body(body).map_err(|e| ProxyError::Upstream {
        service: target.service.clone(),
        detail: e.to_string(),
    })?;

    let service = target.service.clone();
    let mut resp = match ctx
        .upstream
        .send(&target.path, target.identity, out, ctx.upstream_timeout)
        .await
    {
        Ok(r) => r,
        Err(SendError::Busy) => return Err(ProxyError::Busy { service }),
        Err(SendError::Timeout) => return Err(ProxyError::Timeout { service }),
        Err(SendError::Down(detail)) => return Err(ProxyError::Down { service, detail }),
        Err(SendError::BodyTooLarge) => {
            return Err(ProxyError::BodyTooLarge {
                limit: ctx.max_body,
            });
        }
        Err(SendError::Broken(detail)) => return Err(ProxyError::Upstream { service, detail }),
    };

    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client_upgrade) = client_upgrade {
            let upstream_upgrade = hyper::upgrade::on(&mut resp);
            tokio::spawn(async move {
                match tokio::try_join!(client_upgrade, upstream_upgrade) {
                    Ok((c, u)) => {
                        let _ = tokio::io::copy_bidirectional(
                            &mut TokioIo::new(c),
                            &mut TokioIo::new(u),
                        )
                        .await;
                    }
                    Err(e) => tracing::debug!(error = %e, "upgrade failed"),
                }
            });
        }
        let (parts, _) = resp.into_parts();
        return Ok((target, Response::from_parts(parts, Body::empty())));
    }
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    parts.headers.remove(header::UPGRADE);
    Ok((target, Response::from_parts(parts, Body::new(body))))
}

/// True if the request asks for a protocol upgrade (`Connection: upgrade` + `Upgrade`).
fn is_upgrade(h: &HeaderMap) -> bool {
    h.contains_key(header::UPGRADE)
        && h.get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Removes hop-by-hop headers and those listed in `Connection`, except `Upgrade`, which the
/// caller keeps only on an upgrade.
fn strip_hop_by_hop(h: &mut HeaderMap) {
    let listed: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        if name != header::UPGRADE {
            h.remove(name);
        }
    }
    for name in h1::HOP_BY_HOP {
        if name != "upgrade" {
            h.remove(name);
        }
    }
}
