//! DNS-over-UDP exchanges on the engine thread: one stack UDP socket per
//! query (ephemeral port on our tunnel address, connected to the server, so
//! only the server's datagrams are taken), the first answer handed back
//! through a oneshot, then the socket is closed. An ICMP error from the far
//! side, or the asker giving up (its receiver dropped), closes it too.

use super::Errno;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use tcpip::{SocketEventKind, Stack, UdpHandle};
use tokio::sync::oneshot;
use tracing::trace;

/// Queries in flight at most; the oldest abandoned ones are closed first.
const MAX_PENDING: usize = 256;
/// Largest answer taken (a UDP DNS answer is at most the datagram size).
const MAX_ANSWER: usize = 65_535;

/// The engine thread's DNS sockets.
#[derive(Default)]
pub struct DnsUdp {
    pending: HashMap<UdpHandle, oneshot::Sender<Vec<u8>>>,
}

impl DnsUdp {
    /// Sends `payload` to `server` from a fresh socket on `local`.
    pub fn start(
        &mut self,
        stack: &mut Stack,
        local: IpAddr,
        server: SocketAddr,
        payload: &[u8],
        reply: oneshot::Sender<Vec<u8>>,
    ) -> Result<(), Errno> {
        self.sweep(stack);
        if self.pending.len() >= MAX_PENDING {
            return Err(libc::ENOBUFS);
        }
        let h = stack
            .udp_bind(SocketAddr::new(local, 0))
            .map_err(|e| e.errno())?;
        let sent = stack
            .udp_connect(h, server)
            .and_then(|()| stack.udp_send(h, payload));
        if let Err(e) = sent {
            let _ = stack.udp_close(h);
            return Err(e.errno());
        }
        self.pending.insert(h, reply);
        Ok(())
    }

    /// Whether `h` is one of ours.
    pub fn owns(&self, h: UdpHandle) -> bool {
        self.pending.contains_key(&h)
    }

    /// A stack event for one of our sockets.
    pub fn event(&mut self, stack: &mut Stack, h: UdpHandle, kind: SocketEventKind) {
        let Some(reply) = self.pending.remove(&h) else {
            return;
        };
        // Anything but Readable is an error (ICMP unreachable): dropping
        // `reply` tells the asker the server cannot be reached.
        if kind == SocketEventKind::Readable {
            let mut buf = vec![0u8; MAX_ANSWER];
            match stack.udp_recv_from(h, &mut buf) {
                Ok((n, from)) => {
                    buf.truncate(n);
                    trace!(from = %from, bytes = n, "dns answer");
                    let _ = reply.send(buf);
                }
                Err(tcpip::Error::WouldBlock) => {
                    // Spurious: keep waiting.
                    self.pending.insert(h, reply);
                    return;
                }
                Err(_) => {}
            }
        }
        let _ = stack.udp_close(h);
    }

    /// Closes the sockets whose asker has given up.
    pub fn sweep(&mut self, stack: &mut Stack) {
        self.pending.retain(|h, reply| {
            if reply.is_closed() {
                let _ = stack.udp_close(*h);
                false
            } else {
                true
            }
        });
    }
}
