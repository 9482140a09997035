//! The config model and its parser: wg-quick files plus wrapguard's
//! `Route =` extension.
//!
//! ```text
//! [Interface]
//! PrivateKey = <base64>            # required
//! Address = 10.0.0.2/24, fd00::2/64 # required; repeatable, comma-separated
//! ListenPort = 51820                # optional; 0 or absent: ephemeral
//! DNS = 10.0.0.1, corp.example      # addresses and search domains
//! MTU = 1420                        # default 1420
//!
//! [Peer]                            # any number
//! PublicKey = <base64>              # required, unique
//! PresharedKey = <base64>
//! Endpoint = host:port | [v6]:port | hostname:port
//! AllowedIPs = 10.0.0.0/24, fd00::/64
//! PersistentKeepalive = 25 | off
//! Route = CIDR[:proto[:port|port-port]]
//! ```
//!
//! Keys and section names are case-insensitive, `#` starts a comment
//! anywhere, whitespace around keys, values and list items is ignored.
//! wg-quick-only keys are accepted with a warning. Parsing works on `&str`
//! with a source name for messages; [`Config::from_path`] is the only code
//! here that touches the file system.

mod error;
mod keys;
mod parse;
pub(crate) mod text;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use ipnet::IpNet;

pub use error::{
    permission_warning, ConfigError, ConfigErrorKind, KeyHint, LoadError, Section, Warning,
    WarningKind,
};
pub use keys::{KeyError, PresharedKey, PrivateKey, PublicKey, KEY_LEN};

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

impl Config {
    /// Parses config text. `source` names it in messages (usually the
    /// path as the user wrote it).
    pub fn parse(text: &str, source: &str) -> Result<ParsedConfig, ConfigError> {
        parse::parse(text, source)
    }

    /// Reads and parses a file, adding a warning if other users can read
    /// it. The text read is wiped from memory afterwards.
    pub fn from_path(path: &Path) -> Result<ParsedConfig, LoadError> {
        use std::io::Read as _;
        use zeroize::Zeroize as _;

        let io = |error| LoadError::Io {
            path: path.to_path_buf(),
            error,
        };
        let mut file = std::fs::File::open(path).map_err(io)?;
        let mode = file.metadata().map_err(io)?.permissions();
        let mut bytes = Vec::new();
        let read = file.read_to_end(&mut bytes);
        let source = path.display().to_string();
        let result = match read {
            Err(e) => Err(io(e)),
            Ok(_) => match std::str::from_utf8(&bytes) {
                Err(_) => Err(LoadError::NotUtf8 {
                    path: path.to_path_buf(),
                }),
                Ok(text) => parse::parse(text, &source).map_err(LoadError::Config),
            },
        };
        bytes.zeroize();
        let mut parsed = result?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            if let Some(w) = permission_warning(&source, mode.mode()) {
                parsed.warnings.insert(0, w);
            }
        }
        #[cfg(not(unix))]
        let _ = mode;
        Ok(parsed)
    }
}
