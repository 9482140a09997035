//! Loss recovery tests: RACK-TLP (RFC 8985), DSACK (RFC 2883), PRR
//! (RFC 6937), each from an ESTABLISHED connection with SACK.

use super::*;

/// ESTABLISHED with SACK (and timestamps when `ts`), peer window 64 KB.
fn established_sack(now: Instant, ts: bool) -> Tcb {
    let c = TcpConfig {
        sack: true,
        timestamps: ts,
        tx_buffer: 1 << 16,
        ..cfg()
    };
    let mut t = syn_sent_with(&c, now);
    let mut sa = seg(Flags::SYN.with(Flags::ACK), IRS, ISS + 1, &[]);
    sa.options.mss = Some(MSS);
    sa.options.sack_permitted = true;
    if ts {
        sa.options.timestamp = Some((1, t.ts_now(now)));
    }
    sa.window = 65535;
    t.process(now, &sa);
    assert!(t.sack_ok);
    sent(&mut t, now);
    t
}

/// An ACK from the peer with SACK blocks (absolute sequence numbers).
fn sack_ack(ack_: u32, blocks: &[(u32, u32)]) -> Repr<'static> {
    let mut a = ack(IRS + 1, ack_);
    a.window = 65535;
    for (i, &b) in blocks.iter().enumerate() {
        a.options.sack[i] = b;
    }
    a.options.sack_len = blocks.len() as u8;
    a
}

/// Sequence number of the start of our `k`-th full segment.
fn sq(k: u32) -> u32 {
    ISS + 1 + k * u32::from(MSS)
}

/// Sends `n` full segments and returns their starts.
fn send_segments(t: &mut Tcb, n: usize, now: Instant) -> Vec<u32> {
    t.send(&vec![7u8; n * usize::from(MSS)]).expect("send");
    sent(t, now).iter().map(|(r, _)| r.seq).collect()
}

#[test]
fn rack_repairs_a_lost_retransmission_without_waiting_for_the_rto() {
    // RFC 8985 §6.2: a retransmission is lost once a segment sent after it
    // is delivered and RACK.rtt has passed; one SACK suffices.
    let ms = Duration::from_millis;
    let mut now = Instant::now();
    let mut t = established_sack(now, false);
    assert_eq!(send_segments(&mut t, 5, now).len(), 5);
    now += ms(10);
    // Segment 0 lost; 1..4 SACKed: recovery, segment 0 goes again.
    t.process(now, &sack_ack(sq(0), &[(sq(1), sq(5))]));
    let out = sent(&mut t, now);
    assert_eq!(out[0].0.seq, sq(0), "fast retransmit");
    assert_eq!(t.recoveries, 1);
    // New data after the retransmission; it is SACKed, the
    // retransmission is not: it was lost too.
    t.send(&[8u8; 1000]).expect("send");
    let new: Vec<u32> = sent(&mut t, now).iter().map(|(r, _)| r.seq).collect();
    assert!(new.contains(&sq(5)), "{new:?}");
    now += ms(10);
    t.process(now, &sack_ack(sq(0), &[(sq(1), sq(6))]));
    let out = sent(&mut t, now);
    assert_eq!(
        out.first().map(|o| o.0.seq),
        Some(sq(0)),
        "second retransmission"
    );
    assert_eq!(t.rto_count, 0);
}

#[test]
fn rack_timer_finds_a_loss_with_too_few_sacks_for_dupthresh() {
    // Two segments in flight, the first lost: one SACK cannot make three
    // duplicate ACKs; RACK's reordering timer (RFC 8985 §6.2 step 6)
    // retransmits after RACK.rtt + reo_wnd, long before the RTO.
    let ms = Duration::from_millis;
    let mut now = Instant::now();
    let mut t = established_sack(now, false);
    // Get an RTT sample first.
    send_segments(&mut t, 1, now);
    now += ms(10);
    t.process(now, &sack_ack(sq(1), &[]));
    let t0 = now;
    send_segments(&mut t, 2, now);
    now += ms(10);
    t.process(now, &sack_ack(sq(1), &[(sq(2), sq(3))]));
    assert!(sent(&mut t, now).is_empty(), "within the reordering window");
    let at = t.poll_at().expect("a timer");
    assert!(at < t0 + ms(200), "reordering timer at {:?}", at - t0);
    t.handle_timeout(at);
    let out = sent(&mut t, at);
    assert_eq!(out.first().map(|o| o.0.seq), Some(sq(1)));
    assert_eq!(t.rto_count, 0);
}

