//! `wrapguard --doctor` and `wrapguard --self-test` as a user meets them:
//! a good config, a broken one, a missing shim, programs the shim cannot
//! enter (static, Go, setuid, 32-bit, missing, not executable), an
//! unreachable peer, a real peer (another wrapguard over loopback in a
//! private network namespace, and wireguard-go in namespaces of its own),
//! and the SIGUSR1 status report. Assertions are on the printed lines.

mod common;
#[macro_use]
mod wg;

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use wg::{show, TempDir};

/// `cmd.output()`, retried while the executable just copied for the test
/// is busy: another test thread may have forked while the copy's file was
/// open for writing, and its child holds that descriptor until it execs
/// (ETXTBSY, errno 26, in the meantime).
fn output_retrying(cmd: &mut Command) -> std::io::Result<Output> {
    let mut tries = 0;
    loop {
        match cmd.output() {
            Err(e) if e.raw_os_error() == Some(26) && tries < 200 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            r => return r,
        }
    }
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs `wrapguard args…` directly (nothing here sends a packet).
fn wrapguard(args: &[&OsStr]) -> Output {
    Command::new(&common::bins().wrapguard)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run wrapguard")
}

/// Whether `unshare -rn` (or `-n` as root) works here.
fn netns_ok() -> bool {
    common::in_netns(&[OsStr::new("true")])
        .status()
        .is_ok_and(|s| s.success())
}

macro_rules! skip_unless_netns {
    () => {
        if !netns_ok() {
            eprintln!(
                "SKIPPED: {}: cannot create a network namespace (unshare -rn)",
                module_path!()
            );
            return;
        }
    };
}

/// A key pair from our own genkey/pubkey.
fn keys() -> (String, String) {
    let b = common::bins();
    let out = Command::new(&b.wrapguard)
        .arg("genkey")
        .output()
        .expect("genkey");
    let private = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let mut c = Command::new(&b.wrapguard)
        .arg("pubkey")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("pubkey");
    c.stdin
        .take()
        .expect("stdin")
        .write_all(private.as_bytes())
        .expect("write");
    let out = c.wait_with_output().expect("pubkey output");
    (
        private,
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    )
}

/// Two configs that are each other's peer over loopback: `one` listens on
/// 51801 (10.88.0.1) and knows no endpoint, `two` (10.88.0.2) dials it.
/// Returns (one.conf, two.conf, two's public key).
fn pair(tmp: &TempDir) -> (PathBuf, PathBuf, String) {
    let (k1, p1) = keys();
    let (k2, p2) = keys();
    let one = tmp.write(
        "one.conf",
        &format!(
            "[Interface]\nPrivateKey = {k1}\nAddress = 10.88.0.1/24\nListenPort = 51801\n\n\
             [Peer]\nPublicKey = {p2}\nAllowedIPs = 10.88.0.2/32\n"
        ),
    );
    let two = tmp.write(
        "two.conf",
        &format!(
            "[Interface]\nPrivateKey = {k2}\nAddress = 10.88.0.2/24\nListenPort = 51802\n\n\
             [Peer]\nPublicKey = {p1}\nEndpoint = 127.0.0.1:51801\nAllowedIPs = 10.88.0.0/24\n"
        ),
    );
    (one, two, p2)
}

/// Inside a fresh network namespace: starts wrapguard with `one.conf`
/// running `server` (a shell command) in the background, waits until it
/// runs (and, if `ready` is given, until its output shows `ready`), then
/// runs `client` (a shell command; `$WG` is wrapguard, `$DIR` the temp
/// dir) and ends the server. The client's output is returned.
fn with_peer(tmp: &TempDir, server: &str, ready: Option<&str>, client: &str) -> Output {
    let script = format!(
        r#"
"$WG" --config "$DIR/one.conf" --log-level=debug -- {server} >"$DIR/one.out" 2>"$DIR/one.log" &
srv=$!
i=0
until grep -q 'Launching' "$DIR/one.log" 2>/dev/null; do
  i=$((i+1)); [ $i -gt 400 ] && {{ echo "server did not start" >&2; cat "$DIR/one.log" >&2; exit 99; }}
  sleep 0.05
done
if [ -n "$READY" ]; then
  i=0
  until grep -q "$READY" "$DIR/one.out" 2>/dev/null; do
    i=$((i+1)); [ $i -gt 400 ] && {{ echo "server not ready" >&2; exit 98; }}
    sleep 0.05
  done
fi
{client}
rc=$?
kill $srv 2>/dev/null
wait $srv 2>/dev/null
exit $rc
"#
    );
    let b = common::bins();
    common::in_netns(&[
        OsStr::new("timeout"),
        OsStr::new("90"),
        OsStr::new("sh"),
        OsStr::new("-c"),
        OsStr::new(&script),
    ])
    .env("WG", &b.wrapguard)
    .env("DIR", &tmp.path)
    .env("READY", ready.unwrap_or(""))
    .output()
    .expect("run in namespace")
}

fn lines_with<'a>(s: &'a str, level: &str) -> Vec<&'a str> {
    s.lines()
        .filter(|l| l.starts_with(&format!("{level:<4}  ")))
        .collect()
}

