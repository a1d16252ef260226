//! The connection driver: one task per client connection reads requests, routes them and
//! answers, for every request on every listener. There is no second HTTP server behind it.
//!
//! Each request head is parsed and validated by [`crate::http1`] (the one framing authority),
//! then routed by [`route`](super::front::route):
//! - `POST /rpc`: the body is read whole (within `--max-body`) and answered by the JSON-RPC
//!   front end;
//! - `GET`/`HEAD` of the router's own endpoints;
//! - a proxied request (`/{service}/{kind}/…`): the rewritten head and the body go upstream,
//!   the answer comes back;
//! - anything else: an error from [`error_parts`], the one error function.
//!
//! A head the router refuses (ambiguous framing, no or two `Host`, over the limits) is answered
//! and the connection closed: no byte after such a head can be trusted to start a request.
//!
//! Upstream, a request uses the connection this client connection kept from its last exchange
//! with the same socket instance, else one from the pool. The router writes the head and the
//! body in exactly the framing the head declares (a `Content-Length` body as it is, a chunked
//! one decoded and re-encoded), reads the response head within `--upstream-timeout`, and
//! streams the body as it comes, watching for the client to leave meanwhile. If the service
//! answers before the request body is all sent, sending stops there. An upstream connection is
//! kept only at a clean boundary: request sent whole, answer read whole, nothing extra arrived,
//! no upgrade asked for. A `101` answer to an upgrade bridges the two connections byte for
//! byte. Once shutdown begins (or the connection is shed), the answer in flight says
//! `connection: close` and is the connection's last.

use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Semaphore, watch};
use tokio::time::{Instant, Sleep};

use super::apps::AppTarget;
use super::front::{DocsPage, Endpoint, Front, Role, Route, route};
use super::slots::ConnSlot;
use crate::config::ConnLimits;
use crate::http1::{
    self, BodyFraming, ChunkedDecoder, Exchange, Forwarding, Framing, HeadLimits, OwnBody, Persist,
    ResponseHead,
};
use crate::proxy::error::{ProxyError, error_parts};
use crate::proxy::{Target, Transport};
use crate::registry::names::OWN_SERVICE;
use crate::registry::table::Table;
use crate::rpc::CallTarget;
use crate::upstream::SendError;
use crate::upstream::{self, Key, Pool, UpConn};

/// A client connection's stream.
pub(super) trait Stream: AsyncRead + AsyncWrite + Unpin {
    /// Forgets read readiness after a short read emptied the socket (see
    /// [`forget_readable`](crate::upstream::forget_readable)).
    fn drained(&self);
}

/// Bytes read from the client at a time.
const READ_CHUNK: usize = 16 * 1024;
/// Most bytes of an application's answer gathered into one write before it is sent.
const COALESCE: usize = 64 * 1024;
/// What the router says before reading a body the client holds back for it.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// What a complete request head turns into.
enum Plan {
    /// A refused head: answer it and close.
    Reject(ProxyError),
    /// A proxied request needs the table, and the first scan has not finished.
    NotReady,
    /// `POST /rpc`.
    Rpc(Req),
    /// One of the router's own endpoints.
    Own(Req, Endpoint),
    /// A docs page.
    Docs(Req, DocsPage),
    /// A request for one of the router's applications, with its head.
    App(Req, AppTarget, Box<http::request::Parts>),
    /// A proxied request.
    Proxy(Req, Forward),
    /// A request answered with an error.
    Fail(Req, ProxyError),
    /// A client the allow-list turns away, or a request for a name that is not the router's:
    /// answered, and the connection closed.
    Deny(Req, ProxyError),
}

/// The framing facts of an accepted request, kept after its head leaves the buffer.
#[derive(Debug, Clone, Copy)]
struct Req {
    head_len: usize,
    body: BodyFraming,
    keep_alive: bool,
    http10: bool,
    expect_continue: bool,
    head_request: bool,
    upgrade: bool,
}

/// Where a proxied request goes: a socket of the table it was routed with.
struct Forward {
    /// Safe to send again on a fresh connection if a pooled one turns out closed.
    idempotent: bool,
    table: Arc<Table>,
    target: Target,
}

impl Forward {
    fn service(&self) -> &str {
        &self.target.service(&self.table).name
    }

    fn socket(&self) -> &crate::registry::table::Socket {
        self.target.socket(&self.table)
    }
}

/// How much of the current request's body is still unread.
#[derive(Debug, Clone, Copy)]
enum BodyLeft {
    /// None: the next bytes start the next request.
    Done,
    /// This many bytes of a `Content-Length` body.
    Length(u64),
    /// The rest of a chunked body.
    Chunked(ChunkedDecoder),
}

