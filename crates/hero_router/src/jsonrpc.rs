//! The JSON-RPC 2.0 envelope on the wire (our own small codec), and the router's error codes.
//!
//! A router must never lose a valid request, so the envelope is parsed here rather than by a
//! server framework: `id` and `params` stay raw JSON ([`RawValue`]) and are passed through byte
//! for byte. A member `"id": null` is a request (it gets an answer with `id: null`); only a
//! missing `id` makes a notification.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

/// Not JSON (JSON-RPC 2.0's own code).
pub(crate) const PARSE_ERROR: i32 = -32700;
/// Not a valid request object (JSON-RPC 2.0's own code).
pub(crate) const INVALID_REQUEST: i32 = -32600;
/// The params do not fit the method (JSON-RPC 2.0's own code).
pub(crate) const INVALID_PARAMS: i32 = -32602;

/// No such service.
pub(crate) const NO_SUCH_SERVICE: i32 = -32001;
/// No live rpc socket, or busy for the whole upstream timeout.
pub(crate) const NOT_LIVE: i32 = -32002;
/// Upstream timed out.
pub(crate) const UPSTREAM_TIMEOUT: i32 = -32003;
/// Upstream answered something that is not JSON-RPC.
pub(crate) const BAD_UPSTREAM: i32 = -32004;
/// The service has no spec (none served, not fetched, or fetching failed).
pub(crate) const NO_SPEC: i32 = -32005;

/// Largest batch the router accepts. A bigger one is answered with one `-32600` error.
pub(crate) const MAX_BATCH: usize = 1000;
/// Deepest nesting of arrays and objects accepted (serde_json's own limit). Raw params are
/// forwarded unparsed, so the router checks this itself: it protects the services too.
pub(crate) const MAX_DEPTH: usize = 128;

/// A parsed request body.
#[derive(Debug)]
pub(crate) enum Body<'a> {
    /// One request.
    Single(Entry<'a>),
    /// A non-empty batch, in order.
    Batch(Vec<Entry<'a>>),
}

/// One element: a valid call, or an invalid request that still needs its error answer.
#[derive(Debug)]
pub(crate) enum Entry<'a> {
    /// A well-formed call or notification.
    Call(Call<'a>),
    /// Not a valid request object; answered with `-32600` (with its id if it had a usable one).
    Invalid {
        /// The id to answer with (`null` if none could be read).
        id: Option<&'a RawValue>,
        /// Why it is invalid.
        reason: String,
    },
}

/// A valid call.
#[derive(Debug, Clone)]
pub(crate) struct Call<'a> {
    /// Raw id, or `None` for a notification.
    pub id: Option<&'a RawValue>,
    /// Method name.
    pub method: Cow<'a, str>,
    /// Raw params, if present.
    pub params: Option<&'a RawValue>,
}

/// A whole-body error: the body is not JSON, or is an empty or oversized batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// Not valid JSON (or not UTF-8, or nested too deep): `-32700`.
    Parse(String),
    /// An empty batch or a batch over [`MAX_BATCH`]: one `-32600`.
    Invalid(String),
}

#[derive(Deserialize)]
struct RawRequest<'a> {
    #[serde(default, borrow, deserialize_with = "present")]
    jsonrpc: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    /// Raw, so that a method of the wrong type is refused under the request's id.
    #[serde(default, borrow, deserialize_with = "present")]
    method: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    params: Option<&'a RawValue>,
}

