//! wrapguard's proxy and port-forward front-ends: a SOCKS5 proxy
//! (`--socks5`), an HTTP proxy (`--http-proxy`), local forwards into the
//! tunnel (`--forward`) and reverse forwards from it (`--reverse`).
//!
//! They are clients of the engine's control socket, like the shim and the
//! seccomp supervisor, so they work the same on a private engine and on a
//! shared one: a TCP destination is a `Connect` data socket, a datagram
//! flow a `UdpOpen` one, a name a `Resolve`, a reverse port a `Listen`.
//!
//! Read top to bottom (each module uses only those below it):
//!
//! * [`run`]: binds every listener and starts the serving tasks; the
//!   safety rules (loopback unless `--proxy-open` or credentials).
//! * [`serve`]: one module per front-end (a client's whole exchange), over
//!   `accept` (the bounded accept loop) and `relay` (bytes both ways).
//! * [`dial`]: names → addresses → a tunnel flow (or, with
//!   `--proxy-direct`, the host network); the refusal of destinations
//!   outside the tunnel.
//! * [`tunnel`]: the engine, async; [`client`]: its blocking control
//!   exchanges (descriptors passed both ways with the `fdpass` crate).
//! * Sans-IO, no sockets: [`socks5`], [`http`] (the request parsers and
//!   encoders), [`spec`] (the forward flags), [`conf_section`] (the
//!   same as keys of the config's `[WrapGuard]` section), [`auth`] (credentials) with
//!   [`auth_file`] (reading it, 0600 checked), [`target`], [`ctx`] (limits).

#![forbid(unsafe_code)]

mod accept;
pub mod auth;
pub mod auth_file;
pub mod client;
pub mod conf_section;
pub mod ctx;
pub mod dial;
pub mod http;
mod relay;
pub mod run;
pub mod serve;
pub mod socks5;
pub mod spec;
pub mod target;
pub mod tunnel;

pub use run::{start, Settings, StartError};
