//! Policy-route syntax: the `Route = CIDR[:proto[:port|port-port]]` config
//! extension, the `--route=CIDR:peerIP` flag, and the selectors they carry.
//!
//! IPv6 CIDRs contain colons, so the selector is found after the prefix
//! length (`fd00::/64:tcp:443`): the CIDR ends at the last digit following
//! its `/`. A bare address without `/len` means a host route; for a bare
//! IPv6 address the selector is recognised from the right (`tcp`, `udp` and
//! `any` are never valid hex groups).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use ipnet::IpNet;

use crate::config::text::shown;

/// The transport protocol of a packet being routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    /// TCP (IP protocol 6).
    Tcp,
    /// UDP (IP protocol 17).
    Udp,
    /// Anything else (ICMP, …), carried with its IP protocol number. Only
    /// selectors without a port match it.
    Other(u8),
}

impl Proto {
    /// Maps an IP protocol number (IPv4 protocol / IPv6 next header).
    pub const fn from_ip_protocol(number: u8) -> Proto {
        match number {
            6 => Proto::Tcp,
            17 => Proto::Udp,
            n => Proto::Other(n),
        }
    }
}

/// Which protocols a policy route applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProtoFilter {
    /// Every protocol (`any`, or no selector).
    Any,
    /// TCP only (`tcp`).
    Tcp,
    /// UDP only (`udp`).
    Udp,
}

/// Which destination ports a policy route applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ports {
    /// Every port, and packets without ports.
    All,
    /// Exactly this port (1-65535).
    One(u16),
    /// An inclusive range `lo-hi` with `lo < hi`.
    Range(u16, u16),
}

/// The `:proto[:ports]` part of a policy route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Selector {
    /// Protocol filter.
    pub proto: ProtoFilter,
    /// Port filter. A port filter only matches TCP and UDP packets.
    pub ports: Ports,
}

impl Selector {
    /// Matches every packet.
    pub const ANY: Selector = Selector {
        proto: ProtoFilter::Any,
        ports: Ports::All,
    };

    /// Whether a packet with this protocol and destination port matches.
    #[inline]
    pub fn matches(&self, proto: Proto, port: u16) -> bool {
        let proto_ok = match self.proto {
            ProtoFilter::Any => true,
            ProtoFilter::Tcp => proto == Proto::Tcp,
            ProtoFilter::Udp => proto == Proto::Udp,
        };
        proto_ok
            && match self.ports {
                Ports::All => true,
                Ports::One(p) => matches!(proto, Proto::Tcp | Proto::Udp) && port == p,
                Ports::Range(lo, hi) => {
                    matches!(proto, Proto::Tcp | Proto::Udp) && (lo..=hi).contains(&port)
                }
            }
    }

    /// How specific the selector is; larger wins among routes with the
    /// same prefix: a single port (5 with a protocol, 4 with `any`) beats a
    /// port range (3, 2) beats a protocol alone (1) beats nothing (0).
    pub const fn specificity(&self) -> u8 {
        let ports = match self.ports {
            Ports::One(_) => 4,
            Ports::Range(..) => 2,
            Ports::All => 0,
        };
        let proto = match self.proto {
            ProtoFilter::Any => 0,
            ProtoFilter::Tcp | ProtoFilter::Udp => 1,
        };
        ports + proto
    }
}

impl fmt::Display for Selector {
    /// The config syntax without the leading colon; empty for [`Selector::ANY`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proto = match self.proto {
            ProtoFilter::Any => "any",
            ProtoFilter::Tcp => "tcp",
            ProtoFilter::Udp => "udp",
        };
        match self.ports {
            Ports::All if self.proto == ProtoFilter::Any => Ok(()),
            Ports::All => f.write_str(proto),
            Ports::One(p) => write!(f, "{proto}:{p}"),
            Ports::Range(lo, hi) => write!(f, "{proto}:{lo}-{hi}"),
        }
    }
}

/// A parsed `CIDR[:proto[:port|port-port]]`: which destinations (and
/// optionally which protocol and ports) a policy route covers. The network
/// has its host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteSpec {
    /// Destination network.
    pub net: IpNet,
    /// Protocol and port filter.
    pub selector: Selector,
}

/// Why a route specification does not parse. Each variant's `Display`
/// says what was found and what is expected; echoed text is shortened
/// and never shows anything key-like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteSpecError {
    /// Nothing was given.
    Empty,
    /// The part before the selector is not an address or CIDR.
    BadCidr(String),
    /// The protocol is not `tcp`, `udp` or `any`.
    BadProto(String),
    /// A port is not a number from 1 to 65535.
    BadPort(String),
    /// A port range has its bounds reversed.
    ReversedRange(u16, u16),
    /// More `:`-separated parts than `CIDR:proto:ports`.
    TrailingText(String),
}

