//! The lean data path: one task per client connection reads request heads itself and serves
//! the common requests without hyper, axum or a pool hand-off.
//!
//! It takes requests with no body or a `Content-Length` body within `--max-body`, no upgrade,
//! no `Expect`, over HTTP/1.1:
//! - proxied requests (`/{service}/{kind}/…` to a live or busy socket), and their routing
//!   errors (bad path, no route, no such service or socket, service down);
//! - `POST /rpc`;
//! - `GET` of the router's own endpoints (`/health`, `/api/services`, `/metrics`, and on
//!   rpc.sock `/openrpc.json` and `/.well-known/heroservice.json`).
//!
//! Anything else (other methods on those endpoints, bodies over the limit, chunked uploads,
//! WebSocket upgrades, HTTP/1.0, malformed or oversized heads, requests before the first scan)
//! is handed to the hyper + axum stack for the rest of the connection, with the bytes already
//! read. Both paths render errors through
//! `proxy::error::error_parts`, so a client cannot tell them apart except by speed.
//!
//! On the upstream side a request uses the connection this client connection kept from its
//! last exchange with the same socket instance, else one from the pool; writes the rewritten
//! head and the body; reads the response head within `--upstream-timeout`; and streams the body
//! as it comes (a `Content-Length` body, chunks passed through as they are, or everything until
//! the upstream closes), watching for the client to leave meanwhile. An upstream connection is
//! kept only after a clean, complete exchange. Once shutdown begins, the answer in flight says
//! `connection: close` and is the connection's last.

use std::io;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::{Semaphore, watch};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use super::front::{Endpoint, Front, Role};
use super::listener::ConnLimits;
use crate::proxy::client::SendError;
use crate::proxy::error::{ProxyError, error_parts};
use crate::proxy::h1::{self, Forwarding, Framing};
use crate::proxy::pool::{self, Key, Pool, UpConn};
use crate::proxy::{Transport, path, resolve};
use crate::table::Table;

/// Bytes read from the client at a time.
const READ_CHUNK: usize = 16 * 1024;

/// What a complete request head turns into.
enum Plan {
    /// Leave this request and the rest of the connection to hyper.
    Hyper,
    /// `POST /rpc`.
    Rpc {
        head_len: usize,
        body_len: usize,
        close: bool,
    },
    /// One of the router's own `GET` endpoints.
    Own {
        head_len: usize,
        close: bool,
        endpoint: Endpoint,
    },
    /// A proxied request.
    Proxy(Box<Forward>),
    /// A request answered with a routing error.
    Fail {
        head_len: usize,
        body_len: u64,
        close: bool,
        error: ProxyError,
    },
}

/// A request to forward, decided from its head.
struct Forward {
    head_len: usize,
    body_len: u64,
    close: bool,
    head_request: bool,
    idempotent: bool,
    key: Key,
    service: String,
    kind: String,
}

/// How an exchange ended, when it did not end cleanly.
enum Failed {
    /// Before a response head went to the client: the client gets this error.
    Early(ProxyError),
    /// After the response head went out, or the client went away: close the connection.
    Late,
}

/// The client connection: the stream and what was read from it but not consumed.
struct Client<S> {
    io: S,
    buf: BytesMut,
    /// Request body bytes not yet taken from `buf` or the socket.
    body_left: u64,
    /// The upstream of the last request, kept for the next one to the same socket.
    affinity: Option<Affinity>,
    /// `--upstream-timeout` for the response head.
    head_watch: Watchdog,
    /// The TCP peer's address as text, for `X-Forwarded-For`.
    peer: Option<String>,
    /// The upstream request head being sent (kept across requests for its allocation).
    up_head: Vec<u8>,
    /// Bytes on their way to the client (likewise).
    out: Vec<u8>,
    /// The table, refreshed when the scanner publishes a new one (no lock shared with other
    /// threads per request).
    table: Arc<Table>,
    tables: watch::Receiver<Arc<Table>>,
    /// Cancelled on shutdown: the answer in flight then says `connection: close`.
    token: CancellationToken,
}

/// An upstream socket this client connection talks to: its in-flight semaphore, and the
/// connection of the last exchange (returned to the pool when the client leaves).
struct Affinity {
    key: Key,
    slots: Arc<Semaphore>,
    conn: Option<UpConn>,
    pool: Arc<Pool>,
}

impl Drop for Affinity {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.checkin(&self.key, conn);
        }
    }
}

