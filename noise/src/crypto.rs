//! The primitives of WireGuard paper §5.4: HASH, MAC, HMAC, KDF1-3, DH,
//! AEAD and XAEAD, plus the protocol constants `CONSTRUCTION` and `IDENTIFIER`.
//!
//! Intermediate secrets are returned in [`Zeroizing`] wrappers.

use blake2::digest::consts::U16;
use blake2::digest::KeyInit as MacKeyInit;
use blake2::digest::{FixedOutput, Update};
use blake2::{Blake2s256, Blake2sMac, Digest};
use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Tag, XChaCha20Poly1305};
use zeroize::Zeroizing;

/// The Noise protocol name, `Ci := HASH(CONSTRUCTION)`.
pub const CONSTRUCTION: &[u8] = b"Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
/// The WireGuard identifier, `Hi := HASH(Ci || IDENTIFIER)`.
pub const IDENTIFIER: &[u8] = b"WireGuard v1 zx2c4 Jason@zx2c4.com";
/// Label mixed into the mac1 key.
pub const LABEL_MAC1: &[u8] = b"mac1----";
/// Label mixed into the cookie encryption key.
pub const LABEL_COOKIE: &[u8] = b"cookie--";

/// Length of a HASH output.
pub const HASH_LEN: usize = 32;
/// Length of a Poly1305 tag.
pub const TAG_LEN: usize = 16;
/// Length of a MAC output.
pub const MAC_LEN: usize = 16;

/// A 32-byte secret that is wiped on drop.
pub(crate) type Secret = Zeroizing<[u8; 32]>;

/// `HASH(a || b || ...)`: BLAKE2s with a 32-byte output.
pub(crate) fn hash(parts: &[&[u8]]) -> [u8; HASH_LEN] {
    let mut h = Blake2s256::new();
    for p in parts {
        Digest::update(&mut h, p);
    }
    h.finalize().into()
}

/// `MAC(key, input)`: keyed BLAKE2s with a 16-byte output.
pub(crate) fn mac(key: &[u8], input: &[u8]) -> [u8; MAC_LEN] {
    // Keys are 16 (cookie) or 32 bytes (mac1 key), always valid for BLAKE2s.
    let mut m = match <Blake2sMac<U16> as MacKeyInit>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return [0u8; MAC_LEN],
    };
    Update::update(&mut m, input);
    m.finalize_fixed().into()
}

/// `HMAC(key, input)`: HMAC-BLAKE2s (RFC 2104, block size 64).
pub(crate) fn hmac(key: &[u8; 32], parts: &[&[u8]]) -> Secret {
    const BLOCK: usize = 64;
    let mut pad = Zeroizing::new([0u8; BLOCK]);
    for (p, k) in pad.iter_mut().zip(key.iter()) {
        *p = k ^ 0x36;
    }
    for p in pad.iter_mut().skip(32) {
        *p = 0x36;
    }
    let mut inner = Blake2s256::new();
    Digest::update(&mut inner, &pad[..]);
    for p in parts {
        Digest::update(&mut inner, p);
    }
    let inner_hash = Zeroizing::new(<[u8; 32]>::from(inner.finalize()));
    for p in pad.iter_mut() {
        *p ^= 0x36 ^ 0x5c;
    }
    let mut outer = Blake2s256::new();
    Digest::update(&mut outer, &pad[..]);
    Digest::update(&mut outer, &inner_hash[..]);
    Zeroizing::new(outer.finalize().into())
}

/// `KDF1(key, input)`.
pub(crate) fn kdf1(key: &[u8; 32], input: &[u8]) -> Secret {
    let t0 = hmac(key, &[input]);
    hmac(&t0, &[&[1]])
}

/// `KDF2(key, input)`.
pub(crate) fn kdf2(key: &[u8; 32], input: &[u8]) -> (Secret, Secret) {
    let t0 = hmac(key, &[input]);
    let t1 = hmac(&t0, &[&[1]]);
    let t2 = hmac(&t0, &[&t1[..], &[2]]);
    (t1, t2)
}

/// `KDF3(key, input)`.
pub(crate) fn kdf3(key: &[u8; 32], input: &[u8]) -> (Secret, Secret, Secret) {
    let t0 = hmac(key, &[input]);
    let t1 = hmac(&t0, &[&[1]]);
    let t2 = hmac(&t0, &[&t1[..], &[2]]);
    let t3 = hmac(&t0, &[&t2[..], &[3]]);
    (t1, t2, t3)
}

