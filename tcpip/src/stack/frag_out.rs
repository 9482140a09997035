//! Fragmenting datagrams larger than the MTU on the way out, as Linux
//! does for UDP and ICMP when path-MTU discovery does not forbid it: IPv4
//! fragments without DF (RFC 791 §3.2, offsets in 8-byte units), IPv6
//! fragments behind a Fragment header (RFC 8200 §4.5; a source host may
//! fragment). One datagram is fragmented at a time; `poll_transmit` sends
//! its remaining fragments before anything else, so the queue behind it
//! waits instead of growing.
//!
//! Read first: RFC 791 §2.3 and §3.2 (fragmentation), RFC 8200 §4.5 and §5
//! (IPv6 fragment header, minimum MTU), RFC 6864 (IPv4 ID uniqueness for
//! atomic and non-atomic datagrams), RFC 7739 (IPv6 fragment identifiers).

use super::Stack;
use crate::wire::{ipv4, ipv6, IpProtocol};
use std::net::IpAddr;

/// Length of the IPv6 fragment header.
const V6_FRAG_HEADER: usize = 8;

/// The datagram being fragmented.
#[derive(Debug, Default)]
pub(crate) struct FragOut {
    /// The whole IP payload (transport header and data), checksummed.
    pub data: Vec<u8>,
    /// Bytes of `data` already sent.
    sent: usize,
    /// Addresses, protocol and identification of every fragment.
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
    proto: Option<IpProtocol>,
    ident: u32,
}

impl FragOut {
    /// Whether fragments remain to be sent.
    pub(crate) fn busy(&self) -> bool {
        self.src.is_some()
    }
}

/// Data bytes per fragment for `mtu` (a multiple of 8).
fn chunk(mtu: usize, v6: bool) -> usize {
    let head = if v6 {
        ipv6::HEADER_LEN + V6_FRAG_HEADER
    } else {
        ipv4::HEADER_LEN
    };
    (mtu - head) & !7
}

impl Stack {
    /// Starts fragmenting the payload in `self.frag_out.data` (transport
    /// header and data, checksummed) from `src` to `dst`.
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
        let f = &mut self.frag_out;
        f.sent = 0;
        f.src = Some(src);
        f.dst = Some(dst);
        f.proto = Some(proto);
        f.ident = ident;
        self.stats.fragmented += 1;
    }

    /// Writes the next fragment into `buf`; `None` when no datagram is
    /// being fragmented. A `buf` smaller than the MTU drops the datagram
    /// (reported as `Some(0)`).
    pub(crate) fn poll_fragment(&mut self, buf: &mut [u8]) -> Option<usize> {
        let mtu = self.cfg.mtu;
        let f = &mut self.frag_out;
        let (Some(src), Some(dst), Some(proto)) = (f.src, f.dst, f.proto) else {
            return None;
        };
        let v6 = dst.is_ipv6();
        let total = f.data.len();
        let off = f.sent;
        let take = chunk(mtu, v6).min(total - off);
        let more = off + take < total;
        let n = match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) if buf.len() >= ipv4::HEADER_LEN + take => {
                let r = ipv4::Repr {
                    src: s,
                    dst: d,
                    protocol: proto,
                    payload_len: take,
                    ttl: 64,
                };
                let mut p = ipv4::Packet::new_unchecked(&mut buf[..ipv4::HEADER_LEN]);
                r.emit(&mut p, f.ident as u16);
                p.set_flags_offset(false, more, off as u16);
                p.fill_checksum();
                buf[ipv4::HEADER_LEN..ipv4::HEADER_LEN + take]
                    .copy_from_slice(&f.data[off..off + take]);
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
                h[4..8].copy_from_slice(&f.ident.to_be_bytes());
                let at = ipv6::HEADER_LEN + V6_FRAG_HEADER;
                buf[at..at + take].copy_from_slice(&f.data[off..off + take]);
                at + take
            }
            _ => {
                f.src = None; // cannot fit: the datagram is dropped
                return Some(0);
            }
        };
        f.sent = off + take;
        if !more {
            f.src = None;
        }
        self.stats.tx_packets += 1;
        self.stats.fragments_sent += 1;
        Some(n)
    }
}
