//! What every serving task shares: the engine, the credentials, the
//! policy, and the limits on clients and handshakes.

use crate::auth::Credentials;
use crate::dial::Policy;
use crate::tunnel::Engine;
use std::sync::Arc;
use std::time::Duration;

/// Most clients served at once by one listener; more are closed at once.
pub const MAX_CLIENTS: usize = 512;
/// How long a client may take to send its whole request.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// Most UDP peers one UDP forward or association serves at once.
pub const MAX_UDP_PEERS: usize = 256;
/// How long a UDP peer's flow lives without traffic.
pub const UDP_IDLE: Duration = Duration::from_secs(120);
/// Largest datagram relayed (payload plus headers).
pub const MAX_DATAGRAM: usize = 65_536 + 512;

/// Shared by the tasks of all front-ends.
#[derive(Debug)]
pub struct Ctx {
    /// The engine's control socket.
    pub engine: Engine,
    /// Required credentials (`--proxy-auth`), if any.
    pub auth: Option<Credentials>,
    /// What may be reached.
    pub policy: Policy,
}

/// A handle on the shared context.
pub type SharedCtx = Arc<Ctx>;
