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
//! - anything else: an error from [`error_parts_as`], the one error function.
//!
//! A head the router refuses (ambiguous framing, no or two `Host`, over the limits) is answered
//! and the connection closed: no byte after such a head can be trusted to start a request.
//!
//! A proxied request is [`crate::proxy::forward`]'s: the engine moves its bytes both ways.
//! Once shutdown begins (or the connection is shed), the answer in flight says
//! `connection: close` and is the connection's last.

use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use tokio::time::Instant;

use super::apps::AppTarget;
use super::front::{DocsPage, Endpoint, Front, Role, Route, Scan, route};
use super::send_timeout::SendTimeout;
use super::slots::ConnSlot;
use crate::app;
use crate::browser::KnownHost;
use crate::config::ConnLimits;
use crate::http1::{self, BodyFraming, Forwarding, HeadLimits, OwnBody, Persist, Read};
use crate::mcp::Exchange;
use crate::proxy::error::{Envelope, ProxyError, error_parts_as, with_request_id};
use crate::proxy::forward::{CLIENT_CLOSED, ClientConn, Failed, Forward, Req, Sent, Stream, Tally};
use crate::proxy::watchdog::Watchdog;
use crate::proxy::{Target, Transport};
use crate::registry::names::OWN_SERVICE;
use crate::registry::table::Table;
use crate::rpc::{CallMeta, CallTarget};
use crate::traffic::{self, Class, Record, RequestId, RouteLabel, Trace};

/// Most bytes of an application's answer gathered into one write before it is sent.
const COALESCE: usize = 64 * 1024;

/// How long a connection the router ends may drain what its client still sends ([`linger`]).
/// Long enough for a client on a slow link to finish sending a refused body; the connection
/// keeps its slot meanwhile, and shutdown ends it at once.
pub(super) const LINGER: Duration = Duration::from_secs(5);

/// What a complete request head turns into (its [`Meta`] is written in place, into the
/// connection's request in hand: it is not moved with the plan).
enum Plan {
    /// A refused head: answer it and close.
    Reject(ProxyError),
    /// An accepted request, and what to do with it.
    Serve(Req, Action),
}

/// What the access log and the traffic counters say about a request besides what it cost:
/// its ids, its request line and where it went.
struct Meta {
    id: RequestId,
    trace: Trace,
    /// The method (empty while the access log is off: nothing is copied then).
    method: String,
    /// The path, with the query under `--access-log-query` (empty while the log is off).
    path: String,
    http10: bool,
    /// Where it went, for every route but a proxied one.
    route: RouteLabel,
    /// The socket a proxied request went to: its service and kind are read from the
    /// connection's table when the request ends, not copied for every request.
    socket: Option<Target>,
    /// The error the router answered with, for the access log (only while it is on).
    error: Option<String>,
}

/// What to do with an accepted request.
enum Action {
    /// `POST /rpc`.
    Rpc,
    /// One of the router's own endpoints.
    Own(Endpoint),
    /// A docs page.
    Docs(DocsPage),
    /// A request for one of the router's applications, with its head.
    App(AppTarget, Box<http::request::Parts>),
    /// A proxied request (its upstream head is written), to a socket of the connection's
    /// table; safe to send again on a fresh connection if it is `idempotent`.
    Proxy { target: Target, idempotent: bool },
    /// Answered with an error.
    Fail(ProxyError),
    /// A client the allow-list turns away, or a request for a name that is not the router's:
    /// answered, and the connection closed.
    Deny(ProxyError),
}

/// What the head at the start of the buffer is so far.
// Moved once per request, on the stack: boxing the plan would cost an allocation each.
#[allow(clippy::large_enum_variant)]
enum Head {
    /// Not complete yet.
    Partial,
    /// A proxied request needs the table, and the first scan has not finished.
    NotReady,
    /// Complete, and planned.
    Planned(Plan),
}

/// The client connection, and what routing it needs.
struct Client<'s, S: Stream> {
    /// The stream and its buffers, as the proxy engine shares them.
    conn: ClientConn<S>,
    /// What the connection serves; kept for the line of a request cut off ([`Drop`]).
    front: Arc<Front>,
    /// The TCP peer's address as text, for `X-Forwarded-For`.
    peer: Option<String>,
    /// The TCP peer's address, for the allow-list.
    peer_ip: Option<IpAddr>,
    /// The table, refreshed when the scanner publishes a new one (no lock shared with other
    /// threads per request).
    table: Arc<Table>,
    tables: watch::Receiver<Arc<Table>>,
    /// Shed or shut down: the answer in flight then says `connection: close`.
    slot: &'s ConnSlot,
    /// The listener's name in the access log.
    listener: &'static str,
    /// The request in hand, until its line is written.
    meta: Option<Meta>,
    /// When the request in hand was complete.
    started: Instant,
    /// When the request being read was held for the first scan (its time counts from then).
    held_since: Option<Instant>,
    /// How the request in hand's error answers are written (JSON-RPC for MCP).
    envelope: Envelope,
    /// The call the request in hand waits on, if any: a request cut off while it waits is
    /// named by it, as its answer would have been.
    waiting: Option<Waiting>,
    /// The last `Host` on this connection that names the router.
    known_host: KnownHost,
}