/// Deserializes a member that is present (even as `null`) into `Some`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// Parses a request body.
pub(crate) fn parse(body: &[u8]) -> Result<Body<'_>, BodyError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| BodyError::Parse(format!("body is not UTF-8: {e}")))?;
    if !nesting_within(body, MAX_DEPTH) {
        return Err(BodyError::Parse(format!(
            "JSON nested deeper than {MAX_DEPTH} levels"
        )));
    }
    // The usual body, one request object, read in one pass: what reads as a request is valid
    // JSON (the parser checks every byte of it). Anything else is read as a value first, to
    // tell a body that is not JSON from a request that is not valid.
    if text.trim_start().starts_with('{') {
        if let Ok(req) = serde_json::from_str::<RawRequest<'_>>(text) {
            return Ok(Body::Single(checked(req)));
        }
    }
    let raw: &RawValue = serde_json::from_str(text).map_err(|e| {
        // A byte-order mark comes from editors and some shells' files, and the parser's
        // "expected value at column 1" hides it.
        let hint = if text.starts_with('\u{feff}') {
            " (the body starts with a UTF-8 byte-order mark, which JSON does not allow: send it without)"
        } else {
            crate::json::parse_hint(&e)
        };
        BodyError::Parse(format!("{e}{hint}"))
    })?;
    let trimmed = raw.get().trim_start();
    if trimmed.starts_with('[') {
        let items: Vec<&RawValue> =
            serde_json::from_str(raw.get()).map_err(|e| BodyError::Parse(e.to_string()))?;
        if items.is_empty() {
            return Err(BodyError::Invalid("empty batch".into()));
        }
        if items.len() > MAX_BATCH {
            return Err(BodyError::Invalid(format!(
                "batch of {} requests is over the limit of {MAX_BATCH}; split it",
                items.len()
            )));
        }
        Ok(Body::Batch(items.into_iter().map(entry).collect()))
    } else {
        Ok(Body::Single(entry(raw)))
    }
}

/// Is bracket nesting (outside strings) within `limit` levels (the outermost container being
/// level 1)?
pub(crate) fn nesting_within(body: &[u8], limit: usize) -> bool {
    // Every level opens with a bracket, so a body with no more opening brackets than the limit
    // (those in strings counted too: the count can only be high) nests no deeper. The count is
    // a loop the compiler vectorises; the exact scan is left for the bodies it cannot clear.
    body.len() <= limit || opening_brackets(body) <= limit || nesting_scan(body, limit)
}

/// How many `[` and `{` the bytes hold (they differ only in the `0x20` bit, which no other
/// byte maps onto them).
fn opening_brackets(body: &[u8]) -> usize {
    body.iter().map(|b| usize::from((b | 0x20) == b'{')).sum()
}

/// [`nesting_within`] by one pass over the bytes, tracking strings and escapes.
fn nesting_scan(body: &[u8], limit: usize) -> bool {
    let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
    for &b in body {
        if in_str {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return false;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    true
}

fn entry(raw: &RawValue) -> Entry<'_> {
    let text = raw.get().trim_start();
    if !text.starts_with('{') {
        return Entry::Invalid {
            id: None,
            reason: "a request must be a JSON object".into(),
        };
    }
    match serde_json::from_str(raw.get()) {
        Ok(req) => checked(req),
        Err(e) => Entry::Invalid {
            id: None,
            reason: format!("malformed request: {e}"),
        },
    }
}

/// A request object's members checked: a call, or why it is not one.
fn checked(req: RawRequest<'_>) -> Entry<'_> {
    let id = req.id.filter(|id| valid_id(id));
    if req.id.is_some() && id.is_none() {
        return Entry::Invalid {
            id: None,
            reason: "id must be a string, a number or null".into(),
        };
    }
    if req.jsonrpc.map(RawValue::get) != Some("\"2.0\"") {
        return Entry::Invalid {
            id,
            reason: "\"jsonrpc\" must be \"2.0\"".into(),
        };
    }
    let Some(method) = req.method.and_then(method_name) else {
        return Entry::Invalid {
            id,
            reason: "\"method\" must be a string".into(),
        };
    };
    if let Some(p) = req.params {
        let first = p.get().trim_start().as_bytes().first().copied();
        if !matches!(first, Some(b'[' | b'{')) {
            return Entry::Invalid {
                id,
                reason: "\"params\" must be an array or an object".into(),
            };
        }
    }
    Entry::Call(Call {
        id,
        method,
        params: req.params,
    })
}

/// A `method` member's string, borrowed unless it has escapes; `None` if it is no string.
fn method_name(raw: &RawValue) -> Option<Cow<'_, str>> {
    // The parser has checked the value: a string without a backslash is the text between its
    // quotes (an unescaped quote would have ended it).
    if let Some(inner) = raw
        .get()
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
    {
        if !inner.contains('\\') {
            return Some(Cow::Borrowed(inner));
        }
    }
    match serde_json::from_str::<&str>(raw.get()) {
        Ok(s) => Some(Cow::Borrowed(s)),
        Err(_) => serde_json::from_str::<String>(raw.get())
            .ok()
            .map(Cow::Owned),
    }
}

fn valid_id(id: &RawValue) -> bool {
    matches!(
        id.get().trim_start().as_bytes().first(),
        Some(b'"' | b'-' | b'0'..=b'9' | b'n')
    )
}

/// Writes a success response with the raw id.
pub(crate) fn success(id: &RawValue, result: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{},"result":{}}}"#,
        id.get(),
        result
    )
}

