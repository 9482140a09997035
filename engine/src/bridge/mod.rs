//! The bridge: serves the shim on the control socket (see the `control`
//! crate doc for the exchanges), turns `Connect` data sockets into flows of
//! the [`FlowBackend`], and splices inbound tunnel connections to the
//! application's loopback listeners.

use crate::dns_resolver::DnsService;
use crate::session::holds::Holds;
use crate::session::Host;
use crate::{DirectEnd, FlowBackend, InboundTcp, ListenSpec};
use control::{
    AcceptedPeer, ConnectReply, FlowInfo, FlowState, Proto, Reply, Request, RouteDecision,
    UdpReply, FILLER_LEN, MAX_FRAME, PREFIX_LEN,
};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{TcpSocket, UnixListener, UnixStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tracing::{debug, info, warn};

mod handover;
mod hold;
mod recent;
mod session;
mod shared;
mod splice;
mod supervise;

use recent::Recent;
use shared::Shared;
pub use supervise::Supervise;

/// How long a finished flow's outcome / an inbound peer mapping is kept
/// for late `FlowStatus` / `AcceptLookup` queries.
const KEEP_FINISHED: Duration = Duration::from_secs(120);
/// How long the bridge waits for the shim's filler after `Accepted`.
const FILLER_WAIT: Duration = Duration::from_secs(10);
/// Loopback connections to one program listener connected but not yet
/// accepted. Kept within any accept queue (backlog + 1 ≥ 4 for a backlog of
/// 3 or more): past it, the kernel completes connections on our side only,
/// drops them when its SYN-ACK retries run out, and they are lost.
const ACCEPT_GATE: usize = 4;

/// Connections passed on holds waiting for the accept loop.
const PASSED_QUEUE: usize = 64;

/// Starts the bridge on `listener`; runs until the runtime stops.
/// `supervisor` takes processes that go under seccomp mode (`None`: they
/// are refused with `ENOTSUP`). `host`: this engine is shared, and serves
/// session requests ([`crate::session`]). Returns what holds the engine
/// besides the leases (the host's, for a shared engine): the processes
/// started under it and its seccomp supervisors.
pub fn spawn(
    listener: UnixListener,
    backend: Arc<dyn FlowBackend>,
    supervisor: Option<Arc<dyn Supervise>>,
    host: Option<Arc<Host>>,
) -> Arc<Holds> {
    // Room for every connection one listener may have waiting (the engine
    // also stops handing over while this is full).
    let (inbound_tx, mut inbound_rx) = mpsc::channel(crate::backlog::MAX_PENDING * 2);
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let dns = DnsService::new(backend.clone());
    let control_path = listener
        .local_addr()
        .ok()
        .and_then(|a| a.as_pathname().map(|p| p.to_path_buf()));
    let holds = match &host {
        Some(h) => h.holds().clone(),
        None => Arc::new(Holds::new()),
    };
    let (passed_tx, mut passed_rx) = mpsc::channel(PASSED_QUEUE);
    let (cut, never_cut) = match &host {
        Some(h) => (h.cut_signal(), None),
        None => {
            let (tx, rx) = watch::channel(false);
            (rx, Some(tx))
        }
    };
    let shared = Arc::new(Shared {
        control_path,
        supervisor,
        cut,
        _never_cut: never_cut,
        host,
        holds: holds.clone(),
        passed_tx,
        flow_pids: Mutex::new(HashMap::new()),
        backend,
        dns,
        uid,
        next_flow: AtomicU64::new(1),
        flows: Mutex::new(Recent::new(KEEP_FINISHED)),
        backend_ids: Mutex::new(HashMap::new()),
        by_inode: Mutex::new(HashMap::new()),
        inbound: Mutex::new(Recent::new(KEEP_FINISHED)),
        tickets: Mutex::new(HashMap::new()),
        gates: Mutex::new(HashMap::new()),
        inbound_tx,
    });
    let s = shared.clone();
    tokio::spawn(async move {
        while let Some(conn) = inbound_rx.recv().await {
            tokio::spawn(splice_inbound(s.clone(), conn));
        }
    });
    tokio::spawn(async move {
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let s = shared.clone();
                        tokio::spawn(async move { serve(s, stream).await });
                    }
                    Err(e) => {
                        warn!(error = %e, "control socket accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(stream) = passed_rx.recv() => {
                    // Authorised by the hold it came on.
                    let s = shared.clone();
                    tokio::spawn(async move { serve_authorised(s, stream).await });
                }
            }
        }
    });
    holds
}

