//! The router's HTTP surface, one axum app per listener role.
//!
//! Endpoints on every listener: `POST /rpc` (JSON-RPC, CONTRACT §4), `GET /health`,
//! `GET /api/services`, `GET /metrics`.
//! On `rpc.sock` also: `GET /openrpc.json`, `GET /.well-known/heroservice.json`; anything else
//! there is 404.
//! On TCP and `admin.sock` everything else is proxied: `/{service}/{kind}/{rest…}` (§5).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::proxy::client::Upstream;
use crate::proxy::error::{ProxyError, error_response};
use crate::proxy::pool::{Inflight, Pool};
use crate::proxy::{ProxyCtx, Transport};
use crate::rpc::{Ctx, Rpc};
use crate::scanner::ScannerHandle;

/// Which listener an app serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `hero_router/rpc.sock`: JSON-RPC and the standard Hero endpoints, no proxying.
    RpcSocket,
    /// `hero_router/admin.sock` and TCP: everything, including proxying.
    Gateway,
}

/// State shared by every listener.
pub struct Front {
    pub(super) rpc: Rpc,
    pub(super) proxy: ProxyCtx,
    metrics: Metrics,
    pub(super) max_body: u64,
}

// === impl Front ===

impl Front {
    /// Builds the shared state around a scanner handle.
    pub fn new(scanner: ScannerHandle, cfg: &Config) -> Front {
        let busy_wait = cfg
            .upstream_timeout
            .saturating_sub(Duration::from_millis(50));
        let inflight = Inflight::new(cfg.max_inflight_per_service);
        let upstream = Upstream::new(busy_wait, inflight.clone());
        let pool = Arc::new(Pool::new(busy_wait, inflight));
        let ctx = Arc::new(Ctx {
            scanner: scanner.clone(),
            pool: pool.clone(),
            upstream_timeout: cfg.upstream_timeout,
            max_body: cfg.max_body,
            started: Instant::now(),
        });
        Front {
            rpc: Rpc::new(ctx),
            proxy: ProxyCtx {
                scanner,
                upstream,
                pool,
                upstream_timeout: cfg.upstream_timeout,
                max_body: cfg.max_body,
                trust_forwarded_headers: cfg.trust_forwarded_headers,
            },
            metrics: Metrics::default(),
            max_body: cfg.max_body,
        }
    }

    /// The metrics, fed by the caller with scanner events.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}

/// The HTTP app of one listener role.
/// The router's own `GET` endpoints besides `/rpc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Endpoint {
    /// `GET /health`.
    Health,
    /// `GET /api/services`.
    Services,
    /// `GET /metrics`.
    Metrics,
    /// `GET /openrpc.json` (rpc.sock only).
    OpenRpc,
    /// `GET /.well-known/heroservice.json` (rpc.sock only).
    Manifest,
}

impl Endpoint {
    /// The endpoint at `path` on a listener of `role`.
    pub(super) fn at(path: &str, role: Role) -> Option<Endpoint> {
        match (path, role) {
            ("/health", _) => Some(Endpoint::Health),
            ("/api/services", _) => Some(Endpoint::Services),
            ("/metrics", _) => Some(Endpoint::Metrics),
            ("/openrpc.json", Role::RpcSocket) => Some(Endpoint::OpenRpc),
            ("/.well-known/heroservice.json", Role::RpcSocket) => Some(Endpoint::Manifest),
            _ => None,
        }
    }
}

// === impl Front (endpoints) ===

impl Front {
    /// An endpoint's content type and body; both data paths serve it from here.
    pub(super) fn endpoint(&self, e: Endpoint) -> (&'static str, String) {
        const JSON: &str = "application/json";
        match e {
            Endpoint::Health => (JSON, self.rpc.ctx().health().to_string()),
            Endpoint::Services => (JSON, self.rpc.ctx().services().to_string()),
            Endpoint::Metrics => (
                "text/plain; version=0.0.4",
                self.metrics.render(&self.proxy.scanner.table()),
            ),
            Endpoint::OpenRpc => (JSON, crate::rpc::openrpc().to_string()),
            Endpoint::Manifest => (JSON, manifest().to_string()),
        }
    }
}

/// The HTTP app of one listener role.
pub fn app(front: Arc<Front>, role: Role) -> Router {
    let serve = |e: Endpoint| {
        get(move |State(f): State<Arc<Front>>| async move {
            let (content_type, body) = f.endpoint(e);
            ([(header::CONTENT_TYPE, content_type)], body).into_response()
        })
    };
    let mut r = Router::new()
        .route("/rpc", post(rpc))
        .route("/health", serve(Endpoint::Health))
        .route("/api/services", serve(Endpoint::Services))
        .route("/metrics", serve(Endpoint::Metrics));
    match role {
        Role::RpcSocket => {
            r = r
                .route("/openrpc.json", serve(Endpoint::OpenRpc))
                .route("/.well-known/heroservice.json", serve(Endpoint::Manifest))
                .fallback(|| async { error_response(&ProxyError::NoRoute) });
        }
        Role::Gateway => r = r.fallback(proxy),
    }
    r.method_not_allowed_fallback(|method: axum::http::Method| async move {
        let body = json!({"error": format!("method {method} is not allowed here; POST /rpc, GET /health, /api/services, /metrics")});
        (StatusCode::METHOD_NOT_ALLOWED, axum::Json(body))
    })
    .with_state(front)
}

async fn rpc(State(front): State<Arc<Front>>, req: Request) -> Response {
    let started = Instant::now();
    let too_large = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .is_some_and(|n| n > front.max_body);
    if too_large {
        return error_response(&ProxyError::BodyTooLarge {
            limit: front.max_body,
        });
    }
    let body = match http_body_util::Limited::new(req.into_body(), front.max_body as usize)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return error_response(&ProxyError::BodyTooLarge {
                limit: front.max_body,
            });
        }
    };
    let resp = match front.rpc.handle(&body).await {
        Some(answer) => {
            let mut r = Response::new(Body::from(answer));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        None => StatusCode::NO_CONTENT.into_response(),
    };
    front.metrics.record(
        "hero_router",
        "rpc",
        resp.status().as_u16(),
        started.elapsed(),
    );
    resp
}

async fn proxy(State(front): State<Arc<Front>>, req: Request) -> Response {
    let started = Instant::now();
    let transport = req
        .extensions()
        .get::<Transport>()
        .copied()
        .unwrap_or(Transport::Unix);
    match crate::proxy::proxy(&front.proxy, transport, req).await {
        Ok((target, resp)) => {
            front.metrics.record(
                &target.service,
                &target.kind,
                resp.status().as_u16(),
                started.elapsed(),
            );
            resp
        }
        Err(e) => {
            let service = e.service().unwrap_or("-").to_owned();
            let resp = error_response(&e);
            front
                .metrics
                .record(&service, "-", resp.status().as_u16(), started.elapsed());
            resp
        }
    }
}

fn manifest() -> Value {
    json!({
        "protocol": "openrpc",
        "name": "hero_router",
        "title": "Hero router",
        "version": crate::VERSION,
        "description": "Discovers Hero service sockets and routes to them",
        "socket": "rpc",
    })
}
