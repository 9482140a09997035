//! Name resolution messages (used only when the config has `DNS =`).
//!
//! * [`Request::DnsInfo`](crate::Request::DnsInfo) →
//!   [`Reply::DnsInfo`](crate::Reply::DnsInfo): whether the engine
//!   resolves names, its first tunnel DNS server, and the host's
//!   nameservers whose port 53 traffic is redirected to it.
//! * [`Request::Resolve`](crate::Request::Resolve) → one [`ResolveReply`]
//!   in its own *long* frame (answers of `res_query` can be up to 64 KiB):
//!
//! ```text
//! u32 LE  length of what follows (2..=MAX_RESOLVE_FRAME-4)
//! u8      PROTOCOL_VERSION
//! u8      RESOLVE_REPLY_TAG
//! u8      status (ResolveStatus)
//! u8      canonical name length, then its bytes
//! u16     address count, then each address: u8 family (4|6), bytes
//! u32     raw answer length, then its bytes
//! ```

use crate::addr::normalize;
use crate::wire::{DecodeError, Reader, Writer, PROTOCOL_VERSION};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Largest name carried (the longest text form of a 255-byte wire name).
pub const MAX_NAME: usize = 255;
/// Host nameservers carried in [`DnsInfo`].
pub const MAX_HOST_NAMESERVERS: usize = 4;
/// Largest resolve reply frame, length prefix included.
pub const MAX_RESOLVE_FRAME: usize = 4 + 4 + MAX_NAME + 2 + 64 * 17 + 4 + 65_535;
/// Length of the resolve reply's length prefix.
pub const RESOLVE_PREFIX_LEN: usize = 4;
/// Tag of a resolve reply frame.
pub const RESOLVE_REPLY_TAG: u8 = 0x90;
/// Most addresses in one reply.
pub const MAX_ADDRS: usize = 64;

/// A name to resolve, stored inline so requests stay `Copy`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct QueryName {
    len: u8,
    bytes: [u8; MAX_NAME],
}

impl QueryName {
    /// The name, if it is 1..=255 bytes without NUL.
    pub fn new(name: &[u8]) -> Option<QueryName> {
        if name.is_empty() || name.len() > MAX_NAME || name.contains(&0) {
            return None;
        }
        let mut bytes = [0u8; MAX_NAME];
        bytes[..name.len()].copy_from_slice(name);
        Some(QueryName {
            len: name.len() as u8,
            bytes,
        })
    }
    /// The empty name (reverse lookups carry none).
    pub fn empty() -> QueryName {
        QueryName {
            len: 0,
            bytes: [0; MAX_NAME],
        }
    }
    /// The bytes of the name.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl std::fmt::Debug for QueryName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

/// What to resolve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResolveKind {
    /// Addresses of the name (`getaddrinfo`, `gethostbyname*`).
    Addr {
        /// IPv4 wanted.
        v4: bool,
        /// IPv6 wanted.
        v6: bool,
    },
    /// The name of an address (`getnameinfo`); the query name is empty.
    Reverse(IpAddr),
    /// A raw query; the reply carries the whole answer (`res_*`).
    Raw {
        /// Class.
        class: u16,
        /// Record type.
        qtype: u16,
        /// Apply search domains (`res_search`).
        search: bool,
    },
}

/// A resolution request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResolveRequest {
    /// What to resolve.
    pub kind: ResolveKind,
    /// The name (empty for [`ResolveKind::Reverse`]).
    pub name: QueryName,
}

/// The engine's DNS setup, as the shim needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DnsInfo {
    /// The first `DNS =` server, `None` if the config has none (the host
    /// resolves names, untouched).
    pub server: Option<IpAddr>,
    /// The host's nameservers (resolv.conf, and 127.0.0.53): port 53
    /// traffic to them goes to `server` instead.
    pub host_servers: [Option<IpAddr>; MAX_HOST_NAMESERVERS],
}

impl DnsInfo {
    /// Where UDP/TCP traffic to `dst` goes instead: the tunnel DNS server
    /// at port 53 when `dst` is port 53 of one of the host's nameservers
    /// (compared normalised: an IPv4-mapped address matches its IPv4) and
    /// names are resolved through the tunnel; `None` otherwise. The one
    /// rule for the shim and the seccomp supervisor alike.
    pub fn redirect(&self, dst: std::net::SocketAddr) -> Option<std::net::SocketAddr> {
        if dst.port() != 53 {
            return None;
        }
        let server = self.server?;
        let asked = normalize(dst).ip();
        self.host_servers
            .iter()
            .flatten()
            .any(|h| *h == asked)
            .then_some(std::net::SocketAddr::new(server, 53))
    }
}