/// Writes an error response; `id: None` is written as `null`.
pub(crate) fn error(
    id: Option<&RawValue>,
    code: i64,
    message: &str,
    data: Option<&serde_json::Value>,
) -> String {
    let id = id.map_or("null", RawValue::get);
    let message = serde_json::to_string(message).unwrap_or_else(|_| "\"error\"".into());
    match data {
        Some(d) => format!(
            r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":{code},"message":{message},"data":{d}}}}}"#
        ),
        None => format!(
            r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":{code},"message":{message}}}}}"#
        ),
    }
}

/// Builds a forwarded request: same id and params (raw), the method without the service prefix.
pub(crate) fn forward_request(call: &Call<'_>, method: &str) -> String {
    request(call.id, method, call.params)
}

/// Writes a request: `id` and `params` as raw JSON (`id: None` makes a notification).
pub(crate) fn request(id: Option<&RawValue>, method: &str, params: Option<&RawValue>) -> String {
    const HEAD: &str = r#"{"jsonrpc":"2.0","method":"#;
    const ID: &str = r#","id":"#;
    const PARAMS: &str = r#","params":"#;
    // A method with nothing to escape (no quote, backslash or control character) is its own
    // text between quotes; any other is written by the serializer.
    let plain = method.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\');
    let escaped = (!plain).then(|| serde_json::to_string(method).unwrap_or_default());
    let method_len = escaped.as_ref().map_or(method.len() + 2, String::len);
    let len = HEAD.len()
        + method_len
        + id.map_or(0, |id| ID.len() + id.get().len())
        + params.map_or(0, |p| PARAMS.len() + p.get().len())
        + 1;
    // One allocation, of the exact size.
    let mut out = String::with_capacity(len);
    out.push_str(HEAD);
    match &escaped {
        Some(escaped) => out.push_str(escaped),
        None => {
            out.push('"');
            out.push_str(method);
            out.push('"');
        }
    }
    if let Some(id) = id {
        out.push_str(ID);
        out.push_str(id.get());
    }
    if let Some(p) = params {
        out.push_str(PARAMS);
        out.push_str(p.get());
    }
    out.push('}');
    out
}

/// One response object, read by [`parse_reply`]: the result as the service wrote it, or its
/// error.
#[derive(Debug)]
pub(crate) enum Reply<'a> {
    /// `result`, raw.
    Result(&'a RawValue),
    /// `error`, as sent.
    Error(ErrorObject<'a>),
}

/// A JSON-RPC error object as a peer sent it.
#[derive(Debug, Deserialize)]
pub(crate) struct ErrorObject<'a> {
    /// `code`.
    pub code: i64,
    /// `message`.
    #[serde(borrow)]
    pub message: Cow<'a, str>,
    /// `data`, raw, if present.
    #[serde(default, borrow)]
    pub data: Option<&'a RawValue>,
}

/// Reads one JSON-RPC 2.0 response object; `None` if `body` is not one (see
/// [`is_response`]), or its error has no integer `code` or no string `message`.
pub(crate) fn parse_reply(body: &[u8]) -> Option<Reply<'_>> {
    match envelope(body)? {
        Outcome::Result(result) => Some(Reply::Result(result)),
        Outcome::Error(error) => serde_json::from_str(error.get()).ok().map(Reply::Error),
    }
}

/// True if `body` is one JSON-RPC 2.0 response object: `"jsonrpc": "2.0"` and exactly one of
/// `result` and `error`.
#[cfg(test)]
pub(crate) fn is_response(body: &[u8]) -> bool {
    envelope(body).is_some()
}

/// Checks that `body` is one JSON-RPC 2.0 response object, as a routed call's answer must be
/// to be passed on as it is (CONTRACT §4): `"jsonrpc": "2.0"`, an `id` member, exactly one of
/// `result` and `error`, and an error with an integer `code` and a string `message`. The
/// error says what is wrong, for the caller's `-32004`. The id is not compared with the call's:
/// the service's response is returned as it is, whatever id it names.
pub(crate) fn check_reply(body: &[u8]) -> Result<(), &'static str> {
    let (outcome, id) = envelope_with_id(body).ok_or_else(|| not_a_response(body))?;
    if let Outcome::Error(e) = outcome {
        serde_json::from_str::<ErrorObject<'_>>(e.get())
            .map_err(|_| "an error without an integer code and a string message")?;
    }
    id.map(|_| ()).ok_or("a response without an id")
}

