//! The 32-byte Curve25519 / preshared keys of a config, decoded from base64.
//!
//! These are plain byte wrappers; the `noise` crate has its own key types and
//! the launcher converts. Secret keys are zeroized on drop and their `Debug`
//! output is `<redacted>`; nothing in this module ever echoes key text.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use zeroize::Zeroize;

/// Length in bytes of every WireGuard key.
pub const KEY_LEN: usize = 32;

/// Length of a key in base64 text, as printed by `wg genkey` (with one `=`).
pub const KEY_BASE64_LEN: usize = 44;

/// Why a key's text is not a key. Never carries the text itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyError {
    /// The text has this many characters instead of 44.
    WrongLength(usize),
    /// The text has 44 characters but is not standard base64 of 32 bytes.
    NotBase64,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::WrongLength(1) => f.write_str("it has 1 character instead of 44"),
            KeyError::WrongLength(n) => write!(f, "it has {n} characters instead of 44"),
            KeyError::NotBase64 => f.write_str("it is not base64 of 32 bytes"),
        }
    }
}

impl std::error::Error for KeyError {}

/// Decodes 44 characters of standard base64 into 32 bytes; the scratch
/// buffer is wiped before returning.
fn decode_key(text: &str) -> Result<[u8; KEY_LEN], KeyError> {
    let n = text.chars().count();
    if n != KEY_BASE64_LEN {
        return Err(KeyError::WrongLength(n));
    }
    // 44 base64 characters decode to at most 33 bytes (the estimate base64
    // requires); a well-formed key uses 32 of them.
    let mut scratch = [0u8; KEY_LEN + 1];
    let result = match STANDARD.decode_slice(text.as_bytes(), &mut scratch) {
        Ok(KEY_LEN) => {
            let mut out = [0u8; KEY_LEN];
            out.copy_from_slice(&scratch[..KEY_LEN]);
            Ok(out)
        }
        _ => Err(KeyError::NotBase64),
    };
    scratch.zeroize();
    result
}

/// A Curve25519 public key (a peer's identity). Not secret.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; KEY_LEN]);

impl PublicKey {
    /// Wraps raw key bytes.
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        PublicKey(bytes)
    }

    /// Decodes the base64 text `wg pubkey` prints.
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        decode_key(text).map(PublicKey)
    }

    /// The raw 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Display for PublicKey {
    /// The base64 form, as in a config file.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&STANDARD.encode(self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

macro_rules! secret_key {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        ///
        /// Zeroized on drop; `Debug` prints `<redacted>`; no `Display`.
        #[derive(Clone)]
        pub struct $name([u8; KEY_LEN]);

        impl $name {
            /// Wraps raw key bytes.
            pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
                $name(bytes)
            }

            /// Decodes base64 key text. The error never contains the text.
            pub fn from_base64(text: &str) -> Result<Self, KeyError> {
                decode_key(text).map($name)
            }

            /// The raw 32 secret bytes.
            pub const fn as_bytes(&self) -> &[u8; KEY_LEN] {
                &self.0
            }
        }

        impl Drop for $name {
            fn drop(&mut self) {
                self.0.zeroize();
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}(<redacted>)", stringify!($name))
            }
        }
    };
}

secret_key!(
    /// This side's Curve25519 private key (`[Interface] PrivateKey`).
    PrivateKey
);

secret_key!(
    /// A peer's optional symmetric preshared key (`[Peer] PresharedKey`).
    PresharedKey
);

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";

    #[test]
    fn decodes_wg_genkey_output() {
        let k = PrivateKey::from_base64(KEY).expect("valid key");
        assert_eq!(STANDARD.encode(k.as_bytes()), KEY);
        let p = PublicKey::from_base64(KEY).expect("valid key");
        assert_eq!(p.to_string(), KEY);
    }

    #[test]
    fn rejects_bad_keys_without_echo() {
        assert_eq!(
            PrivateKey::from_base64("abc").err(),
            Some(KeyError::WrongLength(3))
        );
        // 44 characters, but the last group decodes to 33 bytes (no padding).
        let no_pad = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmkA";
        assert_eq!(
            PrivateKey::from_base64(no_pad).err(),
            Some(KeyError::NotBase64)
        );
        assert_eq!(
            PrivateKey::from_base64("yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBm!=").err(),
            Some(KeyError::NotBase64)
        );
    }

    #[test]
    fn private_debug_is_redacted() {
        let k = PrivateKey::from_base64(KEY).expect("valid key");
        let dbg = format!("{k:?}");
        assert_eq!(dbg, "PrivateKey(<redacted>)");
    }
}
