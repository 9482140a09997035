//! The control protocol spoken between the LD_PRELOAD shim and the engine:
//! message types and their wire encoding, defined in exactly one place.
//!
//! # Transport
//!
//! The engine listens on one unix stream socket (path in [`ENV_CONTROL`],
//! inside a private 0700 directory; the engine also checks `SO_PEERCRED`).
//! Every exchange is a fresh connection that starts with one [`Request`]
//! frame:
//!
//! * **Queries** (`Route`, `FlowStatus`, `Bind`, `Listen`, `AcceptLookup`,
//!   `Adopt`, `TcpKeepalive`):
//!   the engine answers with one [`Reply`] frame and closes.
//! * **`DnsInfo`**: answered with [`Reply::DnsInfo`].
//! * **`Resolve`**: answered with one [`dns::ResolveReply`] in its own long
//!   frame (see [`dns`]), then the engine closes.
//! * **`Hello`**: fire and forget, no reply.
//! * **`SeccompAttach`**: answered with [`Reply::Done`] once the engine
//!   supervises the filter (or with the errno why it cannot).
//! * **`Hold`**: no reply; the connection stays open for the life of the
//!   processes started under wrapguard (the shim opens it at load, before
//!   a program can drop its privileges, and keeps it across `fork` and
//!   `exec`: `WRAPGUARD_HOLD`). The engine runs while a hold is open. On
//!   it come `Hello` frames (a process joined) and `Serve` frames, each
//!   with one end of a new socket pair (`SCM_RIGHTS`) that the engine
//!   serves as a control connection authorised by the hold: how a process
//!   that dropped its privileges (`setuid`) still reaches the engine.
//! * **`Session`**: no frame reply; the connection switches to JSON lines
//!   (the launcher's and the subcommands' session protocol, defined in the
//!   engine crate's `session` module). The shim never sends it.
//! * **`UdpOpen`**: the engine answers one [`Reply::Udp`] frame; when it is
//!   [`UdpReply::Opened`], the frame carries (`SCM_RIGHTS`) one end of a
//!   `SOCK_SEQPACKET` socket pair whose other end the engine keeps. Each
//!   message on it is one datagram: a [`datagram::Header`] followed by the
//!   payload (see [`datagram`]). `UdpConnect` is a query on an open one.
//!   With [`DatagramFraming::Plain`] (a program that reads the socket
//!   itself, seccomp mode) each message is exactly one payload and the flow
//!   is connected to one peer; see [`DatagramFraming`].
//! * **`Connect`**: the connection *becomes the data socket* of one TCP flow.
//!   The engine answers with one [`Reply::Connect`]. If it is
//!   [`ConnectReply::Accepted`], the shim writes exactly [`FILLER_LEN`] bytes
//!   of [`FILLER_BYTE`], swaps the socket onto the application's fd, and from
//!   then on the stream carries only application bytes in both directions.
//!   The engine discards the filler once the tunnel connection is
//!   established (this is what turns `POLLOUT` on for the application), or
//!   closes the socket with the filler unread if it failed (the application
//!   sees `POLLERR|POLLHUP`, and the shim asks `FlowStatus` for the errno).
//!
//! A connection per exchange means no shared channel to lock between
//! threads and nothing to re-open after `fork`.
//!
//! # Frame encoding
//!
//! ```text
//! u16 LE  length of what follows (2..=MAX_FRAME-2)
//! u8      PROTOCOL_VERSION
//! u8      message tag
//! ...     fields, fixed order, integers big-endian
//! ```
//!
//! A socket address is `u8 family (4|6)`, the address bytes, `u16 port`, and
//! for IPv6 also `u32 flowinfo`, `u32 scope_id`. Decoding checks every length
//! and every tag and never panics; trailing bytes inside a frame are an error.
#![forbid(unsafe_code)]

// Modules from the top down: `message` (the two enums and their encoding)
// uses the families' field types (`flow`, `listen`, `udp`, `dns`), which use
// the framing (`wire`) and `addr` at the bottom. Beside them, decisions the
// shim and seccomp mode share: `connect` (what a `connect()` means, over
// `flow`'s `RouteDecision` and `addr`) and `echo`; `program` stands apart.
mod addr;
pub mod connect;
pub mod datagram;
pub mod dns;
pub mod echo;
mod env;
mod flow;
mod listen;
mod message;
pub mod program;
mod udp;
mod wire;

pub use addr::normalize;
pub use dns::{DnsInfo, QueryName, ResolveKind, ResolveReply, ResolveRequest, ResolveStatus};
pub use env::{ENV_CONTROL, ENV_HOLD, ENV_LAUNCHER, ENV_PRELOAD, SECCOMP_EXEC_ARG};
pub use flow::{
    ConnectReply, ConnectRequest, FlowInfo, FlowState, Proto, RouteDecision, TcpFlowInfo,
    TcpKeepalive, FILLER_BYTE, FILLER_LEN,
};
pub use listen::AcceptedPeer;
pub use message::{Reply, Request};
pub use udp::{DatagramFraming, DatagramKind, UdpOpenRequest, UdpReply};
pub use wire::{frame_len, DecodeError, EncodeError, MAX_FRAME, PREFIX_LEN, PROTOCOL_VERSION};

#[cfg(test)]
mod tests;
