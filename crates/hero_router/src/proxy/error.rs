//! Every answer the router makes itself, and the one function that renders it
//! (docs/http.md#errors): status, headers (`x-hero-router-error` with a stable code) and the JSON
//! body `{"error": S, "service": S?}`.

use std::borrow::Cow;

use http::StatusCode;
use serde_json::json;

use super::path::PathError;
use crate::http1::{BadChunk, RequestError};

/// Everything that can go wrong between a client request and an upstream response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ProxyError {
    // --- the client's side ---
    /// The client is not in the allow-list (`--allow`, `--access-file`).
    #[error(
        "{address} is not allowed to use this router; ask its operator to add it with `hero_router access add {address}` or --allow"
    )]
    Forbidden {
        /// The client's address as judged.
        address: String,
    },
    /// A request head the router refuses (framing, Host, limits, target).
    #[error("{0}")]
    Request(#[from] RequestError),
    /// A chunked request body that cannot be decoded.
    #[error("{0}")]
    BadBody(#[from] BadChunk),
    /// A method the router's own endpoint does not take.
    #[error("method {method} is not allowed on {path}: {}", takes(allow, path))]
    MethodNotAllowed {
        /// The method sent.
        method: String,
        /// The path.
        path: String,
        /// The methods it takes, for `Allow`.
        allow: &'static str,
    },
    /// A path under `/hero_router/`: the router does not relay to its own sockets.
    #[error(
        "hero_router does not proxy to itself; call POST /rpc, GET /health, /api/services or /metrics here directly"
    )]
    OwnService,
    /// A request for the router's own endpoints from a page that is not the router's own
    /// (another site, a service's page, DNS rebinding):
    /// docs/access-and-security.md#origin-check.
    #[error(
        "forbidden: a page from {origin} may not call the router's own endpoints; call them without an Origin header (curl, SDKs) or from the dashboard on the admin listener"
    )]
    ForeignOrigin {
        /// The `Origin` sent (or what `Sec-Fetch-Site` said).
        origin: String,
    },
    /// A TCP request whose `Host` is not one of the router's names (DNS rebinding, a
    /// misconfigured proxy): docs/access-and-security.md#host-check.
    #[error(
        "{host} is not a name of this router: reach it by the address it listens on or localhost, or start it with --server-name for that name (a proxy in front)"
    )]
    Misdirected {
        /// The `Host` sent.
        host: String,
    },
    /// A dashboard path on the service listener: the dashboard has an origin of its own.
    #[error("the dashboard and its API are on the admin listener: {admin}")]
    OnAdminListener {
        /// Where the admin listener is.
        admin: String,
    },
    /// A path the admin listener does not serve: it routes to no service, so no service's
    /// page shares the dashboard's origin.
    #[error(
        "the admin listener serves the dashboard, /api/, /rpc, /docs/, /health and /metrics; services and /mcp are on the service listener (--listen)"
    )]
    NotOnAdminListener,
    /// Every connection slot is serving a request; none could be shed.
    #[error("too many connections; retry shortly")]
    TooManyConnections,
    /// A hostile or malformed path.
    #[error("{0}")]
    BadPath(#[from] PathError),
    /// The client stopped sending its request body.
    #[error(
        "the request body stalled: nothing of it arrived for {secs} s (--header-timeout); send the body without such pauses"
    )]
    BodyStalled {
        /// The pause allowed, in seconds.
        secs: u64,
    },
    /// The request body is over `--max-body`.
    #[error("request body is larger than the limit of {limit} bytes (--max-body)")]
    BodyTooLarge {
        /// The limit.
        limit: u64,
    },
    /// `GET /{service}/{kind}` without the trailing slash: the page's relative URLs would
    /// resolve against the parent, so the client is sent to the slash form (308).
    #[error("moved to {location} (a service's pages live below the trailing slash)")]
    AddSlash {
        /// `/{service}/{kind}/` plus the query.
        location: String,
    },
    /// A path `rpc.sock` does not serve.
    #[error(
        "rpc.sock serves POST /rpc and GET /health, /openrpc.json, /.well-known/heroservice.json, /api/services, /metrics; the dashboard, /docs/, /mcp and /{{service}}/{{kind}}/... are on admin.sock and TCP"
    )]
    NotOnRpcSocket,
    /// No route for this path.
    #[error("no route for this path; use /{{service}}/{{kind}}/...")]
    NoRoute,
    /// A path under `/docs/` that is no docs page.
    #[error(
        "no docs page at this path; the pages are /docs/, /docs/{{service}}, /docs/{{service}}.md, /docs/{{service}}/openrpc.json, /docs/{{service}}/client.py and /docs/{{service}}/client.ts"
    )]
    NoDocsPage,
    /// The first scan of the root has not finished, after the request waited
    /// `--upstream-timeout` for it: the table cannot say yet what is there.
    #[error(
        "the router is still starting: its first scan of {root} has not finished; try again shortly"
    )]
    Starting {
        /// The socket root.
        root: String,
    },
    /// Unknown service.
    #[error("no such service: {service}")]
    NoService {
        /// The service.
        service: String,
    },
    /// The service has no spec to show (docs pages).
    #[error("service {service} has no spec: {reason}")]
    NoSpec {
        /// The service.
        service: String,
        /// Why (from the catalog).
        reason: String,
    },
    /// The service has no socket of that kind.
    #[error("service {service} has no {kind} socket")]
    NoSocket {
        /// The service.
        service: String,
        /// The kind asked for.
        kind: String,
    },
    // --- the upstream's side ---
    /// The socket refuses connections or is gone.
    #[error("service {service} is down ({detail})")]
    Down {
        /// The service.
        service: String,
        /// What failed.
        detail: String,
    },
    /// The socket's backlog stayed full, or the service's requests in flight stayed at
    /// `--max-inflight-per-service`.
    #[error("service {service} is busy; retry shortly")]
    Busy {
        /// The service.
        service: String,
    },
    /// No response head within `--upstream-timeout`.
    #[error("service {service} did not answer within the upstream timeout")]
    Timeout {
        /// The service.
        service: String,
    },
    /// The upstream broke the HTTP exchange.
    #[error("service {service} broke the connection ({detail})")]
    Upstream {
        /// The service.
        service: String,
        /// What failed.
        detail: String,
    },
}

