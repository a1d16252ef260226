//! Fetching one service's documents, and turning what came back into a catalog entry.
//!
//! [`fetch`] does the I/O: the manifest (`GET /.well-known/heroservice.json`) and, from an rpc
//! socket, the OpenRPC document (`GET /openrpc.json`, else `rpc.discover`), each bounded by the
//! catalog timeout and size cap, through the proxy's upstream pool. [`entry`] is a plain
//! function from what was fetched (and the previous entry) to the new entry: fingerprint,
//! validation, methods, info.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use super::refs;
use super::validate;
use crate::proxy::client::SendError;
use crate::proxy::pool::{Answer, Key, Pool};
use crate::registry::catalog::{CatalogEntry, ManifestInfo, Method, SpecInfo, SpecState};

/// Who the catalog's requests say they come from, so a service (or a test) can tell them
/// from the requests the router forwards.
pub const USER_AGENT: &str = concat!("hero_router/", env!("CARGO_PKG_VERSION"), " (catalog)");

/// The longest reason or error text kept in an entry.
const MAX_REASON: usize = 600;

/// What one fetch of a service brought back.
#[derive(Debug)]
pub(crate) struct Fetched {
    /// The manifest's fields, or why there are none.
    pub(crate) manifest: Result<ManifestInfo, String>,
    /// The spec.
    pub(crate) spec: SpecFetch,
}

/// The outcome of fetching a spec.
#[derive(Debug)]
pub(crate) enum SpecFetch {
    /// A JSON document, as served.
    Document(Box<RawValue>),
    /// The service has none.
    Absent(String),
    /// Fetching failed.
    Error(String),
}

/// How to fetch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Deadline of one document.
    pub(crate) timeout: Duration,
    /// Largest document.
    pub(crate) max_document: usize,
}

/// Fetches the manifest from `key` and, if `rpc`, the OpenRPC document. Every request says
/// `connection: close`: a catalog of a thousand services must not leave a thousand idle
/// connections in the pool.
pub(crate) async fn fetch(pool: &Pool, key: &Key, rpc: bool, limits: Limits) -> Fetched {
    let manifest = manifest(pool, key, limits).await;
    let spec = if rpc {
        spec(pool, key, limits).await
    } else {
        SpecFetch::Absent("the service has no live rpc socket".into())
    };
    Fetched { manifest, spec }
}

async fn manifest(pool: &Pool, key: &Key, limits: Limits) -> Result<ManifestInfo, String> {
    let answer = get(pool, key, "/.well-known/heroservice.json", limits)
        .await
        .map_err(|e| describe("GET /.well-known/heroservice.json", &e, limits))?;
    if !(200..300).contains(&answer.status) {
        return Err(format!(
            "GET /.well-known/heroservice.json answered {}",
            answer.status
        ));
    }
    let value: Value =
        serde_json::from_slice(&answer.body).map_err(|_| "the manifest is not JSON".to_owned())?;
    if !value.is_object() {
        return Err("the manifest is not a JSON object".into());
    }
    Ok(info_of(&value))
}

