//! State-machine tests, one per RFC rule, each starting from a named state
//! (`syn_sent()`, `established()`, …) and driven with template segments.

use super::*;
use crate::wire::tcp::{Flags, Options, Repr};
use std::net::{IpAddr, Ipv4Addr};

const LOCAL: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 1000);
const REMOTE: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 2000);
const ISS: u32 = 100;
const IRS: u32 = 300;
const MSS: u16 = 1000;

fn cfg() -> TcpConfig {
    TcpConfig {
        rx_buffer: 16384,
        tx_buffer: 16384,
        timestamps: false,
        sack: false,
        window_scaling: false,
        ..TcpConfig::default()
    }
}

fn seg(flags: Flags, seq: u32, ack: u32, payload: &[u8]) -> Repr<'_> {
    Repr {
        src_port: REMOTE.port(),
        dst_port: LOCAL.port(),
        seq,
        ack,
        flags,
        window: 8192,
        options: Options::default(),
        payload,
    }
}

fn ack(seq: u32, ack: u32) -> Repr<'static> {
    seg(Flags::ACK, seq, ack, &[])
}

/// Drains every segment the connection wants to send now.
fn sent(t: &mut Tcb, now: Instant) -> Vec<(Repr<'static>, Vec<u8>)> {
    let mut v = Vec::new();
    while let Some(o) = t.poll_segment(now) {
        let mut p = vec![0u8; o.payload_len];
        t.copy_payload(o.payload_off, &mut p);
        v.push((o.repr, p));
        assert!(v.len() < 1000, "runaway output");
    }
    v
}

fn syn_sent_with(c: &TcpConfig, now: Instant) -> Tcb {
    let mut t = Tcb::connect(c, LOCAL, REMOTE, Seq(ISS), MSS, now, 0);
    let out = sent(&mut t, now);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0.flags, Flags::SYN);
    assert_eq!(out[0].0.options.mss, Some(MSS));
    t
}

fn syn_sent(now: Instant) -> Tcb {
    syn_sent_with(&cfg(), now)
}

fn established_with(c: &TcpConfig, now: Instant) -> Tcb {
    let mut t = syn_sent_with(c, now);
    let mut sa = seg(Flags::SYN.with(Flags::ACK), IRS, ISS + 1, &[]);
    sa.options.mss = Some(MSS);
    t.process(now, &sa);
    assert_eq!(t.state, State::Established);
    let out = sent(&mut t, now);
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].0.flags, out[0].0.ack), (Flags::ACK, IRS + 1));
    t.events = 0;
    t
}

fn established(now: Instant) -> Tcb {
    established_with(&cfg(), now)
}

fn fin_wait_1(now: Instant) -> Tcb {
    let mut t = established(now);
    t.close(now);
    assert_eq!(t.state, State::FinWait1);
    let out = sent(&mut t, now);
    assert_eq!(out[0].0.flags, Flags::ACK.with(Flags::FIN));
    assert_eq!(out[0].0.seq, ISS + 1);
    t
}

fn close_wait(now: Instant) -> Tcb {
    let mut t = established(now);
    t.process(
        now,
        &seg(Flags::ACK.with(Flags::FIN), IRS + 1, ISS + 1, &[]),
    );
    assert_eq!(t.state, State::CloseWait);
    let out = sent(&mut t, now);
    assert_eq!(out[0].0.ack, IRS + 2);
    t
}

#[test]
fn syn_sent_rst_with_acceptable_ack_is_refused() {
    // RFC 9293 §3.10.7.3 (second check): "connection reset", ECONNREFUSED.
    let now = Instant::now();
    let mut t = syn_sent(now);
    t.process(now, &seg(Flags::RST.with(Flags::ACK), 0, ISS + 1, &[]));
    assert_eq!(t.state, State::Closed);
    assert_eq!(t.error, Some(Error::ConnectionRefused));
}

#[test]
fn syn_sent_rst_without_ack_is_ignored() {
    let now = Instant::now();
    let mut t = syn_sent(now);
    t.process(now, &seg(Flags::RST, 0, 0, &[]));
    assert_eq!(t.state, State::SynSent);
}

#[test]
fn syn_sent_unacceptable_ack_draws_rst() {
    // RFC 9293 §3.10.7.3 (first check): <SEQ=SEG.ACK><CTL=RST>.
    let now = Instant::now();
    let mut t = syn_sent(now);
    t.process(now, &seg(Flags::SYN.with(Flags::ACK), IRS, ISS + 77, &[]));
    assert_eq!(t.state, State::SynSent);
    let out = sent(&mut t, now);
    assert_eq!((out[0].0.flags, out[0].0.seq), (Flags::RST, ISS + 77));
}

