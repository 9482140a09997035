//! Socket operations by handle, and the event queue.

use super::{Listener, Stack};
use crate::error::Error;
use crate::tcp::{Seq, State, Tcb};
use crate::udp::{DatagramQueue, UdpSocket};
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

/// A TCP connection (slab index + generation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TcpHandle {
    pub(crate) idx: u32,
    pub(crate) gen: u32,
}

/// A TCP listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerHandle {
    pub(crate) idx: u32,
    pub(crate) gen: u32,
}

/// A UDP socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UdpHandle {
    pub(crate) idx: u32,
    pub(crate) gen: u32,
}

/// Any socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SocketHandle {
    /// A TCP connection.
    Tcp(TcpHandle),
    /// A TCP listener.
    Listener(ListenerHandle),
    /// A UDP socket.
    Udp(UdpHandle),
}

/// What happened to a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketEventKind {
    /// An active open completed.
    Connected,
    /// Data (or end of stream) can be read.
    Readable,
    /// Send buffer space became available after a short write.
    Writable,
    /// The connection failed; the error is also returned by later calls.
    Error(Error),
    /// The connection reached CLOSED or TIME-WAIT.
    Closed,
    /// A listener has a connection ready for `tcp_accept`.
    Incoming,
}

/// An event for the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketEvent {
    /// Which socket.
    pub handle: SocketHandle,
    /// What happened.
    pub kind: SocketEventKind,
}

impl Stack {
    /// The next socket event, oldest first.
    pub fn poll_event(&mut self) -> Option<SocketEvent> {
        let e = self.events.pop_front()?;
        match e.handle {
            SocketHandle::Tcp(h) => {
                use crate::tcp::ev;
                let bit = match e.kind {
                    SocketEventKind::Connected => ev::CONNECTED,
                    SocketEventKind::Readable => ev::READABLE,
                    SocketEventKind::Writable => ev::WRITABLE,
                    SocketEventKind::Error(_) => ev::ERROR,
                    SocketEventKind::Closed => ev::CLOSED,
                    SocketEventKind::Incoming => 0,
                };
                if let Some(t) = self.tcp.get_mut(h.idx, h.gen) {
                    t.queued_events &= !bit;
                }
            }
            SocketHandle::Listener(l) => {
                if let Some(l) = self.listeners.get_mut(l.idx, l.gen) {
                    l.incoming_queued = false;
                }
            }
            SocketHandle::Udp(_) => {}
        }
        Some(e)
    }

    fn tcb(&self, h: TcpHandle) -> Result<&Tcb, Error> {
        self.tcp
            .get(h.idx, h.gen)
            .filter(|t| !t.app_closed)
            .ok_or(Error::InvalidHandle)
    }

    fn tcb_mut(&mut self, h: TcpHandle) -> Result<&mut Tcb, Error> {
        self.tcp
            .get_mut(h.idx, h.gen)
            .filter(|t| !t.app_closed)
            .ok_or(Error::InvalidHandle)
    }

    fn check_local(&self, a: SocketAddr) -> Result<(), Error> {
        if a.ip().is_unspecified() || self.is_local(a.ip()) {
            Ok(())
        } else {
            Err(Error::AddrNotAvailable)
        }
    }

    /// Opens a connection to `remote` (active open). `local` picks the
    /// source address/port; `None` or port 0 picks an ephemeral port.
    pub fn tcp_connect(
        &mut self,
        now: Instant,
        local: Option<SocketAddr>,
        remote: SocketAddr,
    ) -> Result<TcpHandle, Error> {
        self.touch(now);
        if remote.port() == 0 || remote.ip().is_unspecified() {
            return Err(Error::InvalidArgument);
        }
        if let Some(l) = local {
            self.check_local(l)?;
            if l.is_ipv4() != remote.is_ipv4() {
                return Err(Error::InvalidArgument);
            }
        }
        let ip = match local.map(|l| l.ip()).filter(|ip| !ip.is_unspecified()) {
            Some(ip) => ip,
            None => self
                .source_for(remote.ip())
                .ok_or(Error::AddrNotAvailable)?,
        };
        let port = match local.map(|l| l.port()).filter(|&p| p != 0) {
            Some(p) => p,
            None => self
                .ephemeral_port(ip, remote, false)
                .ok_or(Error::AddrNotAvailable)?,
        };
        let local = SocketAddr::new(ip, port);
        if self.tcp_map.contains_key(&(local, remote)) {
            return Err(Error::AddrInUse);
        }
        if self.tcp.len() >= self.cfg.max_tcp_sockets {
            return Err(Error::NoBufferSpace);
        }
        let iss = Seq(self.isn(now, local, remote));
        let ts_off = self.ts_offset(now, local.ip(), remote.ip());
        let t = Tcb::connect(
            &self.cfg.tcp,
            local,
            remote,
            iss,
            self.mss_for(ip),
            now,
            ts_off,
        );
        let h = self.insert_tcb(t);
        self.after_tcb(h.idx, now);
        Ok(h)
    }

