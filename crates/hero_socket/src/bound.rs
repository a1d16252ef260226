//! Which socket files have a live kernel socket bound to them, from the kernel's socket table
//! (`NETLINK_SOCK_DIAG`, `UNIX_DIAG_VFS`).
//!
//! A connect probe cannot tell a dead socket file from one whose owner has called `bind()` but
//! not yet `listen()`: both refuse. The kernel can: a dead file has no socket bound to it any
//! more (its owner closed it, or died), while a starting service's socket is bound from the
//! instant the file appears. And once no socket is bound to an inode, none ever will be again:
//! `bind()` always creates a new file. So "refused and not bound" proves a file dead.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::io;

use rustix::net::netlink::{SOCK_DIAG, SocketAddrNetlink};
use rustix::net::{
    AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType, recv, sendto, socket_with,
};

use crate::identity::Identity;
use crate::probe::ConnectOutcome;

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const AF_UNIX: u8 = 1;
const UDIAG_SHOW_VFS: u32 = 0x2;
const UDIAG_SHOW_RQLEN: u32 = 0x10;
const UNIX_DIAG_VFS: u16 = 1;
const UNIX_DIAG_RQLEN: u16 = 4;
const SOCK_STREAM: u8 = 1;
const TCP_ESTABLISHED: u8 = 1;
const TCP_CLOSE: u8 = 7;
const TCP_LISTEN: u8 = 10;
const NLMSG_HDRLEN: usize = 16;
const UNIX_DIAG_MSG_LEN: usize = 16;

/// Every socket file that has a kernel socket bound to it, by `(device, inode)`, with what a
/// connect to it would meet. The kernel reports 32-bit inode numbers and its internal device
/// encoding.
#[derive(Debug, Default, Clone)]
pub struct BoundSockets {
    vfs: HashMap<(u32, u32), Bound>,
}

/// One bound socket, as the kernel's table shows it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Bound {
    /// `SOCK_STREAM`, `SOCK_DGRAM`, `SOCK_SEQPACKET`.
    kind: u8,
    /// `TCP_LISTEN` once `listen()` was called.
    state: u8,
    /// For a listener: connections waiting to be accepted, and the backlog.
    queue: Option<(u32, u32)>,
}

// === impl BoundSockets ===

