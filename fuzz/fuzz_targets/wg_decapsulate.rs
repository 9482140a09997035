#![no_main]
//! Fuzzes `Device::decapsulate` on arbitrary bytes, against a device with an
//! established session (so data messages reach the decryption path) and
//! with the under-load flag driven by the input (so cookie replies run).
use std::cell::RefCell;
use std::time::{Duration, Instant, SystemTime};

use libfuzzer_sys::fuzz_target;
use noise::rand_core::{impls, CryptoRng, Error, RngCore};
use noise::{Device, PeerConfig, PeerId, PrivateKey};

/// A deterministic splitmix64 generator: fuzzing needs reproducible runs,
/// not secrecy.
struct FuzzRng(u64);

impl RngCore for FuzzRng {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        impls::fill_bytes_via_next(self, dest)
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for FuzzRng {}

struct Fixture {
    ours: Device,
    theirs: Device,
    peer: PeerId,
    /// Our receiver index of the established session.
    index: u32,
    start: Instant,
    now: Instant,
}

fn fixture() -> Fixture {
    let now = Instant::now();
    let wall = SystemTime::now();
    let a = PrivateKey::from_bytes([1; 32]);
    let b = PrivateKey::from_bytes([2; 32]);
    let mut ours = Device::new(a.clone(), FuzzRng(1), now, wall);
    let mut theirs = Device::new(b.clone(), FuzzRng(2), now, wall);
    let peer = ours
        .add_peer(PeerConfig {
            public_key: b.public_key(),
            preshared_key: None,
            persistent_keepalive: None,
        })
        .expect("new peer");
    let their_peer = theirs
        .add_peer(PeerConfig {
            public_key: a.public_key(),
            preshared_key: None,
            persistent_keepalive: None,
        })
        .expect("new peer");
    // Establish a session: theirs initiates, ours responds, theirs confirms.
    let mut buf = vec![0u8; 2048];
    let mut out = vec![0u8; 2048];
    theirs.force_handshake(their_peer, now).expect("peer");
    if let Ok(Some(t)) = theirs.poll_transmit(now, &mut buf) {
        if let Ok(noise::Decapsulated::WriteToNetwork { len, .. }) =
            ours.decapsulate(&[], &buf[..t.len], now, &mut out)
        {
            let resp = out[..len].to_vec();
            let _ = theirs.decapsulate(&[], &resp, now, &mut out);
            while let Ok(Some(t)) = theirs.poll_transmit(now, &mut buf) {
                let _ = ours.decapsulate(&[], &buf[..t.len], now, &mut out);
            }
        }
    }
    let index = theirs
        .current_sender(their_peer, now)
        .map(|s| s.receiver_index())
        .unwrap_or(0);
    Fixture {
        ours,
        theirs,
        peer,
        index,
        start: now,
        now,
    }
}

thread_local! {
    static FIXTURE: RefCell<Option<Fixture>> = const { RefCell::new(None) };
}

fuzz_target!(|data: &[u8]| {
    FIXTURE.with(|f| {
        let mut f = f.borrow_mut();
        // Start over before the session expires, so the data path (AEAD,
        // replay window) stays reachable for the whole run.
        if f.as_ref()
            .is_some_and(|fx| fx.now - fx.start > Duration::from_secs(150))
        {
            *f = None;
        }
        let fx = f.get_or_insert_with(fixture);
        let Some((&ctl, rest)) = data.split_first() else {
            return;
        };
        fx.ours.set_under_load(ctl & 1 == 1);
        fx.now += Duration::from_millis(u64::from(ctl >> 2));
        let mut out = vec![0u8; rest.len().max(148)];
        let mut spliced;
        let mut rest = rest;
        if ctl & 2 == 2 && rest.len() >= 8 {
            spliced = rest.to_vec();
            spliced[..4].copy_from_slice(&[4, 0, 0, 0]);
            spliced[4..8].copy_from_slice(&fx.index.to_le_bytes());
            rest = &spliced;
        }
        // Arbitrary bytes as they are, and with the receiver index of a live
        // session spliced in so the AEAD and replay paths are reached.
        let _ = fx
            .ours
            .decapsulate(&[10, 0, 0, 1, 0, 80], rest, fx.now, &mut out);
        let _ = fx
            .theirs
            .decapsulate(&[10, 0, 0, 2, 0, 80], rest, fx.now, &mut out);
        fx.ours.handle_timeout(fx.now);
        while let Ok(Some(_)) = fx.ours.poll_transmit(fx.now, &mut out) {}
        let _ = fx.ours.peer_stats(fx.peer, fx.now);
        let _ = fx.ours.poll_timeout();
    });
});
