//! One service's detail for the dashboard (`GET /api/dashboard/service/{name}`): the table's
//! and the catalog's fields, and its methods with their params read from the OpenRPC document
//! (every local `$ref` expanded, as the docs show them), each with example params for the
//! "try it" form.
//!
//! The methods are the costly part and depend on the document alone: they are built off the
//! connection threads and kept by the document's fingerprint in the docs cache
//! ([`crate::docs::cache`]), within the docs' budget. The rest is read fresh per request.

use std::ops::ControlFlow;
use std::sync::Arc;

use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::docs::budget::{Budget, Meter};
use crate::docs::cache::{self, Busy, Key, Kind, Shown, Status};
use crate::docs::deref::{Place, expand_each};
use crate::docs::{Page, example_value, readable_type};
use crate::registry::catalog::{CatalogEntry, ManifestInfo, ServiceView};

/// Methods listed at most: a hostile document costs bounded work.
const MAX_METHODS: usize = 1000;

/// Params listed at most per method.
const MAX_PARAMS: usize = 64;

/// The detail of one service, as JSON text; `methods` is the methods page of its document
/// (none without a document).
pub(super) fn detail(
    view: &ServiceView<'_>,
    entry: Option<&CatalogEntry>,
    history: Vec<Value>,
    methods: Option<&Page>,
) -> String {
    let name = &view.service.name;
    let document = entry.and_then(|e| e.document.as_ref());
    let links = json!({
        "docs": document.map(|_| format!("/docs/{name}")),
        "openrpc": document.map(|_| format!("/docs/{name}/openrpc.json")),
        "client_py": document.map(|_| format!("/docs/{name}/client.py")),
        "client_ts": document.map(|_| format!("/docs/{name}/client.ts")),
        "mcp": format!("/mcp/{name}"),
    });
    let listed_all = entry.is_none_or(|e| e.methods.len() <= MAX_METHODS);
    let note = match methods.and_then(|m| m.refused.as_ref()) {
        Some(why) => Some(format!(
            "The API document is too large or complex to list its methods here ({why}); read it at /docs/{name}/openrpc.json"
        )),
        None if document.is_some() && !listed_all => Some(format!(
            "Only the first {MAX_METHODS} of its {} methods are listed here; the API docs (/docs/{name}.md) and the OpenRPC document (/docs/{name}/openrpc.json) have them all",
            entry.map_or(0, |e| e.methods.len())
        )),
        None => None,
    }
    .map(Value::String);
    let service = serde_json::to_value(view).unwrap_or(Value::Null);
    let members = [
        ("history", Some(Value::Array(history).to_string())),
        (
            "info",
            Some(json!(entry.map(|e| info(&e.info, None))).to_string()),
        ),
        ("links", Some(links.to_string())),
        (
            "manifest",
            Some(json!(entry.map(|e| info(&e.manifest, e.manifest_error.as_deref()))).to_string()),
        ),
        ("methods", None),
        ("methods_note", note.map(|n| n.to_string())),
        ("service", Some(service.to_string())),
    ];
    // By hand, in the order a JSON object's keys sort (as before), so the kept methods text
    // is copied in, not parsed and printed again.
    let mut out = String::from("{");
    for (key, value) in members {
        let value = match (key, &value) {
            ("methods", _) => methods.map_or("[]", |m| m.text.as_str()),
            (_, Some(value)) => value.as_str(),
            (_, None) => continue,
        };
        if out.len() > 1 {
            out.push(',');
        }
        out.push('"');
        out.push_str(key);
        out.push_str("\":");
        out.push_str(value);
    }
    out.push('}');
    out
}

/// The methods of `document` for the detail, from the docs cache (by `fingerprint`), else
/// built on a render thread. `Err` when the render queue is full.
pub(super) async fn methods_served(
    document: Arc<RawValue>,
    fingerprint: Option<String>,
) -> Result<(Arc<Page>, Status), Busy> {
    let key = fingerprint.map(|fingerprint| Key {
        kind: Kind::Methods,
        fingerprint,
        shown: Shown::default(),
    });
    cache::shared()
        .get(key, move |budget| methods_page(document.get(), budget))
        .await
}

/// The methods of `document` as a JSON array, within `budget`: expanded one method at a
/// time, at most [`MAX_METHODS`]. Over the budget, an empty list that says why.
pub(super) fn methods_page(document: &str, budget: &Budget) -> Page {
    let page = |text: String, refused| Page { text, refused };
    let Ok(doc) = serde_json::from_str::<Value>(document) else {
        return page("[]".to_owned(), None);
    };
    let mut text = String::from("[");
    let mut push = |m: &Value, meter: &mut Meter| {
        if let Some(m) = method(m) {
            let m = m.to_string();
            meter.output(m.len());
            if text.len() > 1 {
                text.push(',');
            }
            text.push_str(&m);
        }
    };
    let listed = match doc.get("methods") {
        Some(Value::Array(items)) => items.len().min(MAX_METHODS),
        // Not an array (a reference to one, say): read once expanded.
        Some(_) => 1,
        None if doc.is_object() && doc.get("$ref").is_none() => 0,
        None => 1,
    };
    let mut meter = Meter::start(*budget);
    let walked = if listed == 0 {
        Ok(())
    } else {
        expand_each(&doc, &mut meter, |place, value, meter| {
            let list = match place {
                Place::Method(i) => {
                    push(&value, meter);
                    return if i + 1 < listed {
                        ControlFlow::Continue(())
                    } else {
                        ControlFlow::Break(())
                    };
                }
                Place::Methods => value.as_array(),
                Place::Whole => value["methods"].as_array(),
                _ => None,
            };
            for m in list.into_iter().flatten().take(MAX_METHODS) {
                push(m, meter);
            }
            // The methods come first: nothing after them is listed.
            ControlFlow::Break(())
        })
    };
    match walked.and(meter.result()) {
        Ok(()) => {
            text.push(']');
            page(text, None)
        }
        Err(why) => page("[]".to_owned(), Some(why)),
    }
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
#[cfg(test)]
pub(super) fn methods(doc: &Value) -> Vec<Value> {
    let Some(list) = doc["methods"].as_array() else {
        return Vec::new();
    };
    list.iter().take(MAX_METHODS).filter_map(method).collect()
}

/// One dereferenced method as the detail lists it; `None` without a name.
fn method(m: &Value) -> Option<Value> {
    let name = m["name"].as_str()?;
    let by_name = m["paramStructure"] == "by-name";
    let examples = example_params(m);
    let mut params = Vec::new();
    let (mut positional, mut named) = (Vec::new(), Map::new());
    for p in m["params"]
        .as_array()
        .into_iter()
        .flatten()
        .take(MAX_PARAMS)
    {
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

#[cfg(test)]
mod tests;
