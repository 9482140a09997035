//! `examples/demo.sh` (two wrapguard instances as each other's peers over
//! loopback inside `unshare -rn`) runs and the page comes back; and the
//! `genkey`/`pubkey` helpers agree with wireguard-tools when it is there.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use wrapguard_testnet::{unshare_ok, Wrapguard};

#[test]
fn demo_script_fetches_page_through_two_wrapguards() {
    if !unshare_ok("-rn") {
        eprintln!("SKIPPED: demo: `unshare -rn` is not permitted here (user namespaces disabled)");
        return;
    }
    let b = Wrapguard::under_test();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/demo.sh");
    let out = Command::new("timeout")
        .arg("60")
        .arg("sh")
        .arg(&script)
        .env("WRAPGUARD", &b.bin)
        .stdin(Stdio::null())
        .output()
        .expect("run examples/demo.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("hello through wrapguard"),
        "status {:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    assert!(
        stderr.contains("10.88.0.2 - - "),
        "server log line:\n{stderr}"
    );
}

fn pubkey_of(tool: &Path, args: &[&str], private: &str) -> String {
    let mut c = Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn pubkey");
    c.stdin
        .take()
        .expect("stdin")
        .write_all(format!("{private}\n").as_bytes())
        .expect("write key");
    let out = c.wait_with_output().expect("pubkey output");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn genkey_and_pubkey_match_wireguard_tools() {
    let b = Wrapguard::under_test();
    let out = Command::new(&b.bin)
        .arg("genkey")
        .output()
        .expect("wrapguard genkey");
    assert!(out.status.success());
    let private = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(private.len(), 44, "base64 of 32 bytes: {private:?}");
    let ours = pubkey_of(&b.bin, &["pubkey"], &private);
    assert_eq!(ours.len(), 44);
    // A fixed vector: the key pair from the router crate's docs.
    let fixed = pubkey_of(
        &b.bin,
        &["pubkey"],
        "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=",
    );
    let has_wg = Command::new("wg").arg("--version").output().is_ok();
    if has_wg {
        assert_eq!(ours, pubkey_of(Path::new("wg"), &["pubkey"], &private));
        let theirs = pubkey_of(
            Path::new("wg"),
            &["pubkey"],
            "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=",
        );
        assert_eq!(fixed, theirs);
    } else {
        eprintln!("SKIPPED (part): wg not installed, no cross-check with wireguard-tools");
    }
    // Garbage on stdin: one clear line, non-zero exit.
    let mut c = Command::new(&b.bin)
        .arg("pubkey")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    c.stdin
        .take()
        .expect("stdin")
        .write_all(b"not a key\n")
        .expect("write");
    let out = c.wait_with_output().expect("output");
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
}
