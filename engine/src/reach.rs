//! Whether a peer answers, per peer, sans-IO: the engine thread feeds it
//! what the noise device knows ([`Facts`]) and the time, and gets back
//! what to do — fail the connects waiting on the peer, refuse new ones at
//! once, start another handshake in the background.
//!
//! Read first: WireGuard paper §6.4 (an unanswered initiation is
//! retransmitted every `REKEY_TIMEOUT`, for `REKEY_ATTEMPT_TIME`) and
//! issue 6 "No leaks" / issue 8 "Self-healing" (connects to a peer that
//! does not answer fail fast with `EHOSTUNREACH`; recovery needs no
//! restart).
//!
//! The rule:
//! * A peer is **down** once a handshake has been unanswered for
//!   [`UNREACHABLE_AFTER`] (two initiations, ~10 s) and nothing
//!   authenticated came from it since that handshake started. This covers
//!   a peer never reached (the first connect waits at most this long) and
//!   one that stopped answering while a session was still valid (noise
//!   starts a handshake `KEEPALIVE_TIMEOUT + REKEY_TIMEOUT` after data
//!   went unanswered).
//! * While down, new connects are refused at once ([`Verdict::Refuse`]),
//!   and each refusal is demand: while there was demand within
//!   [`RETRY_WHILE_WANTED`], a handshake series is restarted whenever noise
//!   gives one up ([`Change::Retry`]), so a returning peer is noticed
//!   within one `REKEY_TIMEOUT`.
//! * The peer is **up** again as soon as anything authenticated arrives
//!   from it (a handshake response, data, a keepalive, its own initiation).
//! * Without demand, when noise gives up, the state is forgotten: the next
//!   connect starts afresh and waits again at most [`UNREACHABLE_AFTER`].
//!
//! Call order for a driver: [`Reach::update`] after the device handled
//! timers or a datagram from the peer; [`Reach::on_connect`] for each new
//! connection.

use noise::timers::{REKEY_ATTEMPT_TIME, REKEY_TIMEOUT};
use std::time::{Duration, Instant};

/// A handshake unanswered this long marks the peer down (two initiations:
/// the state flips at the second retransmission, so one lost datagram is
/// not enough).
pub const UNREACHABLE_AFTER: Duration = Duration::from_secs(2 * REKEY_TIMEOUT.as_secs());
/// Background handshakes to a down peer go on while a connect was refused
/// within this long.
pub const RETRY_WHILE_WANTED: Duration = REKEY_ATTEMPT_TIME;

/// What the noise device says about the peer now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// First initiation of the handshake in progress (`None`: none).
    pub handshake_started: Option<Instant>,
    /// Last authenticated message from the peer.
    pub last_received: Option<Instant>,
}

impl Facts {
    /// From the device's statistics.
    pub fn from_stats(st: &noise::PeerStats) -> Facts {
        Facts {
            handshake_started: st.handshake_started,
            last_received: st.last_received,
        }
    }

    fn heard_since(&self, t: Instant) -> bool {
        self.last_received.is_some_and(|r| r >= t)
    }
}

/// What changed, for the driver to act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// The peer just went down: fail the connects waiting on it
    /// (`EHOSTUNREACH`) and log it.
    Down,
    /// The peer answered again: log it.
    Up,
    /// Still down and noise gave up its handshake: start another one.
    Retry,
    /// Down, given up and nobody asked lately: forgotten (the next
    /// connect tries afresh).
    Forgotten,
}

/// The answer to a new connect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead (the peer answers, or it is not known to be down).
    Proceed,
    /// Fail at once with `EHOSTUNREACH`; `retry_now`: no handshake is in
    /// progress, start one in the background.
    Refuse {
        /// Start a handshake now.
        retry_now: bool,
    },
}

/// One peer's reachability.
#[derive(Clone, Debug, Default)]
pub struct Reach {
    /// When the handshake that went unanswered started (set while down).
    down_since: Option<Instant>,
    /// The last connect refused because the peer is down.
    wanted_at: Option<Instant>,
}

impl Reach {
    /// Whether the peer is known to be down.
    pub fn is_down(&self) -> bool {
        self.down_since.is_some()
    }

    /// Re-evaluates with the device's facts at `now`.
    pub fn update(&mut self, now: Instant, f: Facts) -> Option<Change> {
        match self.down_since {
            None => {
                let t = f.handshake_started?;
                if now.saturating_duration_since(t) >= UNREACHABLE_AFTER && !f.heard_since(t) {
                    self.down_since = Some(t);
                    return Some(Change::Down);
                }
                None
            }
            Some(since) => {
                if f.heard_since(since) {
                    self.down_since = None;
                    self.wanted_at = None;
                    return Some(Change::Up);
                }
                if f.handshake_started.is_some() {
                    return None; // noise is still retrying
                }
                if self.wanted(now) {
                    Some(Change::Retry)
                } else {
                    self.down_since = None;
                    self.wanted_at = None;
                    Some(Change::Forgotten)
                }
            }
        }
    }

    /// A new connection to this peer.
    pub fn on_connect(&mut self, now: Instant, f: Facts) -> Verdict {
        // Facts may have changed since the last update (e.g. an answer).
        if matches!(
            self.update(now, f),
            Some(Change::Up) | Some(Change::Forgotten)
        ) {
            return Verdict::Proceed;
        }
        if !self.is_down() {
            return Verdict::Proceed;
        }
        self.wanted_at = Some(now);
        Verdict::Refuse {
            retry_now: f.handshake_started.is_none(),
        }
    }

