//! Many peers behind one static key: routes incoming datagrams to peers
//! (by receiver index for data, by static key for initiations, both O(1)),
//! allocates receiver indices that never collide, answers with cookie
//! replies under load, and schedules every peer's timers in one heap.
//!
//! Read first: WireGuard paper §5.4 (indices, §5.4.2 "sender index"), §5.3
//! (under load), and the crate-level docs for the calling order.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::{Instant, SystemTime};

use rand_core::CryptoRngCore;

use crate::cookie::CookieChecker;
use crate::ctx::{Ctx, IndexMap, PeerId};
use crate::error::{DecapsulateError, EncapsulateError, PeerError};
use crate::handshake::{consume_initiation_static, LocalStatic};
use crate::keys::{PrivateKey, PublicKey};
use crate::messages::{Initiation, Message, Response};
use crate::outcome::{Decapsulated, Encapsulated, Transmit};
use crate::peer::{DataOutcome, OpenTicket, Peer, PeerConfig, PeerStats, SealTicket};
use crate::session::Sender;
use crate::timers::{Timer, Timing};

/// A WireGuard interface: our static key and many peers.
///
/// # Calling order
///
/// One `Device` holds our static key and any number of peers. An engine with
/// one UDP socket drives it like this:
///
/// - **Setup (commands):** [`Device::new`], [`Device::add_peer`] (returns a
///   [`PeerId`]), optionally [`Device::force_handshake`] for peers with a
///   persistent keepalive, [`Device::set_under_load`] when the handshake
///   queue is long, [`Device::remove_peer`].
/// - **Inputs (`handle_*`):** for each UDP datagram, [`Device::decapsulate`]
///   (send back `WriteToNetwork` replies to the datagram's source, hand
///   `Data` to the IP stack); for each IP packet routed to a peer,
///   [`Device::encapsulate`] (send `Data`/`Handshake` output to the peer's
///   endpoint); when the deadline passes, [`Device::handle_timeout`].
/// - **Outputs (`poll_*`):** after every input above, call
///   [`Device::poll_transmit`] until it returns `Ok(None)` and send each
///   [`Transmit`] to its peer's endpoint; then sleep until
///   [`Device::poll_timeout`] (or the next datagram/packet).
/// - **Getters:** [`Device::peer_stats`], [`Device::peer_by_key`],
///   [`Device::public_key`].
///
/// Buffers: `out` for `encapsulate`/`poll_transmit` needs
/// `payload + 32` bytes (rounded up to 16) and at least 148; for
/// `decapsulate`, at least the datagram's length and 92. Too small is an
/// error, never a panic.
///
/// Roaming: any [`Decapsulated`] variant that names a peer was authenticated
/// as that peer, so the engine may set the peer's endpoint to the source.
/// Off-thread crypto: [`Device::prepare_data`] returns a [`SealTicket`]
/// (a reserved counter and the key) to seal a data message on any thread;
/// [`Device::prepare_open`] an [`OpenTicket`] to open one, whose plain text
/// goes back through [`Device::finish_open`] (replay window, timers) on the
/// owning thread. Handshakes, cookies and keepalives stay on that thread.
pub struct Device {
    ctx: Ctx,
    checker: CookieChecker,
    peers: Vec<Option<Box<Peer>>>,
    by_key: HashMap<PublicKey, PeerId>,
    ready: VecDeque<PeerId>,
    heap: BinaryHeap<Reverse<(Instant, PeerId)>>,
    under_load: bool,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("public_key", &self.ctx.local.public)
            .field("peers", &self.by_key.len())
            .field("under_load", &self.under_load)
            .finish_non_exhaustive()
    }
}

impl Device {
    /// A device with our static key and a cryptographic RNG (seed it in
    /// tests). `now` and `wall` pair the monotonic clock with the wall
    /// clock; handshake timestamps are derived from them.
    pub fn new(
        private_key: PrivateKey,
        rng: impl CryptoRngCore + Send + 'static,
        now: Instant,
        wall: SystemTime,
    ) -> Self {
        let local = LocalStatic::new(private_key);
        Device {
            checker: CookieChecker::new(&local.public),
            ctx: Ctx {
                local,
                rng: Box::new(rng),
                indices: IndexMap::default(),
                wall_at: now,
                wall,
                last_timestamp: None,
                timing: Timing::default(),
            },
            peers: Vec::new(),
            by_key: HashMap::new(),
            ready: VecDeque::new(),
            heap: BinaryHeap::new(),
            under_load: false,
        }
    }

