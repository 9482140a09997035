//! A small DNS stub resolver, sans-IO.
//!
//! * [`wire`]: the DNS message codec (RFC 1035 §4, AAAA from RFC 3596):
//!   builds queries, parses responses with every length and compression
//!   pointer checked; never panics on any input.
//! * [`hosts`]: `/etc/hosts` parsing and lookups (forward and reverse).
//! * [`resolv_conf`]: the nameservers of a `resolv.conf`.
//! * [`lookup`]: the state machine of one lookup — search domains and
//!   `ndots` as in resolv.conf, retries over the servers, TCP fallback on a
//!   truncated answer. It sends nothing and reads no clock: the driver asks
//!   [`lookup::Lookup::step`] what to send, sends it with the configured
//!   timeout, and reports what happened with [`lookup::Lookup::handle`].
#![forbid(unsafe_code)]

pub mod hosts;
pub mod lookup;
pub mod resolv_conf;
pub mod wire;

pub use lookup::{Event, Lookup, LookupConfig, LookupError, Outcome, Query, Step, Transmit};
