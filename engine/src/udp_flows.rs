//! Datagram flows on the engine thread: each is one or two stack UDP
//! sockets (IPv4 and/or IPv6) tied to the engine's end of a
//! `SOCK_SEQPACKET` pair whose other end is the application's fd.
//!
//! Up: the pair is registered in the engine's poller; when readable, up to
//! [`UP_BUDGET`] messages per turn are read, their destination checked
//! against the router (only routed destinations are carried; others are
//! dropped and counted) and queued on the stack socket. Down: a stack
//! `Readable` event drains the socket into the pair without blocking; when
//! the application's receive queue (the pair's buffer) is full, datagrams
//! are dropped and counted, as a kernel UDP socket would. ICMP errors on a
//! connected socket become an error message (see `control::datagram`).
//!
//! A *plain* flow ([`DatagramFraming::Plain`], for programs that read the
//! socket themselves in seccomp mode) has no headers: one message is one
//! payload, sent to the flow's peer; it has one stack socket, of the peer's
//! family, connected to the peer, and only that peer's datagrams are handed
//! down (as on a connected UDP socket). An empty message is an empty
//! datagram (end of file is told apart by the peer having hung up). ICMP
//! errors cannot be carried in-band on it: they are counted and logged.
//!
//! Ping and raw ICMP flows (`DatagramKind::Ping`/`RawIcmp`) are the same
//! machinery over stack echo sockets; what differs is in `echo_flow`.

use crate::addr::canonical;
use crate::echo_flow;
use crate::lend::Lent;
use crate::seqpacket;
use crate::Errno;
use control::datagram::{Header, RecvInfo, HEADER_LEN};
use control::{DatagramFraming, DatagramKind, UdpOpenRequest};
use mio::unix::SourceFd;
use mio::{Interest, Token};
use router::Route;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Instant;
use tcpip::{Stack, UdpHandle};
use tracing::{debug, trace};

/// mio tokens at and above this are datagram flows (token - base = id).
pub const TOKEN_BASE: usize = 1 << 32;
/// Messages read from one flow per loop turn.
pub const UP_BUDGET: usize = 64;
/// Largest message on a data socket.
pub const MESSAGE: usize = HEADER_LEN + echo_flow::RAW_V4_HEADER + 65_536;

/// One datagram flow.
pub struct UdpFlow {
    fd: OwnedFd,
    v4: Option<UdpHandle>,
    v6: Option<UdpHandle>,
    local: SocketAddr,
    peer: Option<SocketAddr>,
    /// Header-less messages (see the module doc).
    plain: bool,
    /// UDP, ping or raw ICMP.
    kind: DatagramKind,
    app_fd: i32,
    started: Instant,
    dgrams_out: u64,
    bytes_out: u64,
    dgrams_in: u64,
    bytes_in: u64,
    dropped_out: u64,
    dropped_in: u64,
}

impl UdpFlow {
    fn handle_for(&self, v4: bool) -> Option<UdpHandle> {
        if v4 {
            self.v4
        } else {
            self.v6
        }
    }
}

fn wildcard(v4: bool, port: u16) -> SocketAddr {
    if v4 {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)
    } else {
        SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port)
    }
}

/// Our first tunnel address of the family, if we have one.
fn first_address(stack: &Stack, v4: bool) -> Option<IpAddr> {
    stack
        .config()
        .addresses
        .iter()
        .copied()
        .find(|a| a.is_ipv4() == v4)
}

/// The engine thread's datagram flows; the thread lends the stack and the
/// rest for each call ([`Lent`]).
pub struct UdpFlows {
    flows: HashMap<u64, UdpFlow>,
    by_handle: HashMap<UdpHandle, u64>,
    /// Flows whose data socket may have messages to read.
    ready: Vec<u64>,
    next: u64,
    /// Buffer for one message of a data socket.
    dgram: Vec<u8>,
}

impl Default for UdpFlows {
    fn default() -> Self {
        UdpFlows {
            flows: HashMap::new(),
            by_handle: HashMap::new(),
            ready: Vec::new(),
            next: 1,
            dgram: vec![0; MESSAGE],
        }
    }
}

impl UdpFlows {
    /// Marks flow `id` as having messages to read (its data socket polled readable).
    pub fn mark_ready(&mut self, id: u64) {
        self.ready.push(id);
    }

