//! One lookup as a state machine (no sockets, no clock).
//!
//! Driver loop:
//! ```text
//! let mut l = Lookup::new(query, &config, seed);
//! loop {
//!     match l.step() {
//!         Step::Send(t) => {            // UDP datagram, or TCP with a 2-byte length
//!             let ev = send_and_wait(t, config.timeout);
//!             l.handle(ev);             // Response(bytes) | Timeout | Unreachable
//!         }
//!         Step::Done(outcome) => break outcome,
//!     }
//! }
//! ```
//!
//! Semantics follow glibc's stub resolver (resolv.conf(5)): a name with a
//! trailing dot is absolute; otherwise, with at least `ndots` dots it is
//! tried as is first and then with each search domain, with fewer dots the
//! search domains come first. Each query is tried on every server in turn,
//! `attempts` rounds. A truncated UDP answer is asked again over TCP from
//! the same server. NXDOMAIN or an empty answer moves to the next candidate
//! name; a server that fails or does not answer in every try ends the
//! lookup with [`LookupError::TryAgain`] (never a fallback elsewhere).

use crate::wire::{self, RData, Rcode};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Where and how queries go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LookupConfig {
    /// Servers, tried in order (port 53).
    pub servers: Vec<IpAddr>,
    /// Search domains.
    pub search: Vec<String>,
    /// Dots needed before a name is tried as is first.
    pub ndots: usize,
    /// Time the driver waits for one answer.
    pub timeout: Duration,
    /// Rounds over all servers.
    pub attempts: usize,
}

impl Default for LookupConfig {
    fn default() -> Self {
        LookupConfig {
            servers: Vec::new(),
            search: Vec::new(),
            ndots: 1,
            timeout: Duration::from_secs(5),
            attempts: 2,
        }
    }
}

/// What is asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Query {
    /// Addresses of a name (A if `v4`, AAAA if `v6`).
    Addr {
        /// The name.
        name: String,
        /// Ask for A records.
        v4: bool,
        /// Ask for AAAA records.
        v6: bool,
    },
    /// The name of an address (PTR).
    Reverse(IpAddr),
    /// A raw query, answered with the whole response (`res_query`,
    /// `res_search`).
    Raw {
        /// The name.
        name: String,
        /// Class (1 = IN).
        class: u16,
        /// Record type.
        qtype: u16,
        /// Apply the search list (`res_search`) or not (`res_query`).
        search: bool,
    },
}

/// One message to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Server and port.
    pub server: SocketAddr,
    /// Over TCP (the driver adds the 2-byte length both ways).
    pub tcp: bool,
    /// The DNS message.
    pub payload: Vec<u8>,
}

/// What became of the last [`Transmit`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A message came back from the server.
    Response(Vec<u8>),
    /// Nothing came back within the timeout.
    Timeout,
    /// The server could not be reached at all (no route, refused).
    Unreachable,
}

/// Why a lookup failed (the glibc meanings).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookupError {
    /// The name does not exist (NXDOMAIN): `EAI_NONAME`, `HOST_NOT_FOUND`.
    NxDomain,
    /// The name exists but has no record of the type asked: `EAI_NODATA`,
    /// `NO_DATA`.
    NoData,
    /// No server answered usefully: `EAI_AGAIN`, `TRY_AGAIN`.
    TryAgain,
    /// The query cannot be made (bad name): `EAI_FAIL`, `NO_RECOVERY`.
    NoRecovery,
}

/// The end of a lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Addresses found ([`Query::Addr`]).
    Addrs {
        /// The canonical name (last CNAME target, or the name asked).
        canonical: String,
        /// The addresses, A before AAAA.
        addrs: Vec<IpAddr>,
    },
    /// The name of an address ([`Query::Reverse`]).
    Name(String),
    /// The whole response ([`Query::Raw`]).
    Raw(Vec<u8>),
    /// Failed; `raw` is the last response received, if any (`res_query`
    /// hands it to the caller even on NXDOMAIN).
    Failed {
        /// Why.
        error: LookupError,
        /// The last response.
        raw: Option<Vec<u8>>,
    },
}

