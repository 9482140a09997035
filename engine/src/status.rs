//! The per-peer status report, like `wg show`: endpoint, latest
//! handshake, bytes received and sent, active flows. Logged on SIGUSR1 (at
//! info) and when wrapguard exits (at debug).

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// One peer's state at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStatus {
    /// Short public key (`AbCdEfGh…`), never a secret.
    pub label: String,
    /// Where its datagrams go now (configured, or where it last spoke from).
    pub endpoint: Option<SocketAddr>,
    /// How long ago the latest handshake completed.
    pub handshake_age: Option<Duration>,
    /// Bytes received from it (decrypted payload).
    pub rx_bytes: u64,
    /// Bytes sent to it (payload before encryption).
    pub tx_bytes: u64,
    /// Tunnel flows through it now.
    pub active_flows: usize,
    /// Whether a session is usable for sending now.
    pub has_session: bool,
    /// Known down: handshakes unanswered, connects to it fail at once
    /// (see `engine::reach`).
    pub unreachable: bool,
}

/// `1.5 KiB`, `12 B`, `3.2 MiB` (as `wg show` prints transfer).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.2} {}", UNITS[u])
}

/// `3 seconds ago`, `2 minutes, 5 seconds ago`.
pub fn human_age(d: Duration) -> String {
    let s = d.as_secs();
    let part = |n: u64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    let mut parts = Vec::new();
    if s >= 3600 {
        parts.push(part(s / 3600, "hour"));
    }
    if s >= 60 && s % 3600 >= 60 {
        parts.push(part(s % 3600 / 60, "minute"));
    }
    let secs = s % 60;
    if secs > 0 || parts.is_empty() {
        parts.push(part(secs, "second"));
    }
    format!("{} ago", parts.join(", "))
}

impl fmt::Display for PeerStatus {
    /// `peer AbCdEfGh… endpoint 192.0.2.1:51820, latest handshake 3
    /// seconds ago, transfer 1.20 KiB received, 340 B sent, 2 active flows`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "peer {} endpoint ", self.label)?;
        match self.endpoint {
            Some(e) => write!(f, "{e}")?,
            None => f.write_str("(none yet)")?,
        }
        match self.handshake_age {
            Some(a) => write!(f, ", latest handshake {}", human_age(a))?,
            None => f.write_str(", no handshake yet")?,
        }
        write!(
            f,
            ", transfer {} received, {} sent, {} active flow{}",
            human_bytes(self.rx_bytes),
            human_bytes(self.tx_bytes),
            self.active_flows,
            if self.active_flows == 1 { "" } else { "s" }
        )?;
        if self.unreachable {
            f.write_str(", unreachable (handshakes unanswered; connects fail with EHOSTUNREACH)")?;
        }
        Ok(())
    }
}

/// Logs one line per peer at `level` (structured fields too).
pub fn log(peers: &[PeerStatus], level: tracing::Level) {
    for p in peers {
        let endpoint = p.endpoint.map(|e| e.to_string()).unwrap_or_default();
        let age = p.handshake_age.map_or(-1, |a| a.as_secs() as i64);
        macro_rules! line {
            ($mac:ident) => {
                tracing::$mac!(
                    peer = %p.label,
                    endpoint = %endpoint,
                    latest_handshake_secs = age,
                    rx_bytes = p.rx_bytes,
                    tx_bytes = p.tx_bytes,
                    active_flows = p.active_flows as u64,
                    "Status: {p}"
                )
            };
        }
        if level == tracing::Level::DEBUG {
            line!(debug);
        } else {
            line!(info);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_wg_show() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.50 KiB");
        assert_eq!(human_bytes(5 << 20), "5.00 MiB");
        assert_eq!(human_age(Duration::from_secs(0)), "0 seconds ago");
        assert_eq!(human_age(Duration::from_secs(1)), "1 second ago");
        assert_eq!(
            human_age(Duration::from_secs(125)),
            "2 minutes, 5 seconds ago"
        );
        assert_eq!(human_age(Duration::from_secs(3600)), "1 hour ago");
        let p = PeerStatus {
            label: "AbCdEfGh…".into(),
            endpoint: Some("192.0.2.1:51820".parse().expect("addr")),
            handshake_age: Some(Duration::from_secs(3)),
            rx_bytes: 2048,
            tx_bytes: 12,
            active_flows: 1,
            has_session: true,
            unreachable: false,
        };
        assert_eq!(
            p.to_string(),
            "peer AbCdEfGh… endpoint 192.0.2.1:51820, latest handshake 3 seconds ago, \
             transfer 2.00 KiB received, 12 B sent, 1 active flow"
        );
        let down = PeerStatus {
            unreachable: true,
            active_flows: 0,
            ..p
        };
        assert!(down.to_string().ends_with(
            "0 active flows, unreachable (handshakes unanswered; connects fail with EHOSTUNREACH)"
        ));
    }
}
