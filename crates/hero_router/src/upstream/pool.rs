//! The upstream side: idle HTTP/1.1 connections to service sockets (the router's only pool),
//! and the per-service limit on requests in flight.
//!
//! Connections are pooled per *socket instance*: the key holds the socket file's identity
//! (dev, ino, ctime) next to its path. A service that restarts binds a new socket with a new
//! identity, so it never receives a connection that belonged to the old server.
//!
//! The pool is a plain map behind a mutex; a request takes a connection out, uses it inside its
//! own task (no hand-off to a connection task), and puts it back if the exchange ended cleanly.
//! A connection is checked before reuse without a syscall: if the reactor has seen it become
//! readable while idle (the server closed it, or sent garbage), it is dropped.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use hero_socket::Identity;

use super::connect::{SendError, connect};
use crate::http1::{self, ChunkedDecoder, Exchange, Framing};

/// Idle connections kept per socket instance.
const MAX_IDLE_PER_KEY: usize = 256;
/// An idle connection older than this is closed instead of reused. Short: a service that
/// serves one connection at a time (a single-threaded HTTP/1.1 server) serves nobody else
/// while the router keeps one idle, and a service closing idle connections itself (uvicorn
/// and Node after 5 s, gunicorn after 2 s) races a reuse near its own limit. Under load a
/// connection is reused long before; a new connection to a Unix socket is cheap.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(1);
/// A kept connection that closes without an answer later than this after the request went
/// out was not closed as idle just then: the service had the request, and failed on it (or
/// died). The error then says so rather than suggest an idle close.
pub(crate) const IDLE_RACE: Duration = Duration::from_millis(50);
/// A request of at most this many bytes is written in one go ([`Pool::send_within`]): a Unix
/// socket's buffer takes it whole, whatever the service does.
const SMALL_REQUEST: usize = 32 * 1024;
/// How often a request waiting on a new connection closes the idle ones to its socket
/// ([`Pool::unblock`]).
const UNBLOCK_EVERY: Duration = Duration::from_millis(100);
/// How often the serve loop sweeps ([`Pool::sweep`]): an idle connection is closed at most
/// this long after [`IDLE_TIMEOUT`].
pub(crate) const SWEEP_INTERVAL: Duration = Duration::from_millis(250);
/// How often (at most) check-ins sweep out stale idle connections (the serve loop also
/// sweeps every [`SWEEP_INTERVAL`], traffic or not: [`Pool::sweep`]).
const SWEEP_EVERY: Duration = Duration::from_secs(10);
/// The in-flight map is not swept below this many services.
const SWEEP_INFLIGHT_AT: usize = 64;
/// Read buffer size for upstream connections.
pub(crate) const READ_CHUNK: usize = 16 * 1024;

/// The pool's maps. A routed call looks its socket up in them four or five times: foldhash
/// (seeded per process) hashes a key in a few instructions where SipHash took a hundred.
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// What a [`Key`] hashes its socket with, once.
const KEY_HASH: foldhash::fast::FixedState = foldhash::fast::FixedState::with_seed(0x6865_726f);

/// Permits for requests waiting on a response head, per service directory.
///
/// A semaphore nobody holds (no permit out, no one waiting, no connection keeping it) is the
/// same as a new one, so such entries are swept out as the map grows: services that went away
/// leave nothing behind.
#[derive(Clone)]
pub(crate) struct Inflight {
    map: Arc<Mutex<Slots>>,
    max: usize,
}

/// The semaphores, and the size at which the next sweep is due.
#[derive(Default)]
struct Slots {
    /// By the service directory's path, as bytes (hashed in one write, where a `Path` is
    /// hashed a component at a time).
    by_service: Map<Box<[u8]>, Arc<Semaphore>>,
    sweep_at: usize,
}

impl Inflight {
    /// At most `max` requests per service wait on a response head at once.
    pub(crate) fn new(max: usize) -> Inflight {
        Inflight {
            map: Arc::default(),
            max: max.max(1),
        }
    }

