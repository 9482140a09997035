//! Every timer of WireGuard paper §6, in simulated time: two of our devices
//! over a virtual link, the clock moved by hand.

mod common;

use std::time::Duration;

use common::*;
use noise::timers::*;
use noise::{DecapsulateError, Encapsulated};

const INIT: u8 = 1;
const DATA: u8 = 4;
const KEEPALIVE: (u8, usize) = (DATA, 32);

#[test]
fn handshake_then_data_both_ways() {
    let mut p = Pair::new(1, None, None);
    p.establish();
    p.send(Side::A, &ipv4(50, 1));
    p.send(Side::B, &ipv4(60, 2));
    assert_eq!(
        p.delivered,
        vec![(Side::B, ipv4(50, 1)), (Side::A, ipv4(60, 2))]
    );
}

#[test]
fn rekey_after_time_at_120s_by_the_initiator_only() {
    let mut p = Pair::new(2, None, None);
    p.establish();
    let t0 = p.now;
    p.advance_to(t0 + REKEY_AFTER_TIME - Duration::from_millis(1));
    let mark = p.log.len();
    p.send(Side::A, &ipv4(10, 1));
    p.send(Side::B, &ipv4(10, 2)); // the responder never rekeys on time
    assert!(p.sent_since(mark, Side::A).iter().all(|(k, _)| *k == DATA));
    assert!(p.sent_since(mark, Side::B).iter().all(|(k, _)| *k == DATA));
    p.advance_to(t0 + REKEY_AFTER_TIME);
    let mark = p.log.len();
    p.send(Side::B, &ipv4(10, 2));
    assert!(p.sent_since(mark, Side::B).iter().all(|(k, _)| *k == DATA));
    p.send(Side::A, &ipv4(10, 3));
    let sent = p.sent_since(mark, Side::A);
    assert_eq!(
        sent[0].0, DATA,
        "the packet still goes out on the old session"
    );
    assert_eq!(sent[1].0, INIT, "then a new handshake starts");
    let stats = p.a.peer_stats(p.peer_b, p.now).expect("peer");
    assert_eq!(stats.last_handshake, Some(t0 + REKEY_AFTER_TIME));
}

#[test]
fn reject_after_time_at_180s_on_both_sides() {
    let mut p = Pair::new(3, None, None);
    p.establish();
    let t0 = p.now;
    // A data message sealed just before REJECT_AFTER_TIME...
    let now = t0 + REJECT_AFTER_TIME - Duration::from_millis(1);
    let mut out = vec![0u8; 2048];
    let len = match p.b.encapsulate(p.peer_a, &ipv4(20, 1), now, &mut out) {
        Ok(Encapsulated::Data(len)) => len,
        other => panic!("{other:?}"),
    };
    // ...is refused by the receiver once the session is 180 s old.
    let mut plain = vec![0u8; 2048];
    assert_eq!(
        p.a.decapsulate(&[], &out[..len], t0 + REJECT_AFTER_TIME, &mut plain),
        Err(DecapsulateError::SessionExpired)
    );
    // And the sender no longer uses it: the packet is queued for a handshake.
    let r =
        p.b.encapsulate(p.peer_a, &ipv4(20, 1), t0 + REJECT_AFTER_TIME, &mut out);
    assert!(matches!(r, Ok(Encapsulated::Handshake(148))), "{r:?}");
    assert!(
        !p.b.peer_stats(p.peer_a, t0 + REJECT_AFTER_TIME)
            .expect("peer")
            .has_session
    );
}

#[test]
fn retransmit_every_rekey_timeout_plus_jitter_then_give_up_after_rekey_attempt_time() {
    let mut p = Pair::new(4, None, None);
    p.link_up = false;
    let t0 = p.now;
    p.send(Side::A, &ipv4(10, 1));
    let mut sent_at = vec![t0];
    while let Some(t) = p.a.poll_timeout() {
        if t > t0 + Duration::from_secs(200) {
            break;
        }
        p.now = t;
        p.a.handle_timeout(t);
        let before = p.log.len();
        p.drive();
        if p.log.len() > before {
            assert_eq!(p.sent_since(before, Side::A), vec![(INIT, 148)]);
            sent_at.push(t);
        }
    }
    // One initiation and MAX_TIMER_HANDSHAKES retries, REKEY_TIMEOUT + 0..=333 ms apart.
    assert_eq!(sent_at.len(), 1 + MAX_TIMER_HANDSHAKES as usize);
    for w in sent_at.windows(2) {
        let gap = w[1] - w[0];
        assert!(
            gap >= REKEY_TIMEOUT && gap <= REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX,
            "{gap:?}"
        );
    }
    let last = *sent_at.last().expect("some");
    assert!(last - t0 >= REKEY_ATTEMPT_TIME);
    assert!(last - t0 <= REKEY_ATTEMPT_TIME + REKEY_TIMEOUT_JITTER_MAX * MAX_TIMER_HANDSHAKES);
    // Given up: the queued packet was dropped and counted.
    let stats = p.a.peer_stats(p.peer_b, p.now).expect("peer");
    assert_eq!(stats.handshake_started, None, "no handshake in progress");
    assert_eq!(stats.last_received, None, "nothing ever came");
    assert_eq!((stats.queued, stats.dropped), (0, 1));
    assert_eq!(p.a.peer_timer(p.peer_b, Timer::RetransmitHandshake), None);
}