#[test]
fn doctor_good_config_and_program() {
    let tmp = TempDir::new();
    let (_, two, pub2) = pair(&tmp);
    let out = wrapguard(&[
        OsStr::new("--config"),
        two.as_os_str(),
        OsStr::new("--doctor"),
        OsStr::new("true"),
    ]);
    let t = text(&out);
    assert!(out.status.success(), "{}", show(&out));
    assert!(lines_with(&t, "fail").is_empty(), "{t}");
    assert!(lines_with(&t, "warn").is_empty(), "{t}");
    let shim = common::bins().shim.display().to_string();
    for want in [
        format!("ok    shim {shim} (64-bit"),
        format!("ok    shim {shim} loads into a program"),
        format!(
            "ok    config {} parsed: address 10.88.0.2/24, 1 peer",
            two.display()
        ),
        format!("our public key is {pub2}"),
        "endpoint 127.0.0.1:51801".to_string(),
        "UDP port 51802 (ListenPort) is free".to_string(),
        "is a dynamically linked 64-bit".to_string(),
        "the shim can enter it".to_string(),
        "doctor: all ".to_string(),
    ] {
        assert!(t.contains(&want), "missing {want:?} in:\n{t}");
    }
    // Every line is `ok|warn|fail  …` or the `doctor:` summary.
    for l in t.lines() {
        assert!(
            l.starts_with("ok    ")
                || l.starts_with("warn  ")
                || l.starts_with("fail  ")
                || l.starts_with("doctor: "),
            "odd line {l:?}"
        );
    }
}

#[test]
fn doctor_without_config_checks_the_shim_only() {
    let out = wrapguard(&[OsStr::new("--doctor")]);
    let t = text(&out);
    assert!(out.status.success(), "{}", show(&out));
    assert!(t.contains("loads into a program"), "{t}");
    assert!(
        t.contains("add --config wg0.conf to check a config too"),
        "{t}"
    );
}