    /// The semaphore of the service that owns `socket`.
    pub(crate) fn semaphore(&self, socket: &Path) -> Arc<Semaphore> {
        let service = service_dir(socket);
        let mut slots = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sem) = slots.by_service.get(service) {
            return sem.clone();
        }
        if slots.by_service.len() >= slots.sweep_at {
            // Only the map holds it: no permit, waiter or connection, and new holders come
            // only through this lock. Sweeping at twice the survivors keeps it amortised O(1).
            slots.by_service.retain(|_, sem| Arc::strong_count(sem) > 1);
            slots.by_service.shrink_to_fit();
            slots.sweep_at = (slots.by_service.len() * 2).max(SWEEP_INFLIGHT_AT);
        }
        slots
            .by_service
            .entry(service.into())
            .or_insert_with(|| Arc::new(Semaphore::new(self.max)))
            .clone()
    }

    /// Services with a semaphore in the map (swept or not).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.lock().unwrap().by_service.len()
    }

    /// Waits at most `wait` for a slot of the service that owns `socket`.
    pub(crate) async fn acquire(
        &self,
        socket: &Path,
        wait: Duration,
    ) -> Option<OwnedSemaphorePermit> {
        acquire(self.semaphore(socket), wait).await
    }
}

/// Waits at most `wait` for a slot of `sem`.
pub(crate) async fn acquire(sem: Arc<Semaphore>, wait: Duration) -> Option<OwnedSemaphorePermit> {
    if let Ok(p) = sem.clone().try_acquire_owned() {
        return Some(p);
    }
    tokio::time::timeout(wait, sem.acquire_owned())
        .await
        .ok()?
        .ok()
}

/// One socket instance. Compared by its path's bytes and identity, and hashed once, when it
/// is made: a routed call looks its socket up in the pool's maps four or five times, and
/// hashing a `Path` (a component at a time) each time was a tenth of the call's work. The
/// table writes each socket's path one way, so equal sockets have equal bytes.
#[derive(Debug, Clone)]
pub(crate) struct Key {
    /// The socket's path (shared: a key is cloned per request, never copied).
    pub path: Arc<Path>,
    /// Its identity when the table last saw it.
    pub identity: Option<Identity>,
    /// The hash of both, what the maps hash.
    hash: u64,
}

impl Key {
    pub(crate) fn new(path: Arc<Path>, identity: Option<Identity>) -> Key {
        // A fixed seed: the paths are the node's own, nothing a client chooses. Two writes;
        // equality still compares every field.
        let mut h = KEY_HASH.build_hasher();
        h.write(bytes(&path));
        h.write_u64(identity.map_or(0, |i| {
            i.dev.rotate_left(32) ^ i.ino ^ i.ctime_ns.cast_unsigned()
        }));
        Key {
            hash: h.finish(),
            path,
            identity,
        }
    }

    /// The key of a socket in the table.
    pub(crate) fn of(socket: &crate::registry::table::Socket) -> Key {
        Key::new(socket.path.clone(), socket.identity)
    }

    /// True if this is the key of `socket` (no allocation).
    pub(crate) fn is(&self, socket: &crate::registry::table::Socket) -> bool {
        self.identity == socket.identity
            && (Arc::ptr_eq(&self.path, &socket.path) || bytes(&self.path) == bytes(&socket.path))
    }
}

/// A path's bytes.
fn bytes(path: &Path) -> &[u8] {
    path.as_os_str().as_encoded_bytes()
}

/// The directory of a socket, as bytes: its path up to the last `/`. The table writes every
/// socket's path as its service's directory joined with its file name; `Path::parent`, which
/// parses every component, cost more than the rest of the lookup.
fn service_dir(socket: &Path) -> &[u8] {
    let path = bytes(socket);
    memchr::memrchr(b'/', path).map_or(path, |end| &path[..end])
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.hash == other.hash
            && self.identity == other.identity
            && bytes(&self.path) == bytes(&other.path)
    }
}

