//! JSON-RPC calls the router makes to a service, and what can come back.
//!
//! Every call the router originates (a routed call for the MCP gateway, the catalog's
//! `rpc.discover`, the hero_proc guard, the CLI talking to a running router) goes through
//! [`call`]: the envelope is written by [`jsonrpc::request`](crate::jsonrpc::request), the HTTP
//! request by [`http1::write_request`](crate::http1::write_request), the exchange by the one
//! upstream [`Pool`], and the answer read by [`jsonrpc::parse_reply`](crate::jsonrpc::parse_reply).
//!
//! A failure keeps its origin ([`CallError`]): an error the *service* answered is its own,
//! code, message and data as it sent them (whatever the code, `-32001`…`-32005` included);
//! only a failure to get an answer is the router's, with the router's codes and wording.

use std::time::Duration;

use serde_json::value::RawValue;

use super::connect::SendError;
use super::pool::{Answer, Inflight, Key, Pool};
use crate::http1::OwnRequest;
use crate::jsonrpc::{self, BAD_UPSTREAM, NOT_LIVE, Reply, UPSTREAM_TIMEOUT};

/// How a call is made.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallOptions<'a> {
    /// Deadline of the answer's head, and again of its body.
    pub timeout: Duration,
    /// Largest answer body buffered.
    pub limit: usize,
    /// Extra request headers (`user-agent`).
    pub headers: &'a [(&'a str, &'a str)],
    /// End the connection after the call (one-shot callers, the catalog).
    pub close: bool,
    /// The call only reads: it may be sent again on a fresh connection if a reused one
    /// closes before answering (see [`Pool::send`]).
    pub idempotent: bool,
}

/// Why a call has no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CallError {
    /// The service answered with a JSON-RPC error of its own.
    #[error("service {service} answered error {}: {}", .error.code, .error.message)]
    Service {
        /// The service.
        service: String,
        /// Its error, as it sent it.
        error: ServiceError,
    },
    /// The router got no usable answer: a router error (`-32001`…`-32004`).
    #[error("{message}")]
    Router {
        /// The service.
        service: String,
        /// The router's code.
        code: i32,
        /// What happened, in words a person can act on.
        message: String,
        /// Why no answer could be read, when none was (the request failed, timed out, or
        /// its answer was too large); `None` when an answer came but was no JSON-RPC
        /// response, or the service was not asked.
        unanswered: Option<SendError>,
    },
}

/// A JSON-RPC error object a service sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServiceError {
    /// `code`.
    pub code: i64,
    /// `message`.
    pub message: String,
    /// `data`, as raw JSON text.
    pub data: Option<String>,
}

// === impl CallError ===

impl CallError {
    /// A router error about `service`.
    pub(crate) fn router(code: i32, message: String, service: &str) -> CallError {
        CallError::Router {
            service: service.to_owned(),
            code,
            message,
            unanswered: None,
        }
    }

    /// The error's JSON-RPC code, whoever made it.
    pub(crate) fn code(&self) -> i64 {
        match self {
            CallError::Service { error, .. } => error.code,
            CallError::Router { code, .. } => i64::from(*code),
        }
    }

    /// The router error for a request that got no answer from `service`.
    pub(crate) fn unanswered(e: SendError, service: &str) -> CallError {
        let (code, message) = match e {
            SendError::Timeout => (
                UPSTREAM_TIMEOUT,
                format!("service {service} did not answer within the upstream timeout"),
            ),
            SendError::Busy => (
                NOT_LIVE,
                format!("service {service} stayed busy (backlog full) for the upstream timeout"),
            ),
            SendError::Saturated => (
                NOT_LIVE,
                format!(
                    "service {service} had --max-inflight-per-service requests in flight, and no place came free for this one within the upstream timeout"
                ),
            ),
            SendError::Down { ref detail, .. } => (
                NOT_LIVE,
                format!("service {service} is not reachable: {detail}"),
            ),
            SendError::Broken(ref d) => (BAD_UPSTREAM, format!("service {service}: {d}")),
            SendError::TooLarge { limit } => (
                BAD_UPSTREAM,
                format!("service {service}: the answer is larger than {limit} bytes (--max-body)"),
            ),
            ref e @ SendError::Closed { .. } => (BAD_UPSTREAM, format!("service {service}: {e}")),
        };
        CallError::Router {
            service: service.to_owned(),
            code,
            message,
            unanswered: Some(e),
        }
    }
}

/// Calls `method` with `params` (raw JSON) on the service at `key` (named `service` in
/// errors): the result as the service wrote it, or why there is none.
pub(crate) async fn call(
    pool: &Pool,
    key: &Key,
    service: &str,
    method: &str,
    params: Option<&RawValue>,
    how: &CallOptions<'_>,
) -> Result<Box<RawValue>, CallError> {
    let answer = send(pool, key, method, params, how)
        .await
        .map_err(|e| CallError::unanswered(e, service))?;
    reply(&answer, service)
}

/// Sends the call's request and reads its whole answer, whatever it is.
async fn send(
    pool: &Pool,
    key: &Key,
    method: &str,
    params: Option<&RawValue>,
    how: &CallOptions<'_>,
) -> Result<Answer, SendError> {
    let id = RawValue::from_string("1".into()).expect("a JSON number");
    let body = jsonrpc::request(Some(&id), method, params);
    let mut headers = Vec::with_capacity(how.headers.len() + 1);
    headers.push(("content-type", "application/json"));
    headers.extend_from_slice(how.headers);
    let req = OwnRequest {
        method: "POST",
        path: "/rpc",
        headers: &headers,
        body: body.as_bytes(),
        close: how.close,
        idempotent: how.idempotent,
    };
    pool.send(key, &req, how.timeout, how.limit).await
}

