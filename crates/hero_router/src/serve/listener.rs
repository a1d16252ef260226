//! One accept loop for TCP and Unix listeners: it never stops accepting, sheds connections at
//! `--max-connections-per-client` and `--max-connections`, hands each connection to a shard,
//! and has an accept-error policy that never exits.
//!
//! A client address at its own limit loses its own oldest connection (an idle one first, else
//! a stream); at the listener's limit, the connection that has waited longest for a request
//! head (a slow or idle client) is closed to make room; if every connection is in the middle
//! of a request, the new one gets a 503 at once (see [`super::slots`]). So neither one client's
//! streams nor a flood of slow clients can lock new clients out, and the kernel's accept queue
//! never fills because the router stopped accepting. TCP listeners listen with the kernel's
//! `somaxconn` as their backlog ([`bind_tcp`]), so a burst of connects waits in the accept
//! queue instead of losing other clients' SYNs.
//!
//! Accept errors such as EMFILE are logged at most once a second (with a count of the ones
//! suppressed) and back off exponentially up to one second; the loop only ends on shutdown.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::conn;
use super::front::{Front, Role};
use super::slots::{Admission, ConnSlots, Shed};
use crate::config::ConnLimits;
use crate::proxy::Transport;
use crate::proxy::error::{ProxyError, error_parts_for};
use crate::telemetry::RateLimit;

/// Where the kernel says how long a listen backlog may be.
const SOMAXCONN: &str = "/proc/sys/net/core/somaxconn";
/// The backlog when [`SOMAXCONN`] cannot be read: Linux's `somaxconn` default since 5.4.
const DEFAULT_BACKLOG: u32 = 4096;

/// How long the allow-list must stay unchanged before open connections are judged by it.
const ACCESS_SETTLE: Duration = Duration::from_secs(1);

/// How long a connection refused at the listener's limit drains its request ([`conn::linger`]).
const REFUSED_LINGER: Duration = Duration::from_secs(1);
/// Most refused connections draining at once: beyond it, a refusal closes at once (a flood
/// must not hold a file descriptor per connection for long).
const MAX_REFUSED_LINGERING: usize = 256;

/// One of at most [`MAX_REFUSED_LINGERING`] refused connections draining its request.
struct RefusedLinger;

/// A TCP or Unix listener.
pub(crate) enum AnyListener {
    /// TCP.
    Tcp(TcpListener),
    /// Unix.
    Unix(UnixListener),
}

enum AnyStream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// An accepted stream outside any runtime, on its way to a shard.
enum StdStream {
    Tcp(std::net::TcpStream),
    Unix(std::os::unix::net::UnixStream),
}

impl AnyStream {
    fn into_std(self) -> io::Result<StdStream> {
        Ok(match self {
            AnyStream::Tcp(s) => StdStream::Tcp(s.into_std()?),
            AnyStream::Unix(s) => StdStream::Unix(s.into_std()?),
        })
    }
}

impl StdStream {
    /// Registers the stream with the current runtime (non-blocking mode is kept).
    fn into_tokio(self) -> io::Result<AnyStream> {
        Ok(match self {
            StdStream::Tcp(s) => AnyStream::Tcp(TcpStream::from_std(s)?),
            StdStream::Unix(s) => AnyStream::Unix(UnixStream::from_std(s)?),
        })
    }
}

// === impl AnyListener ===

impl AnyListener {
    /// The next connection. A TCP one gets `send_timeout` as its `TCP_USER_TIMEOUT`: the
    /// kernel ends it once data it sent stays unacknowledged, or the client's receive window
    /// stays closed, for that long (`--send-timeout`, docs/http.md). A slow reader moves the
    /// window and keeps its connection; one that stopped reading does not.
    async fn accept(&self, send_timeout: Duration) -> io::Result<(AnyStream, Transport)> {
        match self {
            AnyListener::Tcp(l) => {
                let (s, peer) = l.accept().await?;
                let _ = s.set_nodelay(true);
                let ms = u32::try_from(send_timeout.as_millis()).unwrap_or(u32::MAX);
                let _ = rustix::net::sockopt::set_tcp_user_timeout(&s, ms.max(1));
                Ok((AnyStream::Tcp(s), Transport::Tcp(peer)))
            }
            AnyListener::Unix(l) => l
                .accept()
                .await
                .map(|(s, _)| (AnyStream::Unix(s), Transport::Unix)),
        }
    }
}

/// What a listener serves.
pub(crate) struct App {
    front: Arc<Front>,
    role: Role,
    limits: ConnLimits,
    shards: Arc<Shards>,
}