    /// Listens on `addr` (an unspecified IP listens on all our addresses
    /// of that family) with at most `backlog` pending connections.
    pub fn tcp_listen(
        &mut self,
        addr: SocketAddr,
        backlog: usize,
    ) -> Result<ListenerHandle, Error> {
        self.check_local(addr)?;
        if addr.port() == 0 {
            return Err(Error::InvalidArgument);
        }
        if self.listen_map.contains_key(&addr) {
            return Err(Error::AddrInUse);
        }
        let backlog = backlog.clamp(1, self.cfg.max_backlog);
        let (idx, gen) = self.listeners.insert(Listener {
            addr,
            backlog,
            half_open: 0,
            queue: VecDeque::with_capacity(backlog),
            incoming_queued: false,
        });
        self.listen_map.insert(addr, idx);
        Ok(ListenerHandle { idx, gen })
    }

    /// Takes the next established connection from a listener.
    pub fn tcp_accept(&mut self, l: ListenerHandle) -> Option<TcpHandle> {
        let li = self.listeners.get_mut(l.idx, l.gen)?;
        while let Some((idx, gen)) = li.queue.pop_front() {
            if self.tcp.get(idx, gen).is_some() {
                return Some(TcpHandle { idx, gen });
            }
        }
        None
    }

    /// Stops listening; connections not yet accepted are reset.
    pub fn tcp_close_listener(&mut self, now: Instant, l: ListenerHandle) -> Result<(), Error> {
        let li = self
            .listeners
            .get(l.idx, l.gen)
            .ok_or(Error::InvalidHandle)?;
        let addr = li.addr;
        self.listen_map.remove(&addr);
        let Some(li) = self.listeners.remove(l.idx) else {
            return Ok(());
        };
        for (idx, gen) in li.queue {
            if let Some(t) = self.tcp.get_mut(idx, gen) {
                t.app_closed = true;
                t.abort();
            }
            self.after_tcb(idx, now);
        }
        for i in 0..self.tcp.capacity_slots() as u32 {
            let child = self
                .tcp
                .at(i)
                .is_some_and(|t| t.listener == Some((l.idx, l.gen)));
            if child {
                if let Some(t) = self.tcp.at_mut(i) {
                    t.listener = None;
                    t.app_closed = true;
                    t.abort();
                }
                self.after_tcb(i, now);
            }
        }
        Ok(())
    }

    /// Queues bytes for sending; returns how many fit (`WouldBlock` if none).
    pub fn tcp_send(&mut self, h: TcpHandle, data: &[u8]) -> Result<usize, Error> {
        let n = self.tcb_mut(h)?.send(data)?;
        if n > 0 {
            // The core never reads a clock: any `now` will do here, since
            // bookkeeping only queues the connection for dispatch.
            if let Some(now) = self.last_now {
                self.after_tcb(h.idx, now);
            }
        }
        Ok(n)
    }

