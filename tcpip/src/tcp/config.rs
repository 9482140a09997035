//! What a connection is configured with and the states it moves through
//! (RFC 9293 §3.3.2); shared by every part of the state machine.

use std::time::Duration;

/// RFC 9293 connection states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// No connection.
    Closed,
    /// Waiting for a SYN (listeners only).
    Listen,
    /// SYN sent, waiting for SYN-ACK.
    SynSent,
    /// SYN received and SYN-ACK sent.
    SynReceived,
    /// Open.
    Established,
    /// We closed; our FIN is not yet acknowledged.
    FinWait1,
    /// Our FIN is acknowledged; waiting for the peer's FIN.
    FinWait2,
    /// The peer closed; we may still send.
    CloseWait,
    /// Both closed simultaneously; waiting for the ACK of our FIN.
    Closing,
    /// The peer closed first, then we did; waiting for the ACK of our FIN.
    LastAck,
    /// Waiting 2·MSL before forgetting the connection.
    TimeWait,
}

/// Per-connection TCP parameters.
#[derive(Debug, Clone)]
pub struct TcpConfig {
    /// Receive ring size in bytes (bounds out-of-order memory too). It
    /// caps the window we advertise, so it bounds throughput at about
    /// `rx_buffer / RTT`; the storage grows only as data waits in it.
    pub rx_buffer: usize,
    /// Send ring size in bytes: unacknowledged plus unsent data, so it
    /// caps the bytes in flight the same way.
    pub tx_buffer: usize,
    /// Lower bound on the RTO (Linux uses 200 ms; RFC 6298 says 1 s).
    pub min_rto: Duration,
    /// Upper bound on the RTO.
    pub max_rto: Duration,
    /// SYN / SYN-ACK retransmissions before giving up.
    pub syn_retries: u32,
    /// Data retransmissions before ETIMEDOUT.
    pub data_retries: u32,
    /// Delayed-ACK timeout.
    pub delayed_ack: Duration,
    /// TIME-WAIT duration (2·MSL).
    pub time_wait: Duration,
    /// FIN-WAIT-2 timeout for connections the application closed.
    pub fin_wait2_timeout: Duration,
    /// Keepalive idle time; `None` disables keepalive.
    pub keepalive: Option<Duration>,
    /// Interval between keepalive probes.
    pub keepalive_interval: Duration,
    /// Unanswered keepalive probes before ETIMEDOUT.
    pub keepalive_probes: u32,
    /// Offer timestamps (RFC 7323).
    pub timestamps: bool,
    /// Congestion control of new connections.
    pub congestion: super::congestion::Algorithm,
    /// Offer SACK (RFC 2018).
    pub sack: bool,
    /// Offer window scaling (RFC 7323).
    pub window_scaling: bool,
    /// A send or receive ring found empty this long after it emptied gives
    /// its storage back (a flow that moved a burst and went idle holds
    /// none); bulk flows, whose rings empty all the time, reallocate at most
    /// once per period.
    pub shrink_after: Duration,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            // Room for a bandwidth-delay product of 12 MB (1 Gbit/s over
            // 100 ms) plus its queue; rings allocate on demand and shrink
            // when idle, so an idle or chatty connection pays nothing for
            // it. At 4 MiB a 400 Mbit/s path of 100 ms was window-bound at
            // about 310 Mbit/s; at 256 KiB a wrapguard pair on one machine
            // (queueing RTT of a few ms) at about 2.4 Gbit/s.
            rx_buffer: 16 << 20,
            tx_buffer: 16 << 20,
            min_rto: Duration::from_millis(200),
            max_rto: Duration::from_secs(60),
            syn_retries: 6,
            data_retries: 15,
            delayed_ack: Duration::from_millis(40),
            time_wait: Duration::from_secs(60),
            fin_wait2_timeout: Duration::from_secs(60),
            keepalive: None,
            keepalive_interval: Duration::from_secs(75),
            keepalive_probes: 9,
            timestamps: true,
            congestion: super::congestion::Algorithm::Cubic,
            sack: true,
            window_scaling: true,
            shrink_after: Duration::from_secs(1),
        }
    }
}
