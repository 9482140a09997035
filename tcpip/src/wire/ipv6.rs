//! IPv6 header and extension headers.
//!
//! Read first: RFC 8200 §3 (header), §4 (extension headers and their order),
//! §4.5 (fragment header), RFC 7112 (the whole header chain must be in the
//! first fragment), RFC 6946 (atomic fragments).

use super::{be16, set16, Field, IpProtocol, WireError};
use std::net::Ipv6Addr;

mod field {
    use super::Field;
    pub const VER_TC_FL: Field = 0..4;
    pub const LENGTH: Field = 4..6;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: Field = 8..24;
    pub const DST: Field = 24..40;
}

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;

/// Most extension headers walked before giving up.
const MAX_EXT_HEADERS: usize = 8;

/// A typed view over an IPv6 packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checks.
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps a buffer, checking the version and payload length.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let p = Packet { buffer };
        if p.version() != 6 {
            return Err(WireError::Malformed);
        }
        if p.buffer.as_ref().len() < HEADER_LEN + usize::from(p.payload_len()) {
            return Err(WireError::Truncated);
        }
        Ok(p)
    }

    /// The version nibble.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }
    /// Payload length (everything after the fixed header).
    pub fn payload_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }
    /// Next header of the fixed header.
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::NXT_HDR])
    }
    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }
    /// Source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        let mut o = [0u8; 16];
        o.copy_from_slice(&self.buffer.as_ref()[field::SRC]);
        Ipv6Addr::from(o)
    }
    /// Destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        let mut o = [0u8; 16];
        o.copy_from_slice(&self.buffer.as_ref()[field::DST]);
        Ipv6Addr::from(o)
    }
    /// Everything after the fixed header, cut to the payload length.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + usize::from(self.payload_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets version 6, traffic class 0 and flow label.
    pub fn set_version_flow(&mut self, flow: u32) {
        let v = (6u32 << 28) | (flow & 0xfffff);
        self.buffer.as_mut()[field::VER_TC_FL].copy_from_slice(&v.to_be_bytes());
    }
    /// Sets the payload length.
    pub fn set_payload_len(&mut self, v: u16) {
        set16(self.buffer.as_mut(), field::LENGTH, v)
    }
    /// Sets next header.
    pub fn set_next_header(&mut self, p: IpProtocol) {
        self.buffer.as_mut()[field::NXT_HDR] = p.into();
    }
    /// Sets hop limit.
    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = v;
    }
    /// Sets the source.
    pub fn set_src_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&a.octets())
    }
    /// Sets the destination.
    pub fn set_dst_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&a.octets())
    }
}

/// A fragment header's contents (RFC 8200 §4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragInfo {
    /// Offset of this fragment's data in bytes.
    pub offset: u16,
    /// More fragments follow.
    pub more: bool,
    /// Identification.
    pub ident: u32,
    /// Offset of the fragmentable part inside the IPv6 payload.
    pub data_start: usize,
}

/// A parsed IPv6 header with its extension-header chain walked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// The upper-layer protocol after all extension headers.
    pub protocol: IpProtocol,
    /// Offset of the upper-layer payload inside the IPv6 payload.
    pub payload_offset: usize,
    /// Upper-layer payload length (IPv6 payload minus extension headers).
    pub payload_len: usize,
    /// Hop limit.
    pub hop_limit: u8,
    /// The fragment header, if any.
    pub frag: Option<FragInfo>,
}

