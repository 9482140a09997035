//! The router against a naive linear scan of the same rules, on random
//! route sets (IPv4 and IPv6, nested and overlapping prefixes, selectors,
//! `--route` flags and an exit node), for lookups and inbound checks.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use router::{
    Config, PeerId, Ports, Proto, ProtoFilter, Route, RouteFlag, RouteSpec, Router, RoutingOptions,
    Selector,
};

const PRIV: &str = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";

fn v4(clustered: bool, x: u32, len: u8) -> IpNet {
    let a = if clustered {
        0x0a00_0000 | (x & 0x0003_ffff)
    } else {
        x
    };
    IpNet::V4(Ipv4Net::new(Ipv4Addr::from(a), len.min(32)).expect("len <= 32")).trunc()
}

fn v6(clustered: bool, x: u128, len: u8) -> IpNet {
    let a = if clustered {
        (0xfd00u128 << 112) | ((x & 0x3_ffff) << 94)
    } else {
        x
    };
    IpNet::V6(Ipv6Net::new(Ipv6Addr::from(a), len.min(128)).expect("len <= 128")).trunc()
}

fn net_strategy() -> impl Strategy<Value = IpNet> {
    prop_oneof![
        (any::<bool>(), any::<u32>(), 0u8..=32).prop_map(|(c, x, l)| v4(c, x, l)),
        (any::<bool>(), any::<u128>(), 0u8..=128).prop_map(|(c, x, l)| v6(c, x, l)),
    ]
}

fn selector_strategy() -> impl Strategy<Value = Selector> {
    let proto = prop_oneof![
        Just(ProtoFilter::Any),
        Just(ProtoFilter::Tcp),
        Just(ProtoFilter::Udp)
    ];
    let ports = prop_oneof![
        Just(Ports::All),
        Just(Ports::One(22)),
        Just(Ports::One(443)),
        Just(Ports::Range(1, 1024)),
        Just(Ports::Range(400, 500)),
    ];
    (proto, ports).prop_map(|(proto, ports)| Selector { proto, ports })
}

#[derive(Debug, Clone)]
struct PeerSpec {
    allowed: Vec<IpNet>,
    routes: Vec<RouteSpec>,
}

fn peer_strategy() -> impl Strategy<Value = PeerSpec> {
    (
        prop::collection::vec(net_strategy(), 0..6),
        prop::collection::vec(
            (net_strategy(), selector_strategy())
                .prop_map(|(net, selector)| RouteSpec { net, selector }),
            0..6,
        ),
    )
        .prop_map(|(allowed, routes)| PeerSpec { allowed, routes })
}

fn config_text(peers: &[PeerSpec]) -> String {
    let mut t = format!("[Interface]\nPrivateKey = {PRIV}\nAddress = 10.255.0.1/32\n");
    for (i, p) in peers.iter().enumerate() {
        let key = STANDARD.encode([i as u8 + 1; 32]);
        t.push_str(&format!("\n[Peer]\nPublicKey = {key}\n"));
        if !p.allowed.is_empty() {
            let list: Vec<String> = p.allowed.iter().map(ToString::to_string).collect();
            t.push_str(&format!("AllowedIPs = {}\n", list.join(", ")));
        }
        for r in &p.routes {
            t.push_str(&format!("Route = {r}\n"));
        }
    }
    t
}

/// The rules of the crate documentation, written as a linear scan.
struct Naive {
    /// `(net, peer)` in config order.
    allowed: Vec<(IpNet, u32)>,
    /// `(spec, peer)` in priority order.
    policy: Vec<(RouteSpec, u32)>,
}

impl Naive {
    fn allowed_peer(&self, a: IpAddr) -> Option<u32> {
        self.allowed
            .iter()
            .enumerate()
            .filter(|(_, (n, _))| n.contains(&a))
            .max_by_key(|&(order, (n, _))| (n.prefix_len(), order))
            .map(|(_, &(_, p))| p)
    }

