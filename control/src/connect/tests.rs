//! The connect decisions, driven with a scripted [`Lookup`].

use super::*;

const ECONNREFUSED: i32 = 111;
const EACCES: i32 = 13;

/// Answers from fields; counts the routing questions asked.
struct Fake {
    info: Option<SocketInfo>,
    dns: Option<SocketAddr>,
    effective: Option<Result<SocketAddr, i32>>,
    route: RouteDecision,
    icmp: bool,
    routes_asked: Vec<(SocketAddr, RouteFor)>,
    socket_asked: bool,
}

fn fake(ty: SockType, domain: i32) -> Fake {
    Fake {
        info: Some(SocketInfo { ty, domain }),
        dns: None,
        effective: None,
        route: RouteDecision::Tunnel,
        icmp: false,
        routes_asked: Vec::new(),
        socket_asked: false,
    }
}

impl Lookup for Fake {
    fn socket(&mut self) -> Option<SocketInfo> {
        self.socket_asked = true;
        self.info
    }
    fn dns_redirect(&mut self, _dst: SocketAddr) -> Option<SocketAddr> {
        self.dns
    }
    fn effective(&mut self, dst: SocketAddr, _ty: SockType) -> Result<SocketAddr, i32> {
        self.effective.unwrap_or(Ok(dst))
    }
    fn route(&mut self, dst: SocketAddr, why: RouteFor) -> RouteDecision {
        self.routes_asked.push((dst, why));
        self.route
    }
    fn raw_icmp(&mut self) -> bool {
        self.icmp
    }
}