impl BoundSockets {
    /// Asks the kernel for every bound Unix socket on the system.
    pub fn query() -> io::Result<BoundSockets> {
        let fd = socket_with(
            AddressFamily::NETLINK,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC,
            Some(SOCK_DIAG),
        )?;
        sendto(
            &fd,
            &request(),
            SendFlags::empty(),
            &SocketAddrNetlink::new(0, 0),
        )?;
        let mut out = BoundSockets::default();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let (n, _) = recv(&fd, &mut buf[..], RecvFlags::empty())?;
            if n == 0 {
                return Ok(out);
            }
            if out.parse(&buf[..n])? {
                return Ok(out);
            }
        }
    }

    /// True if a kernel socket is bound to the file `id` names. A 32-bit inode collision can
    /// only make this say "bound" wrongly, which keeps a file: the safe direction.
    pub fn is_bound(&self, id: &Identity) -> bool {
        self.get(id).is_some()
    }

    /// What a non-blocking stream `connect(2)` to the socket file `id` would return, by the
    /// kernel's own rules (`unix_stream_connect`), without connecting: a stream socket bound
    /// there but not listening → refused; a stream listener whose accept queue is over its
    /// backlog → busy (`EAGAIN`); any other stream listener → connected. `None` where the table
    /// cannot say: another socket type, or nothing bound there. (A dump taken while sockets come
    /// and go can skip entries, so absence proves nothing here; a real connect must tell.)
    /// Permission (write access to the file) is not part of it: check that apart.
    pub fn connect_outcome(&self, id: &Identity) -> Option<ConnectOutcome> {
        let b = self.get(id)?;
        match (b.kind, b.state, b.queue) {
            (SOCK_STREAM, TCP_LISTEN, Some((waiting, backlog))) if waiting > backlog => {
                Some(ConnectOutcome::Busy)
            }
            (SOCK_STREAM, TCP_LISTEN, Some(_)) => Some(ConnectOutcome::Connected),
            (SOCK_STREAM, TCP_LISTEN, None) => None,
            (SOCK_STREAM, TCP_CLOSE, _) => Some(ConnectOutcome::Refused),
            _ => None,
        }
    }

    fn get(&self, id: &Identity) -> Option<&Bound> {
        let (major, minor) = ((id.dev >> 32) as u32, id.dev as u32);
        let ino = id.ino as u32;
        // The kernel's internal dev_t (MKDEV: 12-bit major above a 20-bit minor), and the
        // userspace encoding, in case a kernel reports that one.
        let kernel = (major << 20) | (minor & 0xfffff);
        let user = (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12);
        self.vfs
            .get(&(kernel, ino))
            .or_else(|| self.vfs.get(&(user, ino)))
    }

    /// Bound sockets in the table.
    pub fn len(&self) -> usize {
        self.vfs.len()
    }

    /// True if the table holds no bound socket.
    pub fn is_empty(&self) -> bool {
        self.vfs.is_empty()
    }

    /// Parses one datagram of answers; `Ok(true)` at the end of the dump.
    fn parse(&mut self, mut data: &[u8]) -> io::Result<bool> {
        while data.len() >= NLMSG_HDRLEN {
            let len = u32_at(data, 0) as usize;
            let kind = u16::from_ne_bytes([data[4], data[5]]);
            if len < NLMSG_HDRLEN || len > data.len() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "truncated sock_diag message",
                ));
            }
            match kind {
                NLMSG_DONE => return Ok(true),
                NLMSG_ERROR => {
                    let errno = if len >= NLMSG_HDRLEN + 4 {
                        i32::from_ne_bytes(data[16..20].try_into().expect("4 bytes"))
                    } else {
                        0
                    };
                    return Err(io::Error::from_raw_os_error(-errno));
                }
                SOCK_DIAG_BY_FAMILY => self.parse_attrs(&data[NLMSG_HDRLEN.min(len)..len]),
                _ => {}
            }
            data = &data[align4(len).min(data.len())..];
        }
        Ok(false)
    }

    fn parse_attrs(&mut self, msg: &[u8]) {
        let Some(head) = msg.get(..UNIX_DIAG_MSG_LEN) else {
            return;
        };
        let mut bound = Bound {
            kind: head[1],
            state: head[2],
            queue: None,
        };
        let mut vfs = None;
        let mut attrs = &msg[UNIX_DIAG_MSG_LEN..];
        while attrs.len() >= 4 {
            let len = usize::from(u16::from_ne_bytes([attrs[0], attrs[1]]));
            let kind = u16::from_ne_bytes([attrs[2], attrs[3]]);
            if len < 4 || len > attrs.len() {
                break;
            }
            if kind == UNIX_DIAG_VFS && len >= 12 {
                vfs = Some((u32_at(attrs, 8), u32_at(attrs, 4)));
            }
            if kind == UNIX_DIAG_RQLEN && len >= 12 {
                bound.queue = Some((u32_at(attrs, 4), u32_at(attrs, 8)));
            }
            attrs = &attrs[align4(len).min(attrs.len())..];
        }
        let Some(key) = vfs else { return };
        // A connection a listener accepted carries the listener's path too (for getsockname),
        // so one file can have several entries. The listener (or the socket that bound the
        // file and has not listened yet) says what a connect meets; an accepted connection
        // only says the file was bound, and only counts when nothing better is known.
        match self.vfs.entry(key) {
            Entry::Vacant(slot) => {
                slot.insert(bound);
            }
            Entry::Occupied(mut slot) if slot.get().state == TCP_ESTABLISHED => {
                slot.insert(bound);
            }
            Entry::Occupied(_) => {}
        }
    }
}

