//! The pool against a small HTTP/1.1 service on a real Unix socket: which connections go back,
//! who gets them again, when an idle one is not trusted; and the in-flight limit.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hero_socket::Identity;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

use super::{Inflight, Key, Pool, SWEEP_INFLIGHT_AT};
use crate::http1::OwnRequest;

const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
const OK_CLOSE: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok";

/// A service on `dir/rpc.sock` that answers every request head with `answer`, counting the
/// connections it accepted. It never closes one, even after a `close`: whether a connection
/// goes back is the pool's rule alone, not noticed later by [`super::UpConn::still_open`].
fn serve(dir: &Path, answer: &'static [u8]) -> (Key, Arc<AtomicUsize>) {
    let path = dir.join("rpc.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        let mut chunk = [0u8; 1024];
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    buf.drain(..end + 4);
                    if s.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (key(&path), accepted)
}

fn key(path: &Path) -> Key {
    Key::new(Arc::from(path), None)
}

fn pool() -> Pool {
    Pool::new(Duration::from_secs(1), Inflight::new(4))
}

fn get(close: bool) -> OwnRequest<'static> {
    OwnRequest {
        method: "GET",
        path: "/health",
        headers: &[],
        body: b"",
        close,
        idempotent: true,
    }
}

async fn send(pool: &Pool, key: &Key, close: bool) {
    let answer = pool
        .send(key, &get(close), Duration::from_secs(10), 1024)
        .await
        .unwrap();
    assert_eq!((answer.status, &answer.body[..]), (200, &b"ok"[..]));
}

#[tokio::test]
async fn a_clean_exchange_returns_its_connection_and_the_next_request_reuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let (key, accepted) = serve(dir.path(), OK);
    let pool = pool();
    for _ in 0..3 {
        send(&pool, &key, false).await;
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one connection for all three"
    );
    assert!(pool.checkout(&key).await.unwrap().reused);
}

#[tokio::test]
async fn a_connection_whose_request_or_answer_said_close_never_returns() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = serve(dir.path(), OK);
    let pool = pool();
    send(&pool, &key, true).await;
    assert!(
        !pool.checkout(&key).await.unwrap().reused,
        "request said close"
    );

    let other = tempfile::tempdir().unwrap();
    let (key, _) = serve(other.path(), OK_CLOSE);
    send(&pool, &key, false).await;
    assert!(
        !pool.checkout(&key).await.unwrap().reused,
        "answer said close"
    );
}

#[tokio::test]
async fn an_idle_connection_serves_its_socket_instance_on_any_thread() {
    let dir = tempfile::tempdir().unwrap();
    let (key, accepted) = serve(dir.path(), OK);
    let pool = Arc::new(pool());
    let conn = pool.checkout(&key).await.unwrap();
    assert!(!conn.reused);
    pool.checkin(&key, conn);
    // The same path, another socket instance (the service restarted): a new connection.
    let restarted = Key::new(
        key.path.clone(),
        Some(Identity {
            dev: 1,
            ino: 2,
            ctime_ns: 3,
        }),
    );
    assert!(!pool.checkout(&restarted).await.unwrap().reused);
    // Another thread (another runtime's reactor) with no idle connection of its own takes
    // this one's, moved to its reactor, and exchanges on it there.
    let (p, k) = (pool.clone(), key.clone());
    let elsewhere = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let conn = p.checkout(&k).await.unwrap();
            let reused = conn.reused;
            p.checkin(&k, conn);
            send(&p, &k, false).await;
            reused
        })
    });
    // Joined off this runtime's thread, which runs the service meanwhile.
    let reused = tokio::task::spawn_blocking(move || elsewhere.join().unwrap());
    assert!(reused.await.unwrap(), "the other thread made a new one");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        2,
        "one connection for the socket, one for the restarted one: none new elsewhere"
    );
}