    /// Whether some flow has messages waiting to be read.
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Number of open flows.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// Opens a flow for the shim; returns (id, our address, MTU).
    pub fn open(
        &mut self,
        cx: &mut Lent<'_>,
        req: UdpOpenRequest,
        fd: OwnedFd,
    ) -> Result<(u64, SocketAddr, u16), Errno> {
        let plain = req.framing == DatagramFraming::Plain;
        let bind = req.bind;
        let families: Vec<bool> = if echo_flow::is_icmp(req.kind) {
            // An ICMP socket speaks its own family only.
            if !bind.ip().is_unspecified() {
                if !cx.stack.config().addresses.contains(&bind.ip()) {
                    return Err(libc::EADDRNOTAVAIL);
                }
                if bind.is_ipv4() == req.v6_socket {
                    return Err(libc::EINVAL);
                }
            }
            vec![!req.v6_socket]
        } else if plain {
            // One socket, of the peer's family: a second, unconnected one
            // would take datagrams from anyone.
            let dst = req.connect.ok_or(libc::EDESTADDRREQ)?;
            if !bind.ip().is_unspecified() {
                if !cx.stack.config().addresses.contains(&bind.ip()) {
                    return Err(libc::EADDRNOTAVAIL);
                }
                if bind.is_ipv4() != dst.is_ipv4() {
                    return Err(libc::EINVAL);
                }
            }
            vec![dst.is_ipv4()]
        } else if !bind.ip().is_unspecified() {
            if !cx.stack.config().addresses.contains(&bind.ip()) {
                return Err(libc::EADDRNOTAVAIL);
            }
            vec![bind.is_ipv4()]
        } else if !req.v6_socket {
            vec![true]
        } else if req.v6_only {
            vec![false]
        } else {
            vec![true, false]
        };
        // Only families we have an address in.
        let families: Vec<bool> = families
            .into_iter()
            .filter(|v4| first_address(cx.stack, *v4).is_some())
            .collect();
        if let Some(dst) = req.connect {
            if !families.contains(&dst.is_ipv4()) {
                return Err(libc::ENETUNREACH);
            }
        }
        if families.is_empty() {
            return Err(libc::EADDRNOTAVAIL);
        }
        let mut port = bind.port();
        let mut made: Vec<(bool, UdpHandle)> = Vec::new();
        for v4 in families {
            let at = if bind.ip().is_unspecified() {
                wildcard(v4, port)
            } else {
                SocketAddr::new(bind.ip(), port)
            };
            match echo_flow::bind(cx.stack, req.kind, at) {
                Ok(h) => {
                    if port == 0 {
                        port = cx.stack.udp_local_addr(h).map(|a| a.port()).unwrap_or(0);
                    }
                    made.push((v4, h));
                }
                Err(e) => {
                    for (_, h) in made {
                        let _ = cx.stack.udp_close(h);
                    }
                    return Err(e.errno());
                }
            }
        }
        let v4h = made.iter().find(|m| m.0).map(|m| m.1);
        let v6h = made.iter().find(|m| !m.0).map(|m| m.1);
        let id = self.next;
        self.next += 1;
        let registered = cx.poll.registry().register(
            &mut SourceFd(&fd.as_raw_fd()),
            Token(TOKEN_BASE + id as usize),
            Interest::READABLE,
        );
        if let Err(e) = registered {
            for (_, h) in made {
                let _ = cx.stack.udp_close(h);
            }
            return Err(e.raw_os_error().unwrap_or(libc::ENOMEM));
        }
        for (_, h) in &made {
            self.by_handle.insert(*h, id);
        }
        let flow = UdpFlow {
            fd,
            v4: v4h,
            v6: v6h,
            local: SocketAddr::new(bind.ip(), port),
            peer: None,
            plain,
            kind: req.kind,
            app_fd: req.fd,
            started: Instant::now(),
            dgrams_out: 0,
            bytes_out: 0,
            dgrams_in: 0,
            bytes_in: 0,
            dropped_out: 0,
            dropped_in: 0,
        };
        let mtu = u16::try_from(cx.stack.config().mtu).unwrap_or(u16::MAX);
        cx.live.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        debug!(flow = id, fd = req.fd, local = %flow.local, plain, kind = ?req.kind, "udp flow opened");
        let local = if let Some(dst) = req.connect {
            self.flows.insert(id, flow);
            match self.set_peer(cx, id, Some(dst)) {
                Ok(l) => l,
                Err(e) => {
                    self.close(cx, id, "refused");
                    return Err(e);
                }
            }
        } else {
            self.flows.insert(id, flow);
            SocketAddr::new(bind.ip(), port)
        };
        // Datagrams may already be waiting (the shim sends right after).
        self.ready.push(id);
        Ok((id, local, mtu))
    }