/// Takes the seccomp listener `listener` of process `pid` — which must be
/// the process on the other end (`from`) — and has the front-end's
/// supervisor ([`Supervise`]) carry its calls.
fn seccomp_attach(s: &Shared, from: Option<i32>, pid: u32, listener: i32) -> Result<(), i32> {
    if from != i32::try_from(pid).ok() {
        return Err(libc::EPERM);
    }
    let supervisor = s.supervisor.as_ref().ok_or(libc::ENOTSUP)?;
    let path = s.control_path.clone().ok_or(libc::ENOTSUP)?;
    let fd = u64::try_from(listener).map_err(|_| libc::EBADF)?;
    // The supervisor holds the engine while processes are under the filter.
    let done = hold::seccomp(s, pid);
    supervisor.attach(pid, fd, path, done)
}

async fn read_request(stream: &mut UnixStream) -> std::io::Result<Option<Request>> {
    let mut buf = [0u8; MAX_FRAME];
    // Exact reads only: on a data socket the filler follows the frame and
    // must stay unread until the flow is established.
    stream.read_exact(&mut buf[..PREFIX_LEN]).await?;
    let Ok(total) = control::frame_len([buf[0], buf[1]]) else {
        return Ok(None);
    };
    stream.read_exact(&mut buf[PREFIX_LEN..total]).await?;
    Ok(Request::decode(&buf[..total]).ok().map(|(r, _)| r))
}

async fn reply(stream: &mut UnixStream, r: Reply) {
    let mut buf = [0u8; MAX_FRAME];
    if let Ok(n) = r.encode(&mut buf) {
        let _ = stream.write_all(&buf[..n]).await;
    }
}

async fn serve(s: Arc<Shared>, stream: UnixStream) {
    match stream.peer_cred() {
        Ok(c) if c.uid() == s.uid => {}
        Ok(c) => {
            warn!(
                uid = c.uid(),
                pid = c.pid().unwrap_or(0),
                "refused control connection from another user"
            );
            return;
        }
        Err(e) => {
            warn!(error = %e, "refused control connection without credentials");
            return;
        }
    }
    serve_authorised(s, stream).await
}