impl Repr {
    /// Parses a checked packet, walking hop-by-hop, routing, destination
    /// options and fragment headers.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr, WireError> {
        let payload = p.payload();
        let mut next = p.next_header();
        let mut off = 0usize;
        let mut frag = None;
        for _ in 0..MAX_EXT_HEADERS {
            match next {
                IpProtocol::HopByHop | IpProtocol::Ipv6Route | IpProtocol::Ipv6Opts => {
                    let h = payload.get(off..off + 2).ok_or(WireError::Truncated)?;
                    let len = (usize::from(h[1]) + 1) * 8;
                    if payload.len() < off + len {
                        return Err(WireError::Truncated);
                    }
                    if next == IpProtocol::Ipv6Route {
                        // A routing header with segments left would make us
                        // a router; we are a host (RFC 8200 §4.4).
                        let segs_left = payload.get(off + 3).copied().unwrap_or(0);
                        if segs_left != 0 {
                            return Err(WireError::Unsupported);
                        }
                    }
                    next = IpProtocol::from(h[0]);
                    off += len;
                }
                IpProtocol::Ipv6Frag => {
                    let h = payload.get(off..off + 8).ok_or(WireError::Truncated)?;
                    let offm = u16::from_be_bytes([h[2], h[3]]);
                    let info = FragInfo {
                        offset: offm & 0xfff8,
                        more: offm & 1 != 0,
                        ident: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
                        data_start: off + 8,
                    };
                    next = IpProtocol::from(h[0]);
                    off += 8;
                    // Atomic fragments (RFC 6946) are processed in isolation.
                    if info.offset != 0 || info.more {
                        frag = Some(info);
                        break;
                    }
                }
                _ => break,
            }
        }
        if matches!(
            next,
            IpProtocol::HopByHop | IpProtocol::Ipv6Route | IpProtocol::Ipv6Opts
        ) && frag.is_none()
        {
            return Err(WireError::Unsupported);
        }
        Ok(Repr {
            src: p.src_addr(),
            dst: p.dst_addr(),
            protocol: next,
            payload_offset: off,
            payload_len: payload.len() - off,
            hop_limit: p.hop_limit(),
            frag,
        })
    }

    /// Length of the header this repr emits (no extension headers).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Emits the fixed header (extension headers are never emitted).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_version_flow(0);
        p.set_payload_len(self.payload_len as u16);
        p.set_next_header(self.protocol);
        p.set_hop_limit(self.hop_limit);
        p.set_src_addr(self.src);
        p.set_dst_addr(self.dst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(next: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0x60, 0, 0, 0, 0, payload.len() as u8, next, 64];
        v.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        v.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn walks_hop_by_hop_and_dest_opts() {
        // HBH (8 bytes, next=60) then dest-opts (8 bytes, next=17) then 4 bytes.
        let mut pl = vec![60, 0, 1, 4, 0, 0, 0, 0];
        pl.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]);
        pl.extend_from_slice(&[1, 2, 3, 4]);
        let b = base(0, &pl);
        let r = Repr::parse(&Packet::new_checked(&b[..]).expect("ok")).expect("ok");
        assert_eq!(r.protocol, IpProtocol::Udp);
        assert_eq!(r.payload_offset, 16);
        assert_eq!(r.payload_len, 4);
    }

    #[test]
    fn fragment_header() {
        let pl = [6, 0, 0x00, 0x09, 0, 0, 0, 7, 9, 9];
        let b = base(44, &pl);
        let r = Repr::parse(&Packet::new_checked(&b[..]).expect("ok")).expect("ok");
        let f = r.frag.expect("frag");
        assert_eq!((f.offset, f.more, f.ident), (8, true, 7));
        // Truncated extension header.
        let b = base(0, &[6, 1, 0, 0]);
        assert!(Repr::parse(&Packet::new_checked(&b[..]).expect("ok")).is_err());
    }

    #[test]
    fn emit_roundtrip() {
        let r = Repr {
            src: Ipv6Addr::LOCALHOST,
            dst: "fd88::2".parse().expect("addr"),
            protocol: IpProtocol::Tcp,
            payload_offset: 0,
            payload_len: 0,
            hop_limit: 64,
            frag: None,
        };
        let mut buf = [0xa5u8; 40];
        r.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(
            Repr::parse(&Packet::new_checked(&buf[..]).expect("ok")),
            Ok(r)
        );
    }
}
