//! The line parser. One pass over the lines: section headers switch the
//! current section, `Key = value` lines fill it; required keys and
//! cross-section checks (unique peers, overlapping AllowedIPs) come last.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use ipnet::IpNet;

use super::error::{ConfigError, ConfigErrorKind as K, KeyHint, Section, Warning, WarningKind};
use super::keys::{PresharedKey, PrivateKey, PublicKey};
use super::model::{Config, ConfigRoute, Endpoint, Interface, ParsedConfig, Peer, DEFAULT_MTU};
use super::text::{shown, suggest};
use crate::route::{parse_net, RouteSpec};

/// Keys of `[Interface]` that wrapguard uses.
const INTERFACE_KEYS: &[&str] = &["PrivateKey", "Address", "ListenPort", "DNS", "MTU"];
/// wg-quick keys of `[Interface]` that are accepted and ignored.
const IGNORED_KEYS: &[&str] = &[
    "Table",
    "PreUp",
    "PostUp",
    "PreDown",
    "PostDown",
    "SaveConfig",
    "FwMark",
];
/// Keys of `[Peer]`.
const PEER_KEYS: &[&str] = &[
    "PublicKey",
    "PresharedKey",
    "Endpoint",
    "AllowedIPs",
    "PersistentKeepalive",
    "Route",
];

const EXPECT_ADDRESS: &str =
    "an IP address with an optional prefix length, like 10.0.0.2/32 or fd00::2/128";
const EXPECT_CIDR: &str = "a CIDR like 10.0.0.0/24 or fd00::/64";
const EXPECT_PORT: &str = "a UDP port number 0-65535";
const EXPECT_DNS: &str = "an IP address or a search domain, like 10.0.0.1 or corp.example";
const EXPECT_MTU: &str = "a number from 576 to 65535";
const EXPECT_ENDPOINT: &str =
    "host:port, [IPv6]:port or hostname:port, like 192.0.2.1:51820 or vpn.example.com:51820";
const EXPECT_KEEPALIVE: &str = "a number of seconds 0-65535, or off";