#[test]
fn jitter_is_not_constant() {
    let mut p = Pair::new(5, None, None);
    p.link_up = false;
    p.send(Side::A, &ipv4(10, 1));
    let mut gaps = std::collections::BTreeSet::new();
    let mut last = p.now;
    for _ in 0..6 {
        let t = p.a.poll_timeout().expect("retransmit armed");
        gaps.insert(t - last);
        last = t;
        p.now = t;
        p.a.handle_timeout(t);
        p.drive();
    }
    assert!(gaps.len() > 1, "{gaps:?}");
}

#[test]
fn keepalive_after_10s_of_receive_only() {
    let mut p = Pair::new(6, None, None);
    p.establish();
    p.advance(Duration::from_secs(1));
    p.send(Side::B, &ipv4(10, 1));
    let mark = p.log.len();
    p.advance(KEEPALIVE_TIMEOUT - Duration::from_millis(1));
    assert!(p.sent_since(mark, Side::A).is_empty());
    p.advance(Duration::from_millis(1));
    assert_eq!(p.sent_since(mark, Side::A), vec![KEEPALIVE]);
    // Nothing more while idle.
    let mark = p.log.len();
    p.advance(Duration::from_secs(60));
    assert!(p.sent_since(mark, Side::A).is_empty());
}

#[test]
fn no_keepalive_when_we_answered_with_data() {
    let mut p = Pair::new(7, None, None);
    p.establish();
    p.send(Side::B, &ipv4(10, 1));
    p.advance(Duration::from_secs(3));
    p.send(Side::A, &ipv4(10, 2));
    let mark = p.log.len();
    p.advance(Duration::from_secs(9));
    assert!(!p.sent_since(mark, Side::A).contains(&KEEPALIVE));
}

#[test]
fn new_handshake_when_sent_data_gets_no_answer() {
    let mut p = Pair::new(8, None, None);
    p.establish();
    p.advance(Duration::from_secs(1));
    p.link_up = false;
    let t1 = p.now;
    p.send(Side::A, &ipv4(10, 1));
    let deadline =
        p.a.peer_timer(p.peer_b, Timer::NewHandshake)
            .expect("armed");
    assert!(deadline >= t1 + KEEPALIVE_TIMEOUT + REKEY_TIMEOUT);
    assert!(deadline <= t1 + KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX);
    let mark = p.log.len();
    p.advance_to(deadline);
    assert_eq!(p.sent_since(mark, Side::A), vec![(INIT, 148)]);
}

#[test]
fn persistent_keepalive_every_interval() {
    let mut p = Pair::new(9, Some(25), None);
    p.establish();
    let mark = p.log.len();
    let t0 = p.now;
    p.advance(Duration::from_secs(24));
    assert!(p.sent_since(mark, Side::A).is_empty());
    p.advance(Duration::from_secs(1));
    assert_eq!(p.sent_since(mark, Side::A), vec![KEEPALIVE]);
    p.advance_to(t0 + Duration::from_secs(100));
    assert_eq!(p.sent_since(mark, Side::A), vec![KEEPALIVE; 4]);
    assert!(
        p.sent_since(mark, Side::B).is_empty(),
        "B has no persistent keepalive"
    );
}

#[test]
fn keys_zeroed_after_three_times_reject_after_time() {
    let mut p = Pair::new(10, None, None);
    p.establish();
    let t0 = p.now;
    // A data message from B, delivered now and replayed after zeroing.
    let mut out = vec![0u8; 2048];
    let len = match p.b.encapsulate(p.peer_a, &ipv4(10, 1), t0, &mut out) {
        Ok(Encapsulated::Data(len)) => len,
        other => panic!("{other:?}"),
    };
    p.transmit(Side::B, out[..len].to_vec());
    let at =
        p.a.peer_timer(p.peer_b, Timer::ZeroKeyMaterial)
            .expect("armed");
    assert_eq!(at, t0 + 3 * REJECT_AFTER_TIME);
    p.advance_to(at);
    assert_eq!(p.a.peer_timer(p.peer_b, Timer::ZeroKeyMaterial), None);
    let mut plain = vec![0u8; 2048];
    assert!(matches!(
        p.a.decapsulate(&[], &out[..len], at, &mut plain),
        Err(DecapsulateError::UnknownIndex(_))
    ));
}

