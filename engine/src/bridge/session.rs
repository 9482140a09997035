//! The server side of the session protocol ([`crate::session`]): one
//! connection that sent `Request::Session`. Here because the report counts
//! the bridge's flows per program.

use super::shared::Shared;
use crate::session::holds::HoldKind;
use crate::session::proto::{
    parse_counters, LeaseEvent, PeerReport, ProgramReport, SessionReply, SessionRequest,
    StatusReport,
};
use crate::session::{Host, MAX_LINE};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::UnixStream;
use tracing::{debug, info, Level};

/// How far up the process tree a flow's pid is followed to find the
/// program it belongs to.
const MAX_ANCESTRY: usize = 64;

/// Serves one session connection.
pub(super) async fn serve(s: Arc<Shared>, stream: UnixStream) {
    let Some(host) = s.host.clone() else {
        return debug!("session request on an engine that is not shared");
    };
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    let req = match read_request(&mut rd).await {
        Some(Ok(r)) => r,
        Some(Err(e)) => {
            let reason = format!("malformed session request: {e}");
            return write_line(&mut wr, &SessionReply::Refused { reason }).await;
        }
        None => return,
    };
    let answer = match req {
        SessionRequest::Describe => SessionReply::Described(host.description()),
        SessionRequest::Status => SessionReply::Status(Box::new(report(&s, &host).await)),
        SessionRequest::Flows => SessionReply::Flows {
            flows: flows_report(&s).await,
        },
        SessionRequest::Persist { name } => {
            info!(name = %name, "tunnel {name} now runs on without attached programs (wrapguard up)");
            host.persist(name);
            SessionReply::Ok
        }
        SessionRequest::Handshake { timeout_ms } => handshakes(&s, timeout_ms).await,
        SessionRequest::Down => {
            let backend = s.backend.clone();
            let cut = tokio::task::spawn_blocking(move || backend.active_flows())
                .await
                .unwrap_or(0);
            info!(
                cut,
                "tunnel taken down (wrapguard down): cutting {cut} flows"
            );
            host.take_down(cut);
            SessionReply::Down { cut }
        }
        SessionRequest::Attach {
            pid,
            command,
            log_level,
        } => return lease(&s, &host, rd, wr, pid, command, &log_level).await,
        SessionRequest::Program { .. } | SessionRequest::Release => SessionReply::Refused {
            reason: "not on a lease".into(),
        },
    };
    write_line(&mut wr, &answer).await;
}

/// Reads one request line (`None`: the connection ended first).
async fn read_request<R: AsyncRead + Unpin>(
    rd: &mut BufReader<R>,
) -> Option<Result<SessionRequest, String>> {
    let mut line = String::new();
    match (&mut *rd).take(MAX_LINE as u64).read_line(&mut line).await {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(serde_json::from_str(&line).map_err(|e| e.to_string())),
    }
}

async fn write_line<T: serde::Serialize>(wr: &mut OwnedWriteHalf, v: &T) {
    if let Ok(mut text) = serde_json::to_string(v) {
        text.push('\n');
        let _ = wr.write_all(text.as_bytes()).await;
    }
}

fn level(name: &str) -> Level {
    match name {
        "error" => Level::ERROR,
        "warn" => Level::WARN,
        "debug" => Level::DEBUG,
        _ => Level::INFO,
    }
}

