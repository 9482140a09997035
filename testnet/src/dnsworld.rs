//! The world of the `DNS =` end-to-end tests (shared by `e2e_dns.rs` and
//! `e2e_static.rs`): a wireguard-go peer whose namespace runs a dnsmasq
//! that knows names nobody else knows and an HTTP server with a unique
//! token page; a client namespace whose host resolver (`/etc/resolv.conf`,
//! bind-mounted by `ip netns exec` from `/etc/netns/<ns>/`) is a listener
//! we wrote that counts every query and answers them all with 127.7.7.7.

use crate::netns::Bg;
use crate::one_peer::{Conf, OnePeer};
use crate::servers::wait_until;
use crate::tempdir::read;
use crate::{show, token};
use std::path::{Path, PathBuf};

/// The host resolver's address inside the client namespace.
pub const HOST_NS: &str = "127.0.0.77";

/// Counts DNS queries (UDP and TCP) on HOST_NS:53, one line each in the
/// log, and answers every A query with 127.7.7.7.
pub const HOST_LISTENER: &str = r#"
import select, socket, struct, sys
log = open(sys.argv[2], "a")
def answer(q):
    # question name, for the log
    i, labels = 12, []
    while i < len(q) and q[i]:
        labels.append(q[i+1:i+1+q[i]].decode("ascii", "replace")); i += 1 + q[i]
    qtype = struct.unpack("!H", q[i+1:i+3])[0] if i + 3 <= len(q) else 0
    log.write("QUERY %s %d\n" % (".".join(labels), qtype)); log.flush()
    hdr = q[:2] + b"\x81\x80" + q[4:6] + (b"\x00\x01" if qtype == 1 else b"\x00\x00") + b"\x00\x00\x00\x00"
    body = q[12:i+5]
    if qtype == 1:
        body += b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" + bytes([127, 7, 7, 7])
    return hdr + body
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind((sys.argv[1], 53))
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind((sys.argv[1], 53)); t.listen(8)
log.write("READY\n"); log.flush()
while True:
    r, _, _ = select.select([u, t], [], [])
    if u in r:
        q, a = u.recvfrom(4096); u.sendto(answer(q), a)
    if t in r:
        c, _ = t.accept(); c.settimeout(5)
        try:
            n = struct.unpack("!H", c.recv(2))[0]; q = b""
            while len(q) < n: q += c.recv(n - len(q))
            a = answer(q); c.sendall(struct.pack("!H", len(a)) + a)
        except Exception as e:
            log.write("TCPERR %r\n" % e); log.flush()
        c.close()
"#;

/// The world of one test: peer with dnsmasq + HTTP server, client
/// namespace with the counting host resolver.
pub struct World {
    /// Client namespace, peer, keys and files; `w.client`, `w.peer`,
    /// `w.tmp` reach them through `Deref`.
    pub t: OnePeer,
    /// `/etc/netns/<client ns>/` (its `resolv.conf` names [`HOST_NS`]); removed on drop.
    pub netns_etc: PathBuf,
    /// The host listener's log: one `QUERY <name> <type>` line per query.
    pub host_log: PathBuf,
    _host: Bg,
    /// The far side's dnsmasq, while it runs.
    pub dnsmasq: Option<Bg>,
    /// dnsmasq's log (`--log-queries`).
    pub dnsmasq_log: PathBuf,
    /// A name only the far side's dnsmasq knows (→ 10.77.0.1).
    pub name: String,
    /// Its first label (found through the `DNS =` search domain).
    pub short: String,
    /// The token page the peer's HTTP server serves on 8080.
    pub tok: String,
    _http: Bg,
    /// The HTTP server's log (one line per request, with the client address).
    pub http_log: PathBuf,
}

impl std::ops::Deref for World {
    type Target = OnePeer;
    fn deref(&self) -> &OnePeer {
        &self.t
    }
}

impl std::ops::DerefMut for World {
    fn deref_mut(&mut self) -> &mut OnePeer {
        &mut self.t
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.netns_etc);
    }
}

/// How long the world waits for its servers to start or stop, in seconds.
const START_SECS: u64 = 15;

/// Builds the world: the peer with its HTTP server and dnsmasq, the
/// client namespace with the counting host resolver.
pub fn world() -> World {
    let t = OnePeer::new("d");
    let (client, tmp) = (&t.client, &t.tmp);
    // The client namespace's host resolver: ours, counting.
    let netns_etc = PathBuf::from("/etc/netns").join(&client.name);
    std::fs::create_dir_all(&netns_etc).expect("/etc/netns/<ns>");
    std::fs::write(
        netns_etc.join("resolv.conf"),
        format!("nameserver {HOST_NS}\noptions attempts:1 timeout:2\n"),
    )
    .expect("resolv.conf");
    let listener = tmp.write("host_listener.py", HOST_LISTENER);
    let host_log = tmp.join("host-dns.log");
    client.ip(&["addr", "add", &format!("{HOST_NS}/8"), "dev", "lo"]);
    let host = client.spawn(
        &[
            "python3",
            &listener.display().to_string(),
            HOST_NS,
            &host_log.display().to_string(),
        ],
        &tmp.join("host-listener.out"),
    );
    wait_until(START_SECS, "the host listener", || {
        std::fs::read_to_string(&host_log).is_ok_and(|l| l.contains("READY"))
    });

    let n = token("dns").to_lowercase();
    let short = format!("n{}", n.replace(['-', '_'], "").trim_start_matches("token"));
    let name = format!("{short}.only-tunnel.test");
    let tok = token("page");
    let (http, http_log) = t.serve_page(&tok, "0.0.0.0");
    let dnsmasq_log = tmp.join("dnsmasq.log");
    let mut w = World {
        t,
        netns_etc,
        host_log,
        _host: host,
        dnsmasq: None,
        dnsmasq_log,
        name,
        short,
        tok,
        _http: http,
        http_log,
    };
    w.start_dnsmasq();
    w
}