fn a(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

fn tunnel(raw: &str, family: i32) -> Plan {
    Plan::Tunnel(Tunnel {
        raw: a(raw),
        dst: crate::normalize(a(raw)),
        family,
        retry: false,
        rebind: None,
    })
}

#[test]
fn stream_to_a_remote_address_goes_to_the_engine_without_a_route_query() {
    let mut f = fake(SockType::Stream, AF_INET);
    let p = classify(Socket::Plain, Some(a("10.0.0.2:80")), &mut f);
    assert_eq!(p, tunnel("10.0.0.2:80", AF_INET));
    assert!(
        f.routes_asked.is_empty(),
        "the engine's Connect reply routes TCP"
    );
}

#[test]
fn loopback_and_other_family_are_the_kernels() {
    let mut f = fake(SockType::Stream, AF_INET);
    assert_eq!(
        classify(Socket::Plain, Some(a("127.0.0.1:80")), &mut f),
        Plan::Kernel
    );
    let mut f = fake(SockType::Stream, AF_INET);
    assert_eq!(
        classify(Socket::Plain, Some(a("[fd00::2]:80")), &mut f),
        Plan::Kernel
    );
    // A v4-mapped destination on an AF_INET6 socket is IPv6 to the family
    // check, and normalised for the engine.
    let mut f = fake(SockType::Stream, AF_INET6);
    let p = classify(Socket::Plain, Some(a("[::ffff:10.0.0.2]:80")), &mut f);
    assert_eq!(p, tunnel("[::ffff:10.0.0.2]:80", AF_INET6));
    let Plan::Tunnel(t) = p else { unreachable!() };
    assert_eq!(t.dst, a("10.0.0.2:80"));
}

#[test]
fn unreadable_address_or_socket_is_the_kernels() {
    let mut f = fake(SockType::Stream, AF_INET);
    assert_eq!(classify(Socket::Plain, None, &mut f), Plan::Kernel);
    assert!(!f.socket_asked);
    let mut f = fake(SockType::Stream, AF_INET);
    f.info = None;
    assert_eq!(
        classify(Socket::Plain, Some(a("10.0.0.2:80")), &mut f),
        Plan::Kernel
    );
}

#[test]
fn carried_datagram_socket_repeers_whatever_the_address() {
    let mut f = fake(SockType::Dgram, AF_INET);
    assert_eq!(
        classify(Socket::CarriedDatagram, None, &mut f),
        Plan::Repeer
    );
    assert_eq!(
        classify(Socket::CarriedDatagram, Some(a("127.0.0.1:1")), &mut f),
        Plan::Repeer
    );
    assert!(!f.socket_asked);
}

#[test]
fn tunnel_stream_states() {
    let mut f = fake(SockType::Stream, AF_INET);
    let d = Some(a("10.0.0.2:80"));
    assert_eq!(classify(Socket::Connecting, d, &mut f), Plan::Again);
    assert_eq!(
        classify(Socket::Connected, d, &mut f),
        Plan::Refuse(EISCONN)
    );
    assert!(!f.socket_asked, "decided from the table alone");
    let Plan::Tunnel(t) = classify(Socket::Failed, d, &mut f) else {
        panic!("a failed stream connects anew");
    };
    assert!(t.retry);
    // … and to a host destination gets its kernel socket back first.
    assert_eq!(
        classify(Socket::Failed, Some(a("127.0.0.1:80")), &mut f),
        Plan::KernelRestored
    );
    assert_eq!(classify(Socket::Left, d, &mut f), Plan::Kernel);
}

#[test]
fn bound_here_carries_the_rebind() {
    let mut f = fake(SockType::Stream, AF_INET6);
    let requested = a("[::]:5000");
    let s = Socket::BoundHere {
        requested,
        family: AF_INET6,
    };
    let Plan::Tunnel(t) = classify(s, Some(a("[fd00::2]:80")), &mut f) else {
        panic!("a bound socket still tries the tunnel");
    };
    assert_eq!(t.rebind, Some((requested, AF_INET6)));
    assert!(!t.retry);
}

#[test]
fn dns_redirect_of_tcp_53() {
    let ns = a("127.0.0.53:53");
    let tunnel_dns = a("10.0.0.53:53");
    let mut f = fake(SockType::Stream, AF_INET);
    f.dns = Some(tunnel_dns);
    assert_eq!(
        classify(Socket::Plain, Some(ns), &mut f),
        tunnel("10.0.0.53:53", AF_INET)
    );
    // An AF_INET6 socket reaches it v4-mapped.
    let mut f = fake(SockType::Stream, AF_INET6);
    f.dns = Some(tunnel_dns);
    let Plan::Tunnel(t) = classify(Socket::Plain, Some(a("[::1]:53")), &mut f) else {
        panic!("redirected into the tunnel");
    };
    assert_eq!(t.raw, a("[::ffff:10.0.0.53]:53"));
    assert_eq!(t.dst, tunnel_dns);
    // An IPv6 server for an AF_INET socket: never the host's resolver.
    let mut f = fake(SockType::Stream, AF_INET);
    f.dns = Some(a("[fd00::53]:53"));
    assert_eq!(
        classify(Socket::Plain, Some(ns), &mut f),
        Plan::Refuse(ENETUNREACH)
    );
    // Not for datagram sockets (their rewrite is `effective`).
    let mut f = fake(SockType::Dgram, AF_INET);
    f.dns = Some(a("[fd00::53]:53"));
    f.route = RouteDecision::Direct;
    assert_eq!(classify(Socket::Plain, Some(ns), &mut f), Plan::Kernel);
}

#[test]
fn effective_rewrites_and_fails() {
    let mut f = fake(SockType::Dgram, AF_INET);
    f.effective = Some(Ok(a("10.0.0.53:53")));
    let p = classify(Socket::Plain, Some(a("127.0.0.53:53")), &mut f);
    assert_eq!(
        p,
        Plan::CarryDatagram {
            raw: a("127.0.0.53:53"),
            dst: a("10.0.0.53:53"),
            kind: Carried::Udp,
        }
    );
    assert_eq!(f.routes_asked, vec![(a("10.0.0.53:53"), RouteFor::Udp)]);
    let mut f = fake(SockType::Dgram, AF_INET);
    f.effective = Some(Err(ENETUNREACH));
    assert_eq!(
        classify(Socket::Plain, Some(a("127.0.0.53:53")), &mut f),
        Plan::Refuse(ENETUNREACH)
    );
}

#[test]
fn datagram_by_route() {
    let d = Some(a("10.0.0.2:53"));
    let mut f = fake(SockType::Dgram, AF_INET);
    f.route = RouteDecision::Direct;
    assert_eq!(classify(Socket::Plain, d, &mut f), Plan::Kernel);
    f.route = RouteDecision::Unreachable(ENETUNREACH);
    assert_eq!(
        classify(Socket::Plain, d, &mut f),
        Plan::Refuse(ENETUNREACH)
    );
    f.route = RouteDecision::Tunnel;
    assert!(matches!(
        classify(Socket::Plain, d, &mut f),
        Plan::CarryDatagram {
            kind: Carried::Udp,
            ..
        }
    ));
    // Loopback never asks.
    let mut f = fake(SockType::Dgram, AF_INET);
    assert_eq!(
        classify(Socket::Plain, Some(a("127.0.0.1:53")), &mut f),
        Plan::Kernel
    );
    assert!(f.routes_asked.is_empty());
}

#[test]
fn raw_sockets() {
    let d = Some(a("10.0.0.2:0"));
    let mut f = fake(SockType::Raw, AF_INET);
    f.route = RouteDecision::Direct;
    assert_eq!(classify(Socket::Plain, d, &mut f), Plan::Kernel);
    f.route = RouteDecision::Tunnel;
    assert_eq!(
        classify(Socket::Plain, d, &mut f),
        Plan::RefuseUncarried {
            dst: a("10.0.0.2:0")
        }
    );
    f.icmp = true;
    assert!(matches!(
        classify(Socket::Plain, d, &mut f),
        Plan::CarryDatagram {
            kind: Carried::RawIcmp,
            ..
        }
    ));
    assert!(f.routes_asked.iter().all(|(_, w)| *w == RouteFor::Echo));
    f.route = RouteDecision::Unreachable(ENETUNREACH);
    assert_eq!(
        classify(Socket::Plain, d, &mut f),
        Plan::Refuse(ENETUNREACH)
    );
}

#[test]
fn other_types_are_the_kernels() {
    let mut f = fake(SockType::Other, AF_INET);
    assert_eq!(
        classify(Socket::Plain, Some(a("10.0.0.2:80")), &mut f),
        Plan::Kernel
    );
    assert_eq!(SockType::from_raw(5), SockType::Other);
    assert_eq!(SockType::from_raw(1), SockType::Stream);
}

#[test]
fn echo_stand_in_refuses_all_but_the_tunnel() {
    let s = Socket::EchoStandIn { refused: EACCES };
    let mut f = fake(SockType::Dgram, AF_INET);
    assert_eq!(
        classify(s, Some(a("127.0.0.1:0")), &mut f),
        Plan::Refuse(EACCES)
    );
    f.route = RouteDecision::Direct;
    assert_eq!(
        classify(s, Some(a("192.0.2.1:0")), &mut f),
        Plan::Refuse(EACCES)
    );
    f.route = RouteDecision::Unreachable(ENETUNREACH);
    assert_eq!(
        classify(s, Some(a("192.0.2.1:0")), &mut f),
        Plan::Refuse(ENETUNREACH)
    );
    f.route = RouteDecision::Tunnel;
    assert_eq!(
        classify(s, Some(a("10.0.0.2:0")), &mut f),
        Plan::CarryDatagram {
            raw: a("10.0.0.2:0"),
            dst: a("10.0.0.2:0"),
            kind: Carried::StandIn,
        }
    );
    assert!(!f.socket_asked, "a stand-in's type is known");
}

#[test]
fn again_and_returned() {
    assert_eq!(again(OutState::Connecting, true), Again::Already);
    assert_eq!(again(OutState::Connecting, false), Again::Wait);
    assert_eq!(
        again(OutState::Established, true),
        Again::Settled(OutState::Established)
    );
    assert_eq!(returned(OutState::Established), Ok(()));
    let failed = |reported| OutState::Failed {
        errno: ECONNREFUSED,
        reported,
    };
    assert_eq!(returned(failed(false)), Err(ECONNREFUSED));
    assert_eq!(returned(failed(true)), Err(ECONNABORTED));
    assert_eq!(returned(OutState::Connecting), Err(EALREADY));
}

#[test]
fn local_and_family_helpers() {
    for l in [
        "127.0.0.1:1",
        "0.0.0.0:1",
        "224.0.0.1:1",
        "255.255.255.255:1",
        "[::1]:1",
        "[::ffff:127.0.0.1]:1",
        "[ff02::1]:1",
    ] {
        assert!(is_local(&a(l)), "{l}");
    }
    assert!(!is_local(&a("10.0.0.2:1")));
    assert_eq!(
        in_family(a("10.0.0.2:1"), AF_INET6),
        a("[::ffff:10.0.0.2]:1")
    );
    assert_eq!(in_family(a("10.0.0.2:1"), AF_INET), a("10.0.0.2:1"));
}
