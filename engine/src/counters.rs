//! What the engine thread counts (drops by reason, cookie replies, load
//! periods), printed in the status report (SIGUSR1, and at exit at debug
//! level), and the handshake load meter that decides when the device is
//! "under load" (WireGuard paper §5.3: answer handshakes without a valid
//! mac2 with a cookie reply instead of doing the Diffie-Hellman work).
//!
//! The meter is sans-IO: it counts handshake messages in fixed windows and
//! is told the time.

use std::fmt;
use std::time::{Duration, Instant};

/// Length of one counting window of the load meter.
pub const LOAD_WINDOW: Duration = Duration::from_millis(250);
/// Handshake messages in one window that put the device under load
/// (256 per second; one honest peer sends at most one per 5 s, wireguard-go
/// switches at 64 queued handshakes).
pub const HANDSHAKES_UNDER_LOAD: u32 = 64;
/// How long the device stays under load after the last busy window
/// (wireguard-go's `UnderLoadAfterTime`).
pub const UNDER_LOAD_AFTER_TIME: Duration = Duration::from_secs(1);

/// Counters of the engine thread; all only grow.
#[derive(Default, Debug, Clone, PartialEq, Eq)]
pub struct Counters {
    /// UDP datagrams read.
    pub rx_datagrams: u64,
    /// Datagrams that are no WireGuard message (type, length): dropped.
    pub rx_malformed: u64,
    /// Handshake messages with an invalid mac1 (not meant for our key): dropped.
    pub rx_bad_mac1: u64,
    /// Other rejected datagrams (unknown index or key, replay, failed
    /// authentication, expired session…): dropped.
    pub rx_rejected: u64,
    /// Handshake initiations and responses read (before any check).
    pub rx_handshakes: u64,
    /// Cookie replies sent because we were under load.
    pub cookie_replies: u64,
    /// Times the device went under load.
    pub under_load_periods: u64,
    /// Decrypted packets whose source is outside the peer's AllowedIPs.
    pub inbound_source_dropped: u64,
    /// Stack packets no peer routes.
    pub no_route_dropped: u64,
    /// Packets for a peer with no known endpoint.
    pub no_endpoint_dropped: u64,
    /// UDP sends or encapsulations that failed.
    pub tx_errors: u64,
    /// New connections refused because the flow cap was reached.
    pub flows_refused: u64,
    /// Messages from an application's UDP data socket without a valid
    /// header: dropped.
    pub udp_malformed: u64,
    /// Datagrams for an application whose receive queue was full: dropped.
    pub udp_app_queue_full: u64,
    /// Datagrams for a plain (header-less) flow from another address than
    /// its peer, or sent by the application while it had no peer: dropped.
    pub udp_plain_dropped: u64,
    /// ICMP errors on a plain flow, which has no way to carry them to the
    /// application: logged and counted only.
    pub udp_plain_errors_unreported: u64,
    /// Times a peer went down (handshakes unanswered, see `reach`).
    pub peers_down: u64,
    /// Connects refused at once (`EHOSTUNREACH`) because their peer was down.
    pub connects_unreachable: u64,
}

impl fmt::Display for Counters {
    /// `rx_datagrams=… rx_malformed=… …` (one line, `key=value`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rx_datagrams={} rx_malformed={} rx_bad_mac1={} rx_rejected={} rx_handshakes={} \
             cookie_replies={} under_load_periods={} inbound_source_dropped={} \
             no_route_dropped={} no_endpoint_dropped={} tx_errors={} flows_refused={} \
             udp_malformed={} udp_app_queue_full={} udp_plain_dropped={} \
             udp_plain_errors_unreported={} peers_down={} connects_unreachable={}",
            self.rx_datagrams,
            self.rx_malformed,
            self.rx_bad_mac1,
            self.rx_rejected,
            self.rx_handshakes,
            self.cookie_replies,
            self.under_load_periods,
            self.inbound_source_dropped,
            self.no_route_dropped,
            self.no_endpoint_dropped,
            self.tx_errors,
            self.flows_refused,
            self.udp_malformed,
            self.udp_app_queue_full,
            self.udp_plain_dropped,
            self.udp_plain_errors_unreported,
            self.peers_down,
            self.connects_unreachable
        )
    }
}

/// Counts handshake messages per [`LOAD_WINDOW`]; under load while a
/// window holds more than [`HANDSHAKES_UNDER_LOAD`] and for
/// [`UNDER_LOAD_AFTER_TIME`] after.
#[derive(Debug, Default)]
pub struct LoadMeter {
    window_start: Option<Instant>,
    in_window: u32,
    under_until: Option<Instant>,
}

impl LoadMeter {
    /// Records one handshake message at `now`; returns whether the device
    /// is under load now.
    pub fn on_handshake(&mut self, now: Instant) -> bool {
        match self.window_start {
            Some(s) if now.saturating_duration_since(s) < LOAD_WINDOW => {}
            _ => {
                self.window_start = Some(now);
                self.in_window = 0;
            }
        }
        self.in_window = self.in_window.saturating_add(1);
        if self.in_window > HANDSHAKES_UNDER_LOAD {
            self.under_until = Some(now + UNDER_LOAD_AFTER_TIME);
        }
        self.under_load(now)
    }

    /// Whether the device is under load at `now`.
    pub fn under_load(&self, now: Instant) -> bool {
        self.under_until.is_some_and(|u| now < u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_puts_under_load_for_a_second_and_a_trickle_never() {
        let t0 = Instant::now();
        let mut m = LoadMeter::default();
        // One handshake every 10 ms (100/s) for 5 s: never under load.
        for i in 0..500 {
            assert!(!m.on_handshake(t0 + Duration::from_millis(10 * i)));
        }
        // A burst: the 65th message in one window switches it on.
        let t1 = t0 + Duration::from_secs(10);
        for i in 0..HANDSHAKES_UNDER_LOAD {
            assert!(!m.on_handshake(t1 + Duration::from_micros(u64::from(i))));
        }
        assert!(m.on_handshake(t1 + Duration::from_millis(1)));
        assert!(m.under_load(t1 + Duration::from_millis(900)));
        assert!(!m.under_load(t1 + Duration::from_millis(1001)));
    }

    #[test]
    fn counters_print_as_key_value_pairs() {
        let c = Counters {
            rx_datagrams: 3,
            cookie_replies: 2,
            ..Counters::default()
        };
        let s = c.to_string();
        assert!(s.starts_with("rx_datagrams=3 rx_malformed=0"), "{s}");
        assert!(s.contains(" cookie_replies=2 "), "{s}");
        assert!(!s.contains('\n'));
    }
}
