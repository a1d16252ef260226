//! The proxy engine: one proxied request from the client connection to a service's socket
//! and its answer back (docs/http.md#proxy).
//!
//! A request uses the connection this client connection kept from its last exchange with the
//! same socket instance, else one from the pool. The router writes the head and the body in
//! exactly the framing the head declares (a `Content-Length` body as it is, a chunked one
//! decoded and re-encoded), reads the response head within `--upstream-timeout`, and streams
//! the body as it comes, watching for the client to leave meanwhile. If the service answers
//! before the request body is all sent, sending stops there. An upstream connection is kept
//! only at a clean boundary: request sent whole, answer read whole, nothing extra arrived, no
//! upgrade asked for. A `101` answer to an upgrade bridges the two connections byte for byte.
//!
//! [`ClientConn`] is the client connection as the engine and the connection driver
//! (`serve::conn`) share it: the stream, the bytes read but not consumed, the request body's
//! progress. The driver decides what a request is; this module moves its bytes.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::Target;
use super::error::ProxyError;
use super::watchdog::Watchdog;
use crate::http1::{self, BodyFraming, ChunkedDecoder, Exchange, Framing, ResponseHead};
use crate::metrics::Metrics;
use crate::registry::table::{Socket, Table};
use crate::shared::Shared;
use crate::traffic::RequestId;
use crate::upstream::{self, HeadError, Key, Pool, SendError, UpConn};

/// A client connection's stream: TCP or Unix (or a test's in-memory pipe).
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin {}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for S {}

/// Whether the client connection is closing (shed for a newer one, or shutdown began): the
/// answer in flight then says `connection: close`, and a bridge or a stream ends.
pub(crate) trait Closing {
    /// True once closing began.
    fn is_closing(&self) -> bool;
    /// Resolves once closing begins.
    fn closed(&self) -> impl Future<Output = ()>;
}

/// Bytes read from the client at a time.
pub(crate) const READ_CHUNK: usize = 16 * 1024;
/// What the router says before reading a body the client holds back for it.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The framing facts of an accepted request, kept after its head leaves the buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Req {
    /// Length of the head in the client's buffer.
    pub head_len: usize,
    /// How the body is delimited.
    pub body: BodyFraming,
    /// The client keeps the connection after this request.
    pub keep_alive: bool,
    /// The client speaks HTTP/1.0.
    pub http10: bool,
    /// The client waits for `100 Continue` before its body.
    pub expect_continue: bool,
    /// The method is `HEAD`.
    pub head_request: bool,
    /// The request asks for a protocol upgrade.
    pub upgrade: bool,
}

impl Req {
    /// The framing facts of `head`.
    pub(crate) fn of(head: &http1::RequestHead<'_, '_>) -> Req {
        Req {
            head_len: head.head_len,
            body: head.body,
            keep_alive: head.keep_alive,
            http10: head.http10,
            expect_continue: head.expect_continue,
            head_request: head.method == "HEAD",
            upgrade: head.upgrade.is_some(),
        }
    }
}

/// Where a proxied request goes: a socket of the table it was routed with. The table is the
/// connection's own reference, unchanged until its next request is planned: no reference
/// count shared by every thread moves per request.
pub(crate) struct Forward<'t> {
    /// Safe to send again on a fresh connection if a pooled one turns out closed.
    pub idempotent: bool,
    /// The table the request was routed with.
    pub table: &'t Table,
    /// The socket in it.
    pub target: Target,
}

impl Forward<'_> {
    /// The service's name.
    fn service(&self) -> &str {
        &self.target.service(self.table).name
    }

    /// The socket.
    fn socket(&self) -> &Socket {
        self.target.socket(self.table)
    }
}

/// How much of the current request's body is still unread.
#[derive(Debug, Clone, Copy)]
pub(crate) enum BodyLeft {
    /// None: the next bytes start the next request.
    Done,
    /// This many bytes of a `Content-Length` body.
    Length(u64),
    /// The rest of a chunked body.
    Chunked(ChunkedDecoder),
}

/// How an exchange ended, when it did not end cleanly.
pub(crate) enum Failed {
    /// Before a response head went to the client: the client gets this error.
    Early(ProxyError),
    /// After the response head went out, or the client went away: close the connection.
    Late,
}

