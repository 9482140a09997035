//! The config model and parser (wg-quick format plus `Route =`) and the
//! routing table: which peer carries a packet, and which sources a peer may use.
#![forbid(unsafe_code)]

pub mod config;
pub mod route;
mod router;
mod table;

pub use config::{Config, ConfigError, ConfigErrorKind, Endpoint, ParsedConfig, Warning};
pub use route::{Ports, Proto, ProtoFilter, RouteFlag, RouteSpec, Selector};
pub use router::{PeerId, PolicyRoute, Route, RouteOrigin, Router, RoutingError, RoutingOptions};