    /// Reads received bytes; `Ok(0)` means the peer closed its side.
    pub fn tcp_recv(&mut self, h: TcpHandle, out: &mut [u8]) -> Result<usize, Error> {
        let r = self.tcb_mut(h)?.recv(out);
        if matches!(r, Ok(n) if n > 0) {
            // The core never reads a clock: the last `now` will do here,
            // since bookkeeping only queues the connection for dispatch
            // (and the shrink timer is not precise).
            if let Some(now) = self.last_now {
                if let Ok(t) = self.tcb_mut(h) {
                    if t.recv_queue() == 0 {
                        t.note_emptied(now);
                    }
                }
                self.after_tcb(h.idx, now);
            }
        }
        r
    }

    /// Bytes waiting to be read.
    pub fn tcp_recv_queue(&self, h: TcpHandle) -> Result<usize, Error> {
        Ok(self.tcb(h)?.recv_queue())
    }

    /// Asks for a [`crate::SocketEventKind::Writable`] event once the send
    /// buffer gains room: for a caller that found it full
    /// ([`Stack::tcp_send_capacity`] 0) without trying a send.
    pub fn tcp_want_writable(&mut self, h: TcpHandle) -> Result<(), Error> {
        self.tcb_mut(h)?.want_writable();
        Ok(())
    }

    /// Free bytes in the send buffer.
    pub fn tcp_send_capacity(&self, h: TcpHandle) -> Result<usize, Error> {
        Ok(self.tcb(h)?.send_capacity())
    }

    /// Bytes of storage the connection's rings hold now, (send, receive):
    /// allocated on first use, grown with the traffic, freed again once
    /// they stayed empty for `TcpConfig::shrink_after`.
    pub fn tcp_ring_storage(&self, h: TcpHandle) -> Result<(usize, usize), Error> {
        Ok(self.tcb(h)?.ring_storage())
    }

    /// Bytes in the send buffer not yet acknowledged.
    pub fn tcp_send_queue(&self, h: TcpHandle) -> Result<usize, Error> {
        Ok(self.tcb(h)?.send_queue())
    }

    /// Half-close: a FIN follows the queued data (`shutdown(SHUT_WR)`).
    pub fn tcp_shutdown_write(&mut self, now: Instant, h: TcpHandle) -> Result<(), Error> {
        self.touch(now);
        self.tcb_mut(h)?.shutdown_write();
        self.after_tcb(h.idx, now);
        Ok(())
    }

    /// Closes the connection and releases the handle; the stack finishes
    /// the close (FIN, TIME-WAIT) on its own. Unread data causes a reset.
    pub fn tcp_close(&mut self, now: Instant, h: TcpHandle) -> Result<(), Error> {
        self.touch(now);
        self.tcb_mut(h)?.close(now);
        self.after_tcb(h.idx, now);
        Ok(())
    }

    /// Resets the connection and releases the handle.
    pub fn tcp_abort(&mut self, now: Instant, h: TcpHandle) -> Result<(), Error> {
        self.touch(now);
        let t = self.tcb_mut(h)?;
        t.app_closed = true;
        t.abort();
        self.after_tcb(h.idx, now);
        Ok(())
    }

    /// Turns keepalive on (probes after `idle` without traffic) or off.
    pub fn tcp_set_keepalive(
        &mut self,
        now: Instant,
        h: TcpHandle,
        idle: Option<std::time::Duration>,
    ) -> Result<(), Error> {
        self.touch(now);
        self.tcb_mut(h)?.set_keepalive(idle, now);
        self.after_tcb(h.idx, now);
        Ok(())
    }

    /// Keepalive as a socket's `SO_KEEPALIVE`, `TCP_KEEPIDLE`,
    /// `TCP_KEEPINTVL` and `TCP_KEEPCNT` set it: `idle` `None` turns it
    /// off; otherwise probes start after `idle` without traffic, every
    /// `interval` (at least 1 s), and `probes` unanswered ones (at least 1)
    /// end the connection with [`Error::TimedOut`].
    pub fn tcp_configure_keepalive(
        &mut self,
        now: Instant,
        h: TcpHandle,
        idle: Option<std::time::Duration>,
        interval: std::time::Duration,
        probes: u32,
    ) -> Result<(), Error> {
        self.touch(now);
        let t = self.tcb_mut(h)?;
        t.set_keepalive_probes(interval, probes);
        t.set_keepalive(idle, now);
        self.after_tcb(h.idx, now);
        Ok(())
    }

