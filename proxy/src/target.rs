//! Where a client wants to go: an address, or a name and a port, as the
//! proxy protocols and the forward specs carry it.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// Longest host name accepted (RFC 1035: 255 bytes on the wire).
pub const MAX_NAME_LEN: usize = 253;

/// A destination named by a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// An address and port.
    Addr(SocketAddr),
    /// A host name (checked by [`valid_name`]) and port, resolved by the
    /// serving side.
    Name {
        /// The name, as given (no trailing dot removed).
        host: String,
        /// The port.
        port: u16,
    },
}

impl Target {
    /// The port.
    pub fn port(&self) -> u16 {
        match self {
            Target::Addr(a) => a.port(),
            Target::Name { port, .. } => *port,
        }
    }

    /// A target from a host (name or address literal, IPv6 with or without
    /// brackets) and a port.
    pub fn from_host(host: &str, port: u16) -> Result<Target, TargetError> {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(Target::Addr(SocketAddr::new(ip, port)));
        }
        if bare.len() != host.len() || !valid_name(bare.as_bytes()) {
            return Err(TargetError::BadHost);
        }
        Ok(Target::Name {
            host: bare.to_string(),
            port,
        })
    }

    /// Parses `host:port` (`[v6]:port` for IPv6).
    pub fn parse(s: &str) -> Result<Target, TargetError> {
        let (host, port) = s.rsplit_once(':').ok_or(TargetError::NoPort)?;
        if host.contains(':') && !host.starts_with('[') {
            return Err(TargetError::BadHost); // bare IPv6 needs brackets
        }
        Target::from_host(host, parse_port(port)?)
    }
}

/// Parses a decimal port (1..=65535 unless `zero_ok`… never zero here).
pub fn parse_port(s: &str) -> Result<u16, TargetError> {
    match s.parse::<u16>() {
        Ok(p) if p != 0 && !s.starts_with('+') => Ok(p),
        _ => Err(TargetError::BadPort),
    }
}

/// Whether `name` is a plausible host name: 1..=253 bytes of letters,
/// digits, `-`, `_` and `.`, no empty label (a final dot is allowed).
pub fn valid_name(name: &[u8]) -> bool {
    let n = name.strip_suffix(b".").unwrap_or(name);
    !n.is_empty()
        && n.len() <= MAX_NAME_LEN
        && n.split(|&c| c == b'.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.iter()
                    .all(|&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        })
}

/// Why a `host:port` could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetError {
    /// No `:port`.
    NoPort,
    /// The port is not a number in 1..=65535.
    BadPort,
    /// The host is neither an address nor a valid name.
    BadHost,
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TargetError::NoPort => "no :PORT",
            TargetError::BadPort => "the port is not a number in 1..65535",
            TargetError::BadHost => {
                "the host is neither an IP address nor a host name ([brackets] around IPv6)"
            }
        })
    }
}

impl std::error::Error for TargetError {}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Addr(a) => write!(f, "{a}"),
            Target::Name { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_addresses() {
        assert_eq!(
            Target::parse("10.0.0.1:80"),
            Ok(Target::Addr("10.0.0.1:80".parse().expect("addr")))
        );
        assert_eq!(
            Target::parse("[fd00::1]:443"),
            Ok(Target::Addr("[fd00::1]:443".parse().expect("addr")))
        );
        assert_eq!(
            Target::parse("web.lan:8080"),
            Ok(Target::Name {
                host: "web.lan".into(),
                port: 8080
            })
        );
        assert_eq!(Target::parse("fd00::1:80"), Err(TargetError::BadHost));
        assert_eq!(Target::parse("web"), Err(TargetError::NoPort));
        assert_eq!(Target::parse("web:0"), Err(TargetError::BadPort));
        assert_eq!(Target::parse("web:65536"), Err(TargetError::BadPort));
        assert_eq!(Target::parse("we b:1"), Err(TargetError::BadHost));
        assert_eq!(Target::parse("a..b:1"), Err(TargetError::BadHost));
        assert_eq!(Target::parse(":1"), Err(TargetError::BadHost));
        assert!(!valid_name(&[b'a'; 300]));
        assert!(valid_name(b"example.com."));
    }
}
