//! Sharing one running engine between wrapguard instances: the session
//! protocol the launcher and the `up`/`exec`/`status`/`down`/`ls`
//! subcommands speak to an engine over its control socket, after a
//! `control::Request::Session` frame.
//!
//! One JSON object per line, both ways. A connection asks one
//! [`SessionRequest`] and gets one [`SessionReply`], except
//! [`SessionRequest::Attach`]: that connection is a *lease* held by one
//! wrapguard instance for as long as its program runs; the engine pushes
//! [`LeaseEvent`]s on it (log lines, "taken down"), and the instance may
//! send [`SessionRequest::Program`] and [`SessionRequest::Release`] on it.
//! An engine that was not started by `wrapguard up` exits when its last
//! lease ends.
//!
//! - [`proto`]: the messages and the status report.
//! - [`facts`]: what a config means for sharing, and how two differ.
//! - [`host`]: the engine-side registry of leases and the exit decision.
//! - [`holds`]: what holds the engine besides the leases (every process
//!   started under it, and seccomp supervisors), so background processes
//!   keep their tunnel.
//! - [`client`]: a small blocking client for the launcher.
//!
//! The server side lives in the bridge (`bridge::session`), which owns the
//! flows the report counts.

pub mod client;
pub mod facts;
pub mod holds;
pub mod host;
pub mod proto;

pub use host::Host;
pub use proto::{
    Description, LeaseEvent, PeerReport, ProgramReport, SessionReply, SessionRequest, StatusReport,
};

/// The longest session line either side accepts (a status report with
/// many programs stays far below it).
pub const MAX_LINE: usize = 1 << 20;