    /// Connection state.
    pub fn tcp_state(&self, h: TcpHandle) -> Result<State, Error> {
        Ok(self.tcb(h)?.state)
    }

    /// The error that ended the connection, if any.
    pub fn tcp_error(&self, h: TcpHandle) -> Result<Option<Error>, Error> {
        Ok(self.tcb(h)?.take_error())
    }

    /// Congestion window in bytes (diagnostics).
    pub fn tcp_cwnd(&self, h: TcpHandle) -> Result<usize, Error> {
        Ok(self.tcb(h)?.cwnd())
    }

    /// Diagnostics for a connection.
    pub fn tcp_info(&self, h: TcpHandle) -> Result<crate::tcp::TcpInfo, Error> {
        Ok(self.tcb(h)?.info())
    }

    /// Segments retransmitted on this connection (diagnostics).
    pub fn tcp_retransmits(&self, h: TcpHandle) -> Result<u64, Error> {
        Ok(self.tcb(h)?.retransmits)
    }

    /// Local address of a connection.
    pub fn local_addr(&self, h: TcpHandle) -> Result<SocketAddr, Error> {
        Ok(self.tcb(h)?.local)
    }

    /// Remote address of a connection.
    pub fn peer_addr(&self, h: TcpHandle) -> Result<SocketAddr, Error> {
        Ok(self.tcb(h)?.remote)
    }

    /// Local address of a listener.
    pub fn listener_addr(&self, l: ListenerHandle) -> Result<SocketAddr, Error> {
        Ok(self
            .listeners
            .get(l.idx, l.gen)
            .ok_or(Error::InvalidHandle)?
            .addr)
    }

    // ---- UDP ----

    /// Binds a UDP socket; port 0 picks an ephemeral port.
    pub fn udp_bind(&mut self, addr: SocketAddr) -> Result<UdpHandle, Error> {
        self.check_local(addr)?;
        let port = if addr.port() == 0 {
            let any = SocketAddr::new(
                if addr.is_ipv4() {
                    IpAddr::V4(Ipv4Addr::UNSPECIFIED)
                } else {
                    IpAddr::V6(Ipv6Addr::UNSPECIFIED)
                },
                0,
            );
            self.ephemeral_port(addr.ip(), any, true)
                .ok_or(Error::AddrNotAvailable)?
        } else {
            addr.port()
        };
        let local = SocketAddr::new(addr.ip(), port);
        if self.udp_map.contains_key(&local) {
            return Err(Error::AddrInUse);
        }
        let s = UdpSocket {
            local,
            remote: None,
            rx: DatagramQueue::new(self.cfg.udp_rx_buffer, self.cfg.udp_max_datagrams),
            tx: DatagramQueue::new(self.cfg.udp_tx_buffer, self.cfg.udp_max_datagrams),
            error: None,
            readable_notified: false,
            dirty: false,
            closing: false,
            echo: false,
        };
        let (idx, gen) = self.udp.insert(s);
        self.udp_map.insert(local, idx);
        Ok(UdpHandle { idx, gen })
    }

    /// Sets the default peer and filters incoming datagrams to it.
    pub fn udp_connect(&mut self, h: UdpHandle, remote: SocketAddr) -> Result<(), Error> {
        let s = self.udp.get_mut(h.idx, h.gen).ok_or(Error::InvalidHandle)?;
        if s.local.is_ipv4() != remote.is_ipv4() {
            return Err(Error::InvalidArgument);
        }
        s.remote = Some(remote);
        Ok(())
    }

    /// Clears the default peer: datagrams from anyone are accepted again.
    pub fn udp_disconnect(&mut self, h: UdpHandle) -> Result<(), Error> {
        let s = self.udp.get_mut(h.idx, h.gen).ok_or(Error::InvalidHandle)?;
        s.remote = None;
        s.error = None;
        Ok(())
    }

