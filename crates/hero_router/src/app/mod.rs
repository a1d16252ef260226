//! The router's own HTTP applications, served by axum behind the connection driver: the MCP
//! gateway (`/mcp`, `/mcp/{service}`, docs/docs-and-mcp.md#mcp-gateway) and the dashboard (`GET /`
//! and `/api/…` but `/api/services`, docs/dashboard.md), on TCP and admin.sock.
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
use http::Request;
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
    /// The first service listener's URL (`http://ADDR:PORT`), for the MCP links the
    /// dashboard shows: MCP is served there, not on the dashboard's own origin.
    pub service_url: Option<String>,
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