impl Eq for Key {}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// A connection to an upstream socket, with its read buffer.
pub(crate) struct UpConn {
    /// The stream.
    pub io: UnixStream,
    /// Bytes read and not consumed yet.
    pub buf: BytesMut,
    /// True if it came from the pool (it may have been closed by the server meanwhile).
    pub reused: bool,
    idle_since: Instant,
}

impl UpConn {
    /// Writes `data` unless the service answers first. `Ok(false)`: it answered (what it sent
    /// is in the buffer; part of `data` may be unsent, and the connection must not be kept).
    /// A service may answer a request before it has read all of it (a 413 to an upload it
    /// refuses) and then read on slowly, or not at all: waiting for the write to finish first
    /// would wait for nothing.
    pub(crate) async fn send_unless_answered(&mut self, mut data: &[u8]) -> io::Result<bool> {
        let UpConn { io, buf, .. } = self;
        let (mut rd, mut wr) = io.split();
        while !data.is_empty() {
            buf.reserve(READ_CHUNK);
            tokio::select! {
                biased;
                r = wr.write(data) => match r? {
                    0 => return Err(io::ErrorKind::WriteZero.into()),
                    n => data = &data[n..],
                },
                r = rd.read_buf(buf) => match r? {
                    0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                    _ if http1::final_head_arrived(buf) => return Ok(false),
                    _ => {}
                },
            }
        }
        Ok(true)
    }

    /// Reads more bytes into the buffer; `Ok(0)` at end of stream.
    pub(crate) async fn fill(&mut self) -> io::Result<usize> {
        // A short read leaves no `EAGAIN` read behind: tokio itself then forgets the read
        // readiness it saw before the read (if no new edge came meanwhile), as nginx does.
        self.buf.reserve(READ_CHUNK);
        self.io.read_buf(&mut self.buf).await
    }

    /// True if it sat idle less than the idle timeout and nothing arrived meanwhile.
    pub(crate) fn still_idle(&self) -> bool {
        self.idle_since.elapsed() <= IDLE_TIMEOUT && self.still_open()
    }

    /// The connection, registered with this thread's reactor instead of the one it was made
    /// on.
    fn moved_here(self) -> io::Result<UpConn> {
        let io = UnixStream::from_std(self.io.into_std()?)?;
        Ok(UpConn { io, ..self })
    }

