//! Raw HTTP/1.1 on both sides of the router, byte for byte: a scripted upstream that records
//! exactly what it receives, and a client that writes exactly what a test says.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener, UnixStream};

use super::{Daemon, service_dir};

/// What a scripted upstream does with the n-th request on a connection.
pub enum Reply {
    /// Write these bytes and wait for the next request.
    Send(&'static [u8]),
    /// Write these bytes, then close the connection.
    SendAndClose(&'static [u8]),
    /// Close without answering.
    Close,
}

/// A raw upstream: every request it reads (head and `Content-Length` body) is recorded, and
/// so is every connection that brought one (the scanner's probes connect and send nothing).
pub struct Upstream {
    requests: Arc<Mutex<Vec<String>>>,
    connections: Arc<AtomicUsize>,
}

impl Upstream {
    /// Binds `<root>/<service>/rpc.sock` and answers with `script(n)` for the n-th request of
    /// each connection.
    pub fn bind(root: &Path, service: &str, script: fn(usize) -> Reply) -> Upstream {
        let l = UnixListener::bind(service_dir(root, service).join("rpc.sock")).unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (seen, count) = (requests.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let (seen, count) = (seen.clone(), count.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    for n in 0.. {
                        let Some(req) = read_request(&mut s, &mut buf).await else {
                            return;
                        };
                        if n == 0 {
                            count.fetch_add(1, Ordering::SeqCst);
                        }
                        seen.lock().unwrap().push(req);
                        // A router that stopped reading (an answer over its limit) closes
                        // early: the write fails, and this connection is done.
                        match script(n) {
                            Reply::Send(b) => {
                                if s.write_all(b).await.is_err() {
                                    return;
                                }
                            }
                            Reply::SendAndClose(b) => return drop(s.write_all(b).await),
                            Reply::Close => return,
                        }
                    }
                });
            }
        });
        Upstream {
            requests,
            connections,
        }
    }

    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    /// Connections that brought at least one request.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// A raw upstream that records every byte of every connection, and answers the first request
/// head of each connection with `reply` as soon as the head is in, before reading any body.
pub struct Capture {
    conns: Arc<Mutex<Vec<Bytes>>>,
}

/// The bytes one connection brought, as they grow.
type Bytes = Arc<Mutex<Vec<u8>>>;