/// Why sending the request failed.
pub(crate) enum Sent {
    /// The client went away mid-body.
    Client,
    /// The request body broke a rule (bad chunks, over `--max-body`): the client's error.
    Body(ProxyError),
    /// Writing upstream failed.
    Upstream(io::Error),
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

/// A client connection as the engine and the connection driver share it.
pub(crate) struct ClientConn<S> {
    /// The upstream of the last request, kept for the next one to the same socket. Declared
    /// before `io` so that it is dropped first: its connection is back in the pool before the
    /// client sees its own connection close (and sends its next request on a new one).
    affinity: Option<Affinity>,
    /// The client's stream.
    pub io: S,
    /// Bytes read from the client but not consumed yet.
    pub buf: BytesMut,
    /// The unread rest of the current request's body.
    pub body: BodyLeft,
    /// A body byte of the current request has been consumed (nothing can be sent twice).
    body_started: bool,
    /// The client waits for `100 Continue` before sending its body.
    expect_pending: bool,
    /// Bytes on their way somewhere (kept across requests for its allocation).
    pub out: Vec<u8>,
    /// The upstream request head being sent (likewise).
    pub up_head: Vec<u8>,
    /// Interim (1xx) heads on their way to the client.
    interim: upstream::Interim,
    /// `--upstream-timeout` for the response head.
    head_watch: Watchdog,
    /// When a quiet client's kept upstream connection is let go ([`ClientConn::fill_next`]).
    release_watch: Watchdog,
    /// The longest pause within a request body (`--header-timeout`): a client that stops
    /// sending its body mid-way gets 408 and loses its connection, rather than hold it, and
    /// a service's in-flight slot, for as long as it likes.
    pub body_pause: std::time::Duration,
    /// The current request's id, written on every answer to it.
    pub request_id: RequestId,
    /// What the current request has cost so far (for the access log and the traffic
    /// counters).
    pub tally: Tally,
}

/// What one request moved and how it was answered.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Tally {
    /// The status of the answer's head (0 while none was sent).
    pub status: u16,
    /// Bytes read from the client: the head and the body.
    pub received: u64,
    /// Bytes written to the client.
    pub sent: u64,
    /// Time from sending the request to a service to its answer's head, if one was asked.
    pub upstream: Option<std::time::Duration>,
    /// Time from the complete request head to the answer's head, for a proxied answer (whose
    /// body may stream for long after).
    pub answered: Option<std::time::Duration>,
    /// The router made the answer itself (an error), rather than a service.
    pub router_made: bool,
    /// A JSON-RPC call in it got a router error instead of its service's answer (the HTTP
    /// status is still 200): counted as a router error.
    pub call_failed: bool,
    /// What ended a proxied answer's body before its end, if anything did.
    pub cut: Option<Cut>,
}

/// What ended a proxied answer's body short of its end (the client saw the head, then the
/// connection closed): the access log's `error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Cut {
    /// The service closed before the length it declared, or before the last chunk.
    #[error("the service closed the connection before the end of its body")]
    ServiceClosed,
    /// Reading the service's body failed.
    #[error("reading the service's body failed")]
    ServiceBroke,
    /// The service's chunked body broke the framing rules.
    #[error("the service's chunked body is malformed")]
    BadChunks,
    /// The client closed, or stopped taking bytes, before the end.
    #[error("the client left before the end of the body")]
    ClientLeft,
    /// The client took none of the answer for `--send-timeout`.
    #[error("the client took none of the answer for --send-timeout, and was cut off")]
    ClientStalled,
}

impl Cut {
    /// The cut a failed write to the client makes: it stalled (`--send-timeout`) or left.
    fn client(e: &io::Error) -> Cut {
        if e.kind() == io::ErrorKind::TimedOut {
            Cut::ClientStalled
        } else {
            Cut::ClientLeft
        }
    }
}

// === impl ClientConn ===

impl<S: Stream> ClientConn<S> {
    /// A connection with nothing read yet.
    pub(crate) fn new(io: S) -> ClientConn<S> {
        ClientConn {
            io,
            buf: BytesMut::with_capacity(READ_CHUNK),
            body: BodyLeft::Done,
            body_started: false,
            expect_pending: false,
            out: Vec::with_capacity(1024),
            up_head: Vec::with_capacity(1024),
            interim: upstream::Interim::default(),
            affinity: None,
            head_watch: Watchdog::new(),
            release_watch: Watchdog::new(),
            body_pause: std::time::Duration::from_secs(10),
            request_id: RequestId::none(),
            tally: Tally::default(),
        }
    }