/// How an exchange ended, when it did not end cleanly.
enum Failed {
    /// Before a response head went to the client: the client gets this error.
    Early(ProxyError),
    /// After the response head went out, or the client went away: close the connection.
    Late,
}

/// Why sending the request failed.
enum Sent {
    /// The client went away mid-body.
    Client,
    /// The request body broke a rule (bad chunks, over `--max-body`): the client's error.
    Body(ProxyError),
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

/// The client connection: the stream and what was read from it but not consumed.
struct Client<'s, S> {
    io: S,
    buf: BytesMut,
    /// The unread rest of the current request's body.
    body: BodyLeft,
    /// A body byte of the current request has been consumed (nothing can be sent twice).
    body_started: bool,
    /// The client waits for `100 Continue` before sending its body.
    expect_pending: bool,
    /// The upstream of the last request, kept for the next one to the same socket.
    affinity: Option<Affinity>,
    /// `--upstream-timeout` for the response head.
    head_watch: Watchdog,
    /// The TCP peer's address as text, for `X-Forwarded-For`.
    peer: Option<String>,
    /// The TCP peer's address, for the allow-list.
    peer_ip: Option<IpAddr>,
    /// The upstream request head being sent (kept across requests for its allocation).
    up_head: Vec<u8>,
    /// Bytes on their way somewhere (likewise).
    out: Vec<u8>,
    /// The table, refreshed when the scanner publishes a new one (no lock shared with other
    /// threads per request).
    table: Arc<Table>,
    tables: watch::Receiver<Arc<Table>>,
    /// Shed or shut down: the answer in flight then says `connection: close`.
    slot: &'s ConnSlot,
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

/// Serves one client connection until it closes, is shed, or shutdown ends it.
pub(super) async fn serve<S: Stream>(
    io: S,
    transport: Transport,
    front: Arc<Front>,
    role: Role,
    limits: ConnLimits,
    slot: &ConnSlot,
) {
    let tables = front.proxy.scanner.tables();
    let table = tables.borrow().clone();
    let mut client = Client {
        io,
        buf: BytesMut::with_capacity(READ_CHUNK),
        body: BodyLeft::Done,
        body_started: false,
        expect_pending: false,
        affinity: None,
        head_watch: Watchdog::new(),
        peer: match transport {
            Transport::Tcp(addr) => Some(addr.ip().to_string()),
            Transport::Unix => None,
        },
        peer_ip: match transport {
            Transport::Tcp(addr) => Some(addr.ip()),
            Transport::Unix => None,
        },
        up_head: Vec::with_capacity(1024),
        out: Vec::with_capacity(1024),
        table,
        tables,
        slot,
    };
    let head_limits = HeadLimits {
        max_bytes: limits.max_header_bytes,
        max_headers: limits.max_headers,
    };
    let mut header_watch = Watchdog::new();
    loop {
        let now = Instant::now();
        slot.reading_head(now);
        header_watch.arm(now + limits.header_read_timeout);
        // The read first: when the head is already there (the common case under load), the
        // timer and the closing flag are not even polled.
        let next = tokio::select! {
            biased;
            r = client.next_plan(&front, role, &head_limits) => r,
            () = slot.closed() => return,
            // A client too slow with its headers is cut off.
            _ = header_watch.expired() => return,
        };
        slot.busy();
        // Closed or a read error: nothing more to answer.
        let Ok(Some(plan)) = next else { return };
        // A connection shed for a newer one of its client ends now, whatever it is doing (a
        // stream, an upload, a wait for the service). An answer of the router's own sees
        // `closed` first and ends with its last chunk.
        let keep = tokio::select! {
            biased;
            keep = client.run(&front, plan) => keep,
            () = slot.cut_off() => false,
        };
        if !keep {
            return;
        }
    }
}

/// How the client reached us, and the table to route with.
struct Origin<'a> {
    role: Role,
    /// The TCP peer; `None` on a Unix socket (always allowed).
    peer_ip: Option<IpAddr>,
    /// The TCP peer's address; `None` on a Unix socket.
    peer: Option<&'a str>,
    table: &'a Arc<Table>,
    /// Route against the table even if the first scan has not finished (it was waited for).
    ready: bool,
}

/// The allow-list's decision on a TCP request. `X-Forwarded-For` is looked at only when some
/// proxy is trusted.
fn check_access(
    front: &Front,
    peer: IpAddr,
    head: &http1::RequestHead<'_, '_>,
) -> Result<(), crate::access::Denied> {
    let access = &front.access;
    if access.trusts_no_proxy() {
        return access.check(peer, &[]);
    }
    let forwarded: Vec<&[u8]> = head
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("x-forwarded-for"))
        .map(|h| h.value)
        .collect();
    access.check(peer, &forwarded)
}

