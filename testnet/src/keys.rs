//! WireGuard key pairs for the peers and configs of a test.

use crate::netns::sh;
use std::io::Write;
use std::process::{Command, Stdio};

/// A key pair from `wg genkey` / `wg pubkey`.
pub struct Keys {
    /// Private key, base64.
    pub private: String,
    /// Public key, base64.
    pub public: String,
}

/// Generates keys with wireguard-tools.
pub fn keys() -> Keys {
    let private = sh(&["wg", "genkey"]).trim().to_string();
    let public = pubkey(Command::new("wg").arg("pubkey"), &private);
    Keys { private, public }
}

/// The public key `cmd` (`wg pubkey`, `wrapguard pubkey`) prints for
/// `private` given on its stdin.
pub(crate) fn pubkey(cmd: &mut Command, private: &str) -> String {
    let mut c = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn pubkey");
    c.stdin
        .take()
        .expect("stdin")
        .write_all(private.as_bytes())
        .expect("write key");
    let out = c.wait_with_output().expect("pubkey output");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
