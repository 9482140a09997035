//! What a config (plus the command line's overrides) means for sharing:
//! the facts two wrapguard instances must agree on to carry their
//! programs in one tunnel, and the one-line account of how two differ.
//!
//! Peers are keyed by public key, so reordering `[Peer]` sections is not a
//! difference. Secrets never appear: a preshared key is a fingerprint.

use router::{Config, RouteFlag};
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;

/// The command line's part of a tunnel's meaning.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--exit-node`.
    pub exit_node: Option<IpAddr>,
    /// `--route` values.
    pub routes: Vec<RouteFlag>,
    /// The test-only flags, as `name=value`, if any are set.
    pub test_flags: Vec<String>,
    /// `--tcp-congestion` or `TcpCongestion =`, if either is given (else
    /// the host's default, see [`crate::tunnel::congestion_for`]).
    pub tcp_congestion: Option<crate::tunnel::TcpCongestion>,
}

/// Our public key (base64), from the config's private key.
pub fn public_key(config: &Config) -> String {
    noise::PrivateKey::from_bytes(*config.interface.private_key.as_bytes())
        .public_key()
        .to_base64()
}

/// The facts of `config` with `overrides`, by name.
pub fn facts(config: &Config, overrides: &Overrides) -> BTreeMap<String, String> {
    let mut f = BTreeMap::new();
    let join = |v: Vec<String>| {
        if v.is_empty() {
            "(none)".to_string()
        } else {
            v.join(", ")
        }
    };
    let i = &config.interface;
    f.insert("PublicKey".into(), public_key(config));
    f.insert(
        "Address".into(),
        join(i.addresses.iter().map(|a| a.to_string()).collect()),
    );
    f.insert(
        "ListenPort".into(),
        i.listen_port
            .map(|p| p.to_string())
            .unwrap_or_else(|| "(any)".into()),
    );
    let mut dns: Vec<String> = i.dns.iter().map(|a| a.to_string()).collect();
    dns.extend(i.dns_search.iter().cloned());
    f.insert("DNS".into(), join(dns));
    f.insert("MTU".into(), i.mtu.to_string());
    for p in &config.peers {
        let key = p.public_key.to_string();
        let name = |what: &str| format!("[Peer {}…] {what}", &key[..8.min(key.len())]);
        f.insert(name("PublicKey"), key.clone());
        f.insert(
            name("AllowedIPs"),
            join(p.allowed_ips.iter().map(|a| a.to_string()).collect()),
        );
        f.insert(
            name("Endpoint"),
            p.endpoint
                .as_ref()
                .map(|e| e.to_string())
                .unwrap_or_else(|| "(none)".into()),
        );
        f.insert(
            name("PresharedKey"),
            match &p.preshared_key {
                None => "(none)".into(),
                Some(k) => {
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    k.as_bytes().hash(&mut h);
                    format!("set (fingerprint {:04x})", h.finish() & 0xffff)
                }
            },
        );
        f.insert(
            name("PersistentKeepalive"),
            p.persistent_keepalive
                .map(|k| k.to_string())
                .unwrap_or_else(|| "off".into()),
        );
        f.insert(
            name("Route"),
            join(p.routes.iter().map(|r| r.spec.to_string()).collect()),
        );
    }
    f.insert(
        "--exit-node".into(),
        overrides
            .exit_node
            .map(|a| a.to_string())
            .unwrap_or_else(|| "(none)".into()),
    );
    f.insert(
        "--route".into(),
        join(
            overrides
                .routes
                .iter()
                .map(|r| format!("{}:{}", r.net, r.via))
                .collect(),
        ),
    );
    f.insert(
        "TcpCongestion".into(),
        crate::tunnel::congestion_for(overrides.tcp_congestion)
            .0
            .name()
            .into(),
    );
    if !overrides.test_flags.is_empty() {
        f.insert("test flags".into(), overrides.test_flags.join(" "));
    }
    f
}

