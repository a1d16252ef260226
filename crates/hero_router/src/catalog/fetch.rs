//! Fetching one service's documents, and turning what came back into a catalog entry.
//!
//! [`fetch`] does the I/O: the manifest (`GET /.well-known/heroservice.json`) and, from an rpc
//! socket, the OpenRPC document (`GET /openrpc.json`, else `rpc.discover`), each bounded by the
//! catalog timeout and size cap, through the proxy's upstream pool. [`entry`] is a plain
//! function from what was fetched (and the previous entry) to the new entry: fingerprint,
//! validation, methods, info.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use serde_json::Value;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use super::refs;
use super::validate;
use crate::http1::OwnRequest;
use crate::registry::catalog::{CatalogEntry, ManifestInfo, Method, SpecInfo, SpecState};
use crate::upstream::SendError;
use crate::upstream::{self, CallError, CallOptions};
use crate::upstream::{Answer, Key, Pool};

/// Who the catalog's requests say they come from, so a service (or a test) can tell them
/// from the requests the router forwards.
pub const USER_AGENT: &str = concat!("hero_router/", env!("CARGO_PKG_VERSION"), " (catalog)");

/// The longest reason or error text kept in an entry.
const MAX_REASON: usize = 600;

/// What one fetch of a service brought back.
#[derive(Debug)]
pub(crate) struct Fetched {
    /// The manifest's fields, or why there are none.
    pub(crate) manifest: ManifestFetch,
    /// The spec.
    pub(crate) spec: SpecFetch,
}

/// The outcome of fetching a manifest.
#[derive(Debug)]
pub(crate) enum ManifestFetch {
    /// Its fields.
    Info(ManifestInfo),
    /// The service answered, with nothing usable (not found, not a JSON object).
    Unusable(String),
    /// No answer (timeout, down, a broken exchange): a previous manifest is kept.
    Failed(String),
}

/// The outcome of fetching a spec.
#[derive(Debug)]
pub(crate) enum SpecFetch {
    /// A JSON document, as served.
    Document(Box<RawValue>),
    /// The service has none.
    Absent(String),
    /// Fetching failed: a previous document is kept, marked stale.
    Error(String),
}

impl Fetched {
    /// True if something failed that a retry may fix: the catalog fetches again with backoff.
    pub(crate) fn failed(&self) -> bool {
        matches!(self.manifest, ManifestFetch::Failed(_))
            || matches!(self.spec, SpecFetch::Error(_))
    }
}

/// How to fetch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Deadline of one document.
    pub(crate) timeout: Duration,
    /// Largest document.
    pub(crate) max_document: usize,
}

/// Fetches the manifest from `key` and, if `rpc`, the OpenRPC document, both at once (a
/// service that hangs costs one timeout, not two). Every request says `connection: close`: a
/// catalog of a thousand services must not leave a thousand idle connections in the pool.
pub(crate) async fn fetch(
    pool: &Pool,
    key: &Key,
    service: &str,
    rpc: bool,
    limits: Limits,
) -> Fetched {
    let spec = async {
        if rpc {
            spec(pool, key, service, limits).await
        } else {
            SpecFetch::Absent("the service has no live rpc socket".into())
        }
    };
    let (manifest, spec) = tokio::join!(manifest(pool, key, limits), spec);
    Fetched { manifest, spec }
}

async fn manifest(pool: &Pool, key: &Key, limits: Limits) -> ManifestFetch {
    const WHAT: &str = "GET /.well-known/heroservice.json";
    let answer = match get(pool, key, "/.well-known/heroservice.json", limits).await {
        Ok(a) => a,
        Err(e) => return ManifestFetch::Failed(describe(WHAT, &e, limits)),
    };
    if !(200..300).contains(&answer.status) {
        return ManifestFetch::Unusable(format!("{WHAT} answered {}", answer.status));
    }
    match serde_json::from_slice::<Value>(&answer.body) {
        Ok(value) if value.is_object() => ManifestFetch::Info(info_of(&value)),
        Ok(_) => ManifestFetch::Unusable("the manifest is not a JSON object".into()),
        Err(e) => ManifestFetch::Unusable(not_json(WHAT, &answer.body, &e)),
    }
}

