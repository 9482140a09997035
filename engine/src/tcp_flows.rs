//! TCP flows on the engine thread: each ties a stack TCP socket to the
//! queues ([`FlowShared`]) of one bridge flow. Application bytes go up into
//! the socket's send buffer when a kick or a `Writable` event says so;
//! received bytes come down into the flow's queue; FIN, RST and errors are
//! passed on as a kernel socket would. Tunnel listeners accept into
//! [`InboundTcp`]s for the bridge, bounded by the listener backlog
//! ([`crate::backlog`]).
//!
//! [`TcpFlows`] owns the flow and listener tables; the engine thread
//! ([`crate::stack_thread`]) lends it the stack and the rest for each call
//! ([`Lent`]).

use crate::backlog::{Pending, MAX_PENDING, STACK_BACKLOG};
use crate::command::Command;
use crate::flow::{FlowShared, TunnelStream, MAX_CHUNK};
use crate::lend::Lent;
use crate::tcp_direct::{self, Conn, Direct, Step};
use crate::{BoxedIo, DirectEnd, Errno, InboundSink, InboundTcp, ListenSpec};
use router::{Route, Router};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tcpip::{ListenerHandle, SocketEventKind, TcpHandle};
use tokio::sync::oneshot;
use tracing::{debug, trace, warn};

/// A TCP flow on the engine side.
struct Flow {
    shared: Arc<FlowShared>,
    handle: TcpHandle,
    /// Part of an `up` chunk the stack had no room for.
    pending: Option<(Vec<u8>, usize)>,
    /// Set until an outbound connection is established.
    connecting: Option<oneshot::Sender<Result<(), Errno>>>,
    peer: Option<usize>,
    remote: SocketAddr,
    started: Instant,
    bytes_up: u64,
    bytes_down: u64,
    fin_sent: bool,
    stack_closed: bool,
    /// Set once the engine thread moves the bytes itself
    /// ([`crate::tcp_direct`]).
    direct: Option<Direct>,
}

struct ListenEntry {
    target: SocketAddr,
    sink: InboundSink,
    /// Connections handed to the bridge, not yet queued by the program's
    /// listener (bounded, see [`crate::backlog`]).
    pending: Pending,
}

/// The engine thread's TCP flows and tunnel listeners.
pub struct TcpFlows {
    flows: HashMap<u64, Flow>,
    by_handle: HashMap<TcpHandle, u64>,
    listeners: HashMap<ListenerHandle, ListenEntry>,
    listening: HashMap<SocketAddr, ListenerHandle>,
    next_inbound: u64,
    /// Direct flows whose socket the poller reported ready.
    ready: Vec<u64>,
    /// One buffer for every direct flow's reads ([`crate::tcp_direct`]).
    scratch: Vec<u8>,
}

impl Default for TcpFlows {
    fn default() -> Self {
        TcpFlows {
            flows: HashMap::new(),
            by_handle: HashMap::new(),
            listeners: HashMap::new(),
            listening: HashMap::new(),
            // Inbound ids stay clear of the bridge's outbound ones.
            next_inbound: 1 << 62,
            ready: Vec::new(),
            scratch: Vec::new(),
        }
    }
}

