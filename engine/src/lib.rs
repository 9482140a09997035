//! The wrapguard engine: the runtime that drives the WireGuard protocol
//! (`noise`), the TCP/IP stack (`tcpip`) and the router (`router`) on a
//! real UDP socket, and carries the flows of its front-ends.
//!
//! Read it in data-path order, top to bottom (each module uses only those
//! below it; `docs/ARCHITECTURE.md` has the whole map):
//!
//! * Front-end: [`bridge`] serves the control socket — the shim's and the
//!   seccomp supervisor's requests — and splices data sockets to flows.
//!   Processes that go under seccomp mode are handed to a
//!   [`bridge::Supervise`] hook (the `seccomp` crate implements it).
//!   Its session requests (launchers attached to a shared engine, and the
//!   `up`/`status`/`down` subcommands) are defined in [`session`], whose
//!   [`session::Host`] holds the leases.
//! * The boundary: [`FlowBackend`] (module `backend`) is what a front-end
//!   asks of whatever carries flows; [`dns_resolver`] answers name lookups
//!   on top of it.
//! * The real backend: [`tunnel::TunnelBackend`] ([`tunnel::start`] reads
//!   the config and spawns the engine thread) turns each call into a
//!   command for the engine thread; [`loopback`] is a test-only backend.
//! * The engine thread: [`stack_thread::Engine`] owns the stack, the
//!   device and the UDP socket, and drives the TCP flow table
//!   (`tcp_flows`), the datagram flows (`udp_flows`), the engine's own DNS
//!   queries (`dns_udp`) and the peer socket (`endpoint`, batching in
//!   `udp_tx`), lending them the stack per call (`lend`).
//! * Shared pieces at the bottom: [`flow`] (the lock-free queues between a
//!   bridge flow and the engine thread), `command`, `peer_state`, [`reach`]
//!   (is a peer answering), [`backlog`], [`counters`], [`status`],
//!   [`seqpacket`] (datagram data sockets), `packet` and `addr`.

#![deny(clippy::undocumented_unsafe_blocks)]

mod addr;
mod backend;
pub mod backlog;
pub mod bridge;
mod command;
pub mod counters;
mod crypto_pool;
pub mod dns_resolver;
mod dns_udp;
mod echo_flow;
mod endpoint;
pub mod flow;
pub mod flow_report;
mod lend;
pub mod loopback;
mod packet;
mod peer_state;
pub mod reach;
pub mod seqpacket;
pub mod session;
pub mod stack_thread;
pub mod status;
mod tcp_direct;
mod tcp_flows;
pub mod tunnel;
mod udp_flows;
#[cfg(test)]
mod udp_plain_tests;
mod udp_rx;
mod udp_tx;
mod uncarried;

pub use backend::{
    BackendInfo, BoxedIo, DirectDone, DirectEnd, DnsAnswer, Errno, Establishing, FlowBackend,
    FlowIo, HandshakeWait, InboundSink, InboundTcp, ListenSpec, OpenedUdp, OutboundTcp,
};
pub use status::PeerStatus;
