//! Fair share of connections (docs/access-and-security.md#fair-connections), tried through real
//! sockets: one client address holding a thousand streams, or sending a burst of two thousand
//! connects, cannot keep a client from another address out. The other address is 127.0.0.2: Linux
//! routes all of 127/8 to the loopback, so a client socket bound there is another client to the
//! router.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::raw::{find, get};
use common::{Daemon, serve_config, start_daemon};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

const DEADLINE: Duration = Duration::from_secs(30);
/// The default `--max-connections-per-client`.
const PER_CLIENT: usize = 64;

/// A connection to the router's service listener from `ip` (a loopback address).
async fn connect_from(ip: &str, d: &Daemon) -> TcpStream {
    connect_to(ip, d.tcp).await
}

/// A connection to `addr` from `ip`.
async fn connect_to(ip: &str, addr: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(SocketAddr::new(ip.parse().unwrap(), 0)).unwrap();
    s.connect(addr).await.unwrap()
}

/// The dashboard's feed (`/api/events` on the admin listener) from `ip`, through an
/// independent HTTP/1.1 client (hyper's), after its first frame.
async fn dashboard_feed(ip: &str, d: &Daemon) -> hyper::body::Incoming {
    let tcp = connect_to(ip, d.admin_tcp.unwrap()).await;
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = http::Request::builder()
        .uri("/api/events")
        .header("host", "localhost")
        .header("accept", "text/event-stream")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = tx.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let first = tokio::time::timeout(DEADLINE, body.frame()).await.unwrap();
    assert!(matches!(first, Some(Ok(_))), "{first:?}");
    body
}

/// Sends `GET path` on `s` and reads the response head: its status, and the bytes read past
/// it. `None` if the connection ended first.
async fn get_head(s: &mut TcpStream, path: &str) -> Option<(u16, Vec<u8>)> {
    s.write_all(get(path).as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let status = std::str::from_utf8(&buf[9..12]).unwrap().parse().unwrap();
            return Some((status, buf.split_off(end + 4)));
        }
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout(DEADLINE, s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            Ok(_) => return None,
            Err(_) => panic!("no response head within {DEADLINE:?}"),
        }
    }
}

/// A proxied stream of server-sent events, read raw; its events are counted by their `data:`
/// lines.
struct Events {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Events {
    /// Opens `path` from `ip`; the answer must be a 200 whose first event arrives.
    async fn open(ip: &str, d: &Daemon, path: &str) -> Events {
        let mut s = connect_from(ip, d).await;
        let (status, buf) = get_head(&mut s, path).await.expect("a response head");
        assert_eq!(status, 200, "{path} from {ip}");
        let mut e = Events { s, buf };
        assert!(e.next().await, "{path} from {ip}: no first event");
        e
    }

    /// Waits for the next event: true, or false when the stream ends first.
    async fn next(&mut self) -> bool {
        tokio::time::timeout(DEADLINE, async {
            loop {
                if let Some(at) = find(&self.buf, b"data:") {
                    self.buf.drain(..at + 5);
                    return true;
                }
                let mut chunk = [0u8; 4096];
                match self.s.read(&mut chunk).await {
                    Ok(n) if n > 0 => self.buf.extend_from_slice(&chunk[..n]),
                    _ => return false,
                }
            }
        })
        .await
        .expect("neither an event nor the end within the deadline")
    }

    /// True if the stream still delivers: past what arrived so far, a new event comes.
    async fn alive(&mut self) -> bool {
        self.buf.clear();
        let mut chunk = [0u8; 4096];
        loop {
            match self.s.try_read(&mut chunk) {
                Ok(0) => return false,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => return false,
            }
        }
        self.next().await
    }