/// A call that a request waits on.
enum Waiting {
    /// A `POST /rpc` body, whose calls name the service.
    Rpc(bytes::Bytes),
    /// An application's call (MCP), which names the service once it has one.
    App(Arc<Exchange>),
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
    let tables = front.shared.registry.tables();
    let table = tables.borrow().clone();
    // TCP has the kernel's timer for it (`TCP_USER_TIMEOUT`, set at accept), which counts a
    // slow reader's progress; a Unix socket has none.
    let stall_limit = match transport {
        Transport::Tcp(_) => None,
        Transport::Unix => Some(limits.send_timeout),
    };
    let mut conn = ClientConn::new(SendTimeout::new(io, stall_limit));
    conn.body_pause = limits.header_read_timeout;
    let mut client = Client {
        conn,
        front: front.clone(),
        peer: match transport {
            Transport::Tcp(addr) => Some(addr.ip().to_string()),
            Transport::Unix => None,
        },
        peer_ip: match transport {
            Transport::Tcp(addr) => Some(addr.ip()),
            Transport::Unix => None,
        },
        table,
        tables,
        slot,
        listener: role.label(),
        meta: None,
        started: Instant::now(),
        held_since: None,
        envelope: Envelope::Plain,
        waiting: None,
        known_host: KnownHost::default(),
    };
    let head_limits = HeadLimits {
        max_bytes: limits.max_header_bytes,
        max_headers: limits.max_headers,
    };
    let mut header_watch = Watchdog::new();
    let mut now = Instant::now();
    loop {
        slot.reading_head(now);
        header_watch.arm(now + limits.header_read_timeout);
        // The read first: when the head is already there (the common case under load), the
        // timer and the closing flag are not even polled.
        let next = tokio::select! {
            biased;
            r = client.next_plan(&front, role, &head_limits, now) => r,
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
        // One line per request, however it ended (a stream ends here too).
        now = client.finish(&front);
        if !keep {
            if client.conn.may_be_sending() {
                // Answered: the connection may be shed for a new one like an idle one.
                slot.reading_head(now);
                tokio::select! {
                    biased;
                    () = slot.closed() => {}
                    () = linger(&mut client.conn.io, &mut client.conn.buf, LINGER) => {}
                }
            }
            return;
        }
    }
}

/// A request still in hand when its connection is dropped (shutdown cut it off after the
/// grace, with the shard's tasks) still gets its access line and its count: what was sent of it,
/// status `0` if nothing was.
impl<S: Stream> Drop for Client<'_, S> {
    fn drop(&mut self) {
        if self.meta.is_some() {
            let front = self.front.clone();
            if let Some(waiting) = self.waiting.take() {
                self.name_abandoned(&front, &waiting);
            }
            self.finish(&front);
        }
    }
}

