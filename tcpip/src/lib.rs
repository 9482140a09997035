//! A kernel-free TCP/UDP/ICMP stack over IPv4 and IPv6, sans-IO: packets in
//! with `now`, packets out, and `poll_at()` for the next timer.
//!
//! Start at [`Stack`]: its documentation lists the calls a driver makes and
//! in which order. Wire formats live in [`wire`] (typed views + `Repr`s),
//! the TCP state machine in [`tcp`].
//!
//! ```
//! use std::net::SocketAddr;
//! use std::time::Instant;
//! use tcpip::{Stack, StackConfig};
//!
//! let mut st = Stack::new(StackConfig {
//!     addresses: vec!["10.88.0.2".parse().unwrap()],
//!     ..StackConfig::default()
//! });
//! let now = Instant::now();
//! let l = st.tcp_listen("10.88.0.2:80".parse::<SocketAddr>().unwrap(), 128).unwrap();
//! let c = st.tcp_connect(now, None, "10.88.0.1:443".parse().unwrap()).unwrap();
//! let mut buf = [0u8; 1420];
//! let n = st.poll_transmit(now, &mut buf).unwrap(); // the SYN, a whole IPv4 packet
//! assert_eq!(buf[0] >> 4, 4);
//! assert!(n <= 1420);
//! # let _ = (l, c);
//! ```
//!
//! Tests: `tests/kernel.rs` talks to the Linux kernel through a TUN device in
//! a private network namespace (root; skipped loudly otherwise),
//! `tests/sim.rs` runs two stacks over a simulated lossy link and prints a
//! throughput table (`cargo test -p wrapguard-tcpip --test sim -- --nocapture`),
//! `src/tcp/tests/` holds one state-machine test per RFC rule.
#![forbid(unsafe_code)]

pub mod error;
pub mod frag;
pub mod frag_out;
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
