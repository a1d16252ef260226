//! JSON-RPC 2.0 over `POST /rpc`: single calls, batches, notifications.
//!
//! Ids and `echo` params are kept as raw JSON text, so they round-trip byte for byte (big
//! integers, `1.5`, `-1` all come back exactly as sent).

use std::time::Duration;

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use serde_json::{Value, json};

type Raw = Box<RawValue>;

const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;
const REQUESTED_FAILURE: i64 = -32000;

/// One call as sent. `id` is `None` only when the member is absent (a notification);
/// `"id": null` is `Some("null")`.
#[derive(Deserialize)]
struct Call {
    jsonrpc: Option<Value>,
    method: Option<Value>,
    params: Option<Raw>,
    #[serde(default, deserialize_with = "present")]
    id: Option<Raw>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Raw>, D::Error> {
    Raw::deserialize(d).map(Some)
}

type Outcome = Result<String, (i64, &'static str)>;

/// Answers a `POST /rpc` body. `None` means nothing to answer (only notifications).
pub(crate) async fn handle(body: &[u8], openrpc: Option<&Value>) -> Option<String> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        let Ok(calls) = serde_json::from_slice::<Vec<Raw>>(body) else {
            return Some(response("null", Err((PARSE_ERROR, "parse error"))));
        };
        if calls.is_empty() {
            return Some(response("null", Err((INVALID_REQUEST, "invalid request"))));
        }
        let answers = futures_util::future::join_all(calls.iter().map(|c| one(c, openrpc))).await;
        let answers: Vec<String> = answers.into_iter().flatten().collect();
        return (!answers.is_empty()).then(|| format!("[{}]", answers.join(",")));
    }
    match serde_json::from_slice::<Raw>(body) {
        Ok(call) => one(&call, openrpc).await,
        Err(_) => Some(response("null", Err((PARSE_ERROR, "parse error")))),
    }
}

async fn one(raw: &RawValue, openrpc: Option<&Value>) -> Option<String> {
    let invalid = Err((INVALID_REQUEST, "invalid request"));
    let Ok(call) = serde_json::from_str::<Call>(raw.get()) else {
        return Some(response("null", invalid));
    };
    if call.id.as_deref().is_some_and(|id| !valid_id(id)) {
        return Some(response("null", invalid));
    }
    let id = call.id.as_deref().map_or("null", RawValue::get);
    let structured = call
        .params
        .as_deref()
        .is_none_or(|p| p.get().starts_with(['[', '{']));
    let (Some(Value::String(method)), true) = (&call.method, structured) else {
        return Some(response(id, invalid));
    };
    if call.jsonrpc.as_ref().and_then(Value::as_str) != Some("2.0") {
        return Some(response(id, invalid));
    }
    let outcome = dispatch(method, call.params.as_deref(), openrpc).await;
    call.id.is_some().then(|| response(id, outcome))
}

fn valid_id(id: &RawValue) -> bool {
    let s = id.get();
    s == "null" || s.starts_with(['"', '-']) || s.starts_with(|c: char| c.is_ascii_digit())
}

fn response(id: &str, outcome: Outcome) -> String {
    match outcome {
        Ok(result) => format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#),
        Err((code, message)) => {
            let error = json!({ "code": code, "message": message });
            format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{error}}}"#)
        }
    }
}

async fn dispatch(method: &str, params: Option<&RawValue>, openrpc: Option<&Value>) -> Outcome {
    let bad = (INVALID_PARAMS, "invalid params");
    let parsed: Value = match params {
        Some(p) => serde_json::from_str(p.get()).map_err(|_| bad)?,
        None => Value::Null,
    };
    let arg = |idx: usize, key: &str| match &parsed {
        Value::Array(a) => a.get(idx).cloned(),
        Value::Object(o) => o.get(key).cloned(),
        _ => None,
    };
    match method {
        "echo" => Ok(params.map_or("null", RawValue::get).to_owned()),
        "sleep_ms" => {
            let ms = arg(0, "ms").and_then(|v| v.as_u64()).ok_or(bad)?;
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(ms.to_string())
        }
        "add" => {
            let (Some(Value::Number(a)), Some(Value::Number(b))) = (arg(0, "a"), arg(1, "b"))
            else {
                return Err(bad);
            };
            Ok(add(&a, &b).ok_or(bad)?.to_string())
        }
        "fail" => Err((REQUESTED_FAILURE, "requested failure")),
        "rpc.discover" => openrpc
            .map(Value::to_string)
            .ok_or((METHOD_NOT_FOUND, "method not found")),
        _ => Err((METHOD_NOT_FOUND, "method not found")),
    }
}

/// Integer sum when both are integers and it fits, else the float sum (`None` if not finite).
fn add(a: &serde_json::Number, b: &serde_json::Number) -> Option<serde_json::Number> {
    let int = match (a.as_i64(), b.as_i64(), a.as_u64(), b.as_u64()) {
        (Some(x), Some(y), _, _) => x.checked_add(y).map(serde_json::Number::from),
        (_, _, Some(x), Some(y)) => x.checked_add(y).map(serde_json::Number::from),
        _ => None,
    };
    if int.is_some() {
        return int;
    }
    serde_json::Number::from_f64(a.as_f64()? + b.as_f64()?)
}

/// A document that breaks the OpenRPC meta-schema in plain sight (no `info.version`, a method
/// without a name, params that are not a list), for demos and tests of the router's catalog.
pub(crate) fn invalid_openrpc(name: &str) -> Value {
    json!({
        "openrpc": "1.3.2",
        "info": { "title": name },
        "methods": [
            { "summary": "A method without a name", "params": [], "result": { "name": "r", "schema": {} } },
            { "name": "echo", "params": { "value": {} }, "result": { "name": "value", "schema": {} } },
        ],
    })
}

/// The OpenRPC document of this service: `openrpc.json` at the crate's root, a file so that
/// the router's docs tests can render exactly what the service serves.
pub(crate) fn openrpc() -> Value {
    serde_json::from_str(include_str!("../openrpc.json")).expect("openrpc.json is JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The document describes this service as it is: its version, and exactly the methods
    /// `dispatch` answers.
    #[tokio::test]
    async fn the_document_matches_the_service() {
        let doc = openrpc();
        assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
        let names: Vec<&str> = doc["methods"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["echo", "sleep_ms", "add", "fail", "rpc.discover"]);
        let params: &RawValue = serde_json::from_str("[0]").unwrap();
        for name in names {
            let outcome = dispatch(name, Some(params), Some(&doc)).await;
            assert_ne!(
                outcome.err().map(|e| e.0),
                Some(METHOD_NOT_FOUND),
                "{name} is answered"
            );
        }
        let unknown = dispatch("nope", None, Some(&doc)).await;
        assert_eq!(unknown.err().map(|e| e.0), Some(METHOD_NOT_FOUND));
    }
}