    /// True if nothing arrived on it since its last exchange (the service did not close it or
    /// send anything unasked). No syscall unless the reactor saw it readable.
    pub(crate) fn still_open(&self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut probe = [0u8; 1];
        matches!(self.io.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

/// Idle upstream connections plus the in-flight limits.
pub(crate) struct Pool {
    idle: Mutex<Idle>,
    /// Requests that have waited [`UNBLOCK_EVERY`] or more on a new connection, in all: while
    /// there are any, a connection whose exchange ends is closed rather than kept if its
    /// socket has one of them ([`Pool::keeps`]). Zero almost always: one load on the fast path.
    starving: AtomicUsize,
    /// Per-service in-flight limit.
    pub inflight: Inflight,
    busy_wait: Duration,
}

/// Idle connections by the thread whose reactor they are registered with, and socket instance.
/// A thread reuses its own first; another's is moved to its reactor only when it has none
/// ([`Pool::checkout`]).
struct Idle {
    conns: Map<ThreadId, Map<Key, Vec<UpConn>>>,
    swept: Instant,
    /// The starving requests by socket instance (their total is [`Pool::starving`]).
    starving: Map<Key, usize>,
}

/// A request counted in [`Pool::starving`] until it is dropped.
struct Starving<'p> {
    pool: &'p Pool,
    key: Key,
}

impl<'p> Starving<'p> {
    fn new(pool: &'p Pool, key: &Key) -> Starving<'p> {
        let mut idle = pool.idle.lock().unwrap_or_else(|p| p.into_inner());
        *idle.starving.entry(key.clone()).or_default() += 1;
        pool.starving.fetch_add(1, Ordering::Relaxed);
        Starving {
            pool,
            key: key.clone(),
        }
    }
}

impl Drop for Starving<'_> {
    fn drop(&mut self) {
        let mut idle = self.pool.idle.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = idle.starving.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                idle.starving.remove(&self.key);
            }
        }
        self.pool.starving.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Idle {
    /// Drops the connections idle for longer than [`IDLE_TIMEOUT`] at `now`.
    fn sweep(&mut self, now: Instant) {
        self.swept = now;
        for mine in self.conns.values_mut() {
            mine.retain(|_, v| {
                v.retain(|c| now.duration_since(c.idle_since) <= IDLE_TIMEOUT);
                !v.is_empty()
            });
        }
    }
}

/// A buffered answer of [`Pool::exchange`].
#[derive(Debug)]
pub(crate) struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The whole body, de-chunked.
    pub body: BytesMut,
}

impl Pool {
    /// A pool whose connects retry a full backlog for up to `busy_wait`.
    pub(crate) fn new(busy_wait: Duration, inflight: Inflight) -> Pool {
        Pool {
            idle: Mutex::new(Idle {
                conns: Map::default(),
                swept: Instant::now(),
                starving: Map::default(),
            }),
            starving: AtomicUsize::new(0),
            inflight,
            busy_wait,
        }
    }

    /// An idle connection to `key`, or a new one.
    ///
    /// This thread's own idle connections come first. Without one, another thread's is taken
    /// and moved to this thread's reactor (two `epoll_ctl`s) before a new one is made: a
    /// service that serves one connection at a time (a single-threaded HTTP/1.1 server) is
    /// busy with the connection another thread keeps idle, and would leave a new one waiting
    /// in its backlog.
    pub(crate) async fn checkout(&self, key: &Key) -> Result<UpConn, SendError> {
        let me = std::thread::current().id();
        loop {
            let (conn, theirs) = {
                let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
                let mine = idle.conns.get_mut(&me).and_then(|m| m.get_mut(key));
                match mine.and_then(Vec::pop) {
                    Some(c) => (Some(c), false),
                    None => (
                        idle.conns
                            .iter_mut()
                            .filter(|(thread, _)| **thread != me)
                            .find_map(|(_, theirs)| theirs.get_mut(key).and_then(Vec::pop)),
                        true,
                    ),
                }
            };
            // Checked where it was registered: that reactor has seen whatever arrived.
            match conn {
                Some(c) if c.still_idle() && !theirs => return Ok(UpConn { reused: true, ..c }),
                Some(c) if c.still_idle() => match c.moved_here() {
                    Ok(c) => return Ok(UpConn { reused: true, ..c }),
                    Err(_) => continue,
                },
                Some(_) => continue,
                None => break,
            }
        }
        self.connect(key).await
    }

    /// A new connection to `key`.
    pub(crate) async fn connect(&self, key: &Key) -> Result<UpConn, SendError> {
        match connect(&key.path, self.busy_wait).await {
            Ok(io) => Ok(UpConn {
                io,
                buf: BytesMut::with_capacity(READ_CHUNK),
                reused: false,
                idle_since: Instant::now(),
            }),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(SendError::Busy),
            Err(e) => Err(SendError::Down {
                kind: e.kind(),
                detail: e.to_string(),
            }),
        }
    }

    /// Whether a connection to `key` whose exchange ended cleanly may be kept (pooled, or by
    /// its client connection for the next request). Not while a request to the same socket has
    /// waited on a new connection for [`UNBLOCK_EVERY`]: a service that serves one connection
    /// at a time is busy with this one, and closing it lets it take the next; a client that
    /// keeps sending on its own connection would otherwise have the service to itself.
    pub(crate) fn keeps(&self, key: &Key) -> bool {
        self.starving.load(Ordering::Relaxed) == 0 || {
            let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            !idle.starving.contains_key(key)
        }
    }

