//! The hero_proc guard (rule 7 of docs/sockets-and-reaping.md#reap-rules): never reap a service
//! hero_proc says is running.
//!
//! hero_proc's method names are not documented publicly, so the method is configurable
//! (`--hero-proc-method`) and every plausible answer shape is accepted:
//!
//! - an array of `{"name": S, "state"|"status": S}` (also `service` or `id` for the name);
//! - an object mapping name → state string, or name → `{"state"|"status": S}`;
//! - either of those as the `services` member of an object (which may carry more members,
//!   such as a count);
//! - an array of bare names, read as "these are running".
//!
//! A state counts as *not running* only if it clearly says so (`stopped`, `exited`, `failed`,
//! …). Anything else, including states we have never seen, counts as running: when unsure we
//! keep the socket.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use serde_json::value::RawValue;

use crate::upstream::{CallOptions, call_once};

/// The largest answer read from hero_proc (a list of services).
const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// What hero_proc told us, or why it could not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Running {
    /// hero_proc answered; these services are running.
    Known(BTreeSet<String>),
    /// hero_proc could not be asked, or answered in a shape we do not understand. Rule 7 is
    /// skipped; the other rules still hold.
    Unknown(String),
}

const NOT_RUNNING: &[&str] = &[
    "stopped",
    "stop",
    "exited",
    "failed",
    "failure",
    "inactive",
    "success",
    "succeeded",
    "dead",
    "error",
    "errored",
    "killed",
    "halted",
    "down",
    "not_running",
    "finished",
    "completed",
];

/// Asks hero_proc at `<root>/hero_proc/rpc.sock`.
pub(crate) async fn running_services(root: &Path, method: &str, timeout: Duration) -> Running {
    let sock = root.join("hero_proc").join("rpc.sock");
    if !sock.exists() {
        return Running::Unknown(format!("{} does not exist", sock.display()));
    }
    let how = CallOptions {
        timeout,
        limit: MAX_ANSWER,
        headers: &[],
        close: true,
        idempotent: true,
    };
    let params = RawValue::from_string("[]".into()).expect("JSON");
    let result = match call_once(&sock, "hero_proc", method, Some(&params), &how).await {
        Ok(result) => result,
        // The guard's own limit, not `--upstream-timeout`: said in its words.
        Err(crate::upstream::CallError::Router {
            unanswered: Some(crate::upstream::SendError::Timeout),
            ..
        }) => {
            return Running::Unknown(format!(
                "hero_proc did not answer {method} within {} (the guard's limit)",
                humantime::format_duration(timeout)
            ));
        }
        Err(e) => return Running::Unknown(e.to_string()),
    };
    let parsed = serde_json::from_str::<Value>(result.get()).ok();
    match parsed.as_ref().and_then(parse_running) {
        Some(set) => Running::Known(set),
        None => Running::Unknown(format!(
            "no usable result for {method}: {}",
            truncate(result.get())
        )),
    }
}

/// Extracts the set of running service names from a result, or `None` if the shape is unknown.
pub(crate) fn parse_running(result: &Value) -> Option<BTreeSet<String>> {
    match result {
        // A wrapper, whatever else it carries (`{"services": [...], "count": 1}`): its
        // `services` is a list, or a map of names. A `services` that has a state of its own is
        // a service of that name in a map of names.
        Value::Object(map) if map.get("services").is_some_and(is_list_of_services) => {
            parse_running(&map["services"])
        }
        Value::Array(items) => {
            let mut out = BTreeSet::new();
            for item in items {
                match item {
                    Value::String(name) => {
                        out.insert(name.clone());
                    }
                    Value::Object(obj) => {
                        let name = ["name", "service", "id"]
                            .iter()
                            .find_map(|k| obj.get(*k)?.as_str())?;
                        if is_running(item) {
                            out.insert(name.to_owned());
                        }
                    }
                    _ => return None,
                }
            }
            Some(out)
        }
        Value::Object(map) => Some(
            map.iter()
                .filter(|(_, v)| is_running(v))
                .map(|(k, _)| k.clone())
                .collect(),
        ),
        _ => None,
    }
}

/// Whether a `services` member holds the services (a list, or a map of names), rather than
/// being the state of one service named `services`.
fn is_list_of_services(v: &Value) -> bool {
    match v {
        Value::Array(_) => true,
        Value::Object(o) => !o.contains_key("state") && !o.contains_key("status"),
        _ => false,
    }
}

fn is_running(v: &Value) -> bool {
    let state = match v {
        Value::String(s) => Some(s.as_str()),
        Value::Object(o) => ["state", "status"].iter().find_map(|k| o.get(*k)?.as_str()),
        Value::Bool(b) => return *b,
        _ => None,
    };
    match state {
        Some(s) => !NOT_RUNNING.contains(&s.trim().to_ascii_lowercase().as_str()),
        None => true,
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(200).collect()
}

#[cfg(test)]
mod tests;
