//! Connecting to a service socket, and what can go wrong talking to one.

use std::io;
use std::path::Path;
use std::time::Duration;

use tokio::net::UnixStream;
use tokio::time::Instant;

/// Why a request to an upstream failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SendError {
    /// Refused, missing, not allowed, or another connect error.
    #[error("not reachable: {detail}")]
    Down {
        /// What kind of error `connect` gave.
        kind: std::io::ErrorKind,
        /// The error, in words.
        detail: String,
    },
    /// The backlog stayed full until the busy deadline.
    #[error("busy")]
    Busy,
    /// The service's in-flight requests stayed at `--max-inflight-per-service` until the
    /// deadline.
    #[error("too many requests in flight")]
    Saturated,
    /// No response head in time.
    #[error("no answer in time")]
    Timeout,
    /// The connection ended (or was reset) before the first byte of an answer; `reused`: it
    /// came from the pool (idle), so the request, not safe to repeat, was not sent again. The
    /// router cannot tell a close of the idle connection from a service that failed on the
    /// request: the message names both.
    #[error("{}", if *.reused {
        "the service closed a kept connection without answering (it may have closed it as idle just then, or failed on this request); the request was not sent again, as it may not be safe to repeat"
    } else {
        "the service closed the connection without answering"
    })]
    Closed {
        /// The connection had served an earlier exchange.
        reused: bool,
    },
    /// The answer's body is longer than the caller's limit.
    #[error("the answer is larger than {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The HTTP exchange failed after connecting.
    #[error("{0}")]
    Broken(String),
}

/// Connects, retrying `EAGAIN` (full backlog) until `busy_wait` has passed.
pub(crate) async fn connect(path: &Path, busy_wait: Duration) -> io::Result<UnixStream> {
    // A path too long for sockaddr_un is reached through /proc/self/fd/<dir>/<name>.
    let (_dir, path) = hero_socket::reachable(path)?;
    let path = path.as_path();
    let deadline = Instant::now() + busy_wait;
    let mut pause = Duration::from_micros(500);
    loop {
        match UnixStream::connect(path).await {
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock && Instant::now() + pause < deadline =>
            {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            other => return other,
        }
    }
}
