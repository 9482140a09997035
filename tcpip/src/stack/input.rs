//! Inbound packets: IP validation, reassembly, demultiplexing to sockets,
//! and the replies the stack itself owes (RST, ICMP).
//!
//! Read first: RFC 1122 §3.2.1 (IP checks), §3.2.2 (ICMP), RFC 9293
//! §3.10.7.1–§3.10.7.2 (CLOSED and LISTEN), RFC 4443 §2.4 (no ICMP errors
//! about ICMP errors, multicast or non-unicast sources), RFC 5927 (ICMP
//! attacks against TCP).

use super::{Listener, Stack};
use crate::error::Error;
use crate::tcp::{SynInfo, Tcb};
use crate::wire::icmp::{self, ErrorKind};
use crate::wire::tcp::Flags;
use crate::wire::{ipv4, ipv6, tcp, udp, IpProtocol, WireError};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

impl Stack {
    /// Processes one inbound IP packet (IPv4 or IPv6 by version nibble).
    /// Never panics, whatever the bytes.
    pub fn process(&mut self, now: Instant, packet: &[u8]) {
        self.touch(now);
        self.stats.rx_packets += 1;
        match packet.first().map(|b| b >> 4) {
            Some(4) => self.process_v4(now, packet),
            Some(6) => self.process_v6(now, packet),
            _ => self.stats.rx_malformed += 1,
        }
    }

    fn count(&mut self, e: WireError) {
        match e {
            WireError::Checksum => self.stats.rx_bad_checksum += 1,
            _ => self.stats.rx_malformed += 1,
        }
    }

    fn process_v4(&mut self, now: Instant, packet: &[u8]) {
        let p = match ipv4::Packet::new_checked(packet) {
            Ok(p) => p,
            Err(e) => return self.count(e),
        };
        let repr = match ipv4::Repr::parse(&p) {
            Ok(r) => r,
            Err(e) => return self.count(e),
        };
        let (src, dst) = (IpAddr::V4(repr.src), IpAddr::V4(repr.dst));
        if !self.is_local(dst) {
            self.stats.rx_not_for_us += 1;
            return;
        }
        if p.is_fragment() {
            self.stats.fragments += 1;
            let key = crate::frag::Key {
                src,
                dst,
                ident: u32::from(p.ident()),
                proto: repr.protocol,
            };
            let mut buf = self.scratch_frag();
            let done = self.frag.add(
                now,
                key,
                usize::from(p.frag_offset()),
                p.more_frags(),
                p.payload(),
                &mut buf,
            );
            if let Some(n) = done {
                self.stats.reassembled += 1;
                self.process_transport(now, src, dst, repr.protocol, &buf[..n], p.header(), packet);
            }
            self.put_scratch_frag(buf);
            return;
        }
        let hdr = p.header();
        self.process_transport(now, src, dst, repr.protocol, p.payload(), hdr, packet);
    }

    fn process_v6(&mut self, now: Instant, packet: &[u8]) {
        let p = match ipv6::Packet::new_checked(packet) {
            Ok(p) => p,
            Err(e) => return self.count(e),
        };
        let repr = match ipv6::Repr::parse(&p) {
            Ok(r) => r,
            Err(e) => return self.count(e),
        };
        let (src, dst) = (IpAddr::V6(repr.src), IpAddr::V6(repr.dst));
        if !self.is_local(dst) {
            self.stats.rx_not_for_us += 1;
            return;
        }
        let payload = &p.payload()[repr.payload_offset..];
        if let Some(f) = repr.frag {
            self.stats.fragments += 1;
            let key = crate::frag::Key {
                src,
                dst,
                ident: f.ident,
                proto: repr.protocol,
            };
            let mut buf = self.scratch_frag();
            let done = self
                .frag
                .add(now, key, usize::from(f.offset), f.more, payload, &mut buf);
            if let Some(n) = done {
                self.stats.reassembled += 1;
                self.process_transport(
                    now,
                    src,
                    dst,
                    repr.protocol,
                    &buf[..n],
                    &packet[..ipv6::HEADER_LEN],
                    packet,
                );
            }
            self.put_scratch_frag(buf);
            return;
        }
        self.process_transport(
            now,
            src,
            dst,
            repr.protocol,
            payload,
            &packet[..ipv6::HEADER_LEN],
            packet,
        );
    }

    fn scratch_frag(&mut self) -> Vec<u8> {
        self.frag.take_output()
    }

