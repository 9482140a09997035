//! A deterministic model of an internet path between two stacks: per
//! direction a bottleneck of a given rate with a drop-tail queue, random
//! loss from a seeded generator, and a fixed one-way delay, all on a
//! virtual clock. No sockets, no threads, no wall time: a run of ten
//! virtual seconds takes well under a second and gives the same numbers
//! every time (smoltcp's and quinn's test style).

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use tcpip::{Error, Stack, StackConfig, TcpConfig, TcpHandle, TcpState};

/// The sender's address.
pub const A: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
/// The receiver's address.
pub const B: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
/// WireGuard's default MTU.
pub const MTU: usize = 1420;

/// One direction of a path.
#[derive(Clone, Copy, Debug)]
pub struct Link {
    /// One-way propagation delay.
    pub delay: Duration,
    /// Bottleneck rate in bits per second (0: unlimited).
    pub rate: u64,
    /// Drop-tail queue limit in bytes at the bottleneck.
    pub queue: usize,
    /// Probability that a packet is lost (after the queue).
    pub loss: f64,
}

impl Link {
    /// A path of one-way `delay_ms`, `loss` (a fraction), capped at
    /// `mbit` with a queue of `bdp_queues` bandwidth-delay products.
    pub fn profile(delay_ms: u64, loss: f64, mbit: u64, bdp_queues: f64) -> Link {
        let rate = mbit * 1_000_000;
        let rtt = Duration::from_millis(2 * delay_ms);
        let bdp = (rate as f64 / 8.0 * rtt.as_secs_f64()) as usize;
        Link {
            delay: Duration::from_millis(delay_ms),
            rate,
            queue: ((bdp as f64 * bdp_queues) as usize).max(16 * MTU),
            loss,
        }
    }
}

/// xorshift64*: a small deterministic generator.
pub struct Rng(u64);

impl Rng {
    /// Seeded (0 is replaced).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// What a direction did.
#[derive(Clone, Copy, Debug, Default)]
pub struct LinkStats {
    /// Packets offered.
    pub sent: u64,
    /// Dropped at the full queue.
    pub queue_drops: u64,
    /// Dropped at random.
    pub random_drops: u64,
    /// Largest queue seen, bytes.
    pub max_queue: usize,
}

/// What the link does to one packet, beyond its rate, queue and loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Carried as usual.
    Pass,
    /// Lost.
    Drop,
    /// Held back this much longer (later packets overtake it).
    Delay(Duration),
}

/// Decides the [`Fate`] of the `n`-th packet (from 0) A sends.
pub type FateFn = Box<dyn FnMut(u64, &[u8]) -> Fate>;

struct Wire {
    link: Link,
    fate: Option<FateFn>,
    /// (arrival time, packet), in arrival order.
    flight: VecDeque<(Instant, Vec<u8>)>,
    /// (departure time, bytes) of packets still in the queue.
    queued: VecDeque<(Instant, usize)>,
    queued_bytes: usize,
    /// When the bottleneck finishes sending what it holds.
    busy_until: Option<Instant>,
    rng: Rng,
    stats: LinkStats,
}

impl Wire {
    fn new(link: Link, seed: u64) -> Wire {
        Wire {
            link,
            fate: None,
            flight: VecDeque::new(),
            queued: VecDeque::new(),
            queued_bytes: 0,
            busy_until: None,
            rng: Rng::new(seed),
            stats: LinkStats::default(),
        }
    }

    fn push(&mut self, now: Instant, p: &[u8]) {
        let n = self.stats.sent;
        self.stats.sent += 1;
        let fate = self.fate.as_mut().map_or(Fate::Pass, |f| f(n, p));
        if fate == Fate::Drop {
            self.stats.random_drops += 1;
            return;
        }
        while let Some(&(dep, n)) = self.queued.front() {
            if dep > now {
                break;
            }
            self.queued.pop_front();
            self.queued_bytes -= n;
        }
        let tx = (p.len() as u64 * 8 * 1_000_000_000).checked_div(self.link.rate);
        let depart = match tx {
            None => now,
            Some(ns) => {
                if self.queued_bytes + p.len() > self.link.queue {
                    self.stats.queue_drops += 1;
                    return;
                }
                let start = self.busy_until.map_or(now, |b| b.max(now));
                let dep = start + Duration::from_nanos(ns);
                self.busy_until = Some(dep);
                self.queued.push_back((dep, p.len()));
                self.queued_bytes += p.len();
                self.stats.max_queue = self.stats.max_queue.max(self.queued_bytes);
                dep
            }
        };
        if self.link.loss > 0.0 && self.rng.unit() < self.link.loss {
            self.stats.random_drops += 1;
            return;
        }
        let extra = match fate {
            Fate::Delay(d) => d,
            _ => Duration::ZERO,
        };
        let at = depart + self.link.delay + extra;
        // Keep the flight in arrival order (a delayed packet is overtaken).
        let i = self.flight.partition_point(|f| f.0 <= at);
        self.flight.insert(i, (at, p.to_vec()));
    }

    fn next(&self) -> Option<Instant> {
        self.flight.front().map(|f| f.0)
    }

