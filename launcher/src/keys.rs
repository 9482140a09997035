//! `wrapguard genkey` and `wrapguard pubkey`, as `wg genkey` / `wg pubkey`:
//! a new base64 private key on stdout, or the public key of the private
//! key read on stdin.

use noise::rand_core::OsRng;
use noise::PrivateKey;
use std::io::{Read, Write};
use zeroize::Zeroizing;

/// `wrapguard genkey`: prints a new private key; returns the exit code.
pub fn genkey() -> i32 {
    let key = PrivateKey::generate(&mut OsRng);
    let text = key.to_base64();
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{}", text.as_str()).is_err() {
        return 1;
    }
    0
}

/// `wrapguard pubkey`: prints the public key of the private key on stdin;
/// returns the exit code.
pub fn pubkey() -> i32 {
    let mut input = Zeroizing::new(String::new());
    // A private key is 44 characters; read a little more to see garbage.
    if std::io::stdin()
        .take(4096)
        .read_to_string(&mut input)
        .is_err()
    {
        eprintln!("wrapguard pubkey: cannot read a private key from stdin");
        return 1;
    }
    match PrivateKey::from_base64(input.trim()) {
        Ok(k) => {
            println!("{}", k.public_key().to_base64());
            0
        }
        Err(_) => {
            eprintln!("wrapguard pubkey: stdin is not a base64 WireGuard private key (expected 44 characters, as `wrapguard genkey` prints)");
            1
        }
    }
}
