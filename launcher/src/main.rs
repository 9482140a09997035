//! `wrapguard`: runs a program with its network traffic carried through a
//! userspace WireGuard tunnel. The launcher, engine and bridge land with the
//! launcher issue; until then this binary only reports its version.

fn main() {
    eprintln!("wrapguard {}: the launcher is not built yet", env!("CARGO_PKG_VERSION"));
    std::process::exit(2);
}