#[test]
fn simultaneous_open() {
    // RFC 9293 Figure 8: SYN in SYN-SENT → SYN-RECEIVED, SYN-ACK; ACK → ESTABLISHED.
    let now = Instant::now();
    let mut t = syn_sent(now);
    t.process(now, &seg(Flags::SYN, IRS, 0, &[]));
    assert_eq!(t.state, State::SynReceived);
    let out = sent(&mut t, now);
    assert_eq!(out[0].0.flags, Flags::SYN.with(Flags::ACK));
    assert_eq!((out[0].0.seq, out[0].0.ack), (ISS, IRS + 1));
    t.process(now, &ack(IRS + 1, ISS + 1));
    assert_eq!(t.state, State::Established);
    assert_ne!(t.events & ev::CONNECTED, 0);
}

#[test]
fn passive_open_and_retransmitted_syn() {
    let now = Instant::now();
    let syn = SynInfo {
        seq: Seq(IRS),
        window: 8192,
        options: Options {
            mss: Some(MSS),
            ..Options::default()
        },
    };
    let mut t = Tcb::accept_syn(&cfg(), LOCAL, REMOTE, Seq(ISS), MSS, now, 0, &syn);
    let out = sent(&mut t, now);
    assert_eq!(out[0].0.flags, Flags::SYN.with(Flags::ACK));
    // A retransmitted SYN gets the SYN-ACK again.
    t.process(now, &seg(Flags::SYN, IRS, 0, &[]));
    assert_eq!(sent(&mut t, now)[0].0.flags, Flags::SYN.with(Flags::ACK));
    // A bad ACK in SYN-RECEIVED draws a RST (RFC 9293 §3.10.7.4 fifth check).
    t.process(now, &ack(IRS + 1, ISS + 9));
    assert_eq!(sent(&mut t, now)[0].0.flags, Flags::RST);
    t.process(now, &ack(IRS + 1, ISS + 1));
    assert_eq!(t.state, State::Established);
    assert_ne!(t.events & ev::ACCEPTABLE, 0);
}

#[test]
fn rst_exact_sequence_resets() {
    // RFC 5961 §3.2: RST with SEG.SEQ == RCV.NXT resets.
    let now = Instant::now();
    let mut t = established(now);
    t.process(now, &seg(Flags::RST, IRS + 1, 0, &[]));
    assert_eq!(t.state, State::Closed);
    assert_eq!(t.error, Some(Error::ConnectionReset));
    assert_eq!(t.send(b"x"), Err(Error::BrokenPipe));
    assert_eq!(t.recv(&mut [0u8; 4]), Err(Error::ConnectionReset));
}

#[test]
fn rst_in_window_gets_challenge_ack() {
    // RFC 5961 §3.2: in window but not exact → challenge ACK, no reset.
    let now = Instant::now();
    let mut t = established(now);
    t.process(now, &seg(Flags::RST, IRS + 100, 0, &[]));
    assert_eq!(t.state, State::Established);
    let out = sent(&mut t, now);
    assert_eq!((out[0].0.flags, out[0].0.ack), (Flags::ACK, IRS + 1));
    // Out of window: silently dropped.
    t.process(now, &seg(Flags::RST, IRS + 100_000, 0, &[]));
    assert!(sent(&mut t, now).is_empty());
    assert_eq!(t.state, State::Established);
}

#[test]
fn syn_in_established_gets_challenge_ack() {
    // RFC 5961 §4.2.
    let now = Instant::now();
    let mut t = established(now);
    t.process(now, &seg(Flags::SYN, IRS + 1, 0, &[]));
    assert_eq!(t.state, State::Established);
    assert_eq!(sent(&mut t, now)[0].0.flags, Flags::ACK);
}

#[test]
fn ack_for_unsent_data_is_answered_and_dropped() {
    // RFC 9293 §3.10.7.4 fifth check / RFC 5961 §5.2.
    let now = Instant::now();
    let mut t = established(now);
    t.process(now, &seg(Flags::ACK, IRS + 1, ISS + 5000, b"data"));
    assert_eq!(t.recv_queue(), 0);
    assert_eq!(sent(&mut t, now)[0].0.ack, IRS + 1);
}

#[test]
fn out_of_window_data_is_acked_not_taken() {
    let now = Instant::now();
    let mut t = established(now);
    t.process(now, &seg(Flags::ACK, IRS + 1 + 20_000, ISS + 1, b"far"));
    assert_eq!(t.recv_queue(), 0);
    assert_eq!(sent(&mut t, now)[0].0.ack, IRS + 1);
    // Old duplicate: ACKed again.
    t.process(now, &seg(Flags::ACK, IRS - 10, ISS + 1, b"old"));
    assert_eq!(sent(&mut t, now)[0].0.ack, IRS + 1);
}

