//! The router's own HTTP applications, served by axum behind the connection driver: the MCP
//! gateway (`/mcp`, `/mcp/{service}`, CONTRACT §10) and the dashboard (`GET /` and `/api/…`
//! but `/api/services`, CONTRACT §11), on TCP and admin.sock.
//!
//! The connection driver stays the one HTTP/1.1 framing authority: it parses and validates the
//! head, routes it (`serve::front`, the one routing decision), reads the body whole (within
//! `--max-body`), hands an [`http::Request`] to [`App::call`], and writes the answer in the framing it chooses (a known length as
//! `content-length`, else chunked, or up to the close for HTTP/1.0), streaming a body
//! (server-sent events) as it comes. The applications only read the registry and call services
//! through the JSON-RPC front end ([`Rpc::handle`]), as any client of `/rpc` would.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Request, header};
use tower::ServiceExt as _;

use crate::proxy::error::{ProxyError, error_parts};
use crate::registry::Registry;
use crate::rpc::Rpc;

/// What the applications share: the registry to read and the JSON-RPC front end to call
/// services through.
#[derive(Clone)]
pub struct AppState {
    /// The JSON-RPC front end (`Rpc::handle` takes a request body as `POST /rpc` would).
    pub rpc: Arc<Rpc>,
    /// The live table, the catalog and their events.
    pub registry: Registry,
    /// The dashboard's live feed.
    pub dashboard: crate::dashboard::Hub,
}

/// Which application a request is for: the routing decides it (`serve::front`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppTarget {
    /// An MCP endpoint.
    Mcp(crate::mcp::Scope),
    /// The dashboard (`GET /`, `/api/…`), or the router's 404 for a path it does not have.
    Dashboard,
}

/// The applications, built once.
pub struct App {
    state: AppState,
    router: Router,
    mcp: crate::mcp::Endpoints,
}

// === impl App ===

impl App {
    /// Builds the router over `state`.
    pub fn new(state: AppState) -> App {
        App {
            router: routes().with_state(state.clone()),
            state,
            mcp: crate::mcp::Endpoints::default(),
        }
    }

    /// Answers one request for `target`.
    pub async fn call(&self, target: AppTarget, request: Request<Body>) -> Response {
        match target {
            AppTarget::Mcp(scope) => self.mcp.serve(&self.state, scope, request).await,
            AppTarget::Dashboard => match self.router.clone().oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            },
        }
    }
}

/// The dashboard's routes; a path it does not have gets the router's JSON 404.
fn routes() -> Router<AppState> {
    Router::new()
        .merge(crate::dashboard::routes())
        .fallback(|| async { error_response(&ProxyError::NoRoute) })
}

/// The router's answer for `e` (status, `x-hero-router-error`, JSON body), as an axum
/// response: the same bytes the connection driver writes for it.
pub fn error_response(e: &ProxyError) -> Response {
    let (status, headers, body) = error_parts(e);
    let mut response = (status, body).into_response();
    for (name, value) in headers {
        if let Ok(value) = http::HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// The router's 403 for a request whose `Origin` is not the router's own; `None` for any
/// other request. Every application checks its requests (the MCP gateway all, the dashboard
/// its actions) through this.
pub fn foreign_origin(headers: &HeaderMap) -> Option<Response> {
    if same_origin(headers) {
        return None;
    }
    let origin = headers
        .get(header::ORIGIN)
        .map(|o| String::from_utf8_lossy(o.as_bytes()).into_owned())
        .unwrap_or_default();
    Some(error_response(&ProxyError::ForeignOrigin { origin }))
}

/// True unless the request carries an `Origin` that is not the router's own: a browser page
/// from another site (DNS rebinding, a hostile page on the operator's machine) must not drive
/// the router. The router's own origin is the authority the request was sent to (`Host`).
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let (Ok(origin), Some(host)) = (
        origin.to_str(),
        headers.get(header::HOST).and_then(|h| h.to_str().ok()),
    ) else {
        return false;
    };
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    authority.is_some_and(|a| a.eq_ignore_ascii_case(host))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn origin_must_be_the_host_it_was_sent_to() {
        let host = ("host", "127.0.0.1:9988");
        assert!(same_origin(&headers(&[host])));
        assert!(same_origin(&headers(&[
            host,
            ("origin", "http://127.0.0.1:9988")
        ])));
        assert!(same_origin(&headers(&[
            host,
            ("origin", "https://127.0.0.1:9988")
        ])));
        assert!(!same_origin(&headers(&[
            host,
            ("origin", "http://evil.example")
        ])));
        assert!(!same_origin(&headers(&[
            host,
            ("origin", "http://127.0.0.1:9989")
        ])));
        assert!(!same_origin(&headers(&[host, ("origin", "null")])));
        assert!(!same_origin(&headers(&[(
            "origin",
            "http://127.0.0.1:9988"
        )])));
        // A port-less origin is not the same as one with a port.
        assert!(!same_origin(&headers(&[
            host,
            ("origin", "http://127.0.0.1")
        ])));
    }
}
