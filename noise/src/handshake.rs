//! The Noise_IKpsk2 handshake as WireGuard builds it.
//!
//! Read first: WireGuard paper §5.4.2 (initiation), §5.4.3 (response),
//! §5.4.5 (transport keys) and the Noise specification's IKpsk2 pattern.
//! The paper's pseudo-code is written above each step; `Ci`/`Hi` are the
//! initiator's chaining key and hash, `Cr`/`Hr` the responder's.
//!
//! Each state is a struct that the next step consumes: [`InitiationSent`]
//! (initiator waiting for the response) and [`InitiationReceived`]
//! (responder that authenticated an initiation). Both end in
//! [`TransportKeys`]. mac1/mac2 are added by `cookie.rs`.

use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use crate::crypto::{
    aead_open, aead_seal, dh, hash, kdf1, kdf2, kdf3, Secret, CONSTRUCTION, IDENTIFIER,
};
use crate::error::DecapsulateError;
use crate::keys::{EphemeralKey, PresharedKey, PrivateKey, PublicKey};
use crate::messages::{Initiation, Response};

/// Length of a TAI64N timestamp.
pub const TIMESTAMP_LEN: usize = 12;

/// `Ci = HASH(CONSTRUCTION)` and `Hi = HASH(Ci || IDENTIFIER)`, computed once.
fn initial_chaining_key_and_hash() -> ([u8; 32], [u8; 32]) {
    let ck = hash(&[CONSTRUCTION]);
    let h = hash(&[&ck, IDENTIFIER]);
    (ck, h)
}

/// Our static identity with the values derived from it once.
pub(crate) struct LocalStatic {
    pub(crate) private: PrivateKey,
    pub(crate) public: PublicKey,
    /// `Hr = HASH(HASH(Ci || IDENTIFIER) || Sr_pub)` with us as responder.
    initial_hash: [u8; 32],
    initial_ck: [u8; 32],
}

impl LocalStatic {
    pub(crate) fn new(private: PrivateKey) -> Self {
        let public = private.public_key();
        let (ck, h) = initial_chaining_key_and_hash();
        LocalStatic {
            initial_hash: hash(&[&h, public.as_bytes()]),
            initial_ck: ck,
            private,
            public,
        }
    }
}

/// A peer's static key with the values derived from it once.
pub(crate) struct PeerStatic {
    pub(crate) public: PublicKey,
    /// `DH(S_priv, S_peer_pub)`; `None` if the peer key is a low-order point.
    static_static: Option<Secret>,
    /// `Hi = HASH(HASH(Ci || IDENTIFIER) || Sr_pub)` with the peer as responder.
    initial_hash: [u8; 32],
}

impl PeerStatic {
    pub(crate) fn new(local: &LocalStatic, public: PublicKey) -> Self {
        let (_, h) = initial_chaining_key_and_hash();
        PeerStatic {
            static_static: dh(local.private.secret(), public.as_bytes()),
            initial_hash: hash(&[&h, public.as_bytes()]),
            public,
        }
    }
}

/// Initiator state after sending message 1.
pub(crate) struct InitiationSent {
    pub(crate) local_index: u32,
    ephemeral: EphemeralKey,
    hash: [u8; 32],
    chaining_key: Secret,
}

/// Responder state after authenticating the static key of message 1.
pub(crate) struct StaticDecrypted {
    pub(crate) peer: PublicKey,
    remote_index: u32,
    remote_ephemeral: [u8; 32],
    hash: [u8; 32],
    chaining_key: Secret,
    encrypted_timestamp: [u8; TIMESTAMP_LEN + 16],
}

/// Responder state after authenticating all of message 1.
pub(crate) struct InitiationReceived {
    remote_index: u32,
    remote_ephemeral: [u8; 32],
    peer_public: PublicKey,
    hash: [u8; 32],
    chaining_key: Secret,
    pub(crate) timestamp: [u8; TIMESTAMP_LEN],
}

/// The outcome of a handshake: the two transport keys and the indices.
pub(crate) struct TransportKeys {
    pub(crate) send: Secret,
    pub(crate) recv: Secret,
    pub(crate) local_index: u32,
    pub(crate) remote_index: u32,
    pub(crate) is_initiator: bool,
}

