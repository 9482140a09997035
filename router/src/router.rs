//! The routing decision: which peer carries an outgoing packet, and whether
//! a decrypted incoming packet's source is one its peer may use.
//!
//! # Outbound: [`Router::lookup`]
//!
//! 1. Loopback destinations (`127.0.0.0/8`, `::1`, and their IPv4-mapped
//!    forms) are always [`Route::Direct`].
//! 2. **Policy routes** — `--route` flags, `--exit-node`, `Route =` lines —
//!    are consulted first. Among those whose prefix contains the destination
//!    and whose selector matches the protocol and port: the longest prefix
//!    wins, then the more specific selector ([`Selector::specificity`]:
//!    single port > port range > protocol only > any), then the earlier
//!    route in *priority order*: the `--route` flags in command-line order,
//!    then `--exit-node`, then the `Route =` lines in file order. (The
//!    command line overrides the file.) A longer prefix whose selector does
//!    not match does not hide a shorter one that does.
//! 3. Otherwise **AllowedIPs** (cryptokey routing): the peer with the
//!    longest AllowedIPs prefix containing the destination. If two peers
//!    list the very same prefix, the later peer has it, as with `wg`.
//! 4. Otherwise [`Route::Direct`]: the host network.
//!
//! # Inbound: [`Router::inbound_allowed`]
//!
//! A packet decrypted from peer P is accepted if its source lies inside
//! one of P's AllowedIPs or one of P's policy-route prefixes (so replies
//! from the internet through an exit node are accepted). Loopback sources
//! are never accepted. Counting drops is the caller's job.
//!
//! The tables are built once per config; lookups do not allocate.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::config::Config;
use crate::route::{Proto, RouteFlag, RouteSpec, Selector};
use crate::table::{Bits, Lpm};

/// A peer: its position in [`Config::peers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u32);

impl PeerId {
    /// The index into [`Config::peers`].
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// Where an outgoing packet goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// Through the tunnel to this peer.
    Peer(PeerId),
    /// Over the host network, untouched.
    Direct,
}

/// Routing given on the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoutingOptions {
    /// `--route=CIDR:peerIP` flags, in command-line order.
    pub routes: Vec<RouteFlag>,
    /// `--exit-node=IP`: all IPv4 and IPv6 traffic through the peer whose
    /// AllowedIPs contain this address.
    pub exit_node: Option<IpAddr>,
}

/// Where a policy route came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteOrigin {
    /// The n-th `--route` flag (0-based).
    RouteFlag(usize),
    /// `--exit-node`.
    ExitNode,
    /// A `Route =` line of the config, with its line number.
    ConfigLine(usize),
}

impl fmt::Display for RouteOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteOrigin::RouteFlag(i) => write!(f, "--route #{}", i + 1),
            RouteOrigin::ExitNode => f.write_str("--exit-node"),
            RouteOrigin::ConfigLine(l) => write!(f, "Route = at line {l}"),
        }
    }
}

/// One policy route, resolved to its peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PolicyRoute {
    /// What it covers.
    pub spec: RouteSpec,
    /// The peer it sends to.
    pub peer: PeerId,
    /// Where it came from.
    pub origin: RouteOrigin,
}

/// Why the command-line routing cannot be applied to the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoutingError {
    /// A `--route` names a peer address that no peer's AllowedIPs contain.
    RouteViaUnknownPeer {
        /// The flag.
        flag: RouteFlag,
    },
    /// `--exit-node` names an address that no peer's AllowedIPs contain.
    ExitNodeUnknownPeer {
        /// The address given.
        ip: IpAddr,
    },
}

impl fmt::Display for RoutingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoutingError::RouteViaUnknownPeer { flag } => write!(
                f,
                "--route={}:{}: no [Peer] has {} in its AllowedIPs; use an address inside one peer's AllowedIPs",
                flag.net, flag.via, flag.via
            ),
            RoutingError::ExitNodeUnknownPeer { ip } => write!(
                f,
                "--exit-node={ip}: no [Peer] has {ip} in its AllowedIPs; use an address inside one peer's AllowedIPs"
            ),
        }
    }
}

