//! Telling the user, once per process, that the program sent something to
//! a tunnel destination that the tunnel does not carry (a raw socket of
//! another protocol, ICMP other than echo requests): the send fails with
//! `ENETUNREACH`, and the engine logs one `warn` line naming the protocol
//! and destination (the shim writes nothing to the program's output). The
//! report is a route query with the IP protocol number
//! (`control::Proto::Unknown`), which the engine answers as any other.

use crate::engine;
use control::{Proto, Request};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether this process has reported already.
static REPORTED: AtomicBool = AtomicBool::new(false);

/// Reports an uncarried send of IP protocol `proto` to `dst` (first time only).
pub fn report(dst: SocketAddr, proto: u8) {
    if REPORTED.swap(true, Ordering::Relaxed) {
        return;
    }
    let _ = engine::query(&Request::Route {
        dst,
        proto: Proto::Unknown(proto),
    });
}