#[test]
fn out_of_order_is_reassembled_and_sacked() {
    // RFC 9293 §3.10.7.4 seventh check; RFC 2018 §4 SACK on out-of-order.
    let now = Instant::now();
    let c = TcpConfig {
        sack: true,
        ..cfg()
    };
    let mut t = syn_sent_with(&c, now);
    let mut sa = seg(Flags::SYN.with(Flags::ACK), IRS, ISS + 1, &[]);
    sa.options.sack_permitted = true;
    t.process(now, &sa);
    sent(&mut t, now);
    t.process(now, &seg(Flags::ACK, IRS + 6, ISS + 1, b"world"));
    let out = sent(&mut t, now);
    assert_eq!(out[0].0.ack, IRS + 1);
    assert_eq!(out[0].0.options.sack_len, 1);
    assert_eq!(out[0].0.options.sack[0], (IRS + 6, IRS + 11));
    t.process(now, &seg(Flags::ACK, IRS + 1, ISS + 1, b"hello"));
    let out = sent(&mut t, now);
    assert_eq!(out[0].0.ack, IRS + 11, "filling the hole is ACKed at once");
    let mut b = [0u8; 16];
    assert_eq!(t.recv(&mut b), Ok(10));
    assert_eq!(&b[..10], b"helloworld");
}

#[test]
fn fin_moves_to_close_wait_and_reads_eof() {
    let now = Instant::now();
    let mut t = close_wait(now);
    assert_eq!(t.recv(&mut [0u8; 4]), Ok(0));
    // Half-close: we can still send.
    assert_eq!(t.send(b"late"), Ok(4));
    assert_eq!(sent(&mut t, now)[0].1, b"late");
}

#[test]
fn close_wait_to_last_ack_to_closed() {
    let now = Instant::now();
    let mut t = close_wait(now);
    t.close(now);
    assert_eq!(t.state, State::LastAck);
    let out = sent(&mut t, now);
    assert!(out[0].0.flags.has(Flags::FIN));
    t.process(now, &ack(IRS + 2, ISS + 2));
    assert_eq!(t.state, State::Closed);
    assert!(t.reclaimable());
}

#[test]
fn active_close_through_time_wait() {
    let now = Instant::now();
    let mut t = fin_wait_1(now);
    t.process(now, &ack(IRS + 1, ISS + 2));
    assert_eq!(t.state, State::FinWait2);
    t.process(
        now,
        &seg(Flags::ACK.with(Flags::FIN), IRS + 1, ISS + 2, &[]),
    );
    assert_eq!(t.state, State::TimeWait);
    assert_eq!(sent(&mut t, now)[0].0.ack, IRS + 2);
    // RFC 1337: RST in TIME-WAIT is ignored.
    t.process(now, &seg(Flags::RST, IRS + 2, 0, &[]));
    assert_eq!(t.state, State::TimeWait);
    // A retransmitted FIN is ACKed again.
    t.process(
        now,
        &seg(Flags::ACK.with(Flags::FIN), IRS + 1, ISS + 2, &[]),
    );
    assert_eq!(sent(&mut t, now)[0].0.ack, IRS + 2);
    t.handle_timeout(now + t.cfg.time_wait);
    assert_eq!(t.state, State::Closed);
}

#[test]
fn simultaneous_close_goes_through_closing() {
    let now = Instant::now();
    let mut t = fin_wait_1(now);
    t.process(
        now,
        &seg(Flags::ACK.with(Flags::FIN), IRS + 1, ISS + 1, &[]),
    );
    assert_eq!(t.state, State::Closing);
    t.process(now, &ack(IRS + 2, ISS + 2));
    assert_eq!(t.state, State::TimeWait);
}

#[test]
fn data_after_close_draws_rst() {
    // Linux behaviour: the application closed, nobody can read this.
    let now = Instant::now();
    let mut t = fin_wait_1(now);
    t.process(now, &seg(Flags::ACK, IRS + 1, ISS + 2, b"unwanted"));
    assert_eq!(t.state, State::Closed);
    assert_eq!(sent(&mut t, now)[0].0.flags, Flags::RST);
}

#[test]
fn close_with_unread_data_resets() {
    let now = Instant::now();
    let mut t = established(now);
    t.process(now, &seg(Flags::ACK, IRS + 1, ISS + 1, b"unread"));
    sent(&mut t, now);
    t.close(now);
    assert_eq!(t.state, State::Closed);
    assert_eq!(sent(&mut t, now)[0].0.flags, Flags::RST);
}

