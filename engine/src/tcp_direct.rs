//! Established TCP flows whose bytes the engine thread moves itself:
//! between the program's socket (the data socket, or a connection a proxy
//! handed over) and the stack's TCP rings, with no
//! bridge task and no chunk queue between them
//! ([`crate::FlowBackend::tcp_direct`]); [`crate::tcp_flows`] owns them
//! and calls in here.
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
//! hears how ([`DirectEnd`]), with the socket given back: it records an
//! error before it closes the socket, so before the program can see the
//! end. A handed-over connection is reset here if the flow fails.

use crate::flow::FlowShared;
use crate::{DirectEnd, Errno};
use mio::event::Event;
use mio::unix::SourceFd;
use mio::{Interest, Poll, Token};
use socket2::SockRef;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::time::Instant;
use tcpip::{Stack, TcpHandle};
use tokio::sync::oneshot;
use tracing::debug;

/// Poller tokens of direct flows: `TOKEN_BASE + flow id` (clear of the
/// datagram flows' range).
pub const TOKEN_BASE: usize = 1 << 48;

/// Size of the shared scratch buffer (one read or receive at most).
pub const SCRATCH: usize = 64 * 1024;

/// The engine side of a direct flow.
pub struct Direct {
    /// The flow id (poller token, logs).
    id: u64,
    fd: OwnedFd,
    /// Reset the socket (SO_LINGER 0) if the flow fails.
    reset: bool,
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
    done: oneshot::Sender<DirectEnd>,
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

/// What [`Direct::pump`] needs of the flow that owns it.
pub struct Conn<'a> {
    /// The flow's shared state (errors, release, a FIN seen before).
    pub shared: &'a FlowShared,
    /// Its stack socket.
    pub handle: TcpHandle,
    /// Byte counts, up and down.
    pub bytes_up: &'a mut u64,
    /// See `bytes_up`.
    pub bytes_down: &'a mut u64,
    /// Our FIN was queued.
    pub fin_sent: &'a mut bool,
    /// The stack socket is closed.
    pub stack_closed: bool,
}

/// What [`Direct::pump`] left the flow as.
pub enum Step {
    /// Still carrying.
    Going,
    /// Over (the stack socket was closed or aborted): with the errno that
    /// ended it, if any, and a word for the log.
    Ended(Option<Errno>, &'static str),
}

impl Direct {
    /// Registers `fd` with `poll` for flow `id`; `reset`: reset it if the
    /// flow fails; `pending` holds tunnel bytes that came before, `done`
    /// hears the end. Gives `done` and `fd` back if the socket cannot be
    /// polled.
    pub fn start(
        id: u64,
        fd: OwnedFd,
        reset: bool,
        pending: Vec<u8>,
        done: oneshot::Sender<DirectEnd>,
        poll: &Poll,
    ) -> Result<Direct, (oneshot::Sender<DirectEnd>, OwnedFd)> {
        let token = Token(TOKEN_BASE + id as usize);
        if let Err(e) = poll.registry().register(
            &mut SourceFd(&fd.as_raw_fd()),
            token,
            Interest::READABLE | Interest::WRITABLE,
        ) {
            debug!(flow = id, error = %e, "direct flow: cannot poll the socket");
            return Err((done, fd));
        }
        Ok(Direct {
            id,
            fd,
            reset,
            readable: true,
            writable: true,
            pending,
            off: 0,
            unsent: Vec::new(),
            read_eof: false,
            write_shut: false,
            gone: false,
            done,
        })
    }

    /// The poller saw the socket become ready.
    pub fn mark(&mut self, ev: &Event) {
        // Errors and hang-ups surface at the next read or write.
        let broken = ev.is_error() || ev.is_read_closed() || ev.is_write_closed();
        self.readable |= ev.is_readable() || broken;
        self.writable |= ev.is_writable() || broken;
    }

