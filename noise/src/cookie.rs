//! mac1, mac2 and cookie replies: WireGuard's DoS mitigation.
//!
//! Read first: WireGuard paper §5.3 (cookies) and §5.4.4 (cookie reply
//! message, `msg.mac1`/`msg.mac2`).
//!
//! - [`CookieChecker`] is the responder side, one per device: it checks mac1
//!   on every handshake message, and mac2 when the caller says it is under
//!   load; it answers with cookie replies. Its secret changes every
//!   `COOKIE_SECRET_LIFETIME` (2 minutes).
//! - [`CookieState`] is the initiator side, one per peer: it stamps mac1 and
//!   (with a fresh cookie) mac2 on our handshake messages, and stores the
//!   cookie from a cookie reply.

use std::time::{Duration, Instant};

use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use crate::crypto::{hash, mac, xaead_open, xaead_seal, LABEL_COOKIE, LABEL_MAC1, MAC_LEN};
use crate::error::DecapsulateError;
use crate::keys::PublicKey;
use crate::messages::{CookieReply, COOKIE_REPLY_LEN};

/// How long the responder's cookie secret lives, and how long a received
/// cookie is used for mac2 (paper §5.3: "every two minutes").
pub const COOKIE_SECRET_LIFETIME: Duration = Duration::from_secs(120);

/// Constant-time comparison of two MACs.
fn mac_eq(a: &[u8; MAC_LEN], b: &[u8; MAC_LEN]) -> bool {
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// Responder side: checks macs on incoming handshake messages and builds
/// cookie replies.
pub struct CookieChecker {
    mac1_key: [u8; 32],
    cookie_key: Zeroizing<[u8; 32]>,
    secret: Zeroizing<[u8; 32]>,
    secret_born: Option<Instant>,
}

impl std::fmt::Debug for CookieChecker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieChecker(<redacted>)")
    }
}

impl CookieChecker {
    /// A checker for messages sent to `local` (our public key).
    pub fn new(local: &PublicKey) -> Self {
        CookieChecker {
            // mac1 key = HASH(LABEL_MAC1 || Sm_pub)
            mac1_key: hash(&[LABEL_MAC1, local.as_bytes()]),
            // cookie key = HASH(LABEL_COOKIE || Sm_pub)
            cookie_key: Zeroizing::new(hash(&[LABEL_COOKIE, local.as_bytes()])),
            secret: Zeroizing::new([0u8; 32]),
            secret_born: None,
        }
    }

    /// Whether `msg[mac1_offset..][..16]` is `MAC(HASH(LABEL_MAC1 || Sm_pub), msg[..mac1_offset])`.
    pub fn check_mac1(&self, msg: &[u8], mac1_offset: usize) -> bool {
        let Some(given) = msg
            .get(mac1_offset..mac1_offset + MAC_LEN)
            .and_then(|s| <&[u8; MAC_LEN]>::try_from(s).ok())
        else {
            return false;
        };
        mac_eq(&mac(&self.mac1_key, &msg[..mac1_offset]), given)
    }

    /// Whether mac2 carries a cookie we issued to `src` (the sender's address
    /// bytes, IP then port) within the current secret's lifetime.
    pub fn check_mac2(&self, now: Instant, msg: &[u8], mac2_offset: usize, src: &[u8]) -> bool {
        let Some(born) = self.secret_born else {
            return false;
        };
        if now.saturating_duration_since(born) >= COOKIE_SECRET_LIFETIME {
            return false;
        }
        let Some(given) = msg
            .get(mac2_offset..mac2_offset + MAC_LEN)
            .and_then(|s| <&[u8; MAC_LEN]>::try_from(s).ok())
        else {
            return false;
        };
        // τ = MAC(Rm, A)
        let cookie = Zeroizing::new(mac(&self.secret[..], src));
        mac_eq(&mac(&cookie[..], &msg[..mac2_offset]), given)
    }

    /// Writes a cookie reply to the handshake message `msg` (an initiation
    /// or a response: both carry the sender index at bytes 4..8 and mac1 32
    /// bytes before their end) into `out`. Rotates the secret when it is
    /// older than 2 minutes.
    pub fn create_reply(
        &mut self,
        now: Instant,
        rng: &mut dyn CryptoRngCore,
        msg: &[u8],
        src: &[u8],
        out: &mut [u8],
    ) -> Result<usize, DecapsulateError> {
        let mac1_offset = msg
            .len()
            .checked_sub(2 * MAC_LEN)
            .filter(|o| *o >= 8)
            .ok_or(DecapsulateError::InvalidMac1)?;
        let mut sender = [0u8; 4];
        sender.copy_from_slice(&msg[4..8]);
        let receiver_index = u32::from_le_bytes(sender);
        let out = out
            .get_mut(..COOKIE_REPLY_LEN)
            .ok_or(DecapsulateError::BufferTooSmall {
                needed: COOKIE_REPLY_LEN,
            })?;
        let mac1 = msg
            .get(mac1_offset..mac1_offset + MAC_LEN)
            .ok_or(DecapsulateError::InvalidMac1)?;
        let expired = match self.secret_born {
            None => true,
            Some(born) => now.saturating_duration_since(born) >= COOKIE_SECRET_LIFETIME,
        };
        if expired {
            // Rm changes every two minutes.
            rng.fill_bytes(&mut self.secret[..]);
            self.secret_born = Some(now);
        }
        // τ = MAC(Rm, A)
        let cookie = Zeroizing::new(mac(&self.secret[..], src));
        let mut reply = CookieReply::new_unchecked_type(out)?;
        reply.init();
        reply.set_receiver_index(receiver_index);
        let mut nonce = [0u8; 24];
        rng.fill_bytes(&mut nonce);
        reply.nonce_mut().copy_from_slice(&nonce);
        // msg.cookie = XAEAD(HASH(LABEL_COOKIE || Sm_pub), msg.nonce, τ, M)
        let boxed = reply.encrypted_cookie_mut();
        boxed[..MAC_LEN].copy_from_slice(&cookie[..]);
        xaead_seal(&self.cookie_key, &nonce, boxed, mac1);
        Ok(COOKIE_REPLY_LEN)
    }
}

