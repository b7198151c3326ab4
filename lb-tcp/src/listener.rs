//! Listening sockets: one `SO_REUSEPORT` socket per worker per address, so the kernel spreads
//! connections over workers with no shared accept queue.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// Binds a non-blocking `SO_REUSEPORT` listener (IPv6 sockets are v6-only, so `[::]` and
/// `0.0.0.0` can both be bound).
pub fn bind_reuseport(addr: SocketAddr, backlog: i32) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into()).map_err(|e| io::Error::new(e.kind(), format!("cannot bind {addr}: {e}")))?;
    socket.listen(backlog)?;
    Ok(socket.into())
}

/// Checks that `addr` can be bound by this process's reuseport group (not taken by another
/// program), without listening; used to vet a new config before workers see it.
pub fn probe_bind(addr: SocketAddr) -> io::Result<()> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into()).map_err(|e| io::Error::new(e.kind(), format!("cannot bind {addr}: {e}")))
}
