//! The session protocol's messages (see the module above) and the status
//! report that `wrapguard status --json` prints as is.

use crate::status::PeerStatus;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// A request from a launcher or subcommand.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum SessionRequest {
    /// What is this engine? Answered by [`SessionReply::Described`].
    Describe,
    /// Take a lease: this connection stays open while the instance's program
    /// runs. Answered by [`SessionReply::Attached`], or
    /// [`SessionReply::Refused`] when the engine is stopping.
    Attach {
        /// The wrapguard instance's pid.
        pid: u32,
        /// The program's command line, for the report.
        command: String,
        /// The most verbose log level the instance shows (`error`, `warn`,
        /// `info`, `debug`); the engine forwards its lines up to it.
        log_level: String,
    },
    /// On a lease: the program now runs as `pid`.
    Program {
        /// The program's pid.
        pid: u32,
    },
    /// On a lease: the program has exited; flush what is queued for this
    /// lease, answer [`LeaseEvent::Released`] and end the lease.
    Release,
    /// The live report; answered by [`SessionReply::Status`].
    Status,
    /// Every tunnel TCP connection's numbers (`status --flows`); answered
    /// by [`SessionReply::Flows`].
    Flows,
    /// Keep running without leases (`wrapguard up` on a running engine);
    /// answered by [`SessionReply::Ok`].
    Persist {
        /// The tunnel's name from now on.
        name: String,
    },
    /// Complete a handshake with every peer that has an endpoint, waiting up
    /// to `timeout_ms` for each; answered by [`SessionReply::Handshakes`].
    Handshake {
        /// How long to wait per peer, in milliseconds.
        timeout_ms: u64,
    },
    /// End the tunnel: cut every flow and exit; answered by
    /// [`SessionReply::Down`] before the engine goes.
    Down,
}

/// The engine's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum SessionReply {
    /// Answer to [`SessionRequest::Describe`].
    Described(Description),
    /// Answer to [`SessionRequest::Attach`].
    Attached {
        /// The lease's id in the report.
        lease: u64,
    },
    /// The request cannot be served; why.
    Refused {
        /// One line for the user.
        reason: String,
    },
    /// Answer to [`SessionRequest::Status`].
    Status(Box<StatusReport>),
    /// Answer to [`SessionRequest::Flows`].
    Flows {
        /// One entry per TCP connection, by flow id.
        flows: Vec<crate::flow_report::TcpFlowStatus>,
    },
    /// Answer to [`SessionRequest::Handshake`]: per peer with an endpoint,
    /// its label and the handshake time in milliseconds (`None`: no answer
    /// within the timeout).
    Handshakes {
        /// `(label, endpoint, milliseconds)` per peer.
        peers: Vec<(String, String, Option<u64>)>,
    },
    /// Answer to [`SessionRequest::Down`].
    Down {
        /// How many flows were open and are now cut.
        cut: usize,
    },
    /// Done.
    Ok,
}

/// What the engine pushes on a lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum LeaseEvent {
    /// One of the engine's log lines (a complete JSON log line, without the
    /// newline) at `level`.
    Log {
        /// `error`, `warn`, `info` or `debug`.
        level: String,
        /// The line.
        line: String,
    },
    /// The tunnel was taken down (`wrapguard down`): the program's tunnel
    /// connections were cut.
    Down {
        /// Flows cut in the whole engine.
        cut: usize,
    },
    /// The lease ended after [`SessionRequest::Release`].
    Released,
}

/// Who an engine is: enough to attach to it, to list it, and to tell
/// whether a config means the same tunnel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Description {
    /// The tunnel's name (`--name`, else the config file's stem).
    pub name: String,
    /// The engine process.
    pub pid: u32,
    /// The config file it was started with (absolute).
    pub config: String,
    /// Our public key (base64).
    pub public_key: String,
    /// Started by `wrapguard up` (or adopted by it): it keeps running
    /// without attached programs.
    pub persistent: bool,
    /// When it started, in seconds since the Unix epoch.
    pub started_unix: u64,
    /// wrapguard's version.
    pub version: String,
    /// What the config and the command line mean ([`super::facts`]).
    pub facts: BTreeMap<String, String>,
    /// The startup log lines every attaching instance repeats: `Interface:`
    /// values.
    pub interface: Vec<String>,
    /// `Peer:` values.
    pub peers: Vec<String>,
    /// The control socket path.
    pub socket: String,
}

