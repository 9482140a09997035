//! Node through the tunnel, as a new user meets it (issue 25 item 7):
//! libuv closes descriptors with `syscall(SYS_close)` on its main thread
//! while its workers open files, so a tunnel socket's number was reused by
//! a file that the shim then wrote as a socket (`ENOTSOCK`: `npm install`
//! failed with "Invalid response body"). Here, against wireguard-go in
//! namespaces of the test's own: an HTTP GET followed by many
//! `fs.promises.writeFile`s, and an `npm install` from a registry behind
//! the tunnel (a small registry server on the peer), both modes. Needs
//! root, wireguard-go, wireguard-tools, node and npm.

use std::path::Path;
use std::process::Command;
use wrapguard_testnet::{
    on_path, peer_server, read, show, skip_unless_ready, token, wrapguard, Conf, Configured,
    OnePeer,
};

const MODES: [&[&str]; 2] = [&[], &["--mode=seccomp"]];

fn world(tag: &str) -> Option<Configured> {
    if !on_path("node") || !on_path("npm") {
        println!("SKIPPED: node/npm not installed");
        return None;
    }
    Some(OnePeer::new(tag).configured(Conf::V4))
}

#[test]
fn node_writes_files_after_tunnel_requests() {
    skip_unless_ready!();
    let Some(t) = world("nodefs") else {
        return;
    };
    let tok = token("nodefs");
    let (_srv, log) = t.serve_page(&tok, "0.0.0.0");
    let dir = t.tmp.join("out");
    std::fs::create_dir_all(&dir).expect("out dir");
    // Several GETs (each socket closed by libuv), then 150 concurrent
    // writes through the thread pool, each read back.
    let script = format!(
        r#"
const http = require("http"), fs = require("fs"), path = require("path");
function get() {{
  return new Promise((ok, bad) => http.get("http://10.77.0.1:8080/", r => {{
    let b = ""; r.on("data", d => b += d); r.on("end", () => ok(b.trim()));
  }}).on("error", bad));
}}
(async () => {{
  for (let i = 0; i < 5; i++) {{
    const b = await get();
    if (b !== "{tok}") throw new Error("body " + b);
  }}
  const n = 150;
  await Promise.all([...Array(n).keys()].map(i =>
    fs.promises.writeFile(path.join("{dir}", "f" + i), "data-" + i)));
  for (let i = 0; i < n; i++) {{
    const c = fs.readFileSync(path.join("{dir}", "f" + i), "utf8");
    if (c !== "data-" + i) throw new Error("file " + i + ": " + c);
  }}
  console.log("PASS " + (await get()));
}})().catch(e => {{ console.error("FAIL", e); process.exit(1); }});
"#,
        dir = dir.display()
    );
    for mode in MODES {
        let out = wrapguard(&t.client, &t.conf, mode, &["node", "-e", &script]);
        assert!(out.status.success(), "{mode:?}: {}", show(&out));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("PASS {tok}"),
            "{mode:?}: {}",
            show(&out)
        );
    }
    assert!(read(&log).contains("10.77.0.2"), "{}", read(&log));
}

/// `npm pack` of a one-file package whose main module exports `tok`;
/// returns the tarball's path.
fn pack(dir: &Path, tok: &str) -> std::path::PathBuf {
    let src = dir.join("src");
    std::fs::create_dir_all(&src).expect("package dir");
    std::fs::write(
        src.join("package.json"),
        r#"{"name":"wgtok","version":"1.0.0","main":"index.js"}"#,
    )
    .expect("package.json");
    std::fs::write(src.join("index.js"), format!("module.exports = {tok:?};\n")).expect("index.js");
    let out = Command::new("npm")
        .args(["pack", "--silent", "--pack-destination"])
        .arg(dir)
        .current_dir(&src)
        .env("HOME", dir)
        .output()
        .expect("npm pack");
    assert!(out.status.success(), "npm pack: {}", show(&out));
    dir.join("wgtok-1.0.0.tgz")
}

#[test]
fn npm_installs_from_a_registry_behind_the_tunnel() {
    skip_unless_ready!();
    let Some(t) = world("npm") else {
        return;
    };
    let tok = token("npm");
    let reg = t.tmp.join("registry");
    std::fs::create_dir_all(&reg).expect("registry dir");
    let tgz = pack(&reg, &tok);
    // The registry: the package document at /wgtok, the tarball under it;
    // every request logged with the client's address.
    let script = format!(
        r#"
import base64, hashlib, http.server, json
tgz = open({tgz:?}, "rb").read()
doc = json.dumps({{
  "name": "wgtok", "dist-tags": {{"latest": "1.0.0"}},
  "versions": {{"1.0.0": {{"name": "wgtok", "version": "1.0.0", "dist": {{
    "tarball": "http://10.77.0.1:8080/wgtok/-/wgtok-1.0.0.tgz",
    "shasum": hashlib.sha1(tgz).hexdigest(),
    "integrity": "sha512-" + base64.b64encode(hashlib.sha512(tgz).digest()).decode()}}}}}}}}).encode()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        print("GET", self.path, "from", self.client_address[0], flush=True)
        if self.path.rstrip("/") == "/wgtok":
            body, ty = doc, "application/json"
        elif self.path == "/wgtok/-/wgtok-1.0.0.tgz":
            body, ty = tgz, "application/octet-stream"
        else:
            self.send_error(404); return
        self.send_response(200)
        self.send_header("Content-Type", ty)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.ThreadingHTTPServer(("0.0.0.0", 8080), H).serve_forever()
"#,
        tgz = tgz.display().to_string()
    );
    let (_srv, log) = peer_server(&t.peer, &t.tmp, "registry", &script, 8080);
    for (i, mode) in MODES.iter().enumerate() {
        let proj = t.tmp.join(&format!("proj{i}"));
        std::fs::create_dir_all(&proj).expect("project dir");
        std::fs::write(
            proj.join("package.json"),
            r#"{"name":"p","version":"0.0.0"}"#,
        )
        .expect("package.json");
        let home = format!("HOME={}", proj.display());
        let prefix = proj.display().to_string();
        let out = wrapguard(
            &t.client,
            &t.conf,
            mode,
            &[
                "env",
                &home,
                "npm",
                "install",
                "--prefix",
                &prefix,
                "--registry",
                "http://10.77.0.1:8080/",
                "--no-audit",
                "--no-fund",
                "--no-update-notifier",
                "--fetch-retries=0",
                "wgtok",
            ],
        );
        assert!(out.status.success(), "{mode:?}: {}", show(&out));
        let installed =
            std::fs::read_to_string(proj.join("node_modules/wgtok/index.js")).unwrap_or_default();
        assert!(
            installed.contains(&tok),
            "{mode:?}: {installed:?} {}",
            show(&out)
        );
    }
    let l = read(&log);
    assert_eq!(
        l.matches("GET /wgtok/-/wgtok-1.0.0.tgz from 10.77.0.2")
            .count(),
        2,
        "{l}"
    );
}