/// What the driver does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Send this and report with [`Lookup::handle`].
    Send(Transmit),
    /// Finished.
    Done(Outcome),
}

/// One lookup in progress. See the module doc for the driver loop.
#[derive(Debug)]
pub struct Lookup {
    servers: Vec<IpAddr>,
    tries_per_query: usize,
    candidates: Vec<String>,
    cand: usize,
    qtypes: Vec<u16>,
    qt: usize,
    class: u16,
    raw_mode: bool,
    reverse: bool,
    try_no: usize,
    tcp: bool,
    outstanding: Option<u16>,
    rng: u64,
    canonical: Option<String>,
    addrs: Vec<IpAddr>,
    any_nodata: bool,
    last_raw: Option<Vec<u8>>,
    done: Option<Outcome>,
}

impl Lookup {
    /// Starts a lookup; `seed` makes the query ids (tests replay).
    pub fn new(query: Query, config: &LookupConfig, seed: u64) -> Lookup {
        let (candidates, qtypes, class, raw_mode, reverse) = match query {
            Query::Addr { name, v4, v6 } => {
                let mut t = Vec::new();
                if v4 {
                    t.push(wire::TYPE_A);
                }
                if v6 {
                    t.push(wire::TYPE_AAAA);
                }
                (
                    candidates(&name, config, true),
                    t,
                    wire::CLASS_IN,
                    false,
                    false,
                )
            }
            Query::Reverse(ip) => (
                vec![wire::reverse_name(ip)],
                vec![wire::TYPE_PTR],
                wire::CLASS_IN,
                false,
                true,
            ),
            Query::Raw {
                name,
                class,
                qtype,
                search,
            } => (
                candidates(&name, config, search),
                vec![qtype],
                class,
                true,
                false,
            ),
        };
        let mut l = Lookup {
            servers: config.servers.clone(),
            tries_per_query: config.attempts.max(1) * config.servers.len(),
            candidates,
            cand: 0,
            qtypes,
            qt: 0,
            class,
            raw_mode,
            reverse,
            try_no: 0,
            tcp: false,
            outstanding: None,
            rng: seed | 1,
            canonical: None,
            addrs: Vec::new(),
            any_nodata: false,
            last_raw: None,
            done: None,
        };
        if l.servers.is_empty() {
            l.fail(LookupError::TryAgain);
        } else if l.candidates.is_empty() || l.qtypes.is_empty() {
            l.fail(LookupError::NoRecovery);
        }
        l
    }

    fn fail(&mut self, error: LookupError) {
        self.done = Some(Outcome::Failed {
            error,
            raw: self.last_raw.take(),
        });
    }

    fn next_id(&mut self) -> u16 {
        // xorshift64*: ids need to be unpredictable to an off-path guesser
        // only as much as the seed is; the seed comes from the OS.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 48) as u16
    }

    /// What to do next.
    pub fn step(&mut self) -> Step {
        loop {
            if let Some(o) = &self.done {
                return Step::Done(o.clone());
            }
            let name = self.candidates[self.cand].clone();
            let qtype = self.qtypes[self.qt];
            let id = self.next_id();
            match wire::build_query(id, &name, qtype, self.class) {
                Ok(payload) => {
                    self.outstanding = Some(id);
                    let server = self.servers[self.try_no % self.servers.len()];
                    return Step::Send(Transmit {
                        server: SocketAddr::new(server, 53),
                        tcp: self.tcp,
                        payload,
                    });
                }
                // This candidate cannot be asked (too long with a search
                // domain): skip it.
                Err(_) => self.next_candidate(),
            }
        }
    }

