//! The routing decision: which peer carries an outgoing packet, and whether
//! a decrypted incoming packet's source is one its peer may use. The rules
//! are listed in the crate documentation.

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

/// A prefix of the policy or source layer: its items in the layer's flat
/// storage, and the next shorter prefix of the same layer containing it.
#[derive(Debug, Clone, Copy)]
struct Node {
    first: u32,
    count: u32,
    parent: u32,
}

/// "None" in the `near` and `Node::parent` arrays.
const NONE: u32 = u32::MAX;

/// Cell tag: the route depends on protocol and port; walk the policy chain.
const TAG_SLOW: u32 = u32::MAX;
/// Cell tag: no policy route or AllowedIPs covers the interval.
const TAG_DIRECT: u32 = u32::MAX - 1;

/// Layers of the per-prefix `near` array.
const POLICY: usize = 0;
const ALLOWED: usize = 1;
const SOURCE: usize = 2;

/// The tables of one address family. One longest-prefix-match search over
/// the union of all prefixes answers all three questions: the union
/// prefix found records, per layer, the innermost prefix of that layer
/// containing it (for AllowedIPs directly the owning peer).
#[derive(Debug, Clone)]
struct Family<A> {
    /// All prefixes: policy routes, AllowedIPs, sources.
    lpm: Lpm<A>,
    /// Per union prefix: innermost policy node, AllowedIPs peer, innermost
    /// source node (each `NONE` if absent).
    near: Vec<[u32; 3]>,
    /// Policy prefixes.
    policy_nodes: Vec<Node>,
    /// Entries, per prefix sorted by specificity (desc) then priority.
    policy_entries: Vec<Entry>,
    /// Source prefixes (AllowedIPs and policy prefixes).
    source_nodes: Vec<Node>,
    /// Peers owning each source prefix, sorted per prefix.
    source_owners: Vec<u32>,
    /// When every peer id is below 64: per union prefix, the set of peers
    /// owning it or a prefix containing it, as bits, so the inbound check
    /// is one read instead of a walk. Empty otherwise.
    source_masks: Vec<u64>,
}

