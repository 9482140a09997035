//! ICMP echo sockets ("ping sockets"): a datagram socket whose port is the
//! echo identifier. The owner sends whole ICMP echo request messages
//! (header and data, as a program writes them to a Linux ping socket); the
//! stack puts the socket's identifier in, computes the checksum, and hands
//! the socket the echo replies that carry its identifier (whole ICMP
//! messages, with the sender as `(address, 0)` and the TTL or hop limit
//! they arrived with). They share the UDP socket table and API
//! (`udp_send_to`, `udp_recv_meta`, `udp_close`) but not its port space.
//!
//! Read first: RFC 792 (echo, echo reply), RFC 4443 §4.1–§4.2 (ICMPv6
//! echo), RFC 1122 §3.2.2.6 (a host answers echo requests; the data is
//! returned unchanged).

use super::Stack;
use crate::error::Error;
use crate::udp::{DatagramQueue, UdpSocket};
use crate::wire::icmp;
use crate::wire::{ipv4, ipv6, IpProtocol};
use crate::UdpHandle;
use std::net::{IpAddr, SocketAddr};

impl Stack {
    /// Opens an echo socket at `addr` (a wildcard or one of our addresses;
    /// the port is the echo identifier, 0 picks a free one).
    pub fn echo_bind(&mut self, addr: SocketAddr) -> Result<UdpHandle, Error> {
        if !(addr.ip().is_unspecified() || self.is_local(addr.ip())) {
            return Err(Error::AddrNotAvailable);
        }
        let ident = if addr.port() == 0 {
            let start = self.rng.next_u64() as u16;
            (0..=u16::MAX)
                .map(|i| start.wrapping_add(i))
                .find(|&p| p != 0 && !self.echo_map.contains_key(&SocketAddr::new(addr.ip(), p)))
                .ok_or(Error::AddrNotAvailable)?
        } else {
            addr.port()
        };
        let local = SocketAddr::new(addr.ip(), ident);
        if self.echo_map.contains_key(&local) {
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
            echo: true,
        };
        let (idx, gen) = self.udp.insert(s);
        self.echo_map.insert(local, idx);
        Ok(UdpHandle { idx, gen })
    }

    /// Queues one echo request (`msg`: the ICMP message, at least the
    /// 8-byte header, type echo request of `dst`'s family, code 0; the
    /// identifier and checksum are filled in) to `dst` (port ignored).
    pub(crate) fn echo_send_to(
        &mut self,
        h: UdpHandle,
        msg: &[u8],
        dst: SocketAddr,
    ) -> Result<usize, Error> {
        let s = self.udp.get_mut(h.idx, h.gen).ok_or(Error::InvalidHandle)?;
        let want = if dst.is_ipv4() {
            icmp::V4_ECHO_REQUEST
        } else {
            icmp::V6_ECHO_REQUEST
        };
        if s.local.is_ipv4() != dst.is_ipv4()
            || msg.len() < icmp::HEADER_LEN
            || msg[0] != want
            || msg[1] != 0
        {
            return Err(Error::InvalidArgument);
        }
        let ip = if dst.is_ipv4() {
            ipv4::HEADER_LEN
        } else {
            ipv6::HEADER_LEN
        };
        // Larger than the MTU is sent in fragments, as Linux does.
        let limit = if dst.is_ipv4() { 65_535 - ip } else { 65_535 };
        if msg.len() > limit {
            return Err(Error::MessageTooLong);
        }
        if !s.tx.push(SocketAddr::new(dst.ip(), 0), msg) {
            return Err(Error::WouldBlock);
        }
        self.mark_udp_dirty(h.idx);
        Ok(msg.len())
    }

    /// Writes the queued echo request (already copied to `msg`) as a
    /// finished ICMP message: identifier `ident`, checksum.
    pub(crate) fn echo_finish(msg: &mut [u8], ident: u16, src: IpAddr, dst: IpAddr) {
        if msg.len() < icmp::HEADER_LEN {
            return;
        }
        let mut p = icmp::Packet::new_unchecked(&mut *msg);
        let (ty, code, (_, seq)) = (p.msg_type(), p.msg_code(), p.rest());
        p.set_header(ty, code, (ident, seq));
        p.fill_checksum(if dst.is_ipv6() {
            Some((src, dst))
        } else {
            None
        });
    }

    /// The protocol an echo socket's packets carry.
    pub(crate) fn echo_protocol(dst: IpAddr) -> IpProtocol {
        if dst.is_ipv4() {
            IpProtocol::Icmp
        } else {
            IpProtocol::Icmpv6
        }
    }

    /// An echo reply arrived (`msg` the whole ICMP message): hand it to the
    /// echo socket with its identifier.
    pub(crate) fn deliver_echo_reply(
        &mut self,
        src: IpAddr,
        dst: IpAddr,
        ident: u16,
        msg: &[u8],
        ttl: u8,
    ) {
        let any = if dst.is_ipv4() {
            IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
        } else {
            IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
        };
        let idx = self
            .echo_map
            .get(&SocketAddr::new(dst, ident))
            .or_else(|| self.echo_map.get(&SocketAddr::new(any, ident)))
            .copied();
        let Some(idx) = idx else {
            self.stats.echo_replies_dropped += 1;
            return;
        };
        let gen = self.udp.gen(idx);
        let Some(s) = self.udp.at_mut(idx) else {
            self.stats.echo_replies_dropped += 1;
            return;
        };
        if !s.rx.push_ttl(SocketAddr::new(src, 0), msg, ttl) {
            self.stats.echo_replies_dropped += 1;
            return;
        }
        self.stats.echo_replies_delivered += 1;
        if !s.readable_notified {
            s.readable_notified = true;
            self.events.push_back(super::SocketEvent {
                handle: super::SocketHandle::Udp(UdpHandle { idx, gen }),
                kind: super::SocketEventKind::Readable,
            });
        }
    }
}