impl TcpFlows {
    /// Opens a TCP connection to `dst` through router peer `peer`
    /// (`label` for logs); `done` hears when it is established. Returns
    /// our local address, or the errno.
    #[allow(clippy::too_many_arguments)]
    pub fn connect(
        &mut self,
        cx: &mut Lent<'_>,
        dst: SocketAddr,
        peer: usize,
        label: &str,
        shared: Arc<FlowShared>,
        done: oneshot::Sender<Result<(), Errno>>,
        now: Instant,
    ) -> Result<SocketAddr, Errno> {
        let h = match cx.stack.tcp_connect(now, None, dst) {
            Ok(h) => h,
            Err(tcpip::Error::NoBufferSpace) => {
                // The socket table is full: refuse new work, keep the old.
                cx.counters.flows_refused += 1;
                debug!(dst = %dst, refused = cx.counters.flows_refused, "flow cap reached; connect refused (ENOBUFS)");
                return Err(libc::ENOBUFS);
            }
            Err(e) => return Err(e.errno()),
        };
        let local = cx.stack.local_addr(h).map_err(|e| e.errno())?;
        debug!(flow = shared.id, dst = %dst, local = %local, peer = %label, "tunnel connect");
        self.by_handle.insert(h, shared.id);
        cx.live.fetch_add(1, Ordering::Relaxed);
        self.flows.insert(
            shared.id,
            Flow {
                shared,
                handle: h,
                pending: None,
                connecting: Some(done),
                peer: Some(peer),
                remote: dst,
                started: now,
                bytes_up: 0,
                bytes_down: 0,
                fin_sent: false,
                stack_closed: false,
                direct: None,
            },
        );
        Ok(local)
    }

    /// Makes `spec` reachable at our tunnel address(es); accepted
    /// connections go to `sink`.
    pub fn listen(
        &mut self,
        cx: &mut Lent<'_>,
        spec: ListenSpec,
        sink: InboundSink,
    ) -> Result<(), Errno> {
        let port = spec.requested.port();
        let req = spec.requested.ip();
        let addrs: Vec<IpAddr> = cx
            .stack
            .config()
            .addresses
            .iter()
            .copied()
            .filter(|a| {
                if req.is_unspecified() {
                    // An IPv6 wildcard is dual-stack, as on Linux by default.
                    req.is_ipv6() || a.is_ipv4()
                } else {
                    *a == req
                }
            })
            .collect();
        if addrs.is_empty() {
            return Err(libc::EADDRNOTAVAIL);
        }
        // One bound per listen() of the program, shared by its addresses;
        // a released place makes the engine accept again.
        let pending = {
            let (commands, kick) = (Arc::clone(cx.commands), Arc::clone(cx.kick));
            Pending::new(Arc::new(move || {
                commands.push(Command::AcceptMore);
                kick.wake();
            }))
        };
        for a in addrs {
            let at = SocketAddr::new(a, port);
            if let Some(l) = self.listening.get(&at) {
                // Same port again (e.g. the app re-listens): newest target wins.
                if let Some(e) = self.listeners.get_mut(l) {
                    e.target = spec.loopback;
                    e.sink = sink.clone();
                }
                continue;
            }
            let l = cx
                .stack
                .tcp_listen(at, STACK_BACKLOG)
                .map_err(|e| e.errno())?;
            debug!(addr = %at, target = %spec.loopback, "tunnel listener");
            self.listening.insert(at, l);
            self.listeners.insert(
                l,
                ListenEntry {
                    target: spec.loopback,
                    sink: sink.clone(),
                    pending: pending.clone(),
                },
            );
        }
        Ok(())
    }

    /// A listener's backlog has room again: accept what waits.
    pub fn accept_more(&mut self, cx: &mut Lent<'_>, now: Instant) {
        let ls: Vec<ListenerHandle> = self.listeners.keys().copied().collect();
        for l in ls {
            self.accept_all(cx, l, now);
        }
    }