async fn spec(pool: &Pool, key: &Key, limits: Limits) -> SpecFetch {
    let mut why_not_get = String::new();
    match get(pool, key, "/openrpc.json", limits).await {
        Ok(a) if (200..300).contains(&a.status) => match serde_json::from_slice(&a.body) {
            Ok(doc) => return SpecFetch::Document(doc),
            Err(_) => why_not_get = "GET /openrpc.json answered something that is not JSON".into(),
        },
        Ok(_) => {}
        // A service that hangs or floods costs one timeout, not two.
        Err(e) => return SpecFetch::Error(describe("GET /openrpc.json", &e, limits)),
    }
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"rpc.discover"}"#;
    let request = format!(
        "POST /rpc HTTP/1.1\r\nhost: localhost\r\nuser-agent: {USER_AGENT}\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let answer = match exchange(pool, key, request.as_bytes(), limits).await {
        Ok(a) => a,
        Err(e) => return SpecFetch::Error(describe("rpc.discover", &e, limits)),
    };
    #[derive(Deserialize)]
    struct Reply {
        result: Option<Box<RawValue>>,
        error: Option<Value>,
    }
    let neither = || {
        SpecFetch::Absent("the service serves neither GET /openrpc.json nor rpc.discover".into())
    };
    match serde_json::from_slice::<Reply>(&answer.body) {
        Ok(Reply {
            result: Some(doc), ..
        }) => SpecFetch::Document(doc),
        Ok(Reply { error: Some(e), .. }) if e["code"] == -32601 => neither(),
        Ok(Reply { error: Some(e), .. }) => SpecFetch::Error(bounded(format!(
            "rpc.discover answered an error: {}",
            e["message"].as_str().unwrap_or("(no message)")
        ))),
        _ if answer.status == 404 && why_not_get.is_empty() => neither(),
        _ if !why_not_get.is_empty() => SpecFetch::Error(why_not_get),
        _ => SpecFetch::Error(format!(
            "rpc.discover answered {} with no JSON-RPC result",
            answer.status
        )),
    }
}

async fn get(pool: &Pool, key: &Key, path: &str, limits: Limits) -> Result<Answer, SendError> {
    let request = format!(
        "GET {path} HTTP/1.1\r\nhost: localhost\r\nuser-agent: {USER_AGENT}\r\nconnection: close\r\naccept: application/json\r\n\r\n"
    );
    exchange(pool, key, request.as_bytes(), limits).await
}

/// One exchange, within the timeout as a whole (head and body together).
async fn exchange(
    pool: &Pool,
    key: &Key,
    request: &[u8],
    limits: Limits,
) -> Result<Answer, SendError> {
    let sent = pool.exchange(key, request, limits.timeout, limits.max_document);
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
        SendError::Busy => format!("{what}: the service stayed busy"),
        SendError::Down(d) => format!("{what}: not reachable: {d}"),
        SendError::Broken(d) => format!("{what}: {d}"),
    })
}

/// The new entry from what was fetched. The previous entry's document (and what was derived
/// from it) is kept when the new one has the same fingerprint.
pub(crate) fn entry(
    fetched: Fetched,
    prev: Option<&CatalogEntry>,
    now_unix_ms: u64,
) -> CatalogEntry {
    let (manifest, manifest_error) = match fetched.manifest {
        Ok(m) => (m, None),
        Err(e) => (ManifestInfo::default(), Some(bounded(e))),
    };
    let spec_of = |state, reason: Option<String>| SpecInfo {
        state,
        reason: reason.map(bounded),
        fingerprint: None,
        openrpc: None,
        fetched_unix_ms: Some(now_unix_ms),
    };
    let doc = match fetched.spec {
        SpecFetch::Document(doc) => doc,
        SpecFetch::Absent(why) => {
            return CatalogEntry {
                manifest,
                manifest_error,
                spec: spec_of(SpecState::Absent, Some(why)),
                info: ManifestInfo::default(),
                document: None,
                methods: Arc::from([]),
            };
        }
        SpecFetch::Error(why) => {
            return CatalogEntry {
                manifest,
                manifest_error,
                spec: spec_of(SpecState::Error, Some(why)),
                info: ManifestInfo::default(),
                document: None,
                methods: Arc::from([]),
            };
        }
    };
    let fingerprint = fingerprint(doc.get());
    if let Some(prev) = prev.filter(|p| p.spec.fingerprint.as_deref() == Some(&fingerprint)) {
        return CatalogEntry {
            manifest,
            manifest_error,
            spec: SpecInfo {
                fetched_unix_ms: Some(now_unix_ms),
                ..prev.spec.clone()
            },
            ..prev.clone()
        };
    }
    let Ok(value) = serde_json::from_str::<Value>(doc.get()) else {
        // RawValue already checked the syntax; only a nesting too deep for serde_json lands here.
        return CatalogEntry {
            manifest,
            manifest_error,
            spec: spec_of(
                SpecState::Error,
                Some("the document is nested too deeply".into()),
            ),
            info: ManifestInfo::default(),
            document: None,
            methods: Arc::from([]),
        };
    };
    let mut errors = validate::validate(&value).errors;
    if errors.is_empty() {
        errors = refs::check(&value);
    }
    let (state, reason) = if errors.is_empty() {
        (SpecState::Ok, None)
    } else {
        (SpecState::Invalid, Some(errors.join("; ")))
    };
    CatalogEntry {
        manifest,
        manifest_error,
        spec: SpecInfo {
            state,
            reason: reason.map(bounded),
            fingerprint: Some(fingerprint),
            openrpc: value["openrpc"].as_str().map(|v| bounded(v.to_owned())),
            fetched_unix_ms: Some(now_unix_ms),
        },
        info: value.get("info").map(info_of).unwrap_or_default(),
        methods: methods_of(&value),
        document: Some(Arc::from(doc)),
    }
}

