//! The fast path for the request agents send most: a plain `tools/call` of a known tool.
//!
//! rmcp serves each stateless request as a small session of its own (a spawned task, a peer,
//! channels, cancellation tokens, an untagged parse of every message kind): measured, that
//! made a `tools/call` cost about 2.4 times a routed JSON-RPC call (BENCHMARKS.md). This path
//! answers the common case directly, with rmcp's own model types for the answer, so the bytes
//! are the ones rmcp would send; anything it is not sure about (another method, a header or
//! `_meta` key it does not know, a version check that fails, an unknown tool) goes to rmcp,
//! which answers or refuses it. A differential test holds the two to the same bytes over
//! generated requests.

use std::borrow::Cow;
use std::collections::BTreeMap;

use http::request::Parts;
use http::{HeaderMap, StatusCode};
use rmcp::model::{
    CallToolResponse, JsonObject, JsonRpcMessage, JsonRpcResponse, JsonRpcVersion2_0, RequestId,
    ServerJsonRpcMessage, ServerResult,
};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::Gateway;
use crate::app::Response;

const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
const META_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
/// The stateless revision.
const MODERN: &str = "2026-07-28";
/// The same, as a JSON string.
const MODERN_QUOTED: &str = "\"2026-07-28\"";
/// The handshake revisions the gateway speaks, for a request that names one in its header.
const HANDSHAKE: [&str; 2] = ["2025-11-25", "2025-06-18"];

/// A `tools/call` request, and nothing else: unknown members send it to rmcp. Borrowed from
/// the body where it can be: only the arguments are needed as values.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Call<'a> {
    #[serde(borrow)]
    jsonrpc: Cow<'a, str>,
    #[serde(borrow)]
    id: &'a RawValue,
    #[serde(borrow)]
    method: Cow<'a, str>,
    #[serde(borrow)]
    params: Params<'a>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(default)]
    arguments: Option<JsonObject>,
    /// Keys as sent (one with escapes fails the parse: rmcp takes it); a key given twice
    /// counts once, with its last value, as in a JSON map.
    #[serde(rename = "_meta", default, borrow)]
    meta: Option<BTreeMap<&'a str, &'a RawValue>>,
}

/// The answer to `body` if it is a plain `tools/call` of a tool `gateway` has, else `None`
/// (rmcp then takes the request).
pub(super) async fn tools_call(gateway: &Gateway, parts: &Parts, body: &[u8]) -> Option<Response> {
    let headers = &parts.headers;
    // rmcp refuses a request without a Host (HTTP/1.0 may omit it): it judges those.
    let plain = parts.method == http::Method::POST
        && single(headers, "host").is_some()
        && content_type_json(headers)
        && accepts_both(headers);
    if !plain {
        return None;
    }
    let call: Call<'_> = serde_json::from_slice(body).ok()?;
    if call.jsonrpc != "2.0" || call.method != "tools/call" {
        return None;
    }
    let id = request_id(call.id)?;
    let modern = revision(headers, &call.params)?;
    let name = call.params.name.as_ref();
    let index = gateway.ready_index().await;
    let &i = index.by_name.get(name)?;
    let mut result = gateway
        .run(name, &index.tools[i], call.params.arguments.as_ref())
        .await;
    if !modern {
        // The handshake revisions have no `resultType`: rmcp clears it for them too.
        result.result_type = None;
    }
    let message: ServerJsonRpcMessage = JsonRpcMessage::Response(JsonRpcResponse {
        jsonrpc: JsonRpcVersion2_0,
        id,
        result: ServerResult::from(CallToolResponse::from(result)),
    });
    let body = serde_json::to_vec(&message).ok()?;
    Some(crate::app::answer(StatusCode::OK, "application/json", body))
}

/// The request id, if it is a string or an integer written as one (anything else, rmcp judges).
fn request_id(raw: &RawValue) -> Option<RequestId> {
    let text = raw.get();
    if text.starts_with('"') {
        let id: String = serde_json::from_str(text).ok()?;
        return Some(RequestId::String(id.into()));
    }
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<i64>().ok().map(RequestId::Number)
}

/// Whether the request is the stateless revision (`Some(true)`), a handshake revision
/// (`Some(false)`), or anything this path leaves to rmcp (`None`).
fn revision(headers: &HeaderMap, params: &Params<'_>) -> Option<bool> {
    let version = single(headers, "mcp-protocol-version")?;
    let method = optional(headers, "mcp-method")?;
    let name = optional(headers, "mcp-name")?;
    if method.is_some_and(|m| m != "tools/call") || name.is_some_and(|n| n != params.name) {
        return None;
    }
    let meta = match &params.meta {
        Some(meta) if !meta.is_empty() => meta,
        _ => return HANDSHAKE.contains(&version).then_some(false),
    };
    // Raw texts, compared as written: one spelled otherwise (escapes) goes to rmcp.
    let raw = |key| meta.get(key).map(|v: &&RawValue| v.get());
    let object = |v: &str| v.starts_with('{');
    let known = [META_VERSION, META_CAPABILITIES, META_CLIENT_INFO];
    let modern = version == MODERN
        && method.is_some()
        && name.is_some()
        && raw(META_VERSION) == Some(MODERN_QUOTED)
        && raw(META_CAPABILITIES).is_some_and(object)
        && raw(META_CLIENT_INFO).is_none_or(object)
        && meta.keys().all(|k| known.contains(k));
    modern.then_some(true)
}

/// The one value of header `name`, if there is exactly one and it is text.
fn single<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    let mut values = headers.get_all(name).iter();
    let value = values.next()?.to_str().ok()?;
    values.next().is_none().then_some(value)
}

/// `Some(None)` without header `name`, `Some(Some(v))` with exactly one, `None` otherwise.
fn optional<'h>(headers: &'h HeaderMap, name: &str) -> Option<Option<&'h str>> {
    match headers.get_all(name).iter().count() {
        0 => Some(None),
        _ => single(headers, name).map(Some),
    }
}

/// `Content-Type: application/json`, parameters allowed.
pub(super) fn content_type_json(headers: &HeaderMap) -> bool {
    single(headers, "content-type").is_some_and(|v| {
        let essence = v.split(';').next().unwrap_or_default().trim();
        essence.eq_ignore_ascii_case("application/json")
    })
}

/// One plain `Accept` header listing both `application/json` and `text/event-stream`, with
/// no parameters (a weight of zero would exclude one: rmcp judges those).
fn accepts_both(headers: &HeaderMap) -> bool {
    let Some(accept) = single(headers, "accept") else {
        return false;
    };
    if accept.contains(';') || accept.contains('"') {
        return false;
    }
    let types: Vec<&str> = accept.split(',').map(str::trim).collect();
    let has = |t: &str| types.iter().any(|x| x.eq_ignore_ascii_case(t));
    has("application/json") && has("text/event-stream")
}