    fn take_due(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.flight.front().is_some_and(|f| f.0 <= now) {
            self.flight.pop_front().map(|f| f.1)
        } else {
            None
        }
    }
}

/// The outcome of one transfer.
#[derive(Clone, Copy, Debug)]
#[allow(dead_code)] // read by some tests, printed by all
pub struct Run {
    /// Payload bytes the receiver read.
    pub bytes: usize,
    /// Virtual time from the first byte sent to the end.
    pub elapsed: Duration,
    /// Goodput in Mbit/s.
    pub mbit: f64,
    /// The sender's TCP numbers at the end.
    pub info: tcpip::tcp::TcpInfo,
    /// Sender → receiver.
    pub ab: LinkStats,
    /// Receiver → sender (ACKs).
    pub ba: LinkStats,
}

/// Two stacks joined by a path, on one virtual clock.
pub struct Pair {
    /// The sender.
    pub a: Stack,
    /// The receiver.
    pub b: Stack,
    ab: Wire,
    ba: Wire,
    /// The virtual clock.
    pub now: Instant,
}

fn stack(addr: IpAddr, tcp: TcpConfig, seed: u64) -> Stack {
    Stack::new(StackConfig {
        addresses: vec![addr],
        mtu: MTU,
        seed,
        tcp,
        ..StackConfig::default()
    })
}

impl Pair {
    /// A pair whose forward direction is `fwd` and whose ACK path has the
    /// same delay, no cap and no loss.
    pub fn new(fwd: Link, tcp: TcpConfig, seed: u64) -> Pair {
        let back = Link {
            rate: 0,
            loss: 0.0,
            ..fwd
        };
        Pair {
            a: stack(A, tcp.clone(), seed),
            b: stack(B, tcp, seed ^ 0x5555),
            ab: Wire::new(fwd, seed.wrapping_mul(3) | 1),
            ba: Wire::new(back, seed.wrapping_mul(5) | 1),
            now: Instant::now(),
        }
    }

    /// Sets what happens to individual packets from A to B.
    pub fn with_fate(mut self, f: impl FnMut(u64, &[u8]) -> Fate + 'static) -> Pair {
        self.ab.fate = Some(Box::new(f));
        self
    }

    /// Exchanges what is due at `now` until nothing moves.
    fn settle(&mut self) {
        loop {
            let now = self.now;
            self.a.handle_timeout(now);
            self.b.handle_timeout(now);
            let ab = &mut self.ab;
            let mut moved = self.a.dispatch(now, |p| ab.push(now, p));
            let ba = &mut self.ba;
            moved += self.b.dispatch(now, |p| ba.push(now, p));
            while let Some(p) = self.ab.take_due(now) {
                self.b.process(now, &p);
                moved += 1;
            }
            while let Some(p) = self.ba.take_due(now) {
                self.a.process(now, &p);
                moved += 1;
            }
            if moved == 0 {
                return;
            }
        }
    }

    /// Moves the clock to the next event (a timer or an arrival), at most
    /// to `limit`.
    fn advance(&mut self, limit: Instant) {
        let next = [
            self.a.poll_at(),
            self.b.poll_at(),
            self.ab.next(),
            self.ba.next(),
        ]
        .into_iter()
        .flatten()
        .filter(|t| *t > self.now)
        .min()
        .unwrap_or(limit);
        self.now = next.min(limit).max(self.now + Duration::from_micros(1));
    }

    /// Connects A to B:80; returns (A's handle, B's handle).
    pub fn connect(&mut self) -> (TcpHandle, TcpHandle) {
        let l = self
            .b
            .tcp_listen(SocketAddr::new(B, 80), 16)
            .expect("listen");
        let c = self
            .a
            .tcp_connect(self.now, None, SocketAddr::new(B, 80))
            .expect("connect");
        let give_up = self.now + Duration::from_secs(30);
        loop {
            self.settle();
            if let Some(s) = self.b.tcp_accept(l) {
                if self.a.tcp_state(c) == Ok(TcpState::Established) {
                    return (c, s);
                }
            }
            assert!(self.now < give_up, "no connection in 30 virtual seconds");
            self.advance(give_up);
        }
    }

    /// A bulk transfer A → B for `secs` virtual seconds (the application
    /// always has data to send and reads everything at once).
    pub fn bulk(&mut self, secs: f64) -> Run {
        self.bulk_observed(secs, |_, _| {})
    }

    /// [`Pair::bulk`], calling `watch` with the time since the start and
    /// the sender's numbers after every step.
    pub fn bulk_observed(
        &mut self,
        secs: f64,
        mut watch: impl FnMut(Duration, &tcpip::tcp::TcpInfo),
    ) -> Run {
        let (c, s) = self.connect();
        let chunk = vec![0x5au8; 256 * 1024];
        let mut sink = vec![0u8; 256 * 1024];
        let start = self.now;
        let end = start + Duration::from_secs_f64(secs);
        let mut got = 0usize;
        while self.now < end {
            loop {
                match self.a.tcp_send(c, &chunk) {
                    Ok(0) | Err(Error::WouldBlock) => break,
                    Ok(_) => {}
                    Err(e) => panic!("send: {e}"),
                }
            }
            self.settle();
            while let Ok(n) = self.b.tcp_recv(s, &mut sink) {
                if n == 0 {
                    break;
                }
                got += n;
            }
            self.settle();
            if let Ok(i) = self.a.tcp_info(c) {
                watch(self.now - start, &i);
            }
            self.advance(end);
        }
        let elapsed = self.now - start;
        Run {
            bytes: got,
            elapsed,
            mbit: got as f64 * 8.0 / elapsed.as_secs_f64() / 1e6,
            info: self.a.tcp_info(c).expect("info"),
            ab: self.ab.stats,
            ba: self.ba.stats,
        }
    }
}

