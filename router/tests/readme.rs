//! The reference README's configuration and routing examples, and the
//! repository's example-wg0.conf, parse and route as documented.

use std::net::IpAddr;

use router::config::{Endpoint, WarningKind, DEFAULT_MTU};
use router::{Config, PeerId, Proto, Route, RouteFlag, Router, RoutingError, RoutingOptions};

const PRIV: &str = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";
const PUB_A: &str = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";
const PUB_B: &str = "TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn parse(text: &str) -> Config {
    match Config::parse(text, "wg0.conf") {
        Ok(p) => p.config,
        Err(e) => panic!("{e}"),
    }
}

const A: Route = Route::Peer(PeerId(0));
const B: Route = Route::Peer(PeerId(1));

#[test]
fn example_wg0_conf_parses_and_routes() {
    let parsed = Config::parse(include_str!("../../example-wg0.conf"), "example-wg0.conf")
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
    let c = parsed.config;
    assert_eq!(c.interface.addresses.len(), 2);
    assert_eq!(c.interface.listen_port, Some(51820));
    assert_eq!(c.interface.dns, vec![ip("10.150.0.1")]);
    assert_eq!(c.interface.dns_search, vec!["corp.example".to_string()]);
    assert_eq!(c.interface.mtu, 1420);
    assert_eq!(c.peers.len(), 1);
    let p = &c.peers[0];
    assert_eq!(
        p.endpoint,
        Some(Endpoint::Addr("192.0.2.1:51820".parse().expect("addr")))
    );
    assert_eq!(p.persistent_keepalive, Some(25));
    assert_eq!(p.routes.len(), 1);
    let r = Router::from_config(&c);
    assert_eq!(r.lookup(ip("192.168.10.5"), Proto::Tcp, 443), A);
    assert_eq!(r.lookup(ip("192.168.10.5"), Proto::Tcp, 80), Route::Direct);
    assert_eq!(r.lookup(ip("192.168.10.5"), Proto::Udp, 443), Route::Direct);
    assert_eq!(r.lookup(ip("10.150.0.7"), Proto::Udp, 53), A);
    assert_eq!(r.lookup(ip("fd00:150::9"), Proto::Tcp, 22), A);
    assert_eq!(r.lookup(ip("8.8.8.8"), Proto::Tcp, 443), Route::Direct);
}

/// README "Configuration": the standard wg-quick file.
#[test]
fn readme_configuration_example() {
    let c = parse(&format!(
        "[Interface]\nPrivateKey = {PRIV}\nAddress = 10.0.0.2/24\n\n\
         [Peer]\nPublicKey = {PUB_A}\nEndpoint = server.example.com:51820\n\
         AllowedIPs = 0.0.0.0/0\nPersistentKeepalive = 25\n"
    ));
    assert_eq!(
        c.interface.addresses,
        vec!["10.0.0.2/24".parse().expect("net")]
    );
    assert_eq!(c.interface.listen_port, None);
    assert_eq!(c.interface.mtu, DEFAULT_MTU);
    assert_eq!(
        c.peers[0].endpoint,
        Some(Endpoint::Host {
            host: "server.example.com".into(),
            port: 51820
        })
    );
    let r = Router::from_config(&c);
    assert_eq!(r.lookup(ip("93.184.216.34"), Proto::Tcp, 443), A);
    assert_eq!(r.lookup(ip("10.0.0.3"), Proto::Tcp, 8080), A);
    assert_eq!(r.lookup(ip("2606:4700::1"), Proto::Tcp, 443), Route::Direct);
    assert_eq!(r.lookup(ip("127.0.0.1"), Proto::Tcp, 80), Route::Direct);
    assert!(r.inbound_allowed(PeerId(0), ip("93.184.216.34")));
    assert!(!r.inbound_allowed(PeerId(0), ip("2606:4700::1")));
}