impl fmt::Display for RouteSpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteSpecError::Empty => {
                f.write_str("it is empty; expected CIDR[:proto[:port|port-port]]")
            }
            RouteSpecError::BadCidr(s) => write!(
                f,
                "\"{s}\" is not a CIDR; expected an address with a prefix length like 192.168.0.0/16 or fd00::/64"
            ),
            RouteSpecError::BadProto(s) => {
                write!(f, "unknown protocol \"{s}\"; expected tcp, udp or any")
            }
            RouteSpecError::BadPort(s) => write!(
                f,
                "\"{s}\" is not a port; expected a port 1-65535 or a range like 8000-8999"
            ),
            RouteSpecError::ReversedRange(lo, hi) => {
                write!(f, "port range {lo}-{hi} is reversed; write {hi}-{lo}")
            }
            RouteSpecError::TrailingText(s) => write!(
                f,
                "unexpected \"{s}\" after the ports; expected CIDR[:proto[:port|port-port]]"
            ),
        }
    }
}

impl std::error::Error for RouteSpecError {}

/// Parses an address or CIDR; a bare address is a host prefix. Host bits
/// are cleared.
pub(crate) fn parse_net(text: &str) -> Option<IpNet> {
    let net = if text.contains('/') {
        IpNet::from_str(text).ok()?
    } else {
        IpNet::from(IpAddr::from_str(text).ok()?)
    };
    Some(net.trunc())
}

/// Splits `CIDR/len<rest>` after the prefix-length digits. Returns `None`
/// without a `/`.
fn split_after_prefix_len(text: &str) -> Option<(&str, &str)> {
    let slash = text.find('/')?;
    let digits = text[slash + 1..]
        .bytes()
        .take_while(u8::is_ascii_digit)
        .count();
    Some(text.split_at(slash + 1 + digits))
}

fn is_proto_word(s: &str) -> bool {
    ["tcp", "udp", "any"]
        .iter()
        .any(|p| s.eq_ignore_ascii_case(p))
}

fn parse_port(s: &str) -> Result<u16, RouteSpecError> {
    match s.trim().parse::<u16>() {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(RouteSpecError::BadPort(shown(s))),
    }
}

/// Parses `proto[:port|port-port]`.
fn parse_selector(text: &str) -> Result<Selector, RouteSpecError> {
    let mut parts = text.splitn(3, ':');
    let proto_text = parts.next().unwrap_or("").trim();
    let proto = match proto_text.to_ascii_lowercase().as_str() {
        "any" => ProtoFilter::Any,
        "tcp" => ProtoFilter::Tcp,
        "udp" => ProtoFilter::Udp,
        _ => return Err(RouteSpecError::BadProto(shown(proto_text))),
    };
    let ports = match parts.next() {
        None => Ports::All,
        Some(p) => match p.split_once('-') {
            Some((lo, hi)) => {
                let (lo, hi) = (parse_port(lo)?, parse_port(hi)?);
                match lo.cmp(&hi) {
                    std::cmp::Ordering::Less => Ports::Range(lo, hi),
                    std::cmp::Ordering::Equal => Ports::One(lo),
                    std::cmp::Ordering::Greater => {
                        return Err(RouteSpecError::ReversedRange(lo, hi))
                    }
                }
            }
            None => Ports::One(parse_port(p)?),
        },
    };
    if let Some(rest) = parts.next() {
        return Err(RouteSpecError::TrailingText(shown(rest)));
    }
    Ok(Selector { proto, ports })
}