/// `wrapguard status` of one engine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// The engine.
    pub tunnel: Description,
    /// How long it has run, in seconds.
    pub uptime_secs: u64,
    /// Each peer, like `wg show`.
    pub peers: Vec<PeerReport>,
    /// The attached programs.
    pub programs: Vec<ProgramReport>,
    /// Open flows in the whole engine.
    pub flows: usize,
    /// The engine counters (`name → value`).
    pub counters: BTreeMap<String, u64>,
    /// The same counters as the log's one line (`name=value …`, in the
    /// engine's order).
    pub counters_line: Option<String>,
}

/// One peer in a [`StatusReport`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerReport {
    /// Short public key (`AbCdEfGh…`).
    pub label: String,
    /// Where its datagrams go now.
    pub endpoint: Option<String>,
    /// Seconds since the latest handshake.
    pub latest_handshake_secs: Option<u64>,
    /// Bytes received from it.
    pub rx_bytes: u64,
    /// Bytes sent to it.
    pub tx_bytes: u64,
    /// Tunnel flows through it now.
    pub flows: usize,
    /// A session is usable for sending now.
    pub has_session: bool,
    /// Known down (handshakes unanswered).
    pub unreachable: bool,
}

impl From<&PeerStatus> for PeerReport {
    fn from(p: &PeerStatus) -> Self {
        PeerReport {
            label: p.label.clone(),
            endpoint: p.endpoint.map(|e| e.to_string()),
            latest_handshake_secs: p.handshake_age.map(|d| d.as_secs()),
            rx_bytes: p.rx_bytes,
            tx_bytes: p.tx_bytes,
            flows: p.active_flows,
            has_session: p.has_session,
            unreachable: p.unreachable,
        }
    }
}

impl From<&PeerReport> for PeerStatus {
    fn from(p: &PeerReport) -> Self {
        PeerStatus {
            label: p.label.clone(),
            endpoint: p.endpoint.as_deref().and_then(|e| e.parse().ok()),
            handshake_age: p.latest_handshake_secs.map(Duration::from_secs),
            rx_bytes: p.rx_bytes,
            tx_bytes: p.tx_bytes,
            active_flows: p.flows,
            has_session: p.has_session,
            unreachable: p.unreachable,
        }
    }
}

/// One attached program in a [`StatusReport`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramReport {
    /// The lease's id.
    pub lease: u64,
    /// The wrapguard instance that runs it.
    pub launcher_pid: u32,
    /// The program's pid, once it runs.
    pub pid: Option<u32>,
    /// Its command line.
    pub command: String,
    /// Its open tunnel TCP connections (its own and its children's).
    pub flows: usize,
    /// Seconds since it attached (0 for a background process).
    pub attached_secs: u64,
    /// A process started under wrapguard that runs on after its launcher
    /// returned (it put itself in the background): it holds the tunnel.
    /// `lease` and `launcher_pid` are those it was started under.
    #[serde(default)]
    pub background: bool,
}

/// Parses an engine counters line (`name=value name=value …`) into a map;
/// what is not `name=number` is skipped.
pub fn parse_counters(line: &str) -> BTreeMap<String, u64> {
    line.split_whitespace()
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_are_json_lines() {
        let r = SessionRequest::Attach {
            pid: 7,
            command: "curl \"x\"".into(),
            log_level: "info".into(),
        };
        let text = serde_json::to_string(&r).expect("encodes");
        assert!(!text.contains('\n'));
        assert!(text.contains("\"op\":\"attach\""));
        assert_eq!(
            serde_json::from_str::<SessionRequest>(&text).expect("decodes"),
            r
        );
        let d: SessionRequest = serde_json::from_str("{\"op\":\"down\"}").expect("down");
        assert_eq!(d, SessionRequest::Down);
        assert!(serde_json::from_str::<SessionRequest>("{\"op\":\"nope\"}").is_err());
        let e = LeaseEvent::Down { cut: 3 };
        let text = serde_json::to_string(&e).expect("encodes");
        assert_eq!(text, "{\"event\":\"down\",\"cut\":3}");
    }

    #[test]
    fn counters_and_peer_reports_round_trip() {
        let c = parse_counters("rx_packets=12 drop_bad_mac=0 junk tx=x");
        assert_eq!(c.get("rx_packets"), Some(&12));
        assert_eq!(c.get("drop_bad_mac"), Some(&0));
        assert_eq!(c.len(), 2);
        let p = PeerStatus {
            label: "AbCd…".into(),
            endpoint: Some("192.0.2.1:51820".parse().expect("addr")),
            handshake_age: Some(Duration::from_secs(3)),
            rx_bytes: 10,
            tx_bytes: 20,
            active_flows: 2,
            has_session: true,
            unreachable: false,
        };
        assert_eq!(PeerStatus::from(&PeerReport::from(&p)), p);
    }
}
