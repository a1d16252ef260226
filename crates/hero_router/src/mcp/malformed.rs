//! Malformed MCP requests get JSON-RPC errors in JSON bodies (CONTRACT §10, §4's codes).
//!
//! rmcp refuses some requests in plain text (`415`, `406`) and reads others as the wrong
//! mistake: a body that is not JSON, or a `tools/call` whose `arguments` are not an object,
//! gets "method not found" or a media-type complaint. Clients then report a transport
//! failure instead of what to fix. So before rmcp sees a request:
//! - a body that is not JSON is `-32700` (HTTP 400);
//! - a `tools/call` whose `params` is not an object with a string `name`, or whose
//!   `arguments` is not an object, is `-32602` with the request's id;
//! - an MCP id that is null or not an integer is `-32600`; `_meta` that is no object, an
//!   `initialize` without params and a `cursor` that is no string are `-32602`;
//! - `Accept: application/json` (or `*/*`, `application/*`) without `text/event-stream` is
//!   served: the gateway answers JSON only, which such a client accepts;
//! - a `Content-Type` other than `application/json` is `415` whatever the method (rmcp served
//!   `tools/list` anyway);
//! - a JSON-RPC response a client posts is `202 Accepted` and dropped (the gateway sends no
//!   requests; rmcp said "method must be a string");
//!
//! and after, any refusal rmcp writes in plain text is rewritten as a JSON-RPC error with
//! the same status and rmcp's words (`-32600`).

use http::request::Parts;
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use crate::app::Response;
use crate::jsonrpc::{self, INVALID_PARAMS, INVALID_REQUEST, PARSE_ERROR};

/// Longest refusal text of rmcp's copied into an error message.
const MAX_REFUSAL: usize = 1024;

/// The answer to a request that is malformed in a way rmcp would misreport, if it is one.
/// May add `text/event-stream` to an `Accept` that takes JSON only (see the module docs).
/// `request_id` goes into each error's `data`.
pub(super) fn precheck(parts: &mut Parts, body: &[u8], request_id: &str) -> Option<Response> {
    accept_json_only(&mut parts.headers);
    // Every POST, whatever its method (rmcp let `tools/list` through with any type).
    if !super::fast::content_type_json(&parts.headers) {
        let why = "Unsupported Media Type: Content-Type must be application/json".to_owned();
        let status = StatusCode::UNSUPPORTED_MEDIA_TYPE;
        return Some(error(status, Value::Null, INVALID_REQUEST, why, request_id));
    }
    let message: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            let hint = crate::json::parse_hint(&e);
            let why = format!("parse error: the body is not JSON ({e}){hint}");
            return Some(error(
                StatusCode::BAD_REQUEST,
                Value::Null,
                PARSE_ERROR,
                why,
                request_id,
            ));
        }
    };
    // A message that is no MCP request at all: 400, `-32600`.
    let invalid = |id, why| {
        Some(error(
            StatusCode::BAD_REQUEST,
            id,
            INVALID_REQUEST,
            why,
            request_id,
        ))
    };
    if !message.is_object() {
        // rmcp says 415 to a batch, which is no media-type problem.
        let why = match message {
            Value::Array(_) => "invalid request: one JSON-RPC message per request (MCP over HTTP has no batches since protocol 2025-06-18): send each message on its own".to_owned(),
            other => format!("invalid request: a JSON-RPC message is an object, not {}", crate::json::kind(&other)),
        };
        return invalid(Value::Null, why);
    }
    let answers = message.get("result").is_some() || message.get("error").is_some();
    if answers && message.get("method").is_some() {
        let why = "invalid request: a JSON-RPC message is a request (`method`) or a response (`result` or `error`), not both".to_owned();
        let id = message.get("id").filter(|id| mcp_id(id)).cloned();
        return invalid(id.unwrap_or(Value::Null), why);
    }
    // A response (to a request the gateway never sends): accepted and dropped, as Streamable
    // HTTP has the server do with a response a client posts. Its id is one MCP allows, or
    // null (the answer to a request that could not be read).
    if answers
        && message
            .get("id")
            .is_some_and(|id| id.is_null() || mcp_id(id))
        && message.get("jsonrpc") == Some(&json!("2.0"))
    {
        let mut accepted = Response::new(crate::app::full(bytes::Bytes::new()));
        *accepted.status_mut() = StatusCode::ACCEPTED;
        return Some(accepted);
    }
    // Not a JSON-RPC message (no "jsonrpc": "2.0", a method that is no string, params that
    // are neither array nor object, an id of another type): rmcp says 415, which blames the
    // media type. Said as JSON-RPC says it.
    if let Ok(jsonrpc::Body::Single(jsonrpc::Entry::Invalid { id, reason })) = jsonrpc::parse(body)
    {
        let id = id
            .and_then(|i| serde_json::from_str(i.get()).ok())
            .unwrap_or(Value::Null);
        return invalid(id, format!("invalid request: {reason}"));
    }
    // JSON-RPC allows any number and null as an id; MCP's is a string or an integer, and
    // rmcp says 415 to the others.
    if let Some(id) = message.get("id").filter(|id| !mcp_id(id)) {
        let why = format!(
            "invalid request: an MCP request's id is a string or an integer, not {}",
            match id {
                Value::Number(_) => "a fraction or a number that large",
                other => crate::json::kind(other),
            }
        );
        return invalid(Value::Null, why);
    }
    let why = bad_tools_call(&message)
        .or_else(|| {
            // MCP's params are an object (JSON-RPC would allow an array): rmcp says 415 to one.
            let params = message.get("params")?;
            (!params.is_object()).then(|| {
                format!(
                    "invalid params: an MCP request's params are an object, not {}",
                    crate::json::kind(params)
                )
            })
        })
        .or_else(|| bad_params(&message))?;
    // A request's error is its answer (200); a notification has none to get, so the input is
    // refused as Streamable HTTP says: an HTTP error status, the error without an id.
    let (status, id) = match message.get("id") {
        Some(id) => (StatusCode::OK, id.clone()),
        None => (StatusCode::BAD_REQUEST, Value::Null),
    };
    Some(error(status, id, INVALID_PARAMS, why, request_id))
}

