//! The per-datagram header on a UDP data socket (a `SOCK_SEQPACKET` pair
//! between the shim and the engine; one message = one datagram).
//!
//! ```text
//! u8      kind: 0 datagram, 1 error (engine → shim only)
//! u8      family: 4 | 6 (0 for an error)
//! u16 BE  port of the peer
//! [u8;16] peer address (IPv4 in the first 4 bytes)
//! u32 BE  IPv6 scope id of the peer, or the errno of an error
//! u8      TTL / hop limit the datagram arrived with (0: not known)
//! u8      family of our address it was sent to: 4 | 6 (0: not known)
//! u16     reserved (0)
//! [u8;16] our address it was sent to (IPv4 in the first 4 bytes)
//! ...     payload (datagram only)
//! ```
//!
//! The last 20 bytes ([`RecvInfo`]) are what a receive reports as
//! ancillary data (`IP_TTL`, `IP_PKTINFO`, `IPV6_HOPLIMIT`,
//! `IPV6_PKTINFO`); they are zero on the way out.
//!
//! From the shim the peer is the destination; from the engine it is the
//! source. An error message reports an ICMP error for a connected socket
//! (`ECONNREFUSED` for port unreachable), which the shim returns from the
//! next receive or send, as Linux does.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

/// Length of the header in front of every datagram.
pub const HEADER_LEN: usize = 44;

/// Where [`RecvInfo`] starts in the header.
const INFO: usize = 24;

/// What the engine knows about a received datagram beyond its source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecvInfo {
    /// The TTL (IPv4) or hop limit (IPv6) it arrived with.
    pub ttl: Option<u8>,
    /// Our address it was sent to.
    pub dst: Option<IpAddr>,
}

impl RecvInfo {
    /// Reads the receive information of a header (zeros mean unknown).
    pub fn decode(buf: &[u8]) -> RecvInfo {
        let Some(b) = buf.get(INFO..HEADER_LEN) else {
            return RecvInfo::default();
        };
        let ttl = (b[0] != 0).then_some(b[0]);
        let dst = match b[1] {
            4 => Some(IpAddr::V4(Ipv4Addr::new(b[4], b[5], b[6], b[7]))),
            6 => {
                let mut o = [0u8; 16];
                o.copy_from_slice(&b[4..20]);
                Some(IpAddr::V6(Ipv6Addr::from(o)))
            }
            _ => None,
        };
        RecvInfo { ttl, dst }
    }

    fn write(&self, b: &mut [u8; HEADER_LEN]) {
        b[INFO] = self.ttl.unwrap_or(0);
        match self.dst {
            Some(IpAddr::V4(a)) => {
                b[INFO + 1] = 4;
                b[INFO + 4..INFO + 8].copy_from_slice(&a.octets());
            }
            Some(IpAddr::V6(a)) => {
                b[INFO + 1] = 6;
                b[INFO + 4..INFO + 20].copy_from_slice(&a.octets());
            }
            None => {}
        }
    }
}

/// What one message on a UDP data socket carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Header {
    /// A datagram to (shim → engine) or from (engine → shim) this peer.
    Datagram(SocketAddr),
    /// An error for the application (engine → shim).
    Error(i32),
}

/// Why a header could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// Fewer than [`HEADER_LEN`] bytes.
    Truncated,
    /// Unknown kind or address family.
    BadField(&'static str),
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderError::Truncated => f.write_str("datagram header truncated"),
            HeaderError::BadField(w) => write!(f, "invalid datagram header field {w}"),
        }
    }
}

impl std::error::Error for HeaderError {}

impl Header {
    /// The header's bytes, with receive information (engine → shim).
    pub fn encode_with(&self, info: RecvInfo) -> [u8; HEADER_LEN] {
        let mut b = self.encode();
        info.write(&mut b);
        b
    }

    /// The header's bytes (no receive information).
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        match self {
            Header::Datagram(SocketAddr::V4(a)) => {
                b[1] = 4;
                b[2..4].copy_from_slice(&a.port().to_be_bytes());
                b[4..8].copy_from_slice(&a.ip().octets());
            }
            Header::Datagram(SocketAddr::V6(a)) => {
                b[1] = 6;
                b[2..4].copy_from_slice(&a.port().to_be_bytes());
                b[4..20].copy_from_slice(&a.ip().octets());
                b[20..24].copy_from_slice(&a.scope_id().to_be_bytes());
            }
            Header::Error(e) => {
                b[0] = 1;
                b[20..24].copy_from_slice(&e.to_be_bytes());
            }
        }
        b
    }

    /// Reads the header at the front of `buf`.
    pub fn decode(buf: &[u8]) -> Result<Header, HeaderError> {
        let b: &[u8; HEADER_LEN] = buf
            .get(..HEADER_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(HeaderError::Truncated)?;
        let tail = [b[20], b[21], b[22], b[23]];
        match b[0] {
            0 => {
                let port = u16::from_be_bytes([b[2], b[3]]);
                match b[1] {
                    4 => {
                        let ip = Ipv4Addr::new(b[4], b[5], b[6], b[7]);
                        Ok(Header::Datagram(SocketAddr::new(IpAddr::V4(ip), port)))
                    }
                    6 => {
                        let mut o = [0u8; 16];
                        o.copy_from_slice(&b[4..20]);
                        Ok(Header::Datagram(SocketAddr::V6(SocketAddrV6::new(
                            Ipv6Addr::from(o),
                            port,
                            0,
                            u32::from_be_bytes(tail),
                        ))))
                    }
                    _ => Err(HeaderError::BadField("family")),
                }
            }
            1 => Ok(Header::Error(i32::from_be_bytes(tail))),
            _ => Err(HeaderError::BadField("kind")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let cases = [
            Header::Datagram("10.77.0.1:53".parse().expect("v4")),
            Header::Datagram(SocketAddr::V6(SocketAddrV6::new(
                "fd77::1".parse().expect("v6"),
                5201,
                0,
                9,
            ))),
            Header::Error(111),
        ];
        for h in cases {
            let mut b = [0xa5u8; HEADER_LEN + 3];
            b[..HEADER_LEN].copy_from_slice(&h.encode());
            assert_eq!(Header::decode(&b), Ok(h));
        }
        assert_eq!(Header::decode(&[0; 43]), Err(HeaderError::Truncated));
        assert_eq!(
            RecvInfo::decode(&Header::Error(1).encode()),
            RecvInfo::default()
        );
        for info in [
            RecvInfo {
                ttl: Some(64),
                dst: Some("10.77.0.2".parse().expect("v4")),
            },
            RecvInfo {
                ttl: Some(1),
                dst: Some("fd77::2".parse().expect("v6")),
            },
        ] {
            let h = Header::Datagram("10.77.0.1:53".parse().expect("v4"));
            let b = h.encode_with(info);
            assert_eq!((Header::decode(&b), RecvInfo::decode(&b)), (Ok(h), info));
        }
        let mut bad = Header::Error(1).encode();
        bad[0] = 7;
        assert_eq!(Header::decode(&bad), Err(HeaderError::BadField("kind")));
        let mut bad = Header::Datagram("1.2.3.4:5".parse().expect("v4")).encode();
        bad[1] = 5;
        assert_eq!(Header::decode(&bad), Err(HeaderError::BadField("family")));
    }
}