/// How a resolution ended (glibc meanings).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResolveStatus {
    /// Found.
    Ok,
    /// NXDOMAIN: `EAI_NONAME`, `HOST_NOT_FOUND`.
    NxDomain,
    /// No record of that type: `EAI_NODATA`, `NO_DATA`.
    NoData,
    /// The tunnel DNS server did not answer: `EAI_AGAIN`, `TRY_AGAIN`.
    TryAgain,
    /// Unrecoverable (bad name): `EAI_FAIL`, `NO_RECOVERY`.
    NoRecovery,
    /// The engine does not resolve names (no `DNS =`): use the host's
    /// resolver.
    NotConfigured,
}

impl ResolveStatus {
    fn to_byte(self) -> u8 {
        match self {
            ResolveStatus::Ok => 0,
            ResolveStatus::NxDomain => 1,
            ResolveStatus::NoData => 2,
            ResolveStatus::TryAgain => 3,
            ResolveStatus::NoRecovery => 4,
            ResolveStatus::NotConfigured => 5,
        }
    }
    fn from_byte(b: u8) -> Result<Self, DecodeError> {
        Ok(match b {
            0 => ResolveStatus::Ok,
            1 => ResolveStatus::NxDomain,
            2 => ResolveStatus::NoData,
            3 => ResolveStatus::TryAgain,
            4 => ResolveStatus::NoRecovery,
            5 => ResolveStatus::NotConfigured,
            _ => return Err(DecodeError::BadField("resolve status")),
        })
    }
}

/// The answer to [`Request::Resolve`](crate::Request::Resolve).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolveReply {
    /// Outcome.
    pub status: ResolveStatus,
    /// Canonical name (addresses) or the found name (reverse); may be empty.
    pub name: Vec<u8>,
    /// Addresses found (at most [`MAX_ADDRS`]).
    pub addrs: Vec<IpAddr>,
    /// The whole DNS response (raw queries; also on failure if one came).
    pub raw: Vec<u8>,
}

impl ResolveReply {
    /// A reply with only a status.
    pub fn status(status: ResolveStatus) -> ResolveReply {
        ResolveReply {
            status,
            name: Vec::new(),
            addrs: Vec::new(),
            raw: Vec::new(),
        }
    }

    /// Encodes this reply as one long frame. Over-long fields are cut to
    /// their limits (name 255 bytes, 64 addresses, raw 65,535 bytes).
    pub fn encode(&self) -> Vec<u8> {
        let name = &self.name[..self.name.len().min(MAX_NAME)];
        let addrs = &self.addrs[..self.addrs.len().min(MAX_ADDRS)];
        let raw = &self.raw[..self.raw.len().min(65_535)];
        let mut out = Vec::with_capacity(16 + name.len() + addrs.len() * 17 + raw.len());
        out.extend_from_slice(&[0; RESOLVE_PREFIX_LEN]);
        out.push(PROTOCOL_VERSION);
        out.push(RESOLVE_REPLY_TAG);
        out.push(self.status.to_byte());
        out.push(name.len() as u8);
        out.extend_from_slice(name);
        out.extend_from_slice(&(addrs.len() as u16).to_be_bytes());
        for a in addrs {
            match a {
                IpAddr::V4(v4) => {
                    out.push(4);
                    out.extend_from_slice(&v4.octets());
                }
                IpAddr::V6(v6) => {
                    out.push(6);
                    out.extend_from_slice(&v6.octets());
                }
            }
        }
        out.extend_from_slice(&(raw.len() as u32).to_be_bytes());
        out.extend_from_slice(raw);
        let len = (out.len() - RESOLVE_PREFIX_LEN) as u32;
        out[..RESOLVE_PREFIX_LEN].copy_from_slice(&len.to_le_bytes());
        out
    }

    /// Total frame length announced by a prefix, if valid.
    pub fn frame_len(prefix: [u8; RESOLVE_PREFIX_LEN]) -> Result<usize, DecodeError> {
        let len = u32::from_le_bytes(prefix) as usize;
        if !(2..=MAX_RESOLVE_FRAME - RESOLVE_PREFIX_LEN).contains(&len) {
            return Err(DecodeError::BadLength(len));
        }
        Ok(RESOLVE_PREFIX_LEN + len)
    }