#[test]
fn doctor_broken_configs_say_where_and_what_to_do() {
    let tmp = TempDir::new();
    let (k, ours) = keys();
    // A bad key: file:line, no secret shown, a fix.
    let bad = tmp.write(
        "bad.conf",
        "[Interface]\nPrivateKey = abc\nAddress = 10.0.0.2/24\n",
    );
    let out = wrapguard(&[
        OsStr::new("--config"),
        bad.as_os_str(),
        OsStr::new("--doctor"),
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let fails = lines_with(&t, "fail");
    assert_eq!(fails.len(), 1, "{t}");
    assert!(
        fails[0].starts_with(&format!("fail  {}:2: invalid PrivateKey", bad.display())),
        "{t}"
    );
    assert!(fails[0].contains("  — "), "a fix after the dash: {t}");
    assert!(t.contains("doctor: 1 failed"), "{t}");

    // Missing file.
    let missing = tmp.join("nope.conf");
    let out = wrapguard(&[
        OsStr::new("--config"),
        missing.as_os_str(),
        OsStr::new("--doctor"),
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        t.contains(&format!("fail  cannot read config {}", missing.display())),
        "{t}"
    );
    assert!(t.contains("check the path given to --config"), "{t}");

    // Readable by others, a peer with our own key, a wg-quick key: warn/fail with fixes.
    let odd = tmp.write(
        "odd.conf",
        &format!(
            "[Interface]\nPrivateKey = {k}\nAddress = 10.0.0.2/24\nPostUp = iptables -A x\n\n\
             [Peer]\nPublicKey = {ours}\nAllowedIPs = 10.0.0.0/24\n"
        ),
    );
    std::fs::set_permissions(&odd, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = wrapguard(&[
        OsStr::new("--config"),
        odd.as_os_str(),
        OsStr::new("--doctor"),
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains(&format!(
            "warn  config {0} holds a private key and other users can read it (mode 0644)  — chmod 600 {0}",
            odd.display()
        )),
        "{t}"
    );
    assert!(
        t.contains(&format!(
            "warn  {}:4: PostUp is a wg-quick setting",
            odd.display()
        )),
        "{t}"
    );
    assert!(
        t.contains(&format!(
            "fail  {}:6: this [Peer]'s PublicKey is our own public key",
            odd.display()
        )),
        "{t}"
    );
}

#[test]
fn doctor_unresolvable_endpoint_fails_with_the_line() {
    skip_unless_netns!();
    let tmp = TempDir::new();
    let (k, _) = keys();
    let (_, p) = keys();
    let conf = tmp.write(
        "wg0.conf",
        &format!(
            "[Interface]\nPrivateKey = {k}\nAddress = 10.0.0.2/24\n\n[Peer]\nPublicKey = {p}\n\
             Endpoint = no-such-host.invalid:51820\nAllowedIPs = 10.0.0.0/24\n"
        ),
    );
    let b = common::bins();
    // In a namespace with no route out: the lookup fails here, nothing leaves.
    let out = common::in_netns(&[
        b.wrapguard.as_os_str(),
        OsStr::new("--config"),
        conf.as_os_str(),
        OsStr::new("--doctor"),
    ])
    .output()
    .expect("run");
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        t.contains(&format!(
            "fail  {}:5: cannot resolve the Endpoint no-such-host.invalid:51820 of peer",
            conf.display()
        )),
        "{t}"
    );
    assert!(
        t.contains("— check the name and your DNS, or use an IP address"),
        "{t}"
    );
}

#[test]
fn missing_shim_is_reported_by_doctor_self_test_and_launch() {
    let b = common::bins();
    let tmp = TempDir::new();
    let exe = tmp.join("wrapguard");
    std::fs::copy(&b.wrapguard, &exe).expect("copy the binary alone");
    let expected = tmp.join("libwrapguard.so");
    let out = output_retrying(Command::new(&exe).arg("--doctor")).expect("doctor");
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        t.contains(&format!("fail  shim {} not found", expected.display())),
        "{t}"
    );
    assert!(t.contains("copy or install them together"), "{t}");

    let (_, two, _) = pair(&tmp);
    let out = output_retrying(Command::new(&exe).args([
        OsStr::new("--config"),
        two.as_os_str(),
        OsStr::new("--self-test"),
    ]))
    .expect("self-test");
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        t.contains("fail  libwrapguard.so not found next to the wrapguard binary"),
        "{t}"
    );
    assert!(t.contains("self-test: FAILED"), "{t}");

    // A normal run: one line on stderr, nothing launched.
    let out = output_retrying(Command::new(&exe).args([
        OsStr::new("--config"),
        two.as_os_str(),
        OsStr::new("--"),
        OsStr::new("echo"),
        OsStr::new("LAUNCHED"),
    ]))
    .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("\"level\":\"error\""))
        .collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(errors[0].contains("keep the two files together"), "{err}");
}

/// `doctor PROGRAM` output for a program file.
fn doctor_program(p: &Path) -> String {
    doctor_program_with(p, &[])
}

/// `doctor [flags] PROGRAM` output for a program file.
fn doctor_program_with(p: &Path, flags: &[&str]) -> String {
    let mut args: Vec<&OsStr> = flags.iter().map(OsStr::new).collect();
    args.push(OsStr::new("--doctor"));
    args.push(p.as_os_str());
    let out = wrapguard(&args);
    let t = text(&out);
    let fails = !lines_with(&t, "fail").is_empty();
    assert_eq!(out.status.code(), Some(i32::from(fails)), "{t}");
    t
}

#[test]
fn doctor_refuses_a_static_binary() {
    let tmp = TempDir::new();
    let src = tmp.write(
        "hello.c",
        "#include <stdio.h>\nint main(void){puts(\"hi\");return 0;}\n",
    );
    let bin = tmp.join("hello-static");
    let built = Command::new("gcc")
        .args(["-static", "-o"])
        .arg(&bin)
        .arg(&src)
        .output();
    if !built.as_ref().is_ok_and(|o| o.status.success()) {
        eprintln!("SKIPPED: doctor_refuses_a_static_binary: gcc -static failed (gcc or static libc missing: apt-get install gcc libc6-dev)");
        return;
    }
    // The shim alone cannot carry it: refused.
    let t = doctor_program_with(&bin, &["--mode=preload"]);
    assert!(
        t.contains(&format!(
            "fail  {} is statically linked (no program interpreter)",
            bin.display()
        )),
        "{t}"
    );
    assert!(t.contains("— use a dynamically linked build"), "{t}");
    assert!(
        t.contains(&format!("fail  mode for {}: none", bin.display())),
        "{t}"
    );
    // auto (the default) and seccomp: seccomp mode carries it.
    for flags in [&[][..], &["--mode=seccomp"][..]] {
        let t = doctor_program_with(&bin, flags);
        assert!(
            t.contains(&format!(
                "ok    {} is statically linked (no program interpreter): the shim cannot enter it, seccomp mode carries it",
                bin.display()
            )),
            "{t}"
        );
        assert!(
            t.contains(&format!("ok    mode for {}: seccomp", bin.display())),
            "{t}"
        );
        assert!(lines_with(&t, "fail").is_empty(), "{t}");
    }
    // The same source linked dynamically is fine.
    let dynbin = tmp.join("hello-dyn");
    let st = Command::new("gcc")
        .arg("-o")
        .arg(&dynbin)
        .arg(&src)
        .status()
        .expect("gcc");
    assert!(st.success());
    let t = doctor_program(&dynbin);
    assert!(t.contains("the shim can enter it"), "{t}");
    assert!(
        t.contains(&format!("ok    mode for {}: preload", dynbin.display())),
        "{t}"
    );
    assert!(lines_with(&t, "fail").is_empty(), "{t}");
    // Forced into seccomp mode, a dynamic program gets it too.
    let t = doctor_program_with(&dynbin, &["--mode=seccomp"]);
    assert!(
        t.contains(&format!("ok    mode for {}: seccomp", dynbin.display())),
        "{t}"
    );
}

#[test]
fn doctor_refuses_go_setuid_32_bit_missing_and_non_executable() {
    let tmp = TempDir::new();
    // Go: wireguard-go is one (skip that part if it is not installed).
    if let Ok(go) = inspect_path("wireguard-go") {
        let t = doctor_program_with(&go, &["--mode=preload"]);
        assert!(
            t.contains(&format!("fail  {} is a Go program", go.display())),
            "{t}"
        );
        let t = doctor_program(&go);
        assert!(
            t.contains(&format!(
                "ok    {} is a Go program: the shim cannot enter it, seccomp mode carries it",
                go.display()
            )),
            "{t}"
        );
        assert!(
            t.contains(&format!("ok    mode for {}: seccomp", go.display())),
            "{t}"
        );
    } else {
        eprintln!("SKIPPED (part): wireguard-go not installed, no Go binary to check");
    }

    // 32-bit: a minimal i386 ELF header asking for /lib/ld-linux.so.2.
    let elf32 = tmp.join("prog32");
    std::fs::write(&elf32, elf32_image()).expect("write");
    std::fs::set_permissions(&elf32, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let t = doctor_program(&elf32);
    assert!(
        t.contains(&format!(
            "fail  {} is 32-bit i386, the shim is 64-bit",
            elf32.display()
        )),
        "{t}"
    );
    // Neither mode carries it, auto or forced.
    for flags in [&[][..], &["--mode=seccomp"][..]] {
        let t = doctor_program_with(&elf32, flags);
        assert!(
            t.contains(&format!("fail  mode for {}: none", elf32.display())),
            "{t}"
        );
    }

    // Missing, on PATH and by path.
    let t = doctor_program(Path::new("no-such-program-xyz"));
    assert!(
        t.contains("fail  command no-such-program-xyz: no-such-program-xyz not found on PATH"),
        "{t}"
    );
    let t = doctor_program(&tmp.join("absent"));
    assert!(t.contains("does not exist"), "{t}");

    // Not executable.
    let script = tmp.write("s.sh", "#!/bin/sh\necho hi\n");
    let t = doctor_program(&script);
    assert!(
        t.contains(&format!(
            "fail  {} is not executable (mode 0600)  — chmod +x",
            script.display()
        )),
        "{t}"
    );
    // A script whose interpreter is missing.
    let script2 = tmp.join("s2.sh");
    std::fs::write(&script2, "#!/no/such/interp\n").expect("write");
    std::fs::set_permissions(&script2, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let t = doctor_program(&script2);
    assert!(t.contains("fail  /no/such/interp does not exist"), "{t}");
    // A good script: followed to its interpreter.
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let t = doctor_program(&script);
    assert!(t.contains("is a script for /bin/sh"), "{t}");
    assert!(lines_with(&t, "fail").is_empty(), "{t}");

    // setuid to another user (needs root to chown).
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        let su = tmp.join("true-setuid");
        std::fs::copy("/bin/true", &su).expect("copy /bin/true");
        std::os::unix::fs::chown(&su, Some(65534), None).expect("chown");
        std::fs::set_permissions(&su, std::fs::Permissions::from_mode(0o4755)).expect("chmod");
        let t = doctor_program(&su);
        assert!(
            t.contains(&format!(
                "fail  {} is set-user-ID: the loader ignores LD_PRELOAD for it",
                su.display()
            )),
            "{t}"
        );
    } else {
        eprintln!("SKIPPED (part): not root, cannot make a setuid file of another user");
    }
}

fn inspect_path(name: &str) -> Result<PathBuf, ()> {
    let path = std::env::var_os("PATH").ok_or(())?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or(())
}

/// ELF32 little-endian i386 executable header with one PT_INTERP.
fn elf32_image() -> Vec<u8> {
    let interp = b"/lib/ld-linux.so.2\0";
    let mut b = vec![0u8; 84];
    b[..7].copy_from_slice(b"\x7fELF\x01\x01\x01");
    b[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    b[18..20].copy_from_slice(&3u16.to_le_bytes()); // EM_386
    b[20..24].copy_from_slice(&1u32.to_le_bytes());
    b[28..32].copy_from_slice(&52u32.to_le_bytes()); // e_phoff
    b[40..42].copy_from_slice(&52u16.to_le_bytes());
    b[42..44].copy_from_slice(&32u16.to_le_bytes()); // e_phentsize
    b[44..46].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
    b[52..56].copy_from_slice(&3u32.to_le_bytes()); // PT_INTERP
    b[56..60].copy_from_slice(&84u32.to_le_bytes());
    b[68..72].copy_from_slice(&(interp.len() as u32).to_le_bytes());
    b.extend_from_slice(interp);
    b
}

#[test]
fn self_test_passes_against_a_wrapguard_peer_refused_and_connected() {
    skip_unless_netns!();
    let tmp = TempDir::new();
    let (_, _, _) = pair(&tmp);
    // Port 9 is closed on the peer: refused, which proves the path.
    let out = with_peer(
        &tmp,
        "sleep 60",
        None,
        r#""$WG" --config "$DIR/two.conf" --self-test"#,
    );
    let t = text(&out);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        t.contains("ok    tunnel started: address 10.88.0.2/24, 1 peer"),
        "{t}"
    );
    let hs: Vec<&str> = t
        .lines()
        .filter(|l| l.contains("handshake with peer"))
        .collect();
    assert_eq!(hs.len(), 1, "{t}");
    assert!(
        hs[0].starts_with("ok    handshake with peer ") && hs[0].contains(" at 127.0.0.1:51801: "),
        "{t}"
    );
    assert!(hs[0].ends_with(" ms round trip"), "{t}");
    assert!(
        t.contains(
            "ok    intercepted connect to 10.88.0.1:9: refused by the far side through the tunnel"
        ),
        "{t}"
    );
    assert!(t.contains("self-test: passed"), "{t}");
    // The peer really saw our handshake.
    let peer_log = std::fs::read_to_string(tmp.join("one.log")).unwrap_or_default();
    assert!(
        peer_log.contains("handshake initiation received"),
        "{peer_log}"
    );

    // A listening server on the peer: connected, and the program saw our tunnel address.
    let tmp = TempDir::new();
    let _ = pair(&tmp);
    let out = with_peer(
        &tmp,
        "python3 -u -m http.server 8080 --bind 0.0.0.0",
        Some("Serving HTTP"),
        r#""$WG" --config "$DIR/two.conf" --self-test --self-test-connect 10.88.0.1:8080"#,
    );
    let t = text(&out);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        t.contains("ok    intercepted connect to 10.88.0.1:8080: connected through the tunnel (the program saw itself as 10.88.0.2:"),
        "{t}"
    );
    let peer_log = std::fs::read_to_string(tmp.join("one.log")).unwrap_or_default();
    assert!(
        peer_log.contains("tunnel connection accepted"),
        "{peer_log}"
    );
}

#[test]
fn self_test_unreachable_peer_fails_with_a_handshake_timeout() {
    skip_unless_netns!();
    let tmp = TempDir::new();
    let (_, two, pub2) = pair(&tmp);
    let b = common::bins();
    // Nobody listens on 127.0.0.1:51801 in this namespace.
    let started = std::time::Instant::now();
    let out = common::in_netns(&[
        b.wrapguard.as_os_str(),
        OsStr::new("--config"),
        two.as_os_str(),
        OsStr::new("--self-test"),
        OsStr::new("--self-test-timeout"),
        OsStr::new("2"),
    ])
    .output()
    .expect("run");
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        t.contains("at 127.0.0.1:51801: handshake timeout, no answer within 2 s  — check that the peer runs and lists our public key"),
        "{t}"
    );
    assert!(t.contains(&pub2), "our public key in the fix: {t}");
    assert!(
        t.contains("warn  intercepted connection not tried: no peer completed a handshake"),
        "{t}"
    );
    assert!(t.contains("self-test: FAILED (1 of 4 steps failed)"), "{t}");
    // Bounded: well under the default retry schedule (90 s).
    assert!(started.elapsed() < std::time::Duration::from_secs(40));
}