/// Serves one control connection whose peer may use the engine: one of
/// our user's, or a socket passed on a hold ([`hold`]).
async fn serve_authorised(s: Arc<Shared>, mut stream: UnixStream) {
    let req = match read_request(&mut stream).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            warn!("malformed control message");
            return;
        }
        Err(_) => return,
    };
    match req {
        Request::Session => session::serve(s, stream).await,
        Request::Hold { pid } => hold::serve(s, stream, pid).await,
        Request::Serve => debug!("Serve outside a hold: ignored"),
        Request::Hello { pid, version } => debug!(pid, version, "shim loaded"),
        Request::Route { dst, proto } => {
            let d = s.backend.route(dst, proto);
            debug!(dst = %dst, proto = ?proto, decision = ?d, "route decision");
            crate::uncarried::warn_if_uncarried(dst, proto, d);
            reply(&mut stream, Reply::Route(d)).await;
        }
        Request::Connect(c) => connect(s, stream, c).await,
        Request::DnsInfo => {
            let info = s
                .dns
                .as_ref()
                .map(|d| d.info())
                .unwrap_or(control::DnsInfo {
                    server: None,
                    host_servers: [None; control::dns::MAX_HOST_NAMESERVERS],
                });
            reply(&mut stream, Reply::DnsInfo(info)).await;
        }
        Request::Resolve(q) => {
            let answer = match &s.dns {
                Some(d) => d.resolve(q).await,
                None => control::ResolveReply::status(control::ResolveStatus::NotConfigured),
            };
            let _ = stream.write_all(&answer.encode()).await;
        }
        Request::UdpOpen(u) => {
            let backend = s.backend.clone();
            // The engine thread answers within COMMAND_WAIT; do not hold a
            // runtime worker meanwhile.
            let r = tokio::task::spawn_blocking(move || backend.open_udp(u))
                .await
                .unwrap_or(Err(libc::EIO));
            match r {
                Ok(o) => {
                    debug!(flow = o.flow, fd = u.fd, bind = %u.bind, connect = ?u.connect, local = %o.local, "udp socket through the tunnel");
                    let rep = Reply::Udp(UdpReply::Opened {
                        flow: o.flow,
                        local: o.local,
                        mtu: o.mtu,
                    });
                    reply_with_fd(&mut stream, rep, o.app_end.as_raw_fd()).await;
                }
                Err(e) => {
                    debug!(fd = u.fd, bind = %u.bind, connect = ?u.connect, errno = e, "udp socket refused");
                    reply(&mut stream, Reply::Udp(UdpReply::Refused(e))).await;
                }
            }
        }
        Request::UdpConnect { flow, peer } => {
            let backend = s.backend.clone();
            let r = tokio::task::spawn_blocking(move || backend.udp_connect(flow, peer))
                .await
                .unwrap_or(Err(libc::EIO));
            debug!(flow, peer = ?peer, result = ?r, "udp connect");
            let rep = match r {
                Ok(local) => UdpReply::Opened {
                    flow,
                    local,
                    mtu: 0,
                },
                Err(e) => UdpReply::Refused(e),
            };
            reply(&mut stream, Reply::Udp(rep)).await;
        }
        Request::Adopt { inode } => {
            let info = s.by_inode.lock().ok().and_then(|m| m.get(&inode).copied());
            let info = info.map(|mut i| {
                i.state = flow_state(&s, i.flow);
                i
            });
            debug!(inode, flow = ?info.map(|i| i.flow), "adopt lookup");
            reply(&mut stream, Reply::Adopt(info)).await;
        }
        Request::TcpKeepalive { flow, keepalive } => {
            let id = s
                .backend_ids
                .lock()
                .ok()
                .and_then(|m| m.get(&flow).copied());
            let r = match id {
                Some(id) => {
                    let backend = s.backend.clone();
                    tokio::task::spawn_blocking(move || backend.tcp_keepalive(id, keepalive))
                        .await
                        .unwrap_or(Err(libc::EIO))
                }
                None => Err(libc::ENOTCONN),
            };
            debug!(flow, ?keepalive, result = ?r, "tcp keepalive");
            reply(&mut stream, Reply::Done(r.err().unwrap_or(0))).await;
        }
        Request::SeccompAttach { pid, listener } => {
            let from = stream.peer_cred().ok().and_then(|c| c.pid());
            let r = seccomp_attach(&s, from, pid, listener);
            match r {
                Ok(()) => info!(
                    pid,
                    "pid {pid} execs a program the shim cannot enter: it goes on in seccomp mode"
                ),
                Err(e) => warn!(
                    pid,
                    errno = e,
                    "cannot supervise the seccomp filter of pid {pid}: {}",
                    std::io::Error::from_raw_os_error(e)
                ),
            }
            reply(&mut stream, Reply::Done(r.err().unwrap_or(0))).await;
        }
        Request::TcpInfo { flow } => {
            let id = s
                .backend_ids
                .lock()
                .ok()
                .and_then(|m| m.get(&flow).copied());
            let info = match id {
                Some(id) => {
                    let backend = s.backend.clone();
                    tokio::task::spawn_blocking(move || backend.tcp_info(id).ok())
                        .await
                        .unwrap_or(None)
                }
                None => None,
            };
            reply(&mut stream, Reply::TcpInfo(info)).await;
        }
        Request::FlowStatus { flow } => {
            let st = flow_state(&s, flow);
            debug!(flow, state = ?st, "flow status query");
            reply(&mut stream, Reply::FlowStatus(st)).await;
        }
        Request::Bind { addr } => {
            let redirect = addr.ip().is_unspecified() || s.backend.is_local_address(addr.ip());
            debug!(addr = %addr, redirect, "bind");
            reply(&mut stream, Reply::Bind { redirect }).await;
        }
        Request::Listen {
            requested,
            loopback,
        } => {
            let r = s.backend.listen(
                ListenSpec {
                    requested,
                    loopback,
                },
                s.inbound_tx.clone(),
            );
            match r {
                Ok(()) => {
                    debug!(requested = %requested, loopback = %loopback, "listening through the tunnel")
                }
                Err(e) => {
                    warn!(requested = %requested, errno = e, "cannot listen through the tunnel")
                }
            }
            reply(&mut stream, Reply::Done(r.err().unwrap_or(0))).await;
        }
        Request::AcceptLookup { listener, peer } => {
            let found = s.inbound.lock().ok().and_then(|m| m.get(&peer).copied());
            // The program took it: its place in the engine's backlog is free.
            let ticket = s.tickets.lock().ok().and_then(|mut m| m.remove(&peer));
            drop(ticket);
            debug!(listener = %listener, loopback_peer = %peer, tunnel_peer = ?found.map(|p| p.peer), "accept lookup");
            reply(&mut stream, Reply::Accept(found)).await;
        }
    }
}

