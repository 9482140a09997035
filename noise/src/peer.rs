//! Per-peer state: the handshake in progress, the three keypair slots
//! (next/current/previous), the timers of §6 and the queue of packets that
//! wait for a session.
//!
//! Read first: WireGuard paper §5.4.7 (session rotation, "the responder
//! waits for the first data message before using a new session"), §6.1–§6.5
//! (rekey, keepalive, retries) and wireguard-go's `timers.go` and
//! `send.go`, whose event names (`timers_*`, `keep_key_fresh_*`) are reused.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::cookie::CookieState;
use crate::ctx::{Ctx, PeerId};
use crate::error::{DecapsulateError, EncapsulateError};
use crate::handshake::{
    consume_initiation_timestamp, consume_response, create_initiation, create_response,
    InitiationSent, PeerStatic, StaticDecrypted, TransportKeys, TIMESTAMP_LEN,
};
use crate::keys::{PresharedKey, PublicKey};
use crate::messages::{
    CookieReply, Initiation, Response, DATA_HEADER_LEN, DATA_MIN_LEN, INITIATION_LEN, RESPONSE_LEN,
};
use crate::outcome::Encapsulated;
use crate::session::{
    data_message_len, inner_packet_len, Opener, Receiver, Sealer, Sender, MAX_PLAINTEXT,
};
use crate::timers::*;

/// Packets kept per peer while a handshake is pending; the oldest is dropped.
pub const MAX_QUEUED_PACKETS: usize = 256;

/// What a new peer is configured with.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// The peer's static public key.
    pub public_key: PublicKey,
    /// Optional preshared key (`PresharedKey =`).
    pub preshared_key: Option<PresharedKey>,
    /// Persistent keepalive interval in seconds (`PersistentKeepalive =`), 0 or `None` = off.
    pub persistent_keepalive: Option<u16>,
}

/// Counters and times for one peer (for `wg show`-like output and tests).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// When the last handshake completed.
    pub last_handshake: Option<Instant>,
    /// Plain-text bytes sent.
    pub tx_bytes: u64,
    /// Plain-text bytes received.
    pub rx_bytes: u64,
    /// Packets waiting for a session.
    pub queued: usize,
    /// Packets dropped from the full queue or when a handshake gave up.
    pub dropped: u64,
    /// Whether a session is usable for sending now.
    pub has_session: bool,
    /// Retransmissions of the current handshake so far.
    pub handshake_attempts: u32,
    /// When the first initiation of the handshake in progress was sent
    /// (retransmissions keep it); `None` when no handshake is in progress
    /// (none started, completed, or given up after `REKEY_ATTEMPT_TIME`).
    pub handshake_started: Option<Instant>,
    /// When the last authenticated message from the peer arrived (a
    /// handshake message, data or keepalive).
    pub last_received: Option<Instant>,
}

/// One transport session with its creation time and role.
pub(crate) struct Keypair {
    pub(crate) sender: Sender,
    pub(crate) receiver: Receiver,
    created: Instant,
    is_initiator: bool,
}

impl Keypair {
    fn new(keys: TransportKeys, now: Instant) -> Self {
        Keypair {
            sender: Sender::new(&keys.send, keys.remote_index),
            receiver: Receiver::new(&keys.recv, keys.local_index),
            created: now,
            is_initiator: keys.is_initiator,
        }
    }

    fn can_send(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.created) < REJECT_AFTER_TIME
            && self.sender.counter() < REJECT_AFTER_MESSAGES
    }
}

/// What seals one data message off the owning thread: a counter reserved
/// for it and a copy of the sending key ([`crate::Device::prepare_data`]).
#[derive(Debug, Clone)]
pub struct SealTicket {
    /// The counter (nonce) reserved for this message.
    pub counter: u64,
    /// The sending key.
    pub sealer: Sealer,
}

impl SealTicket {
    /// Seals in place as [`Sender::seal`]: `buf[16..16 + payload_len]`
    /// holds the plain text; returns the message length.
    pub fn seal(&self, buf: &mut [u8], payload_len: usize) -> Result<usize, EncapsulateError> {
        self.sealer.seal(self.counter, buf, payload_len)
    }
}

