//! TCP header and options.
//!
//! Read first: RFC 9293 §3.1 (header format) and §3.2 (options), RFC 7323
//! §2–§3 (window scale, timestamps), RFC 2018 §2–§3 (SACK-permitted, SACK),
//! RFC 6691 (MSS option and IP options).

use super::{be16, be32, checksum, set16, set32, Field, WireError};
use std::net::IpAddr;

mod field {
    use super::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const SEQ: Field = 4..8;
    pub const ACK: Field = 8..12;
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: Field = 14..16;
    pub const CHECKSUM: Field = 16..18;
    pub const URGENT: Field = 18..20;
}

/// Length of a TCP header without options.
pub const HEADER_LEN: usize = 20;
/// Most SACK blocks we parse or emit.
pub const MAX_SACK_BLOCKS: usize = 4;

const OPT_END: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_MSS: u8 = 2;
const OPT_WS: u8 = 3;
const OPT_SACK_PERM: u8 = 4;
const OPT_SACK: u8 = 5;
const OPT_TS: u8 = 8;

/// TCP control flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags(pub u8);

impl Flags {
    /// FIN.
    pub const FIN: Flags = Flags(0x01);
    /// SYN.
    pub const SYN: Flags = Flags(0x02);
    /// RST.
    pub const RST: Flags = Flags(0x04);
    /// PSH.
    pub const PSH: Flags = Flags(0x08);
    /// ACK.
    pub const ACK: Flags = Flags(0x10);
    /// URG.
    pub const URG: Flags = Flags(0x20);

    /// Whether all bits of `o` are set.
    pub const fn has(self, o: Flags) -> bool {
        self.0 & o.0 == o.0
    }
    /// Union.
    pub const fn with(self, o: Flags) -> Flags {
        Flags(self.0 | o.0)
    }
}

/// A typed view over a TCP segment.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps without checks.
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }
    /// Wraps, checking the data offset against the buffer.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let p = Packet { buffer };
        let hl = p.header_len();
        if hl < HEADER_LEN {
            return Err(WireError::Malformed);
        }
        if p.buffer.as_ref().len() < hl {
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
    /// Sequence number.
    pub fn seq_number(&self) -> u32 {
        be32(self.buffer.as_ref(), field::SEQ)
    }
    /// Acknowledgment number.
    pub fn ack_number(&self) -> u32 {
        be32(self.buffer.as_ref(), field::ACK)
    }
    /// Header length in bytes.
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::DATA_OFF] >> 4) * 4
    }
    /// Control flags.
    pub fn flags(&self) -> Flags {
        Flags(self.buffer.as_ref()[field::FLAGS])
    }
    /// Raw window field.
    pub fn window_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::WINDOW)
    }
    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// The options bytes.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }
    /// The payload.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
    /// Verifies the checksum over the pseudo-header and whole segment.
    pub fn verify_checksum(&self, src: IpAddr, dst: IpAddr) -> bool {
        let b = self.buffer.as_ref();
        let acc = checksum::pseudo(src, dst, 6, b.len() as u32);
        checksum::fold(checksum::sum(b, acc)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Computes and stores the checksum over the whole buffer.
    pub fn fill_checksum(&mut self, src: IpAddr, dst: IpAddr) {
        set16(self.buffer.as_mut(), field::CHECKSUM, 0);
        let b = self.buffer.as_ref();
        let acc = checksum::pseudo(src, dst, 6, b.len() as u32);
        let c = checksum::finish(checksum::sum(b, acc));
        set16(self.buffer.as_mut(), field::CHECKSUM, c);
    }
}

/// Parsed TCP options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options {
    /// Maximum segment size (SYN only).
    pub mss: Option<u16>,
    /// Window scale shift (SYN only).
    pub window_scale: Option<u8>,
    /// SACK permitted (SYN only).
    pub sack_permitted: bool,
    /// Timestamps: (TSval, TSecr).
    pub timestamp: Option<(u32, u32)>,
    /// SACK blocks (left, right); only the first `sack_len` are valid.
    pub sack: [(u32, u32); MAX_SACK_BLOCKS],
    /// Number of valid SACK blocks.
    pub sack_len: u8,
}

