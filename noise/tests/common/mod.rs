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
