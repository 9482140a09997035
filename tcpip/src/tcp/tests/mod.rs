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

mod recovery;
