//! The UDP socket a worker's quinn endpoint reads and writes: quinn-udp's socket state (GSO,
//! GRO, `recvmmsg`, ECN, packet info) on the worker's own `SO_REUSEPORT` socket, plus the
//! forwarding path. A datagram whose connection ID belongs to another worker
//! ([`Layout::owner`]) is never shown to this worker's endpoint (it would answer with a stateless
//! reset): it goes to its owner's inbox, a bounded crossbeam queue, and the owner is woken. Each
//! receive first drains this worker's own inbox.
//!
//! quinn's socket trait asks for `Send + Sync`, so the forwarded-packet counters are atomics;
//! only this worker writes them (relaxed, uncontended).

use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use atomic_waker::AtomicWaker;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use quinn::udp::{EcnCodepoint, RecvMeta, Transmit, UdpSocketState};
use quinn::{AsyncUdpSocket, UdpPoller};
use tokio::io::Interest;

use crate::cid::Layout;

/// A datagram handed to its owner by the worker that received it.
#[derive(Debug)]
pub struct Forwarded {
    data: Vec<u8>,
    src: SocketAddr,
    dst_ip: Option<IpAddr>,
    ecn: Option<EcnCodepoint>,
}

struct Slot {
    tx: Sender<Forwarded>,
    rx: Receiver<Forwarded>,
    waker: Arc<AtomicWaker>,
}

/// The forwarding queues of one socket group, one inbox per worker. Made once per address by
/// the daemon; each worker takes its [`MeshPart`].
pub struct Mesh {
    slots: Vec<Slot>,
}

impl fmt::Debug for Mesh {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mesh").field("workers", &self.slots.len()).finish()
    }
}

impl Mesh {
    /// Inboxes for `workers` workers, each holding at most `capacity` datagrams.
    pub fn new(workers: usize, capacity: usize) -> Self {
        let slots = (0..workers)
            .map(|_| {
                let (tx, rx) = crossbeam_channel::bounded(capacity);
                Slot { tx, rx, waker: Arc::new(AtomicWaker::new()) }
            })
            .collect();
        Self { slots }
    }

    /// Worker `worker`'s inbox and its way to every other worker.
    pub fn part(&self, worker: usize) -> Option<MeshPart> {
        let own = self.slots.get(worker)?;
        Some(MeshPart {
            worker,
            inbox: own.rx.clone(),
            waker: own.waker.clone(),
            peers: self.slots.iter().map(|s| (s.tx.clone(), s.waker.clone())).collect(),
        })
    }
}

/// One worker's end of a [`Mesh`].
pub struct MeshPart {
    worker: usize,
    inbox: Receiver<Forwarded>,
    waker: Arc<AtomicWaker>,
    peers: Vec<(Sender<Forwarded>, Arc<AtomicWaker>)>,
}

impl fmt::Debug for MeshPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeshPart").field("worker", &self.worker).finish_non_exhaustive()
    }
}

/// Forwarding counters of one worker's socket.
#[derive(Debug, Default)]
pub struct ForwardStats {
    /// Datagrams this worker received for another worker's connection and handed over.
    pub forwarded: AtomicU64,
    /// Datagrams dropped because the owner's inbox was full.
    pub dropped: AtomicU64,
}

/// A worker's UDP socket for quinn.
pub struct WorkerSocket {
    io: tokio::net::UdpSocket,
    state: UdpSocketState,
    layout: Layout,
    mesh: MeshPart,
    stats: Arc<ForwardStats>,
}

impl fmt::Debug for WorkerSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerSocket").field("local", &self.io.local_addr().ok()).finish_non_exhaustive()
    }
}

impl WorkerSocket {
    /// Wraps a bound, non-blocking socket of the group (must be called inside the runtime).
    pub fn new(
        socket: std::net::UdpSocket,
        layout: Layout,
        mesh: MeshPart,
        stats: Arc<ForwardStats>,
    ) -> io::Result<Self> {
        socket.set_nonblocking(true)?;
        let state = UdpSocketState::new((&socket).into())?;
        let io = tokio::net::UdpSocket::from_std(socket)?;
        Ok(Self { io, state, layout, mesh, stats })
    }

