//! Shared harness for the end-to-end tests (`launcher/tests`) and the e2e
//! bench (`benches/e2e`): network namespaces we create (and delete on drop,
//! even after a panic), veth pairs between them, and a wireguard-go peer
//! with its TUN inside its own namespace.
//!
//! Topology per test (names carry pid + counter):
//! ```text
//!  netns A<i> (peer i)                      netns B (wrapguard)
//!  wg0: 10.<76+i>.0.1/24, fd<76+i>::1/64     lo
//!  va: 192.168.<76+i>.1/24  <── veth ──>    vb<i>: 192.168.<76+i>.2/24
//!      fd00:<76+i>::1/64                         fd00:<76+i>::2/64
//!                                           default via 192.168.<76+i>.1 (bait)
//! ```
//!
//! # Leak guard (on by default)
//!
//! [`WgPeer::new`] makes its client namespace B a guarded one: a
//! [`LeakGuard`] captures on every non-loopback interface of B and counts
//! each packet leaving outside the WireGuard UDP flow to the peer
//! endpoints (reports name the tunnel range a leak was headed for). B gets
//! bait default routes (v4 and v6) toward the first peer's underlay, so a
//! packet that escapes wrapguard is really sent — and seen — instead of
//! failing with ENETUNREACH; it still cannot leave the machine (the peer
//! namespace routes nowhere else). When B's [`Netns`] is dropped at the end
//! of the test, after its processes are killed, the guard's verdict fails
//! the test with every leaked packet (src, dst, protocol, ports) listed.
//!
//! Most tests start from [`OnePeer`] (client namespace + peer 1 + keys +
//! temp dir) and write their config with [`OnePeer::conf`] from
//! [`Conf::DUAL`] or [`Conf::V4`]; tests with several peers call
//! [`WgPeer::new`] on one client namespace.
//!
//! A test using the harness needs nothing more for the leak guard. What it can do:
//! - `client.leak_guard().expect_leaks_to(&["10.98.0.1"], || …)` when it
//!   *means* to send something to the host network (a positive control,
//!   a destination no rule carries): the closure's packets to those
//!   addresses are accepted, and the call panics if none was seen, so an
//!   expectation never passes vacuously; other leaks still count.
//! - `client.leak_guard().leaks()` / `.finish()` to look or assert earlier.
//! - Traffic that is not the tunnel's but must leave B on purpose (e.g. a
//!   test talking to the peer's underlay over TCP) goes through
//!   `expect_leaks_to` too.
//!
//! Namespaces made with `unshare -n` (loopback only, [`in_netns`]) need no
//! guard: nothing can leave them.
//!
//! # One way to do each thing
//! - a WireGuard peer: [`OnePeer`] ([`OnePeer::listening`] when the peer
//!   must know our endpoint), or [`WgPeer::new`] for more peers;
//! - a wrapguard config: [`OnePeer::conf`] / [`OnePeer::configured`] for
//!   the one peer, [`conf_text`] for any other;
//! - a relay between wrapguard and the peer: [`Relay`] (seeded faults);
//! - a wrapped run: [`wrapguard`], [`wrapguard_limit`], [`spawn_wrapguard`]
//!   (the binary of the launcher's tests, [`Wrapguard::under_test`]) in a
//!   leak-guarded namespace, or [`run_python`] against the test backend;
//! - servers and waits on the peer side: [`tcp_echo_server`], [`bulk_server`],
//!   [`peer_server`], [`wait_line`], [`wait_until`];
//! - the `DNS =` world: [`dnsworld`].

mod backend;
mod conf;
pub mod dnsworld;
mod keys;
mod leakguard;
mod netns;
mod one_peer;
mod peer;
mod relay;
mod servers;
mod sniff;
mod tempdir;
mod unshare;
mod wrapguard;

pub use backend::{assert_pass, backend_flags, example_config, run_python, PRELUDE};
pub use conf::{conf_text, PeerSection};
pub use keys::{keys, Keys};
pub use leakguard::{Leak, LeakGuard};
pub use netns::{enter_netns, on_path, sh, Bg, Netns};
pub use one_peer::{
    Conf, Configured, Endpoint, OnePeer, PeerOpts, OUR_ALLOWED, OUR_UNDERLAY, OUR_V4,
};
pub use peer::{http_server_argv, wireguard_go, PeerSetup, WgPeer};
pub use relay::{Faults, Relay, RelayStats, Rng};
pub use servers::{
    bulk_server, curl_retrying, peer_server, sha256_file, tcp_echo_server, wait_line, wait_log,
    wait_until, without_log_lines, Bulk, BULK_CLIENT, BULK_SERVER, UDP_PING_CLIENT,
};
pub use tempdir::{read, TempDir};
pub use unshare::{in_netns, netns_ok, unshare_ok};
pub use wrapguard::{
    lines_at, output_retrying, python, spawn_wrapguard, wrapguard, wrapguard_direct,
    wrapguard_limit, Wrapguard, RUN_LIMIT_SECS,
};

use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicU32, Ordering};

/// Makes namespace, interface and directory names unique within a process.
pub(crate) static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Prints the loud `SKIPPED:` line and returns from the test if it cannot
/// run here ([`skip_reason`]).
#[macro_export]
macro_rules! skip_unless_ready {
    () => {
        if let Some(why) = $crate::skip_reason() {
            eprintln!("SKIPPED: {}: {why}", module_path!());
            println!("SKIPPED: {why}");
            return;
        }
    };
}

/// Why the tests cannot run here, if they cannot.
pub fn skip_reason() -> Option<String> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root (ip netns and wireguard-go need root)".into());
    }
    for tool in ["ip", "wg", "wireguard-go", "curl", "python3"] {
        if !on_path(tool) {
            return Some(format!(
                "{tool} not installed (apt-get install -y wireguard-go wireguard-tools iperf3 curl iproute2)"
            ));
        }
    }
    if !Path::new("/dev/net/tun").exists() {
        return Some("/dev/net/tun missing".into());
    }
    None
}

/// Shows an output for assertion messages.
pub fn show(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A unique token.
pub fn token(tag: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("TOKEN-{tag}-{}-{n}-{t:x}", std::process::id())
}

/// Builds `launcher/tests/fixtures/NAME.c` with gcc into `dir` (dynamically
/// linked, so the shim enters it); the binary's path, or `None` with a
/// `SKIPPED:` line when gcc fails.
pub fn c_fixture(name: &str, dir: &std::path::Path) -> Option<String> {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../launcher/tests/fixtures/{name}.c"));
    let bin = dir.join(name);
    let built = std::process::Command::new("gcc")
        .args(["-O1", "-o"])
        .arg(&bin)
        .arg(&src)
        .output();
    if !built.as_ref().is_ok_and(|o| o.status.success()) {
        println!("SKIPPED: gcc failed: {built:?}");
        return None;
    }
    Some(bin.display().to_string())
}