fn request() -> Vec<u8> {
    let mut req = Vec::with_capacity(40);
    req.extend_from_slice(&40u32.to_ne_bytes());
    req.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    req.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    req.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel
    req.extend_from_slice(&[AF_UNIX, 0, 0, 0]); // family, protocol, padding
    req.extend_from_slice(&u32::MAX.to_ne_bytes()); // every state
    req.extend_from_slice(&0u32.to_ne_bytes()); // any inode
    req.extend_from_slice(&(UDIAG_SHOW_VFS | UDIAG_SHOW_RQLEN).to_ne_bytes());
    req.extend_from_slice(&[0xff; 8]); // no cookie
    req
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixListener;

    use rustix::net::{SocketAddrUnix, bind};

    use super::*;
    use crate::identity::stat_nofollow;

    #[test]
    fn listening_bound_and_dead_sockets() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("live.sock");
        let _l = UnixListener::bind(&live).unwrap();
        let starting = dir.path().join("starting.sock");
        let fd = socket_with(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        bind(&fd, &SocketAddrUnix::new(&starting).unwrap()).unwrap();
        let dead = dir.path().join("dead.sock");
        drop(UnixListener::bind(&dead).unwrap());

        let bound = BoundSockets::query().unwrap();
        assert!(bound.is_bound(&stat_nofollow(&live).unwrap().identity));
        assert!(
            bound.is_bound(&stat_nofollow(&starting).unwrap().identity),
            "bound, not listening"
        );
        assert!(!bound.is_bound(&stat_nofollow(&dead).unwrap().identity));
        // What a connect would meet, told by the table alone.
        let outcome =
            |p: &std::path::Path| bound.connect_outcome(&stat_nofollow(p).unwrap().identity);
        assert_eq!(outcome(&live), Some(ConnectOutcome::Connected));
        assert_eq!(outcome(&starting), Some(ConnectOutcome::Refused));
        assert_eq!(outcome(&dead), None, "absence proves nothing");
        drop(fd);
        let bound = BoundSockets::query().unwrap();
        assert!(
            !bound.is_bound(&stat_nofollow(&starting).unwrap().identity),
            "closed: no longer bound"
        );
    }

    #[test]
    fn accepted_connections_do_not_hide_their_listener() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rpc.sock");
        let listener = UnixListener::bind(&path).unwrap();
        // Accepted connections carry the listener's path; whatever order the kernel lists
        // them in, the listener decides.
        let clients: Vec<_> = (0..8)
            .map(|_| std::os::unix::net::UnixStream::connect(&path).unwrap())
            .collect();
        let accepted: Vec<_> = (0..8).map(|_| listener.accept().unwrap()).collect();
        let id = stat_nofollow(&path).unwrap().identity;
        let bound = BoundSockets::query().unwrap();
        assert_eq!(bound.connect_outcome(&id), Some(ConnectOutcome::Connected));

        // With the listener closed, only accepted connections name the file: nothing is
        // listening there, and nothing can listen there again, but the table does not guess.
        drop(listener);
        let bound = BoundSockets::query().unwrap();
        assert_eq!(bound.connect_outcome(&id), None);
        drop((clients, accepted));
    }

    #[test]
    fn malformed_answers_are_errors_not_panics() {
        let mut b = BoundSockets::default();
        assert!(b.parse(&[0u8; 3]).is_ok());
        let mut bad = vec![0u8; 16];
        bad[0] = 200; // length past the end
        assert!(b.parse(&bad).is_err());
        let mut short_attr = vec![0u8; 36];
        short_attr[0] = 36;
        short_attr[4] = SOCK_DIAG_BY_FAMILY as u8;
        short_attr[32] = 2; // attribute shorter than its header
        assert!(b.parse(&short_attr).is_ok());
    }
}