    /// Sets or clears the default peer; returns our address for it.
    pub fn set_peer(
        &mut self,
        cx: &mut Lent<'_>,
        id: u64,
        peer: Option<SocketAddr>,
    ) -> Result<SocketAddr, Errno> {
        let first = peer.and_then(|p| first_address(cx.stack, p.is_ipv4()));
        let f = self.flows.get_mut(&id).ok_or(libc::EBADF)?;
        match peer {
            Some(dst) => {
                let h = f.handle_for(dst.is_ipv4()).ok_or(libc::ENETUNREACH)?;
                cx.stack.udp_connect(h, dst).map_err(|e| e.errno())?;
                f.peer = Some(dst);
                let local = if f.local.ip().is_unspecified() {
                    SocketAddr::new(first.unwrap_or(f.local.ip()), f.local.port())
                } else {
                    f.local
                };
                debug!(flow = id, peer = %dst, local = %local, "udp flow connected");
                Ok(local)
            }
            None => {
                for h in [f.v4, f.v6].into_iter().flatten() {
                    let _ = cx.stack.udp_disconnect(h);
                }
                f.peer = None;
                debug!(flow = id, "udp flow disconnected");
                Ok(f.local)
            }
        }
    }

    /// Reads what the applications sent on the flows marked ready.
    pub fn service_ready(&mut self, cx: &mut Lent<'_>) {
        if self.ready.is_empty() {
            return;
        }
        let mut ids = std::mem::take(&mut self.ready);
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            if self.up(cx, id) {
                self.ready.push(id);
            }
        }
    }

    /// Up to [`UP_BUDGET`] datagrams from the application; true if more wait.
    fn up(&mut self, cx: &mut Lent<'_>, id: u64) -> bool {
        let mut buf = std::mem::take(&mut self.dgram);
        let mut more = false;
        for i in 0..=UP_BUDGET {
            let Some(f) = self.flows.get(&id) else {
                break;
            };
            if i == UP_BUDGET {
                more = true;
                break;
            }
            match seqpacket::recv(f.fd.as_raw_fd(), &mut buf) {
                Ok(0) if f.plain && !seqpacket::hung_up(f.fd.as_raw_fd()) => {
                    // An empty datagram (every headered message has a header).
                    self.send_one(cx, id, &[]);
                }
                Ok(0) => {
                    self.close(cx, id, "closed");
                    break;
                }
                Ok(n) => self.send_one(cx, id, &buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    trace!(flow = id, error = %e, "udp data socket");
                    self.close(cx, id, "failed");
                    break;
                }
            }
        }
        self.dgram = buf;
        more
    }

    fn send_one(&mut self, cx: &mut Lent<'_>, id: u64, msg: &[u8]) {
        let Some(f) = self.flows.get_mut(&id) else {
            return;
        };
        let (dst, payload) = if f.plain {
            let Some(peer) = f.peer else {
                // Disconnected (AF_UNSPEC): nowhere to send, as EDESTADDRREQ.
                f.dropped_out += 1;
                cx.counters.udp_plain_dropped += 1;
                return;
            };
            (peer, msg)
        } else {
            match Header::decode(msg) {
                Ok(Header::Datagram(d)) => (canonical(d), &msg[HEADER_LEN..]),
                _ => {
                    f.dropped_out += 1;
                    cx.counters.udp_malformed += 1;
                    return;
                }
            }
        };
        // Only what the router sends to a peer is carried (the shim asks
        // first; this is the engine's own guarantee).
        let (proto, port) = echo_flow::route_proto(f.kind, dst);
        if !matches!(cx.router.lookup(dst.ip(), proto, port), Route::Peer(_)) {
            f.dropped_out += 1;
            cx.counters.no_route_dropped += 1;
            return;
        }
        let Some(mut h) = f.handle_for(dst.is_ipv4()) else {
            f.dropped_out += 1;
            return;
        };
        // A raw ICMP socket picks its own identifier: the echo socket follows it.
        let current = cx.stack.udp_local_addr(h).map_or(0, |a| a.port());
        if let Some(ident) = echo_flow::raw_rebind_needed(f.kind, current, payload) {
            let at = SocketAddr::new(f.local.ip(), ident);
            match cx.stack.echo_bind(at) {
                Ok(nh) => {
                    let _ = cx.stack.udp_close(h);
                    self.by_handle.remove(&h);
                    self.by_handle.insert(nh, id);
                    if dst.is_ipv4() {
                        f.v4 = Some(nh);
                    } else {
                        f.v6 = Some(nh);
                    }
                    h = nh;
                }
                Err(e) => {
                    f.dropped_out += 1;
                    trace!(flow = id, error = %e, ident, "raw ICMP identifier in use");
                    return;
                }
            }
        }
        match cx.stack.udp_send_to(h, payload, dst) {
            Ok(_) => {
                f.dgrams_out += 1;
                f.bytes_out += payload.len() as u64;
            }
            Err(e) => {
                f.dropped_out += 1;
                trace!(flow = id, error = %e, "udp datagram not queued");
            }
        }
    }

    /// A stack socket has datagrams: hand them to the application.
    pub fn down(&mut self, cx: &mut Lent<'_>, h: UdpHandle) {
        let Some(&id) = self.by_handle.get(&h) else {
            return;
        };
        let mut buf = std::mem::take(&mut self.dgram);
        let mut gone = false;
        let raw_v4 = self
            .flows
            .get(&id)
            .is_some_and(|f| f.kind == DatagramKind::RawIcmp && Some(h) == f.v4 && f.v4.is_some());
        // A raw IPv4 socket reads the IP header too: room for it first.
        let at = HEADER_LEN + if raw_v4 { echo_flow::RAW_V4_HEADER } else { 0 };
        while let Ok((n, from, ttl)) = cx.stack.udp_recv_meta(h, &mut buf[at..]) {
            let ours = self.flows.get(&id).map(|f| {
                if f.local.ip().is_unspecified() {
                    first_address(cx.stack, from.is_ipv4())
                } else {
                    Some(f.local.ip())
                }
            });
            let Some(f) = self.flows.get_mut(&id) else {
                break;
            };
            let ours = ours.flatten();
            let n = if raw_v4 {
                let dst = ours.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
                echo_flow::raw_v4_header(&mut buf[HEADER_LEN..at], from.ip(), dst, n, ttl);
                n + echo_flow::RAW_V4_HEADER
            } else {
                n
            };
            let head_len = if f.plain {
                // The stack socket is connected to the peer; this is the
                // engine's own check that nothing else reaches the program.
                let same = match f.peer {
                    // An ICMP socket's "port" means nothing on the wire.
                    Some(p) if echo_flow::is_icmp(f.kind) => p.ip() == canonical(from).ip(),
                    p => p == Some(canonical(from)),
                };
                if !same {
                    f.dropped_in += 1;
                    cx.counters.udp_plain_dropped += 1;
                    continue;
                }
                0
            } else {
                let info = RecvInfo {
                    ttl: Some(ttl).filter(|&t| t != 0),
                    dst: ours,
                };
                let head = Header::Datagram(from).encode_with(info);
                buf[..HEADER_LEN].copy_from_slice(&head);
                HEADER_LEN
            };
            match seqpacket::send2(
                f.fd.as_raw_fd(),
                &buf[HEADER_LEN - head_len..HEADER_LEN],
                &buf[HEADER_LEN..HEADER_LEN + n],
            ) {
                Ok(()) => {
                    f.dgrams_in += 1;
                    f.bytes_in += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    f.dropped_in += 1;
                    cx.counters.udp_app_queue_full += 1;
                }
                Err(_) => {
                    gone = true;
                    break;
                }
            }
        }
        self.dgram = buf;
        if gone {
            self.close(cx, id, "closed");
        }
    }

    /// An ICMP error on a connected stack socket: tell the application.
    pub fn error(&mut self, cx: &mut Lent<'_>, h: UdpHandle, errno: Errno) {
        let Some(&id) = self.by_handle.get(&h) else {
            return;
        };
        let Some(f) = self.flows.get(&id) else {
            return;
        };
        debug!(flow = id, peer = ?f.peer, errno, plain = f.plain, "udp flow: ICMP error");
        if f.plain {
            // No way to tell the program in-band (see the module doc).
            cx.counters.udp_plain_errors_unreported += 1;
            return;
        }
        let head = Header::Error(errno).encode();
        let _ = seqpacket::send2(f.fd.as_raw_fd(), &head, &[]);
    }

    /// Closes a flow and its stack sockets.
    pub fn close(&mut self, cx: &mut Lent<'_>, id: u64, why: &str) {
        let Some(f) = self.flows.remove(&id) else {
            return;
        };
        let _ = cx
            .poll
            .registry()
            .deregister(&mut SourceFd(&f.fd.as_raw_fd()));
        for h in [f.v4, f.v6].into_iter().flatten() {
            self.by_handle.remove(&h);
            let _ = cx.stack.udp_close(h);
        }
        cx.live.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        debug!(
            flow = id,
            fd = f.app_fd,
            local = %f.local,
            peer = ?f.peer,
            plain = f.plain,
            datagrams_out = f.dgrams_out,
            bytes_out = f.bytes_out,
            datagrams_in = f.dgrams_in,
            bytes_in = f.bytes_in,
            dropped_out = f.dropped_out,
            dropped_in = f.dropped_in,
            duration_ms = f.started.elapsed().as_millis() as u64,
            "udp flow {why}"
        );
    }
}