    pub fn run_kicks(&mut self, cx: &mut Lent<'_>, now: Instant) {
        let mut ids = Vec::new();
        while let Some(id) = cx.kick.queue.pop() {
            ids.push(id);
        }
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            self.service(cx, id, now);
        }
    }

    /// Moves bytes both ways for one flow, and finishes it if released.
    pub fn service(&mut self, cx: &mut Lent<'_>, id: u64, now: Instant) {
        let Some(f) = self.flows.get_mut(&id) else {
            return;
        };
        if f.direct.is_some() {
            return self.service_direct(cx, id, now);
        }
        if f.connecting.is_some() {
            if f.shared.released.load(Ordering::Acquire) {
                // The bridge gave up before the connection was established.
                let _ = cx.stack.tcp_abort(now, f.handle);
                self.remove(cx, id, "abandoned");
            }
            return;
        }
        self.push_up(cx, id, now);
        self.pull_down(cx, id);
        let Some(f) = self.flows.get_mut(&id) else {
            return;
        };
        if f.shared.released.load(Ordering::Acquire) {
            // Application bytes still waiting for send-buffer room are
            // flushed first (Writable events call back here), as a kernel
            // socket's close() would; an error or a closed stack socket
            // ends the wait.
            let unsent = f.pending.is_some() || !f.shared.up.is_empty();
            let failed = f.shared.error.load(Ordering::Acquire) != 0;
            if unsent && !failed && !f.stack_closed {
                return;
            }
            if !f.stack_closed {
                let _ = cx.stack.tcp_close(now, f.handle);
            }
            self.remove(cx, id, "closed");
        }
    }

    /// Application bytes into the TCP send buffer; FIN when asked and drained.
    pub fn push_up(&mut self, cx: &mut Lent<'_>, id: u64, now: Instant) {
        let Some(f) = self.flows.get_mut(&id) else {
            return;
        };
        let mut took = false;
        loop {
            if f.pending.is_none() {
                match f.shared.up.pop() {
                    Some(c) => {
                        took = true;
                        f.pending = Some((c, 0));
                    }
                    None => break,
                }
            }
            let Some((chunk, off)) = &mut f.pending else {
                break;
            };
            match cx.stack.tcp_send(f.handle, &chunk[*off..]) {
                Ok(n) => {
                    *off += n;
                    f.bytes_up += n as u64;
                    if *off >= chunk.len() {
                        f.pending = None;
                    } else {
                        break;
                    }
                }
                Err(tcpip::Error::WouldBlock) => break,
                Err(e) => {
                    f.pending = None;
                    while f.shared.up.pop().is_some() {}
                    f.shared.fail(e.errno());
                    break;
                }
            }
        }
        if took {
            f.shared.writer.wake();
        }
        if f.pending.is_none()
            && f.shared.up.is_empty()
            && f.shared.up_fin.load(Ordering::Acquire)
            && !f.fin_sent
        {
            f.fin_sent = true;
            let _ = cx.stack.tcp_shutdown_write(now, f.handle);
        }
    }

    /// Received bytes into the flow's `down` queue, EOF and errors too.
    pub fn pull_down(&mut self, cx: &mut Lent<'_>, id: u64) {
        let Some(f) = self.flows.get_mut(&id) else {
            return;
        };
        let mut woke = false;
        loop {
            if f.shared.down.is_full() {
                f.shared.down_blocked.store(true, Ordering::SeqCst);
                if f.shared.down.is_full() {
                    break;
                }
            }
            let queued = cx.stack.tcp_recv_queue(f.handle).unwrap_or(0);
            if queued == 0 {
                let mut probe = [0u8; 1];
                match cx.stack.tcp_recv(f.handle, &mut probe) {
                    Ok(0) => {
                        if !f.shared.down_fin.swap(true, Ordering::AcqRel) {
                            woke = true;
                        }
                    }
                    Ok(n) => {
                        f.bytes_down += n as u64;
                        let _ = f.shared.down.push(probe[..n].to_vec());
                        woke = true;
                        continue;
                    }
                    Err(tcpip::Error::WouldBlock) | Err(tcpip::Error::InvalidHandle) => {}
                    Err(e) => f.shared.fail(e.errno()),
                }
                break;
            }
            let mut v = vec![0u8; queued.min(MAX_CHUNK)];
            match cx.stack.tcp_recv(f.handle, &mut v) {
                Ok(n) => {
                    v.truncate(n);
                    f.bytes_down += n as u64;
                    // Cannot fail: only this thread pushes, and it was not full.
                    let _ = f.shared.down.push(v);
                    woke = true;
                }
                Err(_) => break,
            }
        }
        if woke {
            f.shared.reader.wake();
        }
    }

    pub fn remove(&mut self, cx: &mut Lent<'_>, id: u64, why: &str) {
        if let Some(f) = self.flows.remove(&id) {
            cx.live.fetch_sub(1, Ordering::Relaxed);
            self.by_handle.remove(&f.handle);
            debug!(
                flow = id,
                remote = %f.remote,
                bytes_out = f.bytes_up,
                bytes_in = f.bytes_down,
                duration_ms = f.started.elapsed().as_millis() as u64,
                "tunnel flow {why}"
            );
        }
    }

    pub fn fail_connect(&mut self, cx: &mut Lent<'_>, id: u64, errno: Errno, now: Instant) {
        let Some(f) = self.flows.get_mut(&id) else {
            return;
        };
        if let Some(done) = f.connecting.take() {
            let _ = done.send(Err(errno));
        }
        f.shared.fail(errno);
        let _ = cx.stack.tcp_abort(now, f.handle);
        debug!(flow = id, remote = %f.remote, errno, "tunnel connect failed");
        self.remove(cx, id, "failed");
    }

    /// A stack event on TCP socket `h`.
    pub fn on_event(
        &mut self,
        cx: &mut Lent<'_>,
        h: TcpHandle,
        kind: SocketEventKind,
        now: Instant,
    ) {
        let Some(&id) = self.by_handle.get(&h) else {
            return;
        };
        if self.flows.get(&id).is_some_and(|f| f.direct.is_some()) {
            return self.on_direct_event(cx, id, kind, now);
        }
        match kind {
            SocketEventKind::Connected => {
                let Some(f) = self.flows.get_mut(&id) else {
                    return;
                };
                if let Some(done) = f.connecting.take() {
                    if done.send(Ok(())).is_err() {
                        let _ = cx.stack.tcp_abort(now, h);
                        self.remove(cx, id, "abandoned");
                        return;
                    }
                    debug!(flow = id, remote = %f.remote, "tunnel flow established");
                }
                self.service(cx, id, now);
            }
            SocketEventKind::Error(e) => {
                let connecting = self.flows.get(&id).is_some_and(|f| f.connecting.is_some());
                if connecting {
                    self.fail_connect(cx, id, e.errno(), now);
                } else {
                    // Deliver what arrived before the error first.
                    self.pull_down(cx, id);
                    if let Some(f) = self.flows.get(&id) {
                        f.shared.fail(e.errno());
                    }
                    self.service(cx, id, now);
                }
            }
            SocketEventKind::Readable => self.pull_down(cx, id),
            SocketEventKind::Writable => self.service(cx, id, now),
            SocketEventKind::Closed => {
                let connecting = self.flows.get(&id).is_some_and(|f| f.connecting.is_some());
                if connecting {
                    self.fail_connect(cx, id, libc::ECONNREFUSED, now);
                    return;
                }
                self.pull_down(cx, id);
                if let Some(f) = self.flows.get_mut(&id) {
                    f.stack_closed = true;
                    if f.shared.error.load(Ordering::Acquire) == 0 {
                        f.shared.down_fin.store(true, Ordering::Release);
                    }
                    f.shared.reader.wake();
                    f.shared.writer.wake();
                }
                self.service(cx, id, now);
            }
            SocketEventKind::Incoming => {}
        }
    }

    pub fn accept_all(&mut self, cx: &mut Lent<'_>, l: ListenerHandle, now: Instant) {
        loop {
            let Some(entry) = self.listeners.get(&l) else {
                while let Some(h) = cx.stack.tcp_accept(l) {
                    let _ = cx.stack.tcp_abort(now, h);
                }
                return;
            };
            if entry.sink.capacity() == 0 {
                // The bridge has not taken the last ones yet; the tickets
                // they hold bring us back here when released.
                return;
            }
            let Some(ticket) = entry.pending.admit() else {
                // MAX_PENDING wait for the program: the rest stay in the
                // stack's listen queue (then SYNs go unanswered) until a
                // place is released (Command::AcceptMore).
                trace!(target = %entry.target, max = MAX_PENDING, "listener backlog full");
                return;
            };
            let Some(h) = cx.stack.tcp_accept(l) else {
                ticket.cancel();
                return;
            };
            let (Ok(local), Ok(peer)) = (cx.stack.local_addr(h), cx.stack.peer_addr(h)) else {
                ticket.cancel();
                continue;
            };
            let id = self.next_inbound;
            self.next_inbound += 1;
            let shared = FlowShared::new(id);
            let io: BoxedIo = Box::new(TunnelStream::new(shared.clone(), cx.kick.clone()));
            let inbound = InboundTcp {
                id,
                peer,
                local,
                target: entry.target,
                io,
                ticket,
            };
            // Registered before the hand-off, so kicks from the bridge find it.
            self.by_handle.insert(h, id);
            cx.live.fetch_add(1, Ordering::Relaxed);
            self.flows.insert(
                id,
                Flow {
                    shared,
                    handle: h,
                    pending: None,
                    connecting: None,
                    peer: None,
                    remote: peer,
                    started: now,
                    bytes_up: 0,
                    bytes_down: 0,
                    fin_sent: false,
                    stack_closed: false,
                    direct: None,
                },
            );
            debug!(flow = id, peer = %peer, local = %local, "tunnel connection accepted");
            if entry.sink.try_send(inbound).is_err() {
                // The bridge is gone or swamped: dropping the stream
                // releases the flow, which closes it.
                warn!(peer = %peer, "inbound connection dropped: bridge queue full");
            }
            self.service(cx, id, now);
        }
    }

    /// Every TCP flow, as `status --flows` shows it.
    pub fn report(&self, cx: &Lent<'_>, now: Instant) -> Vec<crate::flow_report::TcpFlowStatus> {
        let us = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let mut out: Vec<_> = self
            .flows
            .iter()
            .filter_map(|(&id, f)| {
                let i = cx.stack.tcp_info(f.handle).ok()?;
                let state = cx.stack.tcp_state(f.handle).ok()?;
                let local = cx.stack.local_addr(f.handle).ok()?;
                Some(crate::flow_report::TcpFlowStatus {
                    flow: id,
                    pid: None,
                    program: None,
                    local: local.to_string(),
                    remote: f.remote.to_string(),
                    state: crate::flow_report::state_name(state).to_string(),
                    congestion: i.congestion.name().to_string(),
                    cwnd: i.cwnd as u64,
                    ssthresh: (i.ssthresh < usize::MAX / 2).then_some(i.ssthresh as u64),
                    srtt_us: us(i.srtt),
                    rttvar_us: us(i.rttvar),
                    rto_us: us(i.rto),
                    in_flight: i.in_flight as u64,
                    mss: i.mss as u64,
                    retransmits: i.retransmits,
                    rto_count: i.rto_count,
                    recoveries: i.recoveries,
                    delivery_rate: i.delivery_rate as u64,
                    limited_by: i.limit.name().to_string(),
                    bytes_up: f.bytes_up,
                    bytes_down: f.bytes_down,
                    age_secs: now.saturating_duration_since(f.started).as_secs(),
                })
            })
            .collect();
        out.sort_by_key(|f| f.flow);
        out
    }

    /// What the TCP knows of `flow`, in the units of Linux's `tcp_info`.
    pub fn info(&self, cx: &Lent<'_>, flow: u64) -> Result<control::TcpFlowInfo, Errno> {
        let f = self.flows.get(&flow).ok_or(libc::ENOTCONN)?;
        let i = cx.stack.tcp_info(f.handle).map_err(|_| libc::ENOTCONN)?;
        let state = cx.stack.tcp_state(f.handle).map_err(|_| libc::ENOTCONN)?;
        Ok(tcp_flow_info(state, &i))
    }

    /// Sets a flow's keepalive as the application's socket options say.
    pub fn keepalive(
        &mut self,
        cx: &mut Lent<'_>,
        flow: u64,
        k: control::TcpKeepalive,
        now: Instant,
    ) -> Result<(), Errno> {
        let f = self.flows.get(&flow).ok_or(libc::ENOTCONN)?;
        let idle = k
            .enabled
            .then(|| Duration::from_secs(u64::from(k.idle_secs.max(1))));
        debug!(
            flow,
            idle_s = ?idle.map(|d| d.as_secs()),
            interval_s = k.interval_secs,
            count = k.count,
            "tunnel TCP keepalive set by the program"
        );
        cx.stack
            .tcp_configure_keepalive(
                now,
                f.handle,
                idle,
                Duration::from_secs(u64::from(k.interval_secs)),
                k.count,
            )
            .map_err(|e| e.errno())
    }

    /// How many flows go to each of `peers` router peers (status report).
    pub fn per_peer(&self, router: &Router, peers: usize) -> Vec<usize> {
        let mut flows = vec![0usize; peers];
        for f in self.flows.values() {
            let peer = f.peer.or_else(|| {
                let (ip, port) = (f.remote.ip(), f.remote.port());
                match router.lookup(ip, router::Proto::Tcp, port) {
                    Route::Peer(p) => Some(p.0 as usize),
                    Route::Direct => None,
                }
            });
            if let Some(n) = peer.and_then(|p| flows.get_mut(p)) {
                *n += 1;
            }
        }
        flows
    }

    /// Fails every connection still being set up to router peer `peer`
    /// (it went down) with `errno`.
    pub fn fail_connecting_to(
        &mut self,
        cx: &mut Lent<'_>,
        peer: usize,
        errno: Errno,
        now: Instant,
    ) {
        let ids: Vec<u64> = self
            .flows
            .iter()
            .filter(|(_, f)| f.connecting.is_some() && f.peer == Some(peer))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.fail_connect(cx, id, errno, now);
        }
    }

    /// Connections waiting for the program, over all listeners.
    pub fn inbound_pending(&self) -> usize {
        let mut waiting: HashMap<SocketAddr, usize> = HashMap::new();
        for e in self.listeners.values() {
            waiting.insert(e.target, e.pending.waiting());
        }
        waiting.values().sum::<usize>()
    }

    /// Number of live flows.
    pub fn len(&self) -> usize {
        self.flows.len()
    }
}