impl App {
    /// The app of one listener role; its connections run on `shards`.
    pub(crate) fn new(
        front: Arc<Front>,
        role: Role,
        limits: ConnLimits,
        shards: Arc<Shards>,
    ) -> App {
        App {
            front,
            role,
            limits,
            shards,
        }
    }
}

/// Connection shards: one single-threaded runtime per core, like nginx's workers. An accept
/// loop hands each connection to the next shard; the connection, its upstream connections and
/// its timers then stay on that shard's thread, so a request never wakes another thread.
pub(crate) struct Shards {
    handles: Vec<tokio::runtime::Handle>,
    next: AtomicUsize,
    stop: CancellationToken,
    threads: std::sync::Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Shards {
    /// Starts `n` shard threads (at least one).
    pub(crate) fn start(n: usize) -> io::Result<Arc<Shards>> {
        let stop = CancellationToken::new();
        let mut handles = Vec::new();
        let mut threads = Vec::new();
        for i in 0..n.max(1) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(rt.handle().clone());
            let stop = stop.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("hero-conn-{i}"))
                    .spawn(move || rt.block_on(stop.cancelled()))?,
            );
        }
        Ok(Arc::new(Shards {
            handles,
            next: AtomicUsize::new(0),
            stop,
            threads: std::sync::Mutex::new(threads),
        }))
    }

    /// The shard for the next connection (round robin).
    fn pick(&self) -> &tokio::runtime::Handle {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        &self.handles[i % self.handles.len()]
    }

    /// Stops every shard (tasks still on them are dropped) and waits for the threads.
    pub(crate) fn stop(&self) {
        self.stop.cancel();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

/// Serves `app` on `listener` until `token` is cancelled, then waits for in-flight connections
/// to finish (the caller bounds that wait).
pub(crate) async fn serve(listener: AnyListener, app: Arc<App>, token: CancellationToken) {
    let limits = app.limits;
    let slots = ConnSlots::new(limits.max_connections, limits.max_connections_per_client);
    let connections = TaskTracker::new();
    let mut backoff = Duration::from_millis(5);
    let access = &app.front.access;
    let mut access_changes = access.changes();
    let mut allowed_before = access.list();
    let mut judge_at: Option<tokio::time::Instant> = None;
    loop {
        let accepted = tokio::select! {
            _ = token.cancelled() => break,
            r = listener.accept(limits.send_timeout) => r,
            Ok(()) = access_changes.changed() => {
                // Judged once the file has settled: a file written in pieces shows the watcher
                // lists that are only part of the one meant.
                judge_at = Some(tokio::time::Instant::now() + ACCESS_SETTLE);
                continue;
            }
            () = async {
                match judge_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {
                judge_at = None;
                // A client the new list denies loses its connections now, streams included:
                // each request is judged at its head, but a stream lives on after it.
                let cut = slots.cut_where(|ip| access.revokes(ip, &allowed_before));
                allowed_before = access.list();
                if cut > 0 {
                    tracing::warn!(connections = cut, "the allow-list changed: closed the connections of clients it denies");
                }
                continue;
            }
        };
        let (stream, transport) = match accepted {
            Ok(x) => {
                backoff = Duration::from_millis(5);
                x
            }
            Err(e) if is_per_connection(&e) => continue,
            Err(e) => {
                if let Some(suppressed) = ACCEPT_ERRORS.should_log() {
                    tracing::error!(error = %e, suppressed, "accept failed; backing off");
                }
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let client = match transport {
            Transport::Tcp(peer) => Some(peer.ip()),
            Transport::Unix => None,
        };
        let admission = slots.admit(client);
        match &admission {
            Admission::Admitted(_, Some(Shed::Own(waited))) => {
                if let Some(suppressed) = SHED_OWN.should_log() {
                    let client = client.map(|ip| ip.to_canonical().to_string());
                    tracing::warn!(
                        client = client.as_deref().unwrap_or_default(),
                        max_connections_per_client = limits.max_connections_per_client,
                        waited_for_head = ?waited,
                        suppressed,
                        "client at its connection limit; closed its own oldest connection"
                    );
                }
            }
            Admission::Admitted(_, Some(Shed::Idle(waited))) => {
                if let Some(suppressed) = SHED.should_log() {
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        waited_for_head = ?waited,
                        suppressed,
                        "connection limit reached; closed the connection waiting longest for a request head"
                    );
                }
            }
            Admission::Full => {
                if let Some(suppressed) = SHED.should_log() {
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        suppressed,
                        "connection limit reached and every connection is busy; answering 503"
                    );
                }
            }
            Admission::Admitted(_, None) => {}
        }
        // Move the connection to a shard: it leaves this runtime's reactor and joins the
        // shard's when the task starts there.
        let stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "cannot move a connection to a shard");
                continue;
            }
        };
        let app = app.clone();
        let shard = app.shards.pick().clone();
        shard.spawn(connections.track_future(async move {
            let Ok(mut stream) = stream.into_tokio() else {
                return;
            };
            match admission {
                Admission::Admitted(slot, _) => {
                    conn::serve(
                        stream,
                        transport,
                        app.front.clone(),
                        app.role,
                        limits,
                        &slot,
                    )
                    .await;
                }
                Admission::Full => {
                    // Its request is never read: the answer carries an id of its own, as every
                    // answer the router makes does.
                    let id = crate::traffic::RequestId::generate();
                    let e = ProxyError::TooManyConnections;
                    let (status, mut headers, body) = error_parts_for(&e, Some(id.as_str()));
                    headers.push(("x-request-id", id.as_str().to_owned().into()));
                    let mut out = Vec::new();
                    crate::http1::write_own_head(
                        &mut out,
                        status.as_u16(),
                        &headers,
                        Some(body.len()),
                        crate::http1::Persist::Close,
                    );
                    out.extend_from_slice(&body);
                    if stream.write_all(&out).await.is_ok() {
                        // Its request is on its way or here: drain it, so that closing does
                        // not reset the 503 away. Briefly, and only so many at once: these
                        // connections have no slot.
                        if let Some(_lingering) = RefusedLinger::enter() {
                            let mut scratch = bytes::BytesMut::new();
                            conn::linger(&mut stream, &mut scratch, REFUSED_LINGER).await;
                        }
                    }
                }
            }
        }));
    }
    drop(listener);
    // The answer in flight on each connection is its last; idle ones close now.
    slots.close_all();
    connections.close();
    connections.wait().await;
}