    /// Starts a request whose head (`req.head_len` bytes) is at the start of the buffer: the
    /// head is consumed, the body is next.
    pub(crate) fn start(&mut self, req: &Req) {
        self.buf.advance(req.head_len);
        self.tally.received += req.head_len as u64;
        self.body = match req.body {
            BodyFraming::None | BodyFraming::Length(0) => BodyLeft::Done,
            BodyFraming::Length(n) => BodyLeft::Length(n),
            BodyFraming::Chunked => BodyLeft::Chunked(ChunkedDecoder::default()),
        };
        self.body_started = false;
        self.expect_pending = req.expect_continue;
    }

    /// True if the connection ends after this request's answer: the client asked for it, its
    /// body was not read whole, or the connection is closing.
    pub(crate) fn closes_after(&self, req: &Req, closing: bool) -> bool {
        !req.keep_alive || !matches!(self.body, BodyLeft::Done) || closing
    }

    /// Counts the interim heads written to the client so far as sent, and says whether one is
    /// only partly written: then no answer of the router's own can follow on this connection.
    pub(crate) fn settle_interim(&mut self) -> bool {
        self.tally.sent += std::mem::take(&mut self.interim.sent);
        !self.interim.pending.is_empty()
    }

    /// Whether the client may still be sending: part of the current request's body, or a
    /// byte after it, is unread.
    pub(crate) fn may_be_sending(&self) -> bool {
        !matches!(self.body, BodyLeft::Done) || !self.buf.is_empty()
    }

    pub(crate) async fn fill(&mut self) -> io::Result<usize> {
        self.buf.reserve(READ_CHUNK);
        self.io.read_buf(&mut self.buf).await
    }

    /// [`fill`](ClientConn::fill) while waiting for the next request, since `quiet_since`.
    /// The upstream connection kept for that request is let go once the client has been
    /// quiet as long as the pool keeps an idle one ([`upstream::IDLE_TIMEOUT`]): a keep-alive
    /// client idle for up to `--header-timeout` held it, and a service that serves one
    /// connection at a time answered nobody else meanwhile. Under load the read comes first
    /// and the timer is not even re-armed ([`Watchdog`]).
    pub(crate) async fn fill_next(&mut self, quiet_since: Instant) -> io::Result<usize> {
        let kept = self.affinity.as_ref().is_some_and(|a| a.conn.is_some());
        if !kept || !self.buf.is_empty() {
            return self.fill().await;
        }
        self.release_watch.arm(quiet_since + upstream::IDLE_TIMEOUT);
        self.buf.reserve(READ_CHUNK);
        tokio::select! {
            biased;
            r = self.io.read_buf(&mut self.buf) => return r,
            () = self.release_watch.expired() => {}
        }
        // Closed, not pooled: it has been idle as long as the pool would keep it.
        if let Some(a) = self.affinity.as_mut() {
            drop(a.conn.take());
        }
        self.fill().await
    }

    /// Consumes the rest of the request body if it is all in the buffer already.
    pub(crate) fn skip_buffered_body(&mut self) {
        match &mut self.body {
            BodyLeft::Done => {}
            BodyLeft::Length(left) => {
                if let Ok(n) = usize::try_from(*left) {
                    if n <= self.buf.len() {
                        self.buf.advance(n);
                        self.tally.received += n as u64;
                        self.body = BodyLeft::Done;
                    }
                }
            }
            BodyLeft::Chunked(decoder) => {
                let mut d = *decoder;
                if let Ok(n) = d.advance(&self.buf, |_| {}) {
                    if d.is_done() {
                        self.buf.advance(n);
                        self.tally.received += n as u64;
                        self.body = BodyLeft::Done;
                    }
                }
            }
        }
    }

    /// Sends `100 Continue` if the client is waiting for it before its body.
    async fn continue_body(&mut self) -> Result<(), Sent> {
        if std::mem::take(&mut self.expect_pending) {
            self.io
                .write_all(CONTINUE)
                .await
                .map_err(|_| Sent::Client)?;
            self.tally.sent += CONTINUE.len() as u64;
        }
        Ok(())
    }