    /// Returns a connection whose last exchange ended cleanly, with nothing left unread.
    pub(crate) fn checkin(&self, key: &Key, mut conn: UpConn) {
        if !conn.buf.is_empty() {
            return;
        }
        let now = Instant::now();
        conn.idle_since = now;
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if self.starving.load(Ordering::Relaxed) > 0 && idle.starving.contains_key(key) {
            // Closed (outside the lock): see `keeps`.
            drop(idle);
            return;
        }
        if now.duration_since(idle.swept) > SWEEP_EVERY {
            idle.sweep(now);
        }
        let mine = idle.conns.entry(std::thread::current().id()).or_default();
        let list = match mine.get_mut(key) {
            Some(list) => list,
            None => mine.entry(key.clone()).or_default(),
        };
        if list.len() < MAX_IDLE_PER_KEY {
            list.push(conn);
        }
    }

    /// Closes the idle connections past [`IDLE_TIMEOUT`]. Check-ins sweep now and then, but
    /// without traffic nobody checks in: a connection kept idle would keep a single-threaded
    /// service busy (and its backlog filling with the router's own probes) for as long as the
    /// router stayed quiet.
    pub(crate) fn sweep(&self) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.sweep(Instant::now());
    }

    /// Never ends. While it is polled (a request waits for its answer on a new connection),
    /// it closes the idle connections to `key` every [`UNBLOCK_EVERY`]: a service that serves
    /// one connection at a time is busy with one of them, waiting for a request that will not
    /// come, while this one waits in its backlog. Calls to it are then answered one after
    /// another, not one per idle time, and not cut off by `--upstream-timeout`.
    pub(crate) async fn unblock(&self, key: &Key) -> std::convert::Infallible {
        let mut tick = tokio::time::interval_at(Instant::now() + UNBLOCK_EVERY, UNBLOCK_EVERY);
        tick.tick().await;
        // Counted as starving for as long as it waits (dropped with the wait).
        let _starving = Starving::new(self, key);
        loop {
            let closed: Vec<UpConn> = {
                let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
                idle.conns
                    .values_mut()
                    .filter_map(|mine| mine.remove(key))
                    .flatten()
                    .collect()
            };
            // Closed outside the lock.
            drop(closed);
            tick.tick().await;
        }
    }

    /// Idle connections kept now (every thread, every socket).
    #[cfg(test)]
    pub(crate) fn idle_count(&self) -> usize {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.conns
            .values()
            .flat_map(|m| m.values())
            .map(Vec::len)
            .sum()
    }

    /// Sends a request the router makes itself and buffers the whole answer, at most `limit`
    /// body bytes, de-chunked. The response head must come within `timeout` of the request
    /// being sent, and the rest of the body within `timeout` of the head.
    ///
    /// The connection rules (docs/http.md#upstream-connections): a reused idle connection that
    /// turns out closed (the write fails, or it ends before the first byte of an answer) is
    /// replaced by a fresh one, once, and the request sent again if nothing can have been done
    /// twice: the write failed, or the request is idempotent. A connection goes back to the pool
    /// only if neither the request nor the answer said `close` and the answer ended cleanly with
    /// nothing after.
    pub(crate) async fn send(
        &self,
        key: &Key,
        req: &http1::OwnRequest<'_>,
        timeout: Duration,
        limit: usize,
    ) -> Result<Answer, SendError> {
        self.send_within(key, req, timeout, &Budget::new(limit))
            .await
    }

