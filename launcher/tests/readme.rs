//! README.md is checked against the binary: every flag in its table is in
//! `wrapguard --help` and the other way round, every config key in its table
//! is an active line of `example-wg0.conf` and the other way round, every
//! command shown in a code block is run by a test (named in [`EXERCISED`]),
//! and the ones cheap to run are run here (help, completions, genkey,
//! pubkey, the doctor on a copy of the example config).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use wrapguard_testnet::Wrapguard;

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
        .expect("README.md")
}

fn example() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../example-wg0.conf"))
        .expect("example-wg0.conf")
}

fn help() -> String {
    help_of(&[])
}

/// `wrapguard [sub…] --help`.
fn help_of(sub: &[&str]) -> String {
    let out = Command::new(&Wrapguard::under_test().bin)
        .args(sub)
        .arg("--help")
        .output()
        .expect("wrapguard --help");
    assert!(out.status.success(), "{sub:?} --help failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The subcommands of shared tunnels, each with its own `--help`.
const TUNNEL_COMMANDS: [&str; 5] = ["up", "exec", "status", "ls", "down"];

/// `--long-flag` tokens in `s`.
fn long_flags(s: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i + 2 < b.len() {
        let boundary = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'-');
        if boundary && b[i] == b'-' && b[i + 1] == b'-' && b[i + 2].is_ascii_lowercase() {
            let mut j = i + 2;
            while j < b.len() && (b[j].is_ascii_lowercase() || b[j] == b'-') {
                j += 1;
            }
            out.insert(s[i..j].trim_end_matches('-').to_string());
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

/// The rows of the README's flag table (between `| flag | meaning |` and
/// the next blank line).
fn flag_rows(readme: &str) -> Vec<String> {
    readme
        .lines()
        .skip_while(|l| !l.starts_with("| flag | meaning |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(str::to_string)
        .collect()
}

#[test]
fn every_flag_in_the_readme_is_in_help_and_back() {
    let readme = readme();
    let rows = flag_rows(&readme);
    assert!(rows.len() >= 10, "flag table not found: {rows:?}");
    let documented: BTreeSet<String> = rows.iter().flat_map(|r| long_flags(r)).collect();
    let help = help();
    let options = help
        .split("Options:")
        .nth(1)
        .and_then(|o| o.split("Examples:").next())
        .expect("an Options section in --help");
    let offered: BTreeSet<String> = options
        .lines()
        .filter(|l| l.trim_start().starts_with('-'))
        .flat_map(|l| long_flags(l.split("  ").find(|p| !p.is_empty()).unwrap_or(l)))
        .collect();
    // A flag of a subcommand's row is in that subcommand's help.
    let mut all_help = help.clone();
    for sub in TUNNEL_COMMANDS {
        all_help.push_str(&help_of(&[sub]));
    }
    for f in &documented {
        assert!(
            all_help.contains(f.as_str()),
            "README documents {f}, no --help does:\n{all_help}"
        );
    }
    for f in &offered {
        assert!(
            documented.contains(f),
            "--help offers {f}, the README's flag table does not document it"
        );
    }
    // The helpers (subcommands) too.
    let commands = help
        .split("Commands:")
        .nth(1)
        .and_then(|c| c.split("Arguments:").next())
        .expect("Commands in --help");
    for sub in [
        "genkey",
        "pubkey",
        "completions",
        "up",
        "exec",
        "status",
        "ls",
        "down",
    ] {
        assert!(commands.contains(sub), "{sub} missing from --help");
        assert!(
            rows.iter().any(|r| r.starts_with(&format!("| `{sub}"))),
            "{sub} missing from the README's table"
        );
    }
    // Help has examples.
    assert!(
        help.contains("Examples:\n  wrapguard --config wg0.conf -- curl"),
        "{help}"
    );
}

#[test]
fn every_config_key_is_documented_and_in_the_example() {
    let readme = readme();
    let documented: BTreeSet<String> = readme
        .lines()
        .filter(|l| l.starts_with("| Interface | `") || l.starts_with("| Peer | `"))
        .filter_map(|l| l.split('`').nth(1).map(str::to_string))
        .collect();
    let active: BTreeSet<String> = example()
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with('[') && l.contains('='))
        .filter_map(|l| l.split('=').next().map(|k| k.trim().to_string()))
        .collect();
    let want: BTreeSet<String> = [
        "PrivateKey",
        "Address",
        "ListenPort",
        "DNS",
        "MTU",
        "PublicKey",
        "PresharedKey",
        "Endpoint",
        "AllowedIPs",
        "PersistentKeepalive",
        "Route",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(documented, want, "README key table");
    assert_eq!(active, want, "active keys in example-wg0.conf");
}

/// Each command the README shows in a code block, by prefix, and what runs it.
const EXERCISED: &[(&str, &str)] = &[
    (
        "cargo build --release",
        ".ci/run (README quick start section)",
    ),
    ("examples/demo.sh", ".ci/run and tests/demo.rs"),
    (
        "export PATH=",
        "every test here runs target/…/wrapguard by its path, as this line makes `wrapguard` mean",
    ),
    ("cargo test --workspace", ".ci/run"),
    (
        "cargo bench -p wrapguard-benches",
        "built by cargo clippy --all-targets in .ci/run",
    ),
    ("wrapguard genkey", "here and tests/demo.rs"),
    ("wrapguard pubkey", "here and tests/demo.rs"),
    ("wrapguard completions", "here"),
    (
        "mkdir -p ~/.local/share/bash-completion/completions",
        "the completion install step (here: bash -n on the script)",
    ),
    ("cp example-wg0.conf wg0.conf", "here"),
    (
        "wrapguard --config wg0.conf --doctor curl",
        "here and tests/doctor.rs",
    ),
    (
        "wrapguard --config wg0.conf --self-test",
        "tests/doctor.rs self_test_*",
    ),
    (
        "wrapguard --config wg0.conf -- curl http://10.77.0.1:8080/",
        "tests/e2e_wireguard_go.rs curl_fetches_token_and_server_sees_tunnel_address",
    ),
    (
        "wrapguard --config wg0.conf -- ping -c 3 10.77.0.1",
        "tests/e2e_icmp.rs ping_v4_and_v6_through_raw_sockets_as_root, …_ping_sockets",
    ),
    (
        "wrapguard --config wg0.conf -- python3 -m http.server 8080",
        "tests/e2e_wireguard_go.rs (wrapped servers reached from the peer)",
    ),
    (
        "wrapguard --config wg0.conf --socks5 127.0.0.1:1080",
        "tests/e2e_proxy.rs (curl --socks5-hostname, credentials)",
    ),
    (
        "wrapguard --config wg0.conf --http-proxy 127.0.0.1:3128",
        "tests/e2e_proxy.rs socks5_and_http_proxies_*",
    ),
    (
        "wrapguard --config wg0.conf --forward tcp:",
        "tests/e2e_proxy.rs a_forward_carries_iperf3_*",
    ),
    (
        "wrapguard --config wg0.conf --reverse tcp:",
        "tests/e2e_proxy.rs a_forward_carries_iperf3_and_a_reverse_forward_*",
    ),
    (
        "wrapguard up --config wg0.conf",
        "tests/e2e_share.rs up_exec_status_ls_down",
    ),
    (
        "wrapguard exec wg0 -- ",
        "tests/e2e_share.rs (curl by name, a listening python, EADDRINUSE across instances)",
    ),
    (
        "wrapguard pid ",
        "a line of the status sample, not a command (tests/e2e_share.rs reads status output)",
    ),
    (
        "wrapguard status wg0",
        "tests/e2e_share.rs up_exec_status_ls_down",
    ),
    (
        "wrapguard down wg0",
        "tests/e2e_share.rs (down during a transfer)",
    ),
];

#[test]
fn every_command_in_the_readme_is_exercised() {
    let readme = readme();
    let help = help();
    let mut in_fence = false;
    let mut seen = 0;
    for raw in readme.lines() {
        if raw.starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        let code = in_fence || raw.starts_with("    ");
        if !code {
            continue;
        }
        let line = raw.trim_start();
        let line = line.strip_prefix("$ ").unwrap_or(line);
        let is_command = [
            "wrapguard ",
            "cargo ",
            "examples/",
            "cp ",
            "export ",
            "mkdir ",
        ]
        .iter()
        .any(|p| line.starts_with(p));
        if !is_command {
            continue;
        }
        seen += 1;
        // Synopsis lines must match --help's usage.
        if line.contains("<PATH>") || line.contains("<NAME>") {
            assert!(
                help.contains(line),
                "README synopsis {line:?} is not in --help"
            );
            continue;
        }
        if line.starts_with("wrapguard completions bash|")
            || line == "wrapguard pubkey < private.key"
        {
            continue;
        }
        assert!(
            EXERCISED.iter().any(|(p, _)| line.starts_with(p)),
            "README command {line:?} is not exercised by any test: add one, and list it in EXERCISED"
        );
    }
    assert!(seen >= 10, "README code blocks not found ({seen} commands)");
    // And CI really runs the quick start.
    let ci = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ci/run"))
        .expect(".ci/run");
    assert!(
        ci.contains("cargo build --release"),
        ".ci/run must build the quick start"
    );
    assert!(ci.contains("examples/demo.sh"), ".ci/run must run the demo");
}

#[test]
fn completions_for_each_shell() {
    let b = Wrapguard::under_test();
    for (shell, marker) in [
        ("bash", "_wrapguard()"),
        ("zsh", "#compdef wrapguard"),
        ("fish", "complete -c wrapguard"),
    ] {
        let out = Command::new(&b.bin)
            .args(["completions", shell])
            .output()
            .expect("completions");
        let t = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{shell}");
        assert!(t.contains(marker), "{shell}: {marker} missing");
        assert!(
            t.contains("doctor") && t.contains("self-test"),
            "{shell}: flags missing"
        );
    }
    // The bash script is valid bash.
    let out = Command::new(&b.bin)
        .args(["completions", "bash"])
        .output()
        .expect("completions");
    let mut c = Command::new("bash")
        .arg("-n")
        .stdin(Stdio::piped())
        .spawn()
        .expect("bash");
    c.stdin
        .take()
        .expect("stdin")
        .write_all(&out.stdout)
        .expect("write");
    assert!(c.wait().expect("bash -n").success());
    // An unknown shell: one clear error.
    let out = Command::new(&b.bin)
        .args(["completions", "tcsh"])
        .output()
        .expect("completions");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("wrapguard: invalid value 'tcsh'"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    // Other command-line mistakes: one line each, status 2.
    for args in [
        &["--config", "x.conf"][..],
        &["--config", "x.conf", "curl"][..],
        &["--route", "bad", "--config", "x", "--", "true"][..],
        &["--self-test"][..],
    ] {
        let out = Command::new(&b.bin).args(args).output().expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("wrapguard: ") && err.trim_end().ends_with("; see wrapguard --help"),
            "{err}"
        );
    }
}

#[test]
fn quick_start_config_steps_work_on_the_example() {
    let b = Wrapguard::under_test();
    let dir = std::env::temp_dir().join(format!("wg-readme-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    // `wrapguard genkey > wg0.key`, `wrapguard pubkey < wg0.key`
    let out = Command::new(&b.bin).arg("genkey").output().expect("genkey");
    assert!(out.status.success());
    std::fs::write(dir.join("wg0.key"), &out.stdout).expect("key");
    let out = Command::new(&b.bin)
        .arg("pubkey")
        .stdin(std::fs::File::open(dir.join("wg0.key")).expect("open key"))
        .output()
        .expect("pubkey");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim().len(), 44);
    // `cp example-wg0.conf wg0.conf` (not yet chmod'ed: the doctor says so).
    let conf = dir.join("wg0.conf");
    std::fs::write(&conf, example()).expect("copy");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = Command::new(&b.bin)
        .current_dir(&dir)
        .args(["--config", "wg0.conf", "--doctor", "curl"])
        .output()
        .expect("doctor");
    let t = String::from_utf8_lossy(&out.stdout);
    assert!(
        t.contains("warn  config wg0.conf holds a private key and other users can read it (mode 0644)  — chmod 600 wg0.conf"),
        "{t}"
    );
    assert!(
        t.contains("ok    config wg0.conf parsed: address 10.150.0.2/24, fd00:150::2/64, 1 peer"),
        "{t}"
    );
    assert!(
        t.contains("warn  wg0.conf uses the private key of example-wg0.conf, which everyone can read  — make your own: wrapguard genkey"),
        "{t}"
    );
    assert!(!t.contains("\nfail  ") && !t.starts_with("fail"), "{t}");
    assert!(out.status.success(), "{t}");
    let _ = std::fs::remove_dir_all(&dir);
}
