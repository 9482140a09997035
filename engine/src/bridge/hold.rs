//! The server side of a hold (`control::Request::Hold`; the registry is
//! [`crate::session::holds`]): one connection that every process started
//! under wrapguard shares, open for as long as any of them lives.
//!
//! After the `Hold` frame, each message on it is one frame sent with one
//! `sendmsg`: `Hello` (a process joined the hold) or `Serve` with one end
//! of a new socket pair attached (`SCM_RIGHTS`). That end is served as a
//! control connection without the `SO_PEERCRED` user check the control
//! socket makes: holding this connection is the authorisation (it was
//! opened by a process started under wrapguard, before it could drop its
//! privileges). Frames from several processes never interleave inside a
//! frame (one small `sendmsg` is one socket buffer), and a descriptor
//! arrives with the first bytes of its own frame, so descriptors are
//! matched to `Serve` frames in order.

use super::shared::Shared;
use crate::session::holds::{HoldKind, Opener};
use control::{Request, MAX_FRAME, PREFIX_LEN};
use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use tokio::io::Interest;
use tokio::net::UnixStream;
use tracing::{debug, warn};

/// Descriptors received on one hold and not yet matched to their frame
/// (more means a client that does not follow the protocol).
const MAX_PENDING_FDS: usize = 64;

/// Serves the hold `stream`, opened by process `pid`, until every process
/// holding it is gone.
pub(super) async fn serve(s: Arc<Shared>, stream: UnixStream, pid: u32) {
    let opener = opener(&s, pid);
    debug!(pid, lease = ?opener.lease, "hold opened");
    let id = s.holds.open(HoldKind::Shim, opener);
    let mut buf: Vec<u8> = Vec::with_capacity(MAX_FRAME);
    let mut fds: VecDeque<OwnedFd> = VecDeque::new();
    let mut chunk = [0u8; MAX_FRAME];
    'read: loop {
        if stream.readable().await.is_err() {
            break;
        }
        let got = stream.try_io(Interest::READABLE, || {
            fdpass::recv_with_fd(stream.as_raw_fd(), &mut chunk, libc::MSG_DONTWAIT)
        });
        match got {
            Ok((0, _)) => break,
            Ok((n, fd)) => {
                buf.extend_from_slice(&chunk[..n]);
                if let Some(fd) = fd {
                    if fds.len() >= MAX_PENDING_FDS {
                        warn!(pid, "hold: descriptors without their frames; closing it");
                        break;
                    }
                    fds.push_back(fd);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => break,
        }
        while buf.len() >= PREFIX_LEN {
            let Ok(total) = control::frame_len([buf[0], buf[1]]) else {
                warn!(pid, "hold: malformed frame; closing it");
                break 'read;
            };
            if buf.len() < total {
                break;
            }
            match Request::decode(&buf[..total]) {
                Ok((Request::Hello { pid: who, version }, _)) => {
                    debug!(pid = who, version, hold = id, "shim loaded");
                    s.holds.hello(id, who);
                }
                Ok((Request::Serve, _)) => match fds.pop_front() {
                    Some(fd) => pass_on(&s, fd).await,
                    None => debug!(hold = id, "hold: Serve without a descriptor"),
                },
                Ok((other, _)) => debug!(hold = id, request = ?other, "hold: ignored request"),
                Err(_) => {
                    warn!(pid, "hold: malformed frame; closing it");
                    break 'read;
                }
            }
            buf.drain(..total);
        }
    }
    s.holds.close(id);
    debug!(pid, hold = id, "hold closed (no process holds it any more)");
}

/// Hands a passed socket to the accept loop, which serves it as a control
/// connection authorised by its hold.
async fn pass_on(s: &Shared, fd: OwnedFd) {
    let std = std::os::unix::net::UnixStream::from(fd);
    let stream = std
        .set_nonblocking(true)
        .and_then(|()| UnixStream::from_std(std));
    match stream {
        Ok(st) => {
            let _ = s.passed_tx.send(st).await;
        }
        Err(e) => debug!(error = %e, "hold: cannot serve a passed socket"),
    }
}

/// Who opened the hold: the lease whose program (or launcher) is the
/// opener or one of its ancestors.
fn opener(s: &Shared, pid: u32) -> Opener {
    let Some(host) = &s.host else {
        return Opener {
            pid,
            ..Opener::default()
        };
    };
    let leases = host.leases();
    let lease = super::session::lease_of(pid, &leases);
    let found = lease.and_then(|l| leases.iter().find(|x| x.lease == l));
    Opener {
        pid,
        lease,
        launcher_pid: found.map(|l| l.launcher_pid).unwrap_or(0),
        command: found.map(|l| l.command.clone()).unwrap_or_default(),
    }
}

/// Opens a hold for a seccomp supervisor of process `pid`; the returned
/// closure closes it (when no process is left under the filter).
pub(super) fn seccomp(s: &Shared, pid: u32) -> Box<dyn FnOnce() + Send> {
    let holds = s.holds.clone();
    let id = holds.open(HoldKind::Seccomp, opener(s, pid));
    Box::new(move || holds.close(id))
}
