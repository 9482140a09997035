//! The differential conformance suite (issue 25): the socket scenarios of
//! `conformance/scen.c` run once on the kernel — the reference: a client
//! namespace with wireguard-go's TUN holding our key and our tunnel
//! addresses, so Linux TCP/UDP/ICMP carries the calls — and once under
//! wrapguard in each mode (the shim, `--mode=preload`; seccomp,
//! `--mode=seccomp`). Every scenario prints normalised observations
//! (return values, errno names, readiness masks, socket options,
//! addresses); the outputs are compared line by line, and a difference
//! fails the test unless `conformance/known-differences.md` lists it with
//! its reason. A listed difference that no longer differs is reported as
//! "now conforms: remove".
//!
//! The peer side (`scen serve`) runs in the wireguard-go peer's namespace:
//! a command server whose first line picks the behaviour a scenario needs
//! (echo, close, reset, send first, connect back, …). One `scen client`
//! process per world runs every scenario, each in a child of its own, so a
//! crash or hang shows as that scenario's difference only.
//!
//! `WRAPGUARD_CONFORMANCE=name,name` runs only those scenarios,
//! `WRAPGUARD_CONFORMANCE_MODES=shim` (or `seccomp`) only that mode. The three
//! outputs are kept in `<target>/tmp/conformance-{kernel,shim,seccomp}.txt`.
//! Needs root, wireguard-go, wireguard-tools and gcc; prints `SKIPPED:` and
//! passes otherwise.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use wrapguard_testnet::{
    show, skip_unless_ready, wireguard_go, wrapguard_limit, Conf, Netns, OnePeer,
};

/// The wrapguard worlds: name as the known-differences file spells it, and flags.
const MODES: [(&str, &[&str]); 2] = [
    ("shim", &["--mode=preload", "--log-level=warn"]),
    ("seccomp", &["--mode=seccomp", "--log-level=warn"]),
];

/// Wall-clock limit of one world's run of every scenario, in seconds.
const WORLD_LIMIT_SECS: u32 = 900;

fn conformance_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .join("conformance")
}

/// Builds `scen` into `dir`; `None` (and a SKIPPED line) without gcc.
fn build_scen(dir: &Path) -> Option<String> {
    let bin = dir.join("scen");
    let built = std::process::Command::new("gcc")
        .args(["-O1", "-Wall", "-pthread", "-o"])
        .arg(&bin)
        .arg(conformance_dir().join("scen.c"))
        .output();
    match built {
        Ok(o) if o.status.success() => Some(bin.display().to_string()),
        Ok(o) => panic!("gcc failed on conformance/scen.c:\n{}", show(&o)),
        Err(e) => {
            eprintln!("SKIPPED: gcc not runnable ({e}; apt-get install gcc libc6-dev)");
            println!("SKIPPED: gcc");
            None
        }
    }
}

/// One row of `known-differences.md`: a scenario that differs in a mode, and why.
#[derive(Debug)]
struct Known {
    scenario: String,
    modes: Vec<String>,
    reason: String,
}

/// The table rows of the known-differences file: `| scenario | modes | reason |`,
/// modes comma-separated (`shim`, `seccomp`).
fn parse_known(text: &str) -> Vec<Known> {
    let mut v = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if !line.starts_with('|') {
            continue;
        }
        // `\|` is a literal bar inside a cell (readiness masks: IN\|OUT).
        let line = line.replace("\\|", "\u{1}");
        let cells: Vec<String> = line
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().replace('\u{1}', "|"))
            .collect();
        if cells.len() < 3 || cells[0] == "scenario" || cells[0].starts_with("---") {
            continue;
        }
        let scenario = cells[0].trim_matches('`').to_string();
        let modes: Vec<String> = cells[1]
            .split(',')
            .map(|m| m.trim().to_string())
            .filter(|m| !m.is_empty())
            .collect();
        for m in &modes {
            assert!(
                MODES.iter().any(|(n, _)| n == m),
                "known-differences.md: unknown mode {m:?} in row {line:?}"
            );
        }
        let reason = cells[2..].join(" | ");
        let line = line.replace('\u{1}', "\\|");
        assert!(
            !reason.is_empty(),
            "known-differences.md: row without a reason: {line:?}"
        );
        v.push(Known {
            scenario,
            modes,
            reason,
        });
    }
    v
}

/// `== name` sections of a `scen client` output: name → its lines.
fn sections(out: &str) -> BTreeMap<String, Vec<String>> {
    let mut m = BTreeMap::new();
    let mut cur: Option<(String, Vec<String>)> = None;
    for line in out.lines() {
        if let Some(name) = line.strip_prefix("== ") {
            if let Some((n, l)) = cur.take() {
                m.insert(n, l);
            }
            cur = Some((name.to_string(), Vec::new()));
        } else if let Some((_, l)) = cur.as_mut() {
            l.push(line.to_string());
        }
    }
    if let Some((n, l)) = cur {
        m.insert(n, l);
    }
    m
}

