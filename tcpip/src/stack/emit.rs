//! Outbound packets, written straight into the caller's buffer.
//!
//! Read first: RFC 791 §3.1 and RFC 8200 §3 (headers we emit), RFC 6864
//! (IPv4 ID with DF set), RFC 4443 §2.4 (e) and RFC 1812 §4.3.2.8
//! (rate-limiting ICMP errors), RFC 1122 §3.2.2 (what an ICMP error quotes).

use super::Stack;
use crate::wire::icmp::{self, ErrorKind};
use crate::wire::{ipv4, ipv6, tcp, udp, IpProtocol};
use std::net::IpAddr;
use std::time::Instant;

/// Writes an IP header for `payload_len` bytes; returns its length or 0 if
/// `buf` is too small.
pub(crate) fn emit_ip(
    buf: &mut [u8],
    src: IpAddr,
    dst: IpAddr,
    proto: IpProtocol,
    payload_len: usize,
    ident: u16,
) -> usize {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            if buf.len() < ipv4::HEADER_LEN + payload_len {
                return 0;
            }
            let r = ipv4::Repr {
                src: s,
                dst: d,
                protocol: proto,
                payload_len,
                ttl: 64,
            };
            r.emit(
                &mut ipv4::Packet::new_unchecked(&mut buf[..ipv4::HEADER_LEN]),
                ident,
            );
            ipv4::HEADER_LEN
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            if buf.len() < ipv6::HEADER_LEN + payload_len {
                return 0;
            }
            let r = ipv6::Repr {
                src: s,
                dst: d,
                protocol: proto,
                payload_offset: 0,
                payload_len,
                hop_limit: 64,
                frag: None,
            };
            r.emit(&mut ipv6::Packet::new_unchecked(
                &mut buf[..ipv6::HEADER_LEN],
            ));
            ipv6::HEADER_LEN
        }
        _ => 0,
    }
}