    /// Waits until the stream ends (the router closed it); false if it goes on past the
    /// deadline.
    async fn ended(&mut self) -> bool {
        tokio::time::timeout(DEADLINE, async { while self.next().await {} })
            .await
            .is_ok()
    }
}

/// True once the router closes `s` (which sent nothing) within the deadline.
async fn closes(s: &mut TcpStream) -> bool {
    let mut chunk = [0u8; 1024];
    loop {
        match tokio::time::timeout(DEADLINE, s.read(&mut chunk)).await {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

/// Raises this process's RLIMIT_NOFILE towards `want`; returns the soft limit it got.
fn raise_nofile(want: u64) -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let hard = getrlimit(Resource::Nofile).maximum.unwrap_or(u64::MAX);
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(want.min(hard)),
            maximum: Some(hard),
        },
    );
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// 1,030 server-sent event streams from 127.0.0.1 (more than `--max-connections`, 1024)
/// used to take every slot of the listener, and every other client got `503 too many
/// connections` until they closed. Now 127.0.0.1 keeps its newest 64 streams, the older ones
/// end, and a client from 127.0.0.2 is answered at once, several times in a row.
#[tokio::test]
async fn one_clients_streams_do_not_lock_out_another_address() {
    // Before the fix each held stream costs this process four descriptors: the test's socket,
    // the router's two, the service's one.
    let nofile = raise_nofile(16_384);
    let streams = 1030.min((nofile.saturating_sub(512) / 4) as usize);
    assert!(
        streams > 2 * PER_CLIENT,
        "RLIMIT_NOFILE is {nofile}: room for only {streams} streams, not above 2 × {PER_CLIENT}"
    );
    let root = tempfile::tempdir().unwrap();
    let _svc =
        hero_example_service::spawn(hero_example_service::ServiceConfig::new(root.path(), "svc"))
            .await
            .unwrap();
    let d = start_daemon(serve_config(root.path(), &[])).await;
    // An event at once, then none for ten minutes: each stream outlives the test.
    let path = "/svc/rpc/sse?n=1000000&interval_ms=600000";
    let (ended_tx, mut ended) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut answered: usize = 0;
    let mut readers = Vec::new();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for _ in 0..streams {
        let mut s = connect_from("127.0.0.1", &d).await;
        let Some((status, _)) = get_head(&mut s, path).await else {
            *statuses.entry(0).or_default() += 1;
            continue;
        };
        *statuses.entry(status).or_default() += 1;
        if status != 200 {
            continue;
        }
        answered += 1;
        // Each stream is read to its end, which is reported.
        let ended_tx = ended_tx.clone();
        readers.push(tokio::spawn(async move {
            let mut chunk = [0u8; 1024];
            while matches!(s.read(&mut chunk).await, Ok(n) if n > 0) {}
            let _ = ended_tx.send(());
        }));
    }

    let mut waits = Vec::new();
    for i in 0..5 {
        let started = Instant::now();
        let mut s = connect_from("127.0.0.2", &d).await;
        let head = get_head(&mut s, "/health").await;
        waits.push(started.elapsed());
        assert_eq!(
            head.map(|(status, _)| status),
            Some(200),
            "request {i} from 127.0.0.2 while 127.0.0.1 opened {streams} streams \
             (answers: {statuses:?})"
        );
    }
    eprintln!(
        "127.0.0.1 opened {streams} streams, answers {statuses:?}; 127.0.0.2 waited {waits:?}"
    );

    // 127.0.0.1 keeps its newest streams; its older ones ended.
    let shed = answered.saturating_sub(PER_CLIENT);
    tokio::time::timeout(DEADLINE, async {
        for _ in 0..shed {
            ended.recv().await.unwrap();
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{shed} of {answered} streams should have ended"));
    assert!(ended.try_recv().is_err(), "more than {shed} streams ended");
    // Proxied streams run through shutdown until their clients leave.
    for r in readers {
        r.abort();
    }
    d.stop().await;
}

/// A client at its limit loses its own oldest connection: a stream if all of them are
/// streams, one waiting for a request head before any stream. Another client's stream at the
/// same time goes on, and so do the client's newer ones. A shed `/api/events` stream ends
/// cleanly (its last chunk), as at shutdown.
#[tokio::test]
async fn a_client_at_its_limit_loses_its_own_oldest_connection() {
    let root = tempfile::tempdir().unwrap();
    let _svc =
        hero_example_service::spawn(hero_example_service::ServiceConfig::new(root.path(), "svc"))
            .await
            .unwrap();
    let d = start_daemon(serve_config(
        root.path(),
        &[
            "--max-connections-per-client",
            "3",
            "--header-timeout",
            "1h",
        ],
    ))
    .await;
    let path = "/svc/rpc/sse?n=1000000&interval_ms=20";
    let mut b1 = Events::open("127.0.0.2", &d, path).await;

    let mut a1 = Events::open("127.0.0.1", &d, path).await;
    let mut a2 = Events::open("127.0.0.1", &d, path).await;
    let mut a3 = Events::open("127.0.0.1", &d, path).await;
    // A fourth: the oldest, a1, ends.
    let mut a4 = Events::open("127.0.0.1", &d, path).await;
    assert!(
        a1.ended().await,
        "a1, the client's oldest stream, was not shed"
    );
    for (name, e) in [
        ("a2", &mut a2),
        ("a3", &mut a3),
        ("a4", &mut a4),
        ("b1", &mut b1),
    ] {
        assert!(e.alive().await, "{name} ended with a1");
    }

    // A connection that has sent nothing yet waits for its head; its client is at the limit
    // with three streams, so the oldest stream, a2, goes.
    let mut waiting = connect_from("127.0.0.1", &d).await;
    assert!(
        a2.ended().await,
        "a2, the client's oldest stream, was not shed"
    );
    // A new stream now sheds the waiting connection, not the older streams.
    let mut a5 = Events::open("127.0.0.1", &d, path).await;
    assert!(
        closes(&mut waiting).await,
        "the connection waiting for its head was not shed"
    );
    for (name, e) in [
        ("a3", &mut a3),
        ("a4", &mut a4),
        ("a5", &mut a5),
        ("b1", &mut b1),
    ] {
        assert!(e.alive().await, "{name} ended");
    }
    // The limit is per listener, and the router's own feed, when shed, ends with its last
    // chunk (a complete message, as at shutdown), not cut.
    let mut f1 = dashboard_feed("127.0.0.1", &d).await;
    let _f2 = dashboard_feed("127.0.0.1", &d).await;
    let _f3 = dashboard_feed("127.0.0.1", &d).await;
    assert!(
        a3.alive().await,
        "the admin listener's connections count apart"
    );
    let _f4 = dashboard_feed("127.0.0.1", &d).await;
    tokio::time::timeout(DEADLINE, async {
        while let Some(frame) = f1.frame().await {
            assert!(frame.is_ok(), "f1 was cut, not ended: {frame:?}");
        }
    })
    .await
    .expect("f1, the client's oldest feed, was not shed");
    // Proxied streams run through shutdown until their clients leave.
    drop((a3, a4, a5, b1));
    d.stop().await;
}

/// A connection in the middle of an upload is shed like a stream: it ends at once, and does
/// not keep its descriptor past its client's limit until the upload is done.
#[tokio::test]
async fn a_shed_upload_ends_at_once() {
    let root = tempfile::tempdir().unwrap();
    let _svc =
        hero_example_service::spawn(hero_example_service::ServiceConfig::new(root.path(), "svc"))
            .await
            .unwrap();
    let d = start_daemon(serve_config(
        root.path(),
        &["--max-connections-per-client", "1"],
    ))
    .await;
    let mut upload = connect_from("127.0.0.1", &d).await;
    upload
        .write_all(
            b"POST /svc/rpc/upload HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\n\
              Content-Length: 10485760\r\n\r\n",
        )
        .await
        .unwrap();
    // The router says 100 Continue when it starts on the body: the upload is under way.
    let mut got = Vec::new();
    while find(&got, b"\r\n\r\n").is_none() {
        let mut chunk = [0u8; 256];
        let n = tokio::time::timeout(DEADLINE, upload.read(&mut chunk))
            .await
            .expect("100 Continue")
            .unwrap();
        assert!(n > 0, "closed before 100 Continue");
        got.extend_from_slice(&chunk[..n]);
    }
    assert!(
        got.starts_with(b"HTTP/1.1 100 "),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    upload.write_all(&[b'x'; 1024]).await.unwrap();

    let mut next = connect_from("127.0.0.1", &d).await;
    let head = get_head(&mut next, "/health").await;
    assert_eq!(head.map(|(status, _)| status), Some(200));
    assert!(closes(&mut upload).await, "the shed upload goes on");
    d.stop().await;
}

/// Two thousand connects from 127.0.0.1 at once, none waited for, used to overflow the
/// listen backlog of 128: SYNs were dropped, and a client from 127.0.0.2 waited for its SYN to
/// be sent again a second later. The backlog is now the kernel's `somaxconn` (read from the
/// kernel's own view of the listener), and the other client's connection needs no
/// retransmission (its TCP_INFO says so).
#[tokio::test]
async fn a_burst_of_connects_leaves_room_for_another_address() {
    raise_nofile(16_384);
    let root = tempfile::tempdir().unwrap();
    let d = start_daemon(serve_config(root.path(), &[])).await;
    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .map_or(4096, |t| t.trim().parse().unwrap());
    let port = d.tcp.port();
    let listening = diag::tcp_sockets()
        .into_iter()
        .find(|s| s.state == diag::LISTEN && s.src == d.tcp)
        .expect("the router's listener");
    let burst = 2000.min(somaxconn.saturating_sub(64) as usize);
    assert!(
        burst == 2000 || somaxconn < 2064,
        "a burst of {burst} (somaxconn is {somaxconn})"
    );

    let mut pending = Vec::with_capacity(burst);
    for _ in 0..burst {
        use rustix::net::{AddressFamily, SocketFlags, SocketType, connect, socket_with};
        let fd = socket_with(
            AddressFamily::INET,
            SocketType::STREAM,
            SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        match connect(&fd, &d.tcp) {
            Ok(()) | Err(rustix::io::Errno::INPROGRESS) => {}
            Err(e) => panic!("connect: {e}"),
        }
        pending.push(fd);
    }
    let started = Instant::now();
    let mut other = connect_from("127.0.0.2", &d).await;
    let connected = started.elapsed();
    let local = other.local_addr().unwrap();
    let head = get_head(&mut other, "/health").await;
    let answered = started.elapsed();
    let sockets = diag::tcp_sockets();
    let retransmits = |src: SocketAddr| {
        sockets
            .iter()
            .find(|s| s.src == src && s.dst.port() == port)
            .map(|s| s.total_retrans)
    };
    let other_retrans = retransmits(local).expect("the other client's socket");
    let burst_retrans: u32 = pending
        .iter()
        .filter_map(|fd| rustix::net::getsockname(fd).ok())
        .filter_map(|a| SocketAddr::try_from(a).ok())
        .filter_map(retransmits)
        .sum();
    eprintln!(
        "backlog {} (somaxconn {somaxconn}); after {burst} connects from 127.0.0.1, 127.0.0.2 \
         connected in {connected:?} and was answered in {answered:?}, {other_retrans} \
         retransmissions; the burst's sockets retransmitted {burst_retrans} times",
        listening.wqueue
    );
    assert_eq!(
        listening.wqueue, somaxconn,
        "the listen backlog is not somaxconn"
    );
    assert_eq!(head.map(|(status, _)| status), Some(200));
    assert_eq!(
        other_retrans, 0,
        "127.0.0.2 sent its SYN again after {burst} connects from 127.0.0.1"
    );
    drop(pending);
    d.stop().await;
}

/// The kernel's view of TCP sockets (`ss`'s source: NETLINK_SOCK_DIAG), for what no socket
/// option tells without `unsafe`: a listener's backlog and a connection's retransmissions.
mod diag {
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};

    use rustix::net::{
        AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType, netlink, recv, send,
        socket_with,
    };

    /// `TCP_LISTEN`.
    pub(super) const LISTEN: u8 = 10;
    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    const NLM_F_REQUEST: u16 = 1;
    const NLM_F_DUMP: u16 = 0x300;
    const NLMSG_ERROR: u16 = 2;
    const NLMSG_DONE: u16 = 3;
    const INET_DIAG_INFO: u16 = 2;
    /// `tcp_info.tcpi_total_retrans`.
    const TOTAL_RETRANS_AT: usize = 100;

    /// One IPv4 TCP socket.
    #[derive(Debug)]
    pub(super) struct TcpSocket {
        pub(super) state: u8,
        pub(super) src: SocketAddr,
        pub(super) dst: SocketAddr,
        /// A listener's backlog (`ss`'s Send-Q); a connection's unsent bytes.
        pub(super) wqueue: u32,
        /// Segments sent again, SYNs included.
        pub(super) total_retrans: u32,
    }

    /// Every IPv4 TCP socket of this network namespace.
    pub(super) fn tcp_sockets() -> Vec<TcpSocket> {
        let fd = socket_with(
            AddressFamily::NETLINK,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC,
            Some(netlink::SOCK_DIAG),
        )
        .unwrap();
        let mut req = Vec::new();
        req.extend_from_slice(&72u32.to_ne_bytes());
        req.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        req.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        req.extend_from_slice(&[0; 8]); // sequence number, port id
        // inet_diag_req_v2: AF_INET, IPPROTO_TCP, the tcp_info extension, every state.
        req.extend_from_slice(&[2, 6, 1 << (INET_DIAG_INFO - 1), 0]);
        req.extend_from_slice(&u32::MAX.to_ne_bytes());
        req.extend_from_slice(&[0; 48]); // inet_diag_sockid: any
        send(&fd, &req, SendFlags::empty()).unwrap();
        let mut found = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let (n, _) = recv(&fd, &mut buf[..], RecvFlags::empty()).unwrap();
            let mut at = 0;
            while at + 16 <= n {
                let len = u32::from_ne_bytes(buf[at..at + 4].try_into().unwrap()) as usize;
                let kind = u16::from_ne_bytes(buf[at + 4..at + 6].try_into().unwrap());
                match kind {
                    NLMSG_DONE => return found,
                    NLMSG_ERROR => panic!("sock_diag refused the request"),
                    _ => found.push(parse(&buf[at + 16..at + len])),
                }
                at += len.next_multiple_of(4);
            }
        }
    }

    /// An `inet_diag_msg` and its attributes.
    fn parse(msg: &[u8]) -> TcpSocket {
        let u32_at = |b: &[u8], i: usize| u32::from_ne_bytes(b[i..i + 4].try_into().unwrap());
        let addr = |port: usize, ip: usize| {
            SocketAddr::new(
                IpAddr::V4(Ipv4Addr::new(
                    msg[ip],
                    msg[ip + 1],
                    msg[ip + 2],
                    msg[ip + 3],
                )),
                u16::from_be_bytes([msg[port], msg[port + 1]]),
            )
        };
        let mut total_retrans = 0;
        let mut at = 72;
        while at + 4 <= msg.len() {
            let len = u16::from_ne_bytes([msg[at], msg[at + 1]]) as usize;
            let kind = u16::from_ne_bytes([msg[at + 2], msg[at + 3]]);
            if len < 4 {
                break;
            }
            let data = &msg[at + 4..(at + len).min(msg.len())];
            if kind == INET_DIAG_INFO && data.len() >= TOTAL_RETRANS_AT + 4 {
                total_retrans = u32_at(data, TOTAL_RETRANS_AT);
            }
            at += len.next_multiple_of(4);
        }
        TcpSocket {
            state: msg[1],
            src: addr(4, 8),
            dst: addr(6, 24),
            wqueue: u32_at(msg, 60),
            total_retrans,
        }
    }
}