    /// [`send`](Pool::send), the answer's body charged to `budget` as it is read (several
    /// calls whose answers are held together share one): an answer that does not fit is
    /// [`SendError::TooLarge`], and what it had charged is given back. A whole answer's bytes
    /// stay charged; the caller gives them back ([`Budget::give_back`]) if it drops it.
    pub(crate) async fn send_within(
        &self,
        key: &Key,
        req: &http1::OwnRequest<'_>,
        timeout: Duration,
        budget: &Budget,
    ) -> Result<Answer, SendError> {
        let slot = self
            .inflight
            .acquire(&key.path, timeout)
            .await
            .ok_or(SendError::Saturated)?;
        let mut bytes = Vec::with_capacity(256 + req.body.len());
        http1::write_request(&mut bytes, req);
        let mut conn = self.checkout(key).await?;
        let deadline = Instant::now() + timeout;
        // Whether the last attempt's request went out whole: an answer to a request cut short
        // leaves the connection mid-request, never to be kept.
        let mut sent_whole = false;
        let head = loop {
            let asked = Instant::now();
            let fresh = !conn.reused;
            let attempt = async {
                // A request the socket's buffer takes whole goes in one write: only a larger
                // one can be held up by a service that answered early and reads on slowly.
                let wrote = if bytes.len() <= SMALL_REQUEST {
                    conn.io.write_all(&bytes).await.map(|()| true)
                } else {
                    conn.send_unless_answered(&bytes).await
                };
                sent_whole = matches!(wrote, Ok(true));
                let client: Option<(&mut tokio::io::Sink, &mut Interim)> = None;
                let head = if fresh {
                    tokio::select! {
                        biased;
                        head = read_final_head(&mut conn, Exchange::default, None, client) => head,
                        never = self.unblock(key) => match never {},
                    }
                } else {
                    read_final_head(&mut conn, Exchange::default, None, client).await
                };
                match (wrote, head) {
                    // A service may answer before it has read the whole request (a 413 to a
                    // body it will not take) and close: the write then fails, and the answer
                    // waiting is still the service's answer, as the proxy passes it on.
                    (_, Ok(head)) => Ok(head),
                    (Err(e), Err(_)) => Err(Unanswered::Write(e)),
                    (Ok(_), Err(e)) => Err(Unanswered::Head(e)),
                }
            };
            let failed = match tokio::time::timeout_at(deadline, attempt).await {
                Err(_) => return Err(SendError::Timeout),
                Ok(Ok(head)) => break head,
                Ok(Err(failed)) => failed,
            };
            // A write that failed delivered no whole request: nothing was done. A reused
            // connection that closed or answered garbage is replaced if the request may be
            // repeated.
            let head_failed = matches!(
                failed,
                Unanswered::Head(HeadError::Closed | HeadError::Broken(_))
            );
            let again = matches!(failed, Unanswered::Write(_)) || (head_failed && req.idempotent);
            if conn.reused && again {
                conn = self.connect(key).await?;
                continue;
            }
            let as_idle = conn.reused && asked.elapsed() < IDLE_RACE;
            return Err(failed.into_send_error(as_idle));
        };
        drop(slot);
        let deadline = Instant::now() + timeout;
        let mut charged = 0;
        let read = tokio::time::timeout_at(
            deadline,
            read_body(&mut conn, head.framing, budget, &mut charged),
        )
        .await
        .unwrap_or(Err(SendError::Timeout));
        let body = read.inspect_err(|_| budget.give_back(charged))?;
        if head.reusable && !req.close && sent_whole && conn.buf.is_empty() {
            self.checkin(key, conn);
        }
        Ok(Answer {
            status: head.status,
            body,
        })
    }
}

/// Why an attempt got no response head.
enum Unanswered {
    /// Writing the request failed.
    Write(io::Error),
    /// Reading the answer's head failed.
    Head(HeadError),
}

impl Unanswered {
    /// The error reported once no retry is left (`reused`: the connection came from the pool,
    /// and may have been closed as idle just as the request went out).
    fn into_send_error(self, reused: bool) -> SendError {
        match self {
            Unanswered::Write(e) => SendError::Broken(format!("sending the request failed: {e}")),
            Unanswered::Head(e) => e.into_send_error(reused),
        }
    }
}