// === impl ProxyError ===

impl ProxyError {
    /// The error the client of a proxied request sees when `service` could not be asked.
    pub(crate) fn unanswered(e: crate::upstream::SendError, service: &str) -> ProxyError {
        use crate::upstream::SendError;
        let service = service.to_owned();
        match e {
            SendError::Busy | SendError::Saturated => ProxyError::Busy { service },
            SendError::Timeout => ProxyError::Timeout { service },
            SendError::Down { detail, .. } => ProxyError::Down { service, detail },
            SendError::Broken(detail) => ProxyError::Upstream { service, detail },
            e @ (SendError::Closed { .. } | SendError::TooLarge { .. }) => ProxyError::Upstream {
                service,
                detail: e.to_string(),
            },
        }
    }

    /// The HTTP status of this error.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            ProxyError::Request(e) => {
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST)
            }
            ProxyError::BadBody(_) | ProxyError::BadPath(_) => StatusCode::BAD_REQUEST,
            ProxyError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ProxyError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::OwnService => StatusCode::NOT_FOUND,
            ProxyError::AddSlash { .. } => StatusCode::PERMANENT_REDIRECT,
            ProxyError::ForeignOrigin { .. } => StatusCode::FORBIDDEN,
            ProxyError::Misdirected { .. } => StatusCode::MISDIRECTED_REQUEST,
            ProxyError::OnAdminListener { .. } | ProxyError::NotOnAdminListener => {
                StatusCode::NOT_FOUND
            }
            ProxyError::TooManyConnections => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::BodyStalled { .. } => StatusCode::REQUEST_TIMEOUT,
            ProxyError::NoRoute
            | ProxyError::NoDocsPage
            | ProxyError::NotOnRpcSocket
            | ProxyError::NoService { .. }
            | ProxyError::NoSocket { .. }
            | ProxyError::NoSpec { .. } => StatusCode::NOT_FOUND,
            ProxyError::Down { .. } | ProxyError::Upstream { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::Busy { .. } | ProxyError::Starting { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ProxyError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The service concerned, if any.
    pub(crate) fn service(&self) -> Option<&str> {
        match self {
            ProxyError::NoService { service }
            | ProxyError::NoSocket { service, .. }
            | ProxyError::NoSpec { service, .. }
            | ProxyError::Down { service, .. }
            | ProxyError::Busy { service }
            | ProxyError::Timeout { service }
            | ProxyError::Upstream { service, .. } => Some(service),
            _ => None,
        }
    }

    /// A stable short code for the `x-hero-router-error` header and metrics.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            ProxyError::Request(e) => e.code(),
            ProxyError::BadBody(_) => "bad_body",
            ProxyError::Forbidden { .. } => "forbidden",
            ProxyError::MethodNotAllowed { .. } => "method_not_allowed",
            ProxyError::OwnService => "own_service",
            ProxyError::ForeignOrigin { .. } => "foreign_origin",
            ProxyError::Misdirected { .. } => "misdirected",
            ProxyError::OnAdminListener { .. } => "on_admin_listener",
            ProxyError::NotOnAdminListener => "not_on_admin_listener",
            ProxyError::TooManyConnections => "too_many_connections",
            ProxyError::BadPath(_) => "bad_path",
            ProxyError::BodyTooLarge { .. } => "body_too_large",
            ProxyError::BodyStalled { .. } => "body_timeout",
            ProxyError::AddSlash { .. } => "add_slash",
            ProxyError::NoRoute | ProxyError::NoDocsPage | ProxyError::NotOnRpcSocket => "no_route",
            ProxyError::Starting { .. } => "starting",
            ProxyError::NoService { .. } => "no_service",
            ProxyError::NoSocket { .. } => "no_socket",
            ProxyError::NoSpec { .. } => "no_spec",
            ProxyError::Down { .. } => "down",
            ProxyError::Busy { .. } => "busy",
            ProxyError::Timeout { .. } => "timeout",
            ProxyError::Upstream { .. } => "upstream",
        }
    }
}

