//! The text of a wrapguard config (wg-quick style): one `[Interface]`
//! section and its `[Peer]` sections, one blank line before each peer.

/// One `[Peer]` section.
#[derive(Clone, Copy)]
pub struct PeerSection<'a> {
    /// `PublicKey =`.
    pub public_key: &'a str,
    /// `Endpoint =`, if any.
    pub endpoint: Option<&'a str>,
    /// `AllowedIPs =`.
    pub allowed_ips: &'a str,
    /// More lines after `AllowedIPs` (`PersistentKeepalive = …`, `Route = …`).
    pub extra: &'a str,
}

/// `[Interface]` with `PrivateKey`, `Address` and the `interface` lines
/// (`ListenPort = …`, `DNS = …`), then each of `peers`.
pub fn conf_text(
    private_key: &str,
    address: &str,
    interface: &str,
    peers: &[PeerSection<'_>],
) -> String {
    let mut t = format!(
        "[Interface]\nPrivateKey = {private_key}\nAddress = {address}\n{}",
        line(interface)
    );
    for p in peers {
        let endpoint = p
            .endpoint
            .map(|e| format!("Endpoint = {e}\n"))
            .unwrap_or_default();
        t += &format!(
            "\n[Peer]\nPublicKey = {}\n{endpoint}AllowedIPs = {}\n{}",
            p.public_key,
            p.allowed_ips,
            line(p.extra)
        );
    }
    t
}

/// `s` ending in a newline (nothing if empty).
fn line(s: &str) -> String {
    if s.is_empty() || s.ends_with('\n') {
        s.to_string()
    } else {
        format!("{s}\n")
    }
}

#[cfg(test)]
mod tests {
    use super::{conf_text, PeerSection};

    #[test]
    fn one_peer_text() {
        let t = conf_text(
            "K",
            "10.0.0.2/24",
            "ListenPort = 1",
            &[PeerSection {
                public_key: "P",
                endpoint: Some("127.0.0.1:9"),
                allowed_ips: "10.0.0.0/24",
                extra: "PersistentKeepalive = 25",
            }],
        );
        assert_eq!(
            t,
            "[Interface]\nPrivateKey = K\nAddress = 10.0.0.2/24\nListenPort = 1\n\n\
             [Peer]\nPublicKey = P\nEndpoint = 127.0.0.1:9\nAllowedIPs = 10.0.0.0/24\n\
             PersistentKeepalive = 25\n"
        );
    }
}