    fn lookup(&self, a: IpAddr, proto: Proto, port: u16) -> Route {
        let a = a.to_canonical();
        if a.is_loopback() {
            return Route::Direct;
        }
        let best = self
            .policy
            .iter()
            .enumerate()
            .filter(|(_, (s, _))| s.net.contains(&a) && s.selector.matches(proto, port))
            .max_by_key(|&(prio, (s, _))| {
                (
                    s.net.prefix_len(),
                    s.selector.specificity(),
                    std::cmp::Reverse(prio),
                )
            });
        if let Some((_, &(_, p))) = best {
            return Route::Peer(PeerId(p));
        }
        self.allowed_peer(a)
            .map_or(Route::Direct, |p| Route::Peer(PeerId(p)))
    }

    fn inbound(&self, peer: u32, a: IpAddr) -> bool {
        let a = a.to_canonical();
        !a.is_loopback()
            && (self
                .allowed
                .iter()
                .any(|&(n, p)| p == peer && n.contains(&a))
                || self
                    .policy
                    .iter()
                    .any(|&(s, p)| p == peer && s.net.contains(&a)))
    }
}

const PROTOS: [Proto; 3] = [Proto::Tcp, Proto::Udp, Proto::Other(1)];
const PORTS: [u16; 5] = [22, 53, 443, 450, 8080];

/// Addresses worth probing: every prefix's first and last address and
/// their neighbours, plus the random ones.
fn probes(nets: &[IpNet], random: &[IpAddr]) -> Vec<IpAddr> {
    let mut out = random.to_vec();
    for n in nets {
        match n {
            IpNet::V4(n) => {
                let (f, l) = (u32::from(n.network()), u32::from(n.broadcast()));
                for a in [f, l, f.wrapping_sub(1), l.wrapping_add(1)] {
                    out.push(IpAddr::V4(a.into()));
                }
            }
            IpNet::V6(n) => {
                let (f, l) = (u128::from(n.network()), u128::from(n.broadcast()));
                for a in [f, l, f.wrapping_sub(1), l.wrapping_add(1)] {
                    out.push(IpAddr::V6(a.into()));
                }
            }
        }
    }
    out
}

fn random_addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        (any::<bool>(), any::<u32>()).prop_map(|(c, x)| v4(c, x, 32).network()),
        (any::<bool>(), any::<u128>()).prop_map(|(c, x)| v6(c, x, 128).network()),
        Just(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        Just(IpAddr::V6(Ipv6Addr::LOCALHOST)),
    ]
}