#[test]
fn rto_retransmits_with_backoff_then_times_out() {
    // RFC 6298 §5: retransmit the earliest segment, double the RTO.
    let mut now = Instant::now();
    let c = TcpConfig {
        data_retries: 3,
        ..cfg()
    };
    let mut t = established_with(&c, now);
    t.send(b"abc").expect("send");
    assert_eq!(sent(&mut t, now)[0].1, b"abc");
    let mut rto = t.rtt.rto();
    for _ in 0..3 {
        now += rto;
        t.handle_timeout(now);
        let out = sent(&mut t, now);
        assert_eq!((out[0].0.seq, out[0].1.as_slice()), (ISS + 1, &b"abc"[..]));
        assert_eq!(t.cwnd(), t.payload_mss(), "loss window after RTO");
        rto *= 2;
    }
    now += rto;
    t.handle_timeout(now);
    assert_eq!(t.error, Some(Error::TimedOut));
    assert_eq!(Error::TimedOut.errno(), 110);
}

#[test]
fn three_dup_acks_fast_retransmit() {
    // RFC 5681 §3.2.
    let now = Instant::now();
    let mut t = established(now);
    let data = vec![1u8; 5000];
    t.send(&data).expect("send");
    let out = sent(&mut t, now);
    assert_eq!(out.len(), 5);
    let cwnd = t.cwnd();
    for _ in 0..3 {
        t.process(now, &ack(IRS + 1, ISS + 1));
    }
    let out = sent(&mut t, now);
    assert_eq!(out[0].0.seq, ISS + 1, "the first unacked segment is resent");
    assert!(t.cwnd() < cwnd, "multiplicative decrease");
}

#[test]
fn zero_window_probe_then_resume() {
    // RFC 9293 §3.8.6.1 / RFC 1122 §4.2.2.17.
    let mut now = Instant::now();
    let mut t = established(now);
    let mut z = ack(IRS + 1, ISS + 1);
    z.window = 0;
    t.process(now, &z);
    t.send(b"blocked").expect("send");
    assert!(sent(&mut t, now).is_empty());
    now += t.rtt.rto();
    t.handle_timeout(now);
    let out = sent(&mut t, now);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1, b"b", "one-byte probe");
    // The peer answers probes with a zero window: the connection stays.
    for _ in 0..20 {
        t.process(now, &z);
        now += Duration::from_secs(61);
        t.handle_timeout(now);
        sent(&mut t, now);
    }
    assert_eq!(t.state, State::Established);
    t.process(now, &ack(IRS + 1, ISS + 2));
    let out = sent(&mut t, now);
    assert_eq!(out[0].1, b"locked");
}

#[test]
fn delayed_ack_every_second_segment() {
    // RFC 1122 §4.2.3.2, RFC 5681 §4.2.
    let now = Instant::now();
    let mut t = established(now);
    let full = vec![0u8; usize::from(MSS)];
    t.process(now, &seg(Flags::ACK, IRS + 1, ISS + 1, &full));
    assert!(sent(&mut t, now).is_empty(), "first segment: ACK delayed");
    t.process(
        now,
        &seg(Flags::ACK, IRS + 1 + u32::from(MSS), ISS + 1, &full),
    );
    assert_eq!(sent(&mut t, now).len(), 1, "second full segment: ACK now");
    t.process(
        now,
        &seg(Flags::ACK, IRS + 1 + 2 * u32::from(MSS), ISS + 1, &full),
    );
    assert!(sent(&mut t, now).is_empty());
    let later = now + t.cfg.delayed_ack;
    t.handle_timeout(later);
    assert_eq!(sent(&mut t, later)[0].0.ack, IRS + 1 + 3 * u32::from(MSS));
}

#[test]
fn keepalive_probes_then_times_out() {
    // RFC 1122 §4.2.3.6.
    let mut now = Instant::now();
    let c = TcpConfig {
        keepalive: Some(Duration::from_secs(10)),
        keepalive_interval: Duration::from_secs(1),
        keepalive_probes: 2,
        ..cfg()
    };
    let mut t = established_with(&c, now);
    now += Duration::from_secs(10);
    t.handle_timeout(now);
    let out = sent(&mut t, now);
    assert_eq!(out[0].0.seq, ISS, "probe carries SND.UNA − 1");
    // An answer resets the idle timer.
    t.process(now, &ack(IRS + 1, ISS + 1));
    for _ in 0..4 {
        now += Duration::from_secs(10);
        t.handle_timeout(now);
        sent(&mut t, now);
    }
    assert_eq!(t.error, Some(Error::TimedOut));
}