    // ---- getters ----

    /// Our public key.
    pub fn public_key(&self) -> PublicKey {
        self.ctx.local.public
    }

    /// The peer with this public key.
    pub fn peer_by_key(&self, key: &PublicKey) -> Option<PeerId> {
        self.by_key.get(key).copied()
    }

    /// The public key of a peer.
    pub fn peer_public_key(&self, peer: PeerId) -> Option<PublicKey> {
        self.peer(peer).map(|p| p.static_.public)
    }

    /// Counters and times of a peer.
    pub fn peer_stats(&self, peer: PeerId, now: Instant) -> Option<PeerStats> {
        self.peer(peer).map(|p| p.stats(now))
    }

    /// When `timer` of `peer` fires next, if it is armed.
    pub fn peer_timer(&self, peer: PeerId, timer: Timer) -> Option<Instant> {
        self.peer(peer).and_then(|p| p.timers.get(timer))
    }

    /// All live peers.
    pub fn peers(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.by_key.values().copied()
    }

    /// The earliest deadline at which [`Device::handle_timeout`] must be called.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, id))) = self.heap.peek().copied() {
            if self.peer(id).is_some_and(|p| p.scheduled == Some(at)) {
                return Some(at);
            }
            self.heap.pop();
        }
        None
    }

    // ---- commands ----

    /// Adds a peer.
    pub fn add_peer(&mut self, config: PeerConfig) -> Result<PeerId, PeerError> {
        if config.public_key == self.ctx.local.public {
            return Err(PeerError::OwnKey);
        }
        if self.by_key.contains_key(&config.public_key) {
            return Err(PeerError::Duplicate);
        }
        let id = PeerId(self.peers.len() as u32);
        self.by_key.insert(config.public_key, id);
        self.peers
            .push(Some(Box::new(Peer::new(&self.ctx, id, config))));
        Ok(id)
    }

    /// Removes a peer and erases its keys.
    pub fn remove_peer(&mut self, peer: PeerId) -> Result<(), PeerError> {
        let slot = self
            .peers
            .get_mut(peer.0 as usize)
            .ok_or(PeerError::UnknownPeer)?;
        let p = slot.take().ok_or(PeerError::UnknownPeer)?;
        for i in p.indices() {
            self.ctx.free_index(i);
        }
        self.by_key.remove(&p.static_.public);
        Ok(())
    }

    /// Tells the device whether it is under load (§5.3): while it is, handshake
    /// messages without a valid mac2 are answered with a cookie reply.
    pub fn set_under_load(&mut self, under_load: bool) {
        self.under_load = under_load;
    }

    /// Replaces the protocol times (default: the paper's constants) for
    /// this device and all its peers. Shorter times are for tests.
    pub fn set_timing(&mut self, timing: Timing) {
        self.ctx.timing = timing;
        for p in self.peers.iter_mut().flatten() {
            p.rekey_after_time = timing.rekey_after_time;
        }
    }

    /// The protocol times in use.
    pub fn timing(&self) -> Timing {
        self.ctx.timing
    }

    /// Re-pairs the monotonic clock with the wall clock (after a suspend or
    /// a clock step).
    pub fn set_wall_clock(&mut self, now: Instant, wall: SystemTime) {
        self.ctx.wall_at = now;
        self.ctx.wall = wall;
    }

    /// Starts a handshake with `peer` now (at startup with a persistent
    /// keepalive, or to force a rekey); the initiation comes out of
    /// [`Device::poll_transmit`].
    pub fn force_handshake(&mut self, peer: PeerId, now: Instant) -> Result<(), PeerError> {
        self.peer_mut(peer)
            .ok_or(PeerError::UnknownPeer)?
            .force_handshake();
        self.after_peer_op(peer, now);
        Ok(())
    }

    /// Erases every session and handshake of `peer` (like the
    /// `3 × REJECT_AFTER_TIME` timer does).
    pub fn zero_key_material(&mut self, peer: PeerId) -> Result<(), PeerError> {
        let p = self
            .peers
            .get_mut(peer.0 as usize)
            .and_then(|p| p.as_deref_mut())
            .ok_or(PeerError::UnknownPeer)?;
        p.zero_key_material(&mut self.ctx);
        Ok(())
    }

    /// The sending half of `peer`'s current session, if usable, for engines
    /// that seal off-thread: reserve counters here with
    /// [`Sender::next_counter`] and seal with a clone of the key elsewhere.
    pub fn current_sender(&mut self, peer: PeerId, now: Instant) -> Option<&mut Sender> {
        self.peers
            .get_mut(peer.0 as usize)
            .and_then(|p| p.as_deref_mut())
            .and_then(|p| p.current_sender_mut(now))
    }

    // ---- outgoing ----

    /// For engines that seal off-thread: if `peer` has a usable session and
    /// nothing queued, reserves a counter for a data message of
    /// `payload_len` bytes, does everything [`Device::encapsulate`] would
    /// do for it but the sealing (timers, statistics, rekey requests), and
    /// returns the [`SealTicket`] that seals it on any thread. `None`: use
    /// [`Device::encapsulate`] for this packet (no session yet, packets
    /// queued, or too long).
    pub fn prepare_data(
        &mut self,
        peer: PeerId,
        payload_len: usize,
        now: Instant,
    ) -> Option<SealTicket> {
        let p = self
            .peers
            .get_mut(peer.0 as usize)
            .and_then(|p| p.as_deref_mut())?;
        let t = p.prepare_data(&mut self.ctx, now, payload_len);
        if t.is_some() {
            self.after_peer_op(peer, now);
        }
        t
    }

    /// Encapsulates an IP packet for `peer` into `out` (which needs
    /// `payload.len() + 32` bytes rounded up to 16, and at least 148).
    pub fn encapsulate(
        &mut self,
        peer: PeerId,
        payload: &[u8],
        now: Instant,
        out: &mut [u8],
    ) -> Result<Encapsulated, EncapsulateError> {
        let p = self
            .peers
            .get_mut(peer.0 as usize)
            .and_then(|p| p.as_deref_mut())
            .ok_or(EncapsulateError::UnknownPeer)?;
        let r = p.encapsulate(&mut self.ctx, now, payload, out);
        self.after_peer_op(peer, now);
        r
    }

    /// Writes the next pending message of any peer (initiation, queued data,
    /// keepalive) into `out`. Call until it returns `Ok(None)` after every
    /// other call. An error means `out` is too small; nothing is lost.
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        out: &mut [u8],
    ) -> Result<Option<Transmit>, EncapsulateError> {
        while let Some(&id) = self.ready.front() {
            let Some(p) = self
                .peers
                .get_mut(id.0 as usize)
                .and_then(|p| p.as_deref_mut())
            else {
                self.ready.pop_front();
                continue;
            };
            match p.poll_transmit(&mut self.ctx, now, out)? {
                Some(len) => {
                    self.reschedule(id);
                    return Ok(Some(Transmit { peer: id, len }));
                }
                None => {
                    p.in_ready = false;
                    self.ready.pop_front();
                    self.reschedule(id);
                }
            }
        }
        Ok(None)
    }

    // ---- incoming ----

    /// Runs every timer due at `now`; then drain [`Device::poll_transmit`].
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, id))) = self.heap.peek().copied() {
            if at > now {
                break;
            }
            self.heap.pop();
            let Some(p) = self
                .peers
                .get_mut(id.0 as usize)
                .and_then(|p| p.as_deref_mut())
            else {
                continue;
            };
            if p.scheduled != Some(at) {
                continue; // stale entry
            }
            p.scheduled = None;
            p.handle_timeout(&mut self.ctx, now);
            self.after_peer_op(id, now);
        }
    }

    /// Handles one UDP datagram from `src` (the sender's IP and port bytes,
    /// used only for cookies). Replies and plain text are written to `out`,
    /// which must be at least as long as the datagram (and ≥ 92 bytes).
    pub fn decapsulate(
        &mut self,
        src: &[u8],
        datagram: &[u8],
        now: Instant,
        out: &mut [u8],
    ) -> Result<Decapsulated, DecapsulateError> {
        match Message::parse(datagram)? {
            Message::Data(msg) => {
                let index = msg.receiver_index();
                let id = self.peer_for_data(index)?;
                let p = self
                    .peers
                    .get_mut(id.0 as usize)
                    .and_then(|p| p.as_deref_mut())
                    .ok_or(DecapsulateError::UnknownIndex(index))?;
                let r = p.handle_data(&mut self.ctx, now, index, msg.counter(), datagram, out);
                self.after_peer_op(id, now);
                Ok(match r? {
                    DataOutcome::Data(len) => Decapsulated::Data { peer: id, len },
                    DataOutcome::Keepalive => Decapsulated::Keepalive { peer: id },
                })
            }
            Message::Initiation(msg) => {
                const MAC1: usize = Initiation::<&[u8]>::MAC1_OFFSET;
                const MAC2: usize = Initiation::<&[u8]>::MAC2_OFFSET;
                if let Some(reply) = self.check_macs(src, datagram, MAC1, MAC2, now, out)? {
                    return Ok(reply);
                }
                let state = consume_initiation_static(&self.ctx.local, &msg)?;
                let id = *self
                    .by_key
                    .get(&state.peer)
                    .ok_or(DecapsulateError::UnknownPeer)?;
                let p = self
                    .peers
                    .get_mut(id.0 as usize)
                    .and_then(|p| p.as_deref_mut())
                    .ok_or(DecapsulateError::UnknownPeer)?;
                let r = p.handle_initiation(&mut self.ctx, now, state, out);
                self.after_peer_op(id, now);
                let len = r?;
                Ok(Decapsulated::WriteToNetwork {
                    peer: Some(id),
                    len,
                })
            }
            Message::Response(msg) => {
                const MAC1: usize = Response::<&[u8]>::MAC1_OFFSET;
                const MAC2: usize = Response::<&[u8]>::MAC2_OFFSET;
                if let Some(reply) = self.check_macs(src, datagram, MAC1, MAC2, now, out)? {
                    return Ok(reply);
                }
                let id = self.peer_for_index(msg.receiver_index())?;
                let p = self
                    .peers
                    .get_mut(id.0 as usize)
                    .and_then(|p| p.as_deref_mut())
                    .ok_or(DecapsulateError::UnexpectedMessage)?;
                let r = p.handle_response(&mut self.ctx, now, &msg);
                self.after_peer_op(id, now);
                r?;
                Ok(Decapsulated::HandshakeComplete { peer: id })
            }
            Message::CookieReply(msg) => {
                let id = self.peer_for_index(msg.receiver_index())?;
                let p = self
                    .peers
                    .get_mut(id.0 as usize)
                    .and_then(|p| p.as_deref_mut())
                    .ok_or(DecapsulateError::UnexpectedMessage)?;
                p.handle_cookie_reply(now, &msg)?;
                Ok(Decapsulated::CookieReceived { peer: id })
            }
        }
    }

    /// For engines that open off-thread, the first half of
    /// [`Device::decapsulate`] for a data message (type 4): finds the
    /// session its receiver index names and checks its counter against the
    /// replay window. Open the message with the [`OpenTicket`] anywhere,
    /// then hand the plain text to [`Device::finish_open`] on this thread.
    /// Other message types are [`DecapsulateError::UnexpectedMessage`].
    pub fn prepare_open(
        &mut self,
        datagram: &[u8],
        now: Instant,
    ) -> Result<OpenTicket, DecapsulateError> {
        let Message::Data(msg) = Message::parse(datagram)? else {
            return Err(DecapsulateError::UnexpectedMessage);
        };
        let index = msg.receiver_index();
        let id = self.peer_for_data(index)?;
        let p = self
            .peers
            .get_mut(id.0 as usize)
            .and_then(|p| p.as_deref_mut())
            .ok_or(DecapsulateError::UnknownIndex(index))?;
        p.prepare_open(now, index, msg.counter())
    }

    /// The second half: `plain` is the padded plain text that `ticket`
    /// opened. Commits the counter to the replay window (a counter seen in
    /// the meantime is [`DecapsulateError::Replay`]) and does the rest of
    /// [`Device::decapsulate`]: the result is [`Decapsulated::Data`] (the IP
    /// packet is `plain[..len]`) or [`Decapsulated::Keepalive`].
    pub fn finish_open(
        &mut self,
        ticket: &OpenTicket,
        plain: &[u8],
        now: Instant,
    ) -> Result<Decapsulated, DecapsulateError> {
        let id = ticket.peer;
        let p = self
            .peers
            .get_mut(id.0 as usize)
            .and_then(|p| p.as_deref_mut())
            .ok_or(DecapsulateError::UnknownIndex(ticket.index))?;
        let r = p.finish_open(&mut self.ctx, now, ticket.index, ticket.counter, plain);
        self.after_peer_op(id, now);
        Ok(match r? {
            DataOutcome::Data(len) => Decapsulated::Data { peer: id, len },
            DataOutcome::Keepalive => Decapsulated::Keepalive { peer: id },
        })
    }

    // ---- internals ----

    fn peer(&self, id: PeerId) -> Option<&Peer> {
        self.peers.get(id.0 as usize).and_then(|p| p.as_deref())
    }

    fn peer_mut(&mut self, id: PeerId) -> Option<&mut Peer> {
        self.peers
            .get_mut(id.0 as usize)
            .and_then(|p| p.as_deref_mut())
    }

    /// The peer whose session has local index `index`, for a data message.
    fn peer_for_data(&self, index: u32) -> Result<PeerId, DecapsulateError> {
        self.ctx
            .indices
            .get(&index)
            .copied()
            .ok_or(DecapsulateError::UnknownIndex(index))
    }

    fn peer_for_index(&self, index: u32) -> Result<PeerId, DecapsulateError> {
        self.ctx
            .indices
            .get(&index)
            .copied()
            .ok_or(DecapsulateError::UnexpectedMessage)
    }

    /// mac1 always; mac2 under load, answering with a cookie reply if missing.
    fn check_macs(
        &mut self,
        src: &[u8],
        datagram: &[u8],
        mac1: usize,
        mac2: usize,
        now: Instant,
        out: &mut [u8],
    ) -> Result<Option<Decapsulated>, DecapsulateError> {
        if !self.checker.check_mac1(datagram, mac1) {
            return Err(DecapsulateError::InvalidMac1);
        }
        if self.under_load && !self.checker.check_mac2(now, datagram, mac2, src) {
            let len = self
                .checker
                .create_reply(now, &mut *self.ctx.rng, datagram, src, out)?;
            return Ok(Some(Decapsulated::WriteToNetwork { peer: None, len }));
        }
        Ok(None)
    }

    /// Re-arms the heap entry and the ready list of a peer after it changed.
    fn after_peer_op(&mut self, id: PeerId, now: Instant) {
        let Some(p) = self.peer_mut(id) else {
            return;
        };
        if !p.in_ready && p.has_output(now) {
            p.in_ready = true;
            self.ready.push_back(id);
        }
        self.reschedule(id);
    }

    fn reschedule(&mut self, id: PeerId) {
        let Some(p) = self.peer_mut(id) else {
            return;
        };
        if let Some(next) = p.timers.next() {
            if p.scheduled.is_none_or(|s| next < s) {
                p.scheduled = Some(next);
                self.heap.push(Reverse((next, id)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timers::{REJECT_AFTER_MESSAGES, REKEY_AFTER_MESSAGES};
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use std::time::Duration;

    fn pair(now: Instant) -> (Device, PeerId, Device, PeerId) {
        let wall = SystemTime::now();
        let ka = PrivateKey::from_bytes([1; 32]);
        let kb = PrivateKey::from_bytes([2; 32]);
        let mut a = Device::new(ka.clone(), ChaCha8Rng::seed_from_u64(1), now, wall);
        let mut b = Device::new(kb.clone(), ChaCha8Rng::seed_from_u64(2), now, wall);
        let cfg = |k: &PrivateKey| PeerConfig {
            public_key: k.public_key(),
            preshared_key: None,
            persistent_keepalive: None,
        };
        let pb = a.add_peer(cfg(&kb)).expect("new");
        let pa = b.add_peer(cfg(&ka)).expect("new");
        let mut buf = [0u8; 256];
        let mut out = [0u8; 256];
        a.force_handshake(pb, now).expect("peer");
        let t = a.poll_transmit(now, &mut buf).expect("fits").expect("init");
        let Ok(Decapsulated::WriteToNetwork { len, .. }) =
            b.decapsulate(&[], &buf[..t.len], now, &mut out)
        else {
            panic!("no response")
        };
        a.decapsulate(&[], &out[..len], now, &mut buf)
            .expect("complete");
        (a, pb, b, pa)
    }

    #[test]
    fn timestamps_strictly_increase_even_within_one_whitening_step() {
        let now = Instant::now();
        let (mut a, _, _, _) = pair(now);
        let t1 = a.ctx.timestamp(now);
        let t2 = a.ctx.timestamp(now);
        let t3 = a.ctx.timestamp(now + Duration::from_millis(1));
        assert!(t1 < t2 && t2 < t3);
        // A later process (fresh device) with a later wall clock still
        // produces a larger timestamp than this one did.
        let later = Device::new(
            PrivateKey::from_bytes([1; 32]),
            ChaCha8Rng::seed_from_u64(9),
            now,
            SystemTime::now() + Duration::from_secs(1),
        );
        let mut later = later;
        assert!(later.ctx.timestamp(now) > t3);
    }

    #[test]
    fn rekey_after_messages_and_reject_after_messages() {
        let now = Instant::now();
        let (mut a, pb, _b, _) = pair(now);
        let mut out = [0u8; 256];
        while a.poll_transmit(now, &mut out).expect("fits").is_some() {}
        a.peer_mut(pb)
            .expect("peer")
            .set_send_counter(REKEY_AFTER_MESSAGES - 1);
        assert!(matches!(
            a.encapsulate(pb, &[], now, &mut out),
            Ok(Encapsulated::Data(32))
        ));
        // The next send crosses REKEY_AFTER_MESSAGES: a handshake is due
        // (allowed once REKEY_TIMEOUT passed since the last initiation).
        let later = now + Duration::from_secs(6);
        assert!(matches!(
            a.encapsulate(pb, &[], later, &mut out),
            Ok(Encapsulated::Data(32))
        ));
        let t = a
            .poll_transmit(later, &mut out)
            .expect("fits")
            .expect("initiation");
        assert_eq!((out[0], t.len), (1, 148));
        // At REJECT_AFTER_MESSAGES the session is unusable: packets queue.
        a.peer_mut(pb)
            .expect("peer")
            .set_send_counter(REJECT_AFTER_MESSAGES);
        assert!(!a.peer_stats(pb, later).expect("peer").has_session);
        assert!(matches!(
            a.encapsulate(pb, &[], later, &mut out),
            Ok(Encapsulated::Queued)
        ));
    }

    #[test]
    fn shorter_rekey_after_time_rekeys_sooner_and_default_does_not() {
        let now = Instant::now();
        let mut out = [0u8; 256];
        for (timing, want_rekey) in [
            (Timing::default(), false),
            (
                Timing {
                    rekey_after_time: Duration::from_secs(2),
                },
                true,
            ),
        ] {
            let (mut a, pb, _b, _) = pair(now);
            a.set_timing(timing);
            assert_eq!(a.timing(), timing);
            while a.poll_transmit(now, &mut out).expect("fits").is_some() {}
            // 6 s on: past the short limit and REKEY_TIMEOUT, far below 120 s.
            let later = now + Duration::from_secs(6);
            assert!(matches!(
                a.encapsulate(pb, &[], later, &mut out),
                Ok(Encapsulated::Data(32))
            ));
            let init = a.poll_transmit(later, &mut out).expect("fits");
            assert_eq!(
                init.is_some_and(|t| out[0] == 1 && t.len == 148),
                want_rekey,
                "{timing:?}"
            );
        }
    }

    /// An IPv4 packet of `len` bytes (header fields only as far as
    /// `inner_packet_len` reads them).
    fn ipv4(len: usize, tag: u8) -> Vec<u8> {
        let mut p = vec![tag; len];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        p
    }

    #[test]
    fn two_phase_seal_and_open_match_the_one_call_path_and_keep_the_replay_window() {
        let now = Instant::now();
        let (mut a, pb, mut b, pa) = pair(now);
        let mut out = [0u8; 256];
        // The confirming keepalive makes b's session current.
        let t = a
            .poll_transmit(now, &mut out)
            .expect("fits")
            .expect("keepalive");
        let mut plain = [0u8; 256];
        assert_eq!(
            b.decapsulate(&[], &out[..t.len], now, &mut plain),
            Ok(Decapsulated::Keepalive { peer: pa })
        );
        let sent_before = a.peer_stats(pb, now).expect("peer").tx_bytes;
        // Three messages sealed "elsewhere", in order of their tickets.
        let mut msgs = Vec::new();
        for i in 0..3u8 {
            let pkt = ipv4(40 + usize::from(i), i);
            let ticket = a.prepare_data(pb, pkt.len(), now).expect("session");
            let mut buf = vec![0u8; crate::session::data_message_len(pkt.len())];
            buf[16..16 + pkt.len()].copy_from_slice(&pkt);
            let n = std::thread::spawn(move || ticket.seal(&mut buf, pkt.len()).map(|n| (n, buf)))
                .join()
                .expect("no panic")
                .expect("fits");
            msgs.push((n.1, i));
        }
        assert_eq!(
            a.peer_stats(pb, now).expect("peer").tx_bytes,
            sent_before + 40 + 41 + 42
        );
        // b prepares all three, opens them out of order, finishes in order.
        let tickets: Vec<_> = msgs
            .iter()
            .map(|(m, _)| b.prepare_open(m, now).expect("known session"))
            .collect();
        let mut opened: Vec<(usize, Vec<u8>)> = Vec::new();
        for k in [2, 0, 1] {
            let mut m = msgs[k].0.clone();
            let len = tickets[k].open(&mut m).expect("authentic");
            opened.push((k, m[16..16 + len].to_vec()));
        }
        opened.sort_by_key(|(k, _)| *k);
        for (k, p) in &opened {
            let d = b.finish_open(&tickets[*k], p, now).expect("fresh");
            assert_eq!(
                d,
                Decapsulated::Data {
                    peer: pa,
                    len: 40 + *k
                }
            );
            assert_eq!(p[..40 + *k], ipv4(40 + *k, *k as u8)[..]);
        }
        // The same message again: refused at prepare, and at finish when
        // two copies were prepared before either was committed.
        assert_eq!(
            b.prepare_open(&msgs[0].0, now).map(|_| ()),
            Err(DecapsulateError::Replay { counter: 1 })
        );
        assert_eq!(
            b.finish_open(&tickets[0], &opened[0].1, now),
            Err(DecapsulateError::Replay { counter: 1 })
        );
        // A tampered message fails to open (the engine counts it).
        let mut bad = msgs[1].0.clone();
        bad[20] ^= 1;
        assert_eq!(
            tickets[1].open(&mut bad),
            Err(DecapsulateError::DecryptFailed)
        );
        // Handshake messages are not data.
        a.force_handshake(pb, now).expect("peer");
        let t = a.poll_transmit(now, &mut out).expect("fits").expect("init");
        assert_eq!(
            b.prepare_open(&out[..t.len], now).map(|_| ()),
            Err(DecapsulateError::UnexpectedMessage)
        );
    }

    #[test]
    fn prepare_data_without_a_session_leaves_the_packet_to_encapsulate() {
        let now = Instant::now();
        let wall = SystemTime::now();
        let mut a = Device::new(
            PrivateKey::from_bytes([1; 32]),
            ChaCha8Rng::seed_from_u64(1),
            now,
            wall,
        );
        let pb = a
            .add_peer(PeerConfig {
                public_key: PrivateKey::from_bytes([2; 32]).public_key(),
                preshared_key: None,
                persistent_keepalive: None,
            })
            .expect("new");
        assert!(a.prepare_data(pb, 40, now).is_none());
        let mut out = [0u8; 256];
        assert!(matches!(
            a.encapsulate(pb, &ipv4(40, 1), now, &mut out),
            Ok(Encapsulated::Handshake(148))
        ));
    }

    #[test]
    fn device_and_session_halves_are_send() {
        fn send<T: Send>() {}
        send::<Device>();
        send::<Sender>();
        send::<crate::session::Receiver>();
    }

    #[test]
    fn indices_never_collide_and_are_freed() {
        let now = Instant::now();
        let (mut a, pb, _, _) = pair(now);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let i = a.ctx.allocate_index(pb);
            assert!(seen.insert(i));
        }
        let before = a.ctx.indices.len();
        for i in &seen {
            a.ctx.free_index(*i);
        }
        assert_eq!(a.ctx.indices.len(), before - 1000);
        a.remove_peer(pb).expect("peer");
        assert!(a.ctx.indices.is_empty());
    }
}
