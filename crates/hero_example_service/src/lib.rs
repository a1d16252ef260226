//! A small example Hero service, used by the tests, demos and benchmarks of hero_router.
//!
//! It owns `<socket_dir>/<name>/<kind>.sock` the cooperative way ([`hero_socket::OwnedSocket`])
//! and serves HTTP/1.1 on it:
//!
//! - `POST /rpc`: JSON-RPC 2.0 (single and batch): `echo`, `sleep_ms`, `add`, `fail`,
//!   `rpc.discover`. Ids round-trip byte for byte.
//! - `GET /health`, `GET /openrpc.json`, `GET /.well-known/heroservice.json`.
//! - `GET /ws` (WebSocket echo), `GET /sse?n=N&interval_ms=M` (server-sent events),
//!   `POST /upload` (streamed byte count), `GET /headers` (the request headers, path and query).
//! - Anything else: 404 `{"error":"not found"}`.
//!
//! [`silent`] is another service: one that answers as Python's `http.server` does.
#![forbid(unsafe_code)]

mod rpc;
pub mod silent;

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::{StreamExt as _, stream};
use hero_socket::{BindOptions, OwnedSocket, SocketGuard};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

/// How long [`RunningService::shutdown`] lets in-flight requests finish before aborting them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and how to run the service.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The Hero socket directory; the socket is `<socket_dir>/<name>/<kind>.sock`.
    pub socket_dir: PathBuf,
    /// The service name (one path component).
    pub name: String,
    /// The socket kind (one path component), usually `"rpc"`.
    pub kind: String,
    /// How to bind the socket.
    pub bind: BindOptions,
    /// Which OpenRPC document it serves.
    pub spec: Spec,
}

/// The OpenRPC document a service serves at `GET /openrpc.json` and `rpc.discover`.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Spec {
    /// Its own document, describing every method it has.
    #[default]
    Rich,
    /// A document that is deliberately not valid OpenRPC.
    Invalid,
    /// None: `GET /openrpc.json` is 404 and `rpc.discover` is "method not found".
    None,
    /// This document, as is (tests serve anything they like).
    Document(Value),
}

impl std::str::FromStr for Spec {
    type Err = String;

    fn from_str(s: &str) -> Result<Spec, String> {
        match s {
            "rich" => Ok(Spec::Rich),
            "invalid" => Ok(Spec::Invalid),
            "none" => Ok(Spec::None),
            _ => Err(format!("{s:?}: expected rich, invalid or none")),
        }
    }
}

impl ServiceConfig {
    /// A config with kind `"rpc"` and default bind options.
    pub fn new(socket_dir: impl Into<PathBuf>, name: impl Into<String>) -> Self {
        ServiceConfig {
            socket_dir: socket_dir.into(),
            name: name.into(),
            kind: "rpc".into(),
            bind: BindOptions::default(),
            spec: Spec::Rich,
        }
    }

    /// `<socket_dir>/<name>/<kind>.sock`.
    pub fn socket_path(&self) -> PathBuf {
        self.socket_dir
            .join(&self.name)
            .join(format!("{}.sock", self.kind))
    }
}

/// A service serving in a tokio task. Dropping it stops serving in the background;
/// [`RunningService::shutdown`] does the same and waits until it is done.
#[derive(Debug)]
pub struct RunningService {
    path: PathBuf,
    stop: DropGuard,
    task: JoinHandle<()>,
}

impl RunningService {
    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops accepting, removes the socket if it is still ours (the `.lock` file stays), lets
    /// in-flight requests finish (aborting them after a while) and waits for the server task.
    pub async fn shutdown(self) {
        let RunningService {
            path,
            stop,
            mut task,
        } = self;
        drop(stop);
        if tokio::time::timeout(DRAIN_TIMEOUT, &mut task)
            .await
            .is_err()
        {
            tracing::warn!(path = %path.display(), "drain timed out; aborting connections");
            task.abort();
            let _ = task.await;
        }
    }
}

/// Binds the socket (before returning, so it is connectable at once) and serves it in a task.
pub async fn spawn(cfg: ServiceConfig) -> anyhow::Result<RunningService> {
    for part in [&cfg.name, &cfg.kind] {
        let ok = !part.is_empty() && part != "." && part != ".." && !part.contains('/');
        anyhow::ensure!(ok, "{part:?} is not a valid name or kind");
    }
    let path = cfg.socket_path();
    let (listener, guard) = OwnedSocket::bind(&path, &cfg.bind)
        .with_context(|| format!("binding {}", path.display()))?
        .into_parts();
    let guard = Arc::new(Mutex::new(Some(guard)));
    listener.set_nonblocking(true).context("set_nonblocking")?;
    let listener = tokio::net::UnixListener::from_std(listener).context("registering listener")?;
    let stop = CancellationToken::new();
    let app = app(&cfg.name, &cfg.kind, &cfg.spec, stop.clone());
    let signal = {
        let (stop, guard) = (stop.clone(), guard.clone());
        // Unlink first, so nobody connects to a socket that no longer accepts.
        async move {
            stop.cancelled().await;
            release(&guard);
        }
    };
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(signal)
            .await
        {
            tracing::error!(error = %e, "server failed");
        }
        release(&guard);
    });
    tracing::info!(path = %path.display(), "serving");
    Ok(RunningService {
        path,
        stop: stop.drop_guard(),
        task,
    })
}