/// Why no final response head was read.
#[derive(Debug)]
pub(crate) enum HeadError {
    /// The connection ended (or was reset) before the first byte of an answer.
    Closed,
    /// A broken or cut head, or a read error after some bytes of it.
    Broken(String),
    /// Passing an interim head on failed (the client left).
    Interim,
}

impl HeadError {
    /// The error reported once no retry is left (`reused`: the connection came from the pool,
    /// and may have been closed as idle just as the request went out: see [`IDLE_RACE`]).
    pub(crate) fn into_send_error(self, reused: bool) -> SendError {
        match self {
            HeadError::Closed => SendError::Closed { reused },
            HeadError::Broken(e) => SendError::Broken(e),
            HeadError::Interim => {
                SendError::Broken("the client left while an interim answer was passed on".into())
            }
        }
    }
}

/// Interim (1xx) heads on their way to a client: the bytes not written yet, and how many
/// were.
#[derive(Debug, Default)]
pub(crate) struct Interim {
    /// Not written yet: an interim head is whole on the client's side only once this is
    /// empty.
    pub pending: Vec<u8>,
    /// Bytes written to the client.
    pub sent: u64,
}

/// Most interim (1xx) heads one exchange may bring before its final head.
const MAX_INTERIM_HEADS: usize = 32;

/// Reads up to the final response head: the one loop that does, for every exchange with a
/// service. Each interim (1xx) head is consumed and, rewritten for the client into `out`,
/// written to `client` if there is one, through its pending bytes; the final head is consumed
/// and, rewritten, left in `out`. `ex` is asked at each parse: the client connection may start
/// closing while the service thinks.
///
/// Cancel-safe: the service's bytes wait in `conn.buf`, and an interim head not yet written
/// whole waits in the client's pending bytes, which the next call writes first.
pub(crate) async fn read_final_head<W: AsyncWrite + Unpin>(
    conn: &mut UpConn,
    ex: impl Fn() -> Exchange,
    mut out: Option<&mut Vec<u8>>,
    mut client: Option<(&mut W, &mut Interim)>,
) -> Result<http1::ResponseHead, HeadError> {
    // Interim heads read so far: a service may send a few (100 Continue, 103 Early Hints),
    // not an endless stream of them before its answer.
    let mut interims = 0usize;
    let mut heard = false;
    loop {
        if let Some((client, interim)) = client.as_mut() {
            // Each write is whole or not at all: what is left survives a cancellation.
            while !interim.pending.is_empty() {
                match client.write(&interim.pending).await {
                    Ok(n) if n > 0 => {
                        interim.pending.drain(..n);
                        interim.sent += n as u64;
                    }
                    _ => return Err(HeadError::Interim),
                }
            }
        }
        if let Some(out) = out.as_deref_mut() {
            out.clear();
        }
        // Nothing read yet (the request has just gone out): nothing to parse.
        let parsed = if conn.buf.is_empty() {
            Ok(None)
        } else {
            http1::parse_response(&conn.buf, &ex(), out.as_deref_mut())
        };
        match parsed {
            Ok(Some(h)) => {
                conn.buf.advance(h.head_len);
                if !http1::is_interim(h.status) {
                    return Ok(h);
                }
                heard = true;
                interims += 1;
                if interims > MAX_INTERIM_HEADS {
                    return Err(HeadError::Broken(format!(
                        "more than {MAX_INTERIM_HEADS} interim (1xx) answers before the final one"
                    )));
                }
                if let (Some((_, interim)), Some(out)) = (client.as_mut(), out.as_deref()) {
                    interim.pending.extend_from_slice(out);
                }
                continue;
            }
            Ok(None) => {}
            Err(e) => return Err(HeadError::Broken(e.to_string())),
        }
        // A reset with nothing received is a close too: a peer that closes with our request
        // unread in its buffer resets the connection.
        match conn.fill().await {
            Ok(0) | Err(_) if !heard && conn.buf.is_empty() => return Err(HeadError::Closed),
            Ok(0) if conn.buf.is_empty() => {
                return Err(HeadError::Broken(
                    "the connection closed after an interim (1xx) answer, before the final one"
                        .into(),
                ));
            }
            Ok(0) => {
                return Err(HeadError::Broken(
                    "the connection closed in the middle of the response head".into(),
                ));
            }
            Ok(_) => {}
            Err(e) => return Err(HeadError::Broken(e.to_string())),
        }
    }
}

