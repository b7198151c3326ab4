//! The waiting room: accepted HTTP connections that have not sent their first byte yet.
//!
//! A connection that has said nothing costs no task, no timer and no tokio IO registration: it
//! is a socket in a slab, registered in a small epoll set of its own (mio), and a deadline in a
//! queue. The epoll set's fd is registered in the worker's runtime once; when a socket in it
//! becomes readable (data or EOF), the socket leaves the set and gets its connection task. A
//! client silent for `header_read_timeout` is closed from the queue, whose deadlines are in
//! insertion order (one timeout per listener), so one timer serves them all.
//!
//! This is what keeps an idle connection at about a hundred bytes of the worker's memory (nginx
//! is at ~500 B; a task per connection costs ~1.7 KB). Written by hand because no crate offers
//! a readiness set apart from the runtime's.

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use tokio::io::unix::AsyncFd;

/// One waiting connection, with whatever the caller keeps alongside it (its gauge guard).
#[derive(Debug)]
struct Waiting<G> {
    socket: TcpStream,
    peer: SocketAddr,
    guard: G,
    generation: u32,
}

/// A connection whose first bytes (or EOF) arrived.
#[derive(Debug)]
pub(crate) struct Arrived<G> {
    pub(crate) socket: TcpStream,
    pub(crate) peer: SocketAddr,
    pub(crate) guard: G,
}

/// Waiting connections of one listening socket on one worker.
#[derive(Debug)]
pub(crate) struct WaitingRoom<G> {
    poll: AsyncFd<Poll>,
    events: Events,
    slots: Vec<Option<Waiting<G>>>,
    free: Vec<usize>,
    /// (deadline, slot, generation), oldest first.
    deadlines: VecDeque<(Instant, usize, u32)>,
    generation: u32,
    len: usize,
    /// Readable slots of one `poll`, kept to reuse its allocation.
    ready: Vec<usize>,
}

impl<G> WaitingRoom<G> {
    /// An empty room (inside the worker's runtime).
    pub(crate) fn new() -> io::Result<Self> {
        Ok(Self {
            poll: register(Poll::new()?)?,
            events: Events::with_capacity(256),
            slots: Vec::new(),
            free: Vec::new(),
            deadlines: VecDeque::new(),
            generation: 0,
            len: 0,
            ready: Vec::new(),
        })
    }

    /// Connections waiting now.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// When the oldest waiting connection times out.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.front().map(|d| d.0)
    }

    /// Puts a non-blocking socket in the room until its first byte or `timeout`. On error the
    /// socket is handed back.
    pub(crate) fn insert(
        &mut self,
        socket: TcpStream,
        peer: SocketAddr,
        guard: G,
        timeout: Duration,
    ) -> Result<(), Arrived<G>> {
        let slot = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(None);
                self.slots.len() - 1
            }
        };
        let fd = socket.as_raw_fd();
        if self.poll.get_ref().registry().register(&mut SourceFd(&fd), Token(slot), Interest::READABLE).is_err() {
            self.free.push(slot);
            return Err(Arrived { socket, peer, guard });
        }
        self.generation = self.generation.wrapping_add(1);
        let generation = self.generation;
        if let Some(s) = self.slots.get_mut(slot) {
            *s = Some(Waiting { socket, peer, guard, generation });
        }
        self.deadlines.push_back((Instant::now() + timeout, slot, generation));
        self.len += 1;
        Ok(())
    }

    fn take(&mut self, slot: usize) -> Option<Waiting<G>> {
        let w = self.slots.get_mut(slot)?.take()?;
        let _ = self.poll.get_ref().registry().deregister(&mut SourceFd(&w.socket.as_raw_fd()));
        self.free.push(slot);
        self.len -= 1;
        // Deadlines of connections that already left are dropped when they reach the front;
        // keep them from piling up under a high connection rate.
        if self.deadlines.len() > 2 * self.len + 1024 {
            let slots = &self.slots;
            self.deadlines
                .retain(|&(_, s, g)| slots.get(s).and_then(Option::as_ref).is_some_and(|w| w.generation == g));
        }
        Some(w)
    }

    /// Waits until some waiting connections have something to read.
    pub(crate) async fn readable(&self) -> io::Result<()> {
        let mut guard = self.poll.readable().await?;
        // Drained completely by `arrived` below; a new event re-arms the edge.
        guard.clear_ready();
        Ok(())
    }

    /// Takes every connection that became readable out of the room and hands it to `start`.
    pub(crate) fn arrived(&mut self, mut start: impl FnMut(Arrived<G>)) {
        loop {
            if self.poll.get_mut().poll(&mut self.events, Some(Duration::ZERO)).is_err() {
                return;
            }
            let mut ready = std::mem::take(&mut self.ready);
            ready.extend(self.events.iter().map(|e| e.token().0));
            let full = ready.len() == self.events.capacity();
            for slot in ready.drain(..) {
                if let Some(w) = self.take(slot) {
                    start(Arrived { socket: w.socket, peer: w.peer, guard: w.guard });
                }
            }
            self.ready = ready;
            if !full {
                return;
            }
        }
    }

    /// Closes connections whose deadline passed; how many.
    pub(crate) fn expire(&mut self, now: Instant) -> usize {
        let mut closed = 0;
        while let Some(&(deadline, slot, generation)) = self.deadlines.front() {
            let live = self.slots.get(slot).and_then(Option::as_ref).is_some_and(|w| w.generation == generation);
            if live && deadline > now {
                break;
            }
            self.deadlines.pop_front();
            if live {
                // Dropping the socket closes it; dropping the guard updates the gauges.
                drop(self.take(slot));
                closed += 1;
            }
        }
        closed
    }
}

/// Watches a file-descriptor owner in the worker's runtime.
pub(crate) trait OwnsFd: AsRawFd {}
impl OwnsFd for Poll {}
impl OwnsFd for std::net::TcpListener {}

/// Registers `inner` with the runtime (tokio 1.54 made this `unsafe`, as `AsyncFd` cannot tell
/// whether `T` owns its fd). Only types that own their fd implement [`OwnsFd`].
#[allow(unsafe_code)]
pub(crate) fn register<T: OwnsFd>(inner: T) -> io::Result<AsyncFd<T>> {
    // SAFETY: `T` owns its file descriptor (an epoll instance or a listening socket): it stays
    // open, and `as_raw_fd` returns the same fd, until the `AsyncFd` that now owns `T` drops it.
    unsafe { AsyncFd::register(inner) }.map_err(io::Error::from)
}