/// Sends a reply frame with a descriptor attached (`SCM_RIGHTS`); the rest
/// of the frame, if the socket took only part of it, follows plainly.
async fn reply_with_fd(stream: &mut UnixStream, r: Reply, pass: std::os::fd::RawFd) {
    let mut buf = [0u8; MAX_FRAME];
    let Ok(n) = r.encode(&mut buf) else { return };
    let sent = loop {
        if stream.writable().await.is_err() {
            return;
        }
        match stream.try_io(Interest::WRITABLE, || {
            fdpass::send_with_fd(stream.as_raw_fd(), &buf[..n], pass)
        }) {
            Ok(k) => break k,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => {
                debug!(error = %e, "cannot pass the udp data socket");
                return;
            }
        }
    };
    if sent < n {
        let _ = stream.write_all(&buf[sent..n]).await;
    }
}

fn set_flow(s: &Shared, flow: u64, st: FlowState) {
    if let Ok(mut m) = s.flows.lock() {
        m.insert(flow, st);
    }
}

/// Bytes queued for reading on `stream` (FIONREAD).
fn queued(stream: &UnixStream) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int to `n`; the fd is valid while `stream` lives.
    let r = unsafe { libc::ioctl(stream.as_raw_fd(), libc::FIONREAD, &mut n) };
    if r < 0 {
        0
    } else {
        n.max(0) as usize
    }
}

fn flow_state(s: &Shared, flow: u64) -> FlowState {
    s.flows
        .lock()
        .ok()
        .and_then(|m| m.get(&flow).copied())
        .unwrap_or(FlowState::Unknown)
}

/// Frees an inbound connection's backlog place when its task ends.
struct TicketEntry<'a> {
    s: &'a Shared,
    src: SocketAddr,
}

impl Drop for TicketEntry<'_> {
    fn drop(&mut self) {
        let t = self
            .s
            .tickets
            .lock()
            .ok()
            .and_then(|mut m| m.remove(&self.src));
        drop(t);
    }
}

/// Removes a data socket from the inode index (and its flow from the
/// backend ids) when its flow task ends.
struct InodeEntry<'a> {
    s: &'a Shared,
    inode: u64,
    flow: u64,
}

impl Drop for InodeEntry<'_> {
    fn drop(&mut self) {
        if let Ok(mut m) = self.s.by_inode.lock() {
            m.remove(&self.inode);
        }
        if let Ok(mut m) = self.s.backend_ids.lock() {
            m.remove(&self.flow);
        }
        if let Ok(mut m) = self.s.flow_pids.lock() {
            m.remove(&self.flow);
        }
    }
}