/// Writes message 1 (all but mac1/mac2) into `msg`.
/// Returns `None` if the peer's key is a low-order point.
pub(crate) fn create_initiation(
    local: &LocalStatic,
    peer: &PeerStatic,
    local_index: u32,
    timestamp: &[u8; TIMESTAMP_LEN],
    rng: &mut dyn CryptoRngCore,
    msg: &mut Initiation<&mut [u8]>,
) -> Option<InitiationSent> {
    let ss = peer.static_static.as_ref()?;
    msg.init();
    msg.set_sender_index(local_index);
    // Ci = HASH(CONSTRUCTION); Hi = HASH(HASH(Ci || IDENTIFIER) || Sr_pub)
    let ck = Zeroizing::new(local.initial_ck);
    let mut h = peer.initial_hash;
    // (Ei_priv, Ei_pub) = DH-GENERATE()
    let ephemeral = EphemeralKey::generate(rng);
    // msg.ephemeral = Ei_pub
    msg.ephemeral_mut().copy_from_slice(ephemeral.public());
    // Ci = KDF1(Ci, msg.ephemeral)
    let ck = kdf1(&ck, ephemeral.public());
    // Hi = HASH(Hi || msg.ephemeral)
    h = hash(&[&h, ephemeral.public()]);
    // (Ci, k) = KDF2(Ci, DH(Ei_priv, Sr_pub))
    let es = dh(ephemeral.secret(), peer.public.as_bytes())?;
    let (ck, k) = kdf2(&ck, &es[..]);
    // msg.static = AEAD(k, 0, Si_pub, Hi)
    let st = msg.encrypted_static_mut();
    st[..32].copy_from_slice(local.public.as_bytes());
    aead_seal(&k, 0, st, &h);
    // Hi = HASH(Hi || msg.static)
    h = hash(&[&h, msg.encrypted_static_mut()]);
    // (Ci, k) = KDF2(Ci, DH(Si_priv, Sr_pub))
    let (ck, k) = kdf2(&ck, &ss[..]);
    // msg.timestamp = AEAD(k, 0, TAI64N(), Hi)
    let ts = msg.encrypted_timestamp_mut();
    ts[..TIMESTAMP_LEN].copy_from_slice(timestamp);
    aead_seal(&k, 0, ts, &h);
    // Hi = HASH(Hi || msg.timestamp)
    h = hash(&[&h, msg.encrypted_timestamp_mut()]);
    Some(InitiationSent {
        local_index,
        ephemeral,
        hash: h,
        chaining_key: ck,
    })
}

/// Responder, first half of message 1: authenticates the initiator's static
/// key (which tells us which peer it is) without knowing the peer yet.
pub(crate) fn consume_initiation_static(
    local: &LocalStatic,
    msg: &Initiation<&[u8]>,
) -> Result<StaticDecrypted, DecapsulateError> {
    // Cr = HASH(CONSTRUCTION); Hr = HASH(HASH(Cr || IDENTIFIER) || Sr_pub)
    let ck = Zeroizing::new(local.initial_ck);
    let mut h = local.initial_hash;
    let e = *msg.ephemeral();
    // Cr = KDF1(Cr, msg.ephemeral)
    let ck = kdf1(&ck, &e);
    // Hr = HASH(Hr || msg.ephemeral)
    h = hash(&[&h, &e]);
    // (Cr, k) = KDF2(Cr, DH(Sr_priv, Ei_pub))
    let es = dh(local.private.secret(), &e).ok_or(DecapsulateError::HandshakeFailed)?;
    let (ck, k) = kdf2(&ck, &es[..]);
    // Si_pub = AEAD-OPEN(k, 0, msg.static, Hr)
    let mut st = *msg.encrypted_static();
    if !aead_open(&k, 0, &mut st, &h) {
        return Err(DecapsulateError::HandshakeFailed);
    }
    let mut peer = [0u8; 32];
    peer.copy_from_slice(&st[..32]);
    // Hr = HASH(Hr || msg.static)
    h = hash(&[&h, msg.encrypted_static()]);
    Ok(StaticDecrypted {
        peer: PublicKey::from_bytes(peer),
        remote_index: msg.sender_index(),
        remote_ephemeral: e,
        hash: h,
        chaining_key: ck,
        encrypted_timestamp: *msg.encrypted_timestamp(),
    })
}