impl Options {
    fn parse(mut b: &[u8]) -> Result<Options, WireError> {
        let mut o = Options::default();
        while let Some(&kind) = b.first() {
            match kind {
                OPT_END => break,
                OPT_NOP => {
                    b = &b[1..];
                    continue;
                }
                _ => {}
            }
            let len = usize::from(*b.get(1).ok_or(WireError::Malformed)?);
            if len < 2 || len > b.len() {
                return Err(WireError::Malformed);
            }
            let d = &b[2..len];
            match (kind, len) {
                (OPT_MSS, 4) => o.mss = Some(u16::from_be_bytes([d[0], d[1]])),
                (OPT_WS, 3) => o.window_scale = Some(d[0].min(14)),
                (OPT_SACK_PERM, 2) => o.sack_permitted = true,
                (OPT_TS, 10) => {
                    o.timestamp = Some((
                        u32::from_be_bytes([d[0], d[1], d[2], d[3]]),
                        u32::from_be_bytes([d[4], d[5], d[6], d[7]]),
                    ))
                }
                (OPT_SACK, _) if (len - 2) % 8 == 0 => {
                    for blk in d.chunks_exact(8).take(MAX_SACK_BLOCKS) {
                        o.sack[usize::from(o.sack_len)] = (
                            u32::from_be_bytes([blk[0], blk[1], blk[2], blk[3]]),
                            u32::from_be_bytes([blk[4], blk[5], blk[6], blk[7]]),
                        );
                        o.sack_len += 1;
                    }
                }
                (OPT_MSS | OPT_WS | OPT_SACK_PERM | OPT_TS | OPT_SACK, _) => {
                    return Err(WireError::Malformed)
                }
                _ => {} // unknown options are skipped (RFC 9293 §3.2)
            }
            b = &b[len..];
        }
        Ok(o)
    }

    /// Encoded length, padded to a multiple of 4.
    pub fn buffer_len(&self) -> usize {
        let mut n = 0;
        if self.mss.is_some() {
            n += 4;
        }
        if self.window_scale.is_some() {
            n += 4;
        }
        if self.sack_permitted {
            n += 4;
        }
        if self.timestamp.is_some() {
            n += 12;
        }
        if self.sack_len > 0 {
            n += 4 + 8 * usize::from(self.sack_len);
        }
        n
    }

    fn emit(&self, b: &mut [u8]) {
        let mut i = 0;
        if let Some(mss) = self.mss {
            b[i..i + 4].copy_from_slice(&[OPT_MSS, 4, (mss >> 8) as u8, mss as u8]);
            i += 4;
        }
        if let Some(ws) = self.window_scale {
            b[i..i + 4].copy_from_slice(&[OPT_NOP, OPT_WS, 3, ws]);
            i += 4;
        }
        if self.sack_permitted {
            b[i..i + 4].copy_from_slice(&[OPT_NOP, OPT_NOP, OPT_SACK_PERM, 2]);
            i += 4;
        }
        if let Some((val, ecr)) = self.timestamp {
            b[i..i + 4].copy_from_slice(&[OPT_NOP, OPT_NOP, OPT_TS, 10]);
            b[i + 4..i + 8].copy_from_slice(&val.to_be_bytes());
            b[i + 8..i + 12].copy_from_slice(&ecr.to_be_bytes());
            i += 12;
        }
        if self.sack_len > 0 {
            let n = usize::from(self.sack_len);
            b[i..i + 4].copy_from_slice(&[OPT_NOP, OPT_NOP, OPT_SACK, (2 + 8 * n) as u8]);
            i += 4;
            for &(l, r) in &self.sack[..n] {
                b[i..i + 4].copy_from_slice(&l.to_be_bytes());
                b[i + 4..i + 8].copy_from_slice(&r.to_be_bytes());
                i += 8;
            }
        }
    }
}