/// The head of an application request as an [`http::request::Parts`]; `None` if its target
/// or a header cannot be one (the parser already refused anything a client may send, so this
/// is a backstop).
fn app_parts(head: &http1::RequestHead<'_, '_>) -> Option<http::request::Parts> {
    let (mut parts, ()) = http::Request::new(()).into_parts();
    parts.method = http::Method::from_bytes(head.method.as_bytes()).ok()?;
    parts.uri = match head.query {
        Some(q) => format!("{}?{q}", head.path).try_into().ok()?,
        None => head.path.try_into().ok()?,
    };
    if head.http10 {
        parts.version = http::Version::HTTP_10;
    }
    parts.headers.reserve(head.headers.len());
    for h in head.headers {
        let name = http::HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        let value = http::HeaderValue::from_bytes(h.value).ok()?;
        parts.headers.append(name, value);
    }
    Some(parts)
}

/// True for what a page may not drive from elsewhere (docs/access-and-security.md#origin-check):
/// the router's own `/rpc`, `/mcp…`, `/api/…` and the dashboard's actions, and a service's
/// JSON-RPC socket reached through the proxy (`/{service}/rpc/…`: the same calls as `/rpc`, by
/// another path). The dashboard page itself is not: a link may open it; nor are a service's web
/// sockets: their pages and their cross-origin rules are the service's own.
fn guarded(route: &Route<'_>, method: &str, path: &str, table: &Table) -> bool {
    match route {
        Route::Rpc | Route::Own(Endpoint::Services) | Route::App(AppTarget::Mcp(_)) => true,
        Route::App(AppTarget::Dashboard) => path != "/" || !matches!(method, "GET" | "HEAD"),
        Route::Proxy { target, .. } => target.socket(table).kind == "rpc",
        _ => false,
    }
}

/// [`crate::browser::check_origin`] on the request's `Origin`, `Sec-Fetch-Site` and `Host`.
fn browser_origin(head: &http1::RequestHead<'_, '_>) -> Result<(), String> {
    let header = |name: &str| {
        head.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    crate::browser::check_origin(header("origin"), header("sec-fetch-site"), head.host)
}

/// True if the client takes HTML (a browser's `Accept`).
fn accepts_html(head: &http1::RequestHead<'_, '_>) -> bool {
    head.headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("accept"))
        .any(|h| memchr::memmem::find(h.value, b"text/html").is_some())
}

/// Decides what to do with the head at the start of `buf`; `None` if it is not complete.
/// For a proxied request the upstream head is written to `up_head`.
fn plan(
    buf: &[u8],
    limits: &HeadLimits,
    front: &Front,
    origin: &Origin<'_>,
    up_head: &mut Vec<u8>,
) -> Option<Plan> {
    let mut slots = http1::header_slots();
    let head = match http1::parse_request(buf, limits, &mut slots) {
        Ok(None) => return None,
        Ok(Some(head)) => head,
        Err(e) => {
            // A client the list turns away hears that first, even for a broken head.
            let denied = origin
                .peer_ip
                .and_then(|peer| front.access.check(peer, &[]).err());
            return Some(Plan::Reject(match denied {
                Some(d) => ProxyError::Forbidden {
                    address: d.address(),
                },
                None => e.into(),
            }));
        }
    };
    let req = Req {
        head_len: head.head_len,
        body: head.body,
        keep_alive: head.keep_alive,
        http10: head.http10,
        expect_continue: head.expect_continue,
        head_request: head.method == "HEAD",
        upgrade: head.upgrade.is_some(),
    };
    // Who may ask is decided before anything else, on every path
    // (docs/access-and-security.md#allow-list).
    if let Some(peer) = origin.peer_ip {
        if let Err(denied) = check_access(front, peer, &head) {
            let e = ProxyError::Forbidden {
                address: denied.address(),
            };
            return Some(Plan::Deny(req, e));
        }
        // A name that is not the router's (DNS rebinding) reaches nothing
        // (docs/access-and-security.md#host-check), and the connection, made for another site, ends
        // with the answer.
        if let Some(host) = head.host.filter(|h| !front.names.knows(h)) {
            let host = String::from_utf8_lossy(host).into_owned();
            return Some(Plan::Deny(req, ProxyError::Misdirected { host }));
        }
    }
    let ready = origin.ready || origin.table.scanned();
    let routed = route(
        head.method,
        head.path,
        head.query,
        origin.role,
        origin.table,
        ready,
    );
    if guarded(&routed, head.method, head.path, origin.table) {
        if let Err(origin) = browser_origin(&head) {
            return Some(Plan::Fail(req, ProxyError::ForeignOrigin { origin }));
        }
    }
    Some(match routed {
        Route::Rpc => Plan::Rpc(req),
        Route::Own(Endpoint::Landing { .. }) => Plan::Own(
            req,
            Endpoint::Landing {
                html: accepts_html(&head),
            },
        ),
        Route::Own(endpoint) => Plan::Own(req, endpoint),
        Route::Docs(page) => Plan::Docs(req, page),
        Route::App(target) => match app_parts(&head) {
            Some(parts) => Plan::App(req, target, Box::new(parts)),
            None => Plan::Fail(req, ProxyError::NoRoute),
        },
        Route::Error(e) => Plan::Fail(req, e),
        Route::OnAdminListener => {
            let admin = front.dashboard_at.clone();
            Plan::Fail(req, ProxyError::OnAdminListener { admin })
        }
        Route::NotReady => Plan::NotReady,
        Route::Proxy { route, target } => {
            if let BodyFraming::Length(n) = req.body {
                if n > front.max_body {
                    let limit = front.max_body;
                    return Some(Plan::Fail(req, ProxyError::BodyTooLarge { limit }));
                }
            }
            let fwd = Forwarding {
                service: &route.service,
                kind: &route.kind,
                peer: origin.peer,
                trust_client: front.proxy.trust_forwarded_headers,
            };
            up_head.clear();
            http1::write_upstream_head(&head, route.path, route.query, &fwd, up_head);
            Plan::Proxy(
                req,
                Forward {
                    idempotent: matches!(
                        head.method,
                        "GET" | "HEAD" | "OPTIONS" | "PUT" | "DELETE"
                    ),
                    table: origin.table.clone(),
                    target,
                },
            )
        }
    })
}