    /// Reads the whole request body, de-chunked, at most `limit` bytes.
    pub(crate) async fn read_whole_body(&mut self, limit: u64) -> Result<BytesMut, Sent> {
        let too_large = || Sent::Body(ProxyError::BodyTooLarge { limit });
        let mut body = BytesMut::new();
        loop {
            match &mut self.body {
                BodyLeft::Done => return Ok(body),
                BodyLeft::Length(left) => {
                    if *left > limit {
                        return Err(too_large());
                    }
                    let n = *left as usize;
                    if self.buf.len() >= n {
                        self.body = BodyLeft::Done;
                        self.tally.received += n as u64;
                        return Ok(self.buf.split_to(n));
                    }
                }
                BodyLeft::Chunked(decoder) => {
                    let used = decoder
                        .advance(&self.buf, |d| body.extend_from_slice(d))
                        .map_err(|e| Sent::Body(e.into()))?;
                    self.buf.advance(used);
                    self.tally.received += used as u64;
                    if body.len() as u64 > limit {
                        return Err(too_large());
                    }
                    if decoder.is_done() {
                        self.body = BodyLeft::Done;
                        return Ok(body);
                    }
                }
            }
            self.continue_body().await?;
            self.fill_body().await?;
        }
    }

    /// Reads more of the request body: `Sent::Client` if the client left, `Sent::Body` (408)
    /// if nothing came for [`body_pause`](ClientConn::body_pause).
    async fn fill_body(&mut self) -> Result<(), Sent> {
        match tokio::time::timeout(self.body_pause, self.fill()).await {
            Ok(Ok(n)) if n > 0 => Ok(()),
            Ok(_) => Err(Sent::Client),
            Err(_) => Err(self.stalled()),
        }
    }

    /// The error of a body that stalled.
    fn stalled(&self) -> Sent {
        let secs = self.body_pause.as_secs();
        Sent::Body(ProxyError::BodyStalled { secs })
    }