    /// Decodes one whole frame (exactly `buf`).
    pub fn decode(buf: &[u8]) -> Result<ResolveReply, DecodeError> {
        let Some(prefix) = buf.get(..RESOLVE_PREFIX_LEN) else {
            return Err(DecodeError::Incomplete {
                needed: RESOLVE_PREFIX_LEN,
            });
        };
        let total = Self::frame_len([prefix[0], prefix[1], prefix[2], prefix[3]])?;
        let Some(body) = buf.get(RESOLVE_PREFIX_LEN..total) else {
            return Err(DecodeError::Incomplete { needed: total });
        };
        if buf.len() > total {
            return Err(DecodeError::TrailingBytes);
        }
        let mut r = Reader { buf: body };
        let v = r.u8()?;
        if v != PROTOCOL_VERSION {
            return Err(DecodeError::BadVersion(v));
        }
        let tag = r.u8()?;
        if tag != RESOLVE_REPLY_TAG {
            return Err(DecodeError::BadTag(tag));
        }
        let status = ResolveStatus::from_byte(r.u8()?)?;
        let nlen = usize::from(r.u8()?);
        let name = r.take(nlen)?.to_vec();
        let count = usize::from(r.u16()?);
        if count > MAX_ADDRS {
            return Err(DecodeError::BadField("address count"));
        }
        let mut addrs = Vec::with_capacity(count);
        for _ in 0..count {
            addrs.push(read_ip(&mut r)?);
        }
        let rlen = r.u32()? as usize;
        if rlen > 65_535 {
            return Err(DecodeError::BadField("raw length"));
        }
        let raw = r.take(rlen)?.to_vec();
        r.finish()?;
        Ok(ResolveReply {
            status,
            name,
            addrs,
            raw,
        })
    }
}

fn read_ip(r: &mut Reader<'_>) -> Result<IpAddr, DecodeError> {
    match r.u8()? {
        4 => Ok(IpAddr::V4(Ipv4Addr::from(r.array::<4>()?))),
        6 => Ok(IpAddr::V6(Ipv6Addr::from(r.array::<16>()?))),
        _ => Err(DecodeError::BadField("address family")),
    }
}

fn read_opt_ip(r: &mut Reader<'_>) -> Result<Option<IpAddr>, DecodeError> {
    match r.u8()? {
        0 => Ok(None),
        4 => Ok(Some(IpAddr::V4(Ipv4Addr::from(r.array::<4>()?)))),
        6 => Ok(Some(IpAddr::V6(Ipv6Addr::from(r.array::<16>()?)))),
        _ => Err(DecodeError::BadField("address family")),
    }
}

impl Writer<'_> {
    fn opt_ip(&mut self, a: Option<IpAddr>) {
        match a {
            None => self.u8(0),
            Some(IpAddr::V4(v4)) => {
                self.u8(4);
                self.bytes(&v4.octets());
            }
            Some(IpAddr::V6(v6)) => {
                self.u8(6);
                self.bytes(&v6.octets());
            }
        }
    }
}

/// Body of [`Request::Resolve`](crate::Request::Resolve).
pub(crate) fn encode_request(w: &mut Writer<'_>, q: &ResolveRequest) {
    match q.kind {
        ResolveKind::Addr { v4, v6 } => {
            w.u8(0);
            w.u8(u8::from(v4));
            w.u8(u8::from(v6));
        }
        ResolveKind::Reverse(ip) => {
            w.u8(1);
            w.opt_ip(Some(ip));
        }
        ResolveKind::Raw {
            class,
            qtype,
            search,
        } => {
            w.u8(2);
            w.u16(class);
            w.u16(qtype);
            w.u8(u8::from(search));
        }
    }
    let n = q.name.as_bytes();
    w.u8(n.len() as u8);
    w.bytes(n);
}

/// Body of [`Request::Resolve`](crate::Request::Resolve).
pub(crate) fn decode_request(r: &mut Reader<'_>) -> Result<ResolveRequest, DecodeError> {
    let kind = match r.u8()? {
        0 => ResolveKind::Addr {
            v4: r.bool()?,
            v6: r.bool()?,
        },
        1 => ResolveKind::Reverse(read_ip(r)?),
        2 => ResolveKind::Raw {
            class: r.u16()?,
            qtype: r.u16()?,
            search: r.bool()?,
        },
        _ => return Err(DecodeError::BadField("resolve kind")),
    };
    let len = usize::from(r.u8()?);
    let bytes = r.take(len)?;
    let name = if len == 0 {
        QueryName::empty()
    } else {
        QueryName::new(bytes).ok_or(DecodeError::BadField("name"))?
    };
    Ok(ResolveRequest { kind, name })
}

/// Body of [`Reply::DnsInfo`](crate::Reply::DnsInfo).
pub(crate) fn encode_info(w: &mut Writer<'_>, i: &DnsInfo) {
    w.opt_ip(i.server);
    for a in i.host_servers {
        w.opt_ip(a);
    }
}

pub(crate) fn decode_info(r: &mut Reader<'_>) -> Result<DnsInfo, DecodeError> {
    let server = read_opt_ip(r)?;
    let mut host_servers = [None; MAX_HOST_NAMESERVERS];
    for h in &mut host_servers {
        *h = read_opt_ip(r)?;
    }
    Ok(DnsInfo {
        server,
        host_servers,
    })
}