fn canonical(key: &str, list: &[&'static str]) -> Option<&'static str> {
    list.iter().copied().find(|k| k.eq_ignore_ascii_case(key))
}

/// Items of a list value: separated by commas and/or whitespace.
fn items(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
}

fn is_hostname(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && !s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn parse_endpoint_port(s: &str) -> Option<u16> {
    s.parse::<u16>().ok().filter(|&p| p != 0)
}

/// `host:port`, `[v6]:port` or `hostname:port`.
pub(crate) fn parse_endpoint(value: &str) -> Option<Endpoint> {
    if let Some(rest) = value.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = parse_endpoint_port(after.strip_prefix(':')?)?;
        let ip = Ipv6Addr::from_str(host).ok()?;
        return Some(Endpoint::Addr(SocketAddr::new(IpAddr::V6(ip), port)));
    }
    let (host, port) = value.rsplit_once(':')?;
    let port = parse_endpoint_port(port)?;
    if let Ok(ip) = Ipv4Addr::from_str(host) {
        Some(Endpoint::Addr(SocketAddr::new(IpAddr::V4(ip), port)))
    } else if is_hostname(host) {
        Some(Endpoint::Host {
            host: host.to_string(),
            port,
        })
    } else {
        None
    }
}

/// `[Interface]` while it is being read.
struct InterfaceDraft {
    line: usize,
    private_key: Option<PrivateKey>,
    addresses: Vec<IpNet>,
    listen_port: Option<u16>,
    dns: Vec<IpAddr>,
    dns_search: Vec<String>,
    mtu: Option<u16>,
    /// Single-valued keys seen, with their line.
    seen: Vec<(&'static str, usize)>,
}

/// A `[Peer]` while it is being read.
struct PeerDraft {
    line: usize,
    public_key: Option<PublicKey>,
    preshared_key: Option<PresharedKey>,
    endpoint: Option<Endpoint>,
    allowed_ips: Vec<(IpNet, usize)>,
    persistent_keepalive: Option<u16>,
    routes: Vec<ConfigRoute>,
    seen: Vec<(&'static str, usize)>,
}

struct Parser<'a> {
    file: &'a str,
    interface: Option<InterfaceDraft>,
    peers: Vec<PeerDraft>,
    current: Option<Section>,
    warnings: Vec<Warning>,
    ignored_warned: Vec<&'static str>,
    /// Inside `[WrapGuard]`: wrapguard's own keys (the proxy front-ends),
    /// read and checked by the launcher, skipped here.
    in_wrapguard: bool,
}

/// The name of the wrapguard-only section (skipped by this parser).
pub(crate) const WRAPGUARD_SECTION: &str = "WrapGuard";

impl Parser<'_> {
    fn err(&self, line: usize, kind: K) -> ConfigError {
        ConfigError {
            file: self.file.to_string(),
            line,
            kind,
        }
    }

    fn invalid(
        &self,
        line: usize,
        key: &'static str,
        value: &str,
        expected: &'static str,
    ) -> ConfigError {
        self.err(
            line,
            K::InvalidValue {
                key,
                value: shown(value),
                expected,
            },
        )
    }

    fn header(&mut self, n: usize, text: &str) -> Result<(), ConfigError> {
        let name = text
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .map(str::trim)
            .ok_or_else(|| self.err(n, K::BadSectionHeader { text: shown(text) }))?;
        self.in_wrapguard = name.eq_ignore_ascii_case(WRAPGUARD_SECTION);
        if self.in_wrapguard {
            self.current = None;
            return Ok(());
        }
        if name.eq_ignore_ascii_case("interface") {
            if let Some(first) = &self.interface {
                return Err(self.err(
                    n,
                    K::SecondInterface {
                        first_line: first.line,
                    },
                ));
            }
            self.interface = Some(InterfaceDraft {
                line: n,
                private_key: None,
                addresses: Vec::new(),
                listen_port: None,
                dns: Vec::new(),
                dns_search: Vec::new(),
                mtu: None,
                seen: Vec::new(),
            });
            self.current = Some(Section::Interface);
        } else if name.eq_ignore_ascii_case("peer") {
            self.peers.push(PeerDraft {
                line: n,
                public_key: None,
                preshared_key: None,
                endpoint: None,
                allowed_ips: Vec::new(),
                persistent_keepalive: None,
                routes: Vec::new(),
                seen: Vec::new(),
            });
            self.current = Some(Section::Peer);
        } else {
            let suggestion = match suggest(name, &["Interface", "Peer"]) {
                Some("Interface") => Some(Section::Interface),
                Some(_) => Some(Section::Peer),
                None => None,
            };
            return Err(self.err(
                n,
                K::UnknownSection {
                    name: shown(name),
                    suggestion,
                },
            ));
        }
        Ok(())
    }

    fn unknown_key(&self, n: usize, key: &str, section: Section) -> ConfigError {
        let (own, other, other_section): (Vec<&'static str>, Vec<&'static str>, Section) =
            match section {
                Section::Interface => (
                    INTERFACE_KEYS.iter().chain(IGNORED_KEYS).copied().collect(),
                    PEER_KEYS.to_vec(),
                    Section::Peer,
                ),
                Section::Peer => (
                    PEER_KEYS.to_vec(),
                    INTERFACE_KEYS.iter().chain(IGNORED_KEYS).copied().collect(),
                    Section::Interface,
                ),
            };
        let hint = match canonical(key, &other) {
            Some(k) => Some(KeyHint::WrongSection(k, other_section)),
            None => suggest(key, &own).map(KeyHint::DidYouMean),
        };
        self.err(
            n,
            K::UnknownKey {
                key: shown(key),
                section,
                hint,
            },
        )
    }

    fn key_value(&mut self, n: usize, key: &str, value: &str) -> Result<(), ConfigError> {
        if self.in_wrapguard {
            return Ok(());
        }
        match self.current {
            None => Err(self.err(n, K::OutsideSection { key: shown(key) })),
            Some(Section::Interface) => self.interface_key(n, key, value),
            Some(Section::Peer) => self.peer_key(n, key, value),
        }
    }

    /// Records a single-valued key, failing if the section already has it.
    fn once(
        &self,
        seen: &mut Vec<(&'static str, usize)>,
        n: usize,
        key: &'static str,
        section: Section,
    ) -> Result<(), ConfigError> {
        if let Some(&(_, first_line)) = seen.iter().find(|(k, _)| *k == key) {
            return Err(self.err(
                n,
                K::DuplicateKey {
                    key,
                    section,
                    first_line,
                },
            ));
        }
        seen.push((key, n));
        Ok(())
    }

    fn interface_key(&mut self, n: usize, key: &str, value: &str) -> Result<(), ConfigError> {
        if let Some(k) = canonical(key, IGNORED_KEYS) {
            if !self.ignored_warned.contains(&k) {
                self.ignored_warned.push(k);
                self.warnings.push(Warning {
                    file: self.file.to_string(),
                    line: n,
                    kind: WarningKind::IgnoredKey { key: k },
                });
            }
            return Ok(());
        }
        let Some(k) = canonical(key, INTERFACE_KEYS) else {
            return Err(self.unknown_key(n, key, Section::Interface));
        };
        let Some(mut d) = self.interface.take() else {
            return Err(self.err(n, K::OutsideSection { key: shown(key) }));
        };
        let result = self.fill_interface(&mut d, n, k, value);
        self.interface = Some(d);
        result
    }

    fn fill_interface(
        &self,
        d: &mut InterfaceDraft,
        n: usize,
        k: &'static str,
        value: &str,
    ) -> Result<(), ConfigError> {
        match k {
            "PrivateKey" => {
                self.once(&mut d.seen, n, k, Section::Interface)?;
                let key = PrivateKey::from_base64(value).map_err(|error| {
                    self.err(
                        n,
                        K::InvalidKey {
                            key: k,
                            text: None,
                            error,
                        },
                    )
                })?;
                d.private_key = Some(key);
            }
            "Address" => {
                let before = d.addresses.len();
                for item in items(value) {
                    let net = if item.contains('/') {
                        IpNet::from_str(item).ok()
                    } else {
                        IpAddr::from_str(item).ok().map(IpNet::from)
                    };
                    d.addresses
                        .push(net.ok_or_else(|| self.invalid(n, k, item, EXPECT_ADDRESS))?);
                }
                if d.addresses.len() == before {
                    return Err(self.invalid(n, k, value, EXPECT_ADDRESS));
                }
            }
            "ListenPort" => {
                self.once(&mut d.seen, n, k, Section::Interface)?;
                let port = value
                    .parse::<u16>()
                    .map_err(|_| self.invalid(n, k, value, EXPECT_PORT))?;
                d.listen_port = (port != 0).then_some(port);
            }
            "DNS" => {
                for item in items(value) {
                    if let Ok(ip) = IpAddr::from_str(item) {
                        d.dns.push(ip);
                    } else if is_hostname(item) {
                        d.dns_search.push(item.to_string());
                    } else {
                        return Err(self.invalid(n, k, item, EXPECT_DNS));
                    }
                }
            }
            _ => {
                // "MTU", the last of INTERFACE_KEYS.
                self.once(&mut d.seen, n, k, Section::Interface)?;
                let mtu = value
                    .parse::<u16>()
                    .ok()
                    .filter(|&m| m >= 576)
                    .ok_or_else(|| self.invalid(n, k, value, EXPECT_MTU))?;
                d.mtu = Some(mtu);
            }
        }
        Ok(())
    }

    fn peer_key(&mut self, n: usize, key: &str, value: &str) -> Result<(), ConfigError> {
        let Some(k) = canonical(key, PEER_KEYS) else {
            return Err(self.unknown_key(n, key, Section::Peer));
        };
        let Some(mut d) = self.peers.pop() else {
            return Err(self.err(n, K::OutsideSection { key: shown(key) }));
        };
        let result = self.fill_peer(&mut d, n, k, value);
        self.peers.push(d);
        result
    }

    fn fill_peer(
        &self,
        d: &mut PeerDraft,
        n: usize,
        k: &'static str,
        value: &str,
    ) -> Result<(), ConfigError> {
        match k {
            "PublicKey" => {
                self.once(&mut d.seen, n, k, Section::Peer)?;
                let key = PublicKey::from_base64(value).map_err(|error| {
                    self.err(
                        n,
                        K::InvalidKey {
                            key: k,
                            text: Some(shown(value)),
                            error,
                        },
                    )
                })?;
                d.public_key = Some(key);
            }
            "PresharedKey" => {
                self.once(&mut d.seen, n, k, Section::Peer)?;
                let key = PresharedKey::from_base64(value).map_err(|error| {
                    self.err(
                        n,
                        K::InvalidKey {
                            key: k,
                            text: None,
                            error,
                        },
                    )
                })?;
                d.preshared_key = Some(key);
            }
            "Endpoint" => {
                self.once(&mut d.seen, n, k, Section::Peer)?;
                d.endpoint = Some(
                    parse_endpoint(value)
                        .ok_or_else(|| self.invalid(n, k, value, EXPECT_ENDPOINT))?,
                );
            }
            "AllowedIPs" => {
                for item in items(value) {
                    let net =
                        parse_net(item).ok_or_else(|| self.invalid(n, k, item, EXPECT_CIDR))?;
                    d.allowed_ips.push((net, n));
                }
            }
            "PersistentKeepalive" => {
                self.once(&mut d.seen, n, k, Section::Peer)?;
                d.persistent_keepalive = if value.eq_ignore_ascii_case("off") {
                    None
                } else {
                    let secs = value
                        .parse::<u16>()
                        .map_err(|_| self.invalid(n, k, value, EXPECT_KEEPALIVE))?;
                    (secs != 0).then_some(secs)
                };
            }
            _ => {
                // "Route", the last of PEER_KEYS; several per line allowed.
                let mut any = false;
                for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let spec = RouteSpec::parse(item).map_err(|error| {
                        self.err(
                            n,
                            K::InvalidRoute {
                                value: shown(item),
                                error,
                            },
                        )
                    })?;
                    d.routes.push(ConfigRoute { spec, line: n });
                    any = true;
                }
                if !any {
                    return Err(self.err(
                        n,
                        K::InvalidRoute {
                            value: String::new(),
                            error: crate::route::RouteSpecError::Empty,
                        },
                    ));
                }
            }
        }
        Ok(())
    }

    fn finish(mut self) -> Result<ParsedConfig, ConfigError> {
        let Some(d) = self.interface.take() else {
            return Err(self.err(0, K::NoInterface));
        };
        let missing = |key| {
            self.err(
                d.line,
                K::MissingKey {
                    key,
                    section: Section::Interface,
                },
            )
        };
        let Some(private_key) = d.private_key else {
            return Err(missing("PrivateKey"));
        };
        if d.addresses.is_empty() {
            return Err(missing("Address"));
        }
        let interface = Interface {
            private_key,
            addresses: d.addresses,
            listen_port: d.listen_port,
            dns: d.dns,
            dns_search: d.dns_search,
            mtu: d.mtu.unwrap_or(DEFAULT_MTU),
            line: d.line,
        };

        let mut peers = Vec::with_capacity(self.peers.len());
        let mut keys: HashMap<[u8; 32], usize> = HashMap::new();
        let mut claimed: HashMap<IpNet, (usize, usize)> = HashMap::new();
        let drafts = std::mem::take(&mut self.peers);
        for (index, p) in drafts.into_iter().enumerate() {
            let Some(public_key) = p.public_key else {
                return Err(self.err(
                    p.line,
                    K::MissingKey {
                        key: "PublicKey",
                        section: Section::Peer,
                    },
                ));
            };
            if let Some(&first_line) = keys.get(public_key.as_bytes()) {
                return Err(self.err(p.line, K::DuplicatePeer { first_line }));
            }
            keys.insert(*public_key.as_bytes(), p.line);
            let mut allowed_ips = Vec::with_capacity(p.allowed_ips.len());
            for (net, line) in p.allowed_ips {
                match claimed.get(&net) {
                    Some(&(owner, first_line)) if owner != index => {
                        self.warnings.push(Warning {
                            file: self.file.to_string(),
                            line,
                            kind: WarningKind::AllowedIpsOverlap { net, first_line },
                        });
                        claimed.insert(net, (index, line));
                    }
                    Some(_) => {}
                    None => {
                        claimed.insert(net, (index, line));
                    }
                }
                allowed_ips.push(net);
            }
            peers.push(Peer {
                public_key,
                preshared_key: p.preshared_key,
                endpoint: p.endpoint,
                allowed_ips,
                persistent_keepalive: p.persistent_keepalive,
                routes: p.routes,
                line: p.line,
            });
        }
        Ok(ParsedConfig {
            config: Config { interface, peers },
            warnings: self.warnings,
        })
    }
}

/// Parses config text; `file` names it in messages.
pub(crate) fn parse(text: &str, file: &str) -> Result<ParsedConfig, ConfigError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut p = Parser {
        file,
        interface: None,
        peers: Vec::new(),
        current: None,
        warnings: Vec::new(),
        ignored_warned: Vec::new(),
        in_wrapguard: false,
    };
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.split_once('#').map_or(raw, |(before, _)| before).trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('[') {
            p.header(n, line)?;
            continue;
        }
        match line.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => {
                p.key_value(n, key.trim(), value.trim())?;
            }
            _ => return Err(p.err(n, K::MissingEquals { text: shown(line) })),
        }
    }
    p.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wrapguard_section_is_skipped() {
        let key = "aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd28=";
        let text = format!(
            "[WrapGuard]\nSocks5 = 127.0.0.1:1080\n[Interface]\nPrivateKey = {key}\nAddress = 10.0.0.2/32\n[wrapguard]\nAnything = at all\n[Peer]\nPublicKey = {key}\nAllowedIPs = 10.0.0.0/24\n"
        );
        let c = parse(&text, "wg0.conf").expect("parses");
        assert_eq!(c.config.peers.len(), 1);
        assert_eq!(c.config.interface.addresses.len(), 1);
    }

    #[test]
    fn endpoints() {
        let addr = |s: &str| Endpoint::Addr(s.parse().expect("socket address"));
        assert_eq!(
            parse_endpoint("192.0.2.1:51820"),
            Some(addr("192.0.2.1:51820"))
        );
        assert_eq!(
            parse_endpoint("[fd00::1]:51820"),
            Some(addr("[fd00::1]:51820"))
        );
        assert_eq!(
            parse_endpoint("vpn.example.com:51820"),
            Some(Endpoint::Host {
                host: "vpn.example.com".into(),
                port: 51820
            })
        );
        for bad in [
            "fd00::1:51820",
            "192.0.2.1",
            "192.0.2.1:0",
            "192.0.2.1:65536",
            "[fd00::1]",
            "[fd00::1]:",
            "vpn..example:1",
            "1.2.3:51820",
            ":51820",
            "-bad.example:1",
        ] {
            assert_eq!(parse_endpoint(bad), None, "{bad}");
        }
    }

    #[test]
    fn hostnames() {
        assert!(is_hostname("corp.example"));
        assert!(is_hostname("localhost"));
        assert!(is_hostname("a-b.c_d.example."));
        assert!(!is_hostname("1.2.3"));
        assert!(!is_hostname("a b"));
        assert!(!is_hostname(""));
    }
}