/// A deadline that costs no timer operation when it is moved: the timer is re-armed only
/// when it fires early, so it fires at most about once per timeout period, not per request.
struct Watchdog {
    deadline: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Watchdog {
    fn new() -> Watchdog {
        Watchdog {
            deadline: Instant::now(),
            sleep: None,
        }
    }

    /// Sets the deadline. Deadlines only move forward (each is `now + a fixed timeout`).
    fn arm(&mut self, deadline: Instant) {
        self.deadline = deadline;
    }

    /// Resolves once the deadline has passed.
    async fn expired(&mut self) {
        let deadline = self.deadline;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        loop {
            sleep.as_mut().await;
            if Instant::now() >= deadline {
                return;
            }
            sleep.as_mut().reset(deadline);
        }
    }
}

/// Serves one client connection until it closes, or hands it to `hyper`.
pub(super) async fn serve<S, F, Fut>(
    io: S,
    transport: Transport,
    front: Arc<Front>,
    role: Role,
    limits: ConnLimits,
    token: CancellationToken,
    hyper: F,
) where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnOnce(Prefixed<S>) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut client = Client {
        io,
        buf: BytesMut::with_capacity(READ_CHUNK),
        body_left: 0,
        affinity: None,
        head_watch: Watchdog::new(),
        peer: match transport {
            Transport::Tcp(addr) => Some(addr.ip().to_string()),
            Transport::Unix => None,
        },
        up_head: Vec::with_capacity(1024),
        out: Vec::with_capacity(1024),
        table: Arc::default(),
        tables: front.proxy.scanner.tables(),
        token: token.clone(),
    };
    client.table = client.tables.borrow_and_update().clone();
    let mut header_watch = Watchdog::new();
    let cancelled = token.cancelled();
    let mut cancelled = std::pin::pin!(cancelled);
    loop {
        header_watch.arm(Instant::now() + limits.header_read_timeout);
        let next = tokio::select! {
            biased;
            _ = &mut cancelled => return,
            // A client too slow with its headers is cut off.
            _ = header_watch.expired() => return,
            r = client.next_plan(&front, role, limits.max_header_bytes) => r,
        };
        // Closed or a read error: nothing more to answer.
        let Ok(Some(plan)) = next else { return };
        let keep = match plan {
            Plan::Hyper => break,
            Plan::Rpc {
                head_len,
                body_len,
                close,
            } => client.rpc(&front, head_len, body_len, close).await,
            Plan::Own {
                head_len,
                close,
                endpoint,
            } => client.own(&front, head_len, close, endpoint).await,
            Plan::Proxy(fwd) => client.forward(&front, *fwd).await,
            Plan::Fail {
                head_len,
                body_len,
                close,
                error,
            } => {
                client.buf.advance(head_len);
                client.body_left = body_len;
                client.fail(&front, &error, close, Instant::now()).await
            }
        };
        if !keep {
            return;
        }
    }
    let Client { io, buf, .. } = client;
    hyper(Prefixed {
        prefix: buf.freeze(),
        io,
    })
    .await;
}

/// How the client reached us, and the table to route with.
struct Origin<'a> {
    role: Role,
    /// The TCP peer's address; `None` on a Unix socket.
    peer: Option<&'a str>,
    table: &'a Table,
}

/// Decides what to do with the head at the start of `buf`; `None` if it is not complete.
/// For a proxied request the upstream head is written to `up_head`.
fn plan(buf: &[u8], front: &Front, origin: &Origin<'_>, up_head: &mut Vec<u8>) -> Option<Plan> {
    let mut slots = h1::header_slots();
    match h1::parse_request(buf, &mut slots) {
        Ok(None) => None,
        Ok(Some(head)) => Some(plan_head(&head, front, origin, up_head)),
        Err(_) => Some(Plan::Hyper),
    }
}

