//! Datagrams in seccomp mode. Placeholder until the UDP handlers land:
//! fail closed for tunnel destinations (never leak), everything else runs
//! as the program asked.

use super::supervisor::{Call, Outcome, Supervisor};
use control::{Proto, Reply, Request, RouteDecision};
use std::net::SocketAddr;

/// `connect` of a datagram socket to `dst` (`raw` as the program named it).
pub fn connect(sv: &mut Supervisor, _c: &Call, _raw: SocketAddr, dst: SocketAddr) -> Outcome {
    match sv.engine.query(&Request::Route {
        dst,
        proto: Proto::Udp,
    }) {
        Ok(Reply::Route(RouteDecision::Direct)) => Outcome::cont(),
        _ => Outcome::errno(libc::ENETUNREACH),
    }
}

/// `bind` of a datagram socket.
pub fn bind(_sv: &mut Supervisor, _c: &Call, _raw: SocketAddr, _norm: SocketAddr) -> Outcome {
    Outcome::cont()
}

/// `sendto` with a destination.
pub fn sendto(_sv: &mut Supervisor, _c: &Call) -> Outcome {
    Outcome::cont()
}

/// `sendmsg`.
pub fn sendmsg(_sv: &mut Supervisor, _c: &Call) -> Outcome {
    Outcome::cont()
}

/// `sendmmsg`.
pub fn sendmmsg(_sv: &mut Supervisor, _c: &Call) -> Outcome {
    Outcome::cont()
}
