//! One service's detail for the dashboard (`GET /api/dashboard/service/{name}`): the table's
//! and the catalog's fields, and its methods with their params read from the OpenRPC document
//! (every local `$ref` expanded, as the docs show them), each with example params for the
//! "try it" form.

use serde_json::{Map, Value, json};

use crate::docs::{dereference, example_value, readable_type};
use crate::registry::catalog::{CatalogEntry, ManifestInfo, ServiceView};

/// Methods listed at most: a hostile document costs bounded work.
const MAX_METHODS: usize = 1000;

/// Params listed at most per method.
const MAX_PARAMS: usize = 64;

/// The detail of one service.
pub(super) fn detail(
    view: &ServiceView<'_>,
    entry: Option<&CatalogEntry>,
    history: Vec<Value>,
) -> Value {
    let name = &view.service.name;
    let document = entry.and_then(|e| e.document.as_ref());
    let methods = document
        .and_then(|d| serde_json::from_str::<Value>(d.get()).ok())
        .map(|doc| methods(&dereference(&doc)))
        .unwrap_or_default();
    json!({
        "service": view,
        "manifest": entry.map(|e| info(&e.manifest, e.manifest_error.as_deref())),
        "info": entry.map(|e| info(&e.info, None)),
        "methods": methods,
        "links": {
            "docs": document.map(|_| format!("/docs/{name}")),
            "openrpc": document.map(|_| format!("/docs/{name}/openrpc.json")),
            "mcp": format!("/mcp/{name}"),
        },
        "history": history,
    })
}

fn info(m: &ManifestInfo, error: Option<&str>) -> Value {
    json!({
        "title": m.title,
        "version": m.version,
        "description": m.description,
        "error": error,
    })
}

/// The methods of a dereferenced document, in document order.
pub(super) fn methods(doc: &Value) -> Vec<Value> {
    let Some(list) = doc["methods"].as_array() else {
        return Vec::new();
    };
    list.iter()
        .take(MAX_METHODS)
        .filter_map(|m| {
            let name = m["name"].as_str()?;
            let by_name = m["paramStructure"] == "by-name";
            let examples = example_params(m);
            let mut params = Vec::new();
            let (mut positional, mut named) = (Vec::new(), Map::new());
            for p in m["params"].as_array().into_iter().flatten().take(MAX_PARAMS) {
                let Some(pname) = p["name"].as_str() else {
                    continue;
                };
                let schema = &p["schema"];
                let example = examples
                    .as_ref()
                    .and_then(|e| e.get(pname).cloned())
                    .unwrap_or_else(|| example_value(schema));
                positional.push(example.clone());
                named.insert(pname.to_owned(), example);
                params.push(json!({
                    "name": pname,
                    "required": p["required"].as_bool().unwrap_or(false),
                    "type": readable_type(schema),
                    "summary": p["summary"].as_str(),
                    "description": p["description"].as_str(),
                }));
            }
            let example = if by_name {
                Value::Object(named)
            } else {
                Value::Array(positional)
            };
            Some(json!({
                "name": name,
                "summary": m["summary"].as_str(),
                "description": m["description"].as_str(),
                "param_structure": m["paramStructure"].as_str().unwrap_or("either"),
                "params": params,
                "result": m["result"]["schema"].is_object().then(|| readable_type(&m["result"]["schema"])),
                "example_params": example,
            }))
        })
        .collect()
}

/// The params of the method's first example, by name.
fn example_params(m: &Value) -> Option<Map<String, Value>> {
    let params = m["examples"].get(0)?["params"].as_array()?;
    Some(
        params
            .iter()
            .filter_map(|p| Some((p["name"].as_str()?.to_owned(), p.get("value")?.clone())))
            .collect(),
    )
}