/// `DH(private, public)`; `None` if the result is all zero (a low-order point).
pub(crate) fn dh(private: &x25519_dalek::StaticSecret, public: &[u8; 32]) -> Option<Secret> {
    let shared = private.diffie_hellman(&x25519_dalek::PublicKey::from(*public));
    if !shared.was_contributory() {
        return None;
    }
    Some(Zeroizing::new(shared.to_bytes()))
}

/// The 96-bit AEAD nonce: 32 zero bits then the 64-bit little-endian counter.
#[inline(always)]
pub(crate) fn nonce(counter: u64) -> chacha20poly1305::Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_le_bytes());
    n.into()
}

/// `AEAD(key, counter, plain, ad)` in place: `buf` holds plain text followed
/// by `TAG_LEN` spare bytes that receive the tag.
pub(crate) fn aead_seal(key: &[u8; 32], counter: u64, buf: &mut [u8], ad: &[u8]) {
    let cipher = ChaCha20Poly1305::new(key.into());
    let split = buf.len() - TAG_LEN;
    let (data, tag) = buf.split_at_mut(split);
    // Encryption only fails for messages longer than 2^38 bytes.
    if let Ok(t) = cipher.encrypt_inout_detached(&nonce(counter), ad, data.into()) {
        tag.copy_from_slice(&t);
    }
}

/// Opens `buf` (cipher text then tag) in place; on success the first
/// `buf.len() - TAG_LEN` bytes are the plain text.
pub(crate) fn aead_open(key: &[u8; 32], counter: u64, buf: &mut [u8], ad: &[u8]) -> bool {
    if buf.len() < TAG_LEN {
        return false;
    }
    let cipher = ChaCha20Poly1305::new(key.into());
    let split = buf.len() - TAG_LEN;
    let (data, tag) = buf.split_at_mut(split);
    let Ok(tag) = Tag::try_from(&*tag) else {
        return false;
    };
    cipher
        .decrypt_inout_detached(&nonce(counter), ad, data.into(), &tag)
        .is_ok()
}

/// `XAEAD(key, nonce, plain, ad)` in place, as [`aead_seal`].
pub(crate) fn xaead_seal(key: &[u8; 32], nonce: &[u8; 24], buf: &mut [u8], ad: &[u8]) {
    let cipher = XChaCha20Poly1305::new(key.into());
    let split = buf.len() - TAG_LEN;
    let (data, tag) = buf.split_at_mut(split);
    if let Ok(t) = cipher.encrypt_inout_detached(nonce.into(), ad, data.into()) {
        tag.copy_from_slice(&t);
    }
}

/// Opens an XAEAD box in place, as [`aead_open`].
pub(crate) fn xaead_open(key: &[u8; 32], nonce: &[u8; 24], buf: &mut [u8], ad: &[u8]) -> bool {
    if buf.len() < TAG_LEN {
        return false;
    }
    let cipher = XChaCha20Poly1305::new(key.into());
    let split = buf.len() - TAG_LEN;
    let (data, tag) = buf.split_at_mut(split);
    let Ok(tag) = Tag::try_from(&*tag) else {
        return false;
    };
    cipher
        .decrypt_inout_detached(nonce.into(), ad, data.into(), &tag)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_blake2s_matches_rfc2104_construction_with_long_key_path() {
        // HMAC of the empty message with an all-zero key, computed by hand.
        let key = [0u8; 32];
        let inner = hash(&[&[0x36u8; 64], b""]);
        let outer = hash(&[&[0x5cu8; 64], &inner]);
        assert_eq!(*hmac(&key, &[b""]), outer);
    }

    #[test]
    fn aead_round_trip_and_tamper() {
        let key = [3u8; 32];
        let mut buf = *b"hello world.....\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";
        aead_seal(&key, 9, &mut buf, b"ad");
        let mut bad = buf;
        bad[0] ^= 1;
        assert!(!aead_open(&key, 9, &mut bad, b"ad"));
        assert!(!aead_open(&key, 8, &mut buf.clone(), b"ad"));
        assert!(aead_open(&key, 9, &mut buf, b"ad"));
        assert_eq!(&buf[..16], b"hello world.....");
    }

    #[test]
    fn construction_hash_is_the_known_initial_chaining_key() {
        // Ci = HASH(CONSTRUCTION), as in every WireGuard implementation.
        let ck = hash(&[CONSTRUCTION]);
        assert_eq!(ck[..4], [0x60, 0xe2, 0x6d, 0xae]);
    }
}
