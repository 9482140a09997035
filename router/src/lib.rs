//! The config model and parser (wg-quick format plus `Route =`) and the
//! routing table: which peer carries a packet, and which sources a peer may use.
//!
//! Sans-IO: nothing here resolves names or opens sockets; the only file
//! access is the [`Config::from_path`] convenience. Warnings come back as
//! data ([`Warning`]) for the caller to log.
//!
//! # Use
//!
//! ```
//! use router::{Config, PeerId, Proto, Route, RouteFlag, Router, RoutingOptions};
//!
//! let text = "\
//! [Interface]
//! PrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=
//! Address = 10.150.0.2/24
//!
//! [Peer]
//! PublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=
//! Endpoint = vpn.example.com:51820
//! AllowedIPs = 10.150.0.0/24
//! Route = 172.16.0.0/12:tcp:443
//! ";
//! let parsed = Config::parse(text, "wg0.conf")?;          // or Config::from_path
//! for warning in &parsed.warnings {
//!     eprintln!("{warning}");
//! }
//! let options = RoutingOptions {
//!     routes: vec![RouteFlag::parse("192.168.0.0/16:10.150.0.3")?],
//!     exit_node: None,
//! };
//! let table = Router::new(&parsed.config, &options)?;
//! let dst = "172.16.1.1".parse()?;
//! assert_eq!(table.lookup(dst, Proto::Tcp, 443), Route::Peer(PeerId(0)));
//! assert_eq!(table.lookup(dst, Proto::Udp, 53), Route::Direct);
//! assert!(table.inbound_allowed(PeerId(0), "192.168.4.4".parse()?));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Routing rules
//!
//! Outbound ([`Router::lookup`]):
//!
//! 1. Loopback destinations (`127.0.0.0/8`, `::1`, also IPv4-mapped) are
//!    always [`Route::Direct`]. IPv4-mapped IPv6 addresses route as IPv4.
//! 2. **Policy routes** — `--route` flags, `--exit-node`, `Route =` lines —
//!    are consulted first. Among those whose prefix contains the destination
//!    and whose selector matches protocol and port: the longest prefix wins,
//!    then the more specific selector ([`Selector::specificity`]: single
//!    port > port range > protocol only > any), then the earlier route in
//!    *priority order*: `--route` flags in command-line order, then
//!    `--exit-node`, then `Route =` lines in file order (the command line
//!    overrides the file). A longer prefix whose selector does not match
//!    does not hide a shorter one that does.
//! 3. Otherwise **AllowedIPs** (cryptokey routing): the peer with the
//!    longest AllowedIPs prefix containing the destination; if two peers
//!    list the very same prefix, the later one has it, as with `wg` (the
//!    parser warns).
//! 4. Otherwise [`Route::Direct`]: the host network.
//!
//! `--route=CIDR:peerIP` and `--exit-node=IP` name their peer by an address
//! inside its AllowedIPs (resolved by rule 3 alone); an address in no
//! peer's AllowedIPs is a [`RoutingError`]. `--exit-node` adds `0.0.0.0/0`
//! and `::/0` policy routes to that peer.
//!
//! Inbound ([`Router::inbound_allowed`]): a packet decrypted from peer P is
//! accepted if its source lies in one of P's AllowedIPs or one of P's
//! policy-route prefixes (so replies through an exit node are accepted);
//! loopback sources never are. Counting drops is the caller's job.
//!
//! The tables are built once per config; lookups never allocate. Per
//! address family one static interval table over all prefixes answers both
//! questions with a bucket-index step and a short binary search (see the
//! `table` module); most intervals carry their final answer directly.
#![forbid(unsafe_code)]

pub mod config;
pub mod route;
mod router;
mod table;

pub use config::{Config, ConfigError, ConfigErrorKind, Endpoint, ParsedConfig, Warning};
pub use route::{Ports, Proto, ProtoFilter, RouteFlag, RouteSpec, Selector};
pub use router::{PeerId, PolicyRoute, Route, RouteOrigin, Router, RoutingError, RoutingOptions};