/// The differences between `ours` and the running tunnel's `theirs`, one
/// short clause each (`Address: 10.0.0.3/32 here, 10.0.0.2/32 in the running
/// tunnel`); empty when they agree.
pub fn differences(
    ours: &BTreeMap<String, String>,
    theirs: &BTreeMap<String, String>,
) -> Vec<String> {
    let none = "(absent)".to_string();
    let mut keys: Vec<&String> = ours.keys().chain(theirs.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out = Vec::new();
    let mut missing_peers = Vec::new();
    for k in keys {
        let (a, b) = (ours.get(k), theirs.get(k));
        if a == b {
            continue;
        }
        // A whole peer only on one side: one clause for it, not six.
        if k.starts_with("[Peer ") && (a.is_none() || b.is_none()) {
            if k.ends_with("] PublicKey") {
                let peer = a.or(b).unwrap_or(&none);
                missing_peers.push(if a.is_some() {
                    format!("peer {peer} only here")
                } else {
                    format!("peer {peer} only in the running tunnel")
                });
            }
            continue;
        }
        out.push(format!(
            "{k}: {} here, {} in the running tunnel",
            a.unwrap_or(&none),
            b.unwrap_or(&none)
        ));
    }
    out.extend(missing_peers);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";
    const PEER_1: &str = "5dFytSfpVUDLzIcGA9Ocxegnbu9D7IGYnxPGNlQ5AHQ=";
    const PEER_2: &str = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";

    fn parse(text: &str) -> Config {
        router::Config::parse(text, "t.conf")
            .expect("parses")
            .config
    }

    fn conf(address: &str, peers: &[(&str, &str)]) -> Config {
        let mut t = format!("[Interface]\nPrivateKey = {KEY_A}\nAddress = {address}\n");
        for (k, ips) in peers {
            t.push_str(&format!(
                "[Peer]\nPublicKey = {k}\nAllowedIPs = {ips}\nEndpoint = 127.0.0.1:51820\n"
            ));
        }
        parse(&t)
    }

    #[test]
    fn same_config_agrees_whatever_the_peer_order() {
        let o = Overrides::default();
        let a = facts(
            &conf(
                "10.0.0.2/32",
                &[(PEER_1, "10.0.0.1/32"), (PEER_2, "10.0.1.0/24")],
            ),
            &o,
        );
        let b = facts(
            &conf(
                "10.0.0.2/32",
                &[(PEER_2, "10.0.1.0/24"), (PEER_1, "10.0.0.1/32")],
            ),
            &o,
        );
        assert!(differences(&a, &b).is_empty());
        assert!(
            !a.values().any(|v| v.contains(KEY_A)),
            "no secret in the facts"
        );
    }

    #[test]
    fn differences_name_what_differs() {
        let o = Overrides::default();
        let a = facts(&conf("10.0.0.3/32", &[(PEER_1, "10.0.0.1/32")]), &o);
        let b = facts(
            &conf(
                "10.0.0.2/32",
                &[(PEER_1, "10.0.0.0/24"), (PEER_2, "10.0.1.0/24")],
            ),
            &o,
        );
        let d = differences(&a, &b);
        assert!(
            d.iter()
                .any(|l| l == "Address: 10.0.0.3/32 here, 10.0.0.2/32 in the running tunnel"),
            "{d:?}"
        );
        assert!(
            d.iter()
                .any(|l| l.contains("AllowedIPs: 10.0.0.1/32 here, 10.0.0.0/24")),
            "{d:?}"
        );
        assert!(
            d.iter()
                .any(|l| l == &format!("peer {PEER_2} only in the running tunnel")),
            "{d:?}"
        );
        let bbr = Overrides {
            tcp_congestion: Some(crate::tunnel::TcpCongestion::Bbr),
            ..Overrides::default()
        };
        let cubic = Overrides {
            tcp_congestion: Some(crate::tunnel::TcpCongestion::Cubic),
            ..Overrides::default()
        };
        let base = conf("10.0.0.3/32", &[(PEER_1, "10.0.0.1/32")]);
        assert_eq!(
            differences(&facts(&base, &bbr), &facts(&base, &cubic)),
            vec!["TcpCongestion: bbr here, cubic in the running tunnel".to_string()]
        );
        let routed = Overrides {
            exit_node: Some("10.0.0.1".parse().expect("ip")),
            ..Overrides::default()
        };
        let c = facts(&conf("10.0.0.3/32", &[(PEER_1, "10.0.0.1/32")]), &routed);
        let d = differences(&c, &a);
        assert_eq!(
            d,
            vec!["--exit-node: 10.0.0.1 here, (none) in the running tunnel".to_string()]
        );
    }
}
