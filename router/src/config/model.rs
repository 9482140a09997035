//! The config model: what a parsed file holds ([`Config`], its
//! [`Interface`] and [`Peer`] sections). Below both the parser, which
//! builds it, and `config`'s loading entry points.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use super::error::Warning;
use super::keys::{PresharedKey, PrivateKey, PublicKey};
use crate::route::RouteSpec;

/// The MTU used when `[Interface]` has no `MTU =`.
pub const DEFAULT_MTU: u16 = 1420;

/// A parsed config file.
#[derive(Debug, Clone)]
pub struct Config {
    /// The `[Interface]` section.
    pub interface: Interface,
    /// The `[Peer]` sections, in file order; a peer's position is its
    /// [`PeerId`](crate::PeerId).
    pub peers: Vec<Peer>,
}

/// The `[Interface]` section: this side of the tunnel.
#[derive(Debug, Clone)]
pub struct Interface {
    /// `PrivateKey`.
    pub private_key: PrivateKey,
    /// `Address`: tunnel addresses with their prefix lengths as written
    /// (host bits kept, e.g. `10.0.0.2/24`); a bare address is a host prefix.
    pub addresses: Vec<IpNet>,
    /// `ListenPort`; `None` when absent or 0 (an ephemeral port).
    pub listen_port: Option<u16>,
    /// The IP addresses in `DNS`.
    pub dns: Vec<IpAddr>,
    /// The search domains in `DNS`.
    pub dns_search: Vec<String>,
    /// `MTU`, [`DEFAULT_MTU`] if absent.
    pub mtu: u16,
    /// Line of the `[Interface]` header.
    pub line: usize,
}

/// Where to reach a peer. Hostnames are resolved by the launcher when the
/// engine starts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// An IP address and port.
    Addr(SocketAddr),
    /// A hostname and port.
    Host {
        /// The hostname as written.
        host: String,
        /// The UDP port.
        port: u16,
    },
}

impl fmt::Display for Endpoint {
    /// `1.2.3.4:51820`, `[fd00::1]:51820` or `vpn.example.com:51820`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Addr(a) => write!(f, "{a}"),
            Endpoint::Host { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

/// A `Route =` line of a `[Peer]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConfigRoute {
    /// What the route covers.
    pub spec: RouteSpec,
    /// Its line in the file.
    pub line: usize,
}

/// One `[Peer]` section.
#[derive(Debug, Clone)]
pub struct Peer {
    /// `PublicKey`.
    pub public_key: PublicKey,
    /// `PresharedKey`, if any.
    pub preshared_key: Option<PresharedKey>,
    /// `Endpoint`, if any (without one, the peer must contact us first).
    pub endpoint: Option<Endpoint>,
    /// `AllowedIPs`, host bits cleared, in file order.
    pub allowed_ips: Vec<IpNet>,
    /// `PersistentKeepalive` in seconds; `None` when absent, 0 or `off`.
    pub persistent_keepalive: Option<u16>,
    /// `Route =` lines, in file order.
    pub routes: Vec<ConfigRoute>,
    /// Line of the `[Peer]` header.
    pub line: usize,
}

/// A config together with the warnings found while reading it.
#[derive(Debug, Clone)]
pub struct ParsedConfig {
    /// The config.
    pub config: Config,
    /// Warnings, in file order (a permission warning first).
    pub warnings: Vec<Warning>,
}
