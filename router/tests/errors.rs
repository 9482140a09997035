//! Snapshot of every config error message (exact text), and proof that a
//! private key never shows up in one.

use proptest::prelude::*;
use router::config::{ConfigErrorKind, KeyHint, Section};
use router::Config;

const PRIV: &str = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";
const PUB_A: &str = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";

/// The error message for `text` parsed as `wg0.conf`.
fn err(text: &str) -> String {
    match Config::parse(text, "wg0.conf") {
        Ok(_) => panic!("parsed without error:\n{text}"),
        Err(e) => e.to_string(),
    }
}

/// A valid interface (lines 1-3) followed by `rest` from line 4.
fn with_interface(rest: &str) -> String {
    format!("[Interface]\nPrivateKey = {PRIV}\nAddress = 10.0.0.2/32\n{rest}")
}

/// A valid interface and a peer header at line 4, `rest` from line 5.
fn with_peer(rest: &str) -> String {
    with_interface(&format!("[Peer]\nPublicKey = {PUB_A}\n{rest}"))
}

#[test]
fn structure_errors() {
    assert_eq!(
        err(&format!("PrivateKey = {PRIV}\n")),
        "wg0.conf:1: \"PrivateKey\" is outside any section; put [Interface] or [Peer] above it"
    );
    assert_eq!(
        err("[Peers]\n"),
        "wg0.conf:1: unknown section \"[Peers]\"; did you mean \"[Peer]\"?"
    );
    assert_eq!(
        err("# c\n[interfaces]\n"),
        "wg0.conf:2: unknown section \"[interfaces]\"; did you mean \"[Interface]\"?"
    );
    assert_eq!(
        err("[WireGuard]\n"),
        "wg0.conf:1: unknown section \"[WireGuard]\"; expected [Interface] or [Peer]"
    );
    assert_eq!(
        err("[Interface\n"),
        "wg0.conf:1: malformed section header \"[Interface\"; expected [Interface] or [Peer]"
    );
    assert_eq!(
        err(&with_peer("Endpoint 192.0.2.1:51820\n")),
        "wg0.conf:6: expected \"Key = value\", found \"Endpoint 192.0.2.1:51820\""
    );
    assert_eq!(
        err(&with_peer("= 10.0.0.0/8\n")),
        "wg0.conf:6: expected \"Key = value\", found \"= 10.0.0.0/8\""
    );
    assert_eq!(
        err(&with_interface("[Peer]\nPublicKey = x\n[Interface]\n")),
        "wg0.conf:5: invalid PublicKey \"x\": it has 1 character instead of 44; expected 44 characters of base64 as printed by wg pubkey"
    );
    assert_eq!(
        err(&with_interface("\n[Interface]\n")),
        "wg0.conf:5: second [Interface] section (the first is at line 1); a config has exactly one"
    );
    assert_eq!(
        err(""),
        "wg0.conf: no [Interface] section; add one with PrivateKey and Address"
    );
    assert_eq!(
        err(&format!("[Peer]\nPublicKey = {PUB_A}\n")),
        "wg0.conf: no [Interface] section; add one with PrivateKey and Address"
    );
}

#[test]
fn key_errors() {
    // The issue's own example.
    let text = with_peer("Endpoint = 192.0.2.1:51820\nAllowedIP = 10.0.0.0/8\n");
    assert_eq!(
        err(&text),
        "wg0.conf:7: unknown key \"AllowedIP\" in [Peer]; did you mean \"AllowedIPs\"?"
    );
    assert_eq!(
        err(&with_peer("Address = 10.0.0.3/32\n")),
        "wg0.conf:6: unknown key \"Address\" in [Peer]; \"Address\" belongs in [Interface]"
    );
    assert_eq!(
        err(&with_peer("PostUp = echo hi\n")),
        "wg0.conf:6: unknown key \"PostUp\" in [Peer]; \"PostUp\" belongs in [Interface]"
    );
    assert_eq!(
        err(&with_interface("Endpoint = 192.0.2.1:51820\n")),
        "wg0.conf:4: unknown key \"Endpoint\" in [Interface]; \"Endpoint\" belongs in [Peer]"
    );
    assert_eq!(
        err(&with_interface("ListenPrt = 51820\n")),
        "wg0.conf:4: unknown key \"ListenPrt\" in [Interface]; did you mean \"ListenPort\"?"
    );
    assert_eq!(
        err(&with_interface("Colour = blue\n")),
        "wg0.conf:4: unknown key \"Colour\" in [Interface]; expected PrivateKey, Address, ListenPort, DNS or MTU"
    );
    assert_eq!(
        err(&with_peer("Weight = 3\n")),
        "wg0.conf:6: unknown key \"Weight\" in [Peer]; expected PublicKey, PresharedKey, Endpoint, AllowedIPs, PersistentKeepalive or Route"
    );
    assert_eq!(
        err(&with_interface("ListenPort = 1\nlistenport = 2\n")),
        "wg0.conf:5: ListenPort is given twice in [Interface] (first at line 4); keep one"
    );
    assert_eq!(
        err(&with_peer(
            "Endpoint = 192.0.2.1:1\nEndpoint = 192.0.2.2:1\n"
        )),
        "wg0.conf:7: Endpoint is given twice in [Peer] (first at line 6); keep one"
    );
}