/// README "Configuration File Routing".
#[test]
fn readme_config_file_routing() {
    let c = parse(&format!(
        "[Interface]\nPrivateKey = {PRIV}\nAddress = 10.150.0.2/24\n\
         [Peer]\nPublicKey = {PUB_A}\nAllowedIPs = 10.150.0.0/24\n\
         # Route all traffic through this peer\nRoute = 0.0.0.0/0\n\
         # Or route specific subnets\nRoute = 192.168.0.0/16\nRoute = 172.16.0.0/12:tcp:443\n\
         [Peer]\nPublicKey = {PUB_B}\nAllowedIPs = 10.151.0.0/24\nRoute = 172.16.0.0/12\n"
    ));
    assert_eq!(c.peers[0].routes.len(), 3);
    let r = Router::from_config(&c);
    assert_eq!(r.lookup(ip("1.1.1.1"), Proto::Tcp, 443), A);
    assert_eq!(r.lookup(ip("192.168.3.4"), Proto::Udp, 53), A);
    // Same prefix: the tcp:443 selector is more specific than B's bare route.
    assert_eq!(r.lookup(ip("172.16.5.5"), Proto::Tcp, 443), A);
    assert_eq!(r.lookup(ip("172.16.5.5"), Proto::Tcp, 80), B);
    assert_eq!(r.lookup(ip("172.16.5.5"), Proto::Udp, 443), B);
    // Policy routes come before AllowedIPs: 0.0.0.0/0 (A) beats B's AllowedIPs.
    assert_eq!(r.lookup(ip("10.151.0.9"), Proto::Tcp, 22), A);
    assert_eq!(r.lookup(ip("10.150.0.9"), Proto::Tcp, 22), A);
    // Exit-node style replies from the internet are accepted from A only.
    assert!(r.inbound_allowed(PeerId(0), ip("1.1.1.1")));
    assert!(!r.inbound_allowed(PeerId(1), ip("1.1.1.1")));
    assert!(r.inbound_allowed(PeerId(1), ip("172.16.0.1")));
    assert!(r.inbound_allowed(PeerId(1), ip("10.151.0.200")));
}

fn two_peers() -> Config {
    parse(&format!(
        "[Interface]\nPrivateKey = {PRIV}\nAddress = 10.150.0.2/24, fd00:150::2/64\n\
         [Peer]\nPublicKey = {PUB_A}\nAllowedIPs = 10.150.0.3/32, fd00:150::3/128\n\
         [Peer]\nPublicKey = {PUB_B}\nAllowedIPs = 10.150.0.4/32, fd00:150::4/128\n"
    ))
}

fn flags(list: &[&str]) -> Vec<RouteFlag> {
    list.iter()
        .map(|s| RouteFlag::parse(s).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

/// README "Exit Node": `--exit-node=10.150.0.3`.
#[test]
fn readme_exit_node() {
    let c = two_peers();
    let opts = RoutingOptions {
        routes: Vec::new(),
        exit_node: Some(ip("10.150.0.3")),
    };
    let r = Router::new(&c, &opts).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.lookup(ip("93.184.216.34"), Proto::Tcp, 443), A);
    assert_eq!(r.lookup(ip("2606:4700::1"), Proto::Udp, 443), A);
    assert_eq!(r.lookup(ip("10.150.0.4"), Proto::Tcp, 80), A);
    assert_eq!(r.lookup(ip("::1"), Proto::Tcp, 80), Route::Direct);
    assert_eq!(r.lookup(ip("127.0.0.53"), Proto::Udp, 53), Route::Direct);
    assert_eq!(
        r.lookup(ip("::ffff:127.0.0.1"), Proto::Tcp, 80),
        Route::Direct
    );
    assert_eq!(r.lookup(ip("::ffff:93.184.216.34"), Proto::Tcp, 80), A);
    assert!(r.inbound_allowed(PeerId(0), ip("93.184.216.34")));
    assert!(r.inbound_allowed(PeerId(0), ip("2606:4700::1")));
    assert!(!r.inbound_allowed(PeerId(1), ip("93.184.216.34")));
    assert!(r.inbound_allowed(PeerId(1), ip("10.150.0.4")));
    assert!(!r.inbound_allowed(PeerId(0), ip("127.0.0.1")));
    assert_eq!(r.policy_routes().len(), 2);

    // An IPv6 exit node address picks the same peer.
    let opts = RoutingOptions {
        routes: Vec::new(),
        exit_node: Some(ip("fd00:150::4")),
    };
    let r = Router::new(&c, &opts).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.lookup(ip("93.184.216.34"), Proto::Tcp, 443), B);
}