/// What a service did to an idle connection decides whether it is used again: nothing (yes),
/// closed it or sent something unasked (no). A connection with bytes left unread is never
/// kept.
#[tokio::test]
async fn still_open_says_whether_the_service_left_an_idle_connection_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("rpc.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let pool = pool();
    let key = key(&path);

    let conn = pool.connect(&key).await.unwrap();
    let (mut server, _) = listener.accept().await.unwrap();
    assert!(conn.still_open(), "untouched");
    server.write_all(b"HTTP/1.1 200 OK\r\n").await.unwrap();
    server.flush().await.unwrap();
    conn.io.readable().await.unwrap();
    assert!(!conn.still_open(), "sent something unasked");

    let mut conn = pool.connect(&key).await.unwrap();
    let (server, _) = listener.accept().await.unwrap();
    drop(server);
    conn.io.readable().await.unwrap();
    assert!(!conn.still_open(), "closed by the service");
    // Not handed out again: the pool connects anew.
    conn.buf.clear();
    pool.checkin(&key, conn);
    let fresh = pool.checkout(&key).await.unwrap();
    assert!(!fresh.reused);
    let _accepted = listener.accept().await.unwrap();

    let mut conn = fresh;
    conn.buf.extend_from_slice(b"left over");
    assert!(!conn.still_open(), "unread bytes");
    pool.checkin(&key, conn);
    let next = pool.checkout(&key).await.unwrap();
    assert!(!next.reused, "a connection with unread bytes went back");
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_past_the_idle_timeout_is_not_reused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rpc.sock");
    let _listener = UnixListener::bind(&path).unwrap();
    let (pool, key) = (pool(), key(&path));
    let conn = pool.connect(&key).await.unwrap();
    pool.checkin(&key, conn);
    tokio::time::advance(super::IDLE_TIMEOUT).await;
    assert!(pool.checkout(&key).await.unwrap().reused, "at the timeout");
    let conn = pool.connect(&key).await.unwrap();
    pool.checkin(&key, conn);
    tokio::time::advance(super::IDLE_TIMEOUT + Duration::from_millis(1)).await;
    assert!(!pool.checkout(&key).await.unwrap().reused, "past it");
}

/// A sweep closes what has been idle past the timeout, with no check-in to trigger it: the
/// service sees its end of the connection close.
#[tokio::test(start_paused = true)]
async fn a_sweep_closes_idle_connections_past_the_timeout() {
    use tokio::io::AsyncReadExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rpc.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let (pool, key) = (pool(), key(&path));
    let conn = pool.connect(&key).await.unwrap();
    let (mut service_end, _) = listener.accept().await.unwrap();
    pool.checkin(&key, conn);
    tokio::time::advance(super::IDLE_TIMEOUT).await;
    pool.sweep();
    assert_eq!(pool.idle_count(), 1, "kept up to the timeout");
    tokio::time::advance(Duration::from_millis(1)).await;
    pool.sweep();
    assert_eq!(pool.idle_count(), 0, "closed past it");
    let mut buf = [0u8; 1];
    assert_eq!(
        service_end.read(&mut buf).await.unwrap(),
        0,
        "the service sees a close"
    );
}

#[tokio::test(start_paused = true)]
async fn the_in_flight_limit_is_per_service_directory() {
    let inflight = Inflight::new(2);
    let now = Duration::ZERO;
    let a = |s: &str| PathBuf::from(format!("/r/a/{s}.sock"));
    let first = inflight.acquire(&a("rpc"), now).await.expect("a slot");
    let _second = inflight.acquire(&a("web_x"), now).await.expect("a slot");
    // Both slots of `a` are taken, by any of its sockets.
    assert!(inflight.acquire(&a("rpc"), now).await.is_none());
    assert!(
        inflight
            .acquire(&a("rpc"), Duration::from_secs(5))
            .await
            .is_none(),
        "still none after waiting"
    );
    // Another service has its own.
    assert!(
        inflight
            .acquire(Path::new("/r/b/rpc.sock"), now)
            .await
            .is_some()
    );
    // A slot given back goes to the request waiting for one.
    let rpc = a("rpc");
    let waiter = inflight.acquire(&rpc, Duration::from_secs(5));
    tokio::pin!(waiter);
    assert!(futures_util::poll!(&mut waiter).is_pending());
    drop(first);
    assert!(waiter.await.is_some());
    // Zero means one.
    let one = Inflight::new(0);
    let _held = one.acquire(&a("rpc"), now).await.expect("a slot");
    assert!(one.acquire(&a("rpc"), now).await.is_none());
}

