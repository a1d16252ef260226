//! The router's own HTTP applications behind the connection driver: the dashboard (plain
//! handlers, routed by the one routing decision) and the MCP gateway (rmcp behind its own fast
//! path). This is the adapter where requests and answers are `http` types (rmcp's).
//!
//! The connection driver stays the one HTTP/1.1 framing authority: it parses and validates the
//! head, routes it ([`route`](super::front::route), the one routing decision, which names the
//! [`AppTarget`]), reads the body whole (within `--max-body`), hands a
//! [`Request`](crate::app::Request) to [`Apps::call`], and writes the answer in the framing it
//! chooses, streaming a body (server-sent events) as it comes. The applications only read the registry and call services
//! through the JSON-RPC front end, as any client of `/rpc` would.

use std::sync::Arc;

use http::HeaderValue;

use crate::app::{Request, Response};
use crate::browser::PAGE_HEADERS;
use crate::mcp::Exchange;
use crate::rpc::Rpc;
use crate::shared::Shared;

/// Which application a request is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum AppTarget {
    /// An MCP endpoint.
    Mcp(crate::mcp::Scope),
    /// A dashboard endpoint (`GET /`, `/api/…`).
    Dashboard(crate::dashboard::Page),
}

/// The applications, built once.
pub(super) struct Apps {
    dashboard: crate::dashboard::State,
    mcp: crate::mcp::Endpoints,
    rpc: Arc<Rpc>,
    shared: Arc<Shared>,
}

// === impl Apps ===

impl Apps {
    /// The applications over `dashboard`'s state.
    pub(super) fn new(dashboard: crate::dashboard::State) -> Apps {
        Apps {
            rpc: dashboard.rpc.clone(),
            shared: dashboard.shared.clone(),
            dashboard,
            mcp: crate::mcp::Endpoints::default(),
        }
    }

    /// Answers one request for `target`; `exchange` carries the request's ids to the services
    /// an MCP tool call reaches, and brings back what those calls did. Every answer has the
    /// headers of a page the router makes ([`PAGE_HEADERS`]); an application sets its own
    /// policy where it needs one (the dashboard's page).
    pub(super) async fn call(
        &self,
        target: AppTarget,
        request: Request,
        exchange: &Arc<Exchange>,
    ) -> Response {
        let mut answer = match target {
            AppTarget::Mcp(scope) => {
                let exchange = exchange.clone();
                self.mcp
                    .serve(&self.rpc, &self.shared, scope, request, exchange)
                    .await
            }
            AppTarget::Dashboard(page) => {
                crate::dashboard::answer(&self.dashboard, page, request.headers()).await
            }
        };
        let headers = answer.headers_mut();
        for (name, value) in PAGE_HEADERS {
            if !headers.contains_key(name) {
                headers.insert(name, HeaderValue::from_static(value));
            }
        }
        answer
    }
}
