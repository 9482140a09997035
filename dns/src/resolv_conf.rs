//! The `nameserver` lines of a `resolv.conf` (the host's resolvers, whose
//! port 53 traffic is redirected into the tunnel).

use std::net::IpAddr;

/// The stub resolver systemd-resolved listens on; always treated as a
/// host nameserver.
pub const SYSTEMD_RESOLVED: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 53));

/// The nameserver addresses in `text`, in order, without duplicates
/// (zone indexes such as `fe80::1%eth0` are skipped).
pub fn nameservers(text: &str) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or("");
        let mut w = line.split_whitespace();
        if w.next() != Some("nameserver") {
            continue;
        }
        if let Some(Ok(ip)) = w.next().map(str::parse::<IpAddr>) {
            if !out.contains(&ip) {
                out.push(ip);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameserver_lines() {
        let t =
            "# c\nsearch a.b\nnameserver 10.0.0.1\nnameserver ::1 ; x\nnameserver fe80::1%eth0\n\
                 nameserver 10.0.0.1\noptions ndots:2\n";
        assert_eq!(
            nameservers(t),
            [
                "10.0.0.1".parse::<IpAddr>().expect("ip"),
                "::1".parse().expect("ip")
            ]
        );
    }
}
