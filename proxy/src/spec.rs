//! The command-line forms of the forwards, sans-IO:
//! `--forward tcp|udp:LISTEN_ADDR:PORT:TARGET:PORT` and
//! `--reverse tcp|udp:TUNNEL_PORT:LOCAL_ADDR:PORT`.

use crate::target::{parse_port, Target, TargetError};
use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// The transport of a forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// TCP streams.
    Tcp,
    /// UDP datagrams.
    Udp,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        })
    }
}

/// A local port forward into the tunnel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forward {
    /// TCP or UDP.
    pub transport: Transport,
    /// Where wrapguard listens on the host.
    pub listen: SocketAddr,
    /// Where in the tunnel each connection (or datagram) goes.
    pub target: Target,
}

/// A reverse forward: tunnel peers reach a local service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reverse {
    /// TCP or UDP.
    pub transport: Transport,
    /// The port at our tunnel address(es).
    pub tunnel_port: u16,
    /// The local service.
    pub local: SocketAddr,
}

/// Why a forward spec could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpecError {
    /// Not `tcp:` or `udp:` first.
    BadTransport,
    /// Not the expected number of `:`-separated parts.
    Shape,
    /// The listening or local address is not an IP address.
    BadAddress,
    /// A host or port is invalid.
    Target(TargetError),
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpecError::BadTransport => f.write_str("it must start with tcp: or udp:"),
            SpecError::Shape => f.write_str("wrong number of parts"),
            SpecError::BadAddress => {
                f.write_str("the address is not an IP address ([brackets] around IPv6)")
            }
            SpecError::Target(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SpecError {}

/// Splits on `:` outside `[…]`.
fn parts(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0u32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ':' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn transport(s: &str) -> Result<Transport, SpecError> {
    match s {
        "tcp" => Ok(Transport::Tcp),
        "udp" => Ok(Transport::Udp),
        _ => Err(SpecError::BadTransport),
    }
}

fn ip(s: &str) -> Result<IpAddr, SpecError> {
    let bare = s
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(s);
    if bare.len() == s.len() && s.contains(':') {
        return Err(SpecError::BadAddress);
    }
    bare.parse().map_err(|_| SpecError::BadAddress)
}

fn port(s: &str) -> Result<u16, SpecError> {
    parse_port(s).map_err(SpecError::Target)
}

impl Forward {
    /// Parses `tcp|udp:LISTEN_ADDR:PORT:TARGET:PORT`.
    pub fn parse(s: &str) -> Result<Forward, SpecError> {
        let p = parts(s);
        let [t, la, lp, th, tp] = p[..] else {
            return Err(SpecError::Shape);
        };
        Ok(Forward {
            transport: transport(t)?,
            listen: SocketAddr::new(ip(la)?, port(lp)?),
            target: Target::from_host(th, port(tp)?).map_err(SpecError::Target)?,
        })
    }
}

impl Reverse {
    /// Parses `tcp|udp:TUNNEL_PORT:LOCAL_ADDR:PORT`.
    pub fn parse(s: &str) -> Result<Reverse, SpecError> {
        let p = parts(s);
        let [t, tp, la, lp] = p[..] else {
            return Err(SpecError::Shape);
        };
        Ok(Reverse {
            transport: transport(t)?,
            tunnel_port: port(tp)?,
            local: SocketAddr::new(ip(la)?, port(lp)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_parse() {
        assert_eq!(
            Forward::parse("tcp:127.0.0.1:5201:10.77.0.1:5201"),
            Ok(Forward {
                transport: Transport::Tcp,
                listen: "127.0.0.1:5201".parse().expect("a"),
                target: Target::Addr("10.77.0.1:5201".parse().expect("a")),
            })
        );
        let f = Forward::parse("udp:[::1]:53:dns.lan:53").expect("parses");
        assert_eq!(f.listen, "[::1]:53".parse().expect("a"));
        assert_eq!(
            f.target,
            Target::Name {
                host: "dns.lan".into(),
                port: 53
            }
        );
        let f = Forward::parse("tcp:127.0.0.1:80:[fd77::1]:8080").expect("parses");
        assert_eq!(f.target, Target::Addr("[fd77::1]:8080".parse().expect("a")));
        assert_eq!(
            Forward::parse("sctp:1.2.3.4:1:a:1"),
            Err(SpecError::BadTransport)
        );
        assert_eq!(Forward::parse("tcp:1.2.3.4:1:a"), Err(SpecError::Shape));
        assert_eq!(
            Forward::parse("tcp:localhost:1:a:1"),
            Err(SpecError::BadAddress)
        );
        assert_eq!(
            Forward::parse("tcp:1.2.3.4:0:a:1"),
            Err(SpecError::Target(TargetError::BadPort))
        );
        assert_eq!(
            Forward::parse("tcp:1.2.3.4:1:a!:1"),
            Err(SpecError::Target(TargetError::BadHost))
        );
    }

    #[test]
    fn reverses_parse() {
        assert_eq!(
            Reverse::parse("tcp:8080:127.0.0.1:3000"),
            Ok(Reverse {
                transport: Transport::Tcp,
                tunnel_port: 8080,
                local: "127.0.0.1:3000".parse().expect("a"),
            })
        );
        assert_eq!(
            Reverse::parse("udp:53:[::1]:5353").expect("p").local.port(),
            5353
        );
        assert_eq!(Reverse::parse("tcp:8080:127.0.0.1"), Err(SpecError::Shape));
        assert_eq!(
            Reverse::parse("tcp:x:127.0.0.1:1"),
            Err(SpecError::Target(TargetError::BadPort))
        );
    }
}