/// What opens one data message off the owning thread
/// ([`crate::Device::prepare_open`]); hand it back with the plain text to
/// [`crate::Device::finish_open`].
#[derive(Debug, Clone)]
pub struct OpenTicket {
    /// The peer the session belongs to.
    pub peer: PeerId,
    /// Our receiver index the message named.
    pub index: u32,
    /// The message's counter.
    pub counter: u64,
    /// The receiving key.
    pub opener: Opener,
}

impl OpenTicket {
    /// Authenticates and decrypts the data message `msg` (header included)
    /// in place; returns the padded plain text length, which starts at
    /// `msg[16..]`.
    pub fn open(&self, msg: &mut [u8]) -> Result<usize, DecapsulateError> {
        let body = msg
            .get_mut(DATA_HEADER_LEN..)
            .ok_or(DecapsulateError::DecryptFailed)?;
        self.opener.open(self.counter, body)
    }
}

/// Which keypair slot a receiver index names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Current,
    Previous,
    Next,
}

/// The result of a peer handling a data message.
pub(crate) enum DataOutcome {
    Data(usize),
    Keepalive,
}

/// The state of one peer.
pub(crate) struct Peer {
    pub(crate) id: PeerId,
    pub(crate) static_: PeerStatic,
    psk: PresharedKey,
    persistent_keepalive: Option<Duration>,
    cookie: CookieState,
    handshake: Option<InitiationSent>,
    last_initiation_sent: Option<Instant>,
    handshake_attempts: u32,
    last_timestamp: Option<[u8; TIMESTAMP_LEN]>,
    last_initiation_consumed: Option<Instant>,
    sent_last_minute_handshake: bool,
    need_another_keepalive: bool,
    current: Option<Keypair>,
    previous: Option<Keypair>,
    next: Option<Keypair>,
    pub(crate) timers: TimerTable,
    /// The earliest deadline this peer has in the device's heap.
    pub(crate) scheduled: Option<Instant>,
    pub(crate) in_ready: bool,
    queue: VecDeque<Vec<u8>>,
    /// `Some(is_retry)` when an initiation should be sent.
    want_initiation: Option<bool>,
    want_keepalive: bool,
    stats: PeerStats,
    /// `REKEY_AFTER_TIME`, or a test's shorter value ([`Timing`]).
    pub(crate) rekey_after_time: Duration,
}

impl Peer {
    pub(crate) fn new(ctx: &Ctx, id: PeerId, config: PeerConfig) -> Self {
        Peer {
            id,
            static_: PeerStatic::new(&ctx.local, config.public_key),
            psk: config.preshared_key.unwrap_or_else(PresharedKey::zero),
            persistent_keepalive: config
                .persistent_keepalive
                .filter(|s| *s > 0)
                .map(|s| Duration::from_secs(u64::from(s))),
            cookie: CookieState::new(&config.public_key),
            handshake: None,
            last_initiation_sent: None,
            handshake_attempts: 0,
            last_timestamp: None,
            last_initiation_consumed: None,
            sent_last_minute_handshake: false,
            need_another_keepalive: false,
            current: None,
            previous: None,
            next: None,
            timers: TimerTable::default(),
            scheduled: None,
            in_ready: false,
            queue: VecDeque::new(),
            want_initiation: None,
            want_keepalive: false,
            stats: PeerStats::default(),
            rekey_after_time: ctx.timing.rekey_after_time,
        }
    }

    pub(crate) fn stats(&self, now: Instant) -> PeerStats {
        let mut s = self.stats.clone();
        s.queued = self.queue.len();
        s.has_session = self.can_send(now);
        s.handshake_attempts = self.handshake_attempts;
        s
    }

