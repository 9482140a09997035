//! A simulated link between two stacks: virtual time that jumps to the next
//! event, seeded loss / reordering / duplication / corruption / latency /
//! bandwidth (the smoltcp/quinn test style).
#![allow(dead_code)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};
use tcpip::wire::{ipv4, tcp};
use tcpip::Stack;

/// Ground truth about the A→B data segments, seen from the link: which
/// bytes really reached B, and so which retransmissions were needed.
#[derive(Debug, Default, Clone)]
pub struct DataLog {
    /// First data sequence number seen (offsets are relative to it).
    base: Option<u32>,
    /// Highest offset sent so far (end of the highest segment).
    high: u64,
    /// Delivered byte ranges (offsets), sorted, merged.
    delivered: Vec<(u64, u64)>,
    /// Data segments sent.
    pub segments: u64,
    /// Segments starting below the highest sequence already sent.
    pub retransmits: u64,
    /// Retransmissions of bytes that had all reached B already (or were
    /// on their way and would): not needed.
    pub spurious: u64,
    /// Retransmissions the link dropped.
    pub retransmits_lost: u64,
}

impl DataLog {
    fn covered(&self, s: u64, e: u64) -> bool {
        self.delivered.iter().any(|&(a, b)| a <= s && e <= b)
    }

    fn add(&mut self, s: u64, e: u64) {
        let (mut s, mut e) = (s, e);
        self.delivered.retain(|&(a, b)| {
            if b < s || a > e {
                true
            } else {
                s = s.min(a);
                e = e.max(b);
                false
            }
        });
        let i = self.delivered.partition_point(|&(a, _)| a < s);
        self.delivered.insert(i, (s, e));
    }

    /// Records one A→B packet and whether the link delivers it.
    fn record(&mut self, pkt: &[u8], delivered: bool) {
        let Ok(ip) = ipv4::Packet::new_checked(pkt) else {
            return;
        };
        let Ok(t) = tcp::Packet::new_checked(ip.payload()) else {
            return;
        };
        let len = t.payload().len() as u64;
        if len == 0 {
            return;
        }
        let base = *self.base.get_or_insert(t.seq_number());
        let s = u64::from(t.seq_number().wrapping_sub(base));
        let e = s + len;
        self.segments += 1;
        if s < self.high {
            self.retransmits += 1;
            if self.covered(s, e) {
                self.spurious += 1;
            }
            if !delivered {
                self.retransmits_lost += 1;
            }
        }
        self.high = self.high.max(e);
        if delivered {
            self.add(s, e);
        }
    }
}

/// Link impairments, per direction.
#[derive(Debug, Clone, Copy)]
pub struct LinkConfig {
    pub latency: Duration,
    pub bandwidth_bps: u64,
    pub loss: f64,
    pub reorder: f64,
    pub reorder_delay: Duration,
    pub duplicate: f64,
    pub corrupt: f64,
    pub queue_bytes: usize,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            latency: Duration::from_millis(10),
            bandwidth_bps: 100_000_000,
            loss: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(3),
            duplicate: 0.0,
            corrupt: 0.0,
            queue_bytes: 1 << 20,
        }
    }
}

struct InFlight {
    at: Instant,
    seq: u64,
    to_b: bool,
    pkt: Vec<u8>,
}
impl PartialEq for InFlight {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for InFlight {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// Two stacks joined by a lossy link.
pub struct Pair {
    pub a: Stack,
    pub b: Stack,
    pub now: Instant,
    pub start: Instant,
    pub link: LinkConfig,
    rng: ChaCha8Rng,
    heap: BinaryHeap<Reverse<InFlight>>,
    busy_until: [Instant; 2],
    seq: u64,
    buf: Vec<u8>,
    pub sent: [u64; 2],
    pub dropped: [u64; 2],
    /// What happened to A's data segments.
    pub log_ab: DataLog,
}

impl Pair {
    pub fn new(a: Stack, b: Stack, link: LinkConfig, seed: u64) -> Pair {
        let now = Instant::now();
        Pair {
            a,
            b,
            now,
            start: now,
            link,
            rng: ChaCha8Rng::seed_from_u64(seed),
            heap: BinaryHeap::new(),
            busy_until: [now, now],
            seq: 0,
            buf: vec![0u8; 65536],
            sent: [0; 2],
            dropped: [0; 2],
            log_ab: DataLog::default(),
        }
    }