fn plan_head(
    head: &h1::RequestHead<'_, '_>,
    front: &Front,
    origin: &Origin<'_>,
    up_head: &mut Vec<u8>,
) -> Plan {
    if head.body_len > front.max_body {
        return Plan::Hyper;
    }
    if head.path == "/rpc" {
        return match (head.method, usize::try_from(head.body_len)) {
            ("POST", Ok(body_len)) => Plan::Rpc {
                head_len: head.head_len,
                body_len,
                close: head.close,
            },
            _ => Plan::Hyper,
        };
    }
    if let Some(endpoint) = Endpoint::at(head.path, origin.role) {
        return match (head.method, head.body_len) {
            ("GET", 0) => Plan::Own {
                head_len: head.head_len,
                close: head.close,
                endpoint,
            },
            _ => Plan::Hyper,
        };
    }
    let fail = |error| Plan::Fail {
        head_len: head.head_len,
        body_len: head.body_len,
        close: head.close,
        error,
    };
    if origin.role != Role::Gateway {
        return fail(ProxyError::NoRoute);
    }
    let route = match path::parse(head.path, head.query) {
        Ok(Some(route)) => route,
        Ok(None) => return fail(ProxyError::NoRoute),
        Err(e) => return fail(ProxyError::BadPath(e)),
    };
    if !origin.table.ready {
        // Hyper's path waits for the first scan.
        return Plan::Hyper;
    }
    let target = match resolve(origin.table, &route.service, &route.kind) {
        Ok(target) => target,
        Err(e) => return fail(e),
    };
    let fwd = Forwarding {
        service: &route.service,
        kind: &route.kind,
        peer: origin.peer,
        strip_hero: origin.peer.is_some() && !front.proxy.trust_forwarded_headers,
    };
    up_head.clear();
    h1::write_upstream_head(head, &route.upstream, &fwd, up_head);
    Plan::Proxy(Box::new(Forward {
        head_len: head.head_len,
        body_len: head.body_len,
        close: head.close,
        head_request: head.method == "HEAD",
        idempotent: matches!(head.method, "GET" | "HEAD" | "OPTIONS" | "PUT" | "DELETE"),
        key: Key {
            path: target.path,
            identity: target.identity,
        },
        service: target.service,
        kind: target.kind,
    }))
}