/// Ends a connection whose client may still be sending (a 413 before its body, a refused head
/// with bytes after it, a refusal before its request was read): the router's answer goes out
/// with a FIN, then whatever the client still sends is read and dropped until it closes, for at
/// most `limit`. Closing at once with unread bytes makes the kernel answer them with a reset,
/// and a reset can destroy the answer before the client has read it: a client that sends its
/// whole body before it reads (Python's `http.client`, `requests`) saw "connection reset"
/// rather than its 413.
pub(super) async fn linger<S: Stream>(io: &mut S, scratch: &mut bytes::BytesMut, limit: Duration) {
    use tokio::io::AsyncReadExt;
    if io.shutdown().await.is_err() {
        return;
    }
    let until = Instant::now() + limit;
    loop {
        scratch.clear();
        scratch.reserve(16 * 1024);
        match tokio::time::timeout_at(until, io.read_buf(scratch)).await {
            Ok(Ok(n)) if n > 0 => {}
            // The client closed (or reset, or the time is up): nothing more to protect.
            _ => return,
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
    /// The request already waited for the first scan (up to `--upstream-timeout`).
    waited: bool,
    /// The connection's last `Host` that names the router.
    known_host: &'a mut KnownHost,
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
    let forwarded: Vec<&[u8]> = head.every(Read::XForwardedFor).collect();
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
        // The dashboard's API, and any answer under it (a 404 or a 405 too).
        Route::App(AppTarget::Dashboard(_)) | Route::Error(_) if path.starts_with("/api/") => true,
        Route::App(AppTarget::Dashboard(_)) => path != "/" || !matches!(method, "GET" | "HEAD"),
        Route::Proxy { target, .. } => target.socket(table).kind == "rpc",
        _ => false,
    }
}

/// [`crate::browser::check_origin`] on the request's `Origin`, `Sec-Fetch-Site` and `Host`.
fn browser_origin(head: &http1::RequestHead<'_, '_>) -> Result<(), String> {
    crate::browser::check_origin(
        head.every(Read::Origin),
        head.every(Read::SecFetchSite),
        head.host,
    )
}

/// True if the client takes HTML (a browser's `Accept`).
fn accepts_html(head: &http1::RequestHead<'_, '_>) -> bool {
    head.every(Read::Accept)
        .any(|v| memchr::memmem::find(v, b"text/html").is_some())
}

/// Decides what to do with the head at the start of `buf`. A planned request's [`Meta`] is
/// put in `in_hand`; for a proxied request the upstream head is written to `up_head`.
fn plan(
    buf: &[u8],
    limits: &HeadLimits,
    front: &Front,
    origin: &mut Origin<'_>,
    up_head: &mut Vec<u8>,
    in_hand: &mut Option<Meta>,
) -> Head {
    let mut slots = http1::header_slots();
    let head = match http1::parse_request(buf, limits, &mut slots) {
        Ok(None) => return Head::Partial,
        Ok(Some(head)) => head,
        Err(e) => {
            // A client the list turns away hears that first, even for a broken head.
            let denied = origin
                .peer_ip
                .and_then(|peer| front.access.check(peer, &[]).err());
            let meta = unparsed_meta(
                buf,
                front.access_log.is_on(),
                front.access_log.keeps_query(),
            );
            *in_hand = Some(meta);
            return Head::Planned(Plan::Reject(match denied {
                Some(d) => ProxyError::Forbidden {
                    address: d.address(),
                },
                None => e.into(),
            }));
        }
    };
    let req = Req::of(&head);
    let mut meta = request_meta(front, origin, &head);
    let mut serve = |action, meta| {
        *in_hand = Some(meta);
        Head::Planned(Plan::Serve(req, action))
    };
    // Who may ask is decided before anything else, on every path
    // (docs/access-and-security.md#allow-list).
    if let Some(peer) = origin.peer_ip {
        if let Err(denied) = check_access(front, peer, &head) {
            let e = ProxyError::Forbidden {
                address: denied.address(),
            };
            return serve(Action::Deny(e), meta);
        }
        // A name that is not the router's (DNS rebinding) reaches nothing
        // (docs/access-and-security.md#host-check), and the connection, made for another site, ends
        // with the answer.
        if let Some(host) = head
            .host
            .filter(|h| !origin.known_host.check(&front.names, h))
        {
            let host = String::from_utf8_lossy(host).into_owned();
            return serve(Action::Deny(ProxyError::Misdirected { host }), meta);
        }
    }
    let scan = match (origin.table.scanned(), origin.waited) {
        (true, _) => Scan::Done,
        (false, false) => Scan::Pending,
        (false, true) => Scan::GaveUp,
    };
    let routed = route(
        head.method,
        head.path,
        head.query,
        origin.role,
        origin.table,
        scan,
    );
    meta.route = route_label(&routed, origin.table);
    if let Route::Proxy { target, .. } = &routed {
        meta.socket = Some(*target);
    }
    if guarded(&routed, head.method, head.path, origin.table) {
        if let Err(origin) = browser_origin(&head) {
            // Refused before it went anywhere: `-` in the access log, as every refusal.
            meta.route = RouteLabel::default();
            meta.socket = None;
            return serve(Action::Fail(ProxyError::ForeignOrigin { origin }), meta);
        }
    }
    let action = match routed {
        Route::Rpc => Action::Rpc,
        Route::Own(Endpoint::Landing { .. }) => Action::Own(Endpoint::Landing {
            html: accepts_html(&head),
        }),
        Route::Own(endpoint) => Action::Own(endpoint),
        Route::Docs(page) => Action::Docs(page),
        Route::App(target) => match app_parts(&head) {
            Some(parts) => Action::App(target, Box::new(parts)),
            None => Action::Fail(ProxyError::NoRoute),
        },
        Route::Error(e) => Action::Fail(e),
        Route::OnAdminListener => {
            let admin = front.dashboard_at.clone();
            Action::Fail(ProxyError::OnAdminListener { admin })
        }
        Route::NotReady => return Head::NotReady,
        Route::Proxy { route, target } => {
            if let BodyFraming::Length(n) = req.body {
                if n > front.shared.max_body {
                    let limit = front.shared.max_body;
                    return serve(Action::Fail(ProxyError::BodyTooLarge { limit }), meta);
                }
            }
            let traceparent = meta.trace.traceparent();
            let fwd = Forwarding {
                service: &route.service,
                kind: &route.kind,
                peer: origin.peer,
                trust_client: front.trust_forwarded_headers,
                request_id: meta.id.as_bytes(),
                traceparent: &traceparent,
                keep_tracestate: meta.trace.continued(),
            };
            up_head.clear();
            http1::write_upstream_head(&head, route.path, route.query, &fwd, up_head);
            Action::Proxy {
                target,
                idempotent: http1::retry_safe(head.method),
            }
        }
    };
    serve(action, meta)
}

/// The ids of an accepted request, and (when the access log is on) its request line. A
/// caller's `X-Request-Id` is kept only from a Unix socket or a trusted proxy.
fn request_meta(front: &Front, origin: &Origin<'_>, head: &http1::RequestHead<'_, '_>) -> Meta {
    let trusted = origin.peer_ip.is_none_or(|ip| front.access.trusts(ip));
    let id = head
        .every(Read::XRequestId)
        .next()
        .filter(|_| trusted)
        .and_then(RequestId::from_client)
        .unwrap_or_else(RequestId::generate);
    let trace = Trace::of(head.every(Read::Traceparent));
    let log = &front.access_log;
    let (method, path) = if log.is_on() {
        let mut path = head.path.to_owned();
        if let Some(q) = head.query.filter(|_| log.keeps_query()) {
            path.push('?');
            path.push_str(q);
        }
        (head.method.to_owned(), path)
    } else {
        (String::new(), String::new())
    };
    Meta {
        id,
        trace,
        method,
        path,
        http10: head.http10,
        route: RouteLabel::default(),
        socket: None,
        error: None,
    }
}

/// The request line of a head the parser refused, as far as it can be read: method and
/// target if they are visible ASCII, `-` otherwise.
fn unparsed_meta(buf: &[u8], log: bool, keep_query: bool) -> Meta {
    let line = buf
        .split(|b| *b == b'\n')
        .next()
        .unwrap_or(b"")
        .trim_ascii();
    let mut parts = line.split(|b| *b == b' ');
    let token = |t: Option<&[u8]>, max: usize| -> String {
        match t {
            Some(t)
                if log && !t.is_empty() && t.len() <= max && t.iter().all(u8::is_ascii_graphic) =>
            {
                String::from_utf8_lossy(t).into_owned()
            }
            _ => "-".to_owned(),
        }
    };
    let method = token(parts.next(), 32);
    let mut path = token(parts.next(), 4096);
    if !keep_query {
        if let Some(at) = path.find('?') {
            path.truncate(at);
        }
    }
    Meta {
        id: RequestId::generate(),
        trace: Trace::of(std::iter::empty()),
        method,
        path,
        http10: parts.next() == Some(b"HTTP/1.0"),
        route: RouteLabel::default(),
        socket: None,
        error: None,
    }
}

/// Where a routed request goes, as the access log names it.
fn route_label(routed: &Route<'_>, table: &Table) -> RouteLabel {
    let own = |kind: &str| RouteLabel {
        service: Some(OWN_SERVICE.to_owned()),
        kind: Some(kind.to_owned()),
        ..RouteLabel::default()
    };
    match routed {
        // The service is known once the body is read.
        Route::Rpc => RouteLabel {
            kind: Some("rpc".to_owned()),
            ..RouteLabel::default()
        },
        Route::Own(_) | Route::OnAdminListener | Route::NotReady => own("own"),
        Route::Docs(_) => own("docs"),
        Route::App(AppTarget::Mcp(_)) => own("mcp"),
        Route::App(AppTarget::Dashboard(_)) => own("dashboard"),
        // Named from the table when the request ends (`Meta::socket`).
        Route::Proxy { .. } => RouteLabel::default(),
        // Only a service in the table is named: a client must not be able to put made-up
        // names into the traffic counters.
        Route::Error(e) => RouteLabel {
            service: e
                .service()
                .filter(|s| table.service(s).is_some())
                .map(str::to_owned),
            ..RouteLabel::default()
        },
    }
}

// === impl Meta ===

impl Meta {
    /// The service the request went to, if it went to one.
    fn service<'t>(&'t self, table: &'t Table) -> Option<&'t str> {
        match self.socket {
            Some(target) => Some(&target.service(table).name),
            None => self.route.service.as_deref(),
        }
    }
}

// === impl Client ===

impl<S: Stream> Client<'_, S> {
    /// Reads until a head is complete (or refused) and decides what to do with it.
    /// `Ok(None)`: the client closed.
    async fn next_plan(
        &mut self,
        front: &Front,
        role: Role,
        limits: &HeadLimits,
        quiet_since: Instant,
    ) -> io::Result<Option<Plan>> {
        // When to look again whether a partial head is already no request (its length
        // doubles each time: the looks cost no more than one parse of the whole head).
        let mut look_at = 1;
        loop {
            let buf = &self.conn.buf;
            // Parse once the blank line that ends a head can be there, or the head is over
            // the limit either way, or what came already is no request.
            let whole = may_hold_head(buf) || buf.len() > limits.max_bytes;
            let doomed = !whole && buf.len() >= look_at && {
                look_at = buf.len() * 2;
                http1::doomed(buf, limits)
            };
            if whole || doomed {
                if self.tables.has_changed().unwrap_or(false) {
                    self.table = self.tables.borrow_and_update().clone();
                }
                let mut origin = Origin {
                    role,
                    peer_ip: self.peer_ip,
                    peer: self.peer.as_deref(),
                    table: &self.table,
                    waited: self.held_since.is_some(),
                    known_host: &mut self.known_host,
                };
                match plan(
                    &self.conn.buf,
                    limits,
                    front,
                    &mut origin,
                    &mut self.conn.up_head,
                    &mut self.meta,
                ) {
                    Head::NotReady => {
                        // Right after start-up: wait for the first scan rather than answer
                        // "no such service" for a service that is there.
                        let shared = &front.shared;
                        self.held_since = Some(Instant::now());
                        shared.registry.wait_ready(shared.upstream_timeout).await;
                        self.table = self.tables.borrow_and_update().clone();
                        continue;
                    }
                    Head::Planned(plan) => return Ok(Some(plan)),
                    Head::Partial => {}
                }
            }
            if self.conn.fill_next(quiet_since).await? == 0 {
                return Ok(None);
            }
        }
    }

    /// Serves one planned request. Returns whether the connection stays open.
    async fn run(&mut self, front: &Front, plan: Plan) -> bool {
        // A request held for the first scan counts from when it was held.
        let started = self.held_since.take().unwrap_or_else(Instant::now);
        self.started = started;
        self.conn.tally = Tally::default();
        self.envelope = Envelope::Plain;
        if let Some(meta) = &self.meta {
            self.conn.request_id = meta.id;
        }
        let (req, action) = match plan {
            Plan::Reject(e) => {
                self.conn.tally.received = self.conn.buf.len() as u64;
                return self.refuse(front, &e, started).await;
            }
            Plan::Serve(req, action) => (req, action),
        };
        self.conn.start(&req);
        // The large futures are boxed: this one is made anew for every request, and moved
        // (copied) as it is, so its size is the size of the largest branch. Unboxed, the
        // dashboard's and `/rpc`'s made it 21 KB where the proxy's needs under 2 KB.
        match action {
            Action::Rpc => Box::pin(self.rpc(front, &req, started)).await,
            Action::Own(endpoint) => self.own(front, &req, endpoint).await,
            Action::Docs(page) => Box::pin(self.docs(front, &req, &page, started)).await,
            Action::App(target, parts) => {
                Box::pin(self.app(front, &req, target, *parts, started)).await
            }
            Action::Proxy { target, idempotent } => {
                self.forward(front, &req, target, idempotent, started).await
            }
            Action::Fail(e) => self.fail(front, &req, &e, started).await,
            Action::Deny(e) => {
                self.write_error(front, &e, Persist::Close, req.head_request, started)
                    .await;
                false
            }
        }
    }

    /// Answers one of the router's own endpoints. Returns whether the connection stays open.
    async fn own(&mut self, front: &Front, req: &Req, e: Endpoint) -> bool {
        self.conn.skip_buffered_body();
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
        self.conn.out.clear();
        http1::write_own_head(&mut self.conn.out, 200, headers, Some(body.len()), persist);
        self.own_head(200);
        if !req.head_request {
            self.conn.out.extend_from_slice(body.as_bytes());
        }
        self.send_out().await && !persist.closes()
    }

    /// Answers a docs page; a service's page says how the docs cache answered
    /// (`cache-status`, RFC 9211). Returns whether the connection stays open.
    async fn docs(&mut self, front: &Front, req: &Req, page: &DocsPage, started: Instant) -> bool {
        self.conn.skip_buffered_body();
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
        let kind = match target {
            AppTarget::Mcp(_) => "mcp",
            AppTarget::Dashboard(_) => "app",
        };
        if kind == "mcp" {
            // A body over `--max-body` (or broken): an MCP client reads only JSON-RPC.
            self.envelope = Envelope::JsonRpc;
        }
        let body = match self.conn.read_whole_body(front.shared.max_body).await {
            Ok(body) => body,
            Err(Sent::Body(e)) => return self.fail(front, req, &e, started).await,
            Err(_) => return self.left_mid_body(front, kind, started),
        };
        if let (AppTarget::Mcp(_), Some(meta), true) =
            (&target, self.meta.as_mut(), front.access_log.is_on())
        {
            mcp_label(&body, &mut meta.route);
        }
        // MCP requests are counted apart (`kind`): they are routed calls in another envelope.
        let request = http::Request::from_parts(parts, body.freeze());
        let traceparent = self.meta.as_ref().map(|m| m.trace.traceparent());
        let traceparent = traceparent.and_then(|t| String::from_utf8(t.to_vec()).ok());
        let exchange = Arc::new(Exchange::new(
            self.conn.request_id.as_str().to_owned(),
            traceparent,
        ));
        // A tool call whose client leaves while the service thinks is abandoned (a 499), as a
        // routed `/rpc` call is; it stays the service's request.
        let answering = std::pin::pin!(front.apps.call(target, request, &exchange));
        let waiting = Waiting::App(exchange.clone());
        let Some(answer) = self.wait_on(front, answering, waiting, kind, started).await else {
            return false;
        };
        // Latency runs to the answer's head: a feed (`/api/events`) streams for as long as its
        // page is open, which says nothing of how fast the router answered.
        let answered = started.elapsed();
        self.conn.tally.answered = Some(answered);
        let (head, mut body) = answer.into_parts();
        let status = head.status.as_u16();
        if status >= 400 {
            body = self.with_request_id(body).await;
        }
        // The router's own applications made it: an error here is the router's.
        self.conn.tally.router_made = true;
        // A tool call that reached a service counts as that service's traffic, as a routed
        // call through `/rpc` does, with its wait for the answer.
        let called = exchange.called();
        if let Some(called) = &called {
            self.conn.tally.upstream = called.upstream;
            if let Some(meta) = self.meta.as_mut() {
                meta.route.service = Some(called.service.clone());
            }
        }
        // A tool call the service never answered is the router's failure, as on `/rpc`.
        if let Some(failure) = exchange.failure() {
            self.conn.tally.call_failed = true;
            if let Some(meta) = self.meta.as_mut() {
                meta.error = Some(failure);
            }
        }
        let service = called.as_ref().map_or(OWN_SERVICE, |c| c.service.as_str());
        front.metrics().record(service, kind, status, answered);
        let no_body = req.head_request || matches!(status, 204 | 304);
        let length = app::exact_len(&body);
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
        self.conn.out.clear();
        http1::write_own_head_framed(&mut self.conn.out, status, &headers, framing, persist);
        self.own_head(status);
        if no_body {
            return self.send_out().await && !close;
        }
        self.stream_app_body(body, framing).await && !close
    }

    /// An application's error body with this request's id in it, as every error body the
    /// router makes has it (an error body is small and built whole; one past 64 KiB, or one
    /// that is not the router's JSON shape, goes as it is).
    async fn with_request_id(&self, body: app::Body) -> app::Body {
        const MAX: u64 = 64 * 1024;
        if app::exact_len(&body).is_none_or(|n| n > MAX) {
            return body;
        }
        // Its length is known and within MAX: it is collected whole.
        let bytes = app::collect(body, MAX as usize).await.unwrap_or_default();
        match with_request_id(&bytes, self.conn.request_id.as_str()) {
            Some(with_id) => app::full(with_id),
            None => app::full(bytes),
        }
    }

    /// Sends the head in `self.conn.out` and an application's answer body in `framing`. What the
    /// body has ready goes out with the head in one write: an answer built whole (most are)
    /// costs one send, as a routed answer does. Returns whether it was all sent.
    async fn stream_app_body(&mut self, mut body: app::Body, framing: OwnBody) -> bool {
        use futures_util::FutureExt as _;
        use http_body_util::BodyExt as _;
        loop {
            // Gather the frames that are ready, up to COALESCE bytes; wait only when none is.
            let frame = if self.conn.out.len() >= COALESCE {
                None
            } else if let Some(frame) = body.frame().now_or_never() {
                Some(frame)
            } else if self.conn.out.is_empty() {
                tokio::select! {
                    biased;
                    frame = body.frame() => Some(frame),
                    // Shed or shut down: an endless stream (server-sent events) ends here, as
                    // a complete message (its last chunk), so the client sees an end, not a
                    // cut.
                    () = self.slot.closed() => {
                        if framing == OwnBody::Chunked {
                            let _ = self.conn.io.write_all(http1::LAST_CHUNK).await;
                        }
                        return false;
                    }
                    // The client left: the stream ends now, not at its next write (a quiet
                    // feed writes every few seconds), and frees the client's connection slot.
                    () = self.conn.gone() => return false,
                }
            } else {
                None
            };
            let Some(frame) = frame else {
                // Nothing more is ready (or enough is gathered): send what is.
                let sent = self.send_out().await;
                self.conn.out.clear();
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
                Some(Err(never)) => match never {},
            };
            if data.is_empty() {
                continue;
            }
            if framing == OwnBody::Chunked {
                http1::push_chunk(&mut self.conn.out, &data);
            } else {
                self.conn.out.extend_from_slice(&data);
            }
        }
        if framing == OwnBody::Chunked {
            self.conn.out.extend_from_slice(http1::LAST_CHUNK);
        }
        self.send_out().await
    }

    /// Answers `POST /rpc`. Returns whether the connection stays open.
    async fn rpc(&mut self, front: &Front, req: &Req, started: Instant) -> bool {
        let body = match self.conn.read_whole_body(front.shared.max_body).await {
            Ok(body) => body,
            Err(Sent::Body(e)) => return self.fail(front, req, &e, started).await,
            Err(_) => return self.left_mid_body(front, "rpc", started),
        };
        let meta = self.meta.as_ref();
        let traceparent = meta.map(|m| m.trace.traceparent());
        let request_id = self.conn.request_id.as_str().to_owned();
        let call = CallMeta {
            request_id: &request_id,
            traceparent: traceparent
                .as_ref()
                .and_then(|t| std::str::from_utf8(t).ok()),
            methods: front.access_log.is_on(),
        };
        // A client that leaves while its call waits for a service: the call is abandoned (a
        // 499), as a proxied request is.
        let body = body.freeze();
        let handling = std::pin::pin!(front.rpc.handle_for(&body, &call));
        let waiting = Waiting::Rpc(body.clone());
        let Some(handled) = self.wait_on(front, handling, waiting, "rpc", started).await else {
            return false;
        };
        let (answer, target) = (handled.answer, handled.target);
        if let Some(meta) = self.meta.as_mut() {
            meta.route.methods = handled.methods;
            meta.route.service = Some(match &target {
                CallTarget::Service(name) => name.clone(),
                CallTarget::Router => OWN_SERVICE.to_owned(),
            });
        }
        self.conn.tally.upstream = handled.upstream;
        self.conn.tally.call_failed = handled.call_failed;
        if let (Some(meta), Some(failure)) = (self.meta.as_mut(), handled.failure) {
            meta.error = Some(failure);
        }
        let persist = self.persist(req);
        let status = if answer.is_some() { 200 } else { 204 };
        let body = answer.as_deref().unwrap_or("").as_bytes();
        self.conn.out.clear();
        let headers: &[(&str, &str)] = match answer {
            Some(_) => &[("content-type", "application/json")],
            None => &[],
        };
        http1::write_own_head(
            &mut self.conn.out,
            status,
            headers,
            Some(body.len()),
            persist,
        );
        self.own_head(status);
        if !req.head_request {
            self.conn.out.extend_from_slice(body);
        }
        let service = match &target {
            CallTarget::Service(name) => name.as_str(),
            CallTarget::Router => OWN_SERVICE,
        };
        front
            .metrics()
            .record(service, "rpc", status, started.elapsed());
        self.send_out().await && !persist.closes()
    }

    /// The client left (or broke off) while it sent the body of a request for the router
    /// itself: a 499, as a proxied one (`proxy::forward`), counted under the router. The
    /// connection ends.
    fn left_mid_body(&mut self, front: &Front, kind: &str, started: Instant) -> bool {
        self.conn.tally.status = CLIENT_CLOSED;
        self.conn.tally.router_made = true;
        // Its body never came whole, so no call in it is known: it is the router's, in the
        // log as in the counters.
        if let Some(meta) = self.meta.as_mut() {
            meta.route
                .service
                .get_or_insert_with(|| OWN_SERVICE.to_owned());
        }
        front
            .metrics()
            .record(OWN_SERVICE, kind, CLIENT_CLOSED, started.elapsed());
        false
    }

    /// Forwards one request through the proxy engine. Returns whether the connection stays
    /// open.
    async fn forward(
        &mut self,
        front: &Front,
        req: &Req,
        target: Target,
        idempotent: bool,
        started: Instant,
    ) -> bool {
        // The table the request was planned with: `self.table` changes only when the next
        // request is planned.
        let fwd = Forward {
            idempotent,
            table: &self.table,
            target,
        };
        let sent = self
            .conn
            .forward(
                &front.shared,
                front.metrics(),
                self.slot,
                req,
                &fwd,
                started,
            )
            .await;
        let mid_interim = self.conn.settle_interim();
        match sent {
            Ok(keep) => keep,
            Err(Failed::Late) => false,
            // An interim head only partly written: an error head after it would be garbage on
            // the client's side. The connection ends instead.
            Err(Failed::Early(_)) if mid_interim => false,
            Err(Failed::Early(e)) => self.fail(front, req, &e, started).await,
        }
    }

    /// True if the connection ends after this request's answer: the client asked for it, its
    /// body was not read whole, or the connection was shed or shutdown began.
    fn closes_after(&self, req: &Req) -> bool {
        self.conn.closes_after(req, self.slot.is_closing())
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
        self.conn.skip_buffered_body();
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
        self.conn.tally.router_made = true;
        if front.access_log.is_on() {
            if let Some(meta) = self.meta.as_mut() {
                meta.error = Some(e.to_string());
            }
        }
        let id = Some(self.conn.request_id.as_str());
        let (status, headers, body) = error_parts_as(e, id, self.envelope);
        self.conn.out.clear();
        http1::write_own_head(
            &mut self.conn.out,
            status.as_u16(),
            &headers,
            Some(body.len()),
            persist,
        );
        self.own_head(status.as_u16());
        if !head_request {
            self.conn.out.extend_from_slice(&body);
        }
        // Under the service the error names, else the one the request was routed to (a 413
        // for a proxied body names none), as the traffic counts it. Only a service in the
        // table gets a label: a client must not be able to grow the metrics with made-up
        // names (`GET /nosuch/rpc/`).
        let routed = self.meta.as_ref().and_then(|m| m.service(&self.table));
        let service = e
            .service()
            .or(routed)
            .filter(|s| self.table.service(s).is_some())
            .unwrap_or("-");
        front
            .metrics()
            .record(service, "-", status.as_u16(), started.elapsed());
        self.send_out().await
    }

    /// Notes the status of an answer the router made, whose head is all of `self.conn.out`,
    /// and adds the request's id to that head.
    fn own_head(&mut self, status: u16) {
        self.conn.tally.status = status;
        http1::add_request_id(&mut self.conn.out, self.conn.request_id.as_bytes());
    }

    /// Writes `self.conn.out` to the client, counting what went. Returns whether it did.
    async fn send_out(&mut self) -> bool {
        let sent = self.conn.io.write_all(&self.conn.out).await.is_ok();
        if sent {
            self.conn.tally.sent += self.conn.out.len() as u64;
        }
        sent
    }

    /// Waits for `call`'s answer unless the client leaves first: then the call is abandoned,
    /// counted as a 499 of the service it went to, and `None` comes back. While it waits, a
    /// shutdown that cuts the request off names it the same way ([`Drop`]). `call` is pinned
    /// where it was made: passed on by value, each async layer would hold a copy of it.
    async fn wait_on<T>(
        &mut self,
        front: &Front,
        call: Pin<&mut impl Future<Output = T>>,
        waiting: Waiting,
        kind: &str,
        started: Instant,
    ) -> Option<T> {
        self.waiting = Some(waiting);
        let answer = self.conn.unless_client_leaves(call).await;
        let waiting = self.waiting.take();
        if let (None, Some(waiting)) = (&answer, waiting) {
            let service = self.name_abandoned(front, &waiting);
            front
                .metrics()
                .record(&service, kind, CLIENT_CLOSED, started.elapsed());
        }
        answer
    }

    /// Names a request whose call was abandoned (its client left, or shutdown cut it off) as
    /// its answer would have been: the service its calls went to, and their methods. Returns
    /// the service's name.
    fn name_abandoned(&mut self, front: &Front, waiting: &Waiting) -> String {
        let (service, methods) = match waiting {
            Waiting::Rpc(body) => {
                let (target, methods) = front.rpc.label_for(body, front.access_log.is_on());
                let service = match target {
                    CallTarget::Service(name) => name,
                    CallTarget::Router => OWN_SERVICE.to_owned(),
                };
                (service, Some(methods))
            }
            Waiting::App(exchange) => match exchange.called() {
                Some(called) => (called.service.clone(), None),
                None => return OWN_SERVICE.to_owned(),
            },
        };
        if let Some(meta) = self.meta.as_mut() {
            meta.route.service = Some(service.clone());
            if let Some(methods) = methods {
                meta.route.methods = methods;
            }
        }
        service
    }

    /// Ends the request in hand: its traffic counts, and its access line (handed to the
    /// log's writer, never waited for). Returns the time it ended (one clock read for this
    /// and for what comes next on the connection).
    fn finish(&mut self, front: &Front) -> Instant {
        let now = Instant::now();
        let Some(meta) = self.meta.take() else {
            return now;
        };
        let tally = self.conn.tally;
        let total = now.saturating_duration_since(self.started);
        let traffic = &front.shared.traffic;
        traffic.record(
            meta.service(&self.table).unwrap_or(OWN_SERVICE),
            // Nothing answered at all (cut off at shutdown) is the router's failure too.
            if tally.call_failed || tally.status == 0 {
                Class::Router
            } else {
                Class::of(tally.status, tally.router_made)
            },
            tally.answered.unwrap_or(total),
            traffic.secs_at(now),
        );
        let log = &front.access_log;
        if log.is_on() {
            let mut route = meta.route;
            if let Some(target) = meta.socket {
                route.service = Some(target.service(&self.table).name.clone());
                route.kind = Some(target.socket(&self.table).kind.clone());
            }
            log.send(Record {
                time: SystemTime::now(),
                client: self.peer_ip,
                listener: self.listener,
                method: meta.method,
                path: meta.path,
                http10: meta.http10,
                route,
                status: tally.status,
                bytes_in: tally.received,
                bytes_out: tally.sent,
                total,
                upstream: tally.upstream,
                request_id: meta.id,
                trace_id: meta.trace.trace_id_hex(),
                error: meta.error.or_else(|| tally.cut.map(|c| c.to_string())),
            });
        }
        now
    }
}