/// A header of an answer the router makes itself.
pub(crate) type Header = (&'static str, Cow<'static, str>);

/// How the body of an error answer is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Envelope {
    /// The router's `{"error": S, …}`.
    #[default]
    Plain,
    /// A JSON-RPC error (`-32600`, the same words, `data.request_id`), with the same status:
    /// an MCP client reads nothing else (docs/docs-and-mcp.md).
    JsonRpc,
}

/// The single mapping from an error to an answer: status, headers, and the JSON body
/// `{"error": S, "service": S?}` (`{"error": "forbidden", "message": S, "address": S}` for a
/// client the allow-list turns away). Every answer the router makes itself comes from here
/// ([`error_parts_as`]). With a request id, the body says it as `"request_id"` (the
/// connection driver puts it in the `x-request-id` header too).
pub(crate) fn error_parts_for(
    e: &ProxyError,
    request_id: Option<&str>,
) -> (StatusCode, Vec<Header>, Vec<u8>) {
    error_parts_as(e, request_id, Envelope::Plain)
}

/// [`error_parts_for`] with the body in `envelope`.
pub(crate) fn error_parts_as(
    e: &ProxyError,
    request_id: Option<&str>,
    envelope: Envelope,
) -> (StatusCode, Vec<Header>, Vec<u8>) {
    let body = match envelope {
        Envelope::JsonRpc => crate::jsonrpc::error(
            None,
            crate::jsonrpc::INVALID_REQUEST.into(),
            &e.to_string(),
            Some(&json!({"request_id": request_id})),
        )
        .into_bytes(),
        Envelope::Plain => plain_body(e, request_id),
    };
    let mut headers = vec![
        ("content-type", Cow::Borrowed("application/json")),
        ("x-hero-router-error", Cow::Borrowed(e.code())),
    ];
    headers.extend(
        crate::browser::PAGE_HEADERS
            .iter()
            .map(|(name, value)| (*name, Cow::Borrowed(*value))),
    );
    match e {
        ProxyError::Busy { .. } | ProxyError::TooManyConnections | ProxyError::Starting { .. } => {
            headers.push(("retry-after", Cow::Borrowed("1")));
        }
        ProxyError::MethodNotAllowed { allow, .. } => headers.push(("allow", Cow::Borrowed(allow))),
        ProxyError::AddSlash { location } => headers.push(("location", location.clone().into())),
        _ => {}
    }
    (e.status(), headers, body)
}

