//! The pooled upstream client: HTTP/1.1 over Unix sockets.
//!
//! Connections are pooled per *socket instance*, not per path: the pool key (the URI host) is a
//! hash of the path and the socket file's identity (dev, ino, ctime). When a service restarts
//! and binds a new socket, the table shows a new identity, so requests get a new key and never
//! reuse a connection that belonged to the old server.
//!
//! A connect that finds the backlog full (`EAGAIN`) is retried with a growing pause until the
//! busy deadline, then reported as [`SendError::Busy`].

use std::collections::HashMap;
use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use http::{Request, Response, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::UnixStream;
use tokio::time::Instant;

use hero_socket::Identity;

use super::pool::Inflight;

/// Why a request to an upstream failed.
#[derive(Debug)]
pub enum SendError {
    /// Refused, missing, or another connect error.
    Down(String),
    /// The backlog stayed full until the busy deadline.
    Busy,
    /// No response head in time.
    Timeout,
    /// The request body went over the limit while streaming.
    BodyTooLarge,
    /// The HTTP exchange failed after connecting.
    Broken(String),
}

/// A cheap, cloneable pooled client.
#[derive(Clone)]
pub struct Upstream {
    client: Client<UdsConnector, Body>,
    registry: Arc<Mutex<HashMap<String, PathBuf>>>,
    /// Permits for requests waiting on a response head, shared with the lean pool.
    inflight: Inflight,
}

#[derive(Clone)]
struct UdsConnector {
    registry: Arc<Mutex<HashMap<String, PathBuf>>>,
    busy_wait: Duration,
}

// === impl Upstream ===

impl Upstream {
    /// A client whose connects retry a full backlog for up to `busy_wait`, with `inflight`
    /// limiting the requests per service waiting for a response head at once.
    pub fn new(busy_wait: Duration, inflight: Inflight) -> Upstream {
        let registry = Arc::new(Mutex::new(HashMap::new()));
        let connector = UdsConnector {
            registry: registry.clone(),
            busy_wait,
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(256)
            .set_host(false)
            .build(connector);
        Upstream {
            client,
            registry,
            inflight,
        }
    }

    /// The pool key of a socket instance.
    pub fn key(path: &Path, identity: Option<Identity>) -> String {
        let mut h = DefaultHasher::new();
        path.hash(&mut h);
        identity.hash(&mut h);
        format!("u{:016x}.sock", h.finish())
    }

    /// Sends `req` (its URI holds only path and query) to the socket at `path`. Once the request
    /// body has been sent, the response head must come within `timeout`; neither the upload
    /// before nor the response body after has a deadline, so uploads and streams of any length
    /// pass.
    pub async fn send(
        &self,
        path: &Path,
        identity: Option<Identity>,
        mut req: Request<Body>,
        timeout: Duration,
    ) -> Result<Response<Incoming>, SendError> {
        // Per-service concurrency: a request waits for a slot at most `timeout`, then the
        // service counts as busy. The slot is held until the response head arrives.
        let _slot = self
            .inflight
            .acquire(path, timeout)
            .await
            .ok_or(SendError::Busy)?;
        let key = Self::key(path, identity);
        {
            let mut registry = self.registry.lock().expect("registry lock");
            if !registry.contains_key(&key) {
                registry.insert(key.clone(), path.to_path_buf());
            }
        }
        let pq = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        *req.uri_mut() = Uri::builder()
            .scheme("http")
            .authority(key.as_str())
            .path_and_query(pq)
            .build()
            .map_err(|e| SendError::Broken(e.to_string()))?;
        // The sender is dropped with the body, which hyper drops once it has sent it all.
        let (sent_tx, sent_rx) = tokio::sync::oneshot::channel::<()>();
        let req = req.map(|body| {
            Body::new(body.map_frame(move |frame| {
                let _keep = &sent_tx;
                frame
            }))
        });
        let response = self.client.request(req);
        let deadline = async {
            let _ = sent_rx.await;
            tokio::time::sleep(timeout).await;
        };
        tokio::select! {
            r = response => r.map_err(|e| classify(&e)),
            _ = deadline => Err(SendError::Timeout),
        }
    }
}

fn classify(e: &hyper_util::client::legacy::Error) -> SendError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err
            .downcast_ref::<http_body_util::LengthLimitError>()
            .is_some()
        {
            return SendError::BodyTooLarge;
        }
        if let Some(io) = err.downcast_ref::<io::Error>() {
            if e.is_connect() {
                return if io.kind() == io::ErrorKind::WouldBlock {
                    SendError::Busy
                } else {
                    SendError::Down(io.to_string())
                };
            }
        }
        source = err.source();
    }
    if e.is_connect() {
        SendError::Down(e.to_string())
    } else {
        SendError::Broken(e.to_string())
    }
}

// === impl UdsConnector ===

impl tower_service::Service<Uri> for UdsConnector {
    type Response = TokioIo<UnixStream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let path = uri
            .host()
            .and_then(|h| self.registry.lock().expect("registry lock").get(h).cloned());
        let busy_wait = self.busy_wait;
        Box::pin(async move {
            let path =
                path.ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "unknown upstream"))?;
            connect(&path, busy_wait).await.map(TokioIo::new)
        })
    }
}

/// Connects, retrying `EAGAIN` (full backlog) until `busy_wait` has passed.
pub async fn connect(path: &Path, busy_wait: Duration) -> io::Result<UnixStream> {
    // A path too long for sockaddr_un is reached through /proc/self/fd/<dir>/<name>.
    let (_dir, path) = hero_socket::reachable(path)?;
    let path = path.as_path();
    let deadline = Instant::now() + busy_wait;
    let mut pause = Duration::from_micros(500);
    loop {
        match UnixStream::connect(path).await {
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock && Instant::now() + pause < deadline =>
            {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            other => return other,
        }
    }
}