/// Responder, second half of message 1: authenticates the timestamp with
/// the peer's static-static secret.
pub(crate) fn consume_initiation_timestamp(
    state: StaticDecrypted,
    peer: &PeerStatic,
) -> Result<InitiationReceived, DecapsulateError> {
    let ss = peer
        .static_static
        .as_ref()
        .ok_or(DecapsulateError::HandshakeFailed)?;
    // (Cr, k) = KDF2(Cr, DH(Sr_priv, Si_pub))
    let (ck, k) = kdf2(&state.chaining_key, &ss[..]);
    // timestamp = AEAD-OPEN(k, 0, msg.timestamp, Hr)
    let mut ts = state.encrypted_timestamp;
    if !aead_open(&k, 0, &mut ts, &state.hash) {
        return Err(DecapsulateError::HandshakeFailed);
    }
    let mut timestamp = [0u8; TIMESTAMP_LEN];
    timestamp.copy_from_slice(&ts[..TIMESTAMP_LEN]);
    // Hr = HASH(Hr || msg.timestamp)
    let h = hash(&[&state.hash, &state.encrypted_timestamp]);
    Ok(InitiationReceived {
        remote_index: state.remote_index,
        remote_ephemeral: state.remote_ephemeral,
        peer_public: state.peer,
        hash: h,
        chaining_key: ck,
        timestamp,
    })
}

/// Writes message 2 (all but mac1/mac2) and derives the transport keys.
pub(crate) fn create_response(
    state: InitiationReceived,
    psk: &PresharedKey,
    local_index: u32,
    rng: &mut dyn CryptoRngCore,
    msg: &mut Response<&mut [u8]>,
) -> Result<TransportKeys, DecapsulateError> {
    msg.init();
    // msg.sender = Ir; msg.receiver = Ii
    msg.set_sender_index(local_index);
    msg.set_receiver_index(state.remote_index);
    // (Er_priv, Er_pub) = DH-GENERATE()
    let ephemeral = EphemeralKey::generate(rng);
    // msg.ephemeral = Er_pub
    msg.ephemeral_mut().copy_from_slice(ephemeral.public());
    // Cr = KDF1(Cr, Er_pub)
    let ck = kdf1(&state.chaining_key, ephemeral.public());
    // Hr = HASH(Hr || msg.ephemeral)
    let h = hash(&[&state.hash, ephemeral.public()]);
    // Cr = KDF1(Cr, DH(Er_priv, Ei_pub))
    let ee =
        dh(ephemeral.secret(), &state.remote_ephemeral).ok_or(DecapsulateError::HandshakeFailed)?;
    let ck = kdf1(&ck, &ee[..]);
    // Cr = KDF1(Cr, DH(Er_priv, Si_pub))
    let se = dh(ephemeral.secret(), state.peer_public.as_bytes())
        .ok_or(DecapsulateError::HandshakeFailed)?;
    let ck = kdf1(&ck, &se[..]);
    // (Cr, τ, k) = KDF3(Cr, Q)
    let (ck, tau, k) = kdf3(&ck, psk.as_bytes());
    // Hr = HASH(Hr || τ)
    let h = hash(&[&h, &tau[..]]);
    // msg.empty = AEAD(k, 0, ε, Hr)
    aead_seal(&k, 0, msg.encrypted_nothing_mut(), &h);
    // Hr = HASH(Hr || msg.empty) — the final hash is not needed further.
    // (Tr_recv, Tr_send) = KDF2(Cr, ε)
    let (recv, send) = kdf2(&ck, &[]);
    Ok(TransportKeys {
        send,
        recv,
        local_index,
        remote_index: state.remote_index,
        is_initiator: false,
    })
}

