//! SOCKS5, sans-IO: the method greeting, the username/password
//! sub-negotiation, the request, the reply and the UDP datagram header.
//!
//! Read before changing: RFC 1928 (sections 3 to 7) and RFC 1929.
//! Every parser takes the bytes received so far and returns `Ok(None)`
//! while a message is incomplete, `Ok(Some((message, used)))` once it is
//! whole, or a typed error that names the reply to send.

use crate::target::{valid_name, Target};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The protocol version byte.
pub const VERSION: u8 = 5;
/// The version byte of the username/password sub-negotiation.
pub const AUTH_VERSION: u8 = 1;
/// Method: no authentication.
pub const METHOD_NONE: u8 = 0x00;
/// Method: username/password (RFC 1929).
pub const METHOD_USER_PASS: u8 = 0x02;
/// Method reply: no acceptable method.
pub const METHOD_UNACCEPTABLE: u8 = 0xFF;

const ATYP_V4: u8 = 1;
const ATYP_NAME: u8 = 3;
const ATYP_V6: u8 = 4;

/// The methods a client offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Greeting {
    /// `NO AUTHENTICATION REQUIRED` offered.
    pub no_auth: bool,
    /// `USERNAME/PASSWORD` offered.
    pub user_pass: bool,
}

/// A username/password request (RFC 1929).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserPass {
    /// The user name (1..=255 bytes).
    pub user: Vec<u8>,
    /// The password (0..=255 bytes).
    pub pass: Vec<u8>,
}

/// What a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// `CONNECT`: a TCP stream to the target.
    Connect,
    /// `BIND`: not supported (replied with [`ReplyCode::CommandNotSupported`]).
    Bind,
    /// `UDP ASSOCIATE`: relay datagrams; the target is where the client
    /// will send from (often all zeros).
    UdpAssociate,
}

/// A client's request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The command.
    pub command: Command,
    /// The destination (or, for UDP, the client's source).
    pub target: Target,
}

/// The `REP` field of a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyCode {
    /// Succeeded.
    Succeeded = 0,
    /// General SOCKS server failure.
    GeneralFailure = 1,
    /// Connection not allowed by ruleset.
    NotAllowed = 2,
    /// Network unreachable.
    NetworkUnreachable = 3,
    /// Host unreachable.
    HostUnreachable = 4,
    /// Connection refused.
    ConnectionRefused = 5,
    /// TTL expired (used for timeouts).
    TtlExpired = 6,
    /// Command not supported.
    CommandNotSupported = 7,
    /// Address type not supported.
    AddressTypeNotSupported = 8,
}

/// One SOCKS UDP datagram as the client sends it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UdpDatagram<'a> {
    /// Where it goes.
    pub target: Target,
    /// The payload.
    pub payload: &'a [u8],
}

/// Why a SOCKS5 message is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Socks5Error {
    /// The version byte is not 5 (or 1 in the sub-negotiation).
    BadVersion(u8),
    /// The greeting offers no method at all.
    NoMethods,
    /// The reserved byte is not zero.
    BadReserved,
    /// An unknown command byte.
    UnknownCommand(u8),
    /// An unknown address type byte.
    UnknownAddressType(u8),
    /// The domain name is empty or not a valid host name.
    BadName,
    /// The user name is empty.
    EmptyUser,
    /// A UDP datagram is a fragment (`FRAG` ≠ 0); fragments are dropped.
    Fragment,
    /// A UDP datagram is shorter than its header.
    Truncated,
}

impl Socks5Error {
    /// The reply code a server answers this request error with.
    pub fn reply_code(self) -> ReplyCode {
        match self {
            Socks5Error::UnknownCommand(_) => ReplyCode::CommandNotSupported,
            Socks5Error::UnknownAddressType(_) => ReplyCode::AddressTypeNotSupported,
            Socks5Error::BadName => ReplyCode::HostUnreachable,
            _ => ReplyCode::GeneralFailure,
        }
    }
}

impl fmt::Display for Socks5Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Socks5Error::BadVersion(v) => write!(f, "bad version byte {v}"),
            Socks5Error::NoMethods => f.write_str("no authentication method offered"),
            Socks5Error::BadReserved => f.write_str("reserved byte not zero"),
            Socks5Error::UnknownCommand(c) => write!(f, "unknown command {c}"),
            Socks5Error::UnknownAddressType(t) => write!(f, "unknown address type {t}"),
            Socks5Error::BadName => f.write_str("invalid domain name"),
            Socks5Error::EmptyUser => f.write_str("empty user name"),
            Socks5Error::Fragment => f.write_str("fragmented UDP datagram"),
            Socks5Error::Truncated => f.write_str("truncated UDP datagram"),
        }
    }
}

impl std::error::Error for Socks5Error {}

/// A parse result: `None` while incomplete, else the message and the
/// number of bytes it used.
pub type Parsed<T> = Result<Option<(T, usize)>, Socks5Error>;

/// Parses the method greeting: `VER NMETHODS METHODS…`.
pub fn parse_greeting(b: &[u8]) -> Parsed<Greeting> {
    let Some(&ver) = b.first() else {
        return Ok(None);
    };
    if ver != VERSION {
        return Err(Socks5Error::BadVersion(ver));
    }
    let Some(&n) = b.get(1) else { return Ok(None) };
    if n == 0 {
        return Err(Socks5Error::NoMethods);
    }
    let Some(methods) = b.get(2..2 + usize::from(n)) else {
        return Ok(None);
    };
    let g = Greeting {
        no_auth: methods.contains(&METHOD_NONE),
        user_pass: methods.contains(&METHOD_USER_PASS),
    };
    Ok(Some((g, 2 + usize::from(n))))
}