    /// Fills `bufs` from the inbox; how many it filled.
    fn drain_inbox(&self, bufs: &mut [IoSliceMut<'_>], meta: &mut [RecvMeta]) -> usize {
        let mut n = 0;
        for (buf, m) in bufs.iter_mut().zip(meta.iter_mut()) {
            let Ok(f) = self.mesh.inbox.try_recv() else { break };
            let len = f.data.len().min(buf.len());
            buf[..len].copy_from_slice(&f.data[..len]);
            *m = RecvMeta { addr: f.src, len, stride: len.max(1), ecn: f.ecn, dst_ip: f.dst_ip };
            n += 1;
        }
        n
    }

    /// Hands every datagram of another worker's connection to its owner, keeping this worker's
    /// datagrams in place (GRO segments are compacted; a buffer left empty gets length 0, which
    /// quinn skips).
    fn route(&self, bufs: &mut [IoSliceMut<'_>], meta: &mut [RecvMeta], msgs: usize) {
        let me = self.mesh.worker;
        for (buf, m) in bufs.iter_mut().zip(meta.iter_mut()).take(msgs) {
            let stride = m.stride.max(1);
            let len = m.len.min(buf.len());
            // Fast path: every segment is ours (always so with CBPF steering, but for migrations).
            if buf[..len].chunks(stride).all(|seg| self.layout.owner(seg).is_none_or(|o| o == me)) {
                continue;
            }
            let mut kept = 0;
            let mut start = 0;
            while start < len {
                let end = (start + stride).min(len);
                match self.layout.owner(&buf[start..end]) {
                    Some(owner) if owner != me => self.forward(owner, &buf[start..end], m),
                    _ => {
                        buf.copy_within(start..end, kept);
                        kept += end - start;
                    }
                }
                start = end;
            }
            m.len = kept;
        }
    }

    fn forward(&self, owner: usize, datagram: &[u8], m: &RecvMeta) {
        let Some((tx, waker)) = self.mesh.peers.get(owner) else { return };
        let f = Forwarded { data: datagram.to_vec(), src: m.addr, dst_ip: m.dst_ip, ecn: m.ecn };
        match tx.try_send(f) {
            Ok(()) => {
                self.stats.forwarded.fetch_add(1, Ordering::Relaxed);
                waker.wake();
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl AsyncUdpSocket for WorkerSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Box::pin(Writable { socket: self })
    }

    fn try_send(&self, transmit: &Transmit<'_>) -> io::Result<()> {
        self.io.try_io(Interest::WRITABLE, || self.state.send((&self.io).into(), transmit))
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let n = self.drain_inbox(bufs, meta);
        if n > 0 {
            return Poll::Ready(Ok(n));
        }
        self.mesh.waker.register(cx.waker());
        // A datagram queued between the drain and the registration would not wake us.
        if !self.mesh.inbox.is_empty() {
            let n = self.drain_inbox(bufs, meta);
            return Poll::Ready(Ok(n));
        }
        loop {
            std::task::ready!(self.io.poll_recv_ready(cx))?;
            if let Ok(msgs) = self.io.try_io(Interest::READABLE, || self.state.recv((&self.io).into(), bufs, meta)) {
                self.route(bufs, meta, msgs);
                return Poll::Ready(Ok(msgs));
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.local_addr()
    }

    fn may_fragment(&self) -> bool {
        self.state.may_fragment()
    }

    fn max_transmit_segments(&self) -> usize {
        self.state.max_gso_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.state.gro_segments()
    }
}

/// quinn's writability poller for [`WorkerSocket`].
struct Writable {
    socket: Arc<WorkerSocket>,
}

impl fmt::Debug for Writable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Writable")
    }
}

impl UdpPoller for Writable {
    fn poll_writable(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.socket.io.poll_send_ready(cx)
    }
}
