//! The config model and parser (wg-quick format plus `Route =`) and the
//! routing table: which peer carries a packet, and which sources a peer may use.
#![forbid(unsafe_code)]
