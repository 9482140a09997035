//! Interop with boringtun (an implementation we did not write): handshakes in
//! both directions, data both ways, keepalives, a rekey, with and without a
//! preshared key.

mod common;

use std::time::{Duration, Instant};

use boringtun::noise::{Tunn, TunnResult};
use boringtun::x25519;
use common::*;
use noise::{Decapsulated, Device, Encapsulated, PeerId, PublicKey};

const OURS: u8 = 1;
const THEIRS: u8 = 2;
const SRC: [u8; 6] = [192, 0, 2, 1, 0xca, 0x6c];

fn boringtun_peer(psk: Option<[u8; 32]>) -> Tunn {
    let secret = x25519::StaticSecret::from([THEIRS; 32]);
    let ours = x25519::PublicKey::from(*key(OURS).public_key().as_bytes());
    Tunn::new(secret, ours, psk, None, 7, None)
}

fn their_public() -> PublicKey {
    key(THEIRS).public_key()
}

/// Feeds a datagram to boringtun and returns what it wants sent back (if
/// anything) and what it delivered to its tunnel (if anything).
fn bt_receive(bt: &mut Tunn, datagram: &[u8]) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut net = Vec::new();
    let mut tun = Vec::new();
    let mut dst = vec![0u8; 2048];
    let mut input = datagram.to_vec();
    loop {
        match bt.decapsulate(None, &input, &mut dst) {
            TunnResult::Done => break,
            TunnResult::Err(e) => panic!("boringtun rejected our message: {e:?}"),
            TunnResult::WriteToNetwork(p) => {
                net.push(p.to_vec());
                input.clear(); // repeat with an empty datagram to flush its queue
            }
            TunnResult::WriteToTunnelV4(p, _) | TunnResult::WriteToTunnelV6(p, _) => {
                tun.push(p.to_vec());
                break;
            }
        }
    }
    (net, tun)
}

fn bt_send(bt: &mut Tunn, packet: &[u8]) -> Vec<u8> {
    let mut dst = vec![0u8; 2048];
    match bt.encapsulate(packet, &mut dst) {
        TunnResult::WriteToNetwork(p) => p.to_vec(),
        other => panic!("boringtun did not encapsulate: {other:?}"),
    }
}

fn ours_receive(d: &mut Device, datagram: &[u8], now: Instant) -> (Decapsulated, Vec<u8>) {
    let mut out = vec![0u8; 2048];
    let r = d
        .decapsulate(&SRC, datagram, now, &mut out)
        .expect("we accept boringtun's message");
    let bytes = match r {
        Decapsulated::WriteToNetwork { len, .. } | Decapsulated::Data { len, .. } => {
            out[..len].to_vec()
        }
        _ => Vec::new(),
    };
    (r, bytes)
}

/// Our initiator, boringtun responder. Returns the established pair.
fn handshake_ours_to_boringtun(psk: Option<[u8; 32]>, t0: Instant) -> (Device, PeerId, Tunn) {
    let (mut d, peer) = device_with_peer(OURS, their_public(), psk, None, 11, t0);
    let mut bt = boringtun_peer(psk);
    let first = ipv4(100, 0x11);
    let mut out = vec![0u8; 2048];
    let init = match d
        .encapsulate(peer, &first, t0, &mut out)
        .expect("encapsulate")
    {
        Encapsulated::Handshake(len) => out[..len].to_vec(),
        other => panic!("expected an initiation, got {other:?}"),
    };
    assert_eq!(init.len(), 148);
    let (net, _) = bt_receive(&mut bt, &init);
    assert_eq!(net.len(), 1, "boringtun answers with one response");
    assert_eq!(net[0].len(), 92);
    let (r, _) = ours_receive(&mut d, &net[0], t0);
    assert_eq!(r, Decapsulated::HandshakeComplete { peer });
    // The queued packet goes out first, on the new session.
    let sent = drain(&mut d, t0);
    assert_eq!(sent.len(), 1);
    let (_, tun) = bt_receive(&mut bt, &sent[0].1);
    assert_eq!(tun, vec![first]);
    (d, peer, bt)
}

