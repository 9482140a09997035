//! `wrapguard status --flows`: per tunnel TCP connection what the engine's
//! TCP knows — state, window, RTT, what is in flight, retransmissions, the
//! delivery rate and what holds the sender back — like `ss -ti`, so a user
//! can tell why a transfer is slow.

use serde::{Deserialize, Serialize};

/// One TCP connection of the tunnel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpFlowStatus {
    /// The engine thread's id of the flow.
    pub flow: u64,
    /// The program that opened it (an outgoing flow), if known.
    #[serde(default)]
    pub pid: Option<u32>,
    /// Its command line.
    #[serde(default)]
    pub program: Option<String>,
    /// Our tunnel address and port.
    pub local: String,
    /// The far end.
    pub remote: String,
    /// TCP state (`ESTABLISHED`, `CLOSE-WAIT`, …).
    pub state: String,
    /// `cubic` or `bbr`.
    pub congestion: String,
    /// Congestion window, bytes.
    pub cwnd: u64,
    /// Slow-start threshold, bytes (`None`: not set yet, or BBR).
    pub ssthresh: Option<u64>,
    /// Smoothed RTT, µs.
    pub srtt_us: u64,
    /// RTT variation, µs.
    pub rttvar_us: u64,
    /// Retransmission timeout now, µs.
    pub rto_us: u64,
    /// Bytes sent and not acknowledged.
    pub in_flight: u64,
    /// Payload bytes per segment.
    pub mss: u64,
    /// Segments retransmitted.
    pub retransmits: u64,
    /// Retransmission timeouts.
    pub rto_count: u64,
    /// Fast recoveries.
    pub recoveries: u64,
    /// The latest delivery rate measured, bytes per second.
    pub delivery_rate: u64,
    /// What holds the sender back: `cwnd`, `receiver window`, `send
    /// buffer`, `application` or `pacing`.
    pub limited_by: String,
    /// Bytes the program sent into the tunnel.
    pub bytes_up: u64,
    /// Bytes the tunnel delivered to the program.
    pub bytes_down: u64,
    /// Seconds since the flow began.
    pub age_secs: u64,
}

/// The name `ss` gives a state.
pub fn state_name(s: tcpip::TcpState) -> &'static str {
    use tcpip::TcpState as S;
    match s {
        S::Closed => "CLOSED",
        S::Listen => "LISTEN",
        S::SynSent => "SYN-SENT",
        S::SynReceived => "SYN-RECV",
        S::Established => "ESTABLISHED",
        S::FinWait1 => "FIN-WAIT-1",
        S::FinWait2 => "FIN-WAIT-2",
        S::CloseWait => "CLOSE-WAIT",
        S::Closing => "CLOSING",
        S::LastAck => "LAST-ACK",
        S::TimeWait => "TIME-WAIT",
    }
}

/// `1.5 Mbit/s`, from bytes per second.
pub fn human_rate(bytes_per_sec: u64) -> String {
    let bits = bytes_per_sec as f64 * 8.0;
    if bits >= 1e9 {
        format!("{:.2} Gbit/s", bits / 1e9)
    } else if bits >= 1e6 {
        format!("{:.1} Mbit/s", bits / 1e6)
    } else {
        format!("{:.0} kbit/s", bits / 1e3)
    }
}