    fn put_scratch_frag(&mut self, buf: Vec<u8>) {
        self.frag.put_output(buf);
    }

    #[allow(clippy::too_many_arguments)]
    fn process_transport(
        &mut self,
        now: Instant,
        src: IpAddr,
        dst: IpAddr,
        proto: IpProtocol,
        payload: &[u8],
        ip_header: &[u8],
        whole: &[u8],
    ) {
        // TTL (IPv4 byte 8) or hop limit (IPv6 byte 7), for IP_RECVTTL and ping.
        let ttl = ip_header
            .get(if src.is_ipv4() { 8 } else { 7 })
            .copied()
            .unwrap_or(0);
        match proto {
            IpProtocol::Tcp => self.process_tcp(now, src, dst, payload),
            IpProtocol::Udp => self.process_udp(now, src, dst, payload, whole, ttl),
            IpProtocol::Icmp if src.is_ipv4() => self.process_icmp(now, src, dst, payload, ttl),
            IpProtocol::Icmpv6 if src.is_ipv6() => self.process_icmp(now, src, dst, payload, ttl),
            _ => self.stats.rx_malformed += 1,
        }
    }

    fn process_tcp(&mut self, now: Instant, src: IpAddr, dst: IpAddr, payload: &[u8]) {
        let pkt = match tcp::Packet::new_checked(payload) {
            Ok(p) => p,
            Err(e) => return self.count(e),
        };
        let seg = match tcp::Repr::parse(&pkt, src, dst) {
            Ok(s) => s,
            Err(e) => return self.count(e),
        };
        let local = SocketAddr::new(dst, seg.dst_port);
        let remote = SocketAddr::new(src, seg.src_port);
        if let Some(&idx) = self.tcp_map.get(&(local, remote)) {
            let mut reuse = false;
            if let Some(t) = self.tcp.at_mut(idx) {
                // A new SYN for a connection in TIME-WAIT may reopen it (RFC 9293 §3.10.7.4 note, RFC 6191).
                if t.state == crate::tcp::State::TimeWait
                    && seg.flags.has(Flags::SYN)
                    && !seg.flags.has(Flags::ACK)
                {
                    reuse = true;
                } else {
                    t.process(now, &seg);
                }
            }
            if !reuse {
                self.after_tcb(idx, now);
                return;
            }
            self.remove_tcb(idx);
        }
        let lidx = self
            .listen_map
            .get(&local)
            .or_else(|| {
                let any = if dst.is_ipv4() {
                    IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
                } else {
                    IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
                };
                self.listen_map.get(&SocketAddr::new(any, seg.dst_port))
            })
            .copied();
        if let Some(li) = lidx {
            if seg.flags.has(Flags::RST) {
                return;
            }
            if seg.flags.has(Flags::ACK) || !seg.flags.has(Flags::SYN) {
                // RFC 9293 §3.10.7.2: an ACK to a listener draws a RST.
                if seg.flags.has(Flags::ACK) {
                    self.send_rst(now, local, remote, &seg);
                }
                return;
            }
            let lg = self.listeners.gen(li);
            let full = match self.listeners.at(li) {
                Some(Listener {
                    backlog,
                    half_open,
                    queue,
                    ..
                }) => half_open + queue.len() >= *backlog,
                None => true,
            };
            if full || self.tcp.len() >= self.cfg.max_tcp_sockets {
                self.stats.syn_dropped += 1;
                if full {
                    self.stats.listen_overflows += 1;
                }
                return;
            }
            let iss = crate::tcp::Seq(self.isn(now, local, remote));
            let syn = SynInfo {
                seq: crate::tcp::Seq(seg.seq),
                window: seg.window,
                options: seg.options,
            };
            let ts_off = self.ts_offset(now, local.ip(), remote.ip());
            let mut t = Tcb::accept_syn(
                &self.cfg.tcp,
                local,
                remote,
                iss,
                self.mss_for(dst),
                now,
                ts_off,
                &syn,
            );
            t.listener = Some((li, lg));
            if let Some(l) = self.listeners.at_mut(li) {
                l.half_open += 1;
            }
            let h = self.insert_tcb(t);
            self.after_tcb(h.idx, now);
            return;
        }
        if !seg.flags.has(Flags::RST) {
            self.send_rst(now, local, remote, &seg);
        }
    }