    /// Forwards one request (its head is in `up_head`) and streams the answer back.
    /// `Ok(keep)`: whether the client connection stays open.
    pub(crate) async fn forward(
        &mut self,
        ctx: &Shared,
        metrics: &Metrics,
        closing: &impl Closing,
        req: &Req,
        fwd: &Forward<'_>,
        started: Instant,
    ) -> Result<bool, Failed> {
        let timeout = ctx.upstream_timeout;
        let early = |e: SendError| Failed::Early(ProxyError::unanswered(e, fwd.service()));
        // A client that left: counted under the service like any answer (the access log and
        // the traffic counters have it from the tally).
        let left = || {
            metrics.record(
                fwd.service(),
                &fwd.socket().kind,
                CLIENT_CLOSED,
                started.elapsed(),
            );
            Failed::Late
        };
        let (key, slots, up) = self.upstream(&ctx.pool, fwd.socket());
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => self
                .wait_for_slot(slots, timeout)
                .await
                .map_err(|e| match e {
                    None => early(SendError::Saturated),
                    Some(_) => left(),
                })?,
        };
        let mut up = match up {
            Some(up) => up,
            None => ctx.pool.checkout(&key).await.map_err(early)?,
        };
        let mut first = true;
        let asked = Instant::now();
        // The write that failed, if the service stopped reading the request.
        let mut broke = None;
        let head = loop {
            // Try once more on a fresh connection when a pooled one turns out to be closed,
            // and only when nothing can have been processed twice: the write failed before
            // any body byte left our hands, or the request had no body and is idempotent.
            let retry = std::mem::replace(&mut first, false) && up.reused;
            match self.send_request(&mut up, ctx.max_body).await {
                Ok(()) => {}
                // The client left (or broke off) mid-body: nothing was answered. Its request is
                // a 499 as when it leaves while the service thinks.
                Err(Sent::Client) => {
                    self.tally.status = CLIENT_CLOSED;
                    self.tally.router_made = true;
                    return Err(left());
                }
                Err(Sent::Body(e)) => return Err(Failed::Early(e)),
                Err(Sent::Upstream(_)) if retry && !self.body_started => {
                    up = ctx.pool.connect(&key).await.map_err(early)?;
                    continue;
                }
                // A service may answer before it reads the whole request, then close (an
                // upload it refuses: Python's http.server does). Its answer may be waiting
                // already: it is read as any answer would be, and only if none came is the
                // broken write the error.
                Err(Sent::Upstream(e)) => broke = Some(e),
            }
            let close = self.closes_after(req, false);
            let ex = || Exchange {
                head_request: req.head_request,
                client_http10: req.http10,
                close: close || closing.is_closing(),
                upgrade: req.upgrade,
            };
            // Waits for the final head. Every CLIENT_CHECK the wait looks whether the client
            // has closed its side: then nobody is left to answer (as nginx, a close while the
            // service thinks is the client giving up), and the request is abandoned, freeing
            // its connection and the service's in-flight slot. A look costs nothing while the
            // service answers quickly: no read of the client on the fast path.
            let mut now = Instant::now();
            let deadline = now + timeout;
            let read = loop {
                let look_at = (now + CLIENT_CHECK).min(deadline);
                self.head_watch.arm(look_at);
                // Interim answers go on to an HTTP/1.1 client as they come.
                let client = (!req.http10).then_some((&mut self.io, &mut self.interim));
                let fresh = !up.reused;
                tokio::select! {
                    biased;
                    r = upstream::read_final_head(&mut up, ex, Some(&mut self.out), client) => break r,
                    _ = self.head_watch.expired() => {}
                    never = ctx.pool.unblock(&key), if fresh => match never {},
                }
                if look_at >= deadline {
                    return Err(early(SendError::Timeout));
                }
                let body_read = matches!(self.body, BodyLeft::Done);
                if body_read && client_closed_now(&mut self.io, &mut self.buf) {
                    self.tally.status = CLIENT_CLOSED;
                    self.tally.router_made = true;
                    return Err(left());
                }
                now = Instant::now();
            };
            match read {
                Ok(head) => break head,
                Err(HeadError::Interim) => return Err(Failed::Late),
                Err(_) if broke.is_some() => {
                    let e = broke.take().map_or_else(String::new, |e| e.to_string());
                    return Err(early(SendError::Broken(e)));
                }
                // A reused connection that closed, or answered something that is no answer
                // (bytes a misbehaving service left on it): a fresh one gets the request again
                // if that cannot do anything twice.
                Err(HeadError::Closed | HeadError::Broken(_))
                    if retry && fwd.idempotent && req.body.is_empty() && !req.upgrade =>
                {
                    up = ctx.pool.connect(&key).await.map_err(early)?;
                }
                Err(e) => {
                    let as_idle = up.reused && asked.elapsed() < upstream::IDLE_RACE;
                    return Err(early(e.into_send_error(as_idle)));
                }
            }
        };
        drop(slot);
        // One clock read for the three figures of the head's arrival.
        let arrived = Instant::now();
        let answered = arrived.saturating_duration_since(started);
        self.tally.upstream = Some(arrived.saturating_duration_since(asked));
        self.tally.answered = Some(answered);
        self.tally.status = head.status;
        // The answer carries the router's request id (the service's own was dropped).
        http1::add_request_id(&mut self.out, self.request_id.as_bytes());
        metrics.record(fwd.service(), &fwd.socket().kind, head.status, answered);
        if head.status == 101 {
            self.bridge(up, closing, timeout).await;
            return Ok(false);
        }
        if broke.is_none() && !matches!(self.body, BodyLeft::Done) {
            // The service answered before the body was all sent: the router sends no more of
            // it. Say so with a half-close, so that a service waiting for the rest (one that
            // answers while it reads) sees the body end rather than wait for ever while the
            // client waits for its answer to end.
            let _ = up.io.shutdown().await;
        }
        let done = self.stream_body(&mut up, &head).await;
        // Back to the pool only at a clean boundary: the request went whole (an early answer
        // leaves part of it unsent), the answer came whole, nothing more arrived.
        let clean = done
            && broke.is_none()
            && head.reusable
            && up.buf.is_empty()
            && !req.upgrade
            && matches!(self.body, BodyLeft::Done);
        if clean && ctx.pool.keeps(&key) {
            if let Some(a) = self.affinity.as_mut() {
                a.conn = Some(up);
            }
        }
        Ok(done && !head.close_client && matches!(self.body, BodyLeft::Done))
    }

    /// Waits at most `timeout` for one of the service's in-flight slots, in its queue's
    /// order. Every [`CLIENT_CHECK`] it looks whether the client left: a request nobody waits
    /// for any more is not sent (`Err(Some(_))`, a 499). `Err(None)`: no slot in time.
    async fn wait_for_slot(
        &mut self,
        slots: Arc<Semaphore>,
        timeout: Duration,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, Option<Failed>> {
        let deadline = Instant::now() + timeout;
        let acquire = slots.acquire_owned();
        tokio::pin!(acquire);
        loop {
            let look_at = (Instant::now() + CLIENT_CHECK).min(deadline);
            tokio::select! {
                biased;
                r = &mut acquire => return r.map_err(|_| None),
                () = tokio::time::sleep_until(look_at) => {}
            }
            if look_at >= deadline {
                return Err(None);
            }
            if client_closed_now(&mut self.io, &mut self.buf) {
                self.tally.status = CLIENT_CLOSED;
                self.tally.router_made = true;
                return Err(Some(Failed::Late));
            }
        }
    }

    /// The pool key of `socket`, its service's in-flight semaphore, and the connection kept
    /// from the last exchange with it, if that is still usable. A different socket replaces
    /// the affinity.
    fn upstream(
        &mut self,
        pool: &Arc<Pool>,
        socket: &Socket,
    ) -> (Key, Arc<Semaphore>, Option<UpConn>) {
        match &mut self.affinity {
            Some(a) if a.key.is(socket) => {
                let conn = a.conn.take().filter(UpConn::still_open).map(|mut c| {
                    c.reused = true;
                    c
                });
                (a.key.clone(), a.slots.clone(), conn)
            }
            _ => {
                let key = Key::of(socket);
                let slots = pool.inflight.semaphore(&key.path);
                self.affinity = Some(Affinity {
                    key: key.clone(),
                    slots: slots.clone(),
                    conn: None,
                    pool: pool.clone(),
                });
                (key, slots, None)
            }
        }
    }

    /// Writes the upstream head and the request body in the framing the head declares.
    /// Stops early, with `Ok`, if the service answers before the body is all sent (the body
    /// is then left unread: the connection closes after the answer).
    async fn send_request(&mut self, up: &mut UpConn, max_body: u64) -> Result<(), Sent> {
        match self.body {
            BodyLeft::Done => up.io.write_all(&self.up_head).await.map_err(Sent::Upstream),
            BodyLeft::Length(left) => {
                let have = self
                    .buf
                    .len()
                    .min(usize::try_from(left).unwrap_or(usize::MAX));
                if have as u64 == left {
                    // The common case: head and whole body in one write. The head stays as
                    // it was, for a retry.
                    let head_len = self.up_head.len();
                    self.up_head.extend_from_slice(&self.buf[..have]);
                    let sent = up.io.write_all(&self.up_head).await;
                    self.up_head.truncate(head_len);
                    sent.map_err(Sent::Upstream)?;
                    self.buf.advance(have);
                    self.tally.received += have as u64;
                    self.body = BodyLeft::Done;
                    return Ok(());
                }
                if !send_unless_answered(up, &self.up_head).await? {
                    return Ok(());
                }
                let mut left = left;
                loop {
                    let take = self
                        .buf
                        .len()
                        .min(usize::try_from(left).unwrap_or(usize::MAX));
                    if take > 0 {
                        self.body_started = true;
                        let answered = !send_unless_answered(up, &self.buf[..take]).await?;
                        self.buf.advance(take);
                        self.tally.received += take as u64;
                        left -= take as u64;
                        self.body = BodyLeft::Length(left);
                        if answered {
                            return Ok(());
                        }
                    }
                    if left == 0 {
                        self.body = BodyLeft::Done;
                        return Ok(());
                    }
                    if !self.fill_unless_answered(up).await? {
                        return Ok(());
                    }
                }
            }
            BodyLeft::Chunked(mut decoder) => {
                let mut sent_body = 0u64;
                self.out.clear();
                self.out.extend_from_slice(&self.up_head);
                loop {
                    let step = decoder
                        .rechunk(&self.buf, &mut self.out)
                        .map_err(|e| Sent::Body(e.into()))?;
                    self.body_started |= step.used > 0;
                    self.buf.advance(step.used);
                    self.tally.received += step.used as u64;
                    self.body = BodyLeft::Chunked(decoder);
                    sent_body += step.payload as u64;
                    if sent_body > max_body {
                        return Err(Sent::Body(ProxyError::BodyTooLarge { limit: max_body }));
                    }
                    if !self.out.is_empty() {
                        let answered = !send_unless_answered(up, &self.out).await?;
                        self.out.clear();
                        if answered {
                            return Ok(());
                        }
                    }
                    if decoder.is_done() {
                        self.body = BodyLeft::Done;
                        return Ok(());
                    }
                    if !self.fill_unless_answered(up).await? {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Reads more of the request body from the client, unless the service answers first.
    /// `Ok(false)`: it answered.
    async fn fill_unless_answered(&mut self, up: &mut UpConn) -> Result<bool, Sent> {
        self.continue_body().await?;
        self.buf.reserve(READ_CHUNK);
        let heard = tokio::select! {
            biased;
            r = self.io.read_buf(&mut self.buf) => {
                return match r {
                    Ok(n) if n > 0 => Ok(true),
                    _ => Err(Sent::Client),
                };
            }
            r = up.fill() => r,
            () = tokio::time::sleep(self.body_pause) => return Err(self.stalled()),
        };
        match heard {
            Ok(n) if n > 0 => Ok(!http1::final_head_arrived(&up.buf)),
            Ok(_) => Err(Sent::Upstream(io::ErrorKind::UnexpectedEof.into())),
            Err(e) => Err(Sent::Upstream(e)),
        }
    }

    /// Streams a response body to the client, after what `self.out` holds (the head).
    /// Returns true if the whole body went through.
    async fn stream_body(&mut self, up: &mut UpConn, head: &ResponseHead) -> bool {
        let framing = head.framing;
        let mut left = match framing {
            Framing::Length(n) => n,
            _ => 0,
        };
        let mut chunks = ChunkedDecoder::default();
        loop {
            // Move what the upstream buffer holds of this body towards the client.
            let out = &mut self.out;
            let raw = match framing {
                Framing::Empty => 0,
                Framing::Length(_) => up
                    .buf
                    .len()
                    .min(usize::try_from(left).unwrap_or(usize::MAX)),
                Framing::UntilClose => up.buf.len(),
                Framing::Chunked => {
                    let used = if head.dechunk {
                        chunks.advance(&up.buf, |d| out.extend_from_slice(d))
                    } else {
                        chunks.rechunk(&up.buf, out).map(|step| step.used)
                    };
                    let Ok(used) = used else {
                        // What came before the bad bytes goes out first (the head, if it has
                        // not yet), then the connection ends short of the last chunk: the
                        // same answer however the bytes arrived.
                        if !out.is_empty() && self.io.write_all(out).await.is_ok() {
                            self.tally.sent += out.len() as u64;
                        }
                        self.tally.cut = Some(Cut::BadChunks);
                        return false;
                    };
                    up.buf.advance(used);
                    0
                }
            };
            if out.is_empty() && raw > 0 {
                // Nothing else to send: write straight from the upstream buffer.
                if let Err(e) = self.io.write_all(&up.buf[..raw]).await {
                    self.tally.cut = Some(Cut::client(&e));
                    return false;
                }
                self.tally.sent += raw as u64;
            } else if !out.is_empty() || raw > 0 {
                out.extend_from_slice(&up.buf[..raw]);
                if let Err(e) = self.io.write_all(out).await {
                    self.tally.cut = Some(Cut::client(&e));
                    return false;
                }
                self.tally.sent += out.len() as u64;
                out.clear();
            }
            up.buf.advance(raw);
            if let Framing::Length(_) = framing {
                left -= raw as u64;
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
                biased;
                r = up.fill() => r,
                () = client_gone(&mut self.io, &mut self.buf) => {
                    self.tally.cut = Some(Cut::ClientLeft);
                    return false;
                }
            };
            match filled {
                Ok(0) if framing == Framing::UntilClose => return true,
                Ok(0) => {
                    self.tally.cut = Some(Cut::ServiceClosed);
                    return false;
                }
                Ok(_) => {}
                Err(_) => {
                    self.tally.cut = Some(Cut::ServiceBroke);
                    return false;
                }
            }
        }
    }

    /// After a `101`: sends the head (in `self.out`), then copies bytes both ways until both
    /// sides have closed or shutdown begins. One side's close is passed on as a half-close;
    /// from then on the other side ends the bridge if it moves no byte for `half_closed_idle`
    /// (`--upstream-timeout`): a service that never answers a client's close must not hold
    /// the connection for ever.
    async fn bridge(&mut self, mut up: UpConn, closing: &impl Closing, half_closed_idle: Duration) {
        if self.io.write_all(&self.out).await.is_err() {
            return;
        }
        self.tally.sent += self.out.len() as u64;
        if !up.buf.is_empty() && self.io.write_all(&up.buf).await.is_err() {
            return;
        }
        self.tally.sent += up.buf.len() as u64;
        if !self.buf.is_empty() && up.io.write_all(&self.buf).await.is_err() {
            return;
        }
        self.tally.received += self.buf.len() as u64;
        self.buf.clear();
        let epoch = Instant::now();
        let moved = AtomicU64::new(0);
        let (mut client_rd, mut client_wr) = tokio::io::split(&mut self.io);
        let (mut up_rd, mut up_wr) = up.io.split();
        let to_up = pump(&mut client_rd, &mut up_wr, epoch, &moved);
        let to_client = pump(&mut up_rd, &mut client_wr, epoch, &moved);
        tokio::pin!(to_up, to_client);
        let (received, sent) = tokio::select! {
            () = closing.closed() => return,
            n = &mut to_up => (n, until_idle(to_client, epoch, &moved, half_closed_idle, closing).await),
            n = &mut to_client => (until_idle(to_up, epoch, &moved, half_closed_idle, closing).await, n),
        };
        self.tally.received += received;
        self.tally.sent += sent;
    }
}

/// Copies `from` to `to` until `from` ends or a write fails, then shuts `to` down (a
/// half-close). Returns the bytes copied; notes when bytes last moved in `moved` (ms after
/// `epoch`).
async fn pump<R, W>(from: &mut R, to: &mut W, epoch: Instant, moved: &AtomicU64) -> u64
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; READ_CHUNK];
    let mut total = 0;
    loop {
        let n = match from.read(&mut buf).await {
            Ok(n) if n > 0 => n,
            _ => break,
        };
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
        total += n as u64;
        moved.store(epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
    let _ = to.shutdown().await;
    total
}

/// Runs the direction of a bridge still open until it ends, shutdown begins, or no byte moved
/// either way for `idle`. Returns its bytes (0 if it was cut).
async fn until_idle(
    mut rest: Pin<&mut impl std::future::Future<Output = u64>>,
    epoch: Instant,
    moved: &AtomicU64,
    idle: Duration,
    closing: &impl Closing,
) -> u64 {
    let since_start = || Duration::from_millis(moved.load(Ordering::Relaxed));
    let mut last = since_start().max(epoch.elapsed());
    loop {
        tokio::select! {
            n = &mut rest => return n,
            () = closing.closed() => return 0,
            () = tokio::time::sleep_until(epoch + last + idle) => {
                let now = since_start();
                if now <= last {
                    return 0;
                }
                last = now;
            }
        }
    }
}

/// [`UpConn::send_unless_answered`], its failure as the engine names it.
async fn send_unless_answered(up: &mut UpConn, data: &[u8]) -> Result<bool, Sent> {
    up.send_unless_answered(data).await.map_err(Sent::Upstream)
}

impl<S: Stream> ClientConn<S> {
    /// Runs `work`, an answer the router makes that may wait on services (a routed `/rpc`
    /// call), looking every [`CLIENT_CHECK`] whether the client is gone, as a proxied request
    /// does. `None` if it is: `work` is dropped (its upstream connections closed, nothing sent)
    /// and the tally says 499. `work` is pinned by the caller (passed by value, it would be
    /// held twice: as the argument and as the pinned local).
    pub(crate) async fn unless_client_leaves<T>(
        &mut self,
        mut work: Pin<&mut impl std::future::Future<Output = T>>,
    ) -> Option<T> {
        loop {
            self.head_watch.arm(Instant::now() + CLIENT_CHECK);
            tokio::select! {
                biased;
                out = work.as_mut() => return Some(out),
                _ = self.head_watch.expired() => {}
            }
            if client_closed_now(&mut self.io, &mut self.buf) {
                self.tally.status = CLIENT_CLOSED;
                self.tally.router_made = true;
                return None;
            }
        }
    }
}

impl<S: Stream> ClientConn<S> {
    /// Resolves when the client closes its side, for an answer that waits on something else
    /// between its writes (a stream of events): a client that left is noticed at once, not at
    /// the next write, which may be many seconds away.
    pub(crate) async fn gone(&mut self) {
        client_gone(&mut self.io, &mut self.buf).await;
    }
}

/// How often a request waiting for a service's answer looks whether its client is gone.
const CLIENT_CHECK: Duration = Duration::from_secs(1);

/// The status the access log and the traffic counters give a request whose client closed
/// while it waited for the service (nothing was sent): nginx's "client closed request".
pub(crate) const CLIENT_CLOSED: u16 = 499;

/// Whether the client has closed its side, looking without waiting: bytes it sent meanwhile
/// (a pipelined request) are kept in `buf`.
fn client_closed_now<S: AsyncRead + Unpin>(io: &mut S, buf: &mut BytesMut) -> bool {
    use futures_util::FutureExt as _;
    client_gone(io, buf).now_or_never().is_some()
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