fn data_both_ways(d: &mut Device, peer: PeerId, bt: &mut Tunn, now: Instant, fill: u8) {
    // Ours -> boringtun.
    let p = ipv4(1400, fill);
    let mut out = vec![0u8; 2048];
    let len = match d.encapsulate(peer, &p, now, &mut out).expect("encapsulate") {
        Encapsulated::Data(len) => len,
        other => panic!("expected data, got {other:?}"),
    };
    assert_eq!(len, 16 + 1424 + 16);
    let (_, tun) = bt_receive(bt, &out[..len]);
    assert_eq!(tun, vec![p]);
    // Boringtun -> ours, odd length to exercise padding removal.
    let q = ipv4(333, fill ^ 0xff);
    let msg = bt_send(bt, &q);
    let (r, bytes) = ours_receive(d, &msg, now);
    assert_eq!(r, Decapsulated::Data { peer, len: q.len() });
    assert_eq!(bytes, q);
}

fn ours_initiator(psk: Option<[u8; 32]>) {
    let t0 = Instant::now();
    let (mut d, peer, mut bt) = handshake_ours_to_boringtun(psk, t0);
    data_both_ways(&mut d, peer, &mut bt, t0, 0x22);

    // Keepalive from us: we received data and sent nothing for 10 s.
    let t1 = t0 + Duration::from_secs(10);
    d.handle_timeout(t1);
    let sent = drain(&mut d, t1);
    assert_eq!(sent.len(), 1, "one keepalive");
    assert_eq!(sent[0].1.len(), 32);
    let (net, tun) = bt_receive(&mut bt, &sent[0].1);
    assert!(
        net.is_empty() && tun.is_empty(),
        "boringtun consumed a keepalive"
    );
    // Keepalive from boringtun (an empty data message).
    let ka = bt_send(&mut bt, &[]);
    assert_eq!(
        ours_receive(&mut d, &ka, t1).0,
        Decapsulated::Keepalive { peer }
    );

    // Rekey: at REKEY_AFTER_TIME our next send starts a new handshake.
    let t2 = t0 + Duration::from_secs(121);
    let mut out = vec![0u8; 2048];
    let p = ipv4(64, 0x33);
    let len = match d.encapsulate(peer, &p, t2, &mut out).expect("encapsulate") {
        Encapsulated::Data(len) => len,
        other => panic!("old session still sends: {other:?}"),
    };
    let (_, tun) = bt_receive(&mut bt, &out[..len]);
    assert_eq!(tun, vec![p]);
    let sent = drain(&mut d, t2);
    assert_eq!(sent.len(), 1);
    assert_eq!(kind(&sent[0].1), 1, "a new initiation");
    let (net, _) = bt_receive(&mut bt, &sent[0].1);
    assert_eq!(net.len(), 1);
    assert_eq!(
        ours_receive(&mut d, &net[0], t2).0,
        Decapsulated::HandshakeComplete { peer }
    );
    let sent = drain(&mut d, t2);
    assert_eq!(sent.len(), 1, "keepalive confirming the new session");
    assert_eq!(sent[0].1.len(), 32);
    bt_receive(&mut bt, &sent[0].1);
    data_both_ways(&mut d, peer, &mut bt, t2, 0x44);
    let stats = d.peer_stats(peer, t2).expect("peer");
    assert_eq!(stats.last_handshake, Some(t2));
}