/// A lease: held until the instance releases it or its connection ends;
/// the engine's events go out on it meanwhile.
async fn lease(
    s: &Shared,
    host: &Arc<Host>,
    mut rd: BufReader<tokio::net::unix::OwnedReadHalf>,
    mut wr: OwnedWriteHalf,
    launcher_pid: u32,
    command: String,
    log_level: &str,
) {
    if s.cut.borrow().to_owned() || host.stopping() {
        let reason = "stopping".to_string();
        return write_line(&mut wr, &SessionReply::Refused { reason }).await;
    }
    let (id, mut events) = match host.attach(launcher_pid, command.clone(), level(log_level)) {
        Ok(x) => x,
        Err(reason) => return write_line(&mut wr, &SessionReply::Refused { reason }).await,
    };
    debug!(lease = id, launcher_pid, command = %command, "program attached");
    write_line(&mut wr, &SessionReply::Attached { lease: id }).await;
    let writer_host = host.clone();
    let writer = tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            let last = ev == LeaseEvent::Released;
            write_line(&mut wr, &ev).await;
            if last {
                break;
            }
        }
        writer_host.release(id);
    });
    loop {
        match read_request(&mut rd).await {
            Some(Ok(SessionRequest::Program { pid })) => host.set_program(id, pid),
            Some(Ok(SessionRequest::Release)) => {
                // Behind the lines already queued; the writer ends the lease.
                if let Some(tx) = host.events(id) {
                    let _ = tx.send(LeaseEvent::Released).await;
                }
                return;
            }
            Some(_) => {}
            None => break,
        }
    }
    // The instance is gone without releasing (killed): end the lease now.
    writer.abort();
    host.release(id);
    debug!(lease = id, "program detached");
}

/// Starts a handshake with every peer that has an endpoint and waits for
/// each, up to `timeout_ms`.
async fn handshakes(s: &Shared, timeout_ms: u64) -> SessionReply {
    let backend = s.backend.clone();
    let peers = tokio::task::spawn_blocking(move || backend.status())
        .await
        .unwrap_or_default();
    let mut waits = Vec::new();
    for (i, p) in peers.iter().enumerate() {
        let Some(ep) = p.endpoint else { continue };
        let wait = s.backend.handshake(i);
        waits.push((p.label.clone(), ep.to_string(), wait));
    }
    let limit = Duration::from_millis(timeout_ms);
    let mut out = Vec::new();
    // Started together above; waited for in turn, each within the limit.
    for (label, ep, wait) in waits {
        let took = match wait {
            Some(w) => tokio::time::timeout(limit, w).await.ok(),
            None => None,
        };
        out.push((label, ep, took.map(|d| d.as_millis() as u64)));
    }
    SessionReply::Handshakes { peers: out }
}

/// Every TCP flow with the program that opened it (outgoing flows: the
/// bridge knows the backend's id of each and who asked for it).
async fn flows_report(s: &Shared) -> Vec<crate::flow_report::TcpFlowStatus> {
    let backend = s.backend.clone();
    let mut flows = tokio::task::spawn_blocking(move || backend.tcp_flows())
        .await
        .unwrap_or_default();
    let by_backend: HashMap<u64, u64> = s
        .backend_ids
        .lock()
        .map(|m| m.iter().map(|(&bridge, &id)| (id, bridge)).collect())
        .unwrap_or_default();
    let pids = s.flow_pids.lock().map(|m| m.clone()).unwrap_or_default();
    for f in &mut flows {
        f.pid = by_backend
            .get(&f.flow)
            .and_then(|bridge| pids.get(bridge))
            .copied();
        f.program = f.pid.and_then(command_of);
    }
    flows
}