#[test]
fn queued_packets_are_bounded_and_sent_after_the_handshake() {
    let mut p = Pair::new(11, None, None);
    p.link_up = false;
    for i in 0..300u32 {
        let mut pkt = ipv4(4, 0);
        pkt[20..24].copy_from_slice(&i.to_be_bytes());
        p.send(Side::A, &pkt);
    }
    let stats = p.a.peer_stats(p.peer_b, p.now).expect("peer");
    assert_eq!(stats.queued, noise::MAX_QUEUED_PACKETS);
    assert_eq!(stats.dropped, 300 - noise::MAX_QUEUED_PACKETS as u64);
    p.link_up = true;
    p.advance(REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX);
    let got: Vec<_> = p.delivered.iter().filter(|(s, _)| *s == Side::B).collect();
    assert_eq!(got.len(), noise::MAX_QUEUED_PACKETS);
    // The oldest were dropped: the first delivered is packet number 44.
    assert_eq!(got[0].1[20..24], 44u32.to_be_bytes());
}

#[test]
fn replayed_data_is_rejected() {
    let mut p = Pair::new(12, None, None);
    p.establish();
    let mut out = vec![0u8; 2048];
    let len = match p.a.encapsulate(p.peer_b, &ipv4(10, 1), p.now, &mut out) {
        Ok(Encapsulated::Data(len)) => len,
        other => panic!("{other:?}"),
    };
    let mut plain = vec![0u8; 2048];
    assert!(p.b.decapsulate(&[], &out[..len], p.now, &mut plain).is_ok());
    assert_eq!(
        p.b.decapsulate(&[], &out[..len], p.now, &mut plain),
        Err(DecapsulateError::Replay { counter: 1 })
    );
}

#[test]
fn replayed_initiation_is_rejected() {
    let mut p = Pair::new(13, None, None);
    p.establish();
    let init = p
        .log
        .iter()
        .find(|(s, d)| *s == Side::A && d[0] == INIT)
        .expect("sent")
        .1
        .clone();
    let mut out = vec![0u8; 2048];
    let later = p.now + Duration::from_secs(30);
    assert_eq!(
        p.b.decapsulate(&[], &init, later, &mut out),
        Err(DecapsulateError::ReplayedInitiation)
    );
}

#[test]
fn initiator_rekeys_before_reject_when_only_receiving() {
    let mut p = Pair::new(14, None, None);
    p.establish();
    let t0 = p.now;
    p.advance_to(t0 + REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT);
    let mark = p.log.len();
    p.send(Side::B, &ipv4(10, 1));
    assert!(p.sent_since(mark, Side::A).contains(&(INIT, 148)));
}

#[test]
fn cookie_reply_under_load_then_mac2_accepted() {
    let mut p = Pair::new(15, None, None);
    p.b.set_under_load(true);
    let t0 = p.now;
    p.a.force_handshake(p.peer_b, t0).expect("peer");
    p.drive();
    // B answered the initiation with a cookie reply, not a response.
    assert_eq!(p.sent_since(0, Side::B), vec![(3, 64)]);
    assert!(!p.a.peer_stats(p.peer_b, p.now).expect("peer").has_session);
    // The retransmission carries mac2 and is answered.
    p.advance(REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX);
    assert_eq!(p.sent_since(0, Side::B)[1], (2, 92));
    assert!(p.a.peer_stats(p.peer_b, p.now).expect("peer").has_session);
}

#[test]
fn cookie_secret_rotates_after_two_minutes() {
    let mut p = Pair::new(16, None, None);
    p.b.set_under_load(true);
    p.a.force_handshake(p.peer_b, p.now).expect("peer");
    p.drive();
    p.advance(noise::cookie::COOKIE_SECRET_LIFETIME);
    // The cookie is stale now: the next initiation gets a fresh cookie reply.
    let mark = p.log.len();
    let now = p.now;
    p.a.force_handshake(p.peer_b, now).expect("peer");
    p.drive();
    assert_eq!(p.sent_since(mark, Side::B), vec![(3, 64)]);
}