/// Initiator: authenticates message 2 against our pending handshake and
/// derives the transport keys. On failure the pending state is untouched.
pub(crate) fn consume_response(
    state: &InitiationSent,
    local: &LocalStatic,
    psk: &PresharedKey,
    msg: &Response<&[u8]>,
) -> Result<TransportKeys, DecapsulateError> {
    let e = *msg.ephemeral();
    // Ci = KDF1(Ci, msg.ephemeral)
    let ck = kdf1(&state.chaining_key, &e);
    // Hi = HASH(Hi || msg.ephemeral)
    let h = hash(&[&state.hash, &e]);
    // Ci = KDF1(Ci, DH(Ei_priv, Er_pub))
    let ee = dh(state.ephemeral.secret(), &e).ok_or(DecapsulateError::HandshakeFailed)?;
    let ck = kdf1(&ck, &ee[..]);
    // Ci = KDF1(Ci, DH(Si_priv, Er_pub))
    let se = dh(local.private.secret(), &e).ok_or(DecapsulateError::HandshakeFailed)?;
    let ck = kdf1(&ck, &se[..]);
    // (Ci, τ, k) = KDF3(Ci, Q)
    let (ck, tau, k) = kdf3(&ck, psk.as_bytes());
    // Hi = HASH(Hi || τ)
    let h = hash(&[&h, &tau[..]]);
    // ε = AEAD-OPEN(k, 0, msg.empty, Hi)
    let mut empty = *msg.encrypted_nothing();
    if !aead_open(&k, 0, &mut empty, &h) {
        return Err(DecapsulateError::HandshakeFailed);
    }
    // (Ti_send, Ti_recv) = KDF2(Ci, ε)
    let (send, recv) = kdf2(&ck, &[]);
    Ok(TransportKeys {
        send,
        recv,
        local_index: state.local_index,
        remote_index: msg.sender_index(),
        is_initiator: true,
    })
}

/// Forms a TAI64N timestamp from a wall-clock time as wireguard-go does:
/// seconds since the Unix epoch plus `2^62 + 10`, and the nanoseconds
/// rounded down to a multiple of 2^24 (whitening, so the timestamp does not
/// reveal the precise clock).
pub fn tai64n_whitened(since_unix_epoch: std::time::Duration) -> tai64::Tai64N {
    const BASE: u64 = 0x4000_0000_0000_000a;
    const WHITENER_MASK: u32 = 0x00ff_ffff;
    tai64::Tai64N(
        tai64::Tai64(BASE + since_unix_epoch.as_secs()),
        since_unix_epoch.subsec_nanos() & !WHITENER_MASK,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{INITIATION_LEN, RESPONSE_LEN};
    use rand_chacha::rand_core::SeedableRng;

    #[test]
    fn both_sides_derive_the_same_keys() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let a = LocalStatic::new(PrivateKey::generate(&mut rng));
        let b = LocalStatic::new(PrivateKey::generate(&mut rng));
        let b_at_a = PeerStatic::new(&a, b.public);
        let a_at_b = PeerStatic::new(&b, a.public);
        let psk = PresharedKey::from_bytes([5; 32]);
        let mut m1 = [0u8; INITIATION_LEN];
        let ts = [1u8; 12];
        let sent = {
            let mut v = Initiation::new_unchecked_type(&mut m1[..]).expect("len");
            create_initiation(&a, &b_at_a, 42, &ts, &mut rng, &mut v).expect("valid keys")
        };
        let v = Initiation::new_checked(&m1[..]).expect("valid");
        let st = consume_initiation_static(&b, &v).expect("static");
        assert_eq!(st.peer, a.public);
        let rec = consume_initiation_timestamp(st, &a_at_b).expect("timestamp");
        assert_eq!(rec.timestamp, ts);
        let mut m2 = [0u8; RESPONSE_LEN];
        let kb = {
            let mut v = Response::new_unchecked_type(&mut m2[..]).expect("len");
            create_response(rec, &psk, 7, &mut rng, &mut v).expect("response")
        };
        let v = Response::new_checked(&m2[..]).expect("valid");
        assert!(consume_response(&sent, &a, &PresharedKey::zero(), &v).is_err());
        let ka = consume_response(&sent, &a, &psk, &v).expect("keys");
        assert_eq!(*ka.send, *kb.recv);
        assert_eq!(*ka.recv, *kb.send);
        assert_eq!((ka.local_index, ka.remote_index), (42, 7));
    }

    #[test]
    fn timestamps_are_whitened_like_wireguard_go() {
        let t = tai64n_whitened(std::time::Duration::new(1_700_000_000, 999_999_999));
        assert_eq!(t.1 & 0x00ff_ffff, 0);
        assert_eq!(t.0 .0, 0x4000_0000_0000_000a + 1_700_000_000);
    }
}
