//! The router's own OpenRPC document (`rpc.discover`, `GET /openrpc.json` on rpc.sock).

use serde_json::{Value, json};

/// The router's own OpenRPC document.
pub fn openrpc() -> Value {
    let name_param = json!([{"name": "name", "required": true, "schema": {"type": "string"}}]);
    let m = |name: &str, summary: &str, params: Value| json!({"name": name, "summary": summary, "params": params, "result": {"name": "result", "schema": {}}});
    json!({
        "openrpc": "1.2.6",
        "info": {"title": "hero_router", "version": crate::VERSION, "description": "Discovers Hero service sockets and routes to them. Any other <service>.<method> is forwarded to that service."},
        "methods": [
            m("router.services", "All services and their sockets, sorted by name", json!([])),
            m("router.service", "One service by name", name_param.clone()),
            m("router.scan", "Run a full scan now and return its counts", json!([])),
            m("router.health", "Router health and readiness", json!([])),
            m("router.spec", "A service's OpenRPC document", name_param),
            m("rpc.discover", "This document", json!([])),
        ]
    })
}