#[test]
fn inflight_forgets_services_nobody_holds() {
    let inflight = Inflight::new(2);
    let held = inflight.semaphore(Path::new("/r/kept/rpc.sock"));
    let permit = held.clone().try_acquire_owned().unwrap();
    for i in 0..10 * SWEEP_INFLIGHT_AT {
        let _ = inflight.semaphore(Path::new(&format!("/r/gone_{i}/rpc.sock")));
    }
    assert!(
        inflight.len() <= 2 * SWEEP_INFLIGHT_AT,
        "{} kept",
        inflight.len()
    );
    // The held service keeps its semaphore, and so its count.
    let again = inflight.semaphore(Path::new("/r/kept/admin.sock"));
    assert!(Arc::ptr_eq(&held, &again));
    assert_eq!(again.available_permits(), 1);
    drop(permit);
}

/// Answers whose bytes share one [`super::Budget`] never hold more than it at once: of two
/// answers of 600 KiB that arrive together under a 1 MiB budget, one is read and stays
/// charged, the other is refused before its body is held (`Content-Length`) or as soon as
/// it passes (chunked) and gives back what it had taken. A dropped answer's bytes
/// given back make room again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_sharing_a_budget_never_hold_more_than_it() {
    fn big(framing: &str) -> &'static [u8] {
        let body = vec![b'a'; 600 * 1024];
        let mut out = match framing {
            "length" => format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len()),
            "chunked" => "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".into(),
            _ => "HTTP/1.0 200 OK\r\n\r\n".into(),
        }
        .into_bytes();
        match framing {
            "chunked" => {
                for piece in body.chunks(64 * 1024) {
                    out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                    out.extend_from_slice(piece);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n\r\n");
            }
            _ => out.extend_from_slice(&body),
        }
        Box::leak(out.into_boxed_slice())
    }
    // (A body to close cannot end here: this service never closes a connection.)
    for framing in ["length", "chunked"] {
        let dir = tempfile::tempdir().unwrap();
        let (key, _) = serve(dir.path(), big(framing));
        let pool = pool();
        let budget = super::Budget::new(1 << 20);
        let req = get(true);
        let (a, b) = tokio::join!(
            pool.send_within(&key, &req, Duration::from_secs(20), &budget),
            pool.send_within(&key, &req, Duration::from_secs(20), &budget),
        );
        let (whole, refused): (Vec<_>, Vec<_>) = [a, b].into_iter().partition(Result::is_ok);
        assert_eq!((whole.len(), refused.len()), (1, 1), "{framing}");
        assert!(
            matches!(refused[0], Err(super::SendError::TooLarge { limit }) if limit == 1 << 20),
            "{framing}: {:?}",
            refused[0].as_ref().err()
        );
        let answer = whole.into_iter().next().unwrap().unwrap();
        assert_eq!(answer.body.len(), 600 * 1024, "{framing}");
        assert_eq!(
            budget.left(),
            (1 << 20) - 600 * 1024,
            "{framing}: the whole answer stays charged, the refused one gave back its part"
        );
        budget.give_back(answer.body.len());
        assert!(
            pool.send_within(&key, &req, Duration::from_secs(20), &budget)
                .await
                .is_ok(),
            "{framing}: room again"
        );
    }
}

