//! The router's own HTTP surface: health, the service table and the `router.*` JSON-RPC
//! methods.
//!
//! Endpoints (all listeners): `GET /health`, `GET /api/services`, `POST /rpc`.
//! On `rpc.sock` also: `GET /openrpc.json`, `GET /.well-known/heroservice.json`.
//!
//! Method routing to services and HTTP proxying are not here yet; unknown methods get -32601.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::config::Config;
use crate::scanner::ScannerHandle;

/// Shared state of every listener.
pub struct Front {
    scanner: ScannerHandle,
    started: Instant,
    _cfg: Config,
}

// === impl Front ===

impl Front {
    /// Wraps the scanner handle.
    pub fn new(scanner: ScannerHandle, cfg: Config) -> Front {
        Front {
            scanner,
            started: Instant::now(),
            _cfg: cfg,
        }
    }

    fn health(&self) -> Value {
        let table = self.scanner.table();
        json!({
            "status": "ok",
            "version": crate::VERSION,
            "uptime_secs": self.started.elapsed().as_secs(),
            "services": table.services.len(),
            "ready": table.ready,
        })
    }

    async fn call(
        &self,
        method: &str,
        params: Option<&Value>,
    ) -> Result<Value, (i64, String, Value)> {
        match method {
            "router.health" => Ok(self.health()),
            "router.services" => Ok(json!(self.scanner.table().services)),
            "router.service" => {
                let name = name_param(params).ok_or_else(|| {
                    (
                        -32602,
                        "invalid params: expected {\"name\": S} or [S]".to_owned(),
                        Value::Null,
                    )
                })?;
                let table = self.scanner.table();
                table.service(&name).map(|s| json!(s)).ok_or_else(|| {
                    (
                        -32001,
                        format!("no such service: {name}"),
                        json!({"service": name}),
                    )
                })
            }
            "router.scan" => match self.scanner.scan_now().await {
                Some(summary) => Ok(json!(summary)),
                None => Err((-32603, "the scanner has stopped".to_owned(), Value::Null)),
            },
            "rpc.discover" => Ok(openrpc()),
            other => Err((-32601, format!("method not found: {other}"), Value::Null)),
        }
    }
}

/// The router's HTTP app. `rpc_socket` adds the endpoints every Hero rpc socket serves.
pub fn app(front: Arc<Front>, rpc_socket: bool) -> Router {
    let mut r = Router::new()
        .route(
            "/health",
            get(|State(f): State<Arc<Front>>| async move { axum::Json(f.health()) }),
        )
        .route(
            "/api/services",
            get(|State(f): State<Arc<Front>>| async move {
                axum::Json(json!(f.scanner.table().services))
            }),
        )
        .route("/rpc", post(rpc));
    if rpc_socket {
        r = r
            .route("/openrpc.json", get(|| async { axum::Json(openrpc()) }))
            .route(
                "/.well-known/heroservice.json",
                get(|| async { axum::Json(manifest()) }),
            );
    }
    r.fallback(|| async {
        (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": "not found"})),
        )
    })
    .with_state(front)
}

async fn rpc(State(front): State<Arc<Front>>, body: Bytes) -> Response {
    let parsed: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return reply(Some(error(
                Value::Null,
                -32700,
                format!("parse error: {e}"),
                Value::Null,
            )));
        }
    };
    match parsed {
        Value::Array(items) if items.is_empty() => reply(Some(error(
            Value::Null,
            -32600,
            "invalid request: empty batch".into(),
            Value::Null,
        ))),
        Value::Array(items) => {
            let mut out = Vec::new();
            for item in items {
                if let Some(v) = one(&front, item).await {
                    out.push(v);
                }
            }
            reply((!out.is_empty()).then_some(Value::Array(out)))
        }
        item => reply(one(&front, item).await),
    }
}

async fn one(front: &Front, item: Value) -> Option<Value> {
    let Value::Object(obj) = item else {
        return Some(error(
            Value::Null,
            -32600,
            "invalid request: not an object".into(),
            Value::Null,
        ));
    };
    let id = obj.get("id").cloned();
    let method = match (
        obj.get("jsonrpc").and_then(Value::as_str),
        obj.get("method").and_then(Value::as_str),
    ) {
        (Some("2.0"), Some(m)) => m,
        _ => {
            return Some(error(
                id.unwrap_or(Value::Null),
                -32600,
                "invalid request".into(),
                Value::Null,
            ));
        }
    };
    let result = front.call(method, obj.get("params")).await;
    let id = id?;
    Some(match result {
        Ok(v) => json!({"jsonrpc": "2.0", "id": id, "result": v}),
        Err((code, msg, data)) => error(id, code, msg, data),
    })
}

fn error(id: Value, code: i64, message: String, data: Value) -> Value {
    let mut err = json!({"code": code, "message": message});
    if !data.is_null() {
        err["data"] = data;
    }
    json!({"jsonrpc": "2.0", "id": id, "error": err})
}

fn reply(body: Option<Value>) -> Response {
    match body {
        Some(v) => axum::Json(v).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

fn name_param(params: Option<&Value>) -> Option<String> {
    match params? {
        Value::Object(o) => o.get("name")?.as_str().map(str::to_owned),
        Value::Array(a) if a.len() == 1 => a[0].as_str().map(str::to_owned),
        _ => None,
    }
}

fn openrpc() -> Value {
    let m = |name: &str, summary: &str| json!({"name": name, "summary": summary, "params": [], "result": {"name": "result", "schema": {}}});
    json!({
        "openrpc": "1.2.6",
        "info": {"title": "hero_router", "version": crate::VERSION},
        "methods": [
            m("router.services", "All services and their sockets, sorted by name"),
            m("router.service", "One service by name"),
            m("router.scan", "Run a full scan now"),
            m("router.health", "Router health"),
            m("router.spec", "A service's OpenRPC document"),
        ]
    })
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
