//! The per-datagram header on a UDP data socket (a `SOCK_SEQPACKET` pair
//! between the shim and the engine; one message = one datagram).
//!
//! ```text
//! u8      kind: 0 datagram, 1 error (engine → shim only)
//! u8      family: 4 | 6 (0 for an error)
//! u16 BE  port of the peer
//! [u8;16] peer address (IPv4 in the first 4 bytes)
//! u32 BE  IPv6 scope id of the peer, or the errno of an error
//! ...     payload (datagram only)
//! ```
//!
//! From the shim the peer is the destination; from the engine it is the
//! source. An error message reports an ICMP error for a connected socket
//! (`ECONNREFUSED` for port unreachable), which the shim returns from the
//! next receive or send, as Linux does.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

/// Length of the header in front of every datagram.
pub const HEADER_LEN: usize = 24;

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
    /// The header's bytes.
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
        assert_eq!(Header::decode(&[0; 23]), Err(HeaderError::Truncated));
        let mut bad = Header::Error(1).encode();
        bad[0] = 7;
        assert_eq!(Header::decode(&bad), Err(HeaderError::BadField("kind")));
        let mut bad = Header::Datagram("1.2.3.4:5".parse().expect("v4")).encode();
        bad[1] = 5;
        assert_eq!(Header::decode(&bad), Err(HeaderError::BadField("family")));
    }
}