impl std::error::Error for RoutingError {}

/// A policy entry at one prefix.
#[derive(Debug, Clone, Copy)]
struct Entry {
    selector: Selector,
    peer: u32,
}

/// A policy entry with its sort key: specificity (descending), priority.
type Ranked = (Reverse<u8>, u32, Entry);

/// The three tables of one address family.
#[derive(Debug, Clone)]
struct Family<A> {
    /// Policy-route prefixes.
    policy: Lpm<A>,
    /// Per policy prefix: `(first, count)` in `policy_entries`.
    policy_spans: Vec<(u32, u32)>,
    /// Entries, per prefix sorted by specificity (desc) then priority.
    policy_entries: Vec<Entry>,
    /// AllowedIPs prefixes.
    allowed: Lpm<A>,
    /// Per AllowedIPs prefix: the peer owning it.
    allowed_peer: Vec<u32>,
    /// AllowedIPs and policy prefixes, for the inbound check.
    source: Lpm<A>,
    /// Per source prefix: `(first, count)` in `source_owners`.
    source_spans: Vec<(u32, u32)>,
    /// Peers, per prefix sorted.
    source_owners: Vec<u32>,
}

/// Collects `(prefix, items)` groups into a table plus flat item storage.
fn grouped<A: Bits, T>(groups: BTreeMap<(A, u8), Vec<T>>) -> (Lpm<A>, Vec<(u32, u32)>, Vec<T>) {
    let mut prefixes = Vec::with_capacity(groups.len());
    let mut spans = Vec::with_capacity(groups.len());
    let mut flat = Vec::new();
    for (prefix, items) in groups {
        prefixes.push(prefix);
        let first = u32::try_from(flat.len()).unwrap_or(u32::MAX);
        let count = u32::try_from(items.len()).unwrap_or(0);
        spans.push((first, count));
        flat.extend(items);
    }
    (Lpm::build(&prefixes), spans, flat)
}

/// What one family is built from.
struct Inputs<A> {
    /// `(prefix, selector, priority, peer)`.
    policy: Vec<((A, u8), Selector, u32, u32)>,
    /// `(prefix, peer)` in config order.
    allowed: Vec<((A, u8), u32)>,
}

impl<A> Default for Inputs<A> {
    fn default() -> Self {
        Inputs {
            policy: Vec::new(),
            allowed: Vec::new(),
        }
    }
}

impl<A: Bits> Family<A> {
    fn build_allowed(allowed: &[((A, u8), u32)]) -> (Lpm<A>, Vec<u32>) {
        let mut owner: BTreeMap<(A, u8), u32> = BTreeMap::new();
        for &(prefix, peer) in allowed {
            // The later peer takes a prefix listed twice, as in `wg`.
            owner.insert(prefix, peer);
        }
        let (prefixes, peers): (Vec<_>, Vec<_>) = owner.into_iter().unzip();
        (Lpm::build(&prefixes), peers)
    }

    fn build(inputs: Inputs<A>) -> Self {
        let (allowed, allowed_peer) = Self::build_allowed(&inputs.allowed);

        let mut policy_groups: BTreeMap<(A, u8), Vec<Ranked>> = BTreeMap::new();
        let mut source_groups: BTreeMap<(A, u8), Vec<u32>> = BTreeMap::new();
        for &(prefix, selector, priority, peer) in &inputs.policy {
            policy_groups.entry(prefix).or_default().push((
                Reverse(selector.specificity()),
                priority,
                Entry { selector, peer },
            ));
            source_groups.entry(prefix).or_default().push(peer);
        }
        for &(prefix, peer) in &inputs.allowed {
            source_groups.entry(prefix).or_default().push(peer);
        }
        let policy_groups = policy_groups
            .into_iter()
            .map(|(k, mut v)| {
                v.sort_by_key(|&(spec, prio, _)| (spec, prio));
                (k, v.into_iter().map(|(_, _, e)| e).collect::<Vec<_>>())
            })
            .collect();
        let source_groups = source_groups
            .into_iter()
            .map(|(k, mut v)| {
                v.sort_unstable();
                v.dedup();
                (k, v)
            })
            .collect();
        let (policy, policy_spans, policy_entries) = grouped(policy_groups);
        let (source, source_spans, source_owners) = grouped(source_groups);
        Family {
            policy,
            policy_spans,
            policy_entries,
            allowed,
            allowed_peer,
            source,
            source_spans,
            source_owners,
        }
    }