// === impl Client ===

impl<S: Stream> Client<'_, S> {
    async fn fill(&mut self) -> io::Result<usize> {
        self.buf.reserve(READ_CHUNK);
        let spare = self.buf.capacity() - self.buf.len();
        let n = self.io.read_buf(&mut self.buf).await?;
        if n > 0 && n < spare {
            self.io.drained();
        }
        Ok(n)
    }

    /// Reads until a head is complete (or refused) and decides what to do with it.
    /// `Ok(None)`: the client closed.
    async fn next_plan(
        &mut self,
        front: &Front,
        role: Role,
        limits: &HeadLimits,
    ) -> io::Result<Option<Plan>> {
        let mut waited = false;
        loop {
            // Parse once the blank line that ends a head can be there, or the head is over
            // the limit either way.
            if may_hold_head(&self.buf) || self.buf.len() > limits.max_bytes {
                if self.tables.has_changed().unwrap_or(false) {
                    self.table = self.tables.borrow_and_update().clone();
                }
                let origin = Origin {
                    role,
                    peer_ip: self.peer_ip,
                    peer: self.peer.as_deref(),
                    table: &self.table,
                    ready: waited,
                };
                match plan(&self.buf, limits, front, &origin, &mut self.up_head) {
                    Some(Plan::NotReady) => {
                        // Right after start-up: wait for the first scan rather than answer
                        // "no such service" for a service that is there.
                        let limit = front.proxy.upstream_timeout;
                        crate::rpc::wait_ready(&front.proxy.scanner, limit).await;
                        self.table = self.tables.borrow_and_update().clone();
                        waited = true;
                        continue;
                    }
                    Some(plan) => return Ok(Some(plan)),
                    None => {}
                }
            }
            if self.fill().await? == 0 {
                return Ok(None);
            }
        }
    }

    /// Serves one planned request. Returns whether the connection stays open.
    async fn run(&mut self, front: &Front, plan: Plan) -> bool {
        let started = Instant::now();
        let req = match &plan {
            Plan::Reject(e) => return self.refuse(front, e, started).await,
            Plan::NotReady => unreachable!("next_plan waits for the table"),
            Plan::Rpc(r)
            | Plan::Own(r, _)
            | Plan::Docs(r, _)
            | Plan::App(r, _, _)
            | Plan::Proxy(r, _)
            | Plan::Fail(r, _)
            | Plan::Deny(r, _) => *r,
        };
        self.buf.advance(req.head_len);
        self.body = match req.body {
            BodyFraming::None | BodyFraming::Length(0) => BodyLeft::Done,
            BodyFraming::Length(n) => BodyLeft::Length(n),
            BodyFraming::Chunked => BodyLeft::Chunked(ChunkedDecoder::default()),
        };
        self.body_started = false;
        self.expect_pending = req.expect_continue;
        match plan {
            Plan::Rpc(req) => self.rpc(front, &req, started).await,
            Plan::Own(req, endpoint) => self.own(front, &req, endpoint).await,
            Plan::Docs(req, page) => self.docs(front, &req, &page, started).await,
            Plan::App(req, target, parts) => self.app(front, &req, target, *parts, started).await,
            Plan::Proxy(req, fwd) => self.forward(front, &req, &fwd, started).await,
            Plan::Fail(req, e) => self.fail(front, &req, &e, started).await,
            Plan::Deny(req, e) => {
                self.write_error(front, &e, Persist::Close, req.head_request, started)
                    .await;
                false
            }
            Plan::Reject(_) | Plan::NotReady => unreachable!("handled above"),
        }
    }

    /// Answers one of the router's own endpoints. Returns whether the connection stays open.
    async fn own(&mut self, front: &Front, req: &Req, e: Endpoint) -> bool {
        self.skip_buffered_body();
        let (content_type, body) = front.endpoint(e);
        self.write_page(req, content_type, &body).await
    }

    /// Writes a `200` page the router made itself. Returns whether the connection stays open.
    async fn write_page(&mut self, req: &Req, content_type: &str, body: &str) -> bool {
        let headers = crate::browser::page_headers(content_type);
        self.write_page_with(req, &headers, body).await
    }

    /// Writes a `200` page the router made itself, with these headers. Returns whether the
    /// connection stays open.
    async fn write_page_with(&mut self, req: &Req, headers: &[(&str, &str)], body: &str) -> bool {
        let persist = self.persist(req);
        self.out.clear();
        http1::write_own_head(&mut self.out, 200, headers, Some(body.len()), persist);
        if !req.head_request {
            self.out.extend_from_slice(body.as_bytes());
        }
        self.io.write_all(&self.out).await.is_ok() && !persist.closes()
    }

    /// Answers a docs page; a service's page says how the docs cache answered
    /// (`cache-status`, RFC 9211). Returns whether the connection stays open.
    async fn docs(&mut self, front: &Front, req: &Req, page: &DocsPage, started: Instant) -> bool {
        self.skip_buffered_body();
        let answer = match front.docs(page).await {
            Ok(answer) => answer,
            Err(e) => return self.fail(front, req, &e, started).await,
        };
        let mut headers = crate::browser::page_headers(answer.content_type).to_vec();
        if let Some(status) = answer.cache {
            headers.push(("cache-status", status.header()));
        }
        self.write_page_with(req, &headers, answer.body.as_str())
            .await
    }

    /// Answers a request for one of the router's applications: the body is read whole, the
    /// answer's body is streamed as it comes (until it ends, the client leaves, or the
    /// connection is shed or shut down). Returns whether the connection stays open.
    async fn app(
        &mut self,
        front: &Front,
        req: &Req,
        target: AppTarget,
        parts: http::request::Parts,
        started: Instant,
    ) -> bool {
        let body = match self.read_whole_body(front.max_body).await {
            Ok(body) => body,
            Err(Sent::Body(e)) => return self.fail(front, req, &e, started).await,
            Err(_) => return false,
        };
        // MCP requests are counted apart: they are routed calls in another envelope.
        let kind = match target {
            AppTarget::Mcp(_) => "mcp",
            AppTarget::Dashboard => "app",
        };
        let request = http::Request::from_parts(parts, axum::body::Body::from(body.freeze()));
        let (head, body) = front.apps.call(target, request).await.into_parts();
        let status = head.status.as_u16();
        front
            .metrics()
            .record(OWN_SERVICE, kind, status, started.elapsed());
        let no_body = req.head_request || matches!(status, 204 | 304);
        let length = axum::body::HttpBody::size_hint(&body).exact();
        let framing = match length {
            _ if no_body => OwnBody::Length(length.unwrap_or(0) as usize),
            Some(n) => OwnBody::Length(n as usize),
            None if req.http10 => OwnBody::ToClose,
            None => OwnBody::Chunked,
        };
        let close = self.closes_after(req) || framing == OwnBody::ToClose;
        let persist = Persist::of(close, req.http10);
        let headers: Vec<(&str, &str)> = head
            .headers
            .iter()
            .filter(|(name, _)| !http1::is_framing_or_hop(name.as_str()))
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
            .collect();
        self.out.clear();
        http1::write_own_head_framed(&mut self.out, status, &headers, framing, persist);
        if no_body {
            return self.io.write_all(&self.out).await.is_ok() && !close;
        }
        self.stream_app_body(body, framing).await && !close
    }

    /// Sends the head in `self.out` and an application's answer body in `framing`. What the
    /// body has ready goes out with the head in one write: an answer built whole (most are)
    /// costs one send, as a routed answer does. Returns whether it was all sent.
    async fn stream_app_body(&mut self, mut body: axum::body::Body, framing: OwnBody) -> bool {
        use futures_util::FutureExt as _;
        use http_body_util::BodyExt as _;
        loop {
            // Gather the frames that are ready, up to COALESCE bytes; wait only when none is.
            let frame = if self.out.len() >= COALESCE {
                None
            } else if let Some(frame) = body.frame().now_or_never() {
                Some(frame)
            } else if self.out.is_empty() {
                tokio::select! {
                    biased;
                    frame = body.frame() => Some(frame),
                    // Shed or shut down: an endless stream (server-sent events) ends here, as
                    // a complete message (its last chunk), so the client sees an end, not a
                    // cut.
                    () = self.slot.closed() => {
                        if framing == OwnBody::Chunked {
                            let _ = self.io.write_all(http1::LAST_CHUNK).await;
                        }
                        return false;
                    }
                }
            } else {
                None
            };
            let Some(frame) = frame else {
                // Nothing more is ready (or enough is gathered): send what is.
                let sent = self.io.write_all(&self.out).await.is_ok();
                self.out.clear();
                if !sent {
                    return false;
                }
                continue;
            };
            let data = match frame {
                None => break,
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => data,
                    Err(_) => continue, // trailers are not forwarded
                },
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "application body failed");
                    let _ = self.io.write_all(&self.out).await;
                    return false;
                }
            };
            if data.is_empty() {
                continue;
            }
            if framing == OwnBody::Chunked {
                http1::push_chunk(&mut self.out, &data);
            } else {
                self.out.extend_from_slice(&data);
            }
        }
        if framing == OwnBody::Chunked {
            self.out.extend_from_slice(http1::LAST_CHUNK);
        }
        self.io.write_all(&self.out).await.is_ok()
    }

    /// Answers `POST /rpc`. Returns whether the connection stays open.
    async fn rpc(&mut self, front: &Front, req: &Req, started: Instant) -> bool {
        let body = match self.read_whole_body(front.max_body).await {
            Ok(body) => body,
            Err(Sent::Body(e)) => return self.fail(front, req, &e, started).await,
            Err(_) => return false,
        };
        let (answer, target) = front.rpc.handle_for(&body).await;
        let persist = self.persist(req);
        let status = if answer.is_some() { 200 } else { 204 };
        let body = answer.as_deref().unwrap_or("").as_bytes();
        self.out.clear();
        let headers: &[(&str, &str)] = match answer {
            Some(_) => &[("content-type", "application/json")],
            None => &[],
        };
        http1::write_own_head(&mut self.out, status, headers, Some(body.len()), persist);
        if !req.head_request {
            self.out.extend_from_slice(body);
        }
        let service = match &target {
            CallTarget::Service(name) => name.as_str(),
            CallTarget::Router => OWN_SERVICE,
        };
        front
            .metrics()
            .record(service, "rpc", status, started.elapsed());
        self.io.write_all(&self.out).await.is_ok() && !persist.closes()
    }

    /// Forwards one request. Returns whether the connection stays open.
    async fn forward(&mut self, front: &Front, req: &Req, fwd: &Forward, started: Instant) -> bool {
        match self.exchange(front, req, fwd, started).await {
            Ok(keep) => keep,
            Err(Failed::Late) => false,
            Err(Failed::Early(e)) => self.fail(front, req, &e, started).await,
        }
    }

    /// True if the connection ends after this request's answer: the client asked for it, its
    /// body was not read whole, or the connection was shed or shutdown began.
    fn closes_after(&self, req: &Req) -> bool {
        !req.keep_alive || !matches!(self.body, BodyLeft::Done) || self.slot.is_closing()
    }

    /// What the answer to `req` says about the connection (see [`closes_after`]).
    ///
    /// [`closes_after`]: Client::closes_after
    fn persist(&self, req: &Req) -> Persist {
        Persist::of(self.closes_after(req), req.http10)
    }

    /// Answers a refused head and closes.
    async fn refuse(&mut self, front: &Front, e: &ProxyError, started: Instant) -> bool {
        self.write_error(front, e, Persist::Close, false, started)
            .await;
        false
    }

    /// Answers with an error before anything came back from upstream. A request body the
    /// router did not use is skipped if it is all here; if part of it is still in the socket,
    /// the connection closes after the answer. Returns whether it stays open.
    async fn fail(&mut self, front: &Front, req: &Req, e: &ProxyError, started: Instant) -> bool {
        self.skip_buffered_body();
        let close = self.closes_after(req) || matches!(e, ProxyError::BadBody(_));
        let persist = Persist::of(close, req.http10);
        self.write_error(front, e, persist, req.head_request, started)
            .await
            && !close
    }

    /// Writes the answer for `e`. Returns whether the write succeeded.
    async fn write_error(
        &mut self,
        front: &Front,
        e: &ProxyError,
        persist: Persist,
        head_request: bool,
        started: Instant,
    ) -> bool {
        let (status, headers, body) = error_parts(e);
        self.out.clear();
        http1::write_own_head(
            &mut self.out,
            status.as_u16(),
            &headers,
            Some(body.len()),
            persist,
        );
        if !head_request {
            self.out.extend_from_slice(&body);
        }
        // Only a service in the table gets a label: a client must not be able to grow the
        // metrics with made-up names (`GET /nosuch/rpc/`).
        let service = e
            .service()
            .filter(|s| self.table.service(s).is_some())
            .unwrap_or("-");
        front
            .metrics()
            .record(service, "-", status.as_u16(), started.elapsed());
        self.io.write_all(&self.out).await.is_ok()
    }

    /// Consumes the rest of the request body if it is all in the buffer already.
    fn skip_buffered_body(&mut self) {
        match &mut self.body {
            BodyLeft::Done => {}
            BodyLeft::Length(left) => {
                if let Ok(n) = usize::try_from(*left) {
                    if n <= self.buf.len() {
                        self.buf.advance(n);
                        self.body = BodyLeft::Done;
                    }
                }
            }
            BodyLeft::Chunked(decoder) => {
                let mut d = *decoder;
                if let Ok(n) = d.advance(&self.buf, |_| {}) {
                    if d.is_done() {
                        self.buf.advance(n);
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
        }
        Ok(())
    }

    /// Reads the whole request body, de-chunked, at most `limit` bytes.
    async fn read_whole_body(&mut self, limit: u64) -> Result<BytesMut, Sent> {
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
                        return Ok(self.buf.split_to(n));
                    }
                }
                BodyLeft::Chunked(decoder) => {
                    let used = decoder
                        .advance(&self.buf, |d| body.extend_from_slice(d))
                        .map_err(|e| Sent::Body(e.into()))?;
                    self.buf.advance(used);
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
            if !matches!(self.fill().await, Ok(n) if n > 0) {
                return Err(Sent::Client);
            }
        }
    }

    /// Sends the request upstream and streams the response back. `Ok(keep)`.
    async fn exchange(
        &mut self,
        front: &Front,
        req: &Req,
        fwd: &Forward,
        started: Instant,
    ) -> Result<bool, Failed> {
        let ctx = &front.proxy;
        let timeout = ctx.upstream_timeout;
        let early = |e: SendError| Failed::Early(ProxyError::unanswered(e, fwd.service()));
        let (key, slots, up) = self.upstream(&ctx.pool, fwd.socket());
        let slot = upstream::acquire(slots, timeout)
            .await
            .ok_or_else(|| early(SendError::Busy))?;
        let mut up = match up {
            Some(up) => up,
            None => ctx.pool.checkout(&key).await.map_err(early)?,
        };
        let mut first = true;
        let head = loop {
            // Try once more on a fresh connection when a pooled one turns out to be closed,
            // and only when nothing can have been processed twice: the write failed before
            // any body byte left our hands, or the request had no body and is idempotent.
            let retry = std::mem::replace(&mut first, false) && up.reused;
            match self.send_request(&mut up, ctx.max_body).await {
                Ok(()) => {}
                Err(Sent::Client) => return Err(Failed::Late),
                Err(Sent::Body(e)) => return Err(Failed::Early(e)),
                Err(Sent::Upstream(_)) if retry && !self.body_started => {
                    up = ctx.pool.connect(&key).await.map_err(early)?;
                    continue;
                }
                Err(Sent::Upstream(e)) => return Err(early(SendError::Broken(e.to_string()))),
            }
            let ex = Exchange {
                head_request: req.head_request,
                client_http10: req.http10,
                close: self.closes_after(req),
                upgrade: req.upgrade,
            };
            self.head_watch.arm(Instant::now() + timeout);
            let read = tokio::select! {
                biased;
                r = read_response_head(&mut up, ex, self.slot, &mut self.io, &mut self.out) => r,
                _ = self.head_watch.expired() => return Err(early(SendError::Timeout)),
            };
            match read {
                Ok(head) => break head,
                Err(HeadError::Closed)
                    if retry && fwd.idempotent && req.body.is_empty() && !req.upgrade =>
                {
                    up = ctx.pool.connect(&key).await.map_err(early)?;
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
        front.metrics().record(
            fwd.service(),
            &fwd.socket().kind,
            head.status,
            started.elapsed(),
        );
        if head.status == 101 {
            self.bridge(up).await;
            return Ok(false);
        }
        let done = self.stream_body(&mut up, &head).await;
        // Back to the pool only at a clean boundary: the request went whole (an early answer
        // leaves part of it unsent), the answer came whole, nothing more arrived.
        let clean = done
            && head.reusable
            && up.buf.is_empty()
            && !req.upgrade
            && matches!(self.body, BodyLeft::Done);
        if clean {
            if let Some(a) = self.affinity.as_mut() {
                a.conn = Some(up);
            }
        }
        Ok(done && !head.close_client && matches!(self.body, BodyLeft::Done))
    }

    /// The pool key of `socket`, its service's in-flight semaphore, and the connection kept
    /// from the last exchange with it, if that is still usable. A different socket replaces
    /// the affinity.
    fn upstream(
        &mut self,
        pool: &Arc<Pool>,
        socket: &crate::registry::table::Socket,
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
        };
        match heard {
            Ok(n) if n > 0 => Ok(!answer_arrived(&up.buf)),
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
                    let Ok(used) = used else { return false };
                    up.buf.advance(used);
                    0
                }
            };
            if out.is_empty() && raw > 0 {
                // Nothing else to send: write straight from the upstream buffer.
                if self.io.write_all(&up.buf[..raw]).await.is_err() {
                    return false;
                }
            } else if !out.is_empty() || raw > 0 {
                out.extend_from_slice(&up.buf[..raw]);
                if self.io.write_all(out).await.is_err() {
                    return false;
                }
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
                () = client_gone(&mut self.io, &mut self.buf) => return false,
            };
            match filled {
                Ok(0) => return framing == Framing::UntilClose,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    }

    /// After a `101`: sends the head (in `self.out`), then copies bytes both ways until
    /// either side closes or shutdown begins.
    async fn bridge(&mut self, mut up: UpConn) {
        if self.io.write_all(&self.out).await.is_err() {
            return;
        }
        if !up.buf.is_empty() && self.io.write_all(&up.buf).await.is_err() {
            return;
        }
        if !self.buf.is_empty() && up.io.write_all(&self.buf).await.is_err() {
            return;
        }
        self.buf.clear();
        tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut self.io, &mut up.io) => {}
            () = self.slot.closed() => {}
        }
    }
}