/// Flows carried on the engine thread ([`crate::tcp_direct`]).
impl TcpFlows {
    /// Starts carrying established flow `id` between its tunnel connection
    /// and `fd`; `done` hears how it ends. A flow that is gone (or not
    /// established) ends at once with `ECONNRESET`.
    pub fn attach(
        &mut self,
        cx: &mut Lent<'_>,
        id: u64,
        fd: OwnedFd,
        reset: bool,
        done: oneshot::Sender<DirectEnd>,
        now: Instant,
    ) {
        let ended = |errno, fd| DirectEnd {
            bytes_up: 0,
            bytes_down: 0,
            errno: Some(errno),
            fd: Some(fd),
        };
        let Some(f) = self
            .flows
            .get_mut(&id)
            .filter(|f| f.connecting.is_none() && f.direct.is_none())
        else {
            let _ = done.send(ended(libc::ECONNRESET, fd));
            return;
        };
        // What the stack delivered before the hand-over goes first.
        let mut pending = Vec::new();
        while let Some(c) = f.shared.down.pop() {
            pending.extend_from_slice(&c);
        }
        match Direct::start(id, fd, reset, pending, done, cx.poll) {
            Ok(d) => f.direct = Some(d),
            Err((done, fd)) => {
                let _ = done.send(ended(libc::ENOBUFS, fd));
                return;
            }
        }
        if self.scratch.len() < tcp_direct::SCRATCH {
            self.scratch = vec![0; tcp_direct::SCRATCH];
        }
        debug!(flow = id, "flow carried on the engine thread");
        self.service_direct(cx, id, now);
    }