    #[inline]
    fn lookup(&self, addr: A, proto: Proto, port: u16) -> Route {
        for node in self.policy.chain(addr) {
            let (first, count) = self.policy_spans[node as usize];
            let entries = &self.policy_entries[first as usize..(first + count) as usize];
            if let Some(e) = entries.iter().find(|e| e.selector.matches(proto, port)) {
                return Route::Peer(PeerId(e.peer));
            }
        }
        self.allowed_peer(addr).map_or(Route::Direct, Route::Peer)
    }

    #[inline]
    fn allowed_peer(&self, addr: A) -> Option<PeerId> {
        self.allowed
            .innermost(addr)
            .map(|node| PeerId(self.allowed_peer[node as usize]))
    }

    #[inline]
    fn inbound_allowed(&self, peer: u32, addr: A) -> bool {
        self.source.chain(addr).any(|node| {
            let (first, count) = self.source_spans[node as usize];
            self.source_owners[first as usize..(first + count) as usize]
                .binary_search(&peer)
                .is_ok()
        })
    }
}

/// The routing table of one config plus command-line routing.
///
/// Build it once with [`Router::new`] (or [`Router::from_config`]); then
/// call [`Router::lookup`] for every outgoing packet or connection and
/// [`Router::inbound_allowed`] for every decrypted packet. See the module
/// documentation of the crate's `router` for the exact rules.
#[derive(Debug, Clone)]
pub struct Router {
    v4: Family<u32>,
    v6: Family<u128>,
    policy: Vec<PolicyRoute>,
    peers: u32,
}

fn v4_key(n: ipnet::Ipv4Net) -> (u32, u8) {
    (u32::from(n.network()), n.prefix_len())
}

fn v6_key(n: ipnet::Ipv6Net) -> (u128, u8) {
    (u128::from(n.network()), n.prefix_len())
}

impl Router {
    /// The table for a config with no command-line routing.
    pub fn from_config(config: &Config) -> Router {
        match Router::new(config, &RoutingOptions::default()) {
            Ok(r) => r,
            // Only command-line routing can fail, and there is none.
            Err(_) => Router::build(config, Vec::new()),
        }
    }

    /// The table for a config plus `--route` / `--exit-node` options.
    /// Fails if a flag's peer address is in no peer's AllowedIPs.
    pub fn new(config: &Config, options: &RoutingOptions) -> Result<Router, RoutingError> {
        // Flags name peers by an address inside their AllowedIPs; resolve
        // them with the cryptokey table alone.
        let cryptokey = Router::build(config, Vec::new());
        let mut policy = Vec::new();
        for (i, flag) in options.routes.iter().enumerate() {
            let peer = cryptokey
                .allowed_peer(flag.via)
                .ok_or(RoutingError::RouteViaUnknownPeer { flag: *flag })?;
            policy.push(PolicyRoute {
                spec: RouteSpec {
                    net: flag.net,
                    selector: Selector::ANY,
                },
                peer,
                origin: RouteOrigin::RouteFlag(i),
            });
        }
        if let Some(ip) = options.exit_node {
            let peer = cryptokey
                .allowed_peer(ip)
                .ok_or(RoutingError::ExitNodeUnknownPeer { ip })?;
            for net in [
                IpNet::V4(ipnet::Ipv4Net::default()),
                IpNet::V6(ipnet::Ipv6Net::default()),
            ] {
                policy.push(PolicyRoute {
                    spec: RouteSpec {
                        net,
                        selector: Selector::ANY,
                    },
                    peer,
                    origin: RouteOrigin::ExitNode,
                });
            }
        }
        for (i, p) in config.peers.iter().enumerate() {
            for r in &p.routes {
                policy.push(PolicyRoute {
                    spec: r.spec,
                    peer: PeerId(u32::try_from(i).unwrap_or(u32::MAX)),
                    origin: RouteOrigin::ConfigLine(r.line),
                });
            }
        }
        Ok(Router::build(config, policy))
    }

