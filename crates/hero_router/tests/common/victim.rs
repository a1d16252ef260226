//! A service that counts the calls a page must never make on its behalf.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::service_dir;

/// A service whose every `POST` is a side effect the test counts (a call that must never
/// happen on a page's behalf), and every `GET /poke…` too (a service may act on a GET; the
/// router's own catalog fetches are other paths); it answers a JSON-RPC result.
pub struct Victim {
    posts: Arc<AtomicUsize>,
    gets: Arc<AtomicUsize>,
}

impl Victim {
    pub fn bind(root: &Path) -> Victim {
        let l =
            tokio::net::UnixListener::bind(service_dir(root, "victim").join("rpc.sock")).unwrap();
        let (posts, gets) = (Arc::default(), Arc::default());
        let (count, count_gets): (Arc<AtomicUsize>, Arc<AtomicUsize>) =
            (Arc::clone(&posts), Arc::clone(&gets));
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let (count, count_gets) = (count.clone(), count_gets.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while let Ok(n) = s.read(&mut chunk).await {
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let length: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map_or(0, |v| v.trim().parse().unwrap_or(0));
                        if buf.len() < end + 4 + length {
                            continue;
                        }
                        buf.drain(..end + 4 + length);
                        if head.starts_with("post") {
                            count.fetch_add(1, Ordering::SeqCst);
                        } else if head.starts_with("get /poke") {
                            count_gets.fetch_add(1, Ordering::SeqCst);
                        }
                        let body = r#"{"jsonrpc":"2.0","id":1,"result":"poked"}"#;
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if s.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Victim { posts, gets }
    }

    pub fn posts(&self) -> usize {
        self.posts.load(Ordering::SeqCst)
    }

    pub fn gets(&self) -> usize {
        self.gets.load(Ordering::SeqCst)
    }
}