    /// All local indices this peer holds (to free them when it is removed).
    pub(crate) fn indices(&self) -> impl Iterator<Item = u32> + '_ {
        self.handshake
            .as_ref()
            .map(|h| h.local_index)
            .into_iter()
            .chain(
                [&self.current, &self.previous, &self.next]
                    .into_iter()
                    .flatten()
                    .map(|k| k.receiver.local_index()),
            )
    }

    fn can_send(&self, now: Instant) -> bool {
        self.current.as_ref().is_some_and(|k| k.can_send(now))
    }

    /// Whether `poll_transmit` has something to send.
    pub(crate) fn has_output(&self, now: Instant) -> bool {
        self.want_initiation.is_some()
            || (self.can_send(now) && (self.want_keepalive || !self.queue.is_empty()))
    }

    // ---- timer events (§6, wireguard-go timers.go) ----

    fn timers_data_sent(&mut self, ctx: &mut Ctx, now: Instant) {
        if !self.timers.is_set(Timer::NewHandshake) {
            let at = now + KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + ctx.jitter();
            self.timers.set(Timer::NewHandshake, at);
        }
    }

    fn timers_data_received(&mut self, now: Instant) {
        if !self.timers.is_set(Timer::SendKeepalive) {
            self.timers
                .set(Timer::SendKeepalive, now + KEEPALIVE_TIMEOUT);
        } else {
            self.need_another_keepalive = true;
        }
    }

    fn timers_any_authenticated_packet_sent(&mut self) {
        self.timers.stop(Timer::SendKeepalive);
    }

    fn timers_any_authenticated_packet_received(&mut self, now: Instant) {
        self.timers.stop(Timer::NewHandshake);
        self.stats.last_received = Some(now);
    }

    fn timers_handshake_initiated(&mut self, ctx: &mut Ctx, now: Instant) {
        let at = now + REKEY_TIMEOUT + ctx.jitter();
        self.timers.set(Timer::RetransmitHandshake, at);
    }

    fn timers_handshake_complete(&mut self, now: Instant) {
        self.timers.stop(Timer::RetransmitHandshake);
        self.stats.handshake_started = None;
        self.handshake_attempts = 0;
        self.sent_last_minute_handshake = false;
        self.stats.last_handshake = Some(now);
    }

    fn timers_session_derived(&mut self, now: Instant) {
        self.timers
            .set(Timer::ZeroKeyMaterial, now + ZERO_KEY_MATERIAL_AFTER);
    }

    fn timers_any_authenticated_packet_traversal(&mut self, now: Instant) {
        if let Some(interval) = self.persistent_keepalive {
            self.timers.set(Timer::PersistentKeepalive, now + interval);
        }
    }

    /// §6.2: the initiator rekeys after `REKEY_AFTER_TIME` (or the
    /// configured [`Timing::rekey_after_time`]) or `REKEY_AFTER_MESSAGES`.
    fn keep_key_fresh_sending(&mut self, now: Instant) {
        if let Some(kp) = &self.current {
            let old = kp.is_initiator
                && now.saturating_duration_since(kp.created) >= self.rekey_after_time;
            if old || kp.sender.counter() >= REKEY_AFTER_MESSAGES {
                self.request_initiation(false);
            }
        }
    }

    /// §6.2: if we initiated the current session and it is about to expire
    /// while we only receive, rekey once before `REJECT_AFTER_TIME`.
    fn keep_key_fresh_receiving(&mut self, now: Instant) {
        if self.sent_last_minute_handshake {
            return;
        }
        if let Some(kp) = &self.current {
            let limit = REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT;
            if kp.is_initiator && now.saturating_duration_since(kp.created) >= limit {
                self.sent_last_minute_handshake = true;
                self.request_initiation(false);
            }
        }
    }

    fn request_initiation(&mut self, retry: bool) {
        // A retry wins over a plain request (it bypasses the rate limit).
        self.want_initiation = Some(retry || self.want_initiation.unwrap_or(false));
    }

    /// Sends a keepalive, or starts a handshake if there is no session.
    fn send_keepalive(&mut self, now: Instant) {
        if self.can_send(now) {
            self.want_keepalive = true;
        } else {
            if self.queue.is_empty() {
                self.queue.push_back(Vec::new());
            }
            self.request_initiation(false);
        }
    }

    // ---- outgoing ----

    fn enqueue(&mut self, payload: &[u8]) {
        if self.queue.len() >= MAX_QUEUED_PACKETS {
            self.queue.pop_front();
            self.stats.dropped += 1;
        }
        self.queue.push_back(payload.to_vec());
    }

    /// Seals `payload` with the current session into `out`.
    fn send_data(
        &mut self,
        ctx: &mut Ctx,
        now: Instant,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<usize, EncapsulateError> {
        let kp = match &mut self.current {
            Some(kp) => kp,
            None => return Err(EncapsulateError::UnknownPeer),
        };
        let len = kp.sender.encapsulate(payload, out).map_err(|e| match e {
            crate::session::SendError::Encapsulate(e) => e,
            crate::session::SendError::Exhausted => EncapsulateError::PacketTooLarge { len: 0 },
        })?;
        self.data_sent(ctx, now, payload.len());
        Ok(len)
    }

    /// The bookkeeping of one data message of `payload_len` bytes sent.
    fn data_sent(&mut self, ctx: &mut Ctx, now: Instant, payload_len: usize) {
        self.stats.tx_bytes += payload_len as u64;
        self.want_keepalive = false;
        self.timers_any_authenticated_packet_sent();
        self.timers_any_authenticated_packet_traversal(now);
        if payload_len > 0 {
            self.timers_data_sent(ctx, now);
        }
        self.keep_key_fresh_sending(now);
    }

    /// The off-thread variant of the fast path of [`Peer::encapsulate`]:
    /// when a session is usable and nothing is queued, reserves a counter,
    /// does the send bookkeeping and returns what seals the message
    /// elsewhere; `None` when the packet must go through `encapsulate`.
    pub(crate) fn prepare_data(
        &mut self,
        ctx: &mut Ctx,
        now: Instant,
        payload_len: usize,
    ) -> Option<SealTicket> {
        if payload_len > MAX_PLAINTEXT || !self.can_send(now) || !self.queue.is_empty() {
            return None;
        }
        let kp = self.current.as_mut()?;
        let counter = kp.sender.next_counter()?;
        let sealer = kp.sender.sealer();
        self.data_sent(ctx, now, payload_len);
        Some(SealTicket { counter, sealer })
    }

    /// The outgoing-packet entry point: seals now if a session is usable,
    /// otherwise queues the packet and starts a handshake.
    pub(crate) fn encapsulate(
        &mut self,
        ctx: &mut Ctx,
        now: Instant,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<Encapsulated, EncapsulateError> {
        if payload.len() > MAX_PLAINTEXT {
            return Err(EncapsulateError::PacketTooLarge { len: payload.len() });
        }
        if self.can_send(now) && self.queue.is_empty() {
            let needed = data_message_len(payload.len());
            if out.len() < needed {
                return Err(EncapsulateError::BufferTooSmall { needed });
            }
            let len = self.send_data(ctx, now, payload, out)?;
            return Ok(Encapsulated::Data(len));
        }
        self.enqueue(payload);
        if !self.can_send(now) {
            self.request_initiation(false);
        }
        match self.poll_transmit(ctx, now, out)? {
            Some(len) if out.first() == Some(&crate::messages::TYPE_INITIATION) => {
                Ok(Encapsulated::Handshake(len))
            }
            // A session exists but older packets were still queued: the
            // oldest one went out instead of this one.
            Some(len) => Ok(Encapsulated::Data(len)),
            None => Ok(Encapsulated::Queued),
        }
    }

    /// Writes the next pending message for this peer into `out`.
    pub(crate) fn poll_transmit(
        &mut self,
        ctx: &mut Ctx,
        now: Instant,
        out: &mut [u8],
    ) -> Result<Option<usize>, EncapsulateError> {
        if let Some(retry) = self.want_initiation {
            if out.len() < INITIATION_LEN {
                return Err(EncapsulateError::BufferTooSmall {
                    needed: INITIATION_LEN,
                });
            }
            self.want_initiation = None;
            if let Some(len) = self.send_initiation(ctx, now, retry, out) {
                return Ok(Some(len));
            }
        }
        if !self.can_send(now) {
            return Ok(None);
        }
        if let Some(front) = self.queue.front() {
            let needed = data_message_len(front.len());
            if out.len() < needed {
                return Err(EncapsulateError::BufferTooSmall { needed });
            }
            if let Some(p) = self.queue.pop_front() {
                return self.send_data(ctx, now, &p, out).map(Some);
            }
        }
        if self.want_keepalive {
            if out.len() < DATA_MIN_LEN {
                return Err(EncapsulateError::BufferTooSmall {
                    needed: DATA_MIN_LEN,
                });
            }
            return self.send_data(ctx, now, &[], out).map(Some);
        }
        Ok(None)
    }

    /// §5.4.2: writes a new initiation (with mac1/mac2) into `out`.
    fn send_initiation(
        &mut self,
        ctx: &mut Ctx,
        now: Instant,
        retry: bool,
        out: &mut [u8],
    ) -> Option<usize> {
        if !retry {
            if let Some(last) = self.last_initiation_sent {
                // At most one new initiation per REKEY_TIMEOUT (§6.1).
                if now.saturating_duration_since(last) < REKEY_TIMEOUT {
                    return None;
                }
            }
            self.handshake_attempts = 0;
        }
        if let Some(old) = self.handshake.take() {
            ctx.free_index(old.local_index);
        }
        let index = ctx.allocate_index(self.id);
        let timestamp = ctx.timestamp(now);
        let buf = out.get_mut(..INITIATION_LEN)?;
        let mut msg = Initiation::new_unchecked_type(&mut *buf).ok()?;
        let Some(sent) = create_initiation(
            &ctx.local,
            &self.static_,
            index,
            &timestamp,
            &mut *ctx.rng,
            &mut msg,
        ) else {
            ctx.free_index(index);
            return None;
        };
        self.cookie.stamp(
            now,
            buf,
            Initiation::<&[u8]>::MAC1_OFFSET,
            Initiation::<&[u8]>::MAC2_OFFSET,
        );
        self.handshake = Some(sent);
        self.last_initiation_sent = Some(now);
        self.stats.handshake_started.get_or_insert(now);
        self.timers_any_authenticated_packet_traversal(now);
        self.timers_any_authenticated_packet_sent();
        self.timers_handshake_initiated(ctx, now);
        Some(INITIATION_LEN)
    }

    // ---- incoming ----

    /// §5.4.3: the rest of an initiation from this peer; writes the response.
    pub(crate) fn handle_initiation(
        &mut self,
        ctx: &mut Ctx,
        now: Instant,
        state: StaticDecrypted,
        out: &mut [u8],
    ) -> Result<usize, DecapsulateError> {
        let buf = out
            .get_mut(..RESPONSE_LEN)
            .ok_or(DecapsulateError::BufferTooSmall {
                needed: RESPONSE_LEN,
            })?;
        let received = consume_initiation_timestamp(state, &self.static_)?;
        // Reject a timestamp that is not newer than the last one (replay).
        if self
            .last_timestamp
            .is_some_and(|last| received.timestamp <= last)
        {
            return Err(DecapsulateError::ReplayedInitiation);
        }
        if self
            .last_initiation_consumed
            .is_some_and(|t| now.saturating_duration_since(t) < INITIATION_MIN_INTERVAL)
        {
            return Err(DecapsulateError::InitiationFlood);
        }
        let timestamp = received.timestamp;
        let index = ctx.allocate_index(self.id);
        let mut msg = Response::new_unchecked_type(&mut *buf)?;
        let keys = match create_response(received, &self.psk, index, &mut *ctx.rng, &mut msg) {
            Ok(k) => k,
            Err(e) => {
                ctx.free_index(index);
                return Err(e);
            }
        };
        self.cookie.stamp(
            now,
            buf,
            Response::<&[u8]>::MAC1_OFFSET,
            Response::<&[u8]>::MAC2_OFFSET,
        );
        self.last_timestamp = Some(timestamp);
        self.last_initiation_consumed = Some(now);
        // Our own pending initiation is superseded (as in wireguard-go).
        if let Some(old) = self.handshake.take() {
            ctx.free_index(old.local_index);
        }
        self.stats.handshake_started = None;
        // Responder: the new session waits in `next` until the initiator uses it.
        for old in [self.next.take(), self.previous.take()]
            .into_iter()
            .flatten()
        {
            ctx.free_index(old.receiver.local_index());
        }
        self.next = Some(Keypair::new(keys, now));
        self.timers_any_authenticated_packet_traversal(now);
        self.timers_any_authenticated_packet_received(now);
        self.timers_session_derived(now);
        self.timers_any_authenticated_packet_sent();
        Ok(RESPONSE_LEN)
    }

    /// §5.4.3: a response to our initiation; the new session becomes current.
    pub(crate) fn handle_response(
        &mut self,
        ctx: &mut Ctx,
        now: Instant,
        msg: &Response<&[u8]>,
    ) -> Result<(), DecapsulateError> {
        let keys = match &self.handshake {
            Some(hs) if hs.local_index == msg.receiver_index() => {
                consume_response(hs, &ctx.local, &self.psk, msg)?
            }
            _ => return Err(DecapsulateError::UnexpectedMessage),
        };
        // The handshake's index lives on as the session's index.
        self.handshake = None;
        let kp = Keypair::new(keys, now);
        if let Some(next) = self.next.take() {
            for old in [self.previous.take(), self.current.take()]
                .into_iter()
                .flatten()
            {
                ctx.free_index(old.receiver.local_index());
            }
            self.previous = Some(next);
        } else {
            if let Some(old) = self.previous.take() {
                ctx.free_index(old.receiver.local_index());
            }
            self.previous = self.current.take();
        }
        self.current = Some(kp);
        self.timers_any_authenticated_packet_traversal(now);
        self.timers_any_authenticated_packet_received(now);
        self.timers_session_derived(now);
        self.timers_handshake_complete(now);
        // Confirm the session to the responder: queued data or a keepalive.
        if self.queue.is_empty() {
            self.want_keepalive = true;
        }
        Ok(())
    }

    /// §5.4.7: a cookie reply to our last handshake message.
    pub(crate) fn handle_cookie_reply(
        &mut self,
        now: Instant,
        msg: &CookieReply<&[u8]>,
    ) -> Result<(), DecapsulateError> {
        self.cookie.consume_reply(now, msg)
    }

    fn slot(&self, index: u32) -> Option<Slot> {
        let is = |k: &Option<Keypair>| {
            k.as_ref()
                .is_some_and(|k| k.receiver.local_index() == index)
        };
        if is(&self.current) {
            Some(Slot::Current)
        } else if is(&self.next) {
            Some(Slot::Next)
        } else if is(&self.previous) {
            Some(Slot::Previous)
        } else {
            None
        }
    }

    /// The live keypair that receiver index `index` names.
    fn receiving_keypair(
        &mut self,
        now: Instant,
        index: u32,
    ) -> Result<(Slot, &mut Keypair), DecapsulateError> {
        let slot = self
            .slot(index)
            .ok_or(DecapsulateError::UnknownIndex(index))?;
        let kp = match slot {
            Slot::Current => self.current.as_mut(),
            Slot::Next => self.next.as_mut(),
            Slot::Previous => self.previous.as_mut(),
        }
        .ok_or(DecapsulateError::UnknownIndex(index))?;
        if now.saturating_duration_since(kp.created) >= REJECT_AFTER_TIME {
            return Err(DecapsulateError::SessionExpired);
        }
        Ok((slot, kp))
    }

    /// §5.4.6: a data message for one of our sessions. The cipher text is
    /// copied to `out` and decrypted there; the IP packet is `out[..len]`.
    pub(crate) fn handle_data(
        &mut self,
        ctx: &mut Ctx,
        now: Instant,
        index: u32,
        counter: u64,
        datagram: &[u8],
        out: &mut [u8],
    ) -> Result<DataOutcome, DecapsulateError> {
        let (slot, kp) = self.receiving_keypair(now, index)?;
        let body = &datagram[DATA_HEADER_LEN..];
        let buf = out
            .get_mut(..body.len())
            .ok_or(DecapsulateError::BufferTooSmall { needed: body.len() })?;
        buf.copy_from_slice(body);
        let len = kp.receiver.open_payload(counter, buf)?;
        if !kp.receiver.commit_counter(counter) {
            return Err(DecapsulateError::Replay { counter });
        }
        self.data_received(ctx, now, slot, &out[..len])
    }

    /// The first half of receiving a data message off-thread: finds the
    /// session and checks the counter against its replay window; the
    /// returned ticket opens the message elsewhere.
    pub(crate) fn prepare_open(
        &mut self,
        now: Instant,
        index: u32,
        counter: u64,
    ) -> Result<OpenTicket, DecapsulateError> {
        let peer = self.id;
        let (_, kp) = self.receiving_keypair(now, index)?;
        if !kp.receiver.check_counter(counter) {
            return Err(DecapsulateError::Replay { counter });
        }
        Ok(OpenTicket {
            peer,
            index,
            counter,
            opener: kp.receiver.opener(),
        })
    }

    /// The second half: `plain` (padded) was authenticated with the
    /// session of `index` for `counter`; commits the counter and runs the
    /// receive bookkeeping, as [`Peer::handle_data`] does after opening.
    pub(crate) fn finish_open(
        &mut self,
        ctx: &mut Ctx,
        now: Instant,
        index: u32,
        counter: u64,
        plain: &[u8],
    ) -> Result<DataOutcome, DecapsulateError> {
        let (slot, kp) = self.receiving_keypair(now, index)?;
        if !kp.receiver.commit_counter(counter) {
            return Err(DecapsulateError::Replay { counter });
        }
        self.data_received(ctx, now, slot, plain)
    }

    /// After a data message in `slot` authenticated: session rotation,
    /// timers, and the inner packet's length in the padded `plain`.
    fn data_received(
        &mut self,
        ctx: &mut Ctx,
        now: Instant,
        slot: Slot,
        plain: &[u8],
    ) -> Result<DataOutcome, DecapsulateError> {
        let len = plain.len();
        if slot == Slot::Next {
            // The initiator used the new session: it becomes current.
            if let Some(old) = self.previous.take() {
                ctx.free_index(old.receiver.local_index());
            }
            self.previous = self.current.take();
            self.current = self.next.take();
            self.timers_handshake_complete(now);
        }
        self.timers_any_authenticated_packet_received(now);
        self.timers_any_authenticated_packet_traversal(now);
        if slot != Slot::Previous {
            self.keep_key_fresh_receiving(now);
        }
        if len == 0 {
            return Ok(DataOutcome::Keepalive);
        }
        let inner = inner_packet_len(plain).ok_or(DecapsulateError::InvalidInnerPacket)?;
        self.stats.rx_bytes += inner as u64;
        self.timers_data_received(now);
        Ok(DataOutcome::Data(inner))
    }

    // ---- timers ----

    /// Runs every timer due at `now`.
    pub(crate) fn handle_timeout(&mut self, ctx: &mut Ctx, now: Instant) {
        while let Some(timer) = self.timers.take_expired(now) {
            match timer {
                Timer::RetransmitHandshake => {
                    if self.handshake_attempts >= MAX_TIMER_HANDSHAKES {
                        // §6.4: give up after REKEY_ATTEMPT_TIME.
                        self.timers.stop(Timer::SendKeepalive);
                        self.stats.dropped += self.queue.len() as u64;
                        self.queue.clear();
                        self.want_initiation = None;
                        self.want_keepalive = false;
                        if let Some(old) = self.handshake.take() {
                            ctx.free_index(old.local_index);
                        }
                        self.stats.handshake_started = None;
                        if !self.timers.is_set(Timer::ZeroKeyMaterial) {
                            self.timers
                                .set(Timer::ZeroKeyMaterial, now + ZERO_KEY_MATERIAL_AFTER);
                        }
                    } else {
                        self.handshake_attempts += 1;
                        self.request_initiation(true);
                    }
                }
                Timer::SendKeepalive => {
                    self.send_keepalive(now);
                    if self.need_another_keepalive {
                        self.need_another_keepalive = false;
                        self.timers
                            .set(Timer::SendKeepalive, now + KEEPALIVE_TIMEOUT);
                    }
                }
                Timer::NewHandshake => self.request_initiation(false),
                Timer::ZeroKeyMaterial => self.zero_key_material(ctx),
                Timer::PersistentKeepalive => {
                    if self.persistent_keepalive.is_some() {
                        self.send_keepalive(now);
                    }
                }
            }
        }
    }

    /// Forgets every session and the handshake in progress.
    pub(crate) fn zero_key_material(&mut self, ctx: &mut Ctx) {
        for kp in [self.current.take(), self.previous.take(), self.next.take()]
            .into_iter()
            .flatten()
        {
            ctx.free_index(kp.receiver.local_index());
        }
        if let Some(hs) = self.handshake.take() {
            ctx.free_index(hs.local_index);
        }
        self.stats.handshake_started = None;
        self.want_keepalive = false;
    }

    /// Starts a handshake now (e.g. at startup or for a forced rekey).
    pub(crate) fn force_handshake(&mut self) {
        self.handshake_attempts = 0;
        self.request_initiation(true);
    }

    #[cfg(test)]
    pub(crate) fn set_send_counter(&mut self, counter: u64) {
        if let Some(kp) = &mut self.current {
            kp.sender.set_counter(counter);
        }
    }

    /// The current session's halves, for engines that encrypt off-thread.
    pub(crate) fn current_sender_mut(&mut self, now: Instant) -> Option<&mut Sender> {
        self.current
            .as_mut()
            .filter(|k| k.can_send(now))
            .map(|k| &mut k.sender)
    }
}