/// A parsed TCP segment; the payload borrows the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number (meaningful when ACK is set).
    pub ack: u32,
    /// Flags.
    pub flags: Flags,
    /// Raw (unscaled) window.
    pub window: u16,
    /// Options.
    pub options: Options,
    /// Payload.
    pub payload: &'a [u8],
}

impl<'a> Repr<'a> {
    /// Parses a checked segment, verifying the checksum.
    pub fn parse(p: &Packet<&'a [u8]>, src: IpAddr, dst: IpAddr) -> Result<Repr<'a>, WireError> {
        if !p.verify_checksum(src, dst) {
            return Err(WireError::Checksum);
        }
        if p.src_port() == 0 || p.dst_port() == 0 {
            return Err(WireError::Malformed);
        }
        let buf: &'a [u8] = p.buffer;
        let hl = p.header_len();
        Ok(Repr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            seq: p.seq_number(),
            ack: p.ack_number(),
            flags: p.flags(),
            window: p.window_len(),
            options: Options::parse(&buf[HEADER_LEN..hl])?,
            payload: &buf[hl..],
        })
    }

    /// Header length including options.
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options.buffer_len()
    }

    /// Sequence space taken: payload plus one each for SYN and FIN.
    pub fn segment_len(&self) -> usize {
        self.payload.len()
            + usize::from(self.flags.has(Flags::SYN))
            + usize::from(self.flags.has(Flags::FIN))
    }

    /// Emits the header (not the payload, not the checksum) into `b`,
    /// which must be at least `header_len()` long.
    pub fn emit_header(&self, b: &mut [u8]) {
        let hl = self.header_len();
        set16(b, field::SRC_PORT, self.src_port);
        set16(b, field::DST_PORT, self.dst_port);
        set32(b, field::SEQ, self.seq);
        set32(b, field::ACK, self.ack);
        b[field::DATA_OFF] = ((hl / 4) as u8) << 4;
        b[field::FLAGS] = self.flags.0;
        set16(b, field::WINDOW, self.window);
        set16(b, field::CHECKSUM, 0);
        set16(b, field::URGENT, 0);
        self.options.emit(&mut b[HEADER_LEN..hl]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn options_roundtrip() {
        let mut o = Options {
            mss: Some(1380),
            window_scale: Some(7),
            sack_permitted: true,
            timestamp: Some((1, 2)),
            ..Options::default()
        };
        let payload = [9u8; 3];
        let r = Repr {
            src_port: 1,
            dst_port: 2,
            seq: 100,
            ack: 200,
            flags: Flags::SYN.with(Flags::ACK),
            window: 65535,
            options: o,
            payload: &payload,
        };
        let mut buf = [0xa5u8; 60];
        let hl = r.header_len();
        r.emit_header(&mut buf);
        buf[hl..hl + 3].copy_from_slice(&payload);
        let src = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let dst = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        let seg = &mut buf[..hl + 3];
        Packet::new_unchecked(&mut *seg).fill_checksum(src, dst);
        let seg: &[u8] = seg;
        let p = Packet::new_checked(seg).expect("ok");
        assert_eq!(Repr::parse(&p, src, dst).expect("ok"), r);
        let mut bad = seg.to_vec();
        bad[hl] ^= 1;
        let bp = Packet::new_checked(&bad[..]).expect("ok");
        assert_eq!(Repr::parse(&bp, src, dst).err(), Some(WireError::Checksum));
        o.sack_len = 2;
        o.sack[0] = (5, 6);
        o.sack[1] = (7, 8);
        assert_eq!(o.buffer_len(), 4 + 4 + 4 + 12 + 20);
    }

    #[test]
    fn malformed_options_rejected() {
        assert!(Options::parse(&[OPT_MSS, 3, 0]).is_err());
        assert!(Options::parse(&[OPT_MSS]).is_err());
        assert!(Options::parse(&[99, 2, OPT_NOP, OPT_END, 1, 1]).is_ok());
    }
}