/// Reads a whole body, charging its bytes to `budget` as they are taken (`charged` counts
/// them, for the caller to give back on failure); the buffer keeps what follows it.
async fn read_body(
    conn: &mut UpConn,
    framing: Framing,
    budget: &Budget,
    charged: &mut usize,
) -> Result<BytesMut, SendError> {
    let too_big = || SendError::TooLarge {
        limit: budget.limit(),
    };
    let broken = |e: io::Error| SendError::Broken(e.to_string());
    let mut charge = |n: usize| {
        let fits = budget.take(n);
        if fits {
            *charged += n;
        }
        fits
    };
    match framing {
        Framing::Empty => Ok(BytesMut::new()),
        Framing::Length(n) => {
            // The whole length is charged before a byte of it is read.
            let n = usize::try_from(n)
                .ok()
                .filter(|n| charge(*n))
                .ok_or_else(too_big)?;
            while conn.buf.len() < n {
                if conn.fill().await.map_err(broken)? == 0 {
                    return Err(SendError::Broken("the answer was cut short".into()));
                }
            }
            Ok(conn.buf.split_to(n))
        }
        Framing::Chunked => {
            let mut scanner = ChunkedDecoder::default();
            let mut body = BytesMut::new();
            loop {
                let mut over = false;
                let used = scanner
                    .advance(&conn.buf, |d| {
                        over = over || !charge(d.len());
                        if !over {
                            body.extend_from_slice(d);
                        }
                    })
                    .map_err(|e| SendError::Broken(e.to_string()))?;
                conn.buf.advance(used);
                if over {
                    return Err(too_big());
                }
                if scanner.is_done() {
                    return Ok(body);
                }
                if conn.fill().await.map_err(broken)? == 0 {
                    return Err(SendError::Broken("the answer was cut short".into()));
                }
            }
        }
        Framing::UntilClose => {
            loop {
                let before = conn.buf.len();
                let n = conn.fill().await.map_err(broken)?;
                if n == 0 {
                    break;
                }
                if !charge(conn.buf.len() - before) {
                    return Err(too_big());
                }
            }
            Ok(conn.buf.split())
        }
    }
}

/// What the answers of one request may take together, in bytes: a single call's limit, or
/// `--max-body` shared by the calls of a `/rpc` batch (whose answers are all held until the
/// reply goes out). Bytes are charged as they are read and given back when dropped.
pub(crate) struct Budget {
    limit: usize,
    left: std::sync::atomic::AtomicUsize,
}

impl Budget {
    pub(crate) fn new(limit: usize) -> Budget {
        Budget {
            limit,
            left: std::sync::atomic::AtomicUsize::new(limit),
        }
    }

    /// The whole budget.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// What is not charged now.
    pub(crate) fn left(&self) -> usize {
        self.left.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Charges `n` bytes; false (and nothing charged) if fewer than `n` are left.
    pub(crate) fn take(&self, n: usize) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        self.left
            .fetch_update(Relaxed, Relaxed, |left| left.checked_sub(n))
            .is_ok()
    }

    /// Gives back `n` charged bytes (an answer dropped, or one that failed).
    pub(crate) fn give_back(&self, n: usize) {
        self.left.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests;
