//! Kernel steering: a classic BPF program on a `SO_REUSEPORT` UDP socket group that returns, for
//! each datagram, the index of the worker socket owning its connection ID ([`Layout::owner`]).
//! The index of a socket is its position in the group, i.e. the order the sockets were bound;
//! the daemon binds a group's sockets in worker order on one thread and never closes one alone.
//! Datagrams the program cannot place fall back to the kernel's 4-tuple hash (and then to the
//! forwarding path in [`crate::socket`]).
//!
//! One of the two places in lbd with `unsafe` (the other registers fds with tokio, in lb-tcp's
//! waiting room): the `setsockopt` call, which libc and socket2 do
//! not wrap for `SO_ATTACH_REUSEPORT_CBPF`.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::AsRawFd;

use crate::cid::Layout;

const LD_B_ABS: u16 = 0x30; // BPF_LD | BPF_B | BPF_ABS
const JSET_K: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
const JGT_K: u16 = 0x25; // BPF_JMP | BPF_JGT | BPF_K
const MOD_K: u16 = 0x94; // BPF_ALU | BPF_MOD | BPF_K
const RET_A: u16 = 0x16; // BPF_RET | BPF_A
const RET_K: u16 = 0x06; // BPF_RET | BPF_K

/// One classic BPF instruction (`struct sock_filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    /// Opcode.
    pub code: u16,
    /// Jump offset if true.
    pub jt: u8,
    /// Jump offset if false.
    pub jf: u8,
    /// Constant.
    pub k: u32,
}

const fn insn(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
    Insn { code, jt, jf, k }
}

/// The program for `layout`. The kernel runs it with the UDP payload at offset 0; a load past
/// the end of a short datagram ends it with 0 (worker 0 then forwards if need be).
pub fn program(layout: &Layout) -> Vec<Insn> {
    let k = u32::try_from(layout.worker_offset()).unwrap_or(0);
    let n = u32::try_from(layout.workers).unwrap_or(1).max(1);
    vec![
        insn(LD_B_ABS, 0, 0, 0),     // 0: A = first octet
        insn(JSET_K, 3, 0, 0x80),    // 1: long header? → 5
        insn(LD_B_ABS, 0, 0, 1 + k), // 2: short: A = DCID[k]
        insn(MOD_K, 0, 0, n),        // 3: A %= workers
        insn(RET_A, 0, 0, 0),        // 4: socket A
        insn(LD_B_ABS, 0, 0, 5),     // 5: long: A = DCID length
        insn(JGT_K, 0, 3, k),        // 6: length > k? → 7, else → 10
        insn(LD_B_ABS, 0, 0, 6 + k), // 7: A = DCID[k]
        insn(MOD_K, 0, 0, n),        // 8: A %= workers
        insn(RET_A, 0, 0, 0),        // 9: socket A
        insn(RET_K, 0, 0, u32::MAX), // 10: out of range: the kernel's hash decides
    ]
}

/// Runs `prog` on `payload` as the kernel would (for tests of the program itself).
pub fn run(prog: &[Insn], payload: &[u8]) -> u32 {
    let mut a: u32 = 0;
    let mut pc = 0usize;
    while let Some(i) = prog.get(pc) {
        pc += 1;
        match i.code {
            LD_B_ABS => match payload.get(i.k as usize) {
                Some(b) => a = u32::from(*b),
                None => return 0,
            },
            JSET_K => pc += usize::from(if a & i.k != 0 { i.jt } else { i.jf }),
            JGT_K => pc += usize::from(if a > i.k { i.jt } else { i.jf }),
            MOD_K => a %= i.k,
            RET_A => return a,
            RET_K => return i.k,
            _ => return 0,
        }
    }
    0
}

/// Attaches the program for `layout` to the group `socket` belongs to.
pub fn attach(socket: &impl AsRawFd, layout: &Layout) -> io::Result<()> {
    let mut filters: Vec<libc::sock_filter> =
        program(layout).into_iter().map(|i| libc::sock_filter { code: i.code, jt: i.jt, jf: i.jf, k: i.k }).collect();
    let prog = libc::sock_fprog {
        len: u16::try_from(filters.len()).map_err(|_| io::Error::other("program too long"))?,
        filter: filters.as_mut_ptr(),
    };
    let len = libc::socklen_t::try_from(std::mem::size_of::<libc::sock_fprog>())
        .map_err(|_| io::Error::other("sock_fprog size"))?;
    // SAFETY: `prog` points at `filters`, which outlives the call; the kernel copies the program
    // during setsockopt and keeps no pointer to our memory. `len` is the size of `prog`.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_REUSEPORT_CBPF,
            std::ptr::from_ref(&prog).cast(),
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cid::WorkerCids;
    use quinn::ConnectionIdGenerator;

    #[test]
    fn program_agrees_with_the_forwarding_rule() {
        for workers in [2, 3, 8] {
            let layout = Layout::new(vec![0xab], workers);
            let prog = program(&layout);
            for w in 0..workers {
                let mut g = WorkerCids::new(layout.clone(), w);
                for _ in 0..50 {
                    let cid = g.generate_cid();
                    let mut short = vec![0x41];
                    short.extend_from_slice(&cid);
                    short.extend_from_slice(&[0; 20]);
                    assert_eq!(run(&prog, &short) as usize, w);
                    let mut long = vec![0xc3, 0, 0, 0, 1, u8::try_from(cid.len()).unwrap_or(0)];
                    long.extend_from_slice(&cid);
                    long.extend_from_slice(&[0; 20]);
                    assert_eq!(run(&prog, &long) as usize, w);
                    assert_eq!(layout.owner(&long), Some(w));
                }
            }
            // A long header whose DCID is too short: out of range, the kernel hashes.
            assert_eq!(run(&prog, &[0xc0, 0, 0, 0, 1, 1, 9, 0, 0]), u32::MAX);
        }
    }

    /// The kernel accepts the program and steers by it: datagrams carrying worker 1's IDs all
    /// reach the second socket of the group, worker 0's the first.
    #[test]
    fn kernel_steers_by_connection_id() {
        let bind = |addr: std::net::SocketAddr| -> std::net::UdpSocket {
            let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).expect("socket");
            s.set_reuse_port(true).expect("reuseport");
            s.bind(&addr.into()).expect("bind");
            s.into()
        };
        let first = bind("127.0.0.1:0".parse().expect("addr"));
        let addr = first.local_addr().expect("addr");
        let second = bind(addr);
        let layout = Layout::new(vec![], 2);
        attach(&first, &layout).expect("attach CBPF");
        for s in [&first, &second] {
            s.set_read_timeout(Some(std::time::Duration::from_secs(2))).expect("timeout");
        }
        let client = std::net::UdpSocket::bind("127.0.0.1:0").expect("client");
        for round in 0..20 {
            for (w, sock) in [(0usize, &first), (1, &second)] {
                let cid = WorkerCids::new(layout.clone(), w).generate_cid();
                let mut pkt = vec![0x40];
                pkt.extend_from_slice(&cid);
                pkt.push(round);
                client.send_to(&pkt, addr).expect("send");
                let mut buf = [0u8; 64];
                let (n, _) = sock.recv_from(&mut buf).expect("datagram reached its worker's socket");
                assert_eq!(&buf[..n], &pkt[..]);
            }
        }
    }
}