#[test]
fn missing_keys() {
    assert_eq!(
        err("[Interface]\nAddress = 10.0.0.2/32\n"),
        "wg0.conf:1: [Interface] has no PrivateKey; add \"PrivateKey = <output of wg genkey>\""
    );
    assert_eq!(
        err(&format!("\n[Interface]\nPrivateKey = {PRIV}\n")),
        "wg0.conf:2: [Interface] has no Address; add \"Address = 10.0.0.2/32\" (the tunnel address this side uses)"
    );
    assert_eq!(
        err(&with_interface("[Peer]\nAllowedIPs = 10.0.0.0/8\n")),
        "wg0.conf:4: [Peer] has no PublicKey; add \"PublicKey = <the peer's key, from wg pubkey>\""
    );
    assert_eq!(
        err(&with_peer(&format!("[Peer]\nPublicKey = {PUB_A}\n"))),
        "wg0.conf:6: this [Peer] has the same PublicKey as the [Peer] at line 4; merge the two sections"
    );
}

#[test]
fn value_errors() {
    let i = |line: &str| err(&with_interface(&format!("{line}\n")));
    let p = |line: &str| err(&with_peer(&format!("{line}\n")));
    assert_eq!(
        err("[Interface]\nPrivateKey = tooshort\n"),
        "wg0.conf:2: invalid PrivateKey (value not shown): it has 8 characters instead of 44; expected 44 characters of base64 as printed by wg genkey"
    );
    assert_eq!(
        err("[Interface]\nPrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBm!=\n"),
        "wg0.conf:2: invalid PrivateKey (value not shown): it is not base64 of 32 bytes; expected 44 characters of base64 as printed by wg genkey"
    );
    assert_eq!(
        p("PresharedKey = abc"),
        "wg0.conf:6: invalid PresharedKey (value not shown): it has 3 characters instead of 44; expected 44 characters of base64 as printed by wg genpsk"
    );
    assert_eq!(
        i("Address = 10.0.0.2/32, 10.0.0.300"),
        "wg0.conf:4: invalid Address \"10.0.0.300\"; expected an IP address with an optional prefix length, like 10.0.0.2/32 or fd00::2/128"
    );
    assert_eq!(
        i("Address ="),
        "wg0.conf:4: invalid Address \"\"; expected an IP address with an optional prefix length, like 10.0.0.2/32 or fd00::2/128"
    );
    assert_eq!(
        i("ListenPort = 70000"),
        "wg0.conf:4: invalid ListenPort \"70000\"; expected a UDP port number 0-65535"
    );
    assert_eq!(
        i("DNS = 10.0.0.1, not/a/domain"),
        "wg0.conf:4: invalid DNS \"not/a/domain\"; expected an IP address or a search domain, like 10.0.0.1 or corp.example"
    );
    assert_eq!(
        i("MTU = 9"),
        "wg0.conf:4: invalid MTU \"9\"; expected a number from 576 to 65535"
    );
    assert_eq!(
        p("Endpoint = fd00::1:51820"),
        "wg0.conf:6: invalid Endpoint \"fd00::1:51820\"; expected host:port, [IPv6]:port or hostname:port, like 192.0.2.1:51820 or vpn.example.com:51820"
    );
    assert_eq!(
        p("Endpoint = vpn.example.com"),
        "wg0.conf:6: invalid Endpoint \"vpn.example.com\"; expected host:port, [IPv6]:port or hostname:port, like 192.0.2.1:51820 or vpn.example.com:51820"
    );
    assert_eq!(
        p("AllowedIPs = 10.0.0.0/8, 10.0.0.0/33"),
        "wg0.conf:6: invalid AllowedIPs \"10.0.0.0/33\"; expected a CIDR like 10.0.0.0/24 or fd00::/64"
    );
    assert_eq!(
        p("PersistentKeepalive = sometimes"),
        "wg0.conf:6: invalid PersistentKeepalive \"sometimes\"; expected a number of seconds 0-65535, or off"
    );
}