    /// Moves what can move both ways through one `scratch` buffer; closes
    /// or aborts the stack socket and says so once the flow is over.
    pub fn pump(
        &mut self,
        c: Conn<'_>,
        stack: &mut Stack,
        scratch: &mut [u8],
        now: Instant,
    ) -> Step {
        if c.shared.released.load(Ordering::Acquire) {
            // The bridge dropped the flow (the tunnel was taken down, or
            // its task ended): abort, as the spliced path does.
            if !c.stack_closed {
                let _ = stack.tcp_abort(now, c.handle);
            }
            return Step::Ended(Some(libc::ECONNRESET), "aborted");
        }

        // Up: the program's bytes into the send buffer.
        while c.shared.errno() == 0 && !self.gone {
            if !self.unsent.is_empty() {
                match stack.tcp_send(c.handle, &self.unsent) {
                    Ok(n) => {
                        *c.bytes_up += n as u64;
                        self.unsent.drain(..n);
                        if !self.unsent.is_empty() {
                            break;
                        }
                    }
                    Err(tcpip::Error::WouldBlock) => break,
                    Err(e) => {
                        c.shared.fail(e.errno());
                        break;
                    }
                }
            }
            if !self.readable || self.read_eof {
                break;
            }
            // A closed stack socket takes nothing more, but the program's
            // EOF (or a write, which then fails) must still be seen.
            let room = match stack.tcp_send_capacity(c.handle) {
                Ok(room) => room,
                Err(_) if c.stack_closed => scratch.len(),
                Err(_) => 0,
            };
            if room == 0 {
                // A Writable stack event brings us back.
                let _ = stack.tcp_want_writable(c.handle);
                break;
            }
            let want = room.min(scratch.len());
            match read_fd(&self.fd, &mut scratch[..want]) {
                Io::Did(0) => self.read_eof = true,
                Io::Did(n) => match stack.tcp_send(c.handle, &scratch[..n]) {
                    Ok(m) => {
                        *c.bytes_up += m as u64;
                        self.unsent.extend_from_slice(&scratch[m..n]);
                    }
                    Err(tcpip::Error::WouldBlock) => self.unsent.extend_from_slice(&scratch[..n]),
                    Err(e) => c.shared.fail(e.errno()),
                },
                Io::Blocked => self.readable = false,
                Io::Failed => self.gone = true,
            }
        }
        if self.read_eof && self.unsent.is_empty() && !*c.fin_sent && c.shared.errno() == 0 {
            *c.fin_sent = true;
            let _ = stack.tcp_shutdown_write(now, c.handle);
        }

        // Down: the tunnel's bytes into the socket.
        while !self.gone && !self.write_shut {
            while self.off < self.pending.len() && self.writable {
                match write_fd(&self.fd, &self.pending[self.off..]) {
                    Io::Did(n) => self.off += n,
                    Io::Blocked => self.writable = false,
                    Io::Failed => self.gone = true,
                }
                if self.gone {
                    break;
                }
            }
            if self.off < self.pending.len() || self.gone || !self.writable {
                break;
            }
            if self.pending.capacity() > SCRATCH {
                self.pending = Vec::new();
            } else {
                self.pending.clear();
            }
            self.off = 0;
            if c.shared.down_fin.load(Ordering::Acquire) {
                // The FIN came before the hand-over (its bytes are sent).
                self.shut_write();
                break;
            }
            match stack.tcp_recv(c.handle, scratch) {
                Ok(0) => {
                    if c.shared.errno() == 0 {
                        self.shut_write();
                    }
                    break;
                }
                Ok(n) => {
                    *c.bytes_down += n as u64;
                    let wrote = match write_fd(&self.fd, &scratch[..n]) {
                        Io::Did(m) => m,
                        Io::Blocked => {
                            self.writable = false;
                            0
                        }
                        Io::Failed => {
                            self.gone = true;
                            0
                        }
                    };
                    self.pending.extend_from_slice(&scratch[wrote..n]);
                }
                Err(tcpip::Error::WouldBlock) | Err(tcpip::Error::InvalidHandle) => {
                    // A closed stack socket with nothing left is the end.
                    if c.stack_closed && c.shared.errno() == 0 {
                        self.shut_write();
                    }
                    break;
                }
                Err(e) => {
                    c.shared.fail(e.errno());
                    break;
                }
            }
        }

        let errno = c.shared.errno();
        if errno != 0 {
            if !c.stack_closed {
                let _ = stack.tcp_abort(now, c.handle);
            }
            return Step::Ended(Some(errno), "failed");
        }
        if self.gone {
            // The program closed its socket: close ours as close() would,
            // with a reset if tunnel bytes are left undelivered.
            if !c.stack_closed {
                let unread = self.off < self.pending.len()
                    || stack.tcp_recv_queue(c.handle).unwrap_or(0) > 0;
                let _ = match unread {
                    true => stack.tcp_abort(now, c.handle),
                    false => stack.tcp_close(now, c.handle),
                };
            }
            return Step::Ended(None, "closed by the program");
        }
        if self.read_eof && *c.fin_sent && self.write_shut {
            if !c.stack_closed {
                let _ = stack.tcp_close(now, c.handle);
            }
            return Step::Ended(None, "closed");
        }
        Step::Going
    }

    /// Stops polling the socket and tells the bridge how the flow ended,
    /// giving the socket back (reset first if it should be and the flow
    /// failed); it closes here if the bridge is gone.
    pub fn finish(self, poll: &Poll, bytes_up: u64, bytes_down: u64, errno: Option<Errno>) {
        let _ = poll
            .registry()
            .deregister(&mut SourceFd(&self.fd.as_raw_fd()));
        debug!(flow = self.id, errno = ?errno, "engine-thread flow ended");
        if self.reset && errno.is_some() {
            let _ = SockRef::from(&self.fd).set_linger(Some(std::time::Duration::ZERO));
        }
        let _ = self.done.send(DirectEnd {
            bytes_up,
            bytes_down,
            errno,
            fd: Some(self.fd),
        });
    }

    /// Passes the peer's FIN on to the program's socket.
    fn shut_write(&mut self) {
        let _ = SockRef::from(&self.fd).shutdown(std::net::Shutdown::Write);
        self.write_shut = true;
    }
}