/// Initiator side, one per peer: mac1/mac2 for our messages to that peer.
pub struct CookieState {
    mac1_key: [u8; 32],
    cookie_key: [u8; 32],
    cookie: Option<(Zeroizing<[u8; MAC_LEN]>, Instant)>,
    last_mac1: Option<[u8; MAC_LEN]>,
}

impl std::fmt::Debug for CookieState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieState")
            .field("has_cookie", &self.cookie.is_some())
            .finish_non_exhaustive()
    }
}

impl CookieState {
    /// State for messages sent to `peer`.
    pub fn new(peer: &PublicKey) -> Self {
        CookieState {
            mac1_key: hash(&[LABEL_MAC1, peer.as_bytes()]),
            cookie_key: hash(&[LABEL_COOKIE, peer.as_bytes()]),
            cookie: None,
            last_mac1: None,
        }
    }

    /// Writes mac1 and mac2 (zero unless a cookie younger than 2 minutes is
    /// held) into a handshake message we are about to send.
    pub fn stamp(&mut self, now: Instant, msg: &mut [u8], mac1_offset: usize, mac2_offset: usize) {
        // msg.mac1 = MAC(HASH(LABEL_MAC1 || Sm'_pub), msg_a)
        let m1 = mac(&self.mac1_key, &msg[..mac1_offset]);
        msg[mac1_offset..mac1_offset + MAC_LEN].copy_from_slice(&m1);
        self.last_mac1 = Some(m1);
        // if Lm = ε or Lm ≥ 120: msg.mac2 = 0^16 else MAC(Lm, msg_b)
        let m2 = match &self.cookie {
            Some((cookie, at)) if now.saturating_duration_since(*at) < COOKIE_SECRET_LIFETIME => {
                mac(&cookie[..], &msg[..mac2_offset])
            }
            _ => [0u8; MAC_LEN],
        };
        msg[mac2_offset..mac2_offset + MAC_LEN].copy_from_slice(&m2);
    }

    /// Decrypts a cookie reply for the last message we stamped.
    pub fn consume_reply(
        &mut self,
        now: Instant,
        reply: &CookieReply<&[u8]>,
    ) -> Result<(), DecapsulateError> {
        let last_mac1 = self.last_mac1.ok_or(DecapsulateError::UnexpectedMessage)?;
        let mut boxed = *reply.encrypted_cookie();
        if !xaead_open(&self.cookie_key, reply.nonce(), &mut boxed, &last_mac1) {
            return Err(DecapsulateError::InvalidCookieReply);
        }
        let mut cookie = Zeroizing::new([0u8; MAC_LEN]);
        cookie.copy_from_slice(&boxed[..MAC_LEN]);
        self.cookie = Some((cookie, now));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{Initiation, INITIATION_LEN};
    use rand_chacha::rand_core::SeedableRng;

    #[test]
    fn cookie_round_trip_makes_mac2_valid_and_secret_rotates() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let responder = PublicKey::from_bytes([8; 32]);
        let mut checker = CookieChecker::new(&responder);
        let mut state = CookieState::new(&responder);
        let t0 = Instant::now();
        let src = [10, 0, 0, 1, 0x1f, 0x90];
        let mut msg = [0u8; INITIATION_LEN];
        msg[0] = 1;
        msg[4] = 9;
        let (o1, o2) = (
            Initiation::<&[u8]>::MAC1_OFFSET,
            Initiation::<&[u8]>::MAC2_OFFSET,
        );
        state.stamp(t0, &mut msg, o1, o2);
        assert!(checker.check_mac1(&msg, o1));
        assert!(!checker.check_mac2(t0, &msg, o2, &src));
        let mut out = [0u8; 64];
        let n = checker
            .create_reply(t0, &mut rng, &msg, &src, &mut out)
            .expect("fits");
        let reply = CookieReply::new_checked(&out[..n]).expect("valid");
        state.consume_reply(t0, &reply).expect("authentic");
        state.stamp(t0, &mut msg, o1, o2);
        assert!(checker.check_mac2(t0, &msg, o2, &src));
        assert!(!checker.check_mac2(t0, &msg, o2, &[10, 0, 0, 2, 0x1f, 0x90]));
        // After two minutes the secret is stale: mac2 no longer accepted.
        assert!(!checker.check_mac2(t0 + COOKIE_SECRET_LIFETIME, &msg, o2, &src));
        msg[0] ^= 0; // unchanged message, but a tampered mac1 fails:
        msg[o1] ^= 1;
        assert!(!checker.check_mac1(&msg, o1));
    }
}