/// The router's own error body: `{"error": S, "service": S?, "request_id": S?}`, or the
/// named shapes of a refused client, host or origin.
fn plain_body(e: &ProxyError, request_id: Option<&str>) -> Vec<u8> {
    let mut body = match (e, e.service()) {
        // docs/access-and-security.md#allow-list names this one's `error` field; the explanation
        // goes beside it.
        (ProxyError::Forbidden { address }, _) => {
            json!({"error": "forbidden", "message": e.to_string(), "address": address})
        }
        // docs/access-and-security.md#host-check and #origin-check name these two.
        (ProxyError::Misdirected { host }, _) => {
            json!({"error": "misdirected", "message": e.to_string(), "host": host})
        }
        (ProxyError::ForeignOrigin { origin }, _) => {
            json!({"error": "foreign_origin", "message": e.to_string(), "origin": origin})
        }
        (_, Some(s)) => json!({"error": e.to_string(), "service": s}),
        (_, None) => json!({"error": e.to_string()}),
    };
    if let Some(id) = request_id {
        body["request_id"] = json!(id);
    }
    body.to_string().into_bytes()
}

/// An error body one of the router's applications (the dashboard, the MCP gateway) made,
/// with the request's id added as every router-made error body has it: `"request_id"` beside
/// `"error"` in the router's own shape, or in `error.data` of a JSON-RPC error (made an object
/// if it was absent). `None` when the body is neither (or already says an id): it goes as it is.
pub(crate) fn with_request_id(body: &[u8], id: &str) -> Option<Vec<u8>> {
    let mut value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let object = value.as_object_mut()?;
    let has_id = object.contains_key("request_id");
    match object.get_mut("error")? {
        serde_json::Value::String(_) if !has_id => {
            object.insert("request_id".into(), json!(id));
        }
        serde_json::Value::Object(error) => {
            let data = error.entry("data").or_insert_with(|| json!({}));
            let data = data.as_object_mut()?;
            if data.contains_key("request_id") {
                return None;
            }
            data.insert("request_id".into(), json!(id));
        }
        _ => return None,
    }
    serde_json::to_vec(&value).ok()
}

/// The router's answer for `e` (status, `x-hero-router-error`, JSON body), as an answer of
/// the applications (the dashboard, the MCP gateway): the same bytes the connection driver
/// writes for it.
pub(crate) fn error_response(e: &ProxyError) -> crate::app::Response {
    error_response_as(e, None, Envelope::Plain)
}

/// [`error_response`] for a request with an id, its body in `envelope`.
pub(crate) fn error_response_as(
    e: &ProxyError,
    request_id: Option<&str>,
    envelope: Envelope,
) -> crate::app::Response {
    let (status, headers, body) = error_parts_as(e, request_id, envelope);
    let mut response = crate::app::Response::new(crate::app::full(body));
    *response.status_mut() = status;
    for (name, value) in headers {
        if let Ok(value) = http::HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

#[cfg(test)]
mod tests;

/// What a path of the router's own takes, as a 405 says it: `send POST /rpc` for one
/// method, else the list.
fn takes(allow: &str, path: &str) -> String {
    if allow.contains(',') {
        format!("it takes {allow}")
    } else {
        format!("send {allow} {path}")
    }
}