async fn spec(pool: &Pool, key: &Key, service: &str, limits: Limits) -> SpecFetch {
    const GET: &str = "GET /openrpc.json";
    let mut why_not_get = String::new();
    let status = match get(pool, key, "/openrpc.json", limits).await {
        Ok(a) if (200..300).contains(&a.status) => match serde_json::from_slice(&a.body) {
            Ok(doc) => return document(GET, doc),
            Err(e) => {
                why_not_get = not_json(GET, &a.body, &e);
                a.status
            }
        },
        Ok(a) => a.status,
        // A service that hangs or floods costs one timeout, not two.
        Err(e) => return SpecFetch::Error(describe("GET /openrpc.json", &e, limits)),
    };
    let how = CallOptions {
        timeout: limits.timeout,
        limit: limits.max_document,
        headers: &[("user-agent", USER_AGENT)],
        close: true,
        idempotent: true,
    };
    let discovered = tokio::time::timeout(
        limits.timeout,
        upstream::call(pool, key, service, "rpc.discover", None, &how),
    )
    .await
    .unwrap_or_else(|_| Err(CallError::unanswered(SendError::Timeout, service)));
    let neither = || {
        SpecFetch::Absent("the service serves neither GET /openrpc.json nor rpc.discover".into())
    };
    match discovered {
        Ok(doc) => document("rpc.discover", doc),
        // No answer to read (it failed, took too long, or was over the size limit): said in
        // the same words as for GET, and retried like any failed fetch.
        Err(CallError::Router {
            unanswered: Some(e),
            ..
        }) => SpecFetch::Error(describe("rpc.discover", &e, limits)),
        // GET /openrpc.json answered something, only not JSON: that is what is wrong.
        Err(CallError::Service { error, .. })
            if error.code == -32601 && !why_not_get.is_empty() =>
        {
            SpecFetch::Error(format!(
                "{why_not_get}, and rpc.discover is not implemented"
            ))
        }
        Err(CallError::Service { error, .. }) if error.code == -32601 => neither(),
        Err(CallError::Service { error, .. }) => SpecFetch::Error(bounded(format!(
            "rpc.discover answered an error: {}",
            error.message
        ))),
        // An answer that is no JSON-RPC response.
        Err(CallError::Router { code, .. }) if code == crate::jsonrpc::BAD_UPSTREAM => {
            if !why_not_get.is_empty() {
                SpecFetch::Error(format!(
                    "{why_not_get}, and rpc.discover no JSON-RPC result"
                ))
            } else if status == 404 {
                neither()
            } else {
                SpecFetch::Error(format!(
                    "GET /openrpc.json answered {status}, and rpc.discover no JSON-RPC result"
                ))
            }
        }
        Err(e @ CallError::Router { .. }) => {
            SpecFetch::Error(bounded(format!("rpc.discover: {e}")))
        }
    }
}

/// A document `what` answered, if the catalog can keep it: one nested deeper than
/// [`validate::MAX_DEPTH`] counts as a failed fetch (a kept document stays, `stale`).
fn document(what: &str, doc: Box<RawValue>) -> SpecFetch {
    if crate::jsonrpc::nesting_within(doc.get().as_bytes(), validate::MAX_DEPTH) {
        SpecFetch::Document(doc)
    } else {
        SpecFetch::Error(format!(
            "{what} answered a document nested deeper than {} levels",
            validate::MAX_DEPTH
        ))
    }
}

/// Why `body`, which `what` answered, is no JSON: the parser's word and where, and what the
/// bytes look like when that is the likely cause (a byte-order mark, gzip nobody asked for).
fn not_json(what: &str, body: &[u8], e: &serde_json::Error) -> String {
    let hint = if body.starts_with(b"\xEF\xBB\xBF") {
        " (it starts with a UTF-8 byte-order mark, which JSON does not allow)"
    } else if body.starts_with(&[0x1f, 0x8b]) {
        " (it is gzip-compressed, which the router did not ask for)"
    } else {
        ""
    };
    // Valid JSON, but a number past what a 64-bit float holds (`1e400`): the words must not
    // send the author looking for a syntax error.
    if e.to_string().starts_with("number out of range") {
        return bounded(format!(
            "{what} answered JSON with a number the router cannot hold (past a 64-bit float's range): {e}"
        ));
    }
    bounded(format!(
        "{what} answered something that is not JSON: {e}{hint}"
    ))
}

async fn get(pool: &Pool, key: &Key, path: &str, limits: Limits) -> Result<Answer, SendError> {
    let req = OwnRequest {
        method: "GET",
        path,
        headers: &[("user-agent", USER_AGENT), ("accept", "application/json")],
        body: b"",
        close: true,
        idempotent: true,
    };
    // Within the timeout as a whole (head and body together).
    let sent = pool.send(key, &req, limits.timeout, limits.max_document);
    tokio::time::timeout(limits.timeout, sent)
        .await
        .unwrap_or(Err(SendError::Timeout))
}

