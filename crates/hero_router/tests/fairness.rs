//! Fair share of connections (CONTRACT §13), tried through real sockets: a burst of two
//! thousand connects from one client address cannot keep a client from another address out.
//! The other address is 127.0.0.2: Linux routes all of 127/8 to the loopback, so a client
//! socket bound there is another client to the router.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::raw::{find, get};
use common::{Daemon, serve_config, start_daemon};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

const DEADLINE: Duration = Duration::from_secs(30);

/// A connection to the router from `ip` (a loopback address).
async fn connect_from(ip: &str, d: &Daemon) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(SocketAddr::new(ip.parse().unwrap(), 0)).unwrap();
    s.connect(d.tcp).await.unwrap()
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