async fn connect(s: Arc<Shared>, mut stream: UnixStream, c: control::ConnectRequest) {
    let (dst, fd, nonblocking, hand_over) = (c.dst, c.fd, c.nonblocking, c.hand_over);
    if *s.cut.borrow() {
        // Taken down: no new tunnel connections.
        return reply(
            &mut stream,
            Reply::Connect(ConnectReply::Refused(libc::ENETDOWN)),
        )
        .await;
    }
    let pid = stream.peer_cred().ok().and_then(|c| c.pid());
    let decision = s.backend.route(dst, Proto::Tcp);
    debug!(dst = %dst, fd, nonblocking, hand_over, decision = ?decision, "connect intercepted");
    let out = match decision {
        RouteDecision::Direct => {
            return reply(&mut stream, Reply::Connect(ConnectReply::NotRouted)).await
        }
        RouteDecision::Unreachable(e) => {
            return reply(&mut stream, Reply::Connect(ConnectReply::Refused(e))).await
        }
        RouteDecision::Tunnel => match s.backend.open_tcp(dst) {
            Ok(o) => o,
            Err(e) => return reply(&mut stream, Reply::Connect(ConnectReply::Refused(e))).await,
        },
    };
    let flow = s.next_flow.fetch_add(1, Ordering::Relaxed);
    set_flow(&s, flow, FlowState::Connecting);
    if let Ok(mut m) = s.by_inode.lock() {
        m.insert(
            c.inode,
            FlowInfo {
                flow,
                peer: dst,
                local: out.local,
                v6_socket: c.v6_socket,
                state: FlowState::Connecting,
            },
        );
    }
    if let Ok(mut m) = s.backend_ids.lock() {
        m.insert(flow, out.id);
    }
    if let (Some(pid), Ok(mut m)) = (pid.and_then(|p| u32::try_from(p).ok()), s.flow_pids.lock()) {
        m.insert(flow, pid);
    }
    let _inode_entry = InodeEntry {
        s: &s,
        inode: c.inode,
        flow,
    };
    reply(
        &mut stream,
        Reply::Connect(ConnectReply::Accepted {
            flow,
            local: out.local,
        }),
    )
    .await;

    let mut cut = s.cut.clone();
    let cut_wait = async {
        let _ = cut.wait_for(|c| *c).await;
        // Recorded before the data socket closes (with `carry`, which owns
        // it): the program sees a reset, not an end that would pass for a
        // complete transfer.
        set_flow(&s, flow, FlowState::Failed(libc::ECONNRESET));
    };
    tokio::select! {
        () = carry(&s, stream, flow, dst, out, hand_over) => {}
        () = cut_wait => debug!(flow, dst = %dst, "flow cut: the tunnel was taken down"),
    }
}

/// The rest of an accepted outgoing flow: wait for the filler and the
/// tunnel connection, then splice until either side ends (with the
/// client's own connection if it hands one over).
///
/// The setup runs in a future of its own on the heap, dropped once the
/// flow is established: its buffers (the filler read, the hand-over) would
/// otherwise stay part of this task for the whole life of the flow, about
/// 3 KiB per held connection.
async fn carry(
    s: &Shared,
    stream: UnixStream,
    flow: u64,
    dst: SocketAddr,
    out: crate::OutboundTcp,
    hand_over: bool,
) {
    let backend_id = out.id;
    let Some(ready) = Box::pin(carry_setup(s, stream, flow, dst, out, hand_over)).await else {
        return;
    };
    let Established {
        mut stream,
        mut io,
        handed,
        started,
    } = ready;
    // How the flow ended (the errno if it failed, the bytes each way),
    // with the program's socket still open: in `socket`, or `stream`.
    let (errno, up, down, socket) = if s.backend.carries_direct() {
        // The engine thread moves the bytes itself and owns the program's
        // socket (or the handed-over connection, which it resets if the
        // flow fails) meanwhile; the stream (`io`) stays here until the end,
        // which gives the socket back.
        let given = match handed {
            Some(client) => client.into_fd().map(|fd| (fd, true)),
            None => stream.into_std().map(|std| (OwnedFd::from(std), false)),
        };
        let end = match given {
            Ok((fd, reset)) => carried_by_engine(s, backend_id, fd, reset).await,
            Err(e) => {
                debug!(flow, error = %e, "cannot pass the socket to the engine thread");
                lost_flow()
            }
        };
        (end.errno, end.bytes_up, end.bytes_down, end.fd)
    } else {
        // Boxed, like the setup: this task's size is that of its largest
        // state, which the direct path would otherwise pay for too.
        let mut tunnel = splice::Watched::new(&mut *io);
        let r = if let Some(mut client) = handed {
            let r = Box::pin(splice::splice(&mut client, &mut tunnel)).await;
            if tunnel.error().is_none() && r.is_ok() {
                client.ended_cleanly();
            }
            r
        } else {
            Box::pin(splice::splice(&mut stream, &mut tunnel)).await
        };
        let (up, down) = r.unwrap_or((0, 0));
        (tunnel.error(), up, down, None)
    };
    if let Some(e) = errno {
        // Recorded before the program's socket closes, so the shim, seeing
        // the end, learns it was an error (ETIMEDOUT after the
        // retransmissions or keepalive probes, ECONNRESET…), not a FIN.
        set_flow(s, flow, FlowState::Failed(e));
        debug!(flow, dst = %dst, errno = e, "flow ended with an error");
    }
    debug!(flow, dst = %dst, bytes_out = up, bytes_in = down, duration_ms = started.elapsed().as_millis() as u64, "flow closed");
    drop(socket);
}