fn describe(what: &str, e: &SendError, limits: Limits) -> String {
    bounded(match e {
        SendError::Timeout => format!(
            "{what}: no whole answer within {}",
            humantime::format_duration(limits.timeout)
        ),
        SendError::Busy => format!("{what}: the service stayed busy (backlog full)"),
        SendError::Saturated => format!(
            "{what}: the service had --max-inflight-per-service requests in flight throughout"
        ),
        SendError::Down { detail, .. } => format!("{what}: not reachable: {detail}"),
        SendError::Broken(d) => format!("{what}: {d}"),
        e @ (SendError::Closed { .. } | SendError::TooLarge { .. }) => format!("{what}: {e}"),
    })
}

/// The new entry from what was fetched, given the previous entry of the same service.
///
/// The previous document (and what was derived from it) is kept when the new one has the
/// same fingerprint, and when fetching failed: a failed fetch never throws a good document
/// away (docs/catalog.md#retries-and-stale-documents); the entry is then `stale`, with the reason,
/// and `fetched_unix_ms` of the last success. A manifest that could not be fetched likewise keeps
/// the previous one.
pub(crate) fn entry(
    fetched: Fetched,
    prev: Option<&CatalogEntry>,
    now_unix_ms: u64,
) -> CatalogEntry {
    let (manifest, manifest_error) = match fetched.manifest {
        ManifestFetch::Info(m) => (m, None),
        ManifestFetch::Failed(e) if prev.is_some_and(|p| p.manifest_error.is_none()) => {
            let prev = prev.expect("checked");
            (prev.manifest.clone(), Some(reason(e)))
        }
        ManifestFetch::Unusable(e) | ManifestFetch::Failed(e) => {
            (ManifestInfo::default(), Some(reason(e)))
        }
    };
    let spec_of = |state, reason: Option<String>| SpecInfo {
        state,
        reason: reason.map(self::reason),
        fingerprint: None,
        openrpc: None,
        fetched_unix_ms: Some(now_unix_ms),
    };
    let none = |manifest, manifest_error, spec| CatalogEntry {
        manifest,
        manifest_error,
        spec,
        info: ManifestInfo::default(),
        document: None,
        methods: no_methods(),
    };
    // A failed fetch keeps a good document, `stale`; without one the entry is an `error`.
    let failed = |manifest, manifest_error, why: String| match prev.filter(|p| p.document.is_some())
    {
        None => none(
            manifest,
            manifest_error,
            spec_of(SpecState::Error, Some(why)),
        ),
        Some(prev) => CatalogEntry {
            manifest,
            manifest_error,
            spec: SpecInfo {
                state: SpecState::Stale,
                reason: Some(reason(why)),
                ..prev.spec.clone()
            },
            ..prev.clone()
        },
    };
    let doc = match fetched.spec {
        SpecFetch::Document(doc) => doc,
        SpecFetch::Absent(why) => {
            return none(
                manifest,
                manifest_error,
                spec_of(SpecState::Absent, Some(why)),
            );
        }
        SpecFetch::Error(why) => return failed(manifest, manifest_error, why),
    };
    let fingerprint = fingerprint(doc.get());
    if let Some(prev) = prev.filter(|p| p.spec.fingerprint.as_deref() == Some(&fingerprint)) {
        // The same document: what was derived from it stands (a stale entry is fresh again).
        let (state, reason) = match prev.spec.state {
            SpecState::Stale => validity(&serde_json::from_str(doc.get()).unwrap_or_default()),
            state => (state, prev.spec.reason.clone()),
        };
        return CatalogEntry {
            manifest,
            manifest_error,
            spec: SpecInfo {
                state,
                reason,
                fetched_unix_ms: Some(now_unix_ms),
                ..prev.spec.clone()
            },
            ..prev.clone()
        };
    }
    let value = match serde_json::from_str::<Value>(doc.get()) {
        Ok(value) => value,
        // The syntax is checked and the nesting too (`document`): what is left is what
        // serde_json cannot hold, such as a number out of range (`1e400`).
        Err(e) => {
            let why = format!("the document cannot be read: {e}");
            return failed(manifest, manifest_error, why);
        }
    };
    let (state, reason) = validity(&value);
    CatalogEntry {
        manifest,
        manifest_error,
        spec: SpecInfo {
            state,
            reason,
            fingerprint: Some(fingerprint.into_boxed_str()),
            openrpc: (value["openrpc"].as_str()).map(|v| bounded(v.to_owned()).into_boxed_str()),
            fetched_unix_ms: Some(now_unix_ms),
        },
        info: value.get("info").map(info_of).unwrap_or_default(),
        methods: methods_of(&value),
        document: Some(Arc::from(doc)),
    }
}

