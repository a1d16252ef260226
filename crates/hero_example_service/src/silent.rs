//! A service that answers the way Python's `http.server` does, for the tests and benchmarks of
//! services the router did not write: HTTP/1.1 with a `Content-Length` on every answer, and
//! after a request that says `Connection: close`, a close that its answer does not announce.
//!
//! It serves `GET /.well-known/heroservice.json`, `GET /openrpc.json` (its document),
//! `POST /rpc` (`add` of `a` and `b`, `rpc.discover`) and `{"status":"ok"}` for anything else.
//! It reads only what tests send it (heads with a `Content-Length` body); it is not a server
//! to put in front of clients.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinSet;

/// A running silent-closing service. Dropping it stops it and every connection it holds, as a
/// process that exits does.
pub struct SilentService {
    tasks: JoinSet<()>,
    state: Arc<Shared>,
}

struct Shared {
    spec: String,
    spec_fetches: AtomicUsize,
    failing: AtomicBool,
}

impl SilentService {
    /// Binds `path` and serves `spec` (an OpenRPC document) on it.
    pub fn bind(path: &Path, spec: String) -> io::Result<SilentService> {
        Ok(SilentService::serve(UnixListener::bind(path)?, spec))
    }

    /// Restarts at `path` the way a service with a new socket file does, with no moment
    /// without a listener: binds `<path>.new` and renames it over `path`.
    pub fn start_over(path: &Path, spec: String) -> io::Result<SilentService> {
        let fresh = path.with_extension("sock.new");
        let _ = std::fs::remove_file(&fresh);
        let listener = UnixListener::bind(&fresh)?;
        std::fs::rename(&fresh, path)?;
        Ok(SilentService::serve(listener, spec))
    }

    fn serve(listener: UnixListener, spec: String) -> SilentService {
        let state = Arc::new(Shared {
            spec,
            spec_fetches: AtomicUsize::new(0),
            failing: AtomicBool::new(false),
        });
        let mut tasks = JoinSet::new();
        let shared = state.clone();
        tasks.spawn(async move {
            let mut conns = JoinSet::new();
            while let Ok((s, _)) = listener.accept().await {
                let shared = shared.clone();
                conns.spawn(async move {
                    let _ = serve_connection(s, &shared).await;
                });
            }
        });
        SilentService { tasks, state }
    }

    /// `GET /openrpc.json` requests seen so far.
    pub fn spec_fetches(&self) -> usize {
        self.state.spec_fetches.load(Ordering::SeqCst)
    }

    /// While `failing`, a `GET /openrpc.json` gets its connection closed and no answer.
    pub fn set_failing(&self, failing: bool) {
        self.state.failing.store(failing, Ordering::SeqCst);
    }
}

impl Drop for SilentService {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

/// Serves one connection until the client leaves or asks to close.
async fn serve_connection(mut s: UnixStream, shared: &Shared) -> io::Result<()> {
    let mut buf = Vec::new();
    loop {
        let end = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            if !read_more(&mut s, &mut buf).await? {
                return Ok(());
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < end + length {
            if !read_more(&mut s, &mut buf).await? {
                return Ok(());
            }
        }
        let body = buf[end..end + length].to_vec();
        buf.drain(..end + length);
        let target = head.split(' ').nth(1).unwrap_or("");
        let answer = match target {
            "/.well-known/heroservice.json" => {
                r#"{"protocol":"openrpc","title":"Silent"}"#.to_owned()
            }
            "/openrpc.json" => {
                shared.spec_fetches.fetch_add(1, Ordering::SeqCst);
                if shared.failing.load(Ordering::SeqCst) {
                    return Ok(());
                }
                shared.spec.clone()
            }
            "/rpc" => rpc(&body, &shared.spec),
            _ => r#"{"status":"ok"}"#.to_owned(),
        };
        let out = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}",
            answer.len()
        );
        s.write_all(out.as_bytes()).await?;
        if head.contains("connection: close") {
            return Ok(());
        }
    }
}

async fn read_more(s: &mut UnixStream, buf: &mut Vec<u8>) -> io::Result<bool> {
    let mut chunk = [0u8; 4096];
    let n = s.read(&mut chunk).await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n > 0)
}

/// The answer to a JSON-RPC call: `add` and `rpc.discover`.
fn rpc(body: &[u8], spec: &str) -> String {
    let call: Value = serde_json::from_slice(body).unwrap_or_default();
    let (id, params) = (&call["id"], &call["params"]);
    match call["method"].as_str() {
        Some("add") => {
            let sum = params["a"].as_i64().unwrap_or(0) + params["b"].as_i64().unwrap_or(0);
            json!({"jsonrpc": "2.0", "id": id, "result": sum}).to_string()
        }
        Some("rpc.discover") => format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{spec}}}"#),
        _ => json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "method not found"}})
            .to_string(),
    }
}