/// Has the engine thread carry established flow `id` over the program's
/// socket `fd` (reset if the flow fails, with `reset`) and waits for the
/// end, for outgoing and inbound flows alike.
async fn carried_by_engine(s: &Shared, id: u64, fd: OwnedFd, reset: bool) -> DirectEnd {
    s.backend
        .tcp_direct(id, fd, reset)
        .await
        .unwrap_or_else(|_| lost_flow())
}

/// The end of a flow the engine thread could not carry, or that ended
/// without saying how (the sender dropped): a reset, nothing moved, the
/// socket gone.
fn lost_flow() -> DirectEnd {
    DirectEnd {
        bytes_up: 0,
        bytes_down: 0,
        errno: Some(libc::ECONNRESET),
        fd: None,
    }
}

/// An established outgoing flow, ready to carry.
struct Established {
    /// The program's data socket.
    stream: UnixStream,
    /// The tunnel connection.
    io: crate::BoxedIo,
    /// The connection a proxy handed over, if it did.
    handed: Option<handover::Handed>,
    /// When the flow started.
    started: Instant,
}

/// Waits for the shim's filler and the tunnel connection (and a proxy's
/// connection, if it hands one over); records the flow established.
async fn carry_setup(
    s: &Shared,
    mut stream: UnixStream,
    flow: u64,
    dst: SocketAddr,
    out: crate::OutboundTcp,
    hand_over: bool,
) -> Option<Established> {
    let crate::OutboundTcp {
        local, established, ..
    } = out;
    // Wait until the shim's filler is queued (without reading it), so that a
    // failure below closes the socket with unread data: POLLERR at the app.
    let deadline = tokio::time::Instant::now() + FILLER_WAIT;
    while queued(&stream) < FILLER_LEN {
        match tokio::time::timeout_at(deadline, stream.readable()).await {
            Ok(Ok(())) => {}
            _ => break,
        }
        // Not enough yet: report WouldBlock so tokio clears the readiness
        // and the next readable() waits for new data instead of spinning.
        let _ = stream.try_io(Interest::READABLE, || {
            if queued(&stream) >= FILLER_LEN {
                Ok(())
            } else {
                Err(std::io::ErrorKind::WouldBlock.into())
            }
        });
    }

    let started = Instant::now();
    let io = match established.await {
        Ok(io) => io,
        Err(e) => {
            set_flow(s, flow, FlowState::Failed(e));
            debug!(flow, dst = %dst, errno = e, "flow failed");
            return None; // dropped with the filler unread
        }
    };
    let mut filler = [0u8; FILLER_LEN];
    if stream.read_exact(&mut filler).await.is_err() {
        set_flow(s, flow, FlowState::Failed(libc::ECONNRESET));
        return None;
    }
    set_flow(s, flow, FlowState::Established);
    debug!(flow, dst = %dst, local = %local, "flow opened");
    let mut handed = None;
    if hand_over {
        let Some(client) = handover::take(&stream).await else {
            debug!(flow, dst = %dst, "no connection handed over: flow closed");
            return None;
        };
        handed = Some(client);
    }
    Some(Established {
        stream,
        io,
        handed,
        started,
    })
}

