//! A one-shot HTTP/1.1 client over a Unix socket, for the router's own calls (hero_proc, the
//! CLI talking to a running router). Not the proxy's pooled client.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

/// Why a call over a Unix socket failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Could not connect to the socket.
    /// (The messages carry their cause, so it is not also a `source`: a chain of causes,
    /// `{:#}`, would print it twice.)
    #[error("cannot connect to {path}: {error}")]
    Connect {
        /// The socket path.
        path: String,
        /// The error.
        error: std::io::Error,
    },
    /// The HTTP exchange failed.
    #[error("HTTP error talking to {path}: {error}")]
    Http {
        /// The socket path.
        path: String,
        /// The error.
        error: hyper::Error,
    },
    /// No full answer within the deadline.
    #[error("{path} did not answer within {timeout:?}")]
    Timeout {
        /// The socket path.
        path: String,
        /// The deadline.
        timeout: Duration,
    },
}

/// Sends one request and reads the whole answer, all within `timeout`.
pub async fn request(
    sock: &Path,
    method: Method,
    uri: &str,
    body: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<(StatusCode, Bytes), ClientError> {
    let path = sock.display().to_string();
    let fut = async {
        let stream = crate::proxy::client::connect(sock, Duration::ZERO)
            .await
            .map_err(|error| ClientError::Connect {
                path: path.clone(),
                error,
            })?;
        let http = |error| ClientError::Http {
            path: path.clone(),
            error,
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(http)?;
        tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, "localhost");
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .expect("static request parts are valid");
        let resp = sender.send_request(req).await.map_err(http)?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await.map_err(http)?.to_bytes();
        Ok((status, bytes))
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| ClientError::Timeout {
            path: path.clone(),
            timeout,
        })?
}
