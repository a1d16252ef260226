//! A client connection's write side with a stall limit (`--send-timeout`) for a Unix socket: a
//! write that cannot go through for that long fails with [`io::ErrorKind::TimedOut`], and the
//! connection ends. (A TCP connection has the kernel's `TCP_USER_TIMEOUT` instead, set at
//! accept, which sees a slow reader's progress; a write only sees it once the buffer has room
//! again.)
//!
//! The router streams a service's answer as it reads it, without buffering it whole. A client
//! that stops reading would otherwise stop the router reading, and keep the service's
//! connection, forever: a service that serves one connection at a time (Python's
//! `http.server`) would answer nobody else meanwhile. A write that goes through at once (the
//! common case) costs one branch.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// `S` whose writes fail after `limit` without progress (never, without a limit).
pub(crate) struct SendTimeout<S> {
    io: S,
    limit: Option<Duration>,
    /// Made at the first stall, reset at each later one.
    timer: Option<Pin<Box<Sleep>>>,
    /// The timer runs: the last write did not go through.
    stalled: bool,
}

impl<S> SendTimeout<S> {
    /// `io`, whose writes may stall for at most `limit`.
    pub(crate) fn new(io: S, limit: Option<Duration>) -> SendTimeout<S> {
        SendTimeout {
            io,
            limit,
            timer: None,
            stalled: false,
        }
    }

    /// After the stream said `Pending`: arms the timer at the first stall, and fails once it
    /// has run out.
    fn poll_stall(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let Some(limit) = self.limit else {
            return Poll::Pending;
        };
        if !self.stalled {
            self.stalled = true;
            let deadline = Instant::now() + limit;
            match &mut self.timer {
                Some(timer) => timer.as_mut().reset(deadline),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        let Some(timer) = self.timer.as_mut() else {
            return Poll::Pending;
        };
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "the client took none of the answer for {} (--send-timeout)",
                humantime::format_duration(limit)
            ),
        ))
    }

    /// What a write gave: progress disarms the timer, a stall runs it.
    fn after<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match r {
            Poll::Ready(r) => {
                self.stalled = false;
                Poll::Ready(r)
            }
            Poll::Pending => self.poll_stall(cx).map(Err),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for SendTimeout<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SendTimeout<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        self.after(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.after(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_flush(cx);
        self.after(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_shutdown(cx);
        self.after(cx, r)
    }
}

#[cfg(test)]
mod tests;