#[test]
fn route_errors() {
    let p = |line: &str| err(&with_peer(&format!("{line}\n")));
    assert_eq!(
        p("Route = 172.16.0.0/12:http:443"),
        "wg0.conf:6: invalid Route \"172.16.0.0/12:http:443\": unknown protocol \"http\"; expected tcp, udp or any"
    );
    assert_eq!(
        p("Route = 172.16.0.0/12:tcp:0"),
        "wg0.conf:6: invalid Route \"172.16.0.0/12:tcp:0\": \"0\" is not a port; expected a port 1-65535 or a range like 8000-8999"
    );
    assert_eq!(
        p("Route = fd00::/64:udp:9000-8000"),
        "wg0.conf:6: invalid Route \"fd00::/64:udp:9000-8000\": port range 9000-8000 is reversed; write 8000-9000"
    );
    assert_eq!(
        p("Route = 172.16.0.0/40"),
        "wg0.conf:6: invalid Route \"172.16.0.0/40\": \"172.16.0.0/40\" is not a CIDR; expected an address with a prefix length like 192.168.0.0/16 or fd00::/64"
    );
    assert_eq!(
        p("Route = 10.0.0.0/8:tcp:1:2"),
        "wg0.conf:6: invalid Route \"10.0.0.0/8:tcp:1:2\": unexpected \"2\" after the ports; expected CIDR[:proto[:port|port-port]]"
    );
    assert_eq!(
        p("Route ="),
        "wg0.conf:6: invalid Route \"\": it is empty; expected CIDR[:proto[:port|port-port]]"
    );
}

#[test]
fn error_kinds_are_typed() {
    let e = Config::parse(&with_peer("AllowedIP = 10.0.0.0/8\n"), "x.conf").expect_err("error");
    assert_eq!(e.file, "x.conf");
    assert_eq!(e.line, 6);
    assert_eq!(
        e.kind,
        ConfigErrorKind::UnknownKey {
            key: "AllowedIP".into(),
            section: Section::Peer,
            hint: Some(KeyHint::DidYouMean("AllowedIPs")),
        }
    );
}

#[test]
fn private_key_is_never_echoed() {
    let cases = [
        format!("PrivateKey = {PRIV}\n"),
        format!("[Interface]\nPrivateKey {PRIV}\n"),
        format!("[Interface]\n{PRIV}\n"),
        format!("[Interface]\nPrivatKey = {PRIV}\n"),
        format!("[Interface]\n{PRIV} = 1\n"),
        format!("[{PRIV}]\n"),
        format!("[Interface\nPrivateKey = {PRIV}\n"),
        format!("[Interface]\nPrivateKey = {PRIV}x\n"),
        format!("[Interface]\nPrivateKey = {PRIV}\nPrivateKey = {PRIV}\n"),
        format!("[Interface]\nPrivateKey = {PRIV}\n[Peer]\nPresharedKey = {PRIV}x\n"),
        format!("[Interface]\nPrivateKey = {PRIV}\n[Peer]\nRoute = {PRIV}\n"),
        format!("[Interface]\nPrivateKey = {PRIV}\nDNS = {PRIV}\n"),
        format!("[Interface]\nAddress = {PRIV}\n"),
        format!("[Interface]\nPrivateKey=\"{PRIV}\"\n"),
    ];
    for text in &cases {
        let msg = err(text);
        assert!(!msg.contains(&PRIV[..12]), "{msg}");
        assert!(!msg.contains(&PRIV[30..]), "{msg}");
    }
}

proptest! {
    /// One random edit anywhere in a valid config never makes an error
    /// message show the private key.
    #[test]
    fn mutated_configs_never_echo_the_key(
        pos in 0usize..400,
        len in 0usize..4,
        insert in "[ -~\n]{0,3}",
    ) {
        let base = format!(
            "[Interface]\nPrivateKey = {PRIV}\nAddress = 10.0.0.2/32\n\
             [Peer]\nPublicKey = {PUB_A}\nAllowedIPs = 10.0.0.0/8\nRoute = 0.0.0.0/0:tcp:443\n"
        );
        let pos = pos % base.len();
        let end = (pos + len).min(base.len());
        let text = format!("{}{}{}", &base[..pos], insert, &base[end..]);
        if let Err(e) = Config::parse(&text, "wg0.conf") {
            let msg = e.to_string();
            for window in PRIV.as_bytes().windows(12) {
                let w = std::str::from_utf8(window).unwrap_or("");
                prop_assert!(!msg.contains(w), "{} from {:?}", msg, text);
            }
        }
    }
}