/// `ok`, or `invalid` with the first errors: the meta-schema's, then dangling `$ref`s.
fn validity(value: &Value) -> (SpecState, Option<Arc<str>>) {
    let mut errors = validate::validate(value).errors;
    if errors.is_empty() {
        errors = refs::check(value);
    }
    if errors.is_empty() {
        (SpecState::Ok, None)
    } else {
        (SpecState::Invalid, Some(reason(errors.join("; "))))
    }
}

/// The router's own entry, from its own documents (`openrpc`, `manifest`): no fetch over its
/// own socket, and no validation at run time (`rpc`'s tests validate its document against the
/// meta-schema).
pub(crate) fn own_entry(openrpc: &str, manifest: &Value, now_unix_ms: u64) -> CatalogEntry {
    let text = openrpc.to_owned();
    let doc: Value = serde_json::from_str(&text).unwrap_or_default();
    CatalogEntry {
        manifest: info_of(manifest),
        manifest_error: None,
        spec: SpecInfo {
            state: SpecState::Ok,
            reason: None,
            fingerprint: Some(fingerprint(&text).into_boxed_str()),
            openrpc: doc["openrpc"].as_str().map(Box::from),
            fetched_unix_ms: Some(now_unix_ms),
        },
        info: doc.get("info").map(info_of).unwrap_or_default(),
        methods: methods_of(&doc),
        document: RawValue::from_string(text).ok().map(Arc::from),
    }
}

/// `sha256:<hex>` of a document's bytes.
pub(crate) fn fingerprint(doc: &str) -> String {
    let digest = Sha256::digest(doc.as_bytes());
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in digest {
        out.push(char::from_digit(u32::from(b >> 4), 16).expect("nibble"));
        out.push(char::from_digit(u32::from(b & 0xf), 16).expect("nibble"));
    }
    out
}

/// `title`, `version` and `description` of a manifest or a spec's `info` (strings only; a
/// number as version is shown as written). A blank string (spaces and control characters
/// only) is none: the spec's stands in for a manifest's, everywhere the same.
fn info_of(v: &Value) -> ManifestInfo {
    let text = |k: &str| match &v[k] {
        Value::String(s) if s.chars().all(|c| c.is_whitespace() || c.is_control()) => None,
        Value::String(s) => Some(bounded(s.clone()).into_boxed_str()),
        Value::Number(n) => Some(n.to_string().into_boxed_str()),
        _ => None,
    };
    ManifestInfo {
        title: text("title"),
        version: text("version"),
        description: text("description"),
    }
}

/// The methods of an entry without any: one shared empty list (each empty `Arc<[_]>` would
/// allocate its own counts).
fn no_methods() -> Arc<[Method]> {
    static NONE: LazyLock<Arc<[Method]>> = LazyLock::new(|| Arc::from([]));
    NONE.clone()
}

/// The methods of a spec that have a name, in document order, each name once; a method given
/// as a `$ref` (OpenRPC allows a Reference Object there) is the method it points at, as the
/// docs, the clients and the MCP tools read it.
fn methods_of(doc: &Value) -> Arc<[Method]> {
    let Some(methods) = doc["methods"].as_array() else {
        return no_methods();
    };
    // A name listed twice (two `$ref`s to one method, say) is one method of the service.
    let mut seen = std::collections::HashSet::new();
    methods
        .iter()
        .filter_map(|m| {
            let m = super::refs::resolve(doc, m)?;
            if !seen.insert(m["name"].as_str()?) {
                return None;
            }
            Some(Method {
                name: m["name"].as_str()?.to_owned(),
                summary: m["summary"].as_str().map(|s| bounded(s.to_owned())),
            })
        })
        .collect()
}

/// Cuts a text a service controls to a size a log line and a table can carry.
fn bounded(s: String) -> String {
    crate::json::cut(s, MAX_REASON)
}

/// A reason for an entry: bounded, and in the shared form entries hold it in.
fn reason(s: String) -> Arc<str> {
    Arc::from(bounded(s))
}

#[cfg(test)]
mod tests;