/// Writes `data` upstream unless the service answers first. `Ok(false)`: it answered (what
/// it sent is in `up.buf`; part of `data` may be unsent).
async fn send_unless_answered(up: &mut UpConn, mut data: &[u8]) -> Result<bool, Sent> {
    let UpConn { io, buf, .. } = up;
    let (mut rd, mut wr) = io.split();
    while !data.is_empty() {
        buf.reserve(upstream::READ_CHUNK);
        tokio::select! {
            biased;
            r = wr.write(data) => match r {
                Ok(0) => return Err(Sent::Upstream(io::ErrorKind::WriteZero.into())),
                Ok(n) => data = &data[n..],
                Err(e) => return Err(Sent::Upstream(e)),
            },
            r = rd.read_buf(buf) => match r {
                Ok(n) if n > 0 => {
                    if answer_arrived(buf) {
                        return Ok(false);
                    }
                }
                Ok(_) => return Err(Sent::Upstream(io::ErrorKind::UnexpectedEof.into())),
                Err(e) => return Err(Sent::Upstream(e)),
            },
        }
    }
    Ok(true)
}

/// True if `buf` holds a complete final (non-1xx) response head, after any interim ones.
fn answer_arrived(buf: &[u8]) -> bool {
    let ex = Exchange::default();
    let mut at = 0;
    loop {
        match http1::parse_response(&buf[at..], &ex, None) {
            Ok(Some(h)) if (100..200).contains(&h.status) => at += h.head_len,
            Ok(Some(_)) => return true,
            // A malformed head counts as an answer: reading it reports the error.
            Err(_) => return true,
            Ok(None) => return false,
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

/// Reads the final response head from upstream, forwarding interim 1xx heads to an HTTP/1.1
/// client. The head to send downstream is left in `out`. Once the connection is closing (shed,
/// or shutdown began), the answer says `connection: close`.
async fn read_response_head<S: AsyncWrite + Unpin>(
    up: &mut UpConn,
    mut ex: Exchange,
    slot: &ConnSlot,
    client: &mut S,
    out: &mut Vec<u8>,
) -> Result<ResponseHead, HeadError> {
    loop {
        out.clear();
        ex.close |= slot.is_closing();
        match http1::parse_response(&up.buf, &ex, Some(out)) {
            Ok(Some(h)) if (100..200).contains(&h.status) && h.status != 101 => {
                up.buf.advance(h.head_len);
                if !ex.client_http10 && client.write_all(out).await.is_err() {
                    return Err(HeadError::Client);
                }
                continue;
            }
            Ok(Some(h)) => {
                up.buf.advance(h.head_len);
                return Ok(h);
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
