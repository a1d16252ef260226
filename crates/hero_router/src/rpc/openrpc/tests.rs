use std::path::PathBuf;
use std::sync::Arc;

use super::*;
use crate::catalog::validate::validate;

/// The `router.services` result, as a client reads it.
fn services(ctx: &Shared) -> Value {
    serde_json::from_str(ctx.registry.services_json().get()).expect("router.services is JSON")
}
use crate::registry::state::{SkipReason, SocketState};
use crate::registry::table::{LastScan, Service, ServiceStatus, Socket, Table};
use crate::registry::{self, ScanSummary};
use crate::shared::Shared;

/// Assert `value` conforms to `components/schemas/<component>` of the document.
#[track_caller]
fn assert_conforms(value: &Value, component: &str) {
    let doc = openrpc();
    let schema = json!({
        "allOf": [{"$ref": format!("#/components/schemas/{component}")}],
        "components": doc["components"],
    });
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .build(&schema)
        .expect("the component schemas compile");
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{component}: {errors:?} in {value}");
}

/// A router context over an empty, never-scanned registry.
fn ctx() -> (Shared, registry::TableWriter) {
    let (registry, writer) = registry::channel(PathBuf::from("/run/hero/sockets"));
    (Shared::for_tests(registry), writer)
}

/// One service with a live rpc socket and a refused admin socket.
fn service() -> Service {
    let socket = |kind: &str, state| Socket {
        kind: kind.into(),
        path: Arc::from(std::path::Path::new(&format!(
            "/run/hero/sockets/calc/{kind}.sock"
        ))),
        state,
        since_unix_ms: 1_700_000_000_000,
        detail: "".into(),
        refused_streak: 0,
        reap_skipped: (state == SocketState::Refused).then_some(SkipReason::Grace),
        identity: None,
    };
    Service {
        name: "calc".into(),
        status: ServiceStatus::Healthy,
        sockets: vec![
            socket("admin", SocketState::Refused),
            socket("rpc", SocketState::Live),
        ],
        error: None,
    }
}

/// Every `$ref` string in `value`, with where it was found.
fn refs(value: &Value, at: String, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                match (key.as_str(), child) {
                    ("$ref", Value::String(target)) => out.push((at.clone(), target.clone())),
                    _ => refs(child, format!("{at}/{key}"), out),
                }
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                refs(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn the_document_is_valid_openrpc_1_3() {
    let v = validate(&openrpc());
    assert_eq!(v.schema, Some("1.3"));
    assert!(v.is_valid(), "{:#?}", v.errors);
}

#[tokio::test]
async fn real_results_match_their_schemas() {
    let (ctx, writer) = ctx();
    assert_conforms(&ctx.health(), "Health");
    assert_eq!(services(&ctx), json!([]));

    for error in [None, Some("permission denied".to_owned())] {
        let table = Table {
            root: PathBuf::from("/run/hero/sockets"),
            services: vec![Arc::new(service())],
            ready: error.is_none(),
            last_scan: Some(LastScan {
                at_unix_ms: 1_700_000_000_000,
                duration_ms: 3,
                ok: error.is_none(),
                error,
            }),
            ..Table::default()
        };
        writer.table.send_replace(Arc::new(table));
        assert_conforms(&ctx.health(), "Health");
        for service in services(&ctx).as_array().expect("an array") {
            assert_conforms(service, "Service");
        }
    }

    let summary = ScanSummary {
        services: 1,
        sockets: 2,
        reaped: vec!["/run/hero/sockets/calc/admin.sock".into()],
        ..ScanSummary::default()
    };
    assert_conforms(&json!(summary), "ScanSummary");
}

#[test]
fn every_ref_points_at_a_component() {
    let doc = openrpc();
    let mut found = Vec::new();
    refs(&doc, String::new(), &mut found);
    assert!(found.len() > 10, "{found:?}");
    for (at, target) in found {
        let pointer = target.strip_prefix("#/components/");
        let resolved = pointer.and_then(|p| doc.pointer(&format!("/components/{p}")));
        assert!(resolved.is_some(), "{at}: $ref {target} points nowhere");
    }
}

#[test]
fn every_router_method_is_described_with_a_real_result() {
    let doc = openrpc();
    let methods = doc["methods"].as_array().expect("methods");
    let names: Vec<&str> = methods.iter().filter_map(|m| m["name"].as_str()).collect();
    assert_eq!(
        names,
        [
            "router.services",
            "router.service",
            "router.scan",
            "router.health",
            "router.spec",
            "router.methods",
            "router.traffic",
            "rpc.discover"
        ]
    );
    for m in methods {
        let schema = &m["result"]["schema"];
        assert!(
            schema.get("type").is_some() || schema.get("$ref").is_some(),
            "{}: result schema {schema}",
            m["name"]
        );
    }
    let codes: Vec<i64> = doc["components"]["errors"]
        .as_object()
        .expect("errors")
        .values()
        .filter_map(|e| e["code"].as_i64())
        .collect();
    for code in [-32001, -32002, -32003, -32004, -32005, -32602] {
        assert!(codes.contains(&code), "{code} missing");
    }
}