    /// RFC 9293 §3.10.7.1: a reset for a segment that matches no connection.
    fn send_rst(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        seg: &tcp::Repr<'_>,
    ) {
        let (seq, ack, flags) = if seg.flags.has(Flags::ACK) {
            (seg.ack, 0, Flags::RST)
        } else {
            (
                0,
                seg.seq.wrapping_add(seg.segment_len() as u32),
                Flags::RST.with(Flags::ACK),
            )
        };
        let r = tcp::Repr {
            src_port: local.port(),
            dst_port: remote.port(),
            seq,
            ack,
            flags,
            window: 0,
            options: tcp::Options::default(),
            payload: &[],
        };
        if self.queue_control(now, local.ip(), remote.ip(), IpProtocol::Tcp, |b| {
            r.emit_header(b);
            tcp::HEADER_LEN
        }) {
            self.stats.rst_sent += 1;
        }
    }

    fn process_udp(
        &mut self,
        now: Instant,
        src: IpAddr,
        dst: IpAddr,
        payload: &[u8],
        whole: &[u8],
        ttl: u8,
    ) {
        let pkt = match udp::Packet::new_checked(payload) {
            Ok(p) => p,
            Err(e) => return self.count(e),
        };
        let d = match udp::Repr::parse(&pkt, src, dst) {
            Ok(d) => d,
            Err(e) => return self.count(e),
        };
        let local = SocketAddr::new(dst, d.dst_port);
        let remote = SocketAddr::new(src, d.src_port);
        let idx = self.udp_map.get(&local).copied().or_else(|| {
            let any = if dst.is_ipv4() {
                IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
            } else {
                IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
            };
            self.udp_map.get(&SocketAddr::new(any, d.dst_port)).copied()
        });
        let Some(idx) = idx else {
            self.send_icmp_error(now, src, dst, ErrorKind::PortUnreachable, whole);
            return;
        };
        let gen = self.udp.gen(idx);
        let Some(s) = self.udp.at_mut(idx) else {
            return;
        };
        if let Some(r) = s.remote {
            if r != remote {
                return; // connected sockets only take datagrams from their peer
            }
        }
        if !s.rx.push_ttl(remote, d.payload, ttl) {
            self.stats.udp_dropped += 1;
            return;
        }
        if !s.readable_notified {
            s.readable_notified = true;
            self.events.push_back(super::SocketEvent {
                handle: super::SocketHandle::Udp(super::UdpHandle { idx, gen }),
                kind: super::SocketEventKind::Readable,
            });
        }
    }

    fn process_icmp(&mut self, now: Instant, src: IpAddr, dst: IpAddr, payload: &[u8], ttl: u8) {
        let pkt = match icmp::Packet::new_checked(payload) {
            Ok(p) => p,
            Err(e) => return self.count(e),
        };
        let repr = if src.is_ipv4() {
            icmp::Repr::parse_v4(&pkt)
        } else {
            icmp::Repr::parse_v6(&pkt, src, dst)
        };
        let repr = match repr {
            Ok(r) => r,
            Err(e) => return self.count(e),
        };
        match repr {
            icmp::Repr::EchoRequest { ident, seq, data } => {
                let ty = if src.is_ipv4() {
                    icmp::V4_ECHO_REPLY
                } else {
                    icmp::V6_ECHO_REPLY
                };
                let proto = if src.is_ipv4() {
                    IpProtocol::Icmp
                } else {
                    IpProtocol::Icmpv6
                };
                let v6 = src.is_ipv6();
                let max = self.cfg.mtu - if v6 { 40 } else { 20 };
                if icmp::HEADER_LEN + data.len() > max {
                    // A reassembled large echo: the reply goes in fragments.
                    if self.frag_out.busy() {
                        self.stats.control_dropped += 1;
                        return;
                    }
                    let mut b = std::mem::take(&mut self.frag_out.data);
                    b.clear();
                    b.resize(icmp::HEADER_LEN + data.len(), 0);
                    let mut p = icmp::Packet::new_unchecked(&mut b[..]);
                    p.set_header(ty, 0, (ident, seq));
                    p.data_mut().copy_from_slice(data);
                    p.fill_checksum(if v6 { Some((dst, src)) } else { None });
                    self.frag_out.data = b;
                    let id = self.next_ident();
                    self.start_fragments(dst, src, proto, id);
                    self.stats.icmp_sent += 1;
                    self.stats.echo_requests_answered += 1;
                    return;
                }
                // Echo replies are not rate-limited (Linux's icmp_ratemask
                // leaves them out), only bounded by the control queue.
                if self.queue_reply(dst, src, proto, |b| {
                    let n = icmp::HEADER_LEN + data.len();
                    let mut p = icmp::Packet::new_unchecked(&mut b[..n]);
                    p.set_header(ty, 0, (ident, seq));
                    p.data_mut().copy_from_slice(data);
                    p.fill_checksum(if v6 { Some((dst, src)) } else { None });
                    n
                }) {
                    self.stats.icmp_sent += 1;
                    self.stats.echo_requests_answered += 1;
                }
            }
            icmp::Repr::EchoReply { ident, .. } => {
                self.deliver_echo_reply(src, dst, ident, payload, ttl)
            }
            icmp::Repr::Error { kind, quote } => self.icmp_error(now, kind, quote),
            _ => {}
        }
    }