#[test]
fn keepalive_configured_later_uses_the_sockets_interval_and_count() {
    // SO_KEEPALIVE + TCP_KEEPIDLE/KEEPINTVL/KEEPCNT set on a live socket.
    let start = Instant::now();
    let mut t = established_with(&cfg(), start);
    let mut now = start;
    t.set_keepalive_probes(Duration::from_secs(2), 3);
    t.set_keepalive(Some(Duration::from_secs(5)), now);
    let mut probes = 0;
    while t.error.is_none() && now < start + Duration::from_secs(60) {
        now += Duration::from_millis(500);
        t.handle_timeout(now);
        probes += sent(&mut t, now).len();
    }
    assert_eq!(t.error, Some(Error::TimedOut));
    assert_eq!(probes, 3, "three unanswered probes");
    // idle 5 s + 3 probes 2 s apart, then the last interval.
    assert_eq!(now - start, Duration::from_secs(11));
}

#[test]
fn paws_drops_old_timestamps() {
    // RFC 7323 §5.3.
    let now = Instant::now();
    let c = TcpConfig {
        timestamps: true,
        ..cfg()
    };
    let mut t = syn_sent_with(&c, now);
    let mut sa = seg(Flags::SYN.with(Flags::ACK), IRS, ISS + 1, &[]);
    sa.options.timestamp = Some((1000, 0));
    t.process(now, &sa);
    sent(&mut t, now);
    let mut old = seg(Flags::ACK, IRS + 1, ISS + 1, b"stale");
    old.options.timestamp = Some((999, 0));
    t.process(now, &old);
    assert_eq!(t.recv_queue(), 0);
    let mut fresh = old;
    fresh.options.timestamp = Some((1001, 0));
    t.process(now, &fresh);
    assert_eq!(t.recv_queue(), 5);
}

#[test]
fn window_scale_applies_after_syn_only() {
    // RFC 7323 §2.2: the SYN's window is never scaled.
    let now = Instant::now();
    let c = TcpConfig {
        window_scaling: true,
        rx_buffer: 1 << 20,
        ..cfg()
    };
    let mut t = syn_sent_with(&c, now);
    let mut sa = seg(Flags::SYN.with(Flags::ACK), IRS, ISS + 1, &[]);
    sa.options.window_scale = Some(3);
    sa.window = 1000;
    t.process(now, &sa);
    assert_eq!(t.snd_wnd, 1000);
    let mut a = ack(IRS + 1, ISS + 1);
    a.window = 1000;
    t.process(now, &a);
    assert_eq!(t.snd_wnd, 8000);
    assert!(t.rcv_wscale > 0);
}

#[test]
fn icmp_errors_fail_connect_or_stay_soft() {
    // RFC 1122 §4.2.3.9, RFC 5927.
    let now = Instant::now();
    let mut t = syn_sent(now);
    t.icmp_error(Error::HostUnreachable, Seq(ISS));
    assert_eq!(t.error, Some(Error::HostUnreachable));
    let mut t = established(now);
    t.send(b"x").expect("send");
    sent(&mut t, now);
    t.icmp_error(Error::HostUnreachable, Seq(ISS + 1));
    assert_eq!(t.state, State::Established, "soft error while established");
    t.icmp_error(Error::ConnectionRefused, Seq(ISS + 5000));
    assert_eq!(
        t.soft_error,
        Some(Error::HostUnreachable),
        "out-of-window quote ignored"
    );
}

#[test]
fn packet_too_big_lowers_mss_and_resends() {
    let now = Instant::now();
    let mut t = established(now);
    t.send(&[3u8; 3000]).expect("send");
    assert_eq!(sent(&mut t, now)[0].1.len(), usize::from(MSS));
    t.lower_mss(600, now);
    t.handle_timeout(now);
    let out = sent(&mut t, now);
    assert_eq!(out[0].0.seq, ISS + 1);
    assert_eq!(out[0].1.len(), 560);
}

#[test]
fn challenge_acks_are_rate_limited() {
    // RFC 5961 §7.
    let now = Instant::now();
    let mut t = established(now);
    let mut acks = 0;
    for _ in 0..100 {
        t.process(now, &seg(Flags::RST, IRS + 100, 0, &[]));
        acks += sent(&mut t, now).len();
    }
    assert_eq!(acks, 10);
    let later = now + Duration::from_secs(1);
    t.process(later, &seg(Flags::SYN, IRS + 1, 0, &[]));
    assert_eq!(sent(&mut t, later).len(), 1);
}

// ---- Loss recovery: RACK-TLP (RFC 8985), DSACK (RFC 2883), PRR ----

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