    /// Reports what became of the last [`Step::Send`].
    pub fn handle(&mut self, ev: Event) {
        let Some(id) = self.outstanding.take() else {
            return;
        };
        if self.done.is_some() {
            return;
        }
        let bytes = match ev {
            Event::Response(b) => b,
            Event::Timeout | Event::Unreachable => return self.next_try(),
        };
        let Ok(r) = wire::parse_response(&bytes) else {
            return self.next_try();
        };
        let name = &self.candidates[self.cand];
        let qtype = self.qtypes[self.qt];
        let matches = r.id == id
            && r.question.as_ref().is_some_and(|(n, t, c)| {
                wire::same_name(n, name) && *t == qtype && *c == self.class
            });
        if !matches {
            return self.next_try();
        }
        if r.truncated && !self.tcp {
            // Same server, same question, over TCP.
            self.tcp = true;
            return;
        }
        match r.rcode {
            Rcode::NoError => {}
            Rcode::NxDomain => {
                self.last_raw = Some(bytes);
                return self.next_candidate();
            }
            _ => {
                self.last_raw = Some(bytes);
                return self.next_try();
            }
        }
        self.tcp = false;
        self.try_no = 0;
        if self.raw_mode {
            if r.answers.is_empty() {
                self.any_nodata = true;
                self.last_raw = Some(bytes);
                return self.next_candidate();
            }
            self.done = Some(Outcome::Raw(bytes));
            return;
        }
        let mut found = false;
        for a in &r.answers {
            match &a.data {
                RData::A(ip) if qtype == wire::TYPE_A => {
                    found = true;
                    push_unique(&mut self.addrs, IpAddr::V4(*ip));
                }
                RData::Aaaa(ip) if qtype == wire::TYPE_AAAA => {
                    found = true;
                    push_unique(&mut self.addrs, IpAddr::V6(*ip));
                }
                RData::Ptr(n) if self.reverse => {
                    self.done = Some(Outcome::Name(n.clone()));
                    return;
                }
                RData::Cname(target) => {
                    self.canonical = Some(target.clone());
                }
                _ => {}
            }
        }
        if !found {
            self.any_nodata = true;
        } else if self.canonical.is_none() {
            self.canonical = Some(name.clone());
        }
        self.qt += 1;
        if self.qt < self.qtypes.len() {
            return;
        }
        if !self.addrs.is_empty() {
            let canonical = self.canonical.take().unwrap_or_else(|| name.clone());
            self.done = Some(Outcome::Addrs {
                canonical,
                addrs: std::mem::take(&mut self.addrs),
            });
            return;
        }
        self.next_candidate();
    }

    fn next_try(&mut self) {
        self.tcp = false;
        self.try_no += 1;
        if self.try_no >= self.tries_per_query {
            if !self.raw_mode && !self.addrs.is_empty() {
                // The other family answered: give what was found, as
                // glibc does when only one of A/AAAA fails.
                self.try_no = 0;
                self.qt += 1;
                if self.qt >= self.qtypes.len() {
                    let name = &self.candidates[self.cand];
                    self.done = Some(Outcome::Addrs {
                        canonical: self.canonical.take().unwrap_or_else(|| name.clone()),
                        addrs: std::mem::take(&mut self.addrs),
                    });
                }
                return;
            }
            // Fail closed and fast: a server that cannot answer is not
            // asked again for the other candidate names.
            self.fail(LookupError::TryAgain);
        }
    }

    fn next_candidate(&mut self) {
        self.tcp = false;
        self.try_no = 0;
        self.qt = 0;
        self.canonical = None;
        self.addrs.clear();
        self.cand += 1;
        if self.cand >= self.candidates.len() {
            let e = if self.any_nodata {
                LookupError::NoData
            } else {
                LookupError::NxDomain
            };
            self.fail(e);
        }
    }
}

fn push_unique(v: &mut Vec<IpAddr>, ip: IpAddr) {
    if !v.contains(&ip) {
        v.push(ip);
    }
}

/// The names to try for `name`, in order (resolv.conf `search`/`ndots`).
pub fn candidates(name: &str, config: &LookupConfig, search: bool) -> Vec<String> {
    if name.is_empty() || name == "." {
        return Vec::new();
    }
    if let Some(abs) = name.strip_suffix('.') {
        return vec![abs.to_string()];
    }
    if !search || config.search.is_empty() {
        return vec![name.to_string()];
    }
    let searched = config
        .search
        .iter()
        .map(|d| format!("{name}.{}", d.trim_matches('.')));
    let dots = name.matches('.').count();
    if dots >= config.ndots {
        std::iter::once(name.to_string()).chain(searched).collect()
    } else {
        searched.chain(std::iter::once(name.to_string())).collect()
    }
}

#[cfg(test)]
mod tests;
