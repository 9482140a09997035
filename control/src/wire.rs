//! Frame encoding shared by every message: the version and size limits,
//! the errors, the bounded `Writer` and `Reader` over one frame body,
//! and the `u16` length prefix (`frame`, `unframe`, [`frame_len`]).
//! The layout is in the crate doc ("Frame encoding").

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Version byte carried by every frame; a mismatch is rejected.
pub const PROTOCOL_VERSION: u8 = 1;
/// Largest frame, length prefix included. Every message fits well below it.
pub const MAX_FRAME: usize = 512;

/// Why a frame could not be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The caller's buffer is smaller than the frame.
    BufferTooSmall {
        /// Bytes the frame needs.
        needed: usize,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::BufferTooSmall { needed } => {
                write!(
                    f,
                    "buffer too small for control frame ({needed} bytes needed)"
                )
            }
        }
    }
}

impl std::error::Error for EncodeError {}

/// Why bytes could not be decoded into a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// More bytes are needed: at least this many in total.
    Incomplete {
        /// Total bytes needed so far (prefix included).
        needed: usize,
    },
    /// The length prefix is below the minimum or above [`MAX_FRAME`].
    BadLength(usize),
    /// The version byte is not [`PROTOCOL_VERSION`].
    BadVersion(u8),
    /// The tag is not a known message of this direction.
    BadTag(u8),
    /// A field is out of range (address family, option tag, bool…).
    BadField(&'static str),
    /// A field runs past the end of the frame.
    Truncated,
    /// The frame has bytes after its last field.
    TrailingBytes,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Incomplete { needed } => {
                write!(f, "incomplete frame ({needed} bytes needed)")
            }
            DecodeError::BadLength(n) => write!(f, "bad frame length {n}"),
            DecodeError::BadVersion(v) => {
                write!(
                    f,
                    "control protocol version {v}, expected {PROTOCOL_VERSION}"
                )
            }
            DecodeError::BadTag(t) => write!(f, "unknown message tag {t}"),
            DecodeError::BadField(name) => write!(f, "invalid field {name}"),
            DecodeError::Truncated => f.write_str("field runs past the end of the frame"),
            DecodeError::TrailingBytes => f.write_str("trailing bytes in frame"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Length of the `u16` length prefix.
pub const PREFIX_LEN: usize = 2;

/// Bounded writer over the caller's buffer; never panics.
pub(crate) struct Writer<'a> {
    pub(crate) buf: &'a mut [u8],
    pub(crate) pos: usize,
    pub(crate) overflow: bool,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Writer {
            buf,
            pos: 0,
            overflow: false,
        }
    }
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        let end = self.pos + b.len();
        match self.buf.get_mut(self.pos..end) {
            Some(dst) if !self.overflow => dst.copy_from_slice(b),
            _ => self.overflow = true,
        }
        self.pos = end;
    }
    pub(crate) fn u8(&mut self, v: u8) {
        self.bytes(&[v]);
    }
    pub(crate) fn u16(&mut self, v: u16) {
        self.bytes(&v.to_be_bytes());
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.bytes(&v.to_be_bytes());
    }
    pub(crate) fn i32(&mut self, v: i32) {
        self.bytes(&v.to_be_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.bytes(&v.to_be_bytes());
    }
    pub(crate) fn opt_addr(&mut self, a: &Option<SocketAddr>) {
        match a {
            None => self.u8(0),
            Some(a) => {
                self.u8(1);
                self.addr(a);
            }
        }
    }
    pub(crate) fn addr(&mut self, a: &SocketAddr) {
        match a {
            SocketAddr::V4(v4) => {
                self.u8(4);
                self.bytes(&v4.ip().octets());
                self.u16(v4.port());
            }
            SocketAddr::V6(v6) => {
                self.u8(6);
                self.bytes(&v6.ip().octets());
                self.u16(v6.port());
                self.u32(v6.flowinfo());
                self.u32(v6.scope_id());
            }
        }
    }
}

/// Cursor over one frame body; every read is bounds-checked.
pub(crate) struct Reader<'a> {
    pub(crate) buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }
    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    pub(crate) fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    pub(crate) fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::BadField("bool")),
        }
    }
    pub(crate) fn opt_addr(&mut self) -> Result<Option<SocketAddr>, DecodeError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.addr()?)),
            _ => Err(DecodeError::BadField("address option")),
        }
    }
    pub(crate) fn addr(&mut self) -> Result<SocketAddr, DecodeError> {
        match self.u8()? {
            4 => {
                let ip = Ipv4Addr::from(self.array::<4>()?);
                let port = self.u16()?;
                Ok(SocketAddr::V4(SocketAddrV4::new(ip, port)))
            }
            6 => {
                let ip = Ipv6Addr::from(self.array::<16>()?);
                let port = self.u16()?;
                let flow = self.u32()?;
                let scope = self.u32()?;
                Ok(SocketAddr::V6(SocketAddrV6::new(ip, port, flow, scope)))
            }
            _ => Err(DecodeError::BadField("address family")),
        }
    }
    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes)
        }
    }
}

pub(crate) fn frame(
    buf: &mut [u8],
    tag: u8,
    body: impl FnOnce(&mut Writer<'_>),
) -> Result<usize, EncodeError> {
    let mut w = Writer::new(buf);
    w.u16(0);
    w.u8(PROTOCOL_VERSION);
    w.u8(tag);
    body(&mut w);
    let total = w.pos;
    if w.overflow || total > MAX_FRAME {
        return Err(EncodeError::BufferTooSmall { needed: total });
    }
    let len = (total - PREFIX_LEN) as u16;
    w.buf[..PREFIX_LEN].copy_from_slice(&len.to_le_bytes());
    Ok(total)
}

/// Splits one frame off the front of `buf`: `(tag, body, total_len)`.
pub(crate) fn unframe(buf: &[u8]) -> Result<(u8, Reader<'_>, usize), DecodeError> {
    let Some(prefix) = buf.get(..PREFIX_LEN) else {
        return Err(DecodeError::Incomplete { needed: PREFIX_LEN });
    };
    let len = usize::from(u16::from_le_bytes([prefix[0], prefix[1]]));
    if !(2..=MAX_FRAME - PREFIX_LEN).contains(&len) {
        return Err(DecodeError::BadLength(len));
    }
    let total = PREFIX_LEN + len;
    let Some(body) = buf.get(PREFIX_LEN..total) else {
        return Err(DecodeError::Incomplete { needed: total });
    };
    let mut r = Reader { buf: body };
    let version = r.u8()?;
    if version != PROTOCOL_VERSION {
        return Err(DecodeError::BadVersion(version));
    }
    let tag = r.u8()?;
    Ok((tag, r, total))
}

/// Total frame length announced by a length prefix, if it is valid. Lets a
/// reader learn how many bytes to read after the first [`PREFIX_LEN`].
pub fn frame_len(prefix: [u8; PREFIX_LEN]) -> Result<usize, DecodeError> {
    let len = usize::from(u16::from_le_bytes(prefix));
    if !(2..=MAX_FRAME - PREFIX_LEN).contains(&len) {
        return Err(DecodeError::BadLength(len));
    }
    Ok(PREFIX_LEN + len)
}