/// Flattens `(prefix, items)` groups: per group a node (parent unset) and
/// the items appended to one vector.
fn flatten<K, T>(groups: Vec<(K, Vec<T>)>) -> (Vec<K>, Vec<Node>, Vec<T>) {
    let mut keys = Vec::with_capacity(groups.len());
    let mut nodes = Vec::with_capacity(groups.len());
    let mut flat = Vec::new();
    for (key, items) in groups {
        keys.push(key);
        nodes.push(Node {
            first: u32::try_from(flat.len()).unwrap_or(NONE),
            count: u32::try_from(items.len()).unwrap_or(0),
            parent: NONE,
        });
        flat.extend(items);
    }
    (keys, nodes, flat)
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
    fn build(inputs: Inputs<A>) -> Self {
        let mut policy_groups: BTreeMap<(A, u8), Vec<Ranked>> = BTreeMap::new();
        let mut source_groups: BTreeMap<(A, u8), Vec<u32>> = BTreeMap::new();
        let mut allowed_owner: BTreeMap<(A, u8), u32> = BTreeMap::new();
        for &(prefix, selector, priority, peer) in &inputs.policy {
            policy_groups.entry(prefix).or_default().push((
                Reverse(selector.specificity()),
                priority,
                Entry { selector, peer },
            ));
            source_groups.entry(prefix).or_default().push(peer);
        }
        for &(prefix, peer) in &inputs.allowed {
            // The later peer takes a prefix listed twice, as in `wg`.
            allowed_owner.insert(prefix, peer);
            source_groups.entry(prefix).or_default().push(peer);
        }
        let (policy_keys, mut policy_nodes, policy_entries) = flatten(
            policy_groups
                .into_iter()
                .map(|(k, mut v)| {
                    v.sort_by_key(|&(spec, prio, _)| (spec, prio));
                    (k, v.into_iter().map(|(_, _, e)| e).collect())
                })
                .collect(),
        );
        let (source_keys, mut source_nodes, source_owners) = flatten(
            source_groups
                .into_iter()
                .map(|(k, mut v)| {
                    v.sort_unstable();
                    v.dedup();
                    (k, v)
                })
                .collect(),
        );

        // The union of all prefixes, each with its own entry per layer.
        let mut union: BTreeMap<(A, u8), [u32; 3]> = BTreeMap::new();
        for (i, k) in policy_keys.iter().enumerate() {
            union.entry(*k).or_insert([NONE; 3])[POLICY] = u32::try_from(i).unwrap_or(NONE);
        }
        for (k, peer) in &allowed_owner {
            union.entry(*k).or_insert([NONE; 3])[ALLOWED] = *peer;
        }
        for (i, k) in source_keys.iter().enumerate() {
            union.entry(*k).or_insert([NONE; 3])[SOURCE] = u32::try_from(i).unwrap_or(NONE);
        }
        let (prefixes, own): (Vec<(A, u8)>, Vec<[u32; 3]>) = union.into_iter().unzip();
        let lpm = Lpm::build(&prefixes);
        // Sorted by (start, length), a prefix comes after its parent, so
        // the parent's `near` is final when the child is visited.
        let mut near: Vec<[u32; 3]> = Vec::with_capacity(own.len());
        let masks_exact = source_owners.iter().all(|&p| p < 64);
        let mut source_masks: Vec<u64> = Vec::new();
        for (u, mine) in own.iter().enumerate() {
            let up = lpm
                .parent(u32::try_from(u).unwrap_or(NONE))
                .and_then(|p| near.get(p as usize).copied())
                .unwrap_or([NONE; 3]);
            for (layer, nodes) in [(POLICY, &mut policy_nodes), (SOURCE, &mut source_nodes)] {
                if let Some(node) = nodes.get_mut(mine[layer] as usize) {
                    node.parent = up[layer];
                }
            }
            let mut n = up;
            for layer in [POLICY, ALLOWED, SOURCE] {
                if mine[layer] != NONE {
                    n[layer] = mine[layer];
                }
            }
            near.push(n);
            if masks_exact {
                let parent_mask = lpm
                    .parent(u32::try_from(u).unwrap_or(NONE))
                    .and_then(|p| source_masks.get(p as usize).copied())
                    .unwrap_or(0);
                let own = source_nodes.get(mine[SOURCE] as usize).map_or(0, |node| {
                    source_owners[node.first as usize..(node.first + node.count) as usize]
                        .iter()
                        .fold(0u64, |m, &p| m | (1u64 << p))
                });
                source_masks.push(parent_mask | own);
            }
        }
        // Most intervals route every packet the same way: no policy route
        // (AllowedIPs or direct), or an innermost policy prefix whose
        // best entry matches everything. Their cells carry the answer.
        let mut lpm = lpm;
        lpm.set_tags(|u| {
            let n = u
                .and_then(|u| near.get(u as usize))
                .copied()
                .unwrap_or([NONE; 3]);
            match policy_nodes.get(n[POLICY] as usize) {
                None if n[ALLOWED] == NONE => TAG_DIRECT,
                None => n[ALLOWED],
                Some(node) => match policy_entries.get(node.first as usize) {
                    Some(e) if e.selector == Selector::ANY && e.peer < TAG_DIRECT => e.peer,
                    _ => TAG_SLOW,
                },
            }
        });
        Family {
            lpm,
            near,
            policy_nodes,
            policy_entries,
            source_nodes,
            source_owners,
            source_masks,
        }
    }

    /// The `near` record of the longest prefix containing `addr`.
    #[inline]
    fn near(&self, addr: A) -> [u32; 3] {
        self.lpm
            .innermost(addr)
            .and_then(|u| self.near.get(u as usize).copied())
            .unwrap_or([NONE; 3])
    }

    #[inline]
    fn lookup(&self, addr: A, proto: Proto, port: u16) -> Route {
        let (union, tag) = self.lpm.find(addr);
        self.finish(union, tag, proto, port)
    }

    /// The route for the interval found: its tag, or the policy chain.
    #[inline]
    fn finish(&self, union: u32, tag: u32, proto: Proto, port: u16) -> Route {
        match tag {
            TAG_DIRECT => return Route::Direct,
            TAG_SLOW => {}
            peer => return Route::Peer(PeerId(peer)),
        }
        let near = self.near.get(union as usize).copied().unwrap_or([NONE; 3]);
        let mut id = near[POLICY];
        while let Some(node) = self.policy_nodes.get(id as usize) {
            let entries =
                &self.policy_entries[node.first as usize..(node.first + node.count) as usize];
            if let Some(e) = entries.iter().find(|e| e.selector.matches(proto, port)) {
                return Route::Peer(PeerId(e.peer));
            }
            id = node.parent;
        }
        match near[ALLOWED] {
            NONE => Route::Direct,
            peer => Route::Peer(PeerId(peer)),
        }
    }

    #[inline]
    fn allowed_peer(&self, addr: A) -> Option<PeerId> {
        match self.near(addr)[ALLOWED] {
            NONE => None,
            peer => Some(PeerId(peer)),
        }
    }

    #[inline]
    fn inbound_allowed(&self, peer: u32, addr: A) -> bool {
        if !self.source_masks.is_empty() {
            return match self.lpm.innermost(addr) {
                Some(u) if peer < 64 => self
                    .source_masks
                    .get(u as usize)
                    .is_some_and(|m| m & (1u64 << peer) != 0),
                _ => false,
            };
        }
        let mut id = self.near(addr)[SOURCE];
        while let Some(node) = self.source_nodes.get(id as usize) {
            let owners =
                &self.source_owners[node.first as usize..(node.first + node.count) as usize];
            if owners.binary_search(&peer).is_ok() {
                return true;
            }
            id = node.parent;
        }
        false
    }
}