/// What [`Pair::shared`] measured for each flow.
#[derive(Clone, Debug)]
#[allow(dead_code)] // read by some tests, printed by all
pub struct Share {
    /// Payload bytes each flow's receiver read in the measured span.
    pub bytes: Vec<usize>,
    /// The measured span.
    pub span: Duration,
    /// Each sender's numbers at the end.
    pub info: Vec<tcpip::tcp::TcpInfo>,
}

#[allow(dead_code)] // used by the fairness tests
impl Share {
    /// Each flow's fraction of what all of them got.
    pub fn fractions(&self) -> Vec<f64> {
        let total: usize = self.bytes.iter().sum();
        self.bytes
            .iter()
            .map(|&b| b as f64 / total.max(1) as f64)
            .collect()
    }

    /// Each flow's goodput in Mbit/s.
    pub fn mbit(&self) -> Vec<f64> {
        let s = self.span.as_secs_f64().max(1e-9);
        self.bytes
            .iter()
            .map(|&b| b as f64 * 8.0 / s / 1e6)
            .collect()
    }
}

#[allow(dead_code)] // used by the fairness tests
impl Pair {
    /// Bulk transfers A → B on one flow per entry of `starts` (seconds
    /// after the first), through the one bottleneck, for `secs` virtual
    /// seconds; counts what each receiver reads from `measure_from`
    /// seconds on.
    pub fn shared(&mut self, starts: &[f64], secs: f64, measure_from: f64) -> Share {
        let l = self
            .b
            .tcp_listen(SocketAddr::new(B, 80), 16)
            .expect("listen");
        let t0 = self.now;
        let end = t0 + Duration::from_secs_f64(secs);
        let from = t0 + Duration::from_secs_f64(measure_from);
        let mut flows: Vec<(Option<TcpHandle>, Option<TcpHandle>)> =
            vec![(None, None); starts.len()];
        let mut bytes = vec![0usize; starts.len()];
        let chunk = vec![0x5au8; 256 * 1024];
        let mut sink = vec![0u8; 256 * 1024];
        while self.now < end {
            for (i, &st) in starts.iter().enumerate() {
                if flows[i].0.is_none() && self.now >= t0 + Duration::from_secs_f64(st) {
                    let c = self
                        .a
                        .tcp_connect(self.now, None, SocketAddr::new(B, 80))
                        .expect("connect");
                    flows[i].0 = Some(c);
                }
            }
            for f in flows.iter() {
                let Some(c) = f.0 else { continue };
                loop {
                    match self.a.tcp_send(c, &chunk) {
                        Ok(0) | Err(Error::WouldBlock) | Err(Error::NotConnected) => break,
                        Ok(_) => {}
                        Err(e) => panic!("send: {e}"),
                    }
                }
            }
            self.settle();
            while let Some(s) = self.b.tcp_accept(l) {
                // Accepted in the order they connected.
                if let Some(f) = flows.iter_mut().find(|f| f.0.is_some() && f.1.is_none()) {
                    f.1 = Some(s);
                }
            }
            for (i, f) in flows.iter().enumerate() {
                let Some(s) = f.1 else { continue };
                while let Ok(n) = self.b.tcp_recv(s, &mut sink) {
                    if n == 0 {
                        break;
                    }
                    if self.now >= from {
                        bytes[i] += n;
                    }
                }
            }
            self.settle();
            self.advance(end);
        }
        Share {
            bytes,
            span: end.saturating_duration_since(from),
            info: flows
                .iter()
                .filter_map(|f| f.0.and_then(|c| self.a.tcp_info(c).ok()))
                .collect(),
        }
    }
}

/// A one-line summary of a run against the path's capacity.
pub fn show(name: &str, link: &Link, r: &Run) -> String {
    let cap = link.rate as f64 / 1e6;
    format!(
        "{name:<28} {:>7.1} Mbit/s of {cap:>5.0} ({:>5.1}%)  retrans {:>6} rto {:>3} recov {:>4} \
         cwnd {:>9} srtt {:>5.1} ms  qdrop {:>5} rdrop {:>5} maxq {:>8}",
        r.mbit,
        100.0 * r.mbit / cap,
        r.info.retransmits,
        r.info.rto_count,
        r.info.recoveries,
        r.info.cwnd,
        r.info.srtt.as_secs_f64() * 1e3,
        r.ab.queue_drops,
        r.ab.random_drops,
        r.ab.max_queue,
    )
}