/// What keeps `body` from being one JSON-RPC 2.0 response object, in words a service author
/// can act on. Only looked at once the body failed the check.
fn not_a_response(body: &[u8]) -> &'static str {
    #[derive(Deserialize)]
    struct Members<'a> {
        #[serde(default, borrow, deserialize_with = "present")]
        jsonrpc: Option<&'a RawValue>,
        // Named only so that an `id` given twice is found.
        #[serde(default, borrow, rename = "id", deserialize_with = "present")]
        _id: Option<&'a RawValue>,
        #[serde(default, borrow, deserialize_with = "present")]
        result: Option<&'a RawValue>,
        #[serde(default, borrow, deserialize_with = "present")]
        error: Option<&'a RawValue>,
    }
    if body.starts_with(b"\xEF\xBB\xBF") {
        return "a byte-order mark before the JSON (not a JSON-RPC response)";
    }
    if std::str::from_utf8(body).is_err() {
        return "bytes that are not UTF-8 (not a JSON-RPC response)";
    }
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(body) {
        return if e.is_eof() || body.trim_ascii().is_empty() {
            "an empty or cut-off body (not a JSON-RPC response)"
        } else if e.to_string().starts_with("trailing characters") {
            "JSON followed by more bytes (not a JSON-RPC response)"
        } else {
            "something that is not JSON (not a JSON-RPC response)"
        };
    }
    match body.trim_ascii_start().first() {
        Some(b'{') => {}
        Some(b'[') => return "an array, not one response object (not a JSON-RPC response)",
        _ => return "a JSON value that is not an object (not a JSON-RPC response)",
    }
    let m = match serde_json::from_slice::<Members<'_>>(body) {
        Ok(m) => m,
        Err(e) if e.to_string().starts_with("duplicate field") => {
            return "a response with a member given twice (not a JSON-RPC response)";
        }
        Err(_) => return "something that is not a JSON-RPC response",
    };
    let Some(jsonrpc) = m.jsonrpc else {
        return "a JSON object without \"jsonrpc\": \"2.0\" (not a JSON-RPC response)";
    };
    if jsonrpc.get() != "\"2.0\"" {
        return "a response whose \"jsonrpc\" is not \"2.0\" (not a JSON-RPC response)";
    }
    match (m.result, m.error) {
        (Some(_), Some(_)) => "a response with both result and error (not a JSON-RPC response)",
        (None, None) => "a response with neither result nor error (not a JSON-RPC response)",
        _ => "something that is not a JSON-RPC response",
    }
}

/// The member a response object carries.
enum Outcome<'a> {
    Result(&'a RawValue),
    Error(&'a RawValue),
}

fn envelope(body: &[u8]) -> Option<Outcome<'_>> {
    envelope_with_id(body).map(|(outcome, _)| outcome)
}

/// The response object's outcome and its `id` member (raw, if present), in one parse.
fn envelope_with_id(body: &[u8]) -> Option<(Outcome<'_>, Option<&RawValue>)> {
    // One check of the whole body's UTF-8: read from a `&[u8]`, the parser checks every
    // string and raw member on its own, and that cost more than the rest of the read.
    let text = std::str::from_utf8(body).ok()?;
    serde_json::from_str::<ReplyMembers<'_>>(text)
        .ok()?
        .envelope()
}

/// The members of a response object the router reads, raw.
#[derive(Deserialize)]
struct ReplyMembers<'a> {
    #[serde(default, borrow, deserialize_with = "present")]
    jsonrpc: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    result: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    error: Option<&'a RawValue>,
}

impl<'a> ReplyMembers<'a> {
    /// The outcome and the id, if these are the members of a JSON-RPC 2.0 response.
    fn envelope(self) -> Option<(Outcome<'a>, Option<&'a RawValue>)> {
        if self.jsonrpc.map(RawValue::get) != Some("\"2.0\"") {
            return None;
        }
        let outcome = match (self.result, self.error) {
            (Some(result), None) => Outcome::Result(result),
            (None, Some(error)) => Outcome::Error(error),
            _ => return None,
        };
        Some((outcome, self.id))
    }
}

#[cfg(test)]
mod tests;