impl RouteSpec {
    /// Parses `CIDR[:proto[:port|port-port]]`, e.g. `0.0.0.0/0`,
    /// `172.16.0.0/12:tcp:443`, `fd00::/64:udp:5000-5100`, `10.1.2.3:any:53`.
    pub fn parse(text: &str) -> Result<RouteSpec, RouteSpecError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(RouteSpecError::Empty);
        }
        let (cidr, selector) = if let Some((cidr, rest)) = split_after_prefix_len(text) {
            let rest = rest.trim_start();
            match rest.strip_prefix(':') {
                Some(sel) => (cidr, Some(sel)),
                None if rest.is_empty() => (cidr, None),
                None => return Err(RouteSpecError::BadCidr(shown(text))),
            }
        } else if let Some((addr, rest)) = text
            .split_once(':')
            .filter(|(a, _)| Ipv4Addr::from_str(a.trim()).is_ok())
        {
            (addr, Some(rest))
        } else {
            // A bare IPv6 address: find the selector from the right.
            match text.rsplit_once(':') {
                Some((left, last)) if is_proto_word(last) => (left, Some(last)),
                Some((left, _)) => match left.rsplit_once(':') {
                    Some((addr, proto)) if is_proto_word(proto) => {
                        (addr, Some(&text[addr.len() + 1..]))
                    }
                    _ => (text, None),
                },
                None => (text, None),
            }
        };
        let cidr = cidr.trim();
        let net = parse_net(cidr).ok_or_else(|| RouteSpecError::BadCidr(shown(cidr)))?;
        let selector = match selector {
            Some(s) => parse_selector(s)?,
            None => Selector::ANY,
        };
        Ok(RouteSpec { net, selector })
    }
}

impl FromStr for RouteSpec {
    type Err = RouteSpecError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RouteSpec::parse(s)
    }
}

impl fmt::Display for RouteSpec {
    /// The config syntax, e.g. `172.16.0.0/12:tcp:443`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.selector == Selector::ANY {
            write!(f, "{}", self.net)
        } else {
            write!(f, "{}:{}", self.net, self.selector)
        }
    }
}

/// A `--route=CIDR:peerIP` flag: send `net` through the peer whose
/// AllowedIPs contain `via`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteFlag {
    /// Destination network (host bits cleared).
    pub net: IpNet,
    /// An address inside the chosen peer's AllowedIPs.
    pub via: IpAddr,
}

/// Why a `--route` value does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteFlagError {
    /// No `/len` or no `:peerIP` after it.
    Shape(String),
    /// The part before `:` is not a CIDR.
    BadCidr(String),
    /// The part after `:` is not an IP address.
    BadPeerIp(String),
}

impl fmt::Display for RouteFlagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteFlagError::Shape(s) => write!(
                f,
                "invalid --route=\"{s}\"; expected CIDR:peerIP like 192.168.0.0/16:10.150.0.3 or fd00:1::/64:fd00::3"
            ),
            RouteFlagError::BadCidr(s) => write!(
                f,
                "invalid --route CIDR \"{s}\"; expected an address with a prefix length like 192.168.0.0/16"
            ),
            RouteFlagError::BadPeerIp(s) => write!(
                f,
                "invalid --route peer address \"{s}\"; expected an IP address inside a peer's AllowedIPs like 10.150.0.3"
            ),
        }
    }
}

impl std::error::Error for RouteFlagError {}

impl RouteFlag {
    /// Parses `CIDR:peerIP` (IPv4 or IPv6 on either side).
    pub fn parse(text: &str) -> Result<RouteFlag, RouteFlagError> {
        let text = text.trim();
        let shape = || RouteFlagError::Shape(shown(text));
        let (cidr, rest) = split_after_prefix_len(text).ok_or_else(shape)?;
        let via = rest.trim_start().strip_prefix(':').ok_or_else(shape)?;
        let net = IpNet::from_str(cidr)
            .map_err(|_| RouteFlagError::BadCidr(shown(cidr)))?
            .trunc();
        let via =
            IpAddr::from_str(via.trim()).map_err(|_| RouteFlagError::BadPeerIp(shown(via)))?;
        Ok(RouteFlag { net, via })
    }
}