async fn splice_inbound(s: Arc<Shared>, conn: InboundTcp) {
    let InboundTcp {
        id,
        peer,
        local,
        target,
        mut io,
        ticket,
    } = conn;
    let sock = match if target.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    } {
        Ok(x) => x,
        Err(e) => return warn!(error = %e, "inbound: socket failed"),
    };
    let loopback_src = SocketAddr::new(target.ip(), 0);
    if let Err(e) = sock.bind(loopback_src) {
        return warn!(error = %e, "inbound: bind failed");
    }
    let Ok(src) = sock.local_addr() else { return };
    // Registered before connecting, so the application's accept() always finds it.
    if let Ok(mut m) = s.inbound.lock() {
        m.insert(src, AcceptedPeer { peer, local });
    }
    // The place in the engine's backlog is held until the program accepts
    // (a completed loopback connect is not enough: with the program's
    // accept queue full, the kernel completes it on our side only).
    let _release = TicketEntry { s: &s, src };
    let gate = s.gates.lock().ok().map(|mut m| {
        m.entry(target)
            .or_insert_with(|| Arc::new(Semaphore::new(ACCEPT_GATE)))
            .clone()
    });
    let permit = match gate {
        Some(g) => match g.acquire_owned().await {
            Ok(p) => p,
            Err(_) => return,
        },
        None => return,
    };
    if let Ok(mut m) = s.tickets.lock() {
        m.insert(src, (ticket, permit));
    }
    // Keepalive on the loopback connection: one the kernel completed on
    // our side only and then forgot (its SYN-ACK retries ran out while the
    // program did not accept) is found dead and its place freed.
    let _ = socket2::SockRef::from(&sock).set_tcp_keepalive(
        &socket2::TcpKeepalive::new()
            .with_time(Duration::from_secs(60))
            .with_interval(Duration::from_secs(10))
            .with_retries(3),
    );
    let started = Instant::now();
    let connected = sock.connect(target).await;
    let mut app = match connected {
        Ok(a) => a,
        Err(e) => {
            return debug!(peer = %peer, target = %target, error = %e, "inbound: application not listening")
        }
    };
    debug!(peer = %peer, local = %local, target = %target, "inbound flow opened");
    let mut cut = s.cut.clone();
    if s.backend.carries_direct() {
        // As outgoing flows: the engine thread moves the bytes between the
        // tunnel connection and the program's accepted connection itself,
        // and resets that connection if the flow fails; `io` stays here
        // (dropping it aborts the flow) until the end gives the socket back.
        let fd = match app.into_std() {
            Ok(std) => OwnedFd::from(std),
            Err(e) => {
                return debug!(peer = %peer, error = %e, "inbound: cannot pass the socket to the engine thread")
            }
        };
        let end = tokio::select! {
            end = carried_by_engine(&s, id, fd, true) => end,
            _ = cut.wait_for(|c| *c) => {
                // Dropping `io` aborts the flow; the engine thread resets
                // the program's connection as it ends it.
                return debug!(peer = %peer, "inbound flow cut: the tunnel was taken down");
            }
        };
        drop(io);
        if let Some(e) = end.errno {
            debug!(peer = %peer, errno = e, "inbound flow ended with an error; resetting the program's socket");
        }
        return debug!(peer = %peer, bytes_in = end.bytes_down, bytes_out = end.bytes_up, duration_ms = started.elapsed().as_millis() as u64, "inbound flow closed");
    }
    let mut tunnel = splice::Watched::new(&mut *io);
    let r = tokio::select! {
        r = splice::splice(&mut tunnel, &mut app) => r,
        _ = cut.wait_for(|c| *c) => {
            let _ = socket2::SockRef::from(&app).set_linger(Some(Duration::ZERO));
            return debug!(peer = %peer, "inbound flow cut: the tunnel was taken down");
        }
    };
    if let Some(e) = tunnel.error() {
        // The tunnel connection failed (timed out, reset): the program's
        // accepted socket gets a reset, not an EOF that would pass for a
        // complete transfer.
        // Linger 0 closes with a RST at once (no blocking on drop).
        let _ = socket2::SockRef::from(&app).set_linger(Some(Duration::ZERO));
        debug!(peer = %peer, errno = e, "inbound flow ended with an error; resetting the program's socket");
    }
    let (a, b) = r.unwrap_or((0, 0));
    debug!(peer = %peer, bytes_in = a, bytes_out = b, duration_ms = started.elapsed().as_millis() as u64, "inbound flow closed");
}
