//! Where a datagram goes: the `DNS =` port-53 redirect ([`effective`],
//! and its inverse for what a receive shows as the source) and the
//! engine's routing decision for UDP, cached briefly.

use crate::state::State;
use control::{DnsInfo, Proto, Reply, Request, RouteDecision};
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a routing decision for a destination is reused.
const ROUTE_TTL: Duration = Duration::from_secs(5);
/// Destinations remembered at most.
const ROUTE_CACHE: usize = 256;

/// What the supervisor knows about name resolution, shared with waiter
/// threads: the engine's DNS setup and the host nameserver last asked
/// (replies from the tunnel's server are shown as coming from it).
struct Dns {
    info: Option<Option<DnsInfo>>,
    last_asked: Option<SocketAddr>,
}

static DNS: Mutex<Dns> = Mutex::new(Dns {
    info: None,
    last_asked: None,
});

thread_local! {
    static ROUTES: RefCell<HashMap<SocketAddr, (RouteDecision, Instant)>> =
        RefCell::new(HashMap::new());
}

fn dns() -> std::sync::MutexGuard<'static, Dns> {
    DNS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where traffic to `dst` (normalised) really goes: the tunnel's DNS
/// server for port 53 of a host nameserver when the config has `DNS =`
/// (the shim's rule), else `dst`. `Err`: it is port 53 and the engine could
/// not say (fail closed).
pub fn effective(sv: &State, dst: SocketAddr) -> Result<SocketAddr, i32> {
    if dst.port() != 53 {
        return Ok(dst);
    }
    let known = dns().info;
    let info = match known {
        Some(i) => i,
        None => {
            let i = match sv.engine.query(&Request::DnsInfo) {
                Ok(Reply::DnsInfo(i)) => Some(i),
                _ => None,
            };
            // Not remembered when the engine could not say: ask again.
            if i.is_some() {
                dns().info = Some(i);
            }
            i
        }
    };
    let Some(info) = info else {
        return Err(libc::ENETUNREACH);
    };
    match info.redirect(dst) {
        Some(to) => {
            dns().last_asked = Some(dst);
            Ok(control::normalize(to))
        }
        None => Ok(dst),
    }
}

/// The source to show for a datagram from `src` (the inverse of
/// [`effective`]): the host nameserver the program asked last, for an
/// answer of the tunnel's DNS server.
pub fn shown_source(src: SocketAddr) -> SocketAddr {
    let d = dns();
    match (d.info, d.last_asked) {
        (Some(Some(i)), Some(asked)) if src.port() == 53 && i.server == Some(src.ip()) => asked,
        _ => src,
    }
}

/// The engine's decision for UDP to `dst` (normalised), cached briefly.
pub fn route(sv: &State, dst: SocketAddr) -> RouteDecision {
    let now = Instant::now();
    if let Some(d) = ROUTES.with(|r| {
        r.borrow()
            .get(&dst)
            .filter(|(_, at)| now.duration_since(*at) < ROUTE_TTL)
            .map(|(d, _)| *d)
    }) {
        return d;
    }
    let d = match sv.engine.query(&Request::Route {
        dst,
        proto: Proto::Udp,
    }) {
        Ok(Reply::Route(d)) => d,
        _ => RouteDecision::Unreachable(libc::ENETUNREACH), // fail closed
    };
    ROUTES.with(|r| {
        let mut r = r.borrow_mut();
        if r.len() >= ROUTE_CACHE {
            r.retain(|_, (_, at)| now.duration_since(*at) < ROUTE_TTL);
            if r.len() >= ROUTE_CACHE {
                r.clear();
            }
        }
        r.insert(dst, (d, now));
    });
    d
}