#[test]
fn self_test_broken_config_fails_before_the_tunnel() {
    let tmp = TempDir::new();
    let bad = tmp.write("bad.conf", "[Interface]\nAddress = 10.0.0.2/24\n");
    let out = wrapguard(&[
        OsStr::new("--config"),
        bad.as_os_str(),
        OsStr::new("--self-test"),
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(t.contains("ok    shim "), "{t}");
    assert!(
        t.contains(&format!("fail  tunnel did not start: {}:1:", bad.display())),
        "{t}"
    );
    assert!(t.contains("PrivateKey"), "{t}");
    assert!(
        t.contains(&format!("— wrapguard --doctor --config {}", bad.display())),
        "{t}"
    );
}

#[test]
fn sigusr1_logs_a_status_line_per_peer_and_exit_logs_it_at_debug() {
    skip_unless_netns!();
    let tmp = TempDir::new();
    let _ = pair(&tmp);
    let client = r#"
"$WG" --config "$DIR/two.conf" --log-level=debug -- python3 -c '
import socket, sys, time
s = socket.create_connection(("10.88.0.1", 8080), timeout=20)
s.sendall(b"GET / HTTP/1.0\r\n\r\n")
data = s.recv(100)
print("READY", len(data), flush=True)
time.sleep(4)
' >"$DIR/two.out" 2>"$DIR/two.log" &
cli=$!
i=0
until grep -q READY "$DIR/two.out" 2>/dev/null; do
  i=$((i+1)); [ $i -gt 400 ] && { echo "client not ready" >&2; cat "$DIR/two.log" >&2; exit 97; }
  sleep 0.05
done
kill -USR1 $cli
wait $cli
"#;
    let out = with_peer(
        &tmp,
        "python3 -u -m http.server 8080 --bind 0.0.0.0",
        Some("Serving HTTP"),
        client,
    );
    let log = std::fs::read_to_string(tmp.join("two.log")).unwrap_or_default();
    assert!(out.status.success(), "{}\n--- two.log\n{log}", show(&out));
    let info: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\"level\":\"info\"") && l.contains("\"message\":\"Status: peer "))
        .collect();
    assert_eq!(info.len(), 1, "{log}");
    let l = info[0];
    for want in [
        "endpoint 127.0.0.1:51801, latest handshake ",
        " seconds ago, transfer ",
        " received, ",
        " sent, 1 active flow\"",
        "\"active_flows\":1",
    ] {
        assert!(l.contains(want), "missing {want:?} in {l}");
    }
    assert!(!l.contains("\"rx_bytes\":0,"), "bytes were received: {l}");
    assert!(
        log.contains("\"message\":\"Status: 1 peer, 1 active flow\""),
        "{log}"
    );
    // At exit, at debug level.
    assert!(
        log.lines().any(|l| l.contains("\"level\":\"debug\"") && l.contains("\"message\":\"Status: peer ")),
        "{log}"
    );
    // The program kept running through the signal (it was not forwarded).
    let cout = std::fs::read_to_string(tmp.join("two.out")).unwrap_or_default();
    assert!(cout.contains("READY"), "{cout}");
    assert!(
        log.contains("\"message\":\"Child exited\",\"code\":0"),
        "{log}"
    );
}