impl World {
    /// A name with 40 A records (10.77.1.1–40): its answer does not fit
    /// 512 bytes, so dnsmasq truncates it over UDP.
    pub fn big_name(&self) -> String {
        format!("big.{}", self.name)
    }

    /// Starts dnsmasq on the peer's tunnel addresses (port 53) and waits
    /// until it listens.
    pub fn start_dnsmasq(&mut self) {
        // Exact records (the PTR of 10.77.0.1 comes from the first), and
        // every domain answered locally: NODATA / NXDOMAIN, never REFUSED.
        let rec = format!("--host-record={},10.77.0.1", self.name);
        let rec_short = format!("--host-record={}.search.test,10.77.0.1", self.short);
        let big: Vec<String> = (1..=40)
            .map(|i| format!("--host-record={},10.77.1.{i}", self.big_name()))
            .collect();
        let listen6 = format!("--listen-address={}", self.peer.v6);
        let mut args: Vec<&str> = big.iter().map(String::as_str).collect();
        args.push(&listen6);
        let bg = self.peer.ns.spawn(
            &[
                &[
                    "dnsmasq",
                    "--keep-in-foreground",
                    "--no-resolv",
                    "--no-hosts",
                    "--conf-file=/dev/null",
                    "--user=root",
                    "--pid-file",
                    "--bind-interfaces",
                    &format!("--listen-address={}", self.peer.v4),
                    "--port=53",
                    &rec,
                    &rec_short,
                    "--local=/only-tunnel.test/",
                    "--local=/search.test/",
                    "--local=/nx.test/",
                    "--log-queries",
                    "--log-facility=-",
                ][..],
                &args[..],
            ]
            .concat(),
            &self.dnsmasq_log,
        );
        self.dnsmasq = Some(bg);
        let ns = &self.peer.ns;
        wait_until(START_SECS, "dnsmasq", || {
            let out = ns.run(&["ss", "-Hlun", "sport = :53"]);
            !String::from_utf8_lossy(&out.stdout).trim().is_empty()
        });
    }

    /// Stops dnsmasq and waits until port 53 is free.
    pub fn stop_dnsmasq(&mut self) {
        if let Some(mut d) = self.dnsmasq.take() {
            d.terminate();
        }
        let ns = &self.peer.ns;
        wait_until(START_SECS, "dnsmasq to stop", || {
            let out = ns.run(&["ss", "-Hlun", "sport = :53"]);
            String::from_utf8_lossy(&out.stdout).trim().is_empty()
        });
    }

    /// Our dual-stack config, with `DNS = <peer>, search.test` if `dns`.
    pub fn conf(&self, dns: bool) -> PathBuf {
        self.conf_with(if dns {
            format!("DNS = {}, search.test\n", self.peer.v4)
        } else {
            String::new()
        })
    }

    /// Our dual-stack config with `dns_line` in `[Interface]`.
    pub fn conf_with(&self, dns_line: String) -> PathBuf {
        self.t.conf(
            &format!("wg{}.conf", dns_line.len()),
            Conf {
                interface: &dns_line,
                ..Conf::DUAL
            },
        )
    }

    /// Our dual-stack config with `PersistentKeepalive = 25` (we handshake
    /// at start, so the peer knows our endpoint), written as `name`.
    pub fn conf_keepalive(&self, name: &str) -> PathBuf {
        self.t.conf(
            name,
            Conf {
                peer: "PersistentKeepalive = 25",
                ..Conf::DUAL
            },
        )
    }

    /// Control run of `py` (a raw query script taking `HOST name`) without
    /// wrapguard: the host listener answers (`want` in the output) and
    /// counts it. Returns the host's queries so far.
    pub fn control_query(&self, py: &Path, want: &str) -> Vec<String> {
        let out = self
            .client
            .run(&["python3", &py.display().to_string(), HOST_NS, &self.name]);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(want),
            "control run: {}",
            show(&out)
        );
        let before = self.host_queries();
        assert!(!before.is_empty());
        before
    }

    /// Queries the host resolver has seen so far.
    pub fn host_queries(&self) -> Vec<String> {
        read(&self.host_log)
            .lines()
            .filter(|l| l.starts_with("QUERY"))
            .map(str::to_string)
            .collect()
    }
}

/// The world of a DNS test, or a return from the test (with the loud
/// `SKIPPED:` line) when it cannot run here: not root, no wireguard-go, no
/// dnsmasq.
#[macro_export]
macro_rules! dns_world_or_skip {
    () => {{
        $crate::skip_unless_ready!();
        if $crate::dnsworld::skip_without_dnsmasq() {
            return;
        }
        $crate::dnsworld::world()
    }};
}

/// Prints the loud `SKIPPED:` line and returns true if dnsmasq is missing.
pub fn skip_without_dnsmasq() -> bool {
    if !crate::netns::on_path("dnsmasq") {
        eprintln!("SKIPPED: dnsmasq not installed (apt-get install -y dnsmasq)");
        println!("SKIPPED: dnsmasq not installed");
        return true;
    }
    false
}
