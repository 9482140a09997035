//! Routing lookups per second with 10, 1,000 and 100,000 policy routes,
//! IPv4 and IPv6 (issue target: < 50 ns per lookup at 100,000 routes).
//!
//! Routes are random prefixes (IPv4 /8–/32, IPv6 /16–/64 in 2000::/3)
//! spread over 16 peers, one in ten with a `tcp:443` selector, plus one
//! AllowedIPs prefix per peer. Half of the 2^20 distinct probe addresses
//! fall inside a route, half are random; a third are TCP port 443. Each
//! iteration does 1,024 lookups, so the reported time per element is the
//! time per lookup. (The probe addresses are read
//! from memory, not passed through `black_box`, which would store each
//! 17-byte `IpAddr` to the stack and stall on reloading it.)
//!
//! `cargo bench -p wrapguard-benches --bench routing`

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use criterion::{criterion_main, BenchmarkId, Criterion, Throughput};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use router::config::{ConfigRoute, Interface, Peer, PrivateKey, PublicKey};
use router::{Config, PeerId, Ports, Proto, ProtoFilter, RouteSpec, Router, Selector};

const PEERS: usize = 16;
const BATCH: usize = 1024;
/// Distinct probes: enough that lookups at 100,000 routes miss the caches
/// as they would with many flows, instead of re-reading a warm working set.
const PROBES: usize = 1 << 20;

#[derive(Clone, Copy)]
enum Family {
    V4,
    V6,
}

fn random_net(rng: &mut StdRng, family: Family) -> IpNet {
    match family {
        Family::V4 => {
            let len = rng.gen_range(8..=32);
            IpNet::V4(Ipv4Net::new(Ipv4Addr::from(rng.gen::<u32>()), len).expect("len <= 32"))
                .trunc()
        }
        Family::V6 => {
            let len = rng.gen_range(16..=64);
            // Global unicast space, 2000::/3.
            let addr = (rng.gen::<u128>() >> 3) | (1u128 << 125);
            IpNet::V6(Ipv6Net::new(Ipv6Addr::from(addr), len).expect("len <= 128")).trunc()
        }
    }
}

fn random_inside(rng: &mut StdRng, net: IpNet) -> IpAddr {
    match net {
        IpNet::V4(n) => {
            let host = rng.gen::<u32>() & u32::from(n.hostmask());
            IpAddr::V4(Ipv4Addr::from(u32::from(n.network()) | host))
        }
        IpNet::V6(n) => {
            let host = rng.gen::<u128>() & u128::from(n.hostmask());
            IpAddr::V6(Ipv6Addr::from(u128::from(n.network()) | host))
        }
    }
}

fn setup(routes: usize, family: Family) -> (Router, Vec<(IpAddr, Proto, u16)>) {
    let mut rng = StdRng::seed_from_u64(routes as u64);
    let mut peers: Vec<Peer> = (0..PEERS)
        .map(|i| Peer {
            public_key: PublicKey::from_bytes([i as u8 + 1; 32]),
            preshared_key: None,
            endpoint: None,
            allowed_ips: vec![match family {
                Family::V4 => format!("10.150.{i}.0/24"),
                Family::V6 => format!("fd00:150:{i:x}::/48"),
            }
            .parse()
            .expect("net")],
            persistent_keepalive: None,
            routes: Vec::new(),
            line: 0,
        })
        .collect();
    let mut nets = Vec::with_capacity(routes);
    for i in 0..routes {
        let net = random_net(&mut rng, family);
        let selector = if i % 10 == 0 {
            Selector {
                proto: ProtoFilter::Tcp,
                ports: Ports::One(443),
            }
        } else {
            Selector::ANY
        };
        peers[i % PEERS].routes.push(ConfigRoute {
            spec: RouteSpec { net, selector },
            line: i + 1,
        });
        nets.push(net);
    }
    let config = Config {
        interface: Interface {
            private_key: PrivateKey::from_bytes([7; 32]),
            addresses: vec!["10.150.255.1/32".parse().expect("net")],
            listen_port: None,
            dns: Vec::new(),
            dns_search: Vec::new(),
            mtu: 1420,
            line: 0,
        },
        peers,
    };
    let router = Router::from_config(&config);
    let probes = (0..PROBES)
        .map(|i| {
            let addr = if i % 2 == 0 {
                let net = nets[rng.gen_range(0..nets.len())];
                random_inside(&mut rng, net)
            } else {
                random_net(&mut rng, family).network()
            };
            let (proto, port) = if i % 3 == 0 {
                (Proto::Tcp, 443)
            } else {
                (Proto::Udp, 53)
            };
            (addr, proto, port)
        })
        .collect();
    (router, probes)
}

fn lookups(c: &mut Criterion) {
    let mut group = c.benchmark_group("routing/lookup");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(30);
    group.warm_up_time(std::time::Duration::from_secs(1));
    group.measurement_time(std::time::Duration::from_secs(3));
    for (name, family) in [("v4", Family::V4), ("v6", Family::V6)] {
        for routes in [10usize, 1_000, 100_000] {
            let (router, probes) = setup(routes, family);
            let mut offset = 0usize;
            group.bench_function(BenchmarkId::new(name, routes), |b| {
                b.iter(|| {
                    offset = (offset + BATCH) % probes.len();
                    let mut direct = 0u32;
                    for &(dst, proto, port) in &probes[offset..offset + BATCH] {
                        if black_box(router.lookup(dst, proto, port)) == router::Route::Direct {
                            direct += 1;
                        }
                    }
                    direct
                });
            });
        }
    }
    group.finish();

    let mut group = c.benchmark_group("routing/inbound");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(30);
    group.warm_up_time(std::time::Duration::from_secs(1));
    group.measurement_time(std::time::Duration::from_secs(3));
    for (name, family) in [("v4", Family::V4), ("v6", Family::V6)] {
        let (router, probes) = setup(100_000, family);
        let mut offset = 0usize;
        group.bench_function(BenchmarkId::new(name, 100_000), |b| {
            b.iter(|| {
                offset = (offset + BATCH) % probes.len();
                let mut ok = 0u32;
                for (i, &(src, _, _)) in probes[offset..offset + BATCH].iter().enumerate() {
                    if black_box(router.inbound_allowed(PeerId((i % PEERS) as u32), src)) {
                        ok += 1;
                    }
                }
                ok
            });
        });
    }
    group.finish();
}

// criterion_group! generates an undocumented public function.
#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::lookups);
}
criterion_main!(group::benches);
