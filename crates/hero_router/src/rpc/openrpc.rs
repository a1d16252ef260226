//! The router's own OpenRPC document (`rpc.discover`, `GET /openrpc.json` on rpc.sock).
//!
//! It describes the `router.*` methods of docs/json-rpc.md#methods with their params, result shapes
//! and errors. Shared shapes (a Service, its sockets, its spec state, …) live under
//! `components/schemas` and error objects under `components/errors`, referenced with `$ref`.
//! The document is OpenRPC 1.3.2 and is checked against the 1.3 meta-schema by the tests.

use serde_json::{Value, json};

use crate::jsonrpc::{
    BAD_UPSTREAM, INVALID_PARAMS, NO_SPEC, NO_SUCH_SERVICE, NOT_LIVE, UPSTREAM_TIMEOUT,
};
use crate::registry::state::SkipReason;

/// What `info.description` says: what the router is, and that it forwards everything else.
const DESCRIPTION: &str = "The one router of a Hero OS node: discovers the Unix sockets of \
    Hero services, probes them, keeps a live table, and routes to them. Besides the router.* \
    methods below, any other call `<service>.<method>` is forwarded to \
    `<root>/<service>/rpc.sock` as method `<method>` with the same params and id, and the \
    service's answer is returned as is; such a call can fail with the router errors -32001, \
    -32002, -32003 and -32004 (see components/errors). Router errors carry \
    `data: {\"service\": S}`.";

/// The router's own manifest (`GET /.well-known/heroservice.json` on rpc.sock).
pub(crate) fn manifest() -> Value {
    json!({
        "protocol": "openrpc",
        "name": "hero_router",
        "title": "Hero router",
        "version": crate::VERSION,
        "description": "Discovers Hero service sockets and routes to them",
        "socket": "rpc",
    })
}

/// The router's own OpenRPC document.
pub(crate) fn openrpc() -> Value {
    json!({
        "openrpc": "1.3.2",
        "info": {
            "title": "hero_router",
            "version": crate::VERSION,
            "description": DESCRIPTION,
            "license": {"name": "Apache-2.0"}
        },
        "methods": methods(),
        "components": {
            "schemas": schemas(),
            "errors": errors()
        }
    })
}

/// Every method the router answers itself.
fn methods() -> Value {
    json!([
        method(
            "router.services",
            "All services and their sockets, sorted by name",
            json!([]),
            result("services", array_of("Service")),
            &["InvalidParams"],
        ),
        method(
            "router.service",
            "One service by name",
            json!([name_param()]),
            result("service", schema_ref("Service")),
            &["NoSuchService", "InvalidParams"],
        ),
        method(
            "router.scan",
            "Run a full scan now and return its counts",
            json!([]),
            result("summary", schema_ref("ScanSummary")),
            &["InvalidParams"],
        ),
        method(
            "router.health",
            "Router health and readiness",
            json!([]),
            result("health", schema_ref("Health")),
            &["InvalidParams"],
        ),
        method(
            "router.spec",
            "A service's OpenRPC document, from the catalog (refresh: fetch it first)",
            json!([
                name_param(),
                {
                    "name": "refresh",
                    "description": "Fetch the document from the service before answering.",
                    "required": false,
                    "schema": {"type": "boolean", "default": false}
                }
            ]),
            result(
                "spec",
                json!({"type": "object", "description": "The service's OpenRPC document."}),
            ),
            &["NoSuchService", "NoSpec", "InvalidParams"],
        ),
        method(
            "router.methods",
            "Every method of every healthy service with a spec, sorted",
            json!([]),
            result("methods", array_of("MethodEntry")),
            &["InvalidParams"],
        ),
        method(
            "router.traffic",
            "Per-service traffic for the last 1, 5 and 15 minutes: requests, errors by class, \
             req/s and latency percentiles, and the 15 minutes slot by slot",
            json!([]),
            result("traffic", schema_ref("Traffic")),
            &["InvalidParams"],
        ),
        method(
            "rpc.discover",
            "This document",
            json!([]),
            result(
                "openrpc",
                json!({"type": "object", "description": "The router's own OpenRPC document."}),
            ),
            &[],
        ),
    ])
}

/// One method object; `errors` are names under `components/errors`.
fn method(name: &str, summary: &str, params: Value, result: Value, errors: &[&str]) -> Value {
    let mut method = json!({
        "name": name,
        "summary": summary,
        "paramStructure": "either",
        "params": params,
        "result": result,
    });
    if !errors.is_empty() {
        let refs: Vec<Value> = errors
            .iter()
            .map(|e| json!({"$ref": format!("#/components/errors/{e}")}))
            .collect();
        method["errors"] = Value::Array(refs);
    }
    method
}

