//! The kit of the router's own applications (the dashboard and the MCP gateway): the `http`
//! types a request comes in and an answer goes out as, and the few ways to build an answer.
//!
//! A leaf: nothing else of the crate is imported here. The connection driver
//! (`serve::conn`) reads a request's body whole before an application sees it, and frames the
//! answer itself (length, chunked or until close), streaming a body as it comes; so a request
//! is [`Request`] (its body as bytes) and an answer's body is [`Body`], whole or a stream
//! (server-sent events). rmcp's answers become a [`Body`] too, boxed once more.

use std::convert::Infallible;

use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use http::{HeaderValue, StatusCode, header};
use http_body::Frame;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full, StreamBody};

/// An answer's body. Nothing the router's applications make can fail half way: a stream ends
/// (or the connection driver stops reading it), it never errs.
pub(crate) type Body = UnsyncBoxBody<Bytes, Infallible>;

/// A request to an application, its body read whole.
pub(crate) type Request = http::Request<Bytes>;

/// An application's answer.
pub(crate) type Response = http::Response<Body>;

/// A body of these bytes, its length known.
pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

/// A body that is `chunks`, each sent as it comes, its length unknown.
pub(crate) fn stream(chunks: impl Stream<Item = Bytes> + Send + 'static) -> Body {
    StreamBody::new(chunks.map(|chunk| Ok(Frame::data(chunk)))).boxed_unsync()
}

/// A `status` answer of `body`, of this content type.
pub(crate) fn answer(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A `200` answer of `value` as JSON (`500` with a plain-text reason in the unlikely case it
/// does not serialize).
pub(crate) fn json(value: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => answer(StatusCode::OK, "application/json", body),
        Err(e) => answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain; charset=utf-8",
            format!("hero_router: cannot write the answer as JSON: {e}\n"),
        ),
    }
}

/// The whole of `body` if it is at most `limit` bytes, else `None` (what was read of it is
/// dropped).
pub(crate) async fn collect(body: Body, limit: usize) -> Option<Bytes> {
    let limited = http_body_util::Limited::new(body, limit);
    Some(limited.collect().await.ok()?.to_bytes())
}

/// The exact length of `body`, if it is known before it is read.
pub(crate) fn exact_len(body: &Body) -> Option<u64> {
    http_body::Body::size_hint(body).exact()
}

#[cfg(test)]
mod tests;
