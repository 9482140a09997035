//! Fragmenting datagrams larger than the MTU on the way out, as Linux
//! does for UDP and ICMP when path-MTU discovery does not forbid it: IPv4
//! fragments without DF (RFC 791 §3.2, offsets in 8-byte units), IPv6
//! fragments behind a Fragment header (RFC 8200 §4.5; a source host may
//! fragment). One datagram is fragmented at a time; the stack's
//! `poll_transmit` sends its remaining fragments before anything else, so
//! the queue behind it waits instead of growing. Sans-IO: the stack puts
//! the datagram in, takes fragments out into its caller's buffer.
//!
//! Read first: RFC 791 §2.3 and §3.2 (fragmentation), RFC 8200 §4.5 and §5
//! (IPv6 fragment header, minimum MTU), RFC 6864 (IPv4 ID uniqueness for
//! atomic and non-atomic datagrams), RFC 7739 (IPv6 fragment identifiers).

use crate::wire::{ipv4, ipv6, IpProtocol};
use std::net::IpAddr;

/// Length of the IPv6 fragment header.
const V6_FRAG_HEADER: usize = 8;

/// The datagram being fragmented.
#[derive(Debug, Default)]
pub struct FragOut {
    /// The whole IP payload (transport header and data), checksummed; the
    /// owner fills it (its capacity is kept between datagrams).
    pub data: Vec<u8>,
    /// Bytes of `data` already sent.
    sent: usize,
    /// Addresses and protocol of every fragment (`None`: idle).
    flow: Option<(IpAddr, IpAddr, IpProtocol)>,
    /// Identification of every fragment.
    ident: u32,
}

/// Data bytes per fragment for `mtu` (a multiple of 8).
fn chunk(mtu: usize, v6: bool) -> usize {
    let head = if v6 {
        ipv6::HEADER_LEN + V6_FRAG_HEADER
    } else {
        ipv4::HEADER_LEN
    };
    mtu.saturating_sub(head) & !7
}

impl FragOut {
    /// Whether fragments remain to be sent.
    pub fn busy(&self) -> bool {
        self.flow.is_some()
    }

    /// Starts fragmenting `data` from `src` to `dst` with identification
    /// `ident` (16 bits used for IPv4).
    pub fn start(&mut self, src: IpAddr, dst: IpAddr, proto: IpProtocol, ident: u32) {
        self.sent = 0;
        self.flow = Some((src, dst, proto));
        self.ident = ident;
    }

    /// Writes the next fragment (at most `mtu` bytes) into `buf`; `None`
    /// when idle. A `buf` too small (or an MTU that leaves no room) drops
    /// the datagram, reported as `Some(0)`.
    pub fn poll(&mut self, mtu: usize, buf: &mut [u8]) -> Option<usize> {
        let (src, dst, proto) = self.flow?;
        let v6 = dst.is_ipv6();
        let total = self.data.len();
        let off = self.sent;
        let take = chunk(mtu, v6).min(total - off);
        let more = off + take < total;
        let n = match (src, dst) {
            _ if take == 0 && total > off => 0,
            (IpAddr::V4(s), IpAddr::V4(d)) if buf.len() >= ipv4::HEADER_LEN + take => {
                let r = ipv4::Repr {
                    src: s,
                    dst: d,
                    protocol: proto,
                    payload_len: take,
                    ttl: 64,
                };
                let mut p = ipv4::Packet::new_unchecked(&mut buf[..ipv4::HEADER_LEN]);
                r.emit(&mut p, self.ident as u16);
                p.set_flags_offset(false, more, off as u16);
                p.fill_checksum();
                buf[ipv4::HEADER_LEN..ipv4::HEADER_LEN + take]
                    .copy_from_slice(&self.data[off..off + take]);
                ipv4::HEADER_LEN + take
            }
            (IpAddr::V6(s), IpAddr::V6(d))
                if buf.len() >= ipv6::HEADER_LEN + V6_FRAG_HEADER + take =>
            {
                let r = ipv6::Repr {
                    src: s,
                    dst: d,
                    protocol: IpProtocol::Ipv6Frag,
                    payload_offset: 0,
                    payload_len: V6_FRAG_HEADER + take,
                    hop_limit: 64,
                    frag: None,
                };
                r.emit(&mut ipv6::Packet::new_unchecked(
                    &mut buf[..ipv6::HEADER_LEN],
                ));
                let h = &mut buf[ipv6::HEADER_LEN..ipv6::HEADER_LEN + V6_FRAG_HEADER];
                h[0] = u8::from(proto);
                h[1] = 0;
                let word = (off as u16) | u16::from(more);
                h[2..4].copy_from_slice(&word.to_be_bytes());
                h[4..8].copy_from_slice(&self.ident.to_be_bytes());
                let at = ipv6::HEADER_LEN + V6_FRAG_HEADER;
                buf[at..at + take].copy_from_slice(&self.data[off..off + take]);
                at + take
            }
            _ => 0,
        };
        if n == 0 {
            self.flow = None; // cannot fit: the datagram is dropped
            return Some(0);
        }
        self.sent = off + take;
        if !more {
            self.flow = None;
        }
        Some(n)
    }
}