/// One rate limit for accept errors across every listener: at most one log line a second.
static ACCEPT_ERRORS: RateLimit = RateLimit::new();
/// Likewise for shedding at the connection limit.
static SHED: RateLimit = RateLimit::new();
/// Likewise for shedding at a client's own limit.
static SHED_OWN: RateLimit = RateLimit::new();

/// Binds a TCP listener on `addr` (with `SO_REUSEADDR`, as std and tokio bind) whose backlog
/// is the kernel's `somaxconn`: a burst of connects then waits in the accept queue, where the
/// accept loop soon finds it, rather than dropping SYNs that other clients would resend only
/// after a second.
pub(crate) fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog())
}

/// The listen backlog: `somaxconn`, read once (the kernel caps any larger value to it).
fn backlog() -> u32 {
    static BACKLOG: OnceLock<u32> = OnceLock::new();
    *BACKLOG.get_or_init(|| parse_backlog(std::fs::read_to_string(SOMAXCONN).ok().as_deref()))
}

/// The backlog that the contents of [`SOMAXCONN`] give; [`DEFAULT_BACKLOG`] if unreadable.
fn parse_backlog(somaxconn: Option<&str>) -> u32 {
    somaxconn
        .and_then(|t| t.trim().parse::<u32>().ok())
        .filter(|&n| n > 0)
        .map_or(DEFAULT_BACKLOG, |n| n.min(i32::MAX as u32))
}

/// Errors that concern one connection only: keep accepting at once.
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

// === impl AnyStream ===

impl AsyncRead for AnyStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            AnyStream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            AnyStream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for AnyStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            AnyStream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            AnyStream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            AnyStream::Tcp(s) => Pin::new(s).poll_flush(cx),
            AnyStream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            AnyStream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            AnyStream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            AnyStream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            AnyStream::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests;

// === impl RefusedLinger ===

/// Refused connections draining now.
static REFUSED_LINGERING: AtomicUsize = AtomicUsize::new(0);

impl RefusedLinger {
    /// A place among the draining refusals, if one is free.
    fn enter() -> Option<RefusedLinger> {
        REFUSED_LINGERING
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_REFUSED_LINGERING).then_some(n + 1)
            })
            .ok()
            .map(|_| RefusedLinger)
    }
}

impl Drop for RefusedLinger {
    fn drop(&mut self) {
        REFUSED_LINGERING.fetch_sub(1, Ordering::AcqRel);
    }
}
