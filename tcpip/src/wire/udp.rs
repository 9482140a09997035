//! UDP header.
//!
//! Read first: RFC 768, RFC 8200 §8.1 (a zero checksum is invalid over
//! IPv6), RFC 1122 §4.1.3.4 (checksum handling).

use super::{be16, checksum, set16, Field, WireError};
use std::net::IpAddr;

mod field {
    use super::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const LENGTH: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
}

/// UDP header length.
pub const HEADER_LEN: usize = 8;

/// A typed view over a UDP datagram.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps without checks.
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }
    /// Wraps, checking the length field against the buffer.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let p = Packet { buffer };
        let l = usize::from(p.len());
        if l < HEADER_LEN {
            return Err(WireError::Malformed);
        }
        if l > p.buffer.as_ref().len() {
            return Err(WireError::Truncated);
        }
        Ok(p)
    }
    /// Source port.
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT)
    }
    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT)
    }
    /// Length field (header + payload).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }
    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// Payload, cut to the length field.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }
    /// Verifies the checksum; zero means "none" and is accepted over IPv4 only.
    pub fn verify_checksum(&self, src: IpAddr, dst: IpAddr) -> bool {
        if self.checksum() == 0 {
            return src.is_ipv4();
        }
        let b = &self.buffer.as_ref()[..usize::from(self.len())];
        let acc = checksum::pseudo(src, dst, 17, b.len() as u32);
        checksum::fold(checksum::sum(b, acc)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Computes the checksum over the whole buffer (which must be exactly
    /// the datagram).
    pub fn fill_checksum(&mut self, src: IpAddr, dst: IpAddr) {
        set16(self.buffer.as_mut(), field::CHECKSUM, 0);
        let b = self.buffer.as_ref();
        let acc = checksum::pseudo(src, dst, 17, b.len() as u32);
        let mut c = checksum::finish(checksum::sum(b, acc));
        if c == 0 {
            c = 0xffff;
        }
        set16(self.buffer.as_mut(), field::CHECKSUM, c);
    }
}

/// A parsed UDP header; the payload borrows the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Payload.
    pub payload: &'a [u8],
}

impl<'a> Repr<'a> {
    /// Parses a checked datagram, verifying its checksum.
    pub fn parse(p: &Packet<&'a [u8]>, src: IpAddr, dst: IpAddr) -> Result<Repr<'a>, WireError> {
        if !p.verify_checksum(src, dst) {
            return Err(WireError::Checksum);
        }
        if p.dst_port() == 0 {
            return Err(WireError::Malformed);
        }
        let buf: &'a [u8] = p.buffer;
        Ok(Repr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            payload: &buf[HEADER_LEN..usize::from(p.len())],
        })
    }

    /// Emits the header (length set, checksum zero) into `b`.
    pub fn emit_header(&self, b: &mut [u8]) {
        set16(b, field::SRC_PORT, self.src_port);
        set16(b, field::DST_PORT, self.dst_port);
        set16(b, field::LENGTH, (HEADER_LEN + self.payload.len()) as u16);
        set16(b, field::CHECKSUM, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    #[test]
    fn roundtrip_v6_and_zero_checksum() {
        let src = IpAddr::V6(Ipv6Addr::LOCALHOST);
        let dst = IpAddr::V6("fd88::2".parse().expect("addr"));
        let r = Repr {
            src_port: 53,
            dst_port: 5353,
            payload: b"hey",
        };
        let mut buf = [0xa5u8; 11];
        r.emit_header(&mut buf);
        buf[8..].copy_from_slice(b"hey");
        Packet::new_unchecked(&mut buf[..]).fill_checksum(src, dst);
        let p = Packet::new_checked(&buf[..]).expect("ok");
        assert_eq!(Repr::parse(&p, src, dst), Ok(r));
        buf[6] = 0;
        buf[7] = 0;
        let p = Packet::new_checked(&buf[..]).expect("ok");
        assert_eq!(Repr::parse(&p, src, dst), Err(WireError::Checksum));
    }
}
