//! ICMPv4 and ICMPv6 messages the stack handles.
//!
//! Read first: RFC 792 (ICMPv4), RFC 1122 §3.2.2 (host requirements,
//! rate limiting), RFC 1191 (fragmentation needed → PMTU), RFC 4443 §2–§4
//! (ICMPv6; §2.4 on which errors must not be sent), RFC 8201 (IPv6 PMTU),
//! RFC 5927 (validating ICMP errors against TCP state).

use super::{be16, checksum, set16, Field, WireError};
use std::net::IpAddr;

mod field {
    use super::Field;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const REST: Field = 4..8;
}

/// Header length (type, code, checksum, 4 bytes of rest-of-header).
pub const HEADER_LEN: usize = 8;

/// ICMPv4 echo reply.
pub const V4_ECHO_REPLY: u8 = 0;
/// ICMPv4 destination unreachable.
pub const V4_DST_UNREACHABLE: u8 = 3;
/// ICMPv4 echo request.
pub const V4_ECHO_REQUEST: u8 = 8;
/// ICMPv4 time exceeded.
pub const V4_TIME_EXCEEDED: u8 = 11;
/// ICMPv6 destination unreachable.
pub const V6_DST_UNREACHABLE: u8 = 1;
/// ICMPv6 packet too big.
pub const V6_PACKET_TOO_BIG: u8 = 2;
/// ICMPv6 time exceeded.
pub const V6_TIME_EXCEEDED: u8 = 3;
/// ICMPv6 echo request.
pub const V6_ECHO_REQUEST: u8 = 128;
/// ICMPv6 echo reply.
pub const V6_ECHO_REPLY: u8 = 129;

/// A typed view over an ICMP (v4 or v6) message.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps without checks.
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }
    /// Wraps, checking that the fixed header is present.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(Packet { buffer })
    }
    /// Message type.
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }
    /// Message code.
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }
    /// Rest-of-header as two 16-bit halves (echo ident/seq; MTU).
    pub fn rest(&self) -> (u16, u16) {
        let b = self.buffer.as_ref();
        (be16(b, 4..6), be16(b, 6..8))
    }
    /// Data after the 8-byte header.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
    /// Verifies an ICMPv4 checksum (no pseudo-header).
    pub fn verify_checksum_v4(&self) -> bool {
        checksum::data(self.buffer.as_ref()) == 0xffff
    }
    /// Verifies an ICMPv6 checksum (with pseudo-header).
    pub fn verify_checksum_v6(&self, src: IpAddr, dst: IpAddr) -> bool {
        let b = self.buffer.as_ref();
        let acc = checksum::pseudo(src, dst, 58, b.len() as u32);
        checksum::fold(checksum::sum(b, acc)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets type, code and rest-of-header.
    pub fn set_header(&mut self, ty: u8, code: u8, rest: (u16, u16)) {
        let b = self.buffer.as_mut();
        b[field::TYPE] = ty;
        b[field::CODE] = code;
        set16(b, field::CHECKSUM, 0);
        set16(b, field::REST.start..6, rest.0);
        set16(b, 6..field::REST.end, rest.1);
    }
    /// Mutable data after the header.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
    /// Fills the checksum: ICMPv4 when `pseudo` is `None`, else ICMPv6.
    pub fn fill_checksum(&mut self, pseudo: Option<(IpAddr, IpAddr)>) {
        set16(self.buffer.as_mut(), field::CHECKSUM, 0);
        let b = self.buffer.as_ref();
        let acc = match pseudo {
            None => 0,
            Some((s, d)) => checksum::pseudo(s, d, 58, b.len() as u32),
        };
        let c = checksum::finish(checksum::sum(b, acc));
        set16(self.buffer.as_mut(), field::CHECKSUM, c);
    }
}

/// The ICMP messages the stack acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repr<'a> {
    /// Echo request.
    EchoRequest {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq: u16,
        /// Data to echo back.
        data: &'a [u8],
    },
    /// Echo reply.
    EchoReply {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq: u16,
        /// Echoed data.
        data: &'a [u8],
    },
    /// An error quoting an offending packet.
    Error {
        /// What the error says.
        kind: ErrorKind,
        /// The quoted IP header and at least 8 payload bytes.
        quote: &'a [u8],
    },
    /// Anything else (ignored by the stack).
    Other {
        /// Message type.
        ty: u8,
        /// Message code.
        code: u8,
    },
}

