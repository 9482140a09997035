//! Socket errors and the Linux errno each maps to.

use core::fmt;

/// Linux errno values (asm-generic/errno*.h), hard-coded so the library
/// needs no libc.
pub mod errno {
    /// Bad file descriptor (invalid handle).
    pub const EBADF: i32 = 9;
    /// Try again.
    pub const EAGAIN: i32 = 11;
    /// Invalid argument.
    pub const EINVAL: i32 = 22;
    /// Broken pipe.
    pub const EPIPE: i32 = 32;
    /// Message too long.
    pub const EMSGSIZE: i32 = 90;
    /// Address already in use.
    pub const EADDRINUSE: i32 = 98;
    /// Cannot assign requested address.
    pub const EADDRNOTAVAIL: i32 = 99;
    /// Network is unreachable.
    pub const ENETUNREACH: i32 = 101;
    /// Connection reset by peer.
    pub const ECONNRESET: i32 = 104;
    /// No buffer space available.
    pub const ENOBUFS: i32 = 105;
    /// Transport endpoint is already connected.
    pub const EISCONN: i32 = 106;
    /// Transport endpoint is not connected.
    pub const ENOTCONN: i32 = 107;
    /// Connection timed out.
    pub const ETIMEDOUT: i32 = 110;
    /// Connection refused.
    pub const ECONNREFUSED: i32 = 111;
    /// No route to host.
    pub const EHOSTUNREACH: i32 = 113;
}

/// An error from a socket operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// Nothing to read / no room to write now; retry after an event.
    WouldBlock,
    /// The peer refused the connection (RST to SYN, ICMP port unreachable).
    ConnectionRefused,
    /// The peer reset the connection.
    ConnectionReset,
    /// Retransmissions or the connection attempt timed out.
    TimedOut,
    /// ICMP host/net unreachable for a connection attempt.
    HostUnreachable,
    /// Writing after shutdown of the write side or after the peer reset.
    BrokenPipe,
    /// The local address/port is taken.
    AddrInUse,
    /// The local address is not one of the stack's addresses, or no
    /// ephemeral port is free.
    AddrNotAvailable,
    /// The handle does not name a live socket.
    InvalidHandle,
    /// The operation needs a connected socket.
    NotConnected,
    /// The socket is already connected.
    AlreadyConnected,
    /// An argument is invalid (e.g. address families differ).
    InvalidArgument,
    /// A datagram does not fit the MTU or the buffer.
    MessageTooLong,
    /// A bounded table or queue is full.
    NoBufferSpace,
}

impl Error {
    /// The errno a Linux program expects for this error.
    pub fn errno(self) -> i32 {
        use errno::*;
        match self {
            Error::WouldBlock => EAGAIN,
            Error::ConnectionRefused => ECONNREFUSED,
            Error::ConnectionReset => ECONNRESET,
            Error::TimedOut => ETIMEDOUT,
            Error::HostUnreachable => EHOSTUNREACH,
            Error::BrokenPipe => EPIPE,
            Error::AddrInUse => EADDRINUSE,
            Error::AddrNotAvailable => EADDRNOTAVAIL,
            Error::InvalidHandle => EBADF,
            Error::NotConnected => ENOTCONN,
            Error::AlreadyConnected => EISCONN,
            Error::InvalidArgument => EINVAL,
            Error::MessageTooLong => EMSGSIZE,
            Error::NoBufferSpace => ENOBUFS,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::WouldBlock => "operation would block",
            Error::ConnectionRefused => "connection refused",
            Error::ConnectionReset => "connection reset by peer",
            Error::TimedOut => "connection timed out",
            Error::HostUnreachable => "no route to host",
            Error::BrokenPipe => "broken pipe",
            Error::AddrInUse => "address already in use",
            Error::AddrNotAvailable => "cannot assign requested address",
            Error::InvalidHandle => "invalid socket handle",
            Error::NotConnected => "socket is not connected",
            Error::AlreadyConnected => "socket is already connected",
            Error::InvalidArgument => "invalid argument",
            Error::MessageTooLong => "message too long",
            Error::NoBufferSpace => "no buffer space available",
        })
    }
}

impl std::error::Error for Error {}