#[test]
fn tail_loss_probe_goes_out_after_two_rtts() {
    // RFC 8985 §7: nothing comes back for the tail; after PTO = 2·SRTT the
    // last segment is sent again, well before the 200 ms RTO floor.
    let ms = Duration::from_millis;
    let mut now = Instant::now();
    let mut t = established_sack(now, false);
    send_segments(&mut t, 1, now);
    now += ms(10);
    t.process(now, &sack_ack(sq(1), &[]));
    let t0 = now;
    send_segments(&mut t, 3, now);
    let at = t.poll_at().expect("a timer");
    assert!(at - t0 < ms(100), "probe at {:?}", at - t0);
    t.handle_timeout(at);
    let out = sent(&mut t, at);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0.seq, sq(3), "the highest segment is the probe");
    assert_eq!(t.rto_count, 0);
    // The probe's ACK SACKs nothing new: the first two are still out;
    // the ACK of everything ends the episode with one window reduction.
    let cwnd = t.cwnd();
    t.process(at + ms(10), &sack_ack(sq(4), &[]));
    assert!(t.tlp.is_none());
    assert!(t.cwnd() < cwnd, "the probe repaired a loss: one reduction");
}

#[test]
fn eifel_undo_does_not_stop_the_repair_of_other_holes() {
    // Segment 0 is only reordered, segment 4 is lost. The late original
    // of 0 undoes the window reduction (RFC 3522), but 4 must still be
    // retransmitted on SACK evidence, not after an RTO.
    let ms = Duration::from_millis;
    let mut now = Instant::now();
    let mut t = established_sack(now, true);
    let mss = t.payload_mss() as u32;
    let s = |k: u32| ISS + 1 + k * mss;
    let ts_early = t.ts_now(now);
    send_segments(&mut t, 8, now);
    now += ms(10);
    let mut a = sack_ack(s(0), &[(s(1), s(4))]);
    a.options.timestamp = Some((2, ts_early));
    t.process(now, &a);
    let out = sent(&mut t, now);
    assert_eq!(out[0].0.seq, s(0));
    // The original 0 arrives: cumulative ACK to 4, echoing the original's
    // timestamp, with 5..8 SACKed above the hole at 4.
    now += ms(1);
    let mut a = sack_ack(s(4), &[(s(5), s(8))]);
    a.options.timestamp = Some((3, ts_early));
    t.process(now, &a);
    now += ms(10);
    t.handle_timeout(now);
    let out = sent(&mut t, now);
    assert!(out.iter().any(|o| o.0.seq == s(4)), "hole at 4 repaired");
    assert_eq!(t.rto_count, 0);
}

#[test]
fn duplicate_data_is_reported_with_a_dsack_block() {
    // RFC 2883 §4: the first SACK block names the duplicate.
    let now = Instant::now();
    let mut t = established_sack(now, false);
    t.process(now, &seg(Flags::ACK, IRS + 1, ISS + 1, b"hello"));
    sent(&mut t, now);
    t.process(now, &seg(Flags::ACK, IRS + 1, ISS + 1, b"hello"));
    let out = sent(&mut t, now);
    assert_eq!(out[0].0.ack, IRS + 6);
    assert_eq!(out[0].0.options.sack_len, 1);
    assert_eq!(out[0].0.options.sack[0], (IRS + 1, IRS + 6));
    // A duplicate of out-of-order data: DSACK first, then the island.
    t.process(now, &seg(Flags::ACK, IRS + 20, ISS + 1, b"later"));
    sent(&mut t, now);
    t.process(now, &seg(Flags::ACK, IRS + 20, ISS + 1, b"later"));
    let out = sent(&mut t, now);
    let o = &out[0].0.options;
    assert_eq!(o.sack_len, 2);
    assert_eq!(o.sack[0], (IRS + 20, IRS + 25));
    assert_eq!(o.sack[1], (IRS + 20, IRS + 25));
    // The next ACK carries no DSACK any more: its first block is the
    // newest island.
    t.process(now, &seg(Flags::ACK, IRS + 30, ISS + 1, b"more"));
    let out = sent(&mut t, now);
    assert_eq!(out[0].0.options.sack_len, 2);
    assert_eq!(out[0].0.options.sack[0], (IRS + 30, IRS + 34));
}