fn boringtun_initiator(psk: Option<[u8; 32]>) {
    let t0 = Instant::now();
    let (mut d, peer) = device_with_peer(OURS, their_public(), psk, None, 12, t0);
    let mut bt = boringtun_peer(psk);
    let mut dst = vec![0u8; 2048];
    let init = match bt.format_handshake_initiation(&mut dst, false) {
        TunnResult::WriteToNetwork(p) => p.to_vec(),
        other => panic!("no initiation: {other:?}"),
    };
    let (r, resp) = ours_receive(&mut d, &init, t0);
    assert_eq!(
        r,
        Decapsulated::WriteToNetwork {
            peer: Some(peer),
            len: 92
        }
    );
    // Until the initiator confirms, our new session is not used for sending.
    assert!(!d.peer_stats(peer, t0).expect("peer").has_session);
    let (net, _) = bt_receive(&mut bt, &resp);
    assert_eq!(net.len(), 1, "boringtun confirms with a keepalive");
    assert_eq!(
        ours_receive(&mut d, &net[0], t0).0,
        Decapsulated::Keepalive { peer }
    );
    assert!(d.peer_stats(peer, t0).expect("peer").has_session);
    data_both_ways(&mut d, peer, &mut bt, t0, 0x55);

    // A replayed initiation is rejected.
    let mut out = vec![0u8; 2048];
    assert_eq!(
        d.decapsulate(&SRC, &init, t0 + Duration::from_secs(1), &mut out),
        Err(noise::DecapsulateError::ReplayedInitiation)
    );

    // Boringtun rekeys; we answer and switch to the new session.
    let t1 = t0 + Duration::from_secs(2);
    let init2 = match bt.format_handshake_initiation(&mut dst, true) {
        TunnResult::WriteToNetwork(p) => p.to_vec(),
        other => panic!("no initiation: {other:?}"),
    };
    let (_, resp2) = ours_receive(&mut d, &init2, t1);
    let (net, _) = bt_receive(&mut bt, &resp2);
    assert_eq!(
        ours_receive(&mut d, &net[0], t1).0,
        Decapsulated::Keepalive { peer }
    );
    data_both_ways(&mut d, peer, &mut bt, t1, 0x66);
}

#[test]
fn our_initiator_boringtun_responder_without_psk() {
    ours_initiator(None);
}

#[test]
fn our_initiator_boringtun_responder_with_psk() {
    ours_initiator(Some([0x42; 32]));
}

#[test]
fn boringtun_initiator_our_responder_without_psk() {
    boringtun_initiator(None);
}

#[test]
fn boringtun_initiator_our_responder_with_psk() {
    boringtun_initiator(Some([0x24; 32]));
}

#[test]
fn psk_mismatch_fails_the_handshake() {
    let t0 = Instant::now();
    let (mut d, peer) = device_with_peer(OURS, their_public(), Some([1; 32]), None, 13, t0);
    let mut bt = boringtun_peer(Some([2; 32]));
    let mut out = vec![0u8; 2048];
    let init = match d
        .encapsulate(peer, &ipv4(10, 0), t0, &mut out)
        .expect("encapsulate")
    {
        Encapsulated::Handshake(len) => out[..len].to_vec(),
        other => panic!("{other:?}"),
    };
    // Boringtun accepts the initiation (the psk is only mixed into the response)...
    let (net, _) = bt_receive(&mut bt, &init);
    // ...but its response does not authenticate for us.
    assert_eq!(
        d.decapsulate(&SRC, &net[0], t0, &mut out),
        Err(noise::DecapsulateError::HandshakeFailed)
    );
}

#[test]
fn boringtun_under_load_sends_a_cookie_we_use_for_mac2() {
    use boringtun::noise::rate_limiter::RateLimiter;
    use std::sync::Arc;
    let t0 = Instant::now();
    let (mut d, peer) = device_with_peer(OURS, their_public(), None, None, 14, t0);
    let secret = x25519::StaticSecret::from([THEIRS; 32]);
    let public = x25519::PublicKey::from(&secret);
    let ours = x25519::PublicKey::from(*key(OURS).public_key().as_bytes());
    // A limit of zero: boringtun is always under load and demands mac2.
    let limiter = Arc::new(RateLimiter::new(&public, 0));
    let mut bt = Tunn::new(secret, ours, None, None, 7, Some(limiter));
    let addr: std::net::IpAddr = [192, 0, 2, 1].into();
    let mut dst = vec![0u8; 2048];
    let mut out = vec![0u8; 2048];

    d.force_handshake(peer, t0).expect("peer");
    let init = drain(&mut d, t0).remove(0).1;
    let cookie = match bt.decapsulate(Some(addr), &init, &mut dst) {
        TunnResult::WriteToNetwork(p) => p.to_vec(),
        other => panic!("expected a cookie reply: {other:?}"),
    };
    assert_eq!((cookie[0], cookie.len()), (3, 64));
    assert_eq!(
        d.decapsulate(&SRC, &cookie, t0, &mut out),
        Ok(Decapsulated::CookieReceived { peer })
    );
    // The retransmission carries mac2 and boringtun answers it.
    let t1 = d.poll_timeout().expect("retransmit armed");
    d.handle_timeout(t1);
    let init2 = drain(&mut d, t1).remove(0).1;
    assert_ne!(init2[132..148], [0u8; 16], "mac2 is set");
    let resp = match bt.decapsulate(Some(addr), &init2, &mut dst) {
        TunnResult::WriteToNetwork(p) => p.to_vec(),
        other => panic!("expected a response: {other:?}"),
    };
    assert_eq!(resp.len(), 92);
    assert_eq!(
        d.decapsulate(&SRC, &resp, t1, &mut out),
        Ok(Decapsulated::HandshakeComplete { peer })
    );
}