/// The live report.
async fn report(s: &Shared, host: &Host) -> StatusReport {
    let backend = s.backend.clone();
    let (peers, counters, flows) = tokio::task::spawn_blocking(move || {
        (backend.status(), backend.counters(), backend.active_flows())
    })
    .await
    .unwrap_or_default();
    let leases = host.leases();
    let flow_pids: Vec<u32> = s
        .flow_pids
        .lock()
        .map(|m| m.values().copied().collect())
        .unwrap_or_default();
    let live: Vec<u64> = leases.iter().map(|l| l.lease).collect();
    let background = s.holds.background(&live, alive);
    let mut owners = owners(&leases);
    // Background processes count their own flows (and their children's)
    // under a key past every lease id.
    let first_bg = leases.iter().map(|l| l.lease).max().unwrap_or(0) + 1;
    for (i, b) in background.iter().enumerate() {
        if let Some(p) = b.pid {
            owners.entry(p).or_insert(first_bg + i as u64);
        }
    }
    let mut per_lease: HashMap<u64, usize> = HashMap::new();
    let mut parents = HashMap::new();
    for pid in flow_pids {
        if let Some(l) = owner_of(pid, &owners, &mut parents) {
            *per_lease.entry(l).or_default() += 1;
        }
    }
    let mut programs: Vec<ProgramReport> = leases
        .iter()
        .map(|l| ProgramReport {
            lease: l.lease,
            launcher_pid: l.launcher_pid,
            pid: l.pid,
            command: l.command.clone(),
            flows: per_lease.get(&l.lease).copied().unwrap_or(0),
            attached_secs: l.attached.as_secs(),
            background: false,
        })
        .collect();
    for (i, b) in background.iter().enumerate() {
        let command = match b.pid.and_then(command_of) {
            Some(c) => c,
            None if b.kind == HoldKind::Seccomp => {
                format!("{} (its processes under the seccomp filter)", b.command)
            }
            None => b.command.clone(),
        };
        programs.push(ProgramReport {
            lease: b.lease.unwrap_or(0),
            launcher_pid: b.launcher_pid,
            pid: b.pid,
            command,
            flows: per_lease.get(&(first_bg + i as u64)).copied().unwrap_or(0),
            attached_secs: 0,
            background: true,
        });
    }
    StatusReport {
        tunnel: host.description(),
        uptime_secs: host.uptime().as_secs(),
        peers: peers.iter().map(PeerReport::from).collect(),
        programs,
        flows,
        counters: counters.as_deref().map(parse_counters).unwrap_or_default(),
        counters_line: counters,
    }
}

/// Whether process `pid` still runs (a zombie does not).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// The command line of process `pid`, from `/proc/PID/cmdline`.
fn command_of(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let words: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// The lease whose program (or launcher) is `pid` or one of its ancestors.
pub(super) fn lease_of(pid: u32, leases: &[crate::session::host::LeaseInfo]) -> Option<u64> {
    owner_of(pid, &owners(leases), &mut HashMap::new())
}

/// Program and launcher pids → their lease.
fn owners(leases: &[crate::session::host::LeaseInfo]) -> HashMap<u32, u64> {
    let mut m = HashMap::new();
    for l in leases {
        m.insert(l.launcher_pid, l.lease);
        if let Some(p) = l.pid {
            m.insert(p, l.lease);
        }
    }
    m
}

/// The lease whose program is `pid` or one of its ancestors.
fn owner_of(
    pid: u32,
    owners: &HashMap<u32, u64>,
    parents: &mut HashMap<u32, Option<u32>>,
) -> Option<u64> {
    let mut p = pid;
    for _ in 0..MAX_ANCESTRY {
        if let Some(l) = owners.get(&p) {
            return Some(*l);
        }
        let up = *parents.entry(p).or_insert_with(|| parent_pid(p));
        match up {
            Some(q) if q > 1 && q != p => p = q,
            _ => return None,
        }
    }
    None
}

/// The parent of `pid`, from `/proc/PID/stat` (the field after the
/// command name, which may itself hold spaces and parentheses).
fn parent_pid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_ppid(&stat)
}

fn parse_ppid(stat: &str) -> Option<u32> {
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppid_from_stat_with_odd_names() {
        assert_eq!(parse_ppid("42 (curl) S 41 42 41 0"), Some(41));
        assert_eq!(parse_ppid("42 (a) b) (c) R 7 1 1"), Some(7));
        assert_eq!(parse_ppid("garbage"), None);
    }

    #[test]
    fn flows_of_children_count_for_their_program() {
        let own = std::process::id();
        let leases = vec![crate::session::host::LeaseInfo {
            lease: 9,
            launcher_pid: 1_000_000_000,
            pid: Some(parent_pid(own).expect("our parent")),
            command: "test".into(),
            attached: Duration::ZERO,
        }];
        let owners = owners(&leases);
        let mut parents = HashMap::new();
        assert_eq!(owner_of(own, &owners, &mut parents), Some(9));
        assert_eq!(owner_of(1, &owners, &mut parents), None);
    }
}
