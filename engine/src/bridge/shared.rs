//! What every task of the bridge shares: the backend, the flow records,
//! the inbound bookkeeping and, for a shared engine, its leases.

use super::recent::Recent;
use crate::backlog::Ticket;
use crate::dns_resolver::DnsService;
use crate::session::holds::Holds;
use crate::session::Host;
use crate::{FlowBackend, InboundTcp};
use control::{AcceptedPeer, FlowInfo, FlowState};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

use super::supervise::Supervise;

/// The bridge's state, behind one `Arc`.
pub(super) struct Shared {
    pub(super) backend: Arc<dyn FlowBackend>,
    pub(super) uid: u32,
    pub(super) next_flow: AtomicU64,
    /// Flow outcomes, kept a while after the end for `FlowStatus`.
    pub(super) flows: Mutex<Recent<u64, FlowState>>,
    /// Live outgoing flows: bridge flow id → the backend's id.
    pub(super) backend_ids: Mutex<HashMap<u64, u64>>,
    /// Live data sockets by the inode of the shim's end (for `Adopt`).
    pub(super) by_inode: Mutex<HashMap<u64, FlowInfo>>,
    /// Engine-side loopback source address → who it stands for.
    pub(super) inbound: Mutex<Recent<SocketAddr, AcceptedPeer>>,
    /// Places in the engine's listener backlogs of inbound connections the
    /// program has not accepted yet, by the same loopback source address:
    /// freed when its `accept()` asks (`AcceptLookup`) or the flow ends.
    pub(super) tickets: Mutex<HashMap<SocketAddr, (Ticket, OwnedSemaphorePermit)>>,
    /// Per program listener (loopback address): how many of our loopback
    /// connections may wait in its accept queue ([`ACCEPT_GATE`]).
    pub(super) gates: Mutex<HashMap<SocketAddr, Arc<Semaphore>>>,
    pub(super) inbound_tx: mpsc::Sender<InboundTcp>,
    /// The stub resolver, when the config has `DNS =`.
    pub(super) dns: Option<Arc<DnsService>>,
    /// Our control socket's path, for the seccomp supervisors we start.
    pub(super) control_path: Option<std::path::PathBuf>,
    /// Who supervises a process that goes under seccomp mode, if anyone.
    pub(super) supervisor: Option<Arc<dyn Supervise>>,
    /// The shared engine's leases, when this engine is shared (session
    /// requests are refused otherwise).
    pub(super) host: Option<Arc<Host>>,
    /// What holds the engine besides the leases ([`Holds`]).
    pub(super) holds: Arc<Holds>,
    /// Sockets passed on holds, for the accept loop to serve.
    pub(super) passed_tx: mpsc::Sender<tokio::net::UnixStream>,
    /// The process that asked for each live outgoing flow (`SO_PEERCRED`),
    /// for the per-program report.
    pub(super) flow_pids: Mutex<HashMap<u64, u32>>,
    /// Turns `true` once the engine is taken down ([`Host::take_down`]):
    /// live flows are cut with `ECONNRESET`, new ones refused with `ENETDOWN`.
    pub(super) cut: watch::Receiver<bool>,
    /// Keeps an unshared engine's `cut` open (a closed one would read as cut).
    pub(super) _never_cut: Option<watch::Sender<bool>>,
}