/// A destination as a table key, or always-direct (loopback).
#[derive(Debug, Clone, Copy)]
enum Key {
    V4(u32),
    V6(u128),
    Direct,
}

impl Key {
    #[inline]
    fn of(dst: IpAddr) -> Key {
        match dst.to_canonical() {
            IpAddr::V4(a) if a.is_loopback() => Key::Direct,
            IpAddr::V6(a) if a.is_loopback() => Key::Direct,
            IpAddr::V4(a) => Key::V4(u32::from(a)),
            IpAddr::V6(a) => Key::V6(u128::from(a)),
        }
    }
}

/// The routing table of one config plus command-line routing.
///
/// Build it once with [`Router::new`] (or [`Router::from_config`]); then
/// call [`Router::lookup`] for every outgoing packet or connection and
/// [`Router::inbound_allowed`] for every decrypted packet. The crate
/// documentation lists the exact rules.
#[derive(Debug, Clone)]
pub struct Router {
    v4: Family<u32>,
    v6: Family<u128>,
    policy: Vec<PolicyRoute>,
    peers: u32,
}

/// The `Route =` lines of a config as policy routes, in file order.
fn config_routes(config: &Config) -> Vec<PolicyRoute> {
    let mut out = Vec::new();
    for (i, p) in config.peers.iter().enumerate() {
        for r in &p.routes {
            out.push(PolicyRoute {
                spec: r.spec,
                peer: PeerId(u32::try_from(i).unwrap_or(u32::MAX)),
                origin: RouteOrigin::ConfigLine(r.line),
            });
        }
    }
    out
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
        Router::build(config, config_routes(config))
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
        policy.extend(config_routes(config));
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
        match Key::of(dst) {
            Key::V4(a) => self.v4.lookup(a, proto, port),
            Key::V6(a) => self.v6.lookup(a, proto, port),
            Key::Direct => Route::Direct,
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