#[test]
fn many_peers_are_found_by_key_and_index() {
    let now = std::time::Instant::now();
    let mut hub = noise::Device::new(key(100), rng(100), now, std::time::SystemTime::now());
    let mut spokes = Vec::new();
    for i in 0..5u8 {
        let (d, id) =
            device_with_peer(10 + i, key(100).public_key(), None, None, u64::from(i), now);
        let hub_id = hub
            .add_peer(noise::PeerConfig {
                public_key: key(10 + i).public_key(),
                preshared_key: None,
                persistent_keepalive: None,
            })
            .expect("new");
        spokes.push((d, id, hub_id));
    }
    let mut out = vec![0u8; 2048];
    for (d, id, _) in spokes.iter_mut() {
        d.force_handshake(*id, now).expect("peer");
        let (_, init) = drain(d, now).remove(0);
        let len = match hub.decapsulate(&[], &init, now, &mut out) {
            Ok(noise::Decapsulated::WriteToNetwork { len, .. }) => len,
            other => panic!("{other:?}"),
        };
        let resp = out[..len].to_vec();
        d.decapsulate(&[], &resp, now, &mut out).expect("response");
        let (_, ka) = drain(d, now).remove(0);
        hub.decapsulate(&[], &ka, now, &mut out).expect("keepalive");
    }
    for (i, (d, id, hub_id)) in spokes.iter_mut().enumerate() {
        let pkt = ipv4(10, i as u8);
        let len = match d.encapsulate(*id, &pkt, now, &mut out) {
            Ok(Encapsulated::Data(len)) => len,
            other => panic!("{other:?}"),
        };
        let msg = out[..len].to_vec();
        assert_eq!(
            hub.decapsulate(&[], &msg, now, &mut out),
            Ok(noise::Decapsulated::Data {
                peer: *hub_id,
                len: pkt.len()
            })
        );
    }
}

#[test]
fn reordered_data_within_the_window_is_accepted_once() {
    let mut p = Pair::new(17, None, None);
    p.establish();
    let now = p.now;
    let mut msgs = Vec::new();
    for i in 0..300u32 {
        let mut pkt = ipv4(4, 0);
        pkt[20..24].copy_from_slice(&i.to_be_bytes());
        let mut out = vec![0u8; 2048];
        match p.a.encapsulate(p.peer_b, &pkt, now, &mut out) {
            Ok(Encapsulated::Data(len)) => msgs.push(out[..len].to_vec()),
            other => panic!("{other:?}"),
        }
    }
    let mut plain = vec![0u8; 2048];
    for m in msgs.iter().rev() {
        assert!(p.b.decapsulate(&[], m, now, &mut plain).is_ok());
    }
    for m in &msgs {
        assert!(matches!(
            p.b.decapsulate(&[], m, now, &mut plain),
            Err(DecapsulateError::Replay { .. })
        ));
    }
}

#[test]
fn crossing_initiations_still_converge() {
    let mut p = Pair::new(18, None, None);
    let now = p.now;
    p.a.force_handshake(p.peer_b, now).expect("peer");
    p.b.force_handshake(p.peer_a, now).expect("peer");
    let from_a = drain(&mut p.a, now);
    let from_b = drain(&mut p.b, now);
    // Both initiations are in flight before either side sees the other's.
    let mut out = vec![0u8; 2048];
    for (_, m) in from_b {
        let _ = p.a.decapsulate(&[], &m, now, &mut out);
    }
    for (_, m) in from_a {
        let _ = p.b.decapsulate(&[], &m, now, &mut out);
    }
    // Responses to superseded initiations are dropped; retransmission
    // settles it within one REKEY_TIMEOUT (+ jitter).
    p.advance(REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX);
    p.send(Side::A, &ipv4(10, 1));
    p.send(Side::B, &ipv4(10, 2));
    assert_eq!(
        p.delivered,
        vec![(Side::B, ipv4(10, 1)), (Side::A, ipv4(10, 2))]
    );
}

#[test]
fn handshake_started_spans_the_retransmissions_and_ends_with_an_answer() {
    let mut p = Pair::new(40, None, None);
    p.link_up = false;
    let t0 = p.now;
    p.send(Side::A, &ipv4(10, 1));
    let st = p.a.peer_stats(p.peer_b, t0).expect("peer");
    assert_eq!(st.handshake_started, Some(t0));
    // Two retransmissions later it still names the first initiation.
    for _ in 0..2 {
        let t = p.a.poll_timeout().expect("retransmit timer");
        p.now = t;
        p.a.handle_timeout(t);
        p.drive();
    }
    let st = p.a.peer_stats(p.peer_b, p.now).expect("peer");
    assert_eq!((st.handshake_started, st.handshake_attempts), (Some(t0), 2));
    assert_eq!(st.last_received, None);
    // The link comes back: the next retransmission is answered.
    p.link_up = true;
    let t = p.a.poll_timeout().expect("retransmit timer");
    p.now = t;
    p.a.handle_timeout(t);
    p.drive();
    let st = p.a.peer_stats(p.peer_b, p.now).expect("peer");
    assert_eq!(st.handshake_started, None, "completed");
    assert_eq!(st.last_received, Some(t), "the response was heard");
    assert!(st.has_session);
    // The responder heard the initiation too.
    let sb = p.b.peer_stats(p.peer_a, p.now).expect("peer");
    assert_eq!(sb.last_received, Some(t));
    assert_eq!(sb.handshake_started, None);
}
