//! The application-facing operations of a connection: `send`, `recv`,
//! `shutdown_write`, `close`, `abort` and the queue getters.

use super::{State, Tcb, Timer};
use crate::error::Error;
use std::time::Instant;

impl Tcb {
    /// Queues bytes to send; returns how many were accepted.
    pub(crate) fn send(&mut self, data: &[u8]) -> Result<usize, Error> {
        if let Some(e) = self.error {
            return Err(if e == Error::ConnectionReset {
                Error::BrokenPipe
            } else {
                e
            });
        }
        if self.fin_queued || self.app_closed {
            return Err(Error::BrokenPipe);
        }
        match self.state {
            State::SynSent | State::SynReceived | State::Established | State::CloseWait => {}
            State::Closed | State::Listen => return Err(Error::NotConnected),
            _ => return Err(Error::BrokenPipe),
        }
        let n = self.tx.enqueue_slice(data);
        if n < data.len() {
            self.want_write = true;
        }
        if n == 0 && !data.is_empty() {
            return Err(Error::WouldBlock);
        }
        Ok(n)
    }

    /// Reads received bytes; `Ok(0)` is end of stream.
    pub(crate) fn recv(&mut self, out: &mut [u8]) -> Result<usize, Error> {
        let before_wnd = self.last_adv_wnd;
        let n = self.rx.dequeue_slice(out);
        if self.rx.is_empty() {
            self.readable_notified = false;
        }
        if n > 0 {
            // Window update when the window grew enough (RFC 9293 §3.8.6.2.2).
            let wnd = self.rcv_wnd();
            let thresh = (2 * self.payload_mss()).min(self.rx.capacity() / 2);
            if self.is_synchronized() && !self.fin_received && wnd >= before_wnd + thresh {
                self.ack_now = true;
            }
            return Ok(n);
        }
        if out.is_empty() {
            return Ok(0);
        }
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.fin_received {
            return Ok(0);
        }
        match self.state {
            State::Closed | State::Listen => Err(Error::NotConnected),
            _ => Err(Error::WouldBlock),
        }
    }

    /// Bytes waiting to be read.
    pub(crate) fn recv_queue(&self) -> usize {
        self.rx.len()
    }

    /// Bytes that can be queued for sending.
    /// Asks for a `Writable` event once acknowledged data frees room in
    /// the send buffer (as a `send` that did not fit does).
    pub(crate) fn want_writable(&mut self) {
        self.want_write = true;
    }

    pub(crate) fn send_capacity(&self) -> usize {
        self.tx.free()
    }

    /// Bytes queued and not yet acknowledged.
    pub(crate) fn send_queue(&self) -> usize {
        self.tx.len()
    }

    /// Shuts down the write side: a FIN follows the queued data.
    pub(crate) fn shutdown_write(&mut self) {
        if self.fin_queued {
            return;
        }
        match self.state {
            State::SynSent => {
                self.enter_closed();
            }
            State::SynReceived | State::Established => {
                self.fin_queued = true;
                self.state = State::FinWait1;
            }
            State::CloseWait => {
                self.fin_queued = true;
                self.state = State::LastAck;
            }
            _ => {}
        }
    }

    /// The application is done with the socket: graceful close, or a reset
    /// when unread data would be lost (as Linux does).
    pub(crate) fn close(&mut self, now: Instant) {
        self.app_closed = true;
        if !self.rx.is_empty() && self.is_synchronized() {
            self.abort();
            return;
        }
        self.shutdown_write();
        if self.state == State::FinWait2 {
            self.timers
                .set(Timer::Linger, now + self.cfg.fin_wait2_timeout);
        }
        if matches!(self.state, State::Closed) {
            self.tx.release();
            self.rx.release();
            self.sent.release();
        }
    }

    /// Sends a RST (if synchronized) and closes at once.
    pub(crate) fn abort(&mut self) {
        if matches!(
            self.state,
            State::SynReceived
                | State::Established
                | State::FinWait1
                | State::FinWait2
                | State::CloseWait
                | State::Closing
                | State::LastAck
        ) {
            self.rst_pending = Some((self.snd_nxt.max(self.snd_una), None));
        }
        self.enter_closed();
        if self.app_closed {
            self.tx.release();
            self.rx.release();
            self.sent.release();
        }
    }

    /// The error, if the connection failed.
    pub(crate) fn take_error(&self) -> Option<Error> {
        self.error
    }
}
