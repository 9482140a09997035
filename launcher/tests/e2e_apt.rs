//! `apt-get update` from a repository behind the tunnel (issue 25 item 8):
//! apt runs its http method as user `_apt` (`setresuid(42, …)`), which can
//! no longer reach the engine's socket in root's 0700 directory; through
//! the process's hold it keeps the tunnel. A flat repository served by the
//! wireguard-go peer, apt with lists and cache of the test's own (nothing
//! of the host's apt state is touched). Needs root, wireguard-go,
//! wireguard-tools, apt-get, dpkg-deb and a user `_apt`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use wrapguard_testnet::{on_path, read, show, skip_unless_ready, token, wrapguard, Conf, OnePeer};

/// A directory `_apt` may enter and write (apt chowns `partial/` to it).
fn open_dir(p: &Path) {
    std::fs::create_dir_all(p).expect("mkdir");
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// A flat repository in `repo`: one tiny package whose description
/// carries `tok`, and its `Packages` index.
fn repository(repo: &Path, tok: &str) {
    let pkg = repo.join("pkg");
    std::fs::create_dir_all(pkg.join("DEBIAN")).expect("DEBIAN");
    let control = format!(
        "Package: wgtok\nVersion: 1.0\nArchitecture: all\nMaintainer: test <t@example.invalid>\n\
         Description: {tok}\n"
    );
    std::fs::write(pkg.join("DEBIAN/control"), &control).expect("control");
    let deb = repo.join("wgtok_1.0_all.deb");
    let out = Command::new("dpkg-deb")
        .args(["--build", "--root-owner-group"])
        .arg(&pkg)
        .arg(&deb)
        .output()
        .expect("dpkg-deb");
    assert!(out.status.success(), "dpkg-deb: {}", show(&out));
    let bytes = std::fs::read(&deb).expect("deb");
    let sha = Command::new("sha256sum")
        .arg(&deb)
        .output()
        .expect("sha256sum");
    let sha = String::from_utf8_lossy(&sha.stdout);
    let sha = sha.split_whitespace().next().unwrap_or_default();
    let index = format!(
        "{control}Filename: ./wgtok_1.0_all.deb\nSize: {}\nSHA256: {sha}\n\n",
        bytes.len()
    );
    std::fs::write(repo.join("Packages"), index).expect("Packages");
}

#[test]
fn apt_get_update_reaches_a_repository_behind_the_tunnel_as_apt_user() {
    skip_unless_ready!();
    if !on_path("apt-get") || !on_path("dpkg-deb") || !on_path("sha256sum") {
        println!("SKIPPED: apt-get/dpkg-deb not installed");
        return;
    }
    let t = OnePeer::new("apt").configured(Conf::V4);
    let tok = token("apt");
    let repo = t.tmp.join("repo");
    std::fs::create_dir_all(&repo).expect("repo");
    repository(&repo, &tok);
    let log = t.tmp.join("repo.log");
    let _srv = t.peer.http_server(&repo, "0.0.0.0", &log);

    let state = t.tmp.join("apt");
    for d in [
        "",
        "lists",
        "lists/partial",
        "cache",
        "cache/archives",
        "cache/archives/partial",
    ] {
        open_dir(&state.join(d));
    }
    // The temp dir itself must let _apt through to the lists.
    for p in [t.tmp.join(""), state.clone()] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let sources = state.join("sources.list");
    std::fs::write(
        &sources,
        "deb [trusted=yes allow-insecure=yes] http://10.77.0.1:8080/ ./\n",
    )
    .expect("sources.list");
    let opt = |k: &str, v: &Path| format!("-o{k}={}", v.display());
    let args = [
        opt("Dir::Etc::SourceList", &sources),
        "-oDir::Etc::SourceParts=/nonexistent".to_string(),
        opt("Dir::State::Lists", &state.join("lists")),
        opt("Dir::Cache", &state.join("cache")),
        "-oAcquire::Retries=0".to_string(),
        "-oDebug::NoLocking=1".to_string(),
    ];
    let mut argv = vec!["apt-get", "update"];
    argv.extend(args.iter().map(String::as_str));
    let out = wrapguard(&t.client, &t.conf, &[], &argv);
    let all = show(&out);
    assert!(out.status.success(), "{all}");
    // The download really ran as _apt (apt says so when it cannot drop).
    assert!(
        !all.contains("unsandboxed"),
        "apt did not drop to _apt: {all}"
    );
    // What apt now knows of the package: the token came through.
    let show_pkg = Command::new("apt-cache")
        .arg("show")
        .args(&args)
        .arg("wgtok")
        .output()
        .expect("apt-cache");
    assert!(
        String::from_utf8_lossy(&show_pkg.stdout).contains(&tok),
        "apt-cache show: {}\napt-get update: {all}",
        show(&show_pkg)
    );
    let served = read(&log);
    assert!(
        served.contains("10.77.0.2 - - ") && served.contains("/Packages HTTP/1.1\" 200"),
        "{served}"
    );
}
