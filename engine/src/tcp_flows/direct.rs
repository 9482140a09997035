//! Established TCP flows whose bytes the engine thread moves itself:
//! between the program's socket (a duplicate of the data socket, or a
//! connection a proxy handed over) and the stack's TCP rings, with no
//! bridge task and no chunk queue between them
//! ([`crate::FlowBackend::tcp_direct`]).
//!
//! Each direction copies once through one shared scratch buffer: up, a
//! `read` of at most the send buffer's free space goes straight into the
//! ring; down, what the socket cannot take now waits in the flow's
//! `pending` (allocated only then). The socket is registered
//! edge-triggered with the engine's poller; its readiness is remembered
//! until a read or write would block, and stack events (room in the send
//! buffer, data, FIN, errors) service the flow too.
//!
//! The flow ends when both directions have ended as TCP ends (the
//! program's EOF sent as FIN, the peer's FIN passed on as
//! `shutdown(SHUT_WR)`), when the program closes its socket, on a tunnel
//! error, or when the bridge drops the flow's stream (abort). The bridge
//! hears how ([`DirectEnd`]) and keeps its own descriptor of the socket
//! until then, so it records an error before the program can see the end.

use super::TcpFlows;
use crate::lend::Lent;
use crate::{DirectEnd, Errno};
use mio::event::Event;
use mio::unix::SourceFd;
use mio::{Interest, Token};
use socket2::SockRef;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::time::Instant;
use tcpip::SocketEventKind;
use tokio::sync::oneshot;
use tracing::debug;

/// Poller tokens of direct flows: `TOKEN_BASE + flow id` (clear of the
/// datagram flows' range).
pub const TOKEN_BASE: usize = 1 << 48;

/// Send buffer asked for on a data socket (the kernel caps it at
/// `net.core.wmem_max`).
const DATA_SOCKET_BUFFER: usize = 4 << 20;

/// Size of the shared scratch buffer (one read or receive at most).
const SCRATCH: usize = 64 * 1024;

/// The engine side of a direct flow.
pub struct Direct {
    fd: OwnedFd,
    /// The socket may have bytes to read (until a read would block).
    readable: bool,
    /// The socket may take bytes (until a write would block).
    writable: bool,
    /// Tunnel bytes the socket had no room for, from `off` on.
    pending: Vec<u8>,
    off: usize,
    /// Program bytes the send buffer did not take.
    unsent: Vec<u8>,
    /// The program's side reached EOF (FIN queued once `unsent` is).
    read_eof: bool,
    /// The peer's FIN was passed on to the socket.
    write_shut: bool,
    /// The program closed its socket (a write failed with EPIPE…).
    gone: bool,
    done: Option<oneshot::Sender<DirectEnd>>,
}

/// One step of a non-blocking read or write.
enum Io {
    Did(usize),
    Blocked,
    Failed,
}

