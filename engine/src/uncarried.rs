//! The one `warn` line for traffic a program sends to a tunnel destination
//! that the tunnel cannot carry: the shim asks a route for it with the IP
//! protocol number (`Proto::Unknown`) once per process, when it fails the
//! send with `ENETUNREACH` (raw sockets of other protocols, ICMP other than
//! echo requests). Never silent loss.

use control::{Proto, RouteDecision};
use std::net::SocketAddr;
use tracing::warn;

/// Logs the warning if `proto` is not carried and `dst` is in the tunnel.
pub fn warn_if_uncarried(dst: SocketAddr, proto: Proto, decision: RouteDecision) {
    let Proto::Unknown(p) = proto else {
        return;
    };
    if decision == RouteDecision::Direct {
        return;
    }
    let what = match p {
        1 | 58 => "ICMP other than echo requests (ping)".to_string(),
        p => format!("IP protocol {p} (a raw socket)"),
    };
    warn!(
        dst = %dst.ip(),
        protocol = p,
        "{what} to {} is not carried through the tunnel (TCP, UDP and ICMP echo are); the program's send fails with ENETUNREACH",
        dst.ip()
    );
}