#[test]
fn we_send_boringtun_a_cookie_under_load_and_accept_its_mac2() {
    let t0 = Instant::now();
    let (mut d, peer) = device_with_peer(OURS, their_public(), None, None, 15, t0);
    d.set_under_load(true);
    let mut bt = boringtun_peer(None);
    let mut dst = vec![0u8; 2048];
    let init = match bt.format_handshake_initiation(&mut dst, false) {
        TunnResult::WriteToNetwork(p) => p.to_vec(),
        other => panic!("{other:?}"),
    };
    let (r, cookie) = ours_receive(&mut d, &init, t0);
    assert_eq!(
        r,
        Decapsulated::WriteToNetwork {
            peer: None,
            len: 64
        }
    );
    let (net, tun) = bt_receive(&mut bt, &cookie);
    assert!(
        net.is_empty() && tun.is_empty(),
        "boringtun stored the cookie"
    );
    let init2 = match bt.format_handshake_initiation(&mut dst, true) {
        TunnResult::WriteToNetwork(p) => p.to_vec(),
        other => panic!("{other:?}"),
    };
    let (r, resp) = ours_receive(&mut d, &init2, t0);
    assert_eq!(
        r,
        Decapsulated::WriteToNetwork {
            peer: Some(peer),
            len: 92
        }
    );
    // The same mac2 from another source address is not enough.
    let mut out = vec![0u8; 2048];
    let init3 = match bt.format_handshake_initiation(&mut dst, true) {
        TunnResult::WriteToNetwork(p) => p.to_vec(),
        other => panic!("{other:?}"),
    };
    assert!(matches!(
        d.decapsulate(&[198, 51, 100, 7, 0, 1], &init3, t0, &mut out),
        Ok(Decapsulated::WriteToNetwork {
            peer: None,
            len: 64
        })
    ));
    let (net, _) = bt_receive(&mut bt, &resp);
    assert_eq!(
        ours_receive(&mut d, &net[0], t0).0,
        Decapsulated::Keepalive { peer }
    );
}

/// Every packet size up to a full 1,420-byte MTU, both ways: our AEAD
/// (chacha20 0.10, AVX-512 where the CPU has it) against boringtun's
/// (ring's ChaCha20-Poly1305, another implementation), so each tail the
/// wide backend handles differently — 16, 8 and 4 blocks at once, single
/// blocks, a partial last block — is checked against code we did not
/// write, not only against itself.
#[test]
fn every_packet_size_round_trips_with_boringtun() {
    let t0 = Instant::now();
    let (mut d, peer, mut bt) = handshake_ours_to_boringtun(None, t0);
    let mut out = vec![0u8; 2048];
    for payload in 0..=1400 {
        let fill = (payload % 251) as u8;
        let p = ipv4(payload, fill);
        let len = match d.encapsulate(peer, &p, t0, &mut out).expect("encapsulate") {
            Encapsulated::Data(len) => len,
            other => panic!("expected data, got {other:?}"),
        };
        let (_, tun) = bt_receive(&mut bt, &out[..len]);
        assert_eq!(tun, vec![p.clone()], "ours -> boringtun, {payload} bytes");
        let msg = bt_send(&mut bt, &p);
        let (r, bytes) = ours_receive(&mut d, &msg, t0);
        assert_eq!(
            r,
            Decapsulated::Data { peer, len: p.len() },
            "{payload} bytes"
        );
        assert_eq!(bytes, p, "boringtun -> ours, {payload} bytes");
    }
}