/// The `name` param of `router.service` and `router.spec`: first by position, or by name.
fn name_param() -> Value {
    json!({
        "name": "name",
        "description": "The service's name (its directory under the socket root).",
        "required": true,
        "schema": {"type": "string", "minLength": 1}
    })
}

/// A result content descriptor.
fn result(name: &str, schema: Value) -> Value {
    json!({"name": name, "schema": schema})
}

/// `{"$ref": "#/components/schemas/<name>"}`.
fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// An array of the component schema `name`.
fn array_of(name: &str) -> Value {
    json!({"type": "array", "items": schema_ref(name)})
}

/// A JSON-schema type that may also be null.
fn nullable(ty: &str) -> Value {
    json!({"type": [ty, "null"]})
}

/// `components/schemas`: the shapes results share.
fn schemas() -> Value {
    json!({
        "Service": service_schema(),
        "Socket": socket_schema(),
        "SpecState": spec_state_schema(),
        "ScanSummary": scan_summary_schema(),
        "Health": health_schema(),
        "LastScan": last_scan_schema(),
        "MethodEntry": method_entry_schema(),
        "Traffic": traffic_schema(),
        "TrafficWindow": traffic_window_schema(),
    })
}

/// The `router.traffic` result.
fn traffic_schema() -> Value {
    let series = |what: &str| json!({"type": "array", "description": what, "items": {"type": ["number", "null"]}});
    json!({
        "type": "object",
        "required": ["slot_secs", "slots", "services"],
        "properties": {
            "slot_secs": {"type": "integer", "description": "Seconds per slot."},
            "slots": {"type": "integer", "description": "Slots kept (15 minutes)."},
            "services": {
                "type": "array",
                "description": "Per service (the router's own endpoints as hero_router), by name.",
                "items": {
                    "type": "object",
                    "required": ["name", "windows", "slots"],
                    "properties": {
                        "name": {"type": "string"},
                        "windows": {
                            "type": "object",
                            "required": ["1m", "5m", "15m"],
                            "properties": {
                                "1m": schema_ref("TrafficWindow"),
                                "5m": schema_ref("TrafficWindow"),
                                "15m": schema_ref("TrafficWindow"),
                            }
                        },
                        "slots": {
                            "type": "object",
                            "description": "The last 15 minutes slot by slot, oldest first.",
                            "properties": {
                                "rps": series("Requests per second."),
                                "errors": series("Errors (every class)."),
                                "p50_ms": series("Median latency (null: no request)."),
                                "p95_ms": series("95th percentile latency."),
                                "p99_ms": series("99th percentile latency."),
                            }
                        }
                    }
                }
            }
        }
    })
}

/// One window of `router.traffic`.
fn traffic_window_schema() -> Value {
    let ms = |what: &str| json!({"type": ["number", "null"], "description": format!("{what} latency to the answer's head, in ms (a histogram bucket's upper bound; null: no request).")});
    json!({
        "type": "object",
        "required": ["requests", "errors", "rps", "p50_ms", "p95_ms", "p99_ms"],
        "properties": {
            "requests": {"type": "integer"},
            "errors": {
                "type": "object",
                "description": "4xx and 5xx answered by the service; errors the router made itself.",
                "properties": {
                    "service_4xx": {"type": "integer"},
                    "service_5xx": {"type": "integer"},
                    "router": {"type": "integer"},
                }
            },
            "rps": {"type": "number", "description": "Requests per second over the window."},
            "p50_ms": ms("Median"),
            "p95_ms": ms("95th percentile"),
            "p99_ms": ms("99th percentile"),
        }
    })
}

/// A service as `router.services` and `router.service` show it (docs/json-rpc.md#service-object).
fn service_schema() -> Value {
    json!({
        "type": "object",
        "required": ["name", "status", "sockets", "title", "version", "description", "methods_count", "spec"],
        "properties": {
            "name": {"type": "string"},
            "status": {
                "type": "string",
                "enum": ["healthy", "degraded", "unhealthy", "non_rpc"],
                "description": "healthy: its rpc socket is live; degraded: its rpc socket is \
                    busy; non_rpc: no rpc socket but another socket is live; else unhealthy."
            },
            "sockets": array_of("Socket"),
            "error": {
                "type": "string",
                "description": "Why its directory could not be listed, if it could not."
            },
            "title": nullable("string"),
            "version": nullable("string"),
            "description": nullable("string"),
            "methods_count": {"type": ["integer", "null"], "minimum": 0},
            "spec": schema_ref("SpecState")
        },
        "additionalProperties": true
    })
}