/// A line diff (longest common subsequence): `  ` same, `- ` kernel only,
/// `+ ` ours only.
fn diff(kernel: &[String], ours: &[String]) -> String {
    let (n, m) = (kernel.len(), ours.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if kernel[i] == ours[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut s) = (0, 0, String::new());
    while i < n || j < m {
        if i < n && j < m && kernel[i] == ours[j] {
            s += &format!("      {}\n", kernel[i]);
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            s += &format!("    - {}\n", kernel[i]);
            i += 1;
        } else {
            s += &format!("    + {}\n", ours[j]);
            j += 1;
        }
    }
    s
}

/// Lets every group open ping sockets in `ns` (a new namespace's `1 0`
/// lets none, root included), in both worlds alike.
fn allow_ping_sockets(ns: &Netns) {
    let o = ns.run(&["sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647"]);
    assert!(o.status.success(), "{}", show(&o));
}

/// The kernel reference: namespace C joined to the peer by a veth of its
/// own, wireguard-go there with our key and tunnel addresses. Runs every
/// scenario, then removes C (its wireguard-go first), so our key is never
/// used by two clients at once.
fn kernel_world(t: &OnePeer, scen: &str, names: &[String]) -> String {
    let c = Netns::new("ck");
    t.peer
        .ns
        .veth_to(&c, "192.168.201.1/24", "192.168.201.2/24");
    allow_ping_sockets(&c);
    let (mut tun, ifname) = wireguard_go(&c);
    let key = t.tmp.write("kernel.key", &t.ours.private);
    let key = key.display().to_string();
    let endpoint = format!("192.168.201.1:{}", t.peer.port);
    let out = c.run(&[
        "wg",
        "set",
        &ifname,
        "private-key",
        &key,
        "peer",
        &t.peer.keys.public,
        "endpoint",
        &endpoint,
        "allowed-ips",
        "10.77.0.0/24,fd77::/64",
    ]);
    assert!(
        out.status.success(),
        "wg set in the kernel world: {}",
        show(&out)
    );
    c.ip(&["addr", "add", "10.77.0.2/24", "dev", &ifname]);
    c.ip(&["addr", "add", "fd77::2/64", "dev", &ifname, "nodad"]);
    c.ip(&["link", "set", &ifname, "up"]);
    let limit = WORLD_LIMIT_SECS.to_string();
    let (text, problems) = run_rounds(names, |rest| {
        let mut argv = vec!["timeout", &limit, scen, "client"];
        argv.extend(rest.iter().map(String::as_str));
        c.run(&argv)
    });
    tun.terminate();
    let _ = std::fs::remove_file(format!("/var/run/wireguard/{ifname}.sock"));
    drop(c);
    assert!(problems.is_empty(), "kernel world: {}", problems.join("\n"));
    text
}

/// Runs `names` with `run` (one `scen client` process, given the names
/// left), again and again until every scenario has its section: the client
/// stops after a scenario that hung (status 4), since what carries our
/// calls may be wedged, and the rest get a fresh process. Returns all the
/// output and what went wrong with the runs themselves.
fn run_rounds(
    names: &[String],
    mut run: impl FnMut(&[String]) -> std::process::Output,
) -> (String, Vec<String>) {
    let (mut text, mut problems) = (String::new(), Vec::new());
    let mut rest: Vec<String> = names.to_vec();
    while !rest.is_empty() {
        let out = run(&rest);
        let got = String::from_utf8_lossy(&out.stdout).into_owned();
        let done = sections(&got);
        // Finished sections end with the runner's "-- …" line.
        let ran = rest
            .iter()
            .take_while(|n| {
                done.get(*n)
                    .and_then(|l| l.last())
                    .is_some_and(|l| l.starts_with("-- "))
            })
            .count();
        let code = out.status.code();
        if code != Some(0) && code != Some(4) {
            problems.push(format!("scen client ended badly: {}", show(&out)));
        }
        text += &got;
        if ran == 0 {
            // Not even one: the process itself failed; count it as that
            // scenario's output and go on with the next.
            text += &format!("== {}\n-- no result ({:?})\n", rest[0], out.status);
            rest.remove(0);
        } else {
            rest.drain(..ran);
        }
    }
    (text, problems)
}

#[test]
fn scenarios_match_the_kernel() {
    skip_unless_ready!();
    let t = OnePeer::new("cf").configured(Conf::DUAL);
    let Some(scen) = build_scen(&t.tmp.join("")) else {
        return;
    };
    let known_path = conformance_dir().join("known-differences.md");
    let known = parse_known(
        &std::fs::read_to_string(&known_path)
            .unwrap_or_else(|e| panic!("{}: {e}", known_path.display())),
    );

    let list = std::process::Command::new(&scen)
        .arg("list")
        .output()
        .expect("scen list");
    let mut names: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(String::from)
        .collect();
    for k in &known {
        assert!(
            names.contains(&k.scenario),
            "known-differences.md names {:?}, which is no scenario",
            k.scenario
        );
    }
    if let Ok(only) = std::env::var("WRAPGUARD_CONFORMANCE") {
        let only: Vec<&str> = only.split(',').map(str::trim).collect();
        names.retain(|n| only.contains(&n.as_str()));
    }
    assert!(!names.is_empty(), "no scenario selected");

    allow_ping_sockets(&t.client);
    let _server = t
        .peer
        .ns
        .spawn(&[&scen, "serve"], &t.tmp.join("server.log"));
    t.peer.ns.wait_tcp_listen(7000);

    let keep = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let started = Instant::now();
    let kernel_out = kernel_world(&t, &scen, &names);
    let _ = std::fs::write(keep.join("conformance-kernel.txt"), &kernel_out);
    eprintln!("kernel world: {:.1?}", started.elapsed());
    let kernel = sections(&kernel_out);

    let mut failures = Vec::new();
    let mut notes = Vec::new();
    // A scenario that does not run cleanly on the kernel tests nothing.
    for n in &names {
        match kernel.get(n) {
            Some(l) if l.last().map(String::as_str) == Some("-- exit 0") => {}
            Some(l) => failures.push(format!(
                "{n}: does not end cleanly under the kernel:\n    {}",
                l.join("\n    ")
            )),
            None => failures.push(format!("{n}: no output under the kernel")),
        }
    }

    let modes = std::env::var("WRAPGUARD_CONFORMANCE_MODES").unwrap_or_default();
    for (mode, flags) in MODES {
        if !modes.is_empty() && !modes.split(',').any(|m| m.trim() == mode) {
            continue;
        }
        let t0 = Instant::now();
        let mut rounds = 0;
        let (text, problems) = run_rounds(&names, |rest| {
            rounds += 1;
            let mut argv = vec![scen.as_str(), "client"];
            argv.extend(rest.iter().map(String::as_str));
            wrapguard_limit(&t.client, &t.conf, flags, &argv, WORLD_LIMIT_SECS)
        });
        let _ = std::fs::write(keep.join(format!("conformance-{mode}.txt")), &text);
        eprintln!(
            "{mode} world: {:.1?} in {rounds} wrapguard run(s)",
            t0.elapsed()
        );
        failures.extend(problems.iter().map(|p| format!("{mode}: {p}")));
        let ours = sections(&text);
        let empty = Vec::new();
        for n in &names {
            let k = kernel.get(n).unwrap_or(&empty);
            let o = ours.get(n);
            let listed = known
                .iter()
                .find(|r| &r.scenario == n && r.modes.iter().any(|m| m == mode));
            let same = o == Some(k);
            match (same, listed) {
                (true, Some(r)) => notes.push(format!(
                    "now conforms: remove {n} ({mode}) from known-differences.md (listed: {})",
                    r.reason
                )),
                (true, None) => {}
                (false, Some(r)) => {
                    notes.push(format!("known difference {n} ({mode}): {}", r.reason))
                }
                (false, None) => failures.push(match o {
                    Some(o) => format!(
                        "{n} ({mode}) differs from the kernel (- kernel, + {mode}):\n{}",
                        diff(k, o)
                    ),
                    None => format!("{n} ({mode}): no output under wrapguard"),
                }),
            }
        }
    }
    for n in &notes {
        eprintln!("{n}");
    }
    eprintln!(
        "{} scenarios, {} worlds, {:.1?}",
        names.len(),
        MODES.len() + 1,
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} unlisted differences (list a real one with its reason in {}):\n\n{}",
        failures.len(),
        known_path.display(),
        failures.join("\n")
    );
}

#[test]
fn known_differences_and_sections_parse() {
    let k = parse_known(
        "# t\n\n| scenario | modes | reason |\n|---|---|---|\n\
         | `a_b` | shim, seccomp | kernel says 1, we say 2 |\n| c | seccomp | IN\\|OUT, not OUT |\n",
    );
    assert_eq!(k.len(), 2);
    assert_eq!(k[0].scenario, "a_b");
    assert_eq!(k[0].modes, ["shim", "seccomp"]);
    assert_eq!(k[0].reason, "kernel says 1, we say 2");
    assert_eq!(k[1].modes, ["seccomp"]);
    assert_eq!(k[1].reason, "IN|OUT, not OUT");
    let s = sections("junk\n== one\nx: 1\n-- exit 0\n== two\n-- signal 11\n");
    assert_eq!(s.len(), 2);
    assert_eq!(s["one"], ["x: 1", "-- exit 0"]);
    assert_eq!(s["two"], ["-- signal 11"]);
    let d = diff(
        &["a".into(), "b".into(), "c".into()],
        &["a".into(), "x".into(), "c".into()],
    );
    assert_eq!(d, "      a\n    - b\n    + x\n      c\n");
}
