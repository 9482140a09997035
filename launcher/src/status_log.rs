//! The status report in the log (SIGUSR1, and at `debug` on exit): one
//! summary line, one line per peer, the engine counters.

use engine::FlowBackend;
use tracing::{debug, info};

/// Logs the per-peer status report at `level`.
pub fn log_status(backend: &dyn FlowBackend, level: tracing::Level) {
    log_report(&backend.status(), backend.counters().as_deref(), level);
}

/// Logs a status report (peers and the counters line) at `level`.
pub fn log_report(peers: &[engine::PeerStatus], counters: Option<&str>, level: tracing::Level) {
    let flows: usize = peers.iter().map(|p| p.active_flows).sum();
    let msg = format!(
        "Status: {} peer{}, {flows} active flow{}",
        peers.len(),
        if peers.len() == 1 { "" } else { "s" },
        if flows == 1 { "" } else { "s" }
    );
    if level == tracing::Level::DEBUG {
        debug!("{msg}");
    } else {
        info!("{msg}");
    }
    engine::status::log(peers, level);
    if let Some(c) = counters {
        if level == tracing::Level::DEBUG {
            debug!("Engine counters: {c}");
        } else {
            info!("Engine counters: {c}");
        }
    }
}