impl Capture {
    /// Binds `<root>/<service>/rpc.sock`.
    pub fn bind(root: &Path, service: &str, reply: &'static [u8]) -> Capture {
        let l = UnixListener::bind(service_dir(root, service).join("rpc.sock")).unwrap();
        let conns: Arc<Mutex<Vec<Bytes>>> = Arc::default();
        let all = conns.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let bytes = Arc::new(Mutex::new(Vec::new()));
                all.lock().unwrap().push(bytes.clone());
                tokio::spawn(async move {
                    let mut answered = false;
                    let mut chunk = [0u8; 8192];
                    while let Ok(n) = s.read(&mut chunk).await {
                        if n == 0 {
                            return;
                        }
                        let head_in = {
                            let mut b = bytes.lock().unwrap();
                            b.extend_from_slice(&chunk[..n]);
                            find(&b, b"\r\n\r\n").is_some()
                        };
                        if head_in && !answered {
                            answered = true;
                            if from_catalog(&bytes.lock().unwrap()) {
                                bytes.lock().unwrap().clear();
                                return decline_catalog(&mut s).await;
                            }
                            if s.write_all(reply).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        Capture { conns }
    }

    /// The bytes of every connection that sent any (the scanner's probes send none).
    pub fn connections(&self) -> Vec<Vec<u8>> {
        self.conns
            .lock()
            .unwrap()
            .iter()
            .map(|c| c.lock().unwrap().clone())
            .filter(|c| !c.is_empty())
            .collect()
    }
}

/// True for a request of the router's catalog fetcher (its own `user-agent`), which these
/// upstreams neither record nor script: the tests look at what clients sent.
pub fn from_catalog(request: &[u8]) -> bool {
    let ua = format!("user-agent: {}\r\n", hero_router::USER_AGENT);
    find(request, ua.as_bytes()).is_some()
}

/// Answers a catalog request with a 404 and closes the connection.
pub async fn decline_catalog(s: &mut UnixStream) {
    let _ = s
        .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        .await;
}

/// Reads one request (head and `Content-Length` body) from `s`; `None` at end of stream.
/// A request of the router's catalog fetcher is answered 404 here and ends the stream
/// (`None`): the tests' upstreams look only at what clients sent.
pub async fn read_request(s: &mut UnixStream, buf: &mut Vec<u8>) -> Option<String> {
    let req = read_any_request(s, buf).await?;
    if from_catalog(req.as_bytes()) {
        decline_catalog(s).await;
        return None;
    }
    Some(req)
}

/// Reads one request, whoever sent it; `None` at end of stream.
pub async fn read_any_request(s: &mut UnixStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
            let len = header(&head, "content-length").map_or(0, |v| v.parse().unwrap());
            if buf.len() >= end + 4 + len {
                let req = String::from_utf8_lossy(&buf[..end + 4 + len]).into_owned();
                buf.drain(..end + 4 + len);
                return Some(req);
            }
        }
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The value of the first header `name` in a raw head.
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// A response as the client got it: the head, and the body bytes as they were on the wire.
#[derive(Debug)]
pub struct Response {
    pub head: String,
    pub body: Vec<u8>,
}

impl Response {
    pub fn status(&self) -> u16 {
        self.head[9..12].parse().unwrap()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.head, name)
    }
}

/// A raw client connection to the router.
pub struct Client {
    pub s: TcpStream,
    pub buf: Vec<u8>,
}

impl Client {
    pub async fn connect(d: &Daemon) -> Client {
        Client {
            s: TcpStream::connect(d.tcp).await.unwrap(),
            buf: Vec::new(),
        }
    }

    pub async fn send(&mut self, raw: &str) {
        self.s.write_all(raw.as_bytes()).await.unwrap();
    }

    pub async fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 8192];
        let read = tokio::time::timeout(Duration::from_secs(10), self.s.read(&mut chunk));
        let n = read.await.expect("the router answers").unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    /// Reads one response; `head_request` for a response to HEAD (no body).
    pub async fn response(&mut self, head_request: bool) -> Response {
        let end = loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                break end + 4;
            }
            assert!(self.fill().await > 0, "closed before a response head");
        };
        let head = String::from_utf8(self.buf.drain(..end).collect()).unwrap();
        let status: u16 = head[9..12].parse().unwrap();
        let body_len = if head_request || (100..200).contains(&status) {
            Some(0)
        } else if header(&head, "transfer-encoding").is_some() {
            None
        } else {
            header(&head, "content-length").map(|v| v.parse().unwrap())
        };
        let body = match body_len {
            Some(n) => {
                while self.buf.len() < n {
                    assert!(self.fill().await > 0, "closed in the body");
                }
                self.buf.drain(..n).collect()
            }
            None if header(&head, "transfer-encoding").is_some() => {
                let mut used = 0;
                while self.chunked_end(&mut used).is_none() {
                    assert!(self.fill().await > 0, "closed in a chunked body");
                    used = 0;
                }
                self.buf.drain(..used).collect()
            }
            None => {
                while self.fill().await > 0 {}
                std::mem::take(&mut self.buf)
            }
        };
        Response { head, body }
    }

    /// If the buffer holds a whole chunked body, its length (in `used` too). Line by line:
    /// size lines, data, and the trailer section up to its empty line.
    fn chunked_end(&self, used: &mut usize) -> Option<usize> {
        let line = |at: usize| find(&self.buf[at..], b"\r\n").map(|i| at + i);
        loop {
            let eol = line(*used)?;
            let size_text = std::str::from_utf8(&self.buf[*used..eol]).unwrap();
            let size_hex = size_text.split(';').next().unwrap().trim();
            let size = usize::from_str_radix(size_hex, 16).unwrap();
            *used = eol + 2;
            if size == 0 {
                loop {
                    let eol = line(*used)?;
                    let empty = eol == *used;
                    *used = eol + 2;
                    if empty {
                        return Some(*used);
                    }
                }
            }
            if self.buf.len() < *used + size + 2 {
                return None;
            }
            *used += size + 2;
        }
    }

    /// True if the router closed the connection (nothing more to read).
    pub async fn closed(&mut self) -> bool {
        self.buf.is_empty() && self.fill().await == 0
    }
}

pub const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

pub fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")
}