impl Stack {
    /// Writes the next outbound IP packet into `buf`; returns its length,
    /// or `None` when nothing is due. Runs due timers first. `buf` should
    /// hold at least the MTU; a packet that does not fit is dropped and
    /// reported as `Some(0)`.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        self.touch(now);
        if let Some(n) = self.ctrl.pop_into(buf) {
            self.stats.tx_packets += 1;
            return Some(n);
        }
        if let Some(n) = self.poll_fragment(buf) {
            return Some(n);
        }
        if self.timer_due(now) {
            self.handle_timeout(now);
        }
        while let Some(&idx) = self.dirty.front() {
            let Some(t) = self.tcp.at_mut(idx) else {
                self.dirty.pop_front();
                self.tcp_dirty[idx as usize] = false;
                continue;
            };
            match t.poll_segment(now) {
                Some(out) => {
                    let (src, dst) = (t.local.ip(), t.remote.ip());
                    let hl = out.repr.header_len();
                    let tcp_len = hl + out.payload_len;
                    let ident = self.next_ident();
                    let Some(t) = self.tcp.at(idx) else { continue };
                    let ip = emit_ip(buf, src, dst, IpProtocol::Tcp, tcp_len, ident);
                    let n = if ip == 0 {
                        0
                    } else {
                        let seg = &mut buf[ip..ip + tcp_len];
                        out.repr.emit_header(seg);
                        t.copy_payload(out.payload_off, &mut seg[hl..]);
                        tcp::Packet::new_unchecked(&mut *seg).fill_checksum(src, dst);
                        ip + tcp_len
                    };
                    // Round-robin between busy connections.
                    self.dirty.pop_front();
                    self.dirty.push_back(idx);
                    self.after_tcb(idx, now);
                    self.stats.tx_packets += 1;
                    return Some(n);
                }
                None => {
                    self.dirty.pop_front();
                    self.tcp_dirty[idx as usize] = false;
                    self.after_tcb_inner(idx, now, false);
                }
            }
        }
        while let Some(&idx) = self.udp_dirty.front() {
            let gen = self.udp.gen(idx);
            let mtu = self.cfg.mtu;
            let src_default = |s: &Stack, d: IpAddr| s.source_for(d);
            let Some(s) = self.udp.at(idx) else {
                self.udp_dirty.pop_front();
                continue;
            };
            let Some((dst, len)) = s.tx.peek() else {
                self.udp_dirty.pop_front();
                if s.closing {
                    // Closed with datagrams queued: now they are all sent.
                    self.udp.remove(idx);
                } else if let Some(s) = self.udp.at_mut(idx) {
                    s.dirty = false;
                }
                continue;
            };
            let local = s.local;
            let src = if local.ip().is_unspecified() {
                src_default(self, dst.ip())
            } else {
                Some(local.ip())
            };
            let ident = self.next_ident();
            let Some(s) = self.udp.at_mut(idx) else {
                continue;
            };
            let ip_len = if dst.is_ipv4() {
                ipv4::HEADER_LEN
            } else {
                ipv6::HEADER_LEN
            };
            let echo = s.echo;
            let l4_head = if echo { 0 } else { udp::HEADER_LEN };
            let total = ip_len + l4_head + len;
            let mut n = 0;
            if let (true, Some(src)) = (total > mtu, src) {
                // Larger than the MTU: fragments (see `frag_out`).
                let mut data = std::mem::take(&mut self.frag_out.data);
                data.clear();
                data.resize(l4_head + len, 0);
                let Some(s) = self.udp.at_mut(idx) else {
                    self.frag_out.data = data;
                    continue;
                };
                s.tx.pop(&mut data[l4_head..]);
                let proto = if echo {
                    Stack::echo_finish(&mut data, local.port(), src, dst.ip());
                    self.stats.echo_requests_sent += 1;
                    Stack::echo_protocol(dst.ip())
                } else {
                    let r = udp::Repr {
                        src_port: local.port(),
                        dst_port: dst.port(),
                        payload: &[],
                    };
                    r.emit_header(&mut data);
                    data[4..6].copy_from_slice(&((udp::HEADER_LEN + len) as u16).to_be_bytes());
                    udp::Packet::new_unchecked(&mut data[..]).fill_checksum(src, dst.ip());
                    IpProtocol::Udp
                };
                self.frag_out.data = data;
                self.start_fragments(src, dst.ip(), proto, ident);
                return self.poll_fragment(buf);
            }
            if let (true, Some(src)) = (echo, src) {
                if total <= mtu && total <= buf.len() {
                    let proto = Stack::echo_protocol(dst.ip());
                    let ip = emit_ip(buf, src, dst.ip(), proto, len, ident);
                    let d = &mut buf[ip..total];
                    s.tx.pop(d);
                    Stack::echo_finish(d, local.port(), src, dst.ip());
                    self.stats.echo_requests_sent += 1;
                    n = total;
                }
            } else if let Some(src) = src {
                if total <= mtu && total <= buf.len() {
                    let ip = emit_ip(
                        buf,
                        src,
                        dst.ip(),
                        IpProtocol::Udp,
                        udp::HEADER_LEN + len,
                        ident,
                    );
                    let d = &mut buf[ip..total];
                    s.tx.pop(&mut d[udp::HEADER_LEN..]);
                    let r = udp::Repr {
                        src_port: local.port(),
                        dst_port: dst.port(),
                        payload: &[],
                    };
                    r.emit_header(d);
                    d[4..6].copy_from_slice(&((udp::HEADER_LEN + len) as u16).to_be_bytes());
                    udp::Packet::new_unchecked(&mut *d).fill_checksum(src, dst.ip());
                    n = total;
                }
            }
            if n == 0 {
                let mut sink = [0u8; 0];
                s.tx.pop(&mut sink);
            }
            let _ = gen;
            self.stats.tx_packets += 1;
            return Some(n);
        }
        None
    }

    /// Starts sending the payload in `self.frag_out.data` (transport header
    /// and data, checksummed) from `src` to `dst` in fragments;
    /// `ident_v4` is the IPv4 identification already drawn for it.
    pub(crate) fn start_fragments(
        &mut self,
        src: IpAddr,
        dst: IpAddr,
        proto: IpProtocol,
        ident_v4: u16,
    ) {
        let ident = if dst.is_ipv4() {
            u32::from(ident_v4)
        } else {
            self.rng.next_u64() as u32
        };
        self.frag_out.start(src, dst, proto, ident);
        self.stats.fragmented += 1;
    }

    /// The next fragment of the datagram being fragmented, if any.
    pub(crate) fn poll_fragment(&mut self, buf: &mut [u8]) -> Option<usize> {
        let n = self.frag_out.poll(self.cfg.mtu, buf)?;
        self.stats.tx_packets += 1;
        if n > 0 {
            self.stats.fragments_sent += 1;
        }
        Some(n)
    }

    /// Emits every due packet through `f` (using an internal MTU-sized
    /// buffer); returns how many were emitted.
    pub fn dispatch(&mut self, now: Instant, mut f: impl FnMut(&[u8])) -> usize {
        let mut buf = std::mem::take(&mut self.scratch);
        let mut count = 0;
        while let Some(n) = self.poll_transmit(now, &mut buf) {
            if n > 0 {
                f(&buf[..n]);
                count += 1;
            }
        }
        self.scratch = buf;
        count
    }

    /// Queues a control packet (rate-limited): `f` writes the transport
    /// header and payload and returns their length.
    pub(crate) fn queue_control(
        &mut self,
        now: Instant,
        src: IpAddr,
        dst: IpAddr,
        proto: IpProtocol,
        f: impl FnOnce(&mut [u8]) -> usize,
    ) -> bool {
        if !self.bucket.take(now) {
            self.stats.control_dropped += 1;
            return false;
        }
        self.queue_reply(src, dst, proto, f)
    }

    /// Queues a control packet without rate limiting (echo replies).
    pub(crate) fn queue_reply(
        &mut self,
        src: IpAddr,
        dst: IpAddr,
        proto: IpProtocol,
        f: impl FnOnce(&mut [u8]) -> usize,
    ) -> bool {
        let ident = self.next_ident();
        let ip_len = if src.is_ipv4() {
            ipv4::HEADER_LEN
        } else {
            ipv6::HEADER_LEN
        };
        let ok = self.ctrl.push_with(|b| {
            if b.len() < ip_len {
                return 0;
            }
            let n = f(&mut b[ip_len..]);
            if n == 0 || emit_ip(b, src, dst, proto, n, ident) == 0 {
                return 0;
            }
            if proto == IpProtocol::Tcp {
                tcp::Packet::new_unchecked(&mut b[ip_len..ip_len + n]).fill_checksum(src, dst);
            }
            ip_len + n
        });
        if !ok {
            self.stats.control_dropped += 1;
        }
        ok
    }

    /// Sends an ICMP error about `offending` (the whole received packet).
    pub(crate) fn send_icmp_error(
        &mut self,
        now: Instant,
        remote: IpAddr,
        local: IpAddr,
        kind: ErrorKind,
        offending: &[u8],
    ) {
        // Never about multicast/broadcast/unspecified sources (RFC 1122 §3.2.2, RFC 4443 §2.4).
        let bad_src = match remote {
            IpAddr::V4(a) => a.is_broadcast() || a.is_multicast() || a.is_unspecified(),
            IpAddr::V6(a) => a.is_multicast() || a.is_unspecified(),
        };
        if bad_src || kind != ErrorKind::PortUnreachable {
            return;
        }
        let v6 = remote.is_ipv6();
        let (ty, code, proto, max_total) = if v6 {
            (icmp::V6_DST_UNREACHABLE, 4, IpProtocol::Icmpv6, 1280)
        } else {
            (icmp::V4_DST_UNREACHABLE, 3, IpProtocol::Icmp, 576)
        };
        let ip_len = if v6 {
            ipv6::HEADER_LEN
        } else {
            ipv4::HEADER_LEN
        };
        let quote = offending
            .len()
            .min(max_total.min(self.cfg.mtu) - ip_len - icmp::HEADER_LEN);
        if self.queue_control(now, local, remote, proto, |b| {
            let n = icmp::HEADER_LEN + quote;
            if b.len() < n {
                return 0;
            }
            let mut p = icmp::Packet::new_unchecked(&mut b[..n]);
            p.set_header(ty, code, (0, 0));
            p.data_mut().copy_from_slice(&offending[..quote]);
            p.fill_checksum(if v6 { Some((local, remote)) } else { None });
            n
        }) {
            self.stats.icmp_sent += 1;
        }
    }

    pub(crate) fn mark_udp_dirty(&mut self, idx: u32) {
        if let Some(s) = self.udp.at_mut(idx) {
            if !s.dirty {
                s.dirty = true;
                self.udp_dirty.push_back(idx);
            }
        }
    }
}