/// Runs `op` again while it is interrupted.
fn io_step(mut op: impl FnMut() -> io::Result<usize>) -> Io {
    loop {
        return match op() {
            Ok(n) => Io::Did(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Io::Blocked,
            Err(_) => Io::Failed,
        };
    }
}

fn read_fd(fd: &OwnedFd, buf: &mut [u8]) -> Io {
    let sock = SockRef::from(fd);
    io_step(|| (&*sock).read(buf))
}

fn write_fd(fd: &OwnedFd, buf: &[u8]) -> Io {
    // MSG_NOSIGNAL: a closed peer gives EPIPE, never SIGPIPE.
    let sock = SockRef::from(fd);
    io_step(|| sock.send_with_flags(buf, libc::MSG_NOSIGNAL))
}

impl TcpFlows {
    /// Starts carrying established flow `id` between its tunnel connection
    /// and `fd`; `done` hears how it ends. A flow that is gone (or not
    /// established) ends at once with `ECONNRESET`.
    pub fn attach(
        &mut self,
        cx: &mut Lent<'_>,
        id: u64,
        fd: OwnedFd,
        done: oneshot::Sender<DirectEnd>,
        now: Instant,
    ) {
        let Some(f) = self
            .flows
            .get_mut(&id)
            .filter(|f| f.connecting.is_none() && f.direct.is_none())
        else {
            let _ = done.send(DirectEnd {
                bytes_up: 0,
                bytes_down: 0,
                errno: Some(libc::ECONNRESET),
            });
            return;
        };
        // A data socket (unix) holds what the stack received until the
        // program reads it; the bridge's chunk queue used to add to that.
        let sock = SockRef::from(&fd);
        if sock.domain().is_ok_and(|d| d == socket2::Domain::UNIX) {
            let _ = sock.set_send_buffer_size(DATA_SOCKET_BUFFER);
        }
        let token = Token(TOKEN_BASE + id as usize);
        if let Err(e) = cx.poll.registry().register(
            &mut SourceFd(&fd.as_raw_fd()),
            token,
            Interest::READABLE | Interest::WRITABLE,
        ) {
            debug!(flow = id, error = %e, "direct flow: cannot poll the socket");
            let _ = done.send(DirectEnd {
                bytes_up: f.bytes_up,
                bytes_down: f.bytes_down,
                errno: Some(libc::ENOBUFS),
            });
            return;
        }
        // What the stack delivered before the hand-over goes first.
        let mut pending = Vec::new();
        while let Some(c) = f.shared.down.pop() {
            pending.extend_from_slice(&c);
        }
        f.direct = Some(Direct {
            fd,
            readable: true,
            writable: true,
            pending,
            off: 0,
            unsent: Vec::new(),
            read_eof: false,
            write_shut: false,
            gone: false,
            done: Some(done),
        });
        if self.scratch.len() < SCRATCH {
            self.scratch = vec![0; SCRATCH];
        }
        debug!(flow = id, "flow carried on the engine thread");
        self.service_direct(cx, id, now);
    }

    /// The poller saw direct flow `id`'s socket become ready.
    pub fn mark_ready(&mut self, id: u64, ev: &Event) {
        let Some(d) = self.flows.get_mut(&id).and_then(|f| f.direct.as_mut()) else {
            return;
        };
        // Errors and hang-ups surface at the next read or write.
        let broken = ev.is_error() || ev.is_read_closed() || ev.is_write_closed();
        d.readable |= ev.is_readable() || broken;
        d.writable |= ev.is_writable() || broken;
        self.ready.push(id);
    }

    /// Whether some direct flow's socket is ready.
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Services the direct flows whose sockets became ready.
    pub fn service_ready(&mut self, cx: &mut Lent<'_>, now: Instant) {
        if self.ready.is_empty() {
            return;
        }
        let mut ids = std::mem::take(&mut self.ready);
        ids.sort_unstable();
        ids.dedup();
        for &id in &ids {
            self.service_direct(cx, id, now);
        }
        ids.clear();
        if self.ready.is_empty() {
            // Keep the allocation.
            self.ready = ids;
        }
    }

    /// A stack event on direct flow `id`.
    pub fn on_direct_event(
        &mut self,
        cx: &mut Lent<'_>,
        id: u64,
        kind: SocketEventKind,
        now: Instant,
    ) {
        match kind {
            SocketEventKind::Error(e) => {
                // What arrived before the error goes to the program first.
                self.service_direct(cx, id, now);
                if let Some(f) = self.flows.get(&id) {
                    f.shared.fail(e.errno());
                }
            }
            SocketEventKind::Closed => {
                if let Some(f) = self.flows.get_mut(&id) {
                    f.stack_closed = true;
                }
            }
            _ => {}
        }
        self.service_direct(cx, id, now);
    }

    /// Moves what can move both ways for direct flow `id`, and ends it if
    /// it is over.
    pub fn service_direct(&mut self, cx: &mut Lent<'_>, id: u64, now: Instant) {
        let TcpFlows { flows, scratch, .. } = self;
        let Some(f) = flows.get_mut(&id) else {
            return;
        };
        let h = f.handle;
        let Some(d) = f.direct.as_mut() else {
            return;
        };
        if f.shared.released.load(Ordering::Acquire) {
            // The bridge dropped the flow (the tunnel was taken down, or
            // its task ended): abort, as the spliced path does.
            if !f.stack_closed {
                let _ = cx.stack.tcp_abort(now, h);
            }
            return self.end_direct(cx, id, Some(libc::ECONNRESET), "aborted");
        }

        // Up: the program's bytes into the send buffer.
        while f.shared.errno() == 0 && !d.gone {
            if !d.unsent.is_empty() {
                match cx.stack.tcp_send(h, &d.unsent) {
                    Ok(n) => {
                        f.bytes_up += n as u64;
                        d.unsent.drain(..n);
                        if !d.unsent.is_empty() {
                            break;
                        }
                    }
                    Err(tcpip::Error::WouldBlock) => break,
                    Err(e) => {
                        f.shared.fail(e.errno());
                        break;
                    }
                }
            }
            if !d.readable || d.read_eof {
                break;
            }
            // A closed stack socket takes nothing more, but the program's
            // EOF (or a write, which then fails) must still be seen.
            let room = match cx.stack.tcp_send_capacity(h) {
                Ok(room) => room,
                Err(_) if f.stack_closed => scratch.len(),
                Err(_) => 0,
            };
            if room == 0 {
                // A Writable stack event brings us back.
                let _ = cx.stack.tcp_want_writable(h);
                break;
            }
            let want = room.min(scratch.len());
            match read_fd(&d.fd, &mut scratch[..want]) {
                Io::Did(0) => d.read_eof = true,
                Io::Did(n) => match cx.stack.tcp_send(h, &scratch[..n]) {
                    Ok(m) => {
                        f.bytes_up += m as u64;
                        d.unsent.extend_from_slice(&scratch[m..n]);
                    }
                    Err(tcpip::Error::WouldBlock) => d.unsent.extend_from_slice(&scratch[..n]),
                    Err(e) => f.shared.fail(e.errno()),
                },
                Io::Blocked => d.readable = false,
                Io::Failed => d.gone = true,
            }
        }
        if d.read_eof && d.unsent.is_empty() && !f.fin_sent && f.shared.errno() == 0 {
            f.fin_sent = true;
            let _ = cx.stack.tcp_shutdown_write(now, h);
        }

        // Down: the tunnel's bytes into the socket.
        while !d.gone && !d.write_shut {
            while d.off < d.pending.len() && d.writable {
                match write_fd(&d.fd, &d.pending[d.off..]) {
                    Io::Did(n) => d.off += n,
                    Io::Blocked => d.writable = false,
                    Io::Failed => d.gone = true,
                }
                if d.gone {
                    break;
                }
            }
            if d.off < d.pending.len() || d.gone || !d.writable {
                break;
            }
            if d.pending.capacity() > SCRATCH {
                d.pending = Vec::new();
            } else {
                d.pending.clear();
            }
            d.off = 0;
            if f.shared.down_fin.load(Ordering::Acquire) {
                // The FIN came before the hand-over (its bytes are sent).
                shut_write(d);
                break;
            }
            match cx.stack.tcp_recv(h, scratch) {
                Ok(0) => {
                    if f.shared.errno() == 0 {
                        shut_write(d);
                    }
                    break;
                }
                Ok(n) => {
                    f.bytes_down += n as u64;
                    let wrote = match write_fd(&d.fd, &scratch[..n]) {
                        Io::Did(m) => m,
                        Io::Blocked => {
                            d.writable = false;
                            0
                        }
                        Io::Failed => {
                            d.gone = true;
                            0
                        }
                    };
                    d.pending.extend_from_slice(&scratch[wrote..n]);
                }
                Err(tcpip::Error::WouldBlock) | Err(tcpip::Error::InvalidHandle) => {
                    // A closed stack socket with nothing left is the end.
                    if f.stack_closed && f.shared.errno() == 0 {
                        shut_write(d);
                    }
                    break;
                }
                Err(e) => {
                    f.shared.fail(e.errno());
                    break;
                }
            }
        }

        let errno = f.shared.errno();
        if errno != 0 {
            if !f.stack_closed {
                let _ = cx.stack.tcp_abort(now, h);
            }
            return self.end_direct(cx, id, Some(errno), "failed");
        }
        if d.gone {
            // The program closed its socket: close ours as close() would,
            // with a reset if tunnel bytes are left undelivered.
            if !f.stack_closed {
                let unread = d.off < d.pending.len() || cx.stack.tcp_recv_queue(h).unwrap_or(0) > 0;
                let _ = match unread {
                    true => cx.stack.tcp_abort(now, h),
                    false => cx.stack.tcp_close(now, h),
                };
            }
            return self.end_direct(cx, id, None, "closed by the program");
        }
        if d.read_eof && f.fin_sent && d.write_shut {
            if !f.stack_closed {
                let _ = cx.stack.tcp_close(now, h);
            }
            self.end_direct(cx, id, None, "closed");
        }
    }

    /// Ends direct flow `id`: stops polling its socket, tells the bridge
    /// and forgets the flow (the stack socket was closed or aborted).
    fn end_direct(&mut self, cx: &mut Lent<'_>, id: u64, errno: Option<Errno>, why: &str) {
        let Some(f) = self.flows.get_mut(&id) else {
            return;
        };
        if let Some(mut d) = f.direct.take() {
            let _ = cx
                .poll
                .registry()
                .deregister(&mut SourceFd(&d.fd.as_raw_fd()));
            if let Some(done) = d.done.take() {
                let _ = done.send(DirectEnd {
                    bytes_up: f.bytes_up,
                    bytes_down: f.bytes_down,
                    errno,
                });
            }
        }
        self.remove(cx, id, why);
    }
}

/// Passes the peer's FIN on to the program's socket.
fn shut_write(d: &mut Direct) {
    let _ = SockRef::from(&d.fd).shutdown(std::net::Shutdown::Write);
    d.write_shut = true;
}
