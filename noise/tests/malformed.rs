//! Bad input never panics: every truncated, oversized, wrong-type,
//! wrong-MAC and wrong-index message is rejected with a typed error.

mod common;

use std::time::Instant;

use common::*;
use noise::messages::MessageType;
use noise::{DecapsulateError, MessageError};
use proptest::prelude::*;

/// An established pair plus one real message of each kind sent A -> B.
fn fixtures() -> (Pair, Vec<Vec<u8>>) {
    let mut p = Pair::new(77, None, None);
    p.establish();
    p.send(Side::A, &ipv4(100, 7));
    let mut msgs: Vec<Vec<u8>> = p.log.iter().map(|(_, d)| d.clone()).collect();
    // A cookie reply, too.
    p.b.set_under_load(true);
    p.a.force_handshake(p.peer_b, p.now).expect("peer");
    p.drive();
    p.b.set_under_load(false);
    msgs.extend(p.log.iter().map(|(_, d)| d.clone()));
    (p, msgs)
}

fn try_both(p: &mut Pair, datagram: &[u8]) -> [Result<noise::Decapsulated, DecapsulateError>; 2] {
    let now = p.now;
    let mut out = vec![0u8; 4096];
    [
        p.a.decapsulate(&[1, 2, 3, 4, 5, 6], datagram, now, &mut out),
        p.b.decapsulate(&[1, 2, 3, 4, 5, 6], datagram, now, &mut out),
    ]
}

#[test]
fn truncated_and_oversized_messages_are_rejected() {
    let (mut p, msgs) = fixtures();
    for m in &msgs {
        for len in 0..m.len() {
            for r in try_both(&mut p, &m[..len]) {
                // A truncated data message of >= 32 bytes is well-formed but
                // fails authentication (or names the wrong index).
                let structurally_valid = m[0] == 4 && len >= 32;
                assert!(
                    matches!(r, Err(DecapsulateError::Message(_)))
                        || (structurally_valid && r.is_err()),
                    "type {} truncated to {len}: {r:?}",
                    m[0]
                );
            }
        }
        if m[0] != 4 {
            let mut long = m.clone();
            long.push(0);
            for r in try_both(&mut p, &long) {
                assert!(matches!(
                    r,
                    Err(DecapsulateError::Message(MessageError::WrongLength { .. }))
                ));
            }
        }
    }
}

#[test]
fn unknown_types_and_reserved_bytes_are_rejected() {
    let (mut p, msgs) = fixtures();
    for m in &msgs {
        for t in [0u8, 5, 255] {
            let mut x = m.clone();
            x[0] = t;
            for r in try_both(&mut p, &x) {
                assert!(matches!(
                    r,
                    Err(DecapsulateError::Message(MessageError::UnknownType(_)))
                ));
            }
        }
        let mut x = m.clone();
        x[2] = 1;
        for r in try_both(&mut p, &x) {
            assert!(matches!(
                r,
                Err(DecapsulateError::Message(MessageError::UnknownType(_)))
            ));
        }
    }
}

#[test]
fn every_flipped_bit_is_rejected() {
    let (mut p, msgs) = fixtures();
    for m in &msgs {
        for byte in 4..m.len() {
            let mut x = m.clone();
            x[byte] ^= 0x01;
            for r in try_both(&mut p, &x) {
                assert!(
                    r.is_err(),
                    "type {} bit flip at {byte} accepted: {r:?}",
                    m[0]
                );
            }
        }
    }
}

#[test]
fn wrong_mac1_and_wrong_index_have_their_own_errors() {
    let (mut p, msgs) = fixtures();
    let init = msgs.iter().find(|m| m[0] == 1).expect("initiation");
    let mut x = init.clone();
    x[120] ^= 0x80; // inside mac1
    let mut out = vec![0u8; 2048];
    let now = p.now;
    assert_eq!(
        p.b.decapsulate(&[], &x, now, &mut out),
        Err(DecapsulateError::InvalidMac1)
    );
    let data = msgs
        .iter()
        .find(|m| m[0] == 4 && m.len() > 32)
        .expect("data");
    let mut x = data.clone();
    x[4..8].copy_from_slice(&0xdead_beefu32.to_le_bytes());
    assert_eq!(
        p.b.decapsulate(&[], &x, now, &mut out),
        Err(DecapsulateError::UnknownIndex(0xdead_beef))
    );
    let mut x = data.clone();
    let last = x.len() - 1;
    x[last] ^= 1;
    // The counter is checked before authentication; use a fresh counter.
    x[8..16].copy_from_slice(&1000u64.to_le_bytes());
    assert_eq!(
        p.b.decapsulate(&[], &x, now, &mut out),
        Err(DecapsulateError::DecryptFailed)
    );
    // A response nobody asked for.
    let resp = msgs.iter().find(|m| m[0] == 2).expect("response");
    assert!(p.b.decapsulate(&[], resp, now, &mut out).is_err());
    // An initiation from a stranger (valid mac1, unknown static key).
    let (mut stranger, sid) =
        device_with_peer(9, key(2).public_key(), None, None, 9, Instant::now());
    stranger.force_handshake(sid, now).expect("peer");
    let (_, init) = drain(&mut stranger, now).remove(0);
    assert_eq!(
        p.b.decapsulate(&[], &init, now, &mut out),
        Err(DecapsulateError::UnknownPeer)
    );
}

#[test]
fn small_output_buffers_are_errors_not_panics() {
    let (mut p, msgs) = fixtures();
    let now = p.now;
    for m in &msgs {
        let mut out = vec![0u8; 10];
        let _ = p.a.decapsulate(&[], m, now, &mut out);
        let _ = p.b.decapsulate(&[], m, now, &mut out);
    }
    let mut tiny = [0u8; 8];
    assert!(matches!(
        p.a.encapsulate(p.peer_b, &ipv4(100, 1), now, &mut tiny),
        Err(noise::EncapsulateError::BufferTooSmall { .. })
    ));
    assert!(matches!(
        p.a.poll_transmit(now, &mut tiny),
        Ok(None) | Err(noise::EncapsulateError::BufferTooSmall { .. })
    ));
    assert_eq!(MessageType::from(4), MessageType::Data);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300), t in 1u8..5) {
        let (mut p, _) = FIXTURE.with(|f| f.take()).unwrap_or_else(fixtures);
        let mut b = bytes;
        if b.len() >= 4 && t != 0 {
            b[0] = t;
            b[1] = 0;
            b[2] = 0;
            b[3] = 0;
        }
        for r in try_both(&mut p, &b) {
            prop_assert!(r.is_err());
        }
        FIXTURE.with(|f| f.set(Some((p, Vec::new()))));
    }
}

thread_local! {
    static FIXTURE: std::cell::Cell<Option<(Pair, Vec<Vec<u8>>)>> = const { std::cell::Cell::new(None) };
}
