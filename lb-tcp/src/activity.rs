//! Idle and slow-head detection without a clock read or a timer per IO or per request: progress
//! bumps a counter (every read or write of an L4 connection; every request start and end of an
//! HTTP connection, which also counts as busy while a response body is still being sent), and a
//! watchdog wakes every quarter of the shortest timeout to see what moved.
//!
//! An HTTP/1.1 connection also counts the reads of its client's bytes ([`Reads`], through
//! [`Counted`]). Bytes that arrive while no request is in flight are a request head being read:
//! from then `header_read_timeout` applies instead of `idle_timeout`, as HAProxy's
//! `timeout http-request` follows `timeout http-keep-alive` and nginx's `client_header_timeout`
//! follows `keepalive_timeout`. (hyper's own header timer, which lbd used before, arms a timer
//! for every request, and starts it as soon as the previous response is sent, so it closed
//! keep-alive connections after `header_read_timeout` of idleness whatever `idle_timeout` said.)

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, ReadBuf};

/// Shared between a connection's IO, its requests and its watchdog.
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
    pub fn idle(&self, timeout: Duration) -> impl Future<Output = Expired> + '_ {
        self.watch(timeout, None)
    }

    /// Resolves once nothing happened for `idle`, or once a request head has been arriving for
    /// longer than the `head` timeout without its request starting; each within a quarter of
    /// the shorter timeout. Bytes that arrive while a request is in flight (its body, or a
    /// pipelined head) do not start the head timeout: such a head is timed from its next byte.
    pub fn watch<'a>(
        &'a self,
        idle: Duration,
        head: Option<(&'a Reads, Duration)>,
    ) -> impl Future<Output = Expired> + 'a {
        let tick = head.map_or(idle, |(_, h)| h.min(idle)) / 4;
        let mut w = Watchdog::new(ticks_in(idle, tick), head.map(|(_, h)| ticks_in(h, tick)));
        let reads = head.map(|(r, _)| r);
        let tick = tick.max(Duration::from_millis(1));
        // Only what the loop needs is kept across its waits (each live connection holds this).
        async move {
            // Reads from 0: the connection's IO may have read its first head before this started.
            let mut seen = (self.ticks.get(), 0);
            loop {
                tokio::time::sleep(tick).await;
                let now = (self.ticks.get(), reads.map_or(0, Reads::get));
                let requests_moved = now.0 != seen.0 || self.in_flight.get() > 0;
                let bytes_moved = now.1 != seen.1;
                seen = now;
                if let Some(e) = w.tick(requests_moved, bytes_moved) {
                    return e;
                }
            }
        }
    }
}

/// Why [`Activity::watch`] resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// Nothing happened for the idle timeout.
    Idle,
    /// A request head took longer than its timeout.
    Head,
}

/// Whole ticks in `d`, at least one.
fn ticks_in(d: Duration, tick: Duration) -> u32 {
    if tick.is_zero() {
        return 1;
    }
    u32::try_from(d.as_nanos().div_ceil(tick.as_nanos())).unwrap_or(u32::MAX).max(1)
}

/// The watchdog's decision, one tick at a time.
#[derive(Debug)]
struct Watchdog {
    idle_limit: u32,
    head_limit: Option<u32>,
    quiet: u32,
    /// Ticks a head has been arriving for (0: none is).
    head: u32,
}

impl Watchdog {
    fn new(idle_limit: u32, head_limit: Option<u32>) -> Self {
        Self { idle_limit, head_limit, quiet: 0, head: 0 }
    }

    /// One tick: whether a request started, ended or was in flight during it, and whether
    /// client bytes arrived.
    fn tick(&mut self, requests_moved: bool, bytes_moved: bool) -> Option<Expired> {
        if requests_moved {
            // Bytes during a request are its body or the next head (timed from its next byte).
            self.head = 0;
            self.quiet = 0;
            return None;
        }
        if let Some(limit) = self.head_limit {
            if bytes_moved || self.head > 0 {
                // The tick the head's first bytes came in counts as one: expiry is between
                // `limit` and `limit + 1` ticks after them.
                self.head += 1;
                self.quiet = 0;
                return (self.head > limit).then_some(Expired::Head);
            }
        }
        self.quiet += 1;
        (self.quiet >= self.idle_limit).then_some(Expired::Idle)
    }
}