    fn trace(&self, to_b: bool, pkt: &[u8], what: &str) {
        if std::env::var_os("SIM_TRACE").is_none() {
            return;
        }
        let Ok(ip) = ipv4::Packet::new_checked(pkt) else {
            return;
        };
        let Ok(t) = tcp::Packet::new_checked(ip.payload()) else {
            return;
        };
        let r = tcp::Repr::parse(&t, ip.src_addr().into(), ip.dst_addr().into());
        if let Ok(r) = r {
            eprintln!(
                "{:>10.3} {} seq={} len={} ack={} sack={:?} {}",
                (self.now - self.start).as_secs_f64() * 1e3,
                if to_b { "A>B" } else { "B>A" },
                r.seq,
                r.payload.len(),
                r.ack,
                &r.options.sack[..usize::from(r.options.sack_len)],
                what
            );
        }
    }

    fn enqueue(&mut self, to_b: bool, mut pkt: Vec<u8>) {
        let d = usize::from(!to_b);
        self.sent[d] += 1;
        let l = self.link;
        if self.rng.gen_bool(l.loss) {
            self.trace(to_b, &pkt, "DROP");
            self.dropped[d] += 1;
            if to_b {
                self.log_ab.record(&pkt, false);
            }
            return;
        }
        // Tail drop when the bottleneck queue is full.
        let queued = self.busy_until[d].saturating_duration_since(self.now);
        let queued_bytes = (queued.as_secs_f64() * l.bandwidth_bps as f64 / 8.0) as usize;
        if queued_bytes > l.queue_bytes {
            self.dropped[d] += 1;
            if to_b {
                self.log_ab.record(&pkt, false);
            }
            return;
        }
        let mut corrupted = false;
        if l.corrupt > 0.0 && self.rng.gen_bool(l.corrupt) && !pkt.is_empty() {
            let i = self.rng.gen_range(0..pkt.len());
            if to_b {
                self.log_ab.record(&pkt, false);
            }
            corrupted = true;
            pkt[i] ^= 1 << self.rng.gen_range(0..8);
        }
        if to_b && !corrupted {
            self.log_ab.record(&pkt, true);
        }
        self.trace(to_b, &pkt, if corrupted { "CORRUPT" } else { "" });
        let ser = Duration::from_secs_f64(pkt.len() as f64 * 8.0 / l.bandwidth_bps as f64);
        let depart = self.busy_until[d].max(self.now) + ser;
        self.busy_until[d] = depart;
        let mut at = depart + l.latency;
        if l.reorder > 0.0 && self.rng.gen_bool(l.reorder) {
            at += l.reorder_delay;
        }
        if l.duplicate > 0.0 && self.rng.gen_bool(l.duplicate) {
            self.seq += 1;
            self.heap.push(Reverse(InFlight {
                at: at + Duration::from_micros(100),
                seq: self.seq,
                to_b,
                pkt: pkt.clone(),
            }));
        }
        self.seq += 1;
        self.heap.push(Reverse(InFlight {
            at,
            seq: self.seq,
            to_b,
            pkt,
        }));
    }

    /// Moves all output of both stacks onto the link.
    pub fn flush(&mut self) {
        let now = self.now;
        while let Some(n) = self.a.poll_transmit(now, &mut self.buf) {
            if n > 0 {
                let p = self.buf[..n].to_vec();
                self.enqueue(true, p);
            }
        }
        while let Some(n) = self.b.poll_transmit(now, &mut self.buf) {
            if n > 0 {
                let p = self.buf[..n].to_vec();
                self.enqueue(false, p);
            }
        }
    }

    /// Advances virtual time to the next event (packet arrival or timer),
    /// at most to `limit`; delivers due packets. Returns false if idle.
    pub fn step(&mut self, limit: Option<Instant>) -> bool {
        self.flush();
        let mut next = self.heap.peek().map(|r| r.0.at);
        for t in [self.a.poll_at(), self.b.poll_at()].into_iter().flatten() {
            next = Some(next.map_or(t, |n: Instant| n.min(t)));
        }
        if let Some(l) = limit {
            next = Some(next.map_or(l, |n| n.min(l)));
        }
        let Some(next) = next else { return false };
        self.now = self.now.max(next);
        while self.heap.peek().is_some_and(|r| r.0.at <= self.now) {
            let Some(Reverse(f)) = self.heap.pop() else {
                break;
            };
            if f.to_b {
                self.b.process(self.now, &f.pkt);
            } else {
                self.a.process(self.now, &f.pkt);
            }
        }
        self.a.handle_timeout(self.now);
        self.b.handle_timeout(self.now);
        self.flush();
        true
    }

    /// Runs until `done` or `timeout` of virtual time.
    pub fn run_until(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&mut Pair) -> bool,
    ) -> bool {
        let end = self.now + timeout;
        loop {
            if done(self) {
                return true;
            }
            if self.now >= end {
                return false;
            }
            if !self.step(Some(end)) {
                return done(self);
            }
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }
}