    fn wanted(&self, now: Instant) -> bool {
        self.wanted_at
            .is_some_and(|w| now.saturating_duration_since(w) < RETRY_WHILE_WANTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(t0: Instant, s: u64) -> Instant {
        t0 + Duration::from_secs(s)
    }

    fn started(t: Instant) -> Facts {
        Facts {
            handshake_started: Some(t),
            last_received: None,
        }
    }

    #[test]
    fn an_unanswered_handshake_marks_the_peer_down_after_the_window() {
        let t0 = Instant::now();
        let mut r = Reach::default();
        assert_eq!(r.update(t0, Facts::default()), None);
        assert_eq!(r.on_connect(t0, started(t0)), Verdict::Proceed);
        assert_eq!(
            r.update(secs(t0, 5), started(t0)),
            None,
            "one retry is not enough"
        );
        assert_eq!(r.update(secs(t0, 10), started(t0)), Some(Change::Down));
        assert!(r.is_down());
        assert_eq!(r.update(secs(t0, 11), started(t0)), None, "reported once");
        assert_eq!(
            r.on_connect(secs(t0, 12), started(t0)),
            Verdict::Refuse { retry_now: false },
            "noise still retries: no new series"
        );
    }

    #[test]
    fn a_peer_heard_since_the_handshake_started_is_not_down() {
        let t0 = Instant::now();
        let mut r = Reach::default();
        // A rekey handshake unanswered for long, but data keeps coming.
        let f = Facts {
            handshake_started: Some(t0),
            last_received: Some(secs(t0, 9)),
        };
        assert_eq!(r.update(secs(t0, 30), f), None);
        assert!(!r.is_down());
        // Heard only before the handshake started: down.
        let f = Facts {
            handshake_started: Some(secs(t0, 20)),
            last_received: Some(secs(t0, 9)),
        };
        assert_eq!(r.update(secs(t0, 30), f), Some(Change::Down));
    }

    #[test]
    fn any_answer_brings_it_back_up() {
        let t0 = Instant::now();
        let mut r = Reach::default();
        r.update(secs(t0, 10), started(t0));
        assert!(r.is_down());
        let answered = Facts {
            handshake_started: None,
            last_received: Some(secs(t0, 14)),
        };
        assert_eq!(r.update(secs(t0, 14), answered), Some(Change::Up));
        assert!(!r.is_down());
        assert_eq!(r.on_connect(secs(t0, 15), answered), Verdict::Proceed);
    }

    #[test]
    fn a_connect_sees_an_answer_that_came_since_the_last_update() {
        let t0 = Instant::now();
        let mut r = Reach::default();
        r.update(secs(t0, 10), started(t0));
        let answered = Facts {
            handshake_started: None,
            last_received: Some(secs(t0, 12)),
        };
        assert_eq!(r.on_connect(secs(t0, 12), answered), Verdict::Proceed);
        assert!(!r.is_down());
    }

    #[test]
    fn background_retries_while_programs_keep_asking() {
        let t0 = Instant::now();
        let mut r = Reach::default();
        r.update(secs(t0, 10), started(t0));
        assert_eq!(
            r.on_connect(secs(t0, 20), started(t0)),
            Verdict::Refuse { retry_now: false }
        );
        // Noise gives up at ~90 s: wanted 70 s ago, so retry.
        assert_eq!(
            r.update(secs(t0, 90), Facts::default()),
            Some(Change::Retry)
        );
        // Noise gives up with nothing in progress and a connect comes:
        // refused, and a handshake starts now.
        assert_eq!(
            r.on_connect(secs(t0, 95), Facts::default()),
            Verdict::Refuse { retry_now: true }
        );
        // A retry series runs; then the peer answers.
        let f = Facts {
            handshake_started: Some(secs(t0, 95)),
            last_received: Some(secs(t0, 101)),
        };
        assert_eq!(r.update(secs(t0, 101), f), Some(Change::Up));
    }

    #[test]
    fn without_demand_a_given_up_peer_is_forgotten_and_tried_afresh() {
        let t0 = Instant::now();
        let mut r = Reach::default();
        r.update(secs(t0, 10), started(t0));
        // Nobody connected since; noise gave up at 90 s.
        assert_eq!(
            r.update(secs(t0, 90), Facts::default()),
            Some(Change::Forgotten)
        );
        assert!(!r.is_down());
        // Much later a connect proceeds (and waits one window again).
        let t1 = secs(t0, 600);
        assert_eq!(r.on_connect(t1, Facts::default()), Verdict::Proceed);
        assert_eq!(r.update(secs(t0, 605), started(t1)), None);
        assert_eq!(r.update(secs(t0, 610), started(t1)), Some(Change::Down));
    }

    #[test]
    fn demand_older_than_the_retry_horizon_stops_the_retries() {
        let t0 = Instant::now();
        let mut r = Reach::default();
        r.update(secs(t0, 10), started(t0));
        r.on_connect(secs(t0, 11), started(t0));
        let late = secs(t0, 11) + RETRY_WHILE_WANTED;
        assert_eq!(r.update(late, Facts::default()), Some(Change::Forgotten));
    }
}