#[test]
fn fast_recovery_is_paced_by_prr_not_a_burst() {
    // RFC 6937: three holes found at once while pipe is near ssthresh:
    // PRR-SSRB lets one retransmission go now, the others on later ACKs
    // (no burst of every hole ignoring the window).
    let ms = Duration::from_millis;
    let mut now = Instant::now();
    let mut t = established_sack(now, false);
    // Grow cwnd from 10 to 20 segments, each ACK covering one segment.
    assert_eq!(send_segments(&mut t, 40, now).len(), 10);
    now += ms(10);
    for i in 1..=10 {
        t.process(now, &sack_ack(sq(i), &[]));
        sent(&mut t, now);
    }
    assert_eq!(t.cwnd(), 20 * usize::from(MSS));
    let base = t.snd_una.0;
    let k = |i: u32| base + i * u32::from(MSS);
    assert_eq!(t.snd_max.0, k(20));
    now += ms(10);
    // Holes at 0, 2, 4; 1, 3, 5 and 6 SACKed.
    t.process(
        now,
        &sack_ack(k(0), &[(k(5), k(7)), (k(3), k(4)), (k(1), k(2))]),
    );
    let out = sent(&mut t, now);
    let rexmit: Vec<u32> = out.iter().map(|o| o.0.seq).filter(|&s| s < k(20)).collect();
    assert_eq!(rexmit, vec![k(0)], "only the first hole now");
    // Each further delivery releases about one more.
    t.process(
        now,
        &sack_ack(k(0), &[(k(5), k(8)), (k(3), k(4)), (k(1), k(2))]),
    );
    let out = sent(&mut t, now);
    assert_eq!(out.first().map(|o| o.0.seq), Some(k(2)));
}

#[test]
fn dsack_of_every_retransmission_undoes_the_recovery() {
    // RFC 3708 §3: segment 0 was only late; the peer reports our
    // retransmission of it as a duplicate, so the reduction is undone.
    let ms = Duration::from_millis;
    let mut now = Instant::now();
    let mut t = established_sack(now, false);
    send_segments(&mut t, 10, now);
    let cwnd = t.cwnd();
    now += ms(10);
    t.process(now, &sack_ack(sq(0), &[(sq(1), sq(5))]));
    assert_eq!(sent(&mut t, now)[0].0.seq, sq(0));
    assert!(t.cwnd() < cwnd);
    // The original arrives, then our copy: a DSACK below the ACK.
    now += ms(1);
    t.process(now, &sack_ack(sq(10), &[]));
    t.process(now, &sack_ack(sq(10), &[(sq(0), sq(1))]));
    assert_eq!(t.cwnd(), cwnd, "window restored");
}

#[test]
fn progress_after_a_new_data_probe_allows_the_next_probe() {
    // RFC 8985 §7.4: a probe of new data needs no congestion response, so
    // once an ACK makes progress the tail may be probed again (otherwise a
    // lost probe behind a delayed ACK waits for the RTO).
    let ms = Duration::from_millis;
    let mut now = Instant::now();
    let mut t = established_sack(now, false);
    send_segments(&mut t, 1, now);
    now += ms(10);
    t.process(now, &sack_ack(sq(1), &[]));
    send_segments(&mut t, 4, now);
    // As if the PTO had sent segment 3 as a new-data probe.
    t.tlp = Some((Seq(sq(5)), false));
    now += ms(10);
    t.process(now, &sack_ack(sq(3), &[]));
    assert!(t.tlp.is_none());
    assert!(t.timers.is_set(Timer::Probe), "the next tail is probed");
}
