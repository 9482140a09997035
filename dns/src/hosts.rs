//! `/etc/hosts`: `address name [aliases…]` lines, `#` comments.
//!
//! Lookups are case-insensitive; a name may appear on several lines (its
//! addresses are collected in file order), and the first name on a line is
//! its canonical name (what a reverse lookup returns).

use std::net::IpAddr;

/// The parsed file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hosts {
    entries: Vec<(IpAddr, Vec<String>)>,
}

impl Hosts {
    /// Parses the text of a hosts file; unparsable lines are skipped.
    pub fn parse(text: &str) -> Hosts {
        let mut entries = Vec::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut words = line.split_whitespace();
            let Some(addr) = words.next() else { continue };
            // A zone index (fe80::1%eth0) is not something we can carry.
            let Ok(ip) = addr.parse::<IpAddr>() else {
                continue;
            };
            let names: Vec<String> = words.map(str::to_string).collect();
            if !names.is_empty() {
                entries.push((ip, names));
            }
        }
        Hosts { entries }
    }

    /// Addresses of `name` (IPv4 if `v4`, IPv6 if `v6`), in file order, and
    /// the canonical name of the first matching line.
    pub fn lookup(&self, name: &str, v4: bool, v6: bool) -> Option<(String, Vec<IpAddr>)> {
        let mut canonical = None;
        let mut addrs = Vec::new();
        for (ip, names) in &self.entries {
            if !((ip.is_ipv4() && v4) || (ip.is_ipv6() && v6)) {
                continue;
            }
            if names.iter().any(|n| crate::wire::same_name(n, name)) {
                if canonical.is_none() {
                    canonical = names.first().cloned();
                }
                if !addrs.contains(ip) {
                    addrs.push(*ip);
                }
            }
        }
        canonical.map(|c| (c, addrs))
    }

    /// The canonical name of the first line with `ip`.
    pub fn reverse(&self, ip: IpAddr) -> Option<&str> {
        self.entries
            .iter()
            .find(|(a, _)| *a == ip)
            .and_then(|(_, n)| n.first())
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "127.0.0.1 localhost\n::1 localhost ip6-localhost # comment\n\
                        # whole line\n10.0.0.5  Box.Example box\n10.0.0.6 box\nbad line\n\
                        fe80::1%eth0 linklocal\n";

    #[test]
    fn forward_lookups() {
        let h = Hosts::parse(TEXT);
        let (c, a) = h.lookup("BOX", true, true).expect("box");
        assert_eq!(c, "Box.Example");
        assert_eq!(
            a,
            [
                "10.0.0.5".parse::<IpAddr>().expect("ip"),
                "10.0.0.6".parse().expect("ip")
            ]
        );
        let (_, a) = h.lookup("localhost", false, true).expect("v6 localhost");
        assert_eq!(a, ["::1".parse::<IpAddr>().expect("ip")]);
        assert!(h.lookup("box", false, true).is_none());
        assert!(h.lookup("linklocal", true, true).is_none());
        assert!(h.lookup("nothere", true, true).is_none());
    }

    #[test]
    fn reverse_lookups() {
        let h = Hosts::parse(TEXT);
        assert_eq!(
            h.reverse("10.0.0.5".parse().expect("ip")),
            Some("Box.Example")
        );
        assert_eq!(h.reverse("10.9.9.9".parse().expect("ip")), None);
    }
}