    /// The poller saw direct flow `id`'s socket become ready.
    pub fn mark_ready(&mut self, id: u64, ev: &mio::event::Event) {
        if let Some(d) = self.flows.get_mut(&id).and_then(|f| f.direct.as_mut()) {
            d.mark(ev);
            self.ready.push(id);
        }
    }

    /// Whether some direct flow's socket is ready.
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Services the direct flows whose sockets became ready.
    pub fn service_ready(&mut self, cx: &mut Lent<'_>, now: Instant) {
        if self.ready.is_empty() {
            return;
        }
        let mut ids = std::mem::take(&mut self.ready);
        ids.sort_unstable();
        ids.dedup();
        for &id in &ids {
            self.service_direct(cx, id, now);
        }
        ids.clear();
        if self.ready.is_empty() {
            // Keep the allocation.
            self.ready = ids;
        }
    }

    /// A stack event on direct flow `id`.
    fn on_direct_event(&mut self, cx: &mut Lent<'_>, id: u64, kind: SocketEventKind, now: Instant) {
        match kind {
            SocketEventKind::Error(e) => {
                // What arrived before the error goes to the program first.
                self.service_direct(cx, id, now);
                if let Some(f) = self.flows.get(&id) {
                    f.shared.fail(e.errno());
                }
            }
            SocketEventKind::Closed => {
                if let Some(f) = self.flows.get_mut(&id) {
                    f.stack_closed = true;
                }
            }
            _ => {}
        }
        self.service_direct(cx, id, now);
    }