/// The MCP method of a request body, and the tool of a `tools/call`.
fn mcp_label(body: &[u8], route: &mut RouteLabel) {
    #[derive(serde::Deserialize)]
    struct Peek {
        method: Option<String>,
        params: Option<PeekParams>,
    }
    #[derive(serde::Deserialize)]
    struct PeekParams {
        name: Option<serde_json::Value>,
    }
    let Ok(peek) = serde_json::from_slice::<Peek>(body) else {
        return;
    };
    if let Some(method) = peek.method {
        if method == "tools/call" {
            route.tool = peek
                .params
                .and_then(|p| p.name)
                .and_then(|n| n.as_str().map(traffic::label));
        }
        route.methods = vec![traffic::label(&method)];
    }
}

/// True if `buf` may hold a complete head: it has a blank line (`\n\n` or `\n\r\n`).
/// One search for the usual CRLF ending, with a searcher built once; the bare-LF one only
/// when that finds none. An empty buffer (the look before each request's first read) is
/// answered without a search.
fn may_hold_head(buf: &[u8]) -> bool {
    if buf.len() < 2 {
        return false;
    }
    use memchr::memmem::Finder;
    use std::sync::LazyLock;
    static CRLF: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\n\r\n"));
    static LF: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\n\n"));
    CRLF.find(buf).is_some() || LF.find(buf).is_some()
}

#[cfg(test)]
mod tests;