fn check(
    peers: &[PeerSpec],
    flag_picks: &[(IpNet, usize)],
    exit_pick: Option<usize>,
    random: &[IpAddr],
) -> Result<(), TestCaseError> {
    let config = Config::parse(&config_text(peers), "gen.conf")
        .map_err(|e| TestCaseError::fail(e.to_string()))?
        .config;
    let mut naive = Naive {
        allowed: Vec::new(),
        policy: Vec::new(),
    };
    for (i, p) in peers.iter().enumerate() {
        for n in &p.allowed {
            naive.allowed.push((*n, i as u32));
        }
    }
    // Flags and the exit node name a peer through one of its AllowedIPs.
    let all_allowed: Vec<IpNet> = naive.allowed.iter().map(|&(n, _)| n).collect();
    let mut options = RoutingOptions::default();
    if !all_allowed.is_empty() {
        for &(net, pick) in flag_picks {
            let via = all_allowed[pick % all_allowed.len()].network();
            options.routes.push(RouteFlag { net, via });
            let peer = naive.allowed_peer(via).expect("via is in an AllowedIPs");
            naive.policy.push((
                RouteSpec {
                    net,
                    selector: Selector::ANY,
                },
                peer,
            ));
        }
        if let Some(pick) = exit_pick {
            let ip = all_allowed[pick % all_allowed.len()].network();
            options.exit_node = Some(ip);
            let peer = naive
                .allowed_peer(ip)
                .expect("exit node is in an AllowedIPs");
            for net in ["0.0.0.0/0", "::/0"] {
                let net: IpNet = net.parse().expect("net");
                naive.policy.push((
                    RouteSpec {
                        net,
                        selector: Selector::ANY,
                    },
                    peer,
                ));
            }
        }
    }
    for (i, p) in peers.iter().enumerate() {
        for r in &p.routes {
            naive.policy.push((*r, i as u32));
        }
    }
    let router = Router::new(&config, &options).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut nets = all_allowed.clone();
    nets.extend(naive.policy.iter().map(|(s, _)| s.net));
    let all = probes(&nets, random);
    for a in all {
        for proto in PROTOS {
            for port in PORTS {
                prop_assert_eq!(
                    router.lookup(a, proto, port),
                    naive.lookup(a, proto, port),
                    "dst {} {:?} {}\n{}",
                    a,
                    proto,
                    port,
                    config_text(peers)
                );
            }
        }
        for peer in 0..peers.len() as u32 {
            prop_assert_eq!(
                router.inbound_allowed(PeerId(peer), a),
                naive.inbound(peer, a),
                "src {} peer {}",
                a,
                peer
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn router_matches_linear_scan(
        peers in prop::collection::vec(peer_strategy(), 1..5),
        flag_picks in prop::collection::vec((net_strategy(), any::<usize>()), 0..4),
        exit_pick in proptest::option::of(any::<usize>()),
        random in prop::collection::vec(random_addr(), 0..40),
    ) {
        check(&peers, &flag_picks, exit_pick, &random)?;
    }
}

/// A larger seeded set: 3,000 routes over 8 peers, 20,000 probes.
#[test]
fn large_random_table_matches_linear_scan() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let mut peers = Vec::new();
    for _ in 0..8 {
        let mut p = PeerSpec {
            allowed: Vec::new(),
            routes: Vec::new(),
        };
        for _ in 0..100 {
            p.allowed.push(if rng.gen() {
                v4(rng.gen(), rng.gen(), rng.gen_range(8..=32))
            } else {
                v6(rng.gen(), rng.gen(), rng.gen_range(16..=128))
            });
        }
        for _ in 0..275 {
            let net = if rng.gen() {
                v4(rng.gen_bool(0.8), rng.gen(), rng.gen_range(0..=32))
            } else {
                v6(rng.gen_bool(0.8), rng.gen(), rng.gen_range(0..=128))
            };
            let proto = [ProtoFilter::Any, ProtoFilter::Tcp, ProtoFilter::Udp][rng.gen_range(0..3)];
            let ports = [Ports::All, Ports::One(443), Ports::Range(400, 500)][rng.gen_range(0..3)];
            p.routes.push(RouteSpec {
                net,
                selector: Selector { proto, ports },
            });
        }
        peers.push(p);
    }
    let random: Vec<IpAddr> = (0..2_000)
        .map(|_| {
            if rng.gen() {
                v4(rng.gen(), rng.gen(), 32).network()
            } else {
                v6(rng.gen(), rng.gen(), 128).network()
            }
        })
        .collect();
    if let Err(e) = check(&peers, &[], None, &random) {
        panic!("{e}");
    }
}

/// More than 64 peers: the inbound check walks prefix chains instead of
/// reading a peer bitmask; both agree with the linear scan.
#[test]
fn many_peers_match_linear_scan() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(70);
    let peers: Vec<PeerSpec> = (0..70)
        .map(|i| PeerSpec {
            allowed: vec![
                v4(true, i << 8, 24),
                v6(true, u128::from(i), 48),
                v4(rng.gen(), rng.gen(), rng.gen_range(4..=16)),
            ],
            routes: vec![RouteSpec {
                net: v4(rng.gen(), rng.gen(), rng.gen_range(0..=20)),
                selector: Selector::ANY,
            }],
        })
        .collect();
    let random: Vec<IpAddr> = (0..500)
        .map(|_| v4(rng.gen(), rng.gen(), 32).network())
        .collect();
    if let Err(e) = check(&peers, &[], Some(3), &random) {
        panic!("{e}");
    }
}
