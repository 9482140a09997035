//! Keys: x25519 static and ephemeral keys, preshared keys, base64 parsing.
//!
//! Read first: WireGuard paper §5.4 (key exchange inputs) and `wg(8)` (key
//! encoding: 32 bytes in standard base64 with padding, 44 characters).
//!
//! Private and preshared keys are zeroized on drop and their `Debug` prints
//! `<redacted>`; public keys print as base64.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rand_core::CryptoRngCore;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Length in bytes of every WireGuard key.
pub const KEY_LEN: usize = 32;

/// Why a base64 key could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// The text is not valid standard base64 (with padding).
    InvalidBase64,
    /// The text decodes, but not to 32 bytes.
    WrongLength {
        /// How many bytes it decoded to.
        actual: usize,
    },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::InvalidBase64 => {
                f.write_str("key is not valid base64 (expected 44 characters as printed by `wg genkey`)")
            }
            KeyError::WrongLength { actual } => write!(
                f,
                "key decodes to {actual} bytes, expected {KEY_LEN} (44 base64 characters ending in '=')"
            ),
        }
    }
}

impl std::error::Error for KeyError {}

/// Decodes a 32-byte key from base64 into a zeroizing buffer.
fn decode_key(text: &str) -> Result<Zeroizing<[u8; KEY_LEN]>, KeyError> {
    let text = text.trim();
    // 32 bytes encode to 44 characters; anything much longer cannot be a key.
    if text.len() > 64 {
        return Err(KeyError::WrongLength {
            actual: text.len() * 3 / 4,
        });
    }
    let mut buf = Zeroizing::new([0u8; 64]);
    let n = STANDARD
        .decode_slice(text.as_bytes(), &mut buf[..])
        .map_err(|_| KeyError::InvalidBase64)?;
    if n != KEY_LEN {
        return Err(KeyError::WrongLength { actual: n });
    }
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    out.copy_from_slice(&buf[..KEY_LEN]);
    Ok(out)
}

/// A peer's (or our own) x25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; KEY_LEN]);

impl PublicKey {
    /// Wraps 32 raw bytes.
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        PublicKey(bytes)
    }

    /// The raw 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Parses standard base64 (as `wg pubkey` prints it).
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        decode_key(text).map(|k| PublicKey(*k))
    }

    /// Prints standard base64.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_base64())
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        Self::from_base64(s)
    }
}

/// Our static x25519 private key. Zeroized on drop; `Debug` is redacted.
#[derive(Clone)]
pub struct PrivateKey {
    secret: x25519_dalek::StaticSecret,
    public: PublicKey,
}

impl PrivateKey {
    /// Builds a key from 32 raw bytes (clamped as x25519 requires).
    pub fn from_bytes(mut bytes: [u8; KEY_LEN]) -> Self {
        let secret = x25519_dalek::StaticSecret::from(bytes);
        bytes.zeroize();
        let public = PublicKey(x25519_dalek::PublicKey::from(&secret).to_bytes());
        PrivateKey { secret, public }
    }

    /// Generates a fresh key from a cryptographic RNG.
    pub fn generate(rng: &mut dyn CryptoRngCore) -> Self {
        let mut bytes = [0u8; KEY_LEN];
        rng.fill_bytes(&mut bytes);
        Self::from_bytes(bytes)
    }

    /// Parses standard base64 (as `wg genkey` prints it).
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        decode_key(text).map(|k| Self::from_bytes(*k))
    }

    /// Prints standard base64. The returned string is a secret: zeroize it.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.secret.as_bytes()))
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        self.public
    }

    pub(crate) fn secret(&self) -> &x25519_dalek::StaticSecret {
        &self.secret
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(<redacted>)")
    }
}

impl FromStr for PrivateKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        Self::from_base64(s)
    }
}

/// An optional symmetric key mixed into the handshake (`PresharedKey =`).
/// Zeroized on drop; `Debug` is redacted.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct PresharedKey([u8; KEY_LEN]);

impl PresharedKey {
    /// Wraps 32 raw bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        PresharedKey(bytes)
    }

    /// The all-zero key, which is what "no preshared key" means in the protocol.
    pub fn zero() -> Self {
        PresharedKey([0u8; KEY_LEN])
    }

    /// Parses standard base64 (as `wg genpsk` prints it).
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        decode_key(text).map(|k| PresharedKey(*k))
    }

    /// Prints standard base64. The returned string is a secret: zeroize it.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.0))
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for PresharedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PresharedKey(<redacted>)")
    }
}

impl FromStr for PresharedKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        Self::from_base64(s)
    }
}

/// A per-handshake ephemeral x25519 key. Zeroized on drop; `Debug` redacted.
pub(crate) struct EphemeralKey {
    secret: x25519_dalek::StaticSecret,
    public: [u8; KEY_LEN],
}

impl EphemeralKey {
    pub(crate) fn generate(rng: &mut dyn CryptoRngCore) -> Self {
        let secret = x25519_dalek::StaticSecret::random_from_rng(rng);
        let public = x25519_dalek::PublicKey::from(&secret).to_bytes();
        EphemeralKey { secret, public }
    }

    pub(crate) fn public(&self) -> &[u8; KEY_LEN] {
        &self.public
    }

    pub(crate) fn secret(&self) -> &x25519_dalek::StaticSecret {
        &self.secret
    }
}

impl fmt::Debug for EphemeralKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EphemeralKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip_and_errors() {
        let k = PrivateKey::from_bytes([7u8; 32]);
        let text = k.to_base64();
        let k2 = PrivateKey::from_base64(&text).expect("valid key");
        assert_eq!(k.public_key(), k2.public_key());
        let p = k.public_key();
        assert_eq!(PublicKey::from_base64(&p.to_base64()), Ok(p));
        assert_eq!(
            PublicKey::from_base64("not base64!"),
            Err(KeyError::InvalidBase64)
        );
        assert_eq!(
            PublicKey::from_base64("AAAA"),
            Err(KeyError::WrongLength { actual: 3 })
        );
        assert!(PublicKey::from_base64(&"A".repeat(400)).is_err());
        assert_eq!(format!("{k:?}"), "PrivateKey(<redacted>)");
        assert_eq!(
            format!("{:?}", PresharedKey::zero()),
            "PresharedKey(<redacted>)"
        );
    }
}