/// README "Policy-Based Routing" and "Usage".
#[test]
fn readme_route_flags() {
    let c = two_peers();
    let opts = RoutingOptions {
        routes: flags(&["192.168.0.0/16:10.150.0.3", "172.16.0.0/12:10.150.0.4"]),
        exit_node: None,
    };
    let r = Router::new(&c, &opts).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.lookup(ip("192.168.1.1"), Proto::Tcp, 22), A);
    assert_eq!(r.lookup(ip("172.20.0.1"), Proto::Tcp, 443), B);
    assert_eq!(r.lookup(ip("8.8.8.8"), Proto::Tcp, 443), Route::Direct);
    assert_eq!(r.lookup(ip("10.150.0.4"), Proto::Tcp, 443), B);

    let opts = RoutingOptions {
        routes: flags(&["192.168.0.0/16:10.150.0.3", "0.0.0.0/0:10.150.0.4"]),
        exit_node: None,
    };
    let r = Router::new(&c, &opts).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.lookup(ip("192.168.1.1"), Proto::Tcp, 22), A);
    assert_eq!(r.lookup(ip("8.8.8.8"), Proto::Tcp, 443), B);
    assert_eq!(r.lookup(ip("2001:db8::1"), Proto::Tcp, 443), Route::Direct);

    // IPv6 on both sides.
    let opts = RoutingOptions {
        routes: flags(&["2001:db8::/32:fd00:150::3"]),
        exit_node: None,
    };
    let r = Router::new(&c, &opts).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.lookup(ip("2001:db8::1"), Proto::Tcp, 443), A);
}

#[test]
fn unknown_peer_addresses_are_errors() {
    let c = two_peers();
    let opts = RoutingOptions {
        routes: flags(&["192.168.0.0/16:10.150.0.9"]),
        exit_node: None,
    };
    let e = Router::new(&c, &opts).expect_err("error");
    assert!(matches!(e, RoutingError::RouteViaUnknownPeer { .. }));
    assert_eq!(
        e.to_string(),
        "--route=192.168.0.0/16:10.150.0.9: no [Peer] has 10.150.0.9 in its AllowedIPs; use an address inside one peer's AllowedIPs"
    );
    let opts = RoutingOptions {
        routes: Vec::new(),
        exit_node: Some(ip("fd00:150::9")),
    };
    let e = Router::new(&c, &opts).expect_err("error");
    assert_eq!(
        e.to_string(),
        "--exit-node=fd00:150::9: no [Peer] has fd00:150::9 in its AllowedIPs; use an address inside one peer's AllowedIPs"
    );
}

/// Command-line routes win ties against the config; --route before --exit-node.
#[test]
fn priority_order() {
    let c = parse(&format!(
        "[Interface]\nPrivateKey = {PRIV}\nAddress = 10.150.0.2/24\n\
         [Peer]\nPublicKey = {PUB_A}\nAllowedIPs = 10.150.0.3/32\nRoute = 0.0.0.0/0\n\
         Route = 10.0.0.0/8:tcp\nRoute = 10.0.0.0/8:tcp:1-1024\n\
         [Peer]\nPublicKey = {PUB_B}\nAllowedIPs = 10.150.0.4/32, 10.9.0.0/16\n\
         Route = 10.0.0.0/8:tcp:22\nRoute = 10.0.0.0/8:any:443\nRoute = 10.0.0.0/8:tcp\n"
    ));
    let r = Router::from_config(&c);
    assert_eq!(r.lookup(ip("10.1.1.1"), Proto::Tcp, 22), B); // single port
    assert_eq!(r.lookup(ip("10.1.1.1"), Proto::Tcp, 443), B); // any:443 beats tcp:1-1024
    assert_eq!(r.lookup(ip("10.1.1.1"), Proto::Tcp, 80), A); // range beats tcp
    assert_eq!(r.lookup(ip("10.1.1.1"), Proto::Tcp, 8080), A); // tcp tie: earlier line
    assert_eq!(r.lookup(ip("10.1.1.1"), Proto::Udp, 8080), A); // falls to 0.0.0.0/0
    assert_eq!(r.lookup(ip("10.1.1.1"), Proto::Other(1), 0), A);
    // Policy before AllowedIPs even when the AllowedIPs prefix is longer.
    assert_eq!(r.lookup(ip("10.9.1.1"), Proto::Udp, 53), A);

    let opts = RoutingOptions {
        routes: flags(&["0.0.0.0/0:10.150.0.4"]),
        exit_node: Some(ip("10.150.0.3")),
    };
    let r = Router::new(&c, &opts).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.lookup(ip("1.1.1.1"), Proto::Tcp, 80), B);
    assert_eq!(r.lookup(ip("2001:db8::1"), Proto::Tcp, 80), A);
}

