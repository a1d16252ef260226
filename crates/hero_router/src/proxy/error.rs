//! Proxy errors and the one place they become HTTP responses (CONTRACT §5).

#[cfg(test)]
use axum::http::header;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::path::PathError;

/// Everything that can go wrong between a client request and an upstream response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    // --- the client's side ---
    /// A hostile or malformed path.
    #[error("{0}")]
    BadPath(#[from] PathError),
    /// The request body is over `--max-body`.
    #[error("request body is larger than the limit of {limit} bytes (--max-body)")]
    BodyTooLarge {
        /// The limit.
        limit: u64,
    },
    /// No route for this path.
    #[error("no route for this path; use /{{service}}/{{kind}}/...")]
    NoRoute,
    /// Unknown service.
    #[error("no such service: {service}")]
    NoService {
        /// The service.
        service: String,
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
    /// The socket's backlog stayed full.
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
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::BadPath(_) => StatusCode::BAD_REQUEST,
            ProxyError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::NoRoute | ProxyError::NoService { .. } | ProxyError::NoSocket { .. } => {
                StatusCode::NOT_FOUND
            }
            ProxyError::Down { .. } | ProxyError::Upstream { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The service concerned, if any.
    pub fn service(&self) -> Option<&str> {
        match self {
            ProxyError::NoService { service }
            | ProxyError::NoSocket { service, .. }
            | ProxyError::Down { service, .. }
            | ProxyError::Busy { service }
            | ProxyError::Timeout { service }
            | ProxyError::Upstream { service, .. } => Some(service),
            _ => None,
        }
    }

    /// A stable short code for the `x-hero-router-error` header and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            ProxyError::BadPath(_) => "bad_path",
            ProxyError::BodyTooLarge { .. } => "body_too_large",
            ProxyError::NoRoute => "no_route",
            ProxyError::NoService { .. } => "no_service",
            ProxyError::NoSocket { .. } => "no_socket",
            ProxyError::Down { .. } => "down",
            ProxyError::Busy { .. } => "busy",
            ProxyError::Timeout { .. } => "timeout",
            ProxyError::Upstream { .. } => "upstream",
        }
    }
}

/// The single mapping from a proxy error to a response: status, headers, and the JSON body
/// `{"error": S, "service": S?}`. Both data paths render errors from this.
pub fn error_parts(e: &ProxyError) -> (StatusCode, Vec<(&'static str, &'static str)>, Vec<u8>) {
    let body = match e.service() {
        Some(s) => json!({"error": e.to_string(), "service": s}),
        None => json!({"error": e.to_string()}),
    };
    let mut headers = vec![
        ("content-type", "application/json"),
        ("x-hero-router-error", e.code()),
    ];
    if matches!(e, ProxyError::Busy { .. }) {
        headers.push(("retry-after", "1"));
    }
    (e.status(), headers, body.to_string().into_bytes())
}

/// [`error_parts`] as an axum response.
pub fn error_response(e: &ProxyError) -> Response {
    let (status, headers, body) = error_parts(e);
    let mut resp = (status, body).into_response();
    for (name, value) in headers {
        resp.headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    resp
}

impl IntoResponse for ProxyError {
    fn into_response(self) -> Response {
        error_response(&self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_contract() {
        let s = || "svc".to_string();
        let cases = [
            (ProxyError::BadPath(PathError::BadService), 400),
            (ProxyError::BodyTooLarge { limit: 1 }, 413),
            (ProxyError::NoService { service: s() }, 404),
            (
                ProxyError::NoSocket {
                    service: s(),
                    kind: "x".into(),
                },
                404,
            ),
            (
                ProxyError::Down {
                    service: s(),
                    detail: String::new(),
                },
                502,
            ),
            (ProxyError::Busy { service: s() }, 503),
            (ProxyError::Timeout { service: s() }, 504),
        ];
        for (e, status) in cases {
            let r = error_response(&e);
            assert_eq!(r.status().as_u16(), status, "{e:?}");
            assert_eq!(r.headers().contains_key(header::RETRY_AFTER), status == 503);
        }
    }
}
