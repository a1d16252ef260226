use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::SendTimeout;

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test(start_paused = true)]
async fn a_write_nobody_takes_fails_after_the_limit() {
    let (near, _far) = tokio::io::duplex(64);
    let mut io = SendTimeout::new(near, Some(LIMIT));
    let started = Instant::now();
    let e = io.write_all(&[7; 1000]).await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    assert!(e.to_string().contains("30s (--send-timeout)"), "{e}");
    assert_eq!(
        started.elapsed(),
        LIMIT,
        "failed at the limit, not before or after"
    );
    // It stays failed: a retry does not wait again.
    let again = io.write_all(&[7; 1]).await.unwrap_err();
    assert_eq!(again.kind(), io::ErrorKind::TimedOut);
    assert_eq!(started.elapsed(), LIMIT);
}

#[tokio::test(start_paused = true)]
async fn a_slow_reader_that_keeps_reading_is_never_cut() {
    let (near, mut far) = tokio::io::duplex(64);
    let mut io = SendTimeout::new(near, Some(LIMIT));
    // 64 bytes every 20 s: each stall is shorter than the limit, their sum far longer.
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        let mut buf = [0; 64];
        loop {
            tokio::time::sleep(Duration::from_secs(20)).await; // paused clock: the pace is the point
            match far.read(&mut buf).await.unwrap() {
                0 => return got,
                n => got.extend_from_slice(&buf[..n]),
            }
        }
    });
    let started = Instant::now();
    let sent: Vec<u8> = (0..640u32).map(|i| i as u8).collect();
    io.write_all(&sent).await.unwrap();
    io.shutdown().await.unwrap();
    drop(io);
    assert!(
        started.elapsed() > 4 * LIMIT,
        "the test stalled for less than the limit"
    );
    assert_eq!(reader.await.unwrap(), sent);
}

#[tokio::test(start_paused = true)]
async fn reads_pass_through_and_never_time_out() {
    let (near, mut far) = tokio::io::duplex(64);
    let mut io = SendTimeout::new(near, Some(LIMIT));
    let read = tokio::spawn(async move {
        let mut buf = [0; 5];
        io.read_exact(&mut buf).await.map(|_| buf)
    });
    tokio::time::sleep(3 * LIMIT).await; // paused clock: a read may wait any time
    far.write_all(b"hello").await.unwrap();
    assert_eq!(&read.await.unwrap().unwrap(), b"hello");
}

#[tokio::test(start_paused = true)]
async fn without_a_limit_a_write_waits() {
    let (near, mut far) = tokio::io::duplex(64);
    let mut io = SendTimeout::new(near, None);
    let write = tokio::spawn(async move { io.write_all(&[7; 1000]).await });
    tokio::time::sleep(100 * LIMIT).await; // paused clock: no limit, whatever the time
    assert!(!write.is_finished(), "nothing cut it");
    let mut got = vec![0; 1000];
    far.read_exact(&mut got).await.unwrap();
    write.await.unwrap().unwrap();
}