#[test]
fn wg_quick_keys_warn_once_each() {
    let p = Config::parse(
        &format!(
            "[Interface]\nPrivateKey = {PRIV}\nAddress = 10.0.0.2/32\nTable = off\n\
             PostUp = iptables -A\npostup = ip rule add\nPreDown = x\nSaveConfig = true\n\
             FwMark = 0x1\nPreUp = y\nPostDown = z\n"
        ),
        "wg0.conf",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let keys: Vec<_> = p
        .warnings
        .iter()
        .map(|w| match w.kind {
            WarningKind::IgnoredKey { key } => key,
            _ => "?",
        })
        .collect();
    assert_eq!(
        keys,
        [
            "Table",
            "PostUp",
            "PreDown",
            "SaveConfig",
            "FwMark",
            "PreUp",
            "PostDown"
        ]
    );
    assert_eq!(
        p.warnings[1].to_string(),
        "wg0.conf:5: PostUp is a wg-quick setting that wrapguard ignores (it creates no interface, routes or hooks)"
    );
}

#[test]
fn lenient_syntax() {
    let c = parse(&format!(
        "\u{feff}# leading comment\r\n  [ interface ]  # trailing\r\n\
         privatekey={PRIV}#no space\r\n\
         ADDRESS = 10.0.0.2/24 , fd00::2/64\r\nAddress = 10.1.0.2\r\n\
         dns = 1.1.1.1 2606:4700::1111, corp.example, lan\r\nmtu = 1280\r\nListenPort = 0\r\n\
         [PEER]\r\npublickey = {PUB_A}\r\nallowedips =\r\nAllowedIPs = 10.0.0.1/24\r\n\
         AllowedIPs = fd00::1\r\npersistentkeepalive = off\r\nendpoint = [fd00::1]:51820\r\n\
         route = 10.9.0.0/16 , fd00:9::/48:udp:53\r\n"
    ));
    let i = &c.interface;
    assert_eq!(i.addresses.len(), 3);
    assert_eq!(i.dns, vec![ip("1.1.1.1"), ip("2606:4700::1111")]);
    assert_eq!(
        i.dns_search,
        vec!["corp.example".to_string(), "lan".to_string()]
    );
    assert_eq!(i.mtu, 1280);
    assert_eq!(i.listen_port, None);
    let p = &c.peers[0];
    assert_eq!(
        p.allowed_ips,
        vec![
            "10.0.0.0/24".parse().expect("net"),
            "fd00::1/128".parse().expect("net")
        ]
    );
    assert_eq!(p.persistent_keepalive, None);
    assert_eq!(p.routes.len(), 2);
    assert_eq!(p.routes[1].line, 16);
}

#[test]
fn overlapping_allowed_ips_warn_and_later_peer_wins() {
    let p = Config::parse(
        &format!(
            "[Interface]\nPrivateKey = {PRIV}\nAddress = 10.0.0.2/32\n\
             [Peer]\nPublicKey = {PUB_A}\nAllowedIPs = 10.0.0.0/24\n\
             [Peer]\nPublicKey = {PUB_B}\nAllowedIPs = 10.0.0.0/24\n"
        ),
        "wg0.conf",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        p.warnings[0].to_string(),
        "wg0.conf:9: AllowedIPs 10.0.0.0/24 is also given at line 6; this later peer receives its traffic"
    );
    let r = Router::from_config(&p.config);
    assert_eq!(r.lookup(ip("10.0.0.9"), Proto::Tcp, 1), B);
    assert!(r.inbound_allowed(PeerId(0), ip("10.0.0.9")));
    assert!(r.inbound_allowed(PeerId(1), ip("10.0.0.9")));
}

#[cfg(unix)]
#[test]
fn from_path_warns_about_readable_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("wrapguard-router-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("wg0.conf");
    std::fs::write(&path, include_str!("../../example-wg0.conf")).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let p = Config::from_path(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.warnings.len(), 1);
    assert_eq!(
        p.warnings[0].to_string(),
        format!(
            "{0}: other users can read this file (mode 0644) and it holds a private key; run chmod 600 {0}",
            path.display()
        )
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let p = Config::from_path(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(p.warnings.is_empty());
    let missing = dir.join("nope.conf");
    let e = Config::from_path(&missing).expect_err("error");
    assert!(e.to_string().starts_with("cannot read config "), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}