// === impl Client ===

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    async fn fill(&mut self) -> io::Result<usize> {
        self.buf.reserve(READ_CHUNK);
        self.io.read_buf(&mut self.buf).await
    }

    /// Reads until a head is complete and decides what to do with it. A head that is
    /// unparseable or over `max` bytes goes to hyper, which answers it. `Ok(None)`: the
    /// client closed.
    async fn next_plan(
        &mut self,
        front: &Front,
        role: Role,
        max: usize,
    ) -> io::Result<Option<Plan>> {
        loop {
            // Parse only once the blank line that ends a head can be there.
            if may_hold_head(&self.buf) {
                if self.tables.has_changed().unwrap_or(false) {
                    self.table = self.tables.borrow_and_update().clone();
                }
                let origin = Origin {
                    role,
                    peer: self.peer.as_deref(),
                    table: &self.table,
                };
                if let Some(plan) = plan(&self.buf, front, &origin, &mut self.up_head) {
                    return Ok(Some(plan));
                }
            }
            if self.buf.len() > max {
                return Ok(Some(Plan::Hyper));
            }
            if self.fill().await? == 0 {
                return Ok(None);
            }
        }
    }

    /// Answers one of the router's own `GET` endpoints. Returns whether the connection stays
    /// open.
    async fn own(&mut self, front: &Front, head_len: usize, close: bool, e: Endpoint) -> bool {
        self.buf.advance(head_len);
        let (content_type, body) = front.endpoint(e);
        let close = close || self.token.is_cancelled();
        self.out.clear();
        let headers = [("content-type", content_type)];
        write_head(&mut self.out, 200, &headers, Some(body.len()), close);
        self.out.extend_from_slice(body.as_bytes());
        self.io.write_all(&self.out).await.is_ok() && !close
    }

    /// Answers `POST /rpc`. Returns whether the connection stays open.
    async fn rpc(&mut self, front: &Front, head_len: usize, body_len: usize, close: bool) -> bool {
        let started = Instant::now();
        while self.buf.len() < head_len + body_len {
            if !matches!(self.fill().await, Ok(n) if n > 0) {
                return false;
            }
        }
        self.buf.advance(head_len);
        let body = self.buf.split_to(body_len);
        let answer = front.rpc.handle(&body).await;
        let close = close || self.token.is_cancelled();
        let status = if answer.is_some() { 200 } else { 204 };
        let mut out = Vec::with_capacity(256 + answer.as_ref().map_or(0, String::len));
        let headers: &[(&str, &str)] = match answer {
            Some(_) => &[("content-type", "application/json")],
            None => &[],
        };
        let body = answer.as_deref().unwrap_or("").as_bytes();
        write_head(
            &mut out,
            status,
            headers,
            (status != 204).then_some(body.len()),
            close,
        );
        out.extend_from_slice(body);
        front
            .metrics()
            .record("hero_router", "rpc", status, started.elapsed());
        self.io.write_all(&out).await.is_ok() && !close
    }

    /// Forwards one request. Returns whether the connection stays open.
    async fn forward(&mut self, front: &Front, fwd: Forward) -> bool {
        let started = Instant::now();
        self.buf.advance(fwd.head_len);
        self.body_left = fwd.body_len;
        match self.exchange(front, &fwd, started).await {
            Ok(keep) => keep && !fwd.close && !self.token.is_cancelled(),
            Err(Failed::Late) => false,
            Err(Failed::Early(e)) => self.fail(front, &e, fwd.close, started).await,
        }
    }

    /// Answers with an error before anything went upstream (or before the upstream answered).
    /// A request body we did not send is skipped if we have it whole; if part of it is still
    /// in the socket, the connection closes after the answer. Returns whether it stays open.
    async fn fail(&mut self, front: &Front, e: &ProxyError, close: bool, started: Instant) -> bool {
        let skip = usize::try_from(self.body_left).unwrap_or(usize::MAX);
        let close = close || skip > self.buf.len() || self.token.is_cancelled();
        if !close {
            self.buf.advance(skip);
            self.body_left = 0;
        }
        let (status, headers, body) = error_parts(e);
        self.out.clear();
        write_head(
            &mut self.out,
            status.as_u16(),
            &headers,
            Some(body.len()),
            close,
        );
        self.out.extend_from_slice(&body);
        let service = e.service().unwrap_or("-");
        front
            .metrics()
            .record(service, "-", status.as_u16(), started.elapsed());
        self.io.write_all(&self.out).await.is_ok() && !close
    }

    /// Sends the request upstream and streams the response back. `Ok(keep)`.
    async fn exchange(
        &mut self,
        front: &Front,
        fwd: &Forward,
        started: Instant,
    ) -> Result<bool, Failed> {
        let ctx = &front.proxy;
        let timeout = ctx.upstream_timeout;
        let service = || fwd.service.clone();
        let early = |e: SendError| {
            Failed::Early(match e {
                SendError::Busy => ProxyError::Busy { service: service() },
                SendError::Timeout => ProxyError::Timeout { service: service() },
                SendError::Down(detail) => ProxyError::Down {
                    service: service(),
                    detail,
                },
                SendError::BodyTooLarge => ProxyError::BodyTooLarge {
                    limit: ctx.max_body,
                },
                SendError::Broken(detail) => ProxyError::Upstream {
                    service: service(),
                    detail,
                },
            })
        };
        let (slots, up) = self.upstream(&ctx.pool, &fwd.key);
        let slot = pool::acquire(slots, timeout)
            .await
            .ok_or_else(|| early(SendError::Busy))?;
        let mut up = match up {
            Some(up) => up,
            None => ctx.pool.checkout(&fwd.key).await.map_err(early)?,
        };
        let mut first = true;
        let head = loop {
            // Try once more on a fresh connection when a pooled one turns out to be closed,
            // and only when nothing can have been processed twice: the write failed before
            // any body byte left our hands, or the request had no body and is idempotent.
            let retry = std::mem::replace(&mut first, false) && up.reused;
            let untouched = self.body_left == fwd.body_len;
            if let Err(e) = self.send_request(&mut up).await {
                match e {
                    Sent::Client => return Err(Failed::Late),
                    Sent::Upstream(_) if retry && untouched => {
                        up = ctx.pool.connect(&fwd.key).await.map_err(early)?;
                        continue;
                    }
                    Sent::Upstream(e) => return Err(early(SendError::Broken(e.to_string()))),
                }
            }
            self.head_watch.arm(Instant::now() + timeout);
            let read = tokio::select! {
                biased;
                r = read_response_head(&mut up, fwd, &self.token, &mut self.io, &mut self.out) => r,
                _ = self.head_watch.expired() => return Err(early(SendError::Timeout)),
            };
            match read {
                Ok(head) => break head,
                Err(HeadError::Closed) if retry && fwd.idempotent && fwd.body_len == 0 => {
                    up = ctx.pool.connect(&fwd.key).await.map_err(early)?;
                }
                Err(HeadError::Closed) => {
                    return Err(early(SendError::Broken(
                        "connection closed before a response".into(),
                    )));
                }
                Err(HeadError::Bad(e)) => return Err(early(SendError::Broken(e))),
                Err(HeadError::Client) => return Err(Failed::Late),
            }
        };
        drop(slot);
        front
            .metrics()
            .record(&fwd.service, &fwd.kind, head.status, started.elapsed());
        let done = self.stream_body(&mut up, head.framing).await;
        if done && head.reusable && up.buf.is_empty() {
            if let Some(a) = self.affinity.as_mut() {
                a.conn = Some(up);
            }
        }
        Ok(done && head.framing != Framing::UntilClose)
    }

    /// The in-flight semaphore of `key`, and the connection kept from the last exchange with
    /// it, if that is still usable. A different key replaces the affinity.
    fn upstream(&mut self, pool: &Arc<Pool>, key: &Key) -> (Arc<Semaphore>, Option<UpConn>) {
        match &mut self.affinity {
            Some(a) if a.key == *key => {
                let conn = a.conn.take().filter(UpConn::still_idle).map(|mut c| {
                    c.reused = true;
                    c
                });
                (a.slots.clone(), conn)
            }
            _ => {
                let slots = pool.inflight.semaphore(&key.path);
                self.affinity = Some(Affinity {
                    key: key.clone(),
                    slots: slots.clone(),
                    conn: None,
                    pool: pool.clone(),
                });
                (slots, None)
            }
        }
    }

    /// Writes the upstream head and the request body (`self.body_left` bytes, some of them
    /// maybe already in `self.buf`).
    async fn send_request(&mut self, up: &mut UpConn) -> Result<(), Sent> {
        let have = self
            .buf
            .len()
            .min(usize::try_from(self.body_left).unwrap_or(usize::MAX));
        if have as u64 == self.body_left {
            // The common case: head and whole body in one write. The head stays as it was,
            // for a retry.
            let head_len = self.up_head.len();
            self.up_head.extend_from_slice(&self.buf[..have]);
            let sent = up.io.write_all(&self.up_head).await;
            self.up_head.truncate(head_len);
            sent.map_err(Sent::Upstream)?;
            self.buf.advance(have);
            self.body_left = 0;
            return Ok(());
        }
        up.io
            .write_all(&self.up_head)
            .await
            .map_err(Sent::Upstream)?;
        loop {
            let take = self
                .buf
                .len()
                .min(usize::try_from(self.body_left).unwrap_or(usize::MAX));
            if take > 0 {
                up.io
                    .write_all(&self.buf[..take])
                    .await
                    .map_err(Sent::Upstream)?;
                self.buf.advance(take);
                self.body_left -= take as u64;
            }
            if self.body_left == 0 {
                return Ok(());
            }
            if !matches!(self.fill().await, Ok(n) if n > 0) {
                return Err(Sent::Client);
            }
        }
    }

    /// Streams a response body to the client, after what `self.out` holds (the head).
    /// Returns true if the whole body went through.
    async fn stream_body(&mut self, up: &mut UpConn, framing: Framing) -> bool {
        let out = &mut self.out;
        let mut left = match framing {
            Framing::Length(n) => n,
            _ => 0,
        };
        let mut chunks = h1::ChunkedScanner::default();
        loop {
            // Move what the upstream buffer holds of this body into `out`.
            let take = match framing {
                Framing::Empty => 0,
                Framing::Length(_) => up
                    .buf
                    .len()
                    .min(usize::try_from(left).unwrap_or(usize::MAX)),
                Framing::Chunked => match chunks.advance(&up.buf, |_| {}) {
                    Ok(n) => n,
                    Err(_) => return false,
                },
                Framing::UntilClose => up.buf.len(),
            };
            if out.is_empty() && take > 0 {
                // Nothing else to send: write straight from the upstream buffer.
                if self.io.write_all(&up.buf[..take]).await.is_err() {
                    return false;
                }
            } else {
                out.extend_from_slice(&up.buf[..take]);
                if self.io.write_all(out).await.is_err() {
                    return false;
                }
                out.clear();
            }
            up.buf.advance(take);
            if let Framing::Length(_) = framing {
                left -= take as u64;
            }
            let finished = match framing {
                Framing::Empty => true,
                Framing::Length(_) => left == 0,
                Framing::Chunked => chunks.is_done(),
                Framing::UntilClose => false,
            };
            if finished {
                return true;
            }
            // Wait for more of the body, and notice a client that leaves meanwhile (a stream
            // may be quiet for minutes; it must not hold the connection, or shutdown, that long).
            let filled = tokio::select! {
                r = up.fill() => r,
                () = client_gone(&mut self.io, &mut self.buf) => return false,
            };
            match filled {
                Ok(0) => return framing == Framing::UntilClose,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    }
}

/// Resolves when the client closes its side (or its connection fails). Bytes it sends
/// meanwhile (a pipelined next request) are kept in `buf`, up to [`READ_CHUNK`]; beyond that
/// it stops reading until the response is done.
async fn client_gone<S: AsyncRead + Unpin>(io: &mut S, buf: &mut BytesMut) {
    while buf.len() < READ_CHUNK {
        buf.reserve(READ_CHUNK - buf.len());
        if !matches!(io.read_buf(buf).await, Ok(n) if n > 0) {
            return;
        }
    }
    std::future::pending().await
}

/// Why sending the request failed.
enum Sent {
    /// The client went away mid-body.
    Client,
    /// Writing upstream failed.
    Upstream(io::Error),
}

/// Why reading the response head failed.
enum HeadError {
    /// The upstream closed before a complete head.
    Closed,
    /// The upstream sent an unusable head.
    Bad(String),
    /// Forwarding an interim (1xx) head to the client failed.
    Client,
}

/// Reads the final response head from upstream, forwarding interim 1xx heads to the client.
/// The head to send downstream is left in `out`.
/// Once shutdown has begun (`shutdown` cancelled), the answer says `connection: close`.
async fn read_response_head<S: AsyncWrite + Unpin>(
    up: &mut UpConn,
    fwd: &Forward,
    shutdown: &CancellationToken,
    client: &mut S,
    out: &mut Vec<u8>,
) -> Result<h1::ResponseHead, HeadError> {
    loop {
        out.clear();
        let close = fwd.close || shutdown.is_cancelled();
        match h1::parse_response(&up.buf, fwd.head_request, close, Some(out)) {
            Ok(Some(h)) if (100..200).contains(&h.status) => {
                up.buf.advance(h.head_len);
                if client.write_all(out).await.is_err() {
                    return Err(HeadError::Client);
                }
                continue;
            }
            Ok(Some(h)) => {
                up.buf.advance(h.head_len);
                return Ok(h);
            }
            Ok(None) if up.buf.len() > h1::MAX_RESPONSE_HEAD => {
                return Err(HeadError::Bad(format!(
                    "response head larger than {} bytes",
                    h1::MAX_RESPONSE_HEAD
                )));
            }
            Ok(None) => {}
            Err(e) => return Err(HeadError::Bad(e.to_string())),
        }
        match up.fill().await {
            Ok(0) | Err(_) if up.buf.is_empty() => return Err(HeadError::Closed),
            Ok(0) => {
                return Err(HeadError::Bad(
                    "connection closed in the response head".into(),
                ));
            }
            Ok(_) => {}
            Err(e) => return Err(HeadError::Bad(e.to_string())),
        }
    }
}

/// True if `buf` may hold a complete head: it has a blank line (`\n\n` or `\n\r\n`).
fn may_hold_head(buf: &[u8]) -> bool {
    memchr::memchr_iter(b'\n', buf).any(|i| {
        matches!(
            buf.get(i + 1..),
            Some([b'\n', ..]) | Some([b'\r', b'\n', ..])
        )
    })
}

/// Writes a response head we produce ourselves (not a proxied one).
fn write_head(
    out: &mut Vec<u8>,
    status: u16,
    headers: &[(&str, &str)],
    length: Option<usize>,
    close: bool,
) {
    use std::io::Write as _;
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let _ = write!(out, "HTTP/1.1 {status} {reason}\r\n");
    for (name, value) in headers {
        let _ = write!(out, "{name}: {value}\r\n");
    }
    if let Some(n) = length {
        let _ = write!(out, "content-length: {n}\r\n");
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    let _ = write!(
        out,
        "date: {}\r\n\r\n",
        httpdate::fmt_http_date(std::time::SystemTime::now())
    );
}

/// A stream with bytes already read from it put back in front: what hyper gets on a hand-off.
pub(super) struct Prefixed<S> {
    prefix: bytes::Bytes,
    io: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.prefix.is_empty() {
            return std::pin::Pin::new(&mut this.io).poll_read(cx, buf);
        }
        let n = this.prefix.len().min(buf.remaining());
        buf.put_slice(&this.prefix[..n]);
        this.prefix.advance(n);
        std::task::Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> std::task::Poll<io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