/// Parses the username/password request: `VER ULEN UNAME PLEN PASSWD`.
pub fn parse_user_pass(b: &[u8]) -> Parsed<UserPass> {
    let Some(&ver) = b.first() else {
        return Ok(None);
    };
    if ver != AUTH_VERSION {
        return Err(Socks5Error::BadVersion(ver));
    }
    let Some(&ulen) = b.get(1) else {
        return Ok(None);
    };
    if ulen == 0 {
        return Err(Socks5Error::EmptyUser);
    }
    let u_end = 2 + usize::from(ulen);
    let Some(user) = b.get(2..u_end) else {
        return Ok(None);
    };
    let Some(&plen) = b.get(u_end) else {
        return Ok(None);
    };
    let end = u_end + 1 + usize::from(plen);
    let Some(pass) = b.get(u_end + 1..end) else {
        return Ok(None);
    };
    Ok(Some((
        UserPass {
            user: user.to_vec(),
            pass: pass.to_vec(),
        },
        end,
    )))
}

/// Parses `ATYP DST.ADDR DST.PORT` at the front of `b`.
fn parse_address(b: &[u8]) -> Parsed<Target> {
    let Some(&atyp) = b.first() else {
        return Ok(None);
    };
    let (len, target): (usize, Option<Target>) = match atyp {
        ATYP_V4 => {
            let Some(a) = b.get(1..7) else {
                return Ok(None);
            };
            let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            let port = u16::from_be_bytes([a[4], a[5]]);
            (7, Some(Target::Addr(SocketAddr::new(IpAddr::V4(ip), port))))
        }
        ATYP_V6 => {
            let Some(a) = b.get(1..19) else {
                return Ok(None);
            };
            let mut o = [0u8; 16];
            o.copy_from_slice(&a[..16]);
            let port = u16::from_be_bytes([a[16], a[17]]);
            let ip = IpAddr::V6(Ipv6Addr::from(o));
            (19, Some(Target::Addr(SocketAddr::new(ip, port))))
        }
        ATYP_NAME => {
            let Some(&n) = b.get(1) else { return Ok(None) };
            let end = 2 + usize::from(n) + 2;
            let Some(a) = b.get(2..end) else {
                return Ok(None);
            };
            let name = &a[..usize::from(n)];
            let port = u16::from_be_bytes([a[a.len() - 2], a[a.len() - 1]]);
            if !valid_name(name) {
                return Err(Socks5Error::BadName);
            }
            // A literal address sent as a name is an address.
            let host = String::from_utf8_lossy(name).into_owned();
            let t = Target::from_host(&host, port).map_err(|_| Socks5Error::BadName)?;
            (end, Some(t))
        }
        t => return Err(Socks5Error::UnknownAddressType(t)),
    };
    Ok(target.map(|t| (t, len)))
}

/// Parses a request: `VER CMD RSV ATYP DST.ADDR DST.PORT`.
pub fn parse_request(b: &[u8]) -> Parsed<Request> {
    let Some(&ver) = b.first() else {
        return Ok(None);
    };
    if ver != VERSION {
        return Err(Socks5Error::BadVersion(ver));
    }
    let Some(&cmd) = b.get(1) else {
        return Ok(None);
    };
    let command = match cmd {
        1 => Command::Connect,
        2 => Command::Bind,
        3 => Command::UdpAssociate,
        c => return Err(Socks5Error::UnknownCommand(c)),
    };
    let Some(&rsv) = b.get(2) else {
        return Ok(None);
    };
    if rsv != 0 {
        return Err(Socks5Error::BadReserved);
    }
    let Some((target, n)) = parse_address(&b[3..])? else {
        return Ok(None);
    };
    Ok(Some((Request { command, target }, 3 + n)))
}

fn encode_address(a: SocketAddr, out: &mut Vec<u8>) {
    match a.ip() {
        IpAddr::V4(ip) => {
            out.push(ATYP_V4);
            out.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.push(ATYP_V6);
            out.extend_from_slice(&ip.octets());
        }
    }
    out.extend_from_slice(&a.port().to_be_bytes());
}

/// Appends a reply `VER REP RSV ATYP BND.ADDR BND.PORT` to `out`.
pub fn encode_reply(code: ReplyCode, bound: SocketAddr, out: &mut Vec<u8>) {
    out.extend_from_slice(&[VERSION, code as u8, 0]);
    encode_address(bound, out);
}

/// Parses a client's UDP datagram: `RSV(2) FRAG ATYP DST.ADDR DST.PORT DATA`.
pub fn parse_udp(b: &[u8]) -> Result<UdpDatagram<'_>, Socks5Error> {
    if b.len() < 4 {
        return Err(Socks5Error::Truncated);
    }
    if b[0] != 0 || b[1] != 0 {
        return Err(Socks5Error::BadReserved);
    }
    if b[2] != 0 {
        return Err(Socks5Error::Fragment);
    }
    let (target, n) = parse_address(&b[3..])?.ok_or(Socks5Error::Truncated)?;
    Ok(UdpDatagram {
        target,
        payload: &b[3 + n..],
    })
}

/// Appends the UDP header for a datagram from `src` to `out` (the payload
/// follows).
pub fn encode_udp_header(src: SocketAddr, out: &mut Vec<u8>) {
    out.extend_from_slice(&[0, 0, 0]);
    encode_address(src, out);
}

#[cfg(test)]
mod tests;