/// The router's own entry, from its own documents: no fetch over its own socket, and no
/// validation at run time (a test validates the document against the meta-schema).
pub(crate) fn own_entry(now_unix_ms: u64) -> CatalogEntry {
    let text = crate::rpc::openrpc().to_string();
    let doc: Value = serde_json::from_str(&text).unwrap_or_default();
    CatalogEntry {
        manifest: info_of(&crate::rpc::manifest()),
        manifest_error: None,
        spec: SpecInfo {
            state: SpecState::Ok,
            reason: None,
            fingerprint: Some(fingerprint(&text)),
            openrpc: doc["openrpc"].as_str().map(str::to_owned),
            fetched_unix_ms: Some(now_unix_ms),
        },
        info: doc.get("info").map(info_of).unwrap_or_default(),
        methods: methods_of(&doc),
        document: RawValue::from_string(text).ok().map(Arc::from),
    }
}

/// `sha256:<hex>` of a document's bytes.
pub fn fingerprint(doc: &str) -> String {
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
/// number as version is shown as written).
fn info_of(v: &Value) -> ManifestInfo {
    let text = |k: &str| match &v[k] {
        Value::String(s) => Some(bounded(s.clone())),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    ManifestInfo {
        title: text("title"),
        version: text("version"),
        description: text("description"),
    }
}

/// The methods of a spec that have a name, in document order.
fn methods_of(doc: &Value) -> Arc<[Method]> {
    let Some(methods) = doc["methods"].as_array() else {
        return Arc::from([]);
    };
    methods
        .iter()
        .filter_map(|m| {
            Some(Method {
                name: m["name"].as_str()?.to_owned(),
                summary: m["summary"].as_str().map(|s| bounded(s.to_owned())),
            })
        })
        .collect()
}

/// Cuts a text a service controls to a size a log line and a table can carry.
fn bounded(mut s: String) -> String {
    if s.len() > MAX_REASON {
        let mut cut = MAX_REASON;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Fetched {
        Fetched {
            manifest: Ok(ManifestInfo::default()),
            spec: SpecFetch::Document(serde_json::from_str(text).unwrap()),
        }
    }

    const VALID: &str = r#"{"openrpc":"1.3.2","info":{"title":"Demo","version":"1.0.0"},"methods":[{"name":"b","summary":"B","params":[],"result":{"name":"r","schema":{}}},{"name":"a","params":[],"result":{"name":"r","schema":{}}}]}"#;

    #[test]
    fn a_valid_document_gives_its_methods_info_and_fingerprint() {
        let e = entry(doc(VALID), None, 7);
        assert_eq!(e.spec.state, SpecState::Ok, "{:?}", e.spec.reason);
        assert_eq!(e.spec.openrpc.as_deref(), Some("1.3.2"));
        assert_eq!(e.spec.fetched_unix_ms, Some(7));
        assert_eq!(e.spec.fingerprint, Some(fingerprint(VALID)));
        assert_eq!(e.info.title.as_deref(), Some("Demo"));
        let names: Vec<_> = e.methods.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["b", "a"]);
        assert_eq!(e.methods[0].summary.as_deref(), Some("B"));
    }

    #[test]
    fn the_same_document_keeps_the_previous_entry_and_a_new_one_replaces_it() {
        let first = entry(doc(VALID), None, 1);
        let again = entry(doc(VALID), Some(&first), 2);
        assert!(Arc::ptr_eq(
            first.document.as_ref().unwrap(),
            again.document.as_ref().unwrap()
        ));
        assert_eq!(again.spec.fetched_unix_ms, Some(2));
        let changed = VALID.replace("\"b\"", "\"c\"");
        let new = entry(doc(&changed), Some(&first), 3);
        assert_ne!(new.spec.fingerprint, first.spec.fingerprint);
        assert_eq!(new.methods[0].name, "c");
    }

    #[test]
    fn an_invalid_document_is_kept_with_its_reason() {
        let e = entry(doc(r#"{"openrpc":"1.3.2","methods":{}}"#), None, 1);
        assert_eq!(e.spec.state, SpecState::Invalid);
        assert!(e.document.is_some(), "kept, so a person can read it");
        assert!(e.spec.reason.is_some());
    }

    #[test]
    fn a_dangling_ref_makes_a_valid_looking_document_invalid() {
        let text = VALID.replace(
            r#""schema":{}}},{"name":"a""#,
            r##""schema":{"$ref":"#/components/schemas/Nope"}}},{"name":"a""##,
        );
        let e = entry(doc(&text), None, 1);
        assert_eq!(e.spec.state, SpecState::Invalid);
        assert!(
            e.spec
                .reason
                .as_deref()
                .unwrap()
                .contains("#/components/schemas/Nope"),
            "{:?}",
            e.spec.reason
        );
    }

    #[test]
    fn absent_and_failed_specs_say_why() {
        let absent = entry(
            Fetched {
                manifest: Err("the manifest is not a JSON object".into()),
                spec: SpecFetch::Absent("none".into()),
            },
            None,
            1,
        );
        assert_eq!(absent.spec.state, SpecState::Absent);
        assert_eq!(absent.spec.reason.as_deref(), Some("none"));
        assert_eq!(
            absent.manifest_error.as_deref(),
            Some("the manifest is not a JSON object")
        );
        let failed = entry(
            Fetched {
                manifest: Ok(ManifestInfo::default()),
                spec: SpecFetch::Error("x".repeat(10_000)),
            },
            None,
            1,
        );
        assert_eq!(failed.spec.state, SpecState::Error);
        assert!(
            failed.spec.reason.unwrap().len() <= MAX_REASON + 3,
            "bounded"
        );
    }

    #[test]
    fn the_own_entry_is_what_fetching_and_validating_the_own_document_gives() {
        let own = own_entry(5);
        let text = crate::rpc::openrpc().to_string();
        let fetched = entry(
            Fetched {
                manifest: Ok(info_of(&crate::rpc::manifest())),
                spec: SpecFetch::Document(RawValue::from_string(text).unwrap()),
            },
            None,
            5,
        );
        assert_eq!(
            fetched.spec.state,
            SpecState::Ok,
            "{:?}",
            fetched.spec.reason
        );
        assert_eq!(own.spec, fetched.spec);
        assert_eq!(own.methods, fetched.methods);
        assert_eq!(
            (&own.manifest, &own.info),
            (&fetched.manifest, &fetched.info)
        );
        assert_eq!(own.methods.len(), 7);
    }

    #[test]
    fn fingerprints_are_sha256_hex() {
        assert_eq!(
            fingerprint(""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