/// How many reads of client bytes an HTTP/1.1 connection made. Shared by its IO (which hyper's
/// upgrades send to another task, hence `Arc`) and its watchdog; only that connection's thread
/// touches it, so a relaxed load and store, not a locked add.
#[derive(Debug, Default, Clone)]
pub struct Reads(Arc<AtomicU64>);

impl Reads {
    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    fn bump(&self) {
        self.0.store(self.get().wrapping_add(1), Ordering::Relaxed);
    }
}

/// A client byte stream whose reads are counted in [`Reads`].
#[derive(Debug)]
pub struct Counted<I> {
    io: I,
    reads: Reads,
}

impl<I> Counted<I> {
    /// Counts `io`'s reads in `reads`.
    pub fn new(io: I, reads: Reads) -> Self {
        Self { io, reads }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Counted<I> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.reads.bump();
        }
        r
    }
}

/// `AsyncWrite` for a wrapper `$ty<I>` that writes through its field `io` unchanged (the
/// wrappers here change only how they read).
macro_rules! write_through {
    ($ty:ident) => {
        impl<I: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for $ty<I> {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                self.io.is_write_vectored()
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.get_mut().io).poll_flush(cx)
            }

            fn poll_shutdown(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
            }
        }
    };
}
pub(crate) use write_through;

write_through!(Counted);

#[cfg(test)]
mod tests {
    use super::*;

    /// Ticks until the watchdog expires, given what happens at each (`r` request moved, `b`
    /// bytes arrived, `.` nothing), and what it said.
    fn run(mut w: Watchdog, script: &str) -> Option<(usize, Expired)> {
        script.chars().enumerate().find_map(|(i, c)| w.tick(c == 'r', c == 'b').map(|e| (i + 1, e)))
    }

    #[test]
    fn idle_expires_after_its_ticks_of_nothing() {
        assert_eq!(run(Watchdog::new(4, None), "...."), Some((4, Expired::Idle)));
        // Any request activity restarts the count.
        assert_eq!(run(Watchdog::new(4, None), "...r...."), Some((8, Expired::Idle)));
        // Without a head timeout, bytes are not activity (L4 and QUIC count their own).
        assert_eq!(run(Watchdog::new(4, None), "..b.b"), Some((4, Expired::Idle)));
    }

    #[test]
    fn a_head_arriving_without_its_request_starting_expires_after_its_ticks() {
        // Head limit 4 ticks: its first bytes' tick counts, expiry on the 5th.
        assert_eq!(run(Watchdog::new(24, Some(4)), "..b...."), Some((7, Expired::Head)));
        // More bytes of the same head do not restart it (a slowloris trickle).
        assert_eq!(run(Watchdog::new(24, Some(4)), "bbbbb"), Some((5, Expired::Head)));
        // The head timeout applies even when it is longer than the idle one.
        assert_eq!(run(Watchdog::new(2, Some(4)), "b...."), Some((5, Expired::Head)));
    }

    #[test]
    fn a_request_starting_ends_the_head_timeout_and_idleness_follows() {
        // The head completed (its request started): idle from there, not cut off as a head.
        assert_eq!(run(Watchdog::new(6, Some(4)), "bbr......"), Some((9, Expired::Idle)));
        // Bytes in the tick a request ended belong to it; a later byte starts a head.
        assert_eq!(run(Watchdog::new(24, Some(2)), "r.b.."), Some((5, Expired::Head)));
    }

    #[test]
    fn ticks_in_rounds_up_and_is_never_zero() {
        assert_eq!(ticks_in(Duration::from_secs(60), Duration::from_millis(2500)), 24);
        assert_eq!(ticks_in(Duration::from_secs(10), Duration::from_millis(3000)), 4);
        assert_eq!(ticks_in(Duration::ZERO, Duration::from_secs(1)), 1);
        assert_eq!(ticks_in(Duration::from_secs(1), Duration::ZERO), 1);
    }
}