/// One socket of a service.
fn socket_schema() -> Value {
    json!({
        "type": "object",
        "required": ["kind", "path", "state", "since_unix_ms"],
        "properties": {
            "kind": {"type": "string", "description": "File stem: rpc, admin, web_<name>, …"},
            "path": {"type": "string"},
            "state": {
                "type": "string",
                "enum": ["live", "busy", "refused", "denied", "not_socket"]
            },
            "since_unix_ms": {
                "type": "integer",
                "minimum": 0,
                "description": "Unix ms of the socket's last state change."
            },
            "detail": {"type": "string", "description": "Why the state is what it is."},
            "refused_streak": {"type": "integer", "minimum": 0},
            "reap_skipped": {
                "type": "string",
                "enum": SkipReason::ALL.map(SkipReason::as_str),
                "description": "Why the last reap round kept this refused socket."
            }
        },
        "additionalProperties": true
    })
}

/// What the catalog knows of a service's OpenRPC document.
fn spec_state_schema() -> Value {
    json!({
        "type": "object",
        "required": ["state", "reason", "fingerprint", "openrpc", "fetched_unix_ms"],
        "properties": {
            "state": {
                "type": "string",
                "enum": ["ok", "invalid", "absent", "error", "stale"],
                "description": "stale: the last fetch failed; the last good document is kept and served, fetched_unix_ms says when it was fetched."
            },
            "reason": nullable("string"),
            "fingerprint": {
                "type": ["string", "null"],
                "pattern": "^sha256:[0-9a-f]{64}$",
                "description": "SHA-256 of the document as fetched."
            },
            "openrpc": {
                "type": ["string", "null"],
                "description": "The document's openrpc version."
            },
            "fetched_unix_ms": {"type": ["integer", "null"], "minimum": 0}
        },
        "additionalProperties": true
    })
}

/// The `router.scan` result.
fn scan_summary_schema() -> Value {
    let count = json!({"type": "integer", "minimum": 0});
    json!({
        "type": "object",
        "required": ["services", "sockets", "live", "busy", "refused", "reaped", "duration_ms"],
        "properties": {
            "services": count,
            "sockets": count,
            "live": count,
            "busy": count,
            "refused": count,
            "reaped": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Socket paths this scan removed."
            },
            "duration_ms": count
        },
        "additionalProperties": true
    })
}

/// The `router.health` result.
fn health_schema() -> Value {
    json!({
        "type": "object",
        "required": ["status", "version", "uptime_secs", "services", "ready"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "degraded"]},
            "version": {"type": "string"},
            "uptime_secs": {"type": "integer", "minimum": 0},
            "services": {"type": "integer", "minimum": 0},
            "ready": {
                "type": "boolean",
                "description": "A full scan has succeeded and no core task has failed."
            },
            "reason": {"type": "string", "description": "Why the status is degraded."},
            "last_scan": {
                "oneOf": [schema_ref("LastScan"), {"type": "null"}],
                "description": "The last full scan; null until the first one has finished."
            },
            "listeners": {
                "type": "object",
                "description": "The TCP listeners as bound: service (routing, /rpc, /mcp, /docs) and admin (the dashboard).",
                "properties": {
                    "service": {"type": "array", "items": {"type": "string"}},
                    "admin": {"type": "array", "items": {"type": "string"}}
                }
            }
        },
        "additionalProperties": true
    })
}

/// The last full scan, in `router.health`.
fn last_scan_schema() -> Value {
    json!({
        "type": "object",
        "required": ["at_unix_ms", "duration_ms", "ok", "error"],
        "properties": {
            "at_unix_ms": {"type": "integer", "minimum": 0},
            "duration_ms": {"type": "integer", "minimum": 0},
            "ok": {"type": "boolean", "description": "The socket root could be read."},
            "error": {"type": ["string", "null"], "description": "Why it could not."}
        },
        "additionalProperties": true
    })
}

/// One entry of `router.methods`.
fn method_entry_schema() -> Value {
    json!({
        "type": "object",
        "required": ["service", "method", "summary"],
        "properties": {
            "service": {"type": "string"},
            "method": {"type": "string", "description": "<service>.<name>, callable as is."},
            "summary": nullable("string")
        },
        "additionalProperties": true
    })
}

/// `components/errors`: every error the router itself answers with.
fn errors() -> Value {
    let error = |code: i32, message: &str| json!({"code": code, "message": message});
    json!({
        "NoSuchService": error(NO_SUCH_SERVICE, "no such service"),
        "NotLive": error(NOT_LIVE, "service has no live rpc socket, or it stayed busy"),
        "UpstreamTimeout": error(UPSTREAM_TIMEOUT, "upstream timed out"),
        "BadUpstream": error(BAD_UPSTREAM, "upstream answered something that is not JSON-RPC"),
        "NoSpec": error(NO_SPEC, "service has no OpenRPC document"),
        "InvalidParams": error(INVALID_PARAMS, "invalid params"),
    })
}

#[cfg(test)]
mod tests;
