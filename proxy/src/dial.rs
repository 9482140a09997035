//! Reaching a client's destination: names resolved through the tunnel
//! when `DNS =` is set (else by the host), then a tunnel flow; a
//! destination not routed into the tunnel is refused unless the policy
//! allows direct connections (`--proxy-direct`).

use crate::socks5::ReplyCode;
use crate::target::Target;
use crate::tunnel::{Engine, LookupError, OpenError, TunnelStream};
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;
use tracing::debug;

/// How long a direct (host network) connection may take.
const DIRECT_TIMEOUT: Duration = Duration::from_secs(30);

/// What the front-ends may reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Destinations not routed into the tunnel are connected through the
    /// host network instead of refused.
    pub direct: bool,
}

/// A connection to a client's destination.
#[derive(Debug)]
pub enum Dialed {
    /// Through the tunnel.
    Tunnel(TunnelStream),
    /// Through the host network (`--proxy-direct`).
    Direct(TcpStream),
}

impl Dialed {
    /// The local address of the connection (our tunnel address for a
    /// tunnel flow).
    pub fn local(&self) -> Option<SocketAddr> {
        match self {
            Dialed::Tunnel(t) => Some(t.local),
            Dialed::Direct(s) => s.local_addr().ok(),
        }
    }
}

/// Why a destination was not reached.
#[derive(Debug)]
pub enum DialError {
    /// Not routed into the tunnel, and direct connections are off.
    NotTunnel,
    /// The name does not resolve.
    NoSuchName,
    /// The tunnel DNS server did not answer.
    DnsTimeout,
    /// The connection failed with this errno.
    Failed(i32),
    /// The engine could not be asked.
    Engine,
}

impl DialError {
    /// The SOCKS5 reply for this failure.
    pub fn socks_code(&self) -> ReplyCode {
        match self {
            DialError::NotTunnel => ReplyCode::NotAllowed,
            DialError::NoSuchName | DialError::DnsTimeout => ReplyCode::HostUnreachable,
            DialError::Failed(libc::ECONNREFUSED) => ReplyCode::ConnectionRefused,
            DialError::Failed(libc::ENETUNREACH) => ReplyCode::NetworkUnreachable,
            DialError::Failed(libc::ETIMEDOUT) => ReplyCode::TtlExpired,
            DialError::Failed(_) => ReplyCode::HostUnreachable,
            DialError::Engine => ReplyCode::GeneralFailure,
        }
    }

    /// The HTTP status for this failure.
    pub fn http_status(&self) -> (u16, &'static str) {
        match self {
            DialError::NotTunnel => (403, "Forbidden"),
            DialError::DnsTimeout | DialError::Failed(libc::ETIMEDOUT) => (504, "Gateway Timeout"),
            _ => (502, "Bad Gateway"),
        }
    }
}

impl fmt::Display for DialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DialError::NotTunnel => f.write_str("destination not routed into the tunnel"),
            DialError::NoSuchName => f.write_str("name not found"),
            DialError::DnsTimeout => f.write_str("the tunnel DNS server did not answer"),
            DialError::Failed(e) => write!(f, "{}", std::io::Error::from_raw_os_error(*e)),
            DialError::Engine => f.write_str("the engine's control socket failed"),
        }
    }
}

impl std::error::Error for DialError {}

/// The addresses of `target`: through the tunnel DNS when the config has
/// `DNS =` (socks5h behaviour), else the host's resolver.
pub async fn resolve(engine: &Engine, target: &Target) -> Result<Vec<SocketAddr>, DialError> {
    let (host, port) = match target {
        Target::Addr(a) => return Ok(vec![*a]),
        Target::Name { host, port } => (host, *port),
    };
    if engine.tunnel_dns().await {
        return match engine.resolve(host).await {
            Ok(ips) => Ok(ips
                .into_iter()
                .map(|ip| SocketAddr::new(ip, port))
                .collect()),
            Err(LookupError::NotFound) => Err(DialError::NoSuchName),
            Err(LookupError::TryAgain) => Err(DialError::DnsTimeout),
            Err(LookupError::Engine) => Err(DialError::Engine),
        };
    }
    match tokio::net::lookup_host((host.as_str(), port)).await {
        Ok(a) => {
            let v: Vec<SocketAddr> = a.collect();
            if v.is_empty() {
                Err(DialError::NoSuchName)
            } else {
                Ok(v)
            }
        }
        Err(_) => Err(DialError::NoSuchName),
    }
}

/// Connects to `target` under `policy`, trying its addresses in order.
///
/// With `hand_over` a tunnel flow takes the client's connection itself
/// ([`crate::relay`] passes it to the engine); only for a client with no
/// bytes read ahead of the relay.
pub async fn dial(
    engine: &Engine,
    target: &Target,
    policy: Policy,
    hand_over: bool,
) -> Result<Dialed, DialError> {
    let mut last = DialError::NoSuchName;
    for dst in resolve(engine, target).await? {
        match engine.connect(dst, hand_over).await {
            Ok(t) => return Ok(Dialed::Tunnel(t)),
            Err(OpenError::NotRouted) if policy.direct => {
                match tokio::time::timeout(DIRECT_TIMEOUT, TcpStream::connect(dst)).await {
                    Ok(Ok(s)) => {
                        debug!(dst = %dst, "proxy: direct connection (not routed into the tunnel)");
                        return Ok(Dialed::Direct(s));
                    }
                    Ok(Err(e)) => {
                        last = DialError::Failed(e.raw_os_error().unwrap_or(libc::EHOSTUNREACH))
                    }
                    Err(_) => last = DialError::Failed(libc::ETIMEDOUT),
                }
            }
            Err(OpenError::NotRouted) => last = DialError::NotTunnel,
            Err(OpenError::Failed(e)) => last = DialError::Failed(e),
            Err(OpenError::Io(e)) => {
                debug!(error = %e, "proxy: control socket failed");
                last = DialError::Engine;
            }
        }
    }
    Err(last)
}
