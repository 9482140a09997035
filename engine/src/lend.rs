//! What the engine thread lends its flow tables ([`crate::tcp_flows`],
//! [`crate::udp_flows`]) for one call: the stack and the few shared pieces
//! they act on. The thread owns all of it; the tables own only their flows.

use crate::command::Command;
use crate::counters::Counters;
use crate::flow::Kick;
use crossbeam_queue::SegQueue;
use mio::Poll;
use router::Router;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use tcpip::Stack;

/// Borrowed parts of the engine thread's state (see the module doc).
pub struct Lent<'a> {
    /// The TCP/IP stack.
    pub stack: &'a mut Stack,
    /// The routing table (only routed destinations are carried).
    pub router: &'a Router,
    /// The poller datagram flows register their data sockets in.
    pub poll: &'a Poll,
    /// Engine counters.
    pub counters: &'a mut Counters,
    /// Count of live flows, for the launcher.
    pub live: &'a AtomicUsize,
    /// Flow kicks (the bridge's wake-ups of the engine thread).
    pub kick: &'a Arc<Kick>,
    /// The command queue (a released backlog place queues `AcceptMore`).
    pub commands: &'a Arc<SegQueue<Command>>,
}
