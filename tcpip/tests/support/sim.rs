//! A simulated link between two stacks: virtual time that jumps to the next
//! event, seeded loss / reordering / duplication / corruption / latency /
//! bandwidth (the smoltcp/quinn test style).
#![allow(dead_code)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};
use tcpip::Stack;

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
        }
    }

    fn enqueue(&mut self, to_b: bool, mut pkt: Vec<u8>) {
        let d = usize::from(!to_b);
        self.sent[d] += 1;
        let l = self.link;
        if self.rng.gen_bool(l.loss) {
            self.dropped[d] += 1;
            return;
        }
        // Tail drop when the bottleneck queue is full.
        let queued = self.busy_until[d].saturating_duration_since(self.now);
        let queued_bytes = (queued.as_secs_f64() * l.bandwidth_bps as f64 / 8.0) as usize;
        if queued_bytes > l.queue_bytes {
            self.dropped[d] += 1;
            return;
        }
        if l.corrupt > 0.0 && self.rng.gen_bool(l.corrupt) && !pkt.is_empty() {
            let i = self.rng.gen_range(0..pkt.len());
            pkt[i] ^= 1 << self.rng.gen_range(0..8);
        }
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