/// Whether `id` is an id MCP allows: a string, or an integer (in `i64`).
fn mcp_id(id: &Value) -> bool {
    match id {
        Value::String(_) => true,
        Value::Number(n) => n.is_i64(),
        _ => false,
    }
}

/// Why the params of `message` (an object, or none) do not fit its method, for the mistakes
/// rmcp misreports: its `_meta` not an object (415, the id lost), `initialize` without its
/// params ("method not found: initialize"), a `cursor` that is no string (page 1 served as if
/// none was given).
fn bad_params(message: &Value) -> Option<String> {
    let method = message.get("method").and_then(Value::as_str)?;
    let params = message.get("params");
    if let Some(meta) = params.and_then(|p| p.get("_meta")) {
        if !meta.is_object() && !meta.is_null() {
            return Some(format!(
                "invalid params: _meta must be an object, not {}",
                crate::json::kind(meta)
            ));
        }
    }
    // rmcp answers an initialize it cannot read with "method not found: initialize".
    let initialize_ok = |p: &Value| {
        p.get("protocolVersion").is_some_and(Value::is_string)
            && p.get("capabilities").is_some_and(Value::is_object)
            && p.get("clientInfo").is_some_and(|c| {
                c.get("name").is_some_and(Value::is_string)
                    && c.get("version").is_some_and(Value::is_string)
            })
    };
    if method == "initialize" && !params.is_some_and(initialize_ok) {
        return Some(
            "invalid params: initialize needs params: {\"protocolVersion\": \"2025-11-25\", \"capabilities\": {…}, \"clientInfo\": {\"name\": …, \"version\": …}}"
                .to_owned(),
        );
    }
    if let Some(cursor) = params.and_then(|p| p.get("cursor")) {
        if !cursor.is_string() && !cursor.is_null() {
            return Some(format!(
                "invalid params: cursor is the string a previous page's nextCursor gave, not {}",
                crate::json::kind(cursor)
            ));
        }
    }
    None
}

/// Why `message` is a `tools/call` request with params no tool call can have, if it is one.
fn bad_tools_call(message: &Value) -> Option<String> {
    if message.get("method").and_then(Value::as_str) != Some("tools/call") {
        return None;
    }
    let Some(params) = message.get("params") else {
        return Some("tools/call needs params: {\"name\": TOOL, \"arguments\": {…}}".to_owned());
    };
    let Some(params) = params.as_object() else {
        return Some(format!(
            "tools/call params must be an object {{\"name\": TOOL, \"arguments\": {{…}}}}, not {}",
            crate::json::kind(params)
        ));
    };
    if !params.get("name").is_some_and(Value::is_string) {
        return Some("tools/call params need the tool's \"name\", a string".to_owned());
    }
    match params.get("arguments") {
        None | Some(Value::Null | Value::Object(_)) => None,
        Some(other) => Some(format!(
            "tools/call arguments must be an object of the tool's arguments by name (its inputSchema lists them), not {}",
            crate::json::kind(other)
        )),
    }
}

