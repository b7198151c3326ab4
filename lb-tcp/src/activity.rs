//! Idle detection without a clock read per IO: progress bumps a counter (every read or write of
//! an L4 connection through [`ActivityIo`]; every request start and end of an HTTP connection,
//! which also counts as busy while a response body is still being sent), and a watchdog wakes
//! every quarter of the idle timeout to see whether it moved.

use std::cell::Cell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Shared between a connection's IO wrapper, its requests and its watchdog.
#[derive(Debug, Default)]
pub struct Activity {
    ticks: Cell<u64>,
    in_flight: Cell<u32>,
}

impl Activity {
    /// Marks progress.
    pub fn touch(&self) {
        self.ticks.set(self.ticks.get().wrapping_add(1));
    }

    /// A request started; the connection is not idle while one is in flight.
    pub fn begin(&self) {
        self.in_flight.set(self.in_flight.get() + 1);
    }

    /// A request's response is done.
    pub fn end(&self) {
        self.in_flight.set(self.in_flight.get().saturating_sub(1));
        self.touch();
    }

    /// Resolves once nothing happened for `timeout` (within a quarter of it).
    pub async fn idle(&self, timeout: Duration) {
        let tick = timeout / 4;
        let mut last = self.ticks.get();
        let mut quiet = 0;
        loop {
            tokio::time::sleep(tick).await;
            let now = self.ticks.get();
            if now != last || self.in_flight.get() > 0 {
                last = now;
                quiet = 0;
            } else {
                quiet += 1;
                if quiet >= 4 {
                    return;
                }
            }
        }
    }
}

/// Wraps an IO object and records its activity.
#[derive(Debug)]
pub struct ActivityIo<T> {
    inner: T,
    activity: Rc<Activity>,
}

impl<T> ActivityIo<T> {
    /// Wraps `inner`.
    pub fn new(inner: T, activity: Rc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ActivityIo<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if r.is_ready() {
            self.activity.touch();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ActivityIo<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if r.is_ready() {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if r.is_ready() {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