#[test]
fn self_test_against_wireguard_go() {
    skip_unless_ready!();
    let tmp = TempDir::new();
    let client = wg::Netns::new("d");
    let (ours_private, ours_public) = keys();
    let peer = wg::WgPeer::new(
        &client,
        &tmp,
        wg::PeerSetup {
            index: 1,
            our_public: &ours_public,
            our_allowed: "10.77.0.2/32",
            our_endpoint: None,
            extra_addrs: &[],
            extra_peer_args: &[],
        },
    );
    let conf = tmp.write(
        "wg0.conf",
        &format!(
            "[Interface]\nPrivateKey = {ours_private}\nAddress = 10.77.0.2/24\n\n\
             [Peer]\nPublicKey = {}\nEndpoint = {}\nAllowedIPs = 10.77.0.0/24\n",
            peer.keys.public,
            peer.endpoint()
        ),
    );
    let b = common::bins();
    let wgb = b.wrapguard.display().to_string();
    let c = conf.display().to_string();
    let out = client.run(&["timeout", "60", &wgb, "--config", &c, "--self-test"]);
    let t = text(&out);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        t.contains(&format!(" at {}: ", peer.endpoint())) && t.contains(" ms round trip"),
        "{t}"
    );
    // wireguard-go's kernel answers port 9 with a reset through the tunnel.
    assert!(
        t.contains(
            "ok    intercepted connect to 10.77.0.1:9: refused by the far side through the tunnel"
        ),
        "{t}"
    );
    // The peer saw our handshake and our tunnel traffic.
    let hs = peer.wg_show("latest-handshakes");
    assert!(hs.contains(&ours_public), "{hs}");
    let transfer = peer.wg_show("transfer");
    let rx: u64 = transfer
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(rx > 0, "wireguard-go received nothing from us: {transfer}");
}