/// What an ICMP error means to a transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Port unreachable: the destination refused.
    PortUnreachable,
    /// Host/net/address unreachable or administratively prohibited.
    HostUnreachable,
    /// Fragmentation needed (v4) / packet too big (v6), with next-hop MTU.
    PacketTooBig(u16),
    /// Time exceeded or parameter problem: a soft error.
    Soft,
}

impl<'a> Repr<'a> {
    /// Parses an ICMPv4 message (checksum verified).
    pub fn parse_v4(p: &Packet<&'a [u8]>) -> Result<Repr<'a>, WireError> {
        if !p.verify_checksum_v4() {
            return Err(WireError::Checksum);
        }
        Ok(Self::classify(p, false))
    }

    /// Parses an ICMPv6 message (checksum verified with the pseudo-header).
    pub fn parse_v6(p: &Packet<&'a [u8]>, src: IpAddr, dst: IpAddr) -> Result<Repr<'a>, WireError> {
        if !p.verify_checksum_v6(src, dst) {
            return Err(WireError::Checksum);
        }
        Ok(Self::classify(p, true))
    }

    fn classify(p: &Packet<&'a [u8]>, v6: bool) -> Repr<'a> {
        let buf: &'a [u8] = p.buffer;
        let data = &buf[HEADER_LEN..];
        let (ident, seq) = p.rest();
        let (ty, code) = (p.msg_type(), p.msg_code());
        let err = |kind| Repr::Error { kind, quote: data };
        match (v6, ty, code) {
            (false, V4_ECHO_REQUEST, 0) | (true, V6_ECHO_REQUEST, 0) => {
                Repr::EchoRequest { ident, seq, data }
            }
            (false, V4_ECHO_REPLY, 0) | (true, V6_ECHO_REPLY, 0) => {
                Repr::EchoReply { ident, seq, data }
            }
            (false, V4_DST_UNREACHABLE, 3) | (true, V6_DST_UNREACHABLE, 4) => {
                err(ErrorKind::PortUnreachable)
            }
            (false, V4_DST_UNREACHABLE, 4) => err(ErrorKind::PacketTooBig(seq)),
            (true, V6_PACKET_TOO_BIG, 0) => err(ErrorKind::PacketTooBig(
                u16::try_from(u32::from(ident) << 16 | u32::from(seq)).unwrap_or(u16::MAX),
            )),
            (false, V4_DST_UNREACHABLE, _) | (true, V6_DST_UNREACHABLE, _) => {
                err(ErrorKind::HostUnreachable)
            }
            (false, V4_TIME_EXCEEDED, _) | (true, V6_TIME_EXCEEDED, _) => err(ErrorKind::Soft),
            _ => Repr::Other { ty, code },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_v4_roundtrip() {
        let mut buf = [0xa5u8; 12];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_header(V4_ECHO_REQUEST, 0, (7, 9));
        p.data_mut().copy_from_slice(b"ping");
        p.fill_checksum(None);
        let p = Packet::new_checked(&buf[..]).expect("ok");
        assert_eq!(
            Repr::parse_v4(&p),
            Ok(Repr::EchoRequest {
                ident: 7,
                seq: 9,
                data: b"ping"
            })
        );
    }

    #[test]
    fn v6_too_big() {
        let src: IpAddr = "fd88::1".parse().expect("a");
        let dst: IpAddr = "fd88::2".parse().expect("a");
        let mut buf = [0u8; 16];
        let mut p = Packet::new_unchecked(&mut buf[..]);
        p.set_header(V6_PACKET_TOO_BIG, 0, (0, 1280));
        p.fill_checksum(Some((src, dst)));
        let p = Packet::new_checked(&buf[..]).expect("ok");
        match Repr::parse_v6(&p, src, dst) {
            Ok(Repr::Error {
                kind: ErrorKind::PacketTooBig(1280),
                ..
            }) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}