fn release(guard: &Mutex<Option<SocketGuard>>) {
    let taken = guard.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(g) = taken {
        let path = g.path().to_path_buf();
        if let Err(e) = g.remove_if_ours() {
            tracing::warn!(path = %path.display(), error = %e, "could not remove socket");
        }
    }
}

/// The HTTP app, for in-process tests. Its WebSocket and SSE streams never get a stop signal.
pub fn router(name: &str, kind: &str) -> Router {
    app(name, kind, &Spec::Rich, CancellationToken::new())
}

struct AppState {
    name: String,
    kind: String,
    openrpc: Option<Value>,
    stop: CancellationToken,
}

type St = State<Arc<AppState>>;

fn app(name: &str, kind: &str, spec: &Spec, stop: CancellationToken) -> Router {
    let openrpc = match spec {
        Spec::Rich => Some(rpc::openrpc()),
        Spec::Invalid => Some(rpc::invalid_openrpc(name)),
        Spec::None => None,
        Spec::Document(doc) => Some(doc.clone()),
    };
    let state = AppState {
        name: name.to_owned(),
        kind: kind.to_owned(),
        openrpc,
        stop,
    };
    Router::new()
        .route("/rpc", post(rpc_handler))
        .route("/health", get(health))
        .route(
            "/openrpc.json",
            get(|State(s): St| async move {
                match &s.openrpc {
                    Some(doc) => axum::Json(doc.clone()).into_response(),
                    None => json_error(StatusCode::NOT_FOUND, "not found"),
                }
            }),
        )
        .route("/.well-known/heroservice.json", get(heroservice))
        .route("/ws", get(ws))
        .route("/sse", get(sse))
        .route("/upload", post(upload))
        .route("/headers", get(headers))
        .fallback(|| async { json_error(StatusCode::NOT_FOUND, "not found") })
        .method_not_allowed_fallback(|| async {
            json_error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        })
        .with_state(Arc::new(state))
}

fn json_error(status: StatusCode, error: &str) -> Response {
    (status, axum::Json(json!({ "error": error }))).into_response()
}

async fn rpc_handler(State(s): St, body: Bytes) -> Response {
    match rpc::handle(&body, s.openrpc.as_ref()).await {
        Some(text) => ([(header::CONTENT_TYPE, "application/json")], text).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

async fn health(State(s): St) -> impl IntoResponse {
    axum::Json(json!({ "status": "ok", "service": s.name, "version": env!("CARGO_PKG_VERSION") }))
}

async fn heroservice(State(s): St) -> impl IntoResponse {
    axum::Json(json!({
        "protocol": "openrpc",
        "name": s.name,
        "title": "Hero example service",
        "version": env!("CARGO_PKG_VERSION"),
        "description": env!("CARGO_PKG_DESCRIPTION"),
        "socket": s.kind,
    }))
}

async fn ws(State(s): St, upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(move |socket| ws_echo(socket, s.stop.clone()))
}

async fn ws_echo(mut socket: WebSocket, stop: CancellationToken) {
    use axum::extract::ws::Message;
    loop {
        let msg = tokio::select! {
            _ = stop.cancelled() => return,
            msg = socket.recv() => msg,
        };
        match msg {
            Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                if socket.send(m).await.is_err() {
                    return;
                }
            }
            Some(Ok(_)) => {} // ping/pong are handled by the library; close ends recv
            Some(Err(_)) | None => return,
        }
    }
}

fn query_param(uri: &Uri, key: &str) -> Option<u64> {
    let query = uri.query()?;
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)?
        .1
        .parse()
        .ok()
}

async fn sse(State(s): St, uri: Uri) -> impl IntoResponse {
    let n = query_param(&uri, "n").unwrap_or(5);
    let interval = Duration::from_millis(query_param(&uri, "interval_ms").unwrap_or(100));
    let events = stream::unfold(0u64, move |seq| async move {
        if seq >= n {
            return None;
        }
        if seq > 0 {
            tokio::time::sleep(interval).await;
        }
        let event = Event::default().data(json!({ "seq": seq }).to_string());
        Some((Ok::<_, Infallible>(event), seq + 1))
    });
    Sse::new(events.take_until(s.stop.clone().cancelled_owned()))
}

async fn upload(body: Body) -> Response {
    let mut data = body.into_data_stream();
    let mut total: u64 = 0;
    while let Some(chunk) = data.next().await {
        match chunk {
            Ok(bytes) => total += bytes.len() as u64,
            Err(e) => return json_error(StatusCode::BAD_REQUEST, &e.to_string()),
        }
    }
    axum::Json(json!({ "bytes": total })).into_response()
}

async fn headers(headers: HeaderMap, uri: Uri) -> impl IntoResponse {
    let mut out = serde_json::Map::new();
    for name in headers.keys() {
        let values: Vec<String> = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        out.insert(name.as_str().to_owned(), values.join(", ").into());
    }
    out.insert("path".into(), uri.path().into());
    out.insert("query".into(), uri.query().into());
    axum::Json(Value::Object(out))
}