/// The result of a buffered answer to a call, or the service's error; an answer that is not
/// one JSON-RPC response is a router error (`-32004`) naming its HTTP status and what is
/// wrong with it.
pub(crate) fn reply(answer: &Answer, service: &str) -> Result<Box<RawValue>, CallError> {
    let bad =
        |what: &str| CallError::router(BAD_UPSTREAM, not_a_reply(service, answer, what), service);
    jsonrpc::check_reply(&answer.body).map_err(bad)?;
    match jsonrpc::parse_reply(&answer.body) {
        Some(Reply::Result(result)) => Ok(result.to_owned()),
        Some(Reply::Error(e)) => Err(CallError::Service {
            service: service.to_owned(),
            error: ServiceError {
                code: e.code,
                message: e.message.into_owned(),
                data: e.data.map(|d| d.get().to_owned()),
            },
        }),
        None => Err(bad("something that is not a JSON-RPC response")),
    }
}

/// Longest excerpt of an answer that is no JSON-RPC response, in characters.
const EXCERPT: usize = 200;

/// The words for an answer to a call that is no JSON-RPC response: its HTTP status, `what` is
/// wrong with it, and the start of its text (an HTML error page without its tags), which
/// often says why (`Internal Server Error`, a traceback's last line).
pub(crate) fn not_a_reply(service: &str, answer: &Answer, what: &str) -> String {
    let status = answer.status;
    let text = excerpt(&answer.body);
    if text.is_empty() {
        return format!("service {service} answered HTTP {status} with {what}");
    }
    format!("service {service} answered HTTP {status} with {what}: \"{text}\"")
}

/// The start of `body` as one line of text: markup tags dropped, control characters and runs
/// of white space made one space, at most [`EXCERPT`] characters (`…` when cut).
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(64 * 1024)]);
    if text.trim_start().starts_with('<') {
        one_line(&html_text(&text))
    } else {
        one_line(&text)
    }
}

/// The text of an HTML page: tags dropped, and what is inside `script` and `style` too; the
/// common character references decoded.
fn html_text(page: &str) -> String {
    let mut out = String::new();
    let mut rest = page;
    while let Some(open) = rest.find('<') {
        out.push_str(&decode_references(&rest[..open]));
        out.push(' ');
        let tag = &rest[open + 1..];
        let Some(close) = tag.find('>') else {
            return out;
        };
        let name = tag[..close]
            .split(|c: char| !c.is_ascii_alphanumeric())
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        rest = &tag[close + 1..];
        if name == "script" || name == "style" {
            // ASCII lowercasing keeps every byte where it was.
            let end = format!("</{name}");
            rest = rest
                .to_ascii_lowercase()
                .find(&end)
                .map_or("", |at| &rest[at..]);
        }
    }
    out.push_str(&decode_references(rest));
    out
}

/// `&amp;`, `&lt;`, `&gt;`, `&quot;`, `&apos;`, `&#39;`, `&nbsp;` and numeric references as
/// the characters they stand for; anything else as it is.
fn decode_references(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains('&') {
        return text.into();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let decoded = after.find(';').filter(|&end| end <= 10).and_then(|end| {
            let name = &after[..end];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some(' '),
                _ => name.strip_prefix('#').and_then(|n| {
                    match n.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok(),
                        None => n.parse().ok(),
                    }
                    .and_then(char::from_u32)
                }),
            };
            c.map(|c| (c, end))
        });
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &after[end + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out.into()
}

/// `text` on one line: control characters, bidirectional controls (they would reorder the
/// message around them) and runs of white space made one space; at most [`EXCERPT`]
/// characters, `…` when cut.
fn one_line(text: &str) -> String {
    let mut out = String::new();
    let (mut space, mut count) = (false, 0);
    for c in text.chars() {
        if c.is_whitespace() || c.is_control() || crate::browser::is_bidi_control(c) {
            space = true;
            continue;
        }
        let gap = space && !out.is_empty();
        if count + usize::from(gap) >= EXCERPT {
            out.push('…');
            return out;
        }
        if gap {
            out.push(' ');
            count += 1;
        }
        space = false;
        out.push(c);
        count += 1;
    }
    out
}

/// [`call`] on a connection of its own, for callers without a pool (the CLI, the hero_proc
/// guard): the socket at `path`, connected afresh (a full backlog is waited out for the
/// timeout), closed after the answer.
pub(crate) async fn call_once(
    path: &std::path::Path,
    service: &str,
    method: &str,
    params: Option<&RawValue>,
    how: &CallOptions<'_>,
) -> Result<Box<RawValue>, CallError> {
    let answer = send_once(path, method, params, how)
        .await
        .map_err(|e| CallError::unanswered(e, service))?;
    reply(&answer, service)
}

/// [`call_once`]'s exchange alone: the whole answer, whatever it is, for a caller that words
/// its own errors (the CLI, which talks to the router rather than to a service).
pub(crate) async fn send_once(
    path: &std::path::Path,
    method: &str,
    params: Option<&RawValue>,
    how: &CallOptions<'_>,
) -> Result<Answer, SendError> {
    let pool = Pool::new(how.timeout, Inflight::new(1));
    let key = Key::new(std::sync::Arc::from(path), None);
    let how = CallOptions {
        close: true,
        ..*how
    };
    send(&pool, &key, method, params, &how).await
}

#[cfg(test)]
mod tests;
