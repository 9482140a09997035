//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::time::{Instant, SystemTime};

use noise::{Device, PeerConfig, PeerId, PresharedKey, PrivateKey, PublicKey};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

/// A deterministic RNG for tests.
pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// A private key from a seed.
pub fn key(seed: u8) -> PrivateKey {
    PrivateKey::from_bytes([seed; 32])
}

/// A minimal IPv4 packet with `payload_len` bytes of payload.
pub fn ipv4(payload_len: usize, fill: u8) -> Vec<u8> {
    let total = 20 + payload_len;
    let mut p = vec![fill; total];
    p[0] = 0x45;
    p[1] = 0;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&[10, 0, 0, 2]);
    p[16..20].copy_from_slice(&[10, 0, 0, 1]);
    p
}

/// A device with a seeded RNG and one peer.
pub fn device_with_peer(
    own: u8,
    peer: PublicKey,
    psk: Option<[u8; 32]>,
    keepalive: Option<u16>,
    seed: u64,
    now: Instant,
) -> (Device, PeerId) {
    let mut d = Device::new(key(own), rng(seed), now, SystemTime::now());
    let id = d
        .add_peer(PeerConfig {
            public_key: peer,
            preshared_key: psk.map(PresharedKey::from_bytes),
            persistent_keepalive: keepalive,
        })
        .expect("new peer");
    (d, id)
}

/// Drains `poll_transmit`.
pub fn drain(d: &mut Device, now: Instant) -> Vec<(PeerId, Vec<u8>)> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 2048];
    while let Some(t) = d
        .poll_transmit(now, &mut buf)
        .expect("buffer is large enough")
    {
        out.push((t.peer, buf[..t.len].to_vec()));
    }
    out
}

/// The message type byte of a datagram.
pub fn kind(msg: &[u8]) -> u8 {
    msg[0]
}

/// Which device of a [`Pair`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The first device (usually the initiator).
    A,
    /// The second device.
    B,
}

/// Two of our devices connected by a lossless link, with one virtual clock.
pub struct Pair {
    /// Device A.
    pub a: Device,
    /// Device B.
    pub b: Device,
    /// B as seen by A.
    pub peer_b: PeerId,
    /// A as seen by B.
    pub peer_a: PeerId,
    /// The virtual clock.
    pub now: Instant,
    /// Every datagram that crossed the link: sender and bytes.
    pub log: Vec<(Side, Vec<u8>)>,
    /// IP packets delivered: receiver and bytes.
    pub delivered: Vec<(Side, Vec<u8>)>,
    /// When false, datagrams are logged but dropped.
    pub link_up: bool,
}

impl Pair {
    /// Two devices that know each other.
    pub fn new(seed: u64, keepalive_a: Option<u16>, keepalive_b: Option<u16>) -> Pair {
        let now = Instant::now();
        let (a, peer_b) = device_with_peer(1, key(2).public_key(), None, keepalive_a, seed, now);
        let (b, peer_a) =
            device_with_peer(2, key(1).public_key(), None, keepalive_b, seed + 1, now);
        Pair {
            a,
            b,
            peer_b,
            peer_a,
            now,
            log: Vec::new(),
            delivered: Vec::new(),
            link_up: true,
        }
    }

    /// The device on `side`.
    pub fn dev(&mut self, side: Side) -> &mut Device {
        match side {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    /// The peer handle `side` uses for the other device.
    pub fn other(&self, side: Side) -> PeerId {
        match side {
            Side::A => self.peer_b,
            Side::B => self.peer_a,
        }
    }

    /// Sends `datagram` from `from` over the link and handles any reply.
    pub fn transmit(&mut self, from: Side, datagram: Vec<u8>) {
        self.log.push((from, datagram.clone()));
        if !self.link_up {
            return;
        }
        let to = match from {
            Side::A => Side::B,
            Side::B => Side::A,
        };
        let now = self.now;
        let mut out = vec![0u8; 2048];
        let r = self
            .dev(to)
            .decapsulate(&[127, 0, 0, 1, 0, 1], &datagram, now, &mut out);
        match r {
            Ok(noise::Decapsulated::WriteToNetwork { len, .. }) => {
                self.transmit(to, out[..len].to_vec());
            }
            Ok(noise::Decapsulated::Data { len, .. }) => {
                self.delivered.push((to, out[..len].to_vec()));
            }
            Ok(_) => {}
            Err(e) => panic!("{to:?} rejected a datagram from {from:?}: {e}"),
        }
    }

    /// Encapsulates `packet` on `from` and sends whatever results.
    pub fn send(&mut self, from: Side, packet: &[u8]) {
        let now = self.now;
        let peer = self.other(from);
        let mut out = vec![0u8; 2048];
        match self.dev(from).encapsulate(peer, packet, now, &mut out) {
            Ok(noise::Encapsulated::Data(len)) | Ok(noise::Encapsulated::Handshake(len)) => {
                self.transmit(from, out[..len].to_vec())
            }
            Ok(noise::Encapsulated::Queued) => {}
            Err(e) => panic!("encapsulate failed: {e}"),
        }
        self.drive();
    }

    /// Exchanges pending output until both sides are idle.
    pub fn drive(&mut self) {
        loop {
            let now = self.now;
            let from_a = drain(&mut self.a, now);
            let from_b = drain(&mut self.b, now);
            if from_a.is_empty() && from_b.is_empty() {
                return;
            }
            for (_, d) in from_a {
                self.transmit(Side::A, d);
            }
            for (_, d) in from_b {
                self.transmit(Side::B, d);
            }
        }
    }

    /// Advances the clock to `t`, firing every timer due on the way.
    pub fn advance_to(&mut self, t: Instant) {
        loop {
            let next = [self.a.poll_timeout(), self.b.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(n) if n <= t => {
                    self.now = self.now.max(n);
                    let now = self.now;
                    self.a.handle_timeout(now);
                    self.b.handle_timeout(now);
                    self.drive();
                }
                _ => break,
            }
        }
        self.now = t;
        self.drive();
    }

    /// Advances the clock by `d`.
    pub fn advance(&mut self, d: std::time::Duration) {
        let t = self.now + d;
        self.advance_to(t);
    }

    /// A establishes a session with B.
    pub fn establish(&mut self) {
        let now = self.now;
        self.a.force_handshake(self.peer_b, now).expect("peer");
        self.drive();
        assert!(
            self.a
                .peer_stats(self.peer_b, now)
                .expect("peer")
                .has_session
        );
        assert!(
            self.b
                .peer_stats(self.peer_a, now)
                .expect("peer")
                .has_session
        );
    }

    /// Datagrams logged since `mark` sent by `side`, with their type byte.
    pub fn sent_since(&self, mark: usize, side: Side) -> Vec<(u8, usize)> {
        self.log[mark..]
            .iter()
            .filter(|(s, _)| *s == side)
            .map(|(_, d)| (d[0], d.len()))
            .collect()
    }
}