/// Adds `text/event-stream` to an `Accept` header that lists `application/json` without it.
fn accept_json_only(headers: &mut http::HeaderMap) {
    let mut values = headers.get_all(header::ACCEPT).iter();
    let (Some(accept), None) = (values.next(), values.next()) else {
        return;
    };
    let Ok(text) = accept.to_str() else {
        return;
    };
    // Each media range with whether its weight leaves it acceptable (`q=0` excludes it).
    let ranges = || {
        text.split(',').map(|range| {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("");
            let excluded = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (media, !excluded)
        })
    };
    // `*/*` (curl's default) and `application/*` take JSON too; rmcp looks for the literal
    // type, so it is named.
    let named = ranges().any(|(m, ok)| ok && m.eq_ignore_ascii_case("application/json"));
    let wildcard =
        ranges().any(|(m, ok)| ok && (m.eq_ignore_ascii_case("application/*") || m == "*/*"));
    let stream = ranges().any(|(m, _)| m.eq_ignore_ascii_case("text/event-stream"));
    if (named || wildcard) && !stream {
        let json = if named { "" } else { ", application/json" };
        let widened = format!("{text}{json}, text/event-stream");
        if let Ok(v) = HeaderValue::from_str(&widened) {
            headers.insert(header::ACCEPT, v);
        }
    }
}

/// rmcp's `answer` with a plain-text refusal (status 400 or above, not JSON) rewritten as a
/// JSON-RPC error with the same status (and `request_id` in its `data`); any other answer as
/// it is.
pub(super) async fn json_refusal(answer: Response, request_id: &str) -> Response {
    let status = answer.status();
    let is_json = answer
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return with_request_id(answer, request_id).await;
    }
    if status.as_u16() < 400 {
        return answer;
    }
    let (_, body) = answer.into_parts();
    let text = match crate::app::collect(body, MAX_REFUSAL * 4).await {
        Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        None => String::new(),
    };
    let mut text = crate::json::cut(text.trim().to_owned(), MAX_REFUSAL);
    if text.is_empty() {
        text = status.canonical_reason().unwrap_or("refused").to_owned();
    }
    error(status, Value::Null, INVALID_REQUEST, text, request_id)
}

/// rmcp's JSON `answer` with `request_id` in its error's `data` (an unknown method, bad
/// params of a method the gateway leaves to rmcp), as every error the router makes has it;
/// any other answer as it is. Only a body that mentions `"error"` is parsed.
async fn with_request_id(answer: Response, request_id: &str) -> Response {
    let (parts, body) = answer.into_parts();
    let Some(bytes) = crate::app::collect(body, usize::MAX).await else {
        return Response::from_parts(parts, crate::app::full(bytes::Bytes::new()));
    };
    let rebuilt = |bytes| Response::from_parts(parts, crate::app::full(bytes));
    if !bytes.windows(7).any(|w| w == b"\"error\"") {
        return rebuilt(bytes);
    }
    let mut v: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(_) => return rebuilt(bytes),
    };
    let Some(error) = v.get_mut("error").and_then(Value::as_object_mut) else {
        return rebuilt(bytes);
    };
    // rmcp echoes what the client sent (an unknown method, a header that does not match the
    // body) whole: a huge name would come back whole.
    if let Some(Value::String(message)) = error.get_mut("message") {
        if message.len() > MAX_REFUSAL {
            *message = crate::json::cut_str(message, MAX_REFUSAL);
        }
    }
    match error.get_mut("data") {
        Some(Value::Object(data)) => {
            data.entry("request_id")
                .or_insert_with(|| json!(request_id));
        }
        None | Some(Value::Null) => {
            error.insert("data".into(), json!({"request_id": request_id}));
        }
        // A data of another shape stays as it is.
        Some(_) => {}
    }
    rebuilt(bytes::Bytes::from(v.to_string()))
}

/// A JSON-RPC error answer, naming the request's id in its `data` as every error the router
/// makes does.
fn error(status: StatusCode, id: Value, code: i32, message: String, request_id: &str) -> Response {
    let id = serde_json::value::to_raw_value(&id).ok();
    let body = jsonrpc::error(
        id.as_deref(),
        code.into(),
        &message,
        Some(&json!({"request_id": request_id})),
    );
    crate::app::answer(status, "application/json", body)
}

#[cfg(test)]
mod tests;