    /// Moves what can move for direct flow `id`; ends it if it is over.
    fn service_direct(&mut self, cx: &mut Lent<'_>, id: u64, now: Instant) {
        let Some(f) = self.flows.get_mut(&id) else {
            return;
        };
        let Some(d) = f.direct.as_mut() else {
            return;
        };
        let c = Conn {
            shared: &f.shared,
            handle: f.handle,
            bytes_up: &mut f.bytes_up,
            bytes_down: &mut f.bytes_down,
            fin_sent: &mut f.fin_sent,
            stack_closed: f.stack_closed,
        };
        let Step::Ended(errno, why) = d.pump(c, cx.stack, &mut self.scratch, now) else {
            return;
        };
        if let Some(d) = f.direct.take() {
            d.finish(cx.poll, f.bytes_up, f.bytes_down, errno);
        }
        self.remove(cx, id, why);
    }
}

/// Linux's numbers for a TCP state (`include/net/tcp_states.h`).
fn linux_tcp_state(s: tcpip::tcp::State) -> u8 {
    use tcpip::tcp::State as S;
    match s {
        S::Established => 1,
        S::SynSent => 2,
        S::SynReceived => 3,
        S::FinWait1 => 4,
        S::FinWait2 => 5,
        S::TimeWait => 6,
        S::Closed => 7,
        S::CloseWait => 8,
        S::LastAck => 9,
        S::Listen => 10,
        S::Closing => 11,
    }
}

/// [`control::TcpFlowInfo`] from the stack's view of one connection:
/// windows in segments and times in µs, as `tcp_info` gives them.
fn tcp_flow_info(state: tcpip::tcp::State, i: &tcpip::tcp::TcpInfo) -> control::TcpFlowInfo {
    let us = |d: std::time::Duration| u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
    let mss = i.mss.max(1);
    let segs = |bytes: usize| u32::try_from(bytes.div_ceil(mss)).unwrap_or(u32::MAX);
    control::TcpFlowInfo {
        state: linux_tcp_state(state),
        mss: u32::try_from(i.mss).unwrap_or(u32::MAX),
        rtt_us: us(i.srtt),
        rttvar_us: us(i.rttvar),
        rto_us: us(i.rto),
        cwnd: segs(i.cwnd),
        ssthresh: if i.ssthresh >= usize::MAX / 2 {
            u32::MAX
        } else {
            segs(i.ssthresh)
        },
        unacked: segs(i.in_flight),
        total_retrans: u32::try_from(i.retransmits).unwrap_or(u32::MAX),
    }
}