/// A few interim heads before the answer pass; an endless stream of them does not: past 32
/// the exchange is broken, in words that say why. A service that closes after an interim
/// head is said to have done so.
#[tokio::test]
async fn interim_heads_are_bounded_and_a_close_after_one_is_named() {
    fn hints(n: usize) -> &'static [u8] {
        let mut out = "HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n".repeat(n);
        out.push_str("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
        Box::leak(out.into_bytes().into_boxed_slice())
    }
    let dir = tempfile::tempdir().unwrap();
    let (ok, _) = serve(&made(dir.path().join("ok")), hints(32));
    let answer = pool()
        .send(&ok, &get(true), Duration::from_secs(10), 1024)
        .await
        .unwrap();
    assert_eq!(&answer.body[..], b"ok");
    let (flood, _) = serve(&made(dir.path().join("flood")), hints(33));
    let e = pool()
        .send(&flood, &get(true), Duration::from_secs(10), 1024)
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("more than 32 interim (1xx) answers before the final one"),
        "{e}"
    );
    // 100 Continue, then a close.
    let path = dir.path().join("gone.sock");
    let listener = UnixListener::bind(&path).unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut chunk = [0u8; 1024];
            let _ = s.read(&mut chunk).await;
            let _ = s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await;
        }
    });
    let e = pool()
        .send(&key(&path), &get(true), Duration::from_secs(10), 1024)
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("closed after an interim (1xx) answer, before the final one"),
        "{e}"
    );
}

/// `dir`, made.
fn made(dir: PathBuf) -> PathBuf {
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Keys made from the same path in separate allocations are one key, hashed alike; another
/// socket, or the same path with another identity, is another key.
#[test]
fn keys_are_their_path_and_identity() {
    use std::hash::BuildHasher;
    let state = std::collections::hash_map::RandomState::new();
    let hash = |k: &Key| state.hash_one(k);
    let a = key(Path::new("/run/hero/svc/rpc.sock"));
    let b = key(&PathBuf::from("/run/hero/svc").join("rpc.sock"));
    assert!(!Arc::ptr_eq(&a.path, &b.path));
    assert_eq!(a, b);
    assert_eq!(hash(&a), hash(&b));
    let other = key(Path::new("/run/hero/svc/ui.sock"));
    assert_ne!(a, other);
    let restarted = Key::new(
        a.path.clone(),
        Some(Identity {
            dev: 1,
            ino: 2,
            ctime_ns: 3,
        }),
    );
    assert_ne!(a, restarted);
}

/// A socket's service directory, read as the bytes before its last `/`, is its path's parent
/// for every path the table writes: a root, a service directory and a socket file name
/// joined, whatever their bytes (dots, spaces, non-ASCII, a root given with a trailing `/`).
/// In `make fuzz` with 1,000,000 cases.
#[test]
fn service_directory_agrees_with_the_paths_parent() {
    let (cases, seed, mut rng) = crate::test_util::fuzz_setup();
    let pieces = [
        "a",
        ".",
        "..x",
        " ",
        "é",
        "_",
        "-",
        "sock",
        "rpc.sock",
        "web_x.sock",
    ];
    // A name, never `.` or `..` (the scanner takes neither for a service or a socket).
    let name = |rng: &mut fastrand::Rng| -> String {
        let n: String = (0..rng.usize(1..4))
            .map(|_| pieces[rng.usize(..pieces.len())])
            .collect();
        if n == "." || n == ".." { "x".into() } else { n }
    };
    for case in 0..cases {
        let root = ["/run/hero", "/tmp/t/", "/", "/a b/é"][rng.usize(..4)];
        let path = PathBuf::from(root)
            .join(name(&mut rng))
            .join(name(&mut rng));
        let parent = path.parent().expect("a parent");
        assert_eq!(
            super::service_dir(&path),
            parent.as_os_str().as_encoded_bytes(),
            "seed {seed} case {case}: {path:?}"
        );
    }
}