impl FromStr for RouteFlag {
    type Err = RouteFlagError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RouteFlag::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str) -> RouteSpec {
        RouteSpec::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn readme_routes() {
        assert_eq!(spec("0.0.0.0/0").net, net("0.0.0.0/0"));
        assert_eq!(spec("0.0.0.0/0").selector, Selector::ANY);
        assert_eq!(spec("192.168.0.0/16").net, net("192.168.0.0/16"));
        let r = spec("172.16.0.0/12:tcp:443");
        assert_eq!(r.net, net("172.16.0.0/12"));
        assert_eq!(
            r.selector,
            Selector {
                proto: ProtoFilter::Tcp,
                ports: Ports::One(443)
            }
        );
    }

    #[test]
    fn ipv6_and_selectors() {
        let r = spec("fd00::/64:udp:5000-5100");
        assert_eq!(r.net, net("fd00::/64"));
        assert_eq!(r.selector.ports, Ports::Range(5000, 5100));
        assert_eq!(spec("::/0").net, net("::/0"));
        assert_eq!(spec("::/0:TCP").selector.proto, ProtoFilter::Tcp);
        assert_eq!(spec("fd00::1").net, net("fd00::1/128"));
        assert_eq!(spec("fd00::1:443").net, net("fd00::1:443/128"));
        let r = spec("fd00::1:tcp:443");
        assert_eq!(r.net, net("fd00::1/128"));
        assert_eq!(r.selector.ports, Ports::One(443));
        assert_eq!(spec("fd00::1:any").net, net("fd00::1/128"));
        assert_eq!(spec("10.1.2.3:any:53").net, net("10.1.2.3/32"));
        assert_eq!(spec("10.1.2.3/8").net, net("10.0.0.0/8"));
        assert_eq!(
            spec(" 10.0.0.0/8 : tcp : 22 ").selector.ports,
            Ports::One(22)
        );
        assert_eq!(spec("10.0.0.0/8:udp:53-53").selector.ports, Ports::One(53));
    }

    #[test]
    fn errors() {
        let e = |s: &str| RouteSpec::parse(s).err().map(|e| e.to_string());
        assert_eq!(
            e("10.0.0.0/8:http"),
            Some("unknown protocol \"http\"; expected tcp, udp or any".into())
        );
        assert_eq!(
            e("10.0.0.0/8:tcp:0"),
            Some("\"0\" is not a port; expected a port 1-65535 or a range like 8000-8999".into())
        );
        assert_eq!(
            e("10.0.0.0/8:tcp:90-80"),
            Some("port range 90-80 is reversed; write 80-90".into())
        );
        assert_eq!(
            e("10.0.0.0/33"),
            Some("\"10.0.0.0/33\" is not a CIDR; expected an address with a prefix length like 192.168.0.0/16 or fd00::/64".into())
        );
        assert_eq!(
            e("10.0.0.0/8:tcp:80:x"),
            Some("unexpected \"x\" after the ports; expected CIDR[:proto[:port|port-port]]".into())
        );
        assert!(RouteSpec::parse("10.0.0.0/8x").is_err());
        assert!(RouteSpec::parse("fd00::/64:").is_err());
        assert!(RouteSpec::parse("").is_err());
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "10.0.0.0/8",
            "fd00::/64:tcp:443",
            "10.0.0.0/8:udp",
            "::/0:any:1-2",
        ] {
            assert_eq!(spec(s).to_string(), s);
            assert_eq!(spec(&spec(s).to_string()), spec(s));
        }
    }

    #[test]
    fn route_flags() {
        let f = RouteFlag::parse("192.168.0.0/16:10.150.0.3").expect("valid");
        assert_eq!(f.net, net("192.168.0.0/16"));
        assert_eq!(f.via, "10.150.0.3".parse::<IpAddr>().expect("ip"));
        let f = RouteFlag::parse("fd00:1::/64:fd00::3").expect("valid");
        assert_eq!(f.net, net("fd00:1::/64"));
        assert_eq!(f.via, "fd00::3".parse::<IpAddr>().expect("ip"));
        let f = RouteFlag::parse("0.0.0.0/0:fd00::3").expect("valid");
        assert_eq!(f.net, net("0.0.0.0/0"));
        assert!(RouteFlag::parse("192.168.0.0:10.150.0.3").is_err());
        assert!(RouteFlag::parse("192.168.0.0/16").is_err());
        assert!(RouteFlag::parse("192.168.0.0/16:x").is_err());
    }

    #[test]
    fn specificity_order() {
        let s = |t: &str| spec(&format!("10.0.0.0/8:{t}")).selector.specificity();
        assert!(s("tcp:443") > s("any:443"));
        assert!(s("any:443") > s("tcp:1-1024"));
        assert!(s("tcp:1-1024") > s("any:1-1024"));
        assert!(s("any:1-1024") > s("tcp"));
        assert!(s("tcp") > spec("10.0.0.0/8").selector.specificity());
        assert_eq!(s("any"), 0);
    }

    #[test]
    fn selector_matching() {
        let sel = spec("10.0.0.0/8:tcp:443").selector;
        assert!(sel.matches(Proto::Tcp, 443));
        assert!(!sel.matches(Proto::Udp, 443));
        assert!(!sel.matches(Proto::Tcp, 80));
        let sel = spec("10.0.0.0/8:any:53").selector;
        assert!(sel.matches(Proto::Udp, 53));
        assert!(!sel.matches(Proto::Other(1), 53));
        assert!(Selector::ANY.matches(Proto::Other(1), 0));
    }
}