    /// Queues one datagram to `dst`.
    pub fn udp_send_to(
        &mut self,
        h: UdpHandle,
        data: &[u8],
        dst: SocketAddr,
    ) -> Result<usize, Error> {
        let s = self.udp.get_mut(h.idx, h.gen).ok_or(Error::InvalidHandle)?;
        if let Some(e) = s.error.take() {
            return Err(e);
        }
        if s.echo {
            return self.echo_send_to(h, data, dst);
        }
        if s.local.is_ipv4() != dst.is_ipv4() || dst.port() == 0 {
            return Err(Error::InvalidArgument);
        }
        // Larger than the MTU is sent in fragments (`frag_out`); the IP
        // length field bounds it (IPv4: 65,507 bytes, IPv6: 65,527).
        if data.len() + udp_ip_overhead(dst) > 65_535 {
            return Err(Error::MessageTooLong);
        }
        if !s.tx.push(dst, data) {
            return Err(Error::WouldBlock);
        }
        self.mark_udp_dirty(h.idx);
        Ok(data.len())
    }

    /// Largest UDP payload to `dst` (the IPv4 header counts in IPv4's
    /// 16-bit total length; IPv6's payload length excludes its header).
    pub fn udp_max_payload(dst: SocketAddr) -> usize {
        65_535 - udp_ip_overhead(dst)
    }

    /// Queues one datagram to the connected peer.
    pub fn udp_send(&mut self, h: UdpHandle, data: &[u8]) -> Result<usize, Error> {
        let remote = self
            .udp
            .get(h.idx, h.gen)
            .ok_or(Error::InvalidHandle)?
            .remote
            .ok_or(Error::NotConnected)?;
        self.udp_send_to(h, data, remote)
    }

    /// Takes one datagram: (bytes copied, sender). Longer datagrams are
    /// truncated to `out`, as `recvfrom` does.
    pub fn udp_recv_from(
        &mut self,
        h: UdpHandle,
        out: &mut [u8],
    ) -> Result<(usize, SocketAddr), Error> {
        self.udp_recv_meta(h, out).map(|(n, a, _)| (n, a))
    }

    /// As [`Stack::udp_recv_from`], also giving the TTL (IPv4) or hop
    /// limit (IPv6) the datagram arrived with (`IP_RECVTTL`,
    /// `IPV6_RECVHOPLIMIT`).
    pub fn udp_recv_meta(
        &mut self,
        h: UdpHandle,
        out: &mut [u8],
    ) -> Result<(usize, SocketAddr, u8), Error> {
        let s = self.udp.get_mut(h.idx, h.gen).ok_or(Error::InvalidHandle)?;
        if let Some(e) = s.error.take() {
            return Err(e);
        }
        match s.rx.pop(out) {
            Some((addr, n, ttl)) => {
                if s.rx.is_empty() {
                    s.readable_notified = false;
                }
                Ok((n, addr, ttl))
            }
            None => {
                s.readable_notified = false;
                Err(Error::WouldBlock)
            }
        }
    }

    /// Local address of a UDP socket.
    pub fn udp_local_addr(&self, h: UdpHandle) -> Result<SocketAddr, Error> {
        Ok(self
            .udp
            .get(h.idx, h.gen)
            .ok_or(Error::InvalidHandle)?
            .local)
    }

    /// Closes a UDP socket. Its address is free at once and nothing more
    /// is delivered to it; datagrams it already queued are still sent (a
    /// program that sends and exits expects them to leave), after which the
    /// stack frees it. The handle is invalid from here on.
    pub fn udp_close(&mut self, h: UdpHandle) -> Result<(), Error> {
        let s = self.udp.get_mut(h.idx, h.gen).ok_or(Error::InvalidHandle)?;
        if s.closing {
            return Err(Error::InvalidHandle);
        }
        let local = s.local;
        let drained = s.tx.is_empty();
        let echo = s.echo;
        s.closing = true;
        s.rx = DatagramQueue::new(0, 0);
        if echo {
            self.echo_map.remove(&local);
        } else {
            self.udp_map.remove(&local);
        }
        if drained {
            self.udp.remove(h.idx);
        } else {
            self.mark_udp_dirty(h.idx);
        }
        Ok(())
    }
}

/// What counts against the 65,535-byte limit besides the UDP payload.
fn udp_ip_overhead(dst: SocketAddr) -> usize {
    if dst.is_ipv4() {
        28
    } else {
        8
    }
}