    /// Builds the tables from AllowedIPs and resolved policy routes (in
    /// priority order).
    fn build(config: &Config, policy: Vec<PolicyRoute>) -> Router {
        let mut v4 = Inputs::default();
        let mut v6 = Inputs::default();
        for (i, p) in config.peers.iter().enumerate() {
            let peer = u32::try_from(i).unwrap_or(u32::MAX);
            for net in &p.allowed_ips {
                match net.trunc() {
                    IpNet::V4(n) => v4.allowed.push((v4_key(n), peer)),
                    IpNet::V6(n) => v6.allowed.push((v6_key(n), peer)),
                }
            }
        }
        for (priority, r) in policy.iter().enumerate() {
            let priority = u32::try_from(priority).unwrap_or(u32::MAX);
            let (selector, peer) = (r.spec.selector, r.peer.0);
            match r.spec.net.trunc() {
                IpNet::V4(n) => v4.policy.push((v4_key(n), selector, priority, peer)),
                IpNet::V6(n) => v6.policy.push((v6_key(n), selector, priority, peer)),
            }
        }
        Router {
            v4: Family::build(v4),
            v6: Family::build(v6),
            policy,
            peers: u32::try_from(config.peers.len()).unwrap_or(u32::MAX),
        }
    }

    /// Where a packet to `dst` with this protocol and destination port goes
    /// (`port` is ignored for [`Proto::Other`]). Never allocates.
    #[inline]
    pub fn lookup(&self, dst: IpAddr, proto: Proto, port: u16) -> Route {
        match dst.to_canonical() {
            IpAddr::V4(a) if a.is_loopback() => Route::Direct,
            IpAddr::V6(a) if a.is_loopback() => Route::Direct,
            IpAddr::V4(a) => self.v4.lookup(u32::from(a), proto, port),
            IpAddr::V6(a) => self.v6.lookup(u128::from(a), proto, port),
        }
    }

    /// Whether a packet decrypted from `peer` may carry source `src`: it
    /// must lie in one of the peer's AllowedIPs or policy-route prefixes.
    /// Never allocates.
    #[inline]
    pub fn inbound_allowed(&self, peer: PeerId, src: IpAddr) -> bool {
        match src.to_canonical() {
            IpAddr::V4(a) if a.is_loopback() => false,
            IpAddr::V6(a) if a.is_loopback() => false,
            IpAddr::V4(a) => self.v4.inbound_allowed(peer.0, u32::from(a)),
            IpAddr::V6(a) => self.v6.inbound_allowed(peer.0, u128::from(a)),
        }
    }

    /// Cryptokey routing alone: the peer with the longest AllowedIPs prefix
    /// containing `ip`. This is how `--route` and `--exit-node` name peers.
    pub fn allowed_peer(&self, ip: IpAddr) -> Option<PeerId> {
        match ip.to_canonical() {
            IpAddr::V4(a) => self.v4.allowed_peer(u32::from(a)),
            IpAddr::V6(a) => self.v6.allowed_peer(u128::from(a)),
        }
    }

    /// All policy routes in priority order (for logging at start-up).
    pub fn policy_routes(&self) -> &[PolicyRoute] {
        &self.policy
    }

    /// Number of peers the table was built for.
    pub fn peer_count(&self) -> usize {
        self.peers as usize
    }
}
