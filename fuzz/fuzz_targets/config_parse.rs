#![no_main]
//! Fuzzes the config parser and everything built from its output: any
//! text must either parse or give a one-line error; a parsed config must
//! build a router whose lookups and inbound checks never panic, and whose
//! routes print back to text that parses to the same routes.
use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use router::{Config, PeerId, Proto, RouteFlag, RouteSpec, Router, RoutingOptions};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The --route syntax shares the selector-free CIDR parsing.
    if let Ok(flag) = RouteFlag::parse(text) {
        assert_eq!(flag.net, flag.net.trunc());
    }
    if let Ok(spec) = RouteSpec::parse(text) {
        let again = RouteSpec::parse(&spec.to_string()).expect("printed route parses");
        assert_eq!(again, spec);
    }
    match Config::parse(text, "fuzz.conf") {
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "multi-line error: {msg}");
            assert!(msg.starts_with("fuzz.conf"));
        }
        Ok(parsed) => {
            let config = parsed.config;
            for w in &parsed.warnings {
                let _ = w.to_string();
            }
            for p in &config.peers {
                for r in &p.routes {
                    let again = RouteSpec::parse(&r.spec.to_string()).expect("route reparses");
                    assert_eq!(again, r.spec);
                }
            }
            // Command-line routing through the first AllowedIPs, if any.
            let first_allowed = config
                .peers
                .iter()
                .flat_map(|p| p.allowed_ips.iter())
                .next()
                .map(|n| n.network());
            let options = RoutingOptions {
                routes: Vec::new(),
                exit_node: first_allowed,
            };
            let router = Router::new(&config, &options).expect("exit node is in AllowedIPs");
            let mut probes: Vec<IpAddr> = vec!["127.0.0.1".parse().expect("ip"), "::".parse().expect("ip")];
            for p in &config.peers {
                for n in p.allowed_ips.iter().chain(p.routes.iter().map(|r| &r.spec.net)) {
                    probes.push(n.network());
                    probes.push(n.broadcast());
                }
            }
            for a in probes.iter().take(64) {
                for proto in [Proto::Tcp, Proto::Udp, Proto::Other(1)] {
                    let _ = router.lookup(*a, proto, 443);
                }
                for peer in 0..config.peers.len().min(8) {
                    let _ = router.inbound_allowed(PeerId(peer as u32), *a);
                }
            }
        }
    }
});
