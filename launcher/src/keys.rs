//! `wrapguard genkey` and `wrapguard pubkey`, as `wg genkey` / `wg pubkey`:
//! a new base64 private key on stdout, or the public key of the private
//! key read on stdin.

use noise::rand_core::OsRng;
use noise::PrivateKey;
use std::io::{Read, Write};
use zeroize::Zeroizing;

/// Runs `genkey`/`pubkey` if that is the first argument; returns the exit
/// code, or `None` for a normal run.
pub fn run_subcommand() -> Option<i32> {
    let first = std::env::args_os().nth(1)?;
    match first.to_str()? {
        "genkey" => Some(genkey()),
        "pubkey" => Some(pubkey()),
        _ => None,
    }
}

fn genkey() -> i32 {
    let key = PrivateKey::generate(&mut OsRng);
    let text = key.to_base64();
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{}", text.as_str()).is_err() {
        return 1;
    }
    0
}

fn pubkey() -> i32 {
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