    /// Applies an ICMP error to the socket named by the quoted header.
    fn icmp_error(&mut self, now: Instant, kind: ErrorKind, quote: &[u8]) {
        let Some((isrc, idst, proto, l4)) = parse_quote(quote) else {
            return;
        };
        if l4.len() < 8 || !self.is_local(isrc) {
            return;
        }
        let sport = u16::from_be_bytes([l4[0], l4[1]]);
        let dport = u16::from_be_bytes([l4[2], l4[3]]);
        let local = SocketAddr::new(isrc, sport);
        let remote = SocketAddr::new(idst, dport);
        match proto {
            IpProtocol::Tcp => {
                let Some(&idx) = self.tcp_map.get(&(local, remote)) else {
                    return;
                };
                let seq = crate::tcp::Seq(u32::from_be_bytes([l4[4], l4[5], l4[6], l4[7]]));
                if let Some(t) = self.tcp.at_mut(idx) {
                    match kind {
                        ErrorKind::PortUnreachable => t.icmp_error(Error::ConnectionRefused, seq),
                        ErrorKind::HostUnreachable => t.icmp_error(Error::HostUnreachable, seq),
                        ErrorKind::PacketTooBig(mtu) => t.lower_mss(usize::from(mtu), now),
                        ErrorKind::Soft => {}
                    }
                }
                self.after_tcb(idx, now);
            }
            IpProtocol::Udp => {
                // A socket bound to the wildcard sent it from our address.
                let idx = self.udp_map.get(&local).copied().or_else(|| {
                    let any = if isrc.is_ipv4() {
                        IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
                    } else {
                        IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
                    };
                    self.udp_map.get(&SocketAddr::new(any, sport)).copied()
                });
                let Some(idx) = idx else { return };
                let gen = self.udp.gen(idx);
                if let Some(s) = self.udp.at_mut(idx) {
                    if s.remote == Some(remote) {
                        let e = match kind {
                            ErrorKind::PortUnreachable => Error::ConnectionRefused,
                            ErrorKind::HostUnreachable => Error::HostUnreachable,
                            _ => return,
                        };
                        s.error = Some(e);
                        self.events.push_back(super::SocketEvent {
                            handle: super::SocketHandle::Udp(super::UdpHandle { idx, gen }),
                            kind: super::SocketEventKind::Error(e),
                        });
                    }
                }
            }
            _ => {}
        }
    }
}

/// Parses the IP header quoted in an ICMP error: (src, dst, protocol, the
/// start of the transport header).
fn parse_quote(q: &[u8]) -> Option<(IpAddr, IpAddr, IpProtocol, &[u8])> {
    match q.first()? >> 4 {
        4 => {
            if q.len() < ipv4::HEADER_LEN {
                return None;
            }
            let p = ipv4::Packet::new_unchecked(q);
            let hl = p.header_len();
            if hl < ipv4::HEADER_LEN || q.len() < hl {
                return None;
            }
            Some((
                IpAddr::V4(p.src_addr()),
                IpAddr::V4(p.dst_addr()),
                p.protocol(),
                &q[hl..],
            ))
        }
        6 => {
            if q.len() < ipv6::HEADER_LEN {
                return None;
            }
            let p = ipv6::Packet::new_unchecked(q);
            Some((
                IpAddr::V6(p.src_addr()),
                IpAddr::V6(p.dst_addr()),
                p.next_header(),
                &q[ipv6::HEADER_LEN..],
            ))
        }
        _ => None,
    }
}
