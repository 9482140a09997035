//! A kernel-free TCP/UDP/ICMP stack over IPv4 and IPv6, sans-IO: packets in
//! with `now`, packets out, and `poll_at()` for the next timer.
//!
//! Start at [`Stack`]: its documentation lists the calls a driver makes and
//! in which order. Wire formats live in [`wire`] (typed views + `Repr`s),
//! the TCP state machine in [`tcp`].
#![forbid(unsafe_code)]

pub mod error;
pub mod frag;
pub mod queue;
pub mod rand;
pub mod ring;
pub mod slab;
pub mod stack;
pub mod tcp;
pub mod udp;
pub mod wire;

pub use error::Error;
pub use stack::{
    ListenerHandle, SocketEvent, SocketEventKind, SocketHandle, Stack, StackConfig, Stats,
    TcpHandle, UdpHandle,
};
pub use tcp::{State as TcpState, TcpConfig};
