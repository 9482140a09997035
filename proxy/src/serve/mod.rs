//! The serving code of each front-end, one module each, over the
//! sans-IO parsers: a client's whole exchange, then the relay.

pub mod forward;
pub mod http;
pub mod reverse;
pub mod socks5;
mod udp_assoc;
