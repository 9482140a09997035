//! The real engine's startup and failure paths, without a WireGuard peer:
//! each run happens in a private network namespace (`unshare -n` as root,
//! `unshare -rn` otherwise) with only loopback, so nothing can leave.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Output;
use wrapguard_testnet::{conf_text, in_netns, netns_ok, unshare_ok, PeerSection, Wrapguard};

const PRIVATE: &str = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";
const PEER: &str = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";

macro_rules! skip_without_netns {
    () => {
        if !netns_ok() {
            eprintln!("SKIPPED: cannot create a private network namespace here");
            return;
        }
    };
}

/// Our config: PRIVATE at 10.77.0.2/24, one peer PEER carrying
/// 10.77.0.0/24 at `endpoint`, with `extra` lines in its section.
fn text_for(endpoint: Option<&str>, extra: &str) -> String {
    conf_text(
        PRIVATE,
        "10.77.0.2/24",
        "",
        &[PeerSection {
            public_key: PEER,
            endpoint,
            allowed_ips: "10.77.0.0/24",
            extra,
        }],
    )
}

fn conf(name: &str, text: &str, mode: u32) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wgelocal-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write config");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    p
}

fn run(conf: &std::path::Path, argv: &[&str]) -> Output {
    let b = Wrapguard::under_test();
    let mut v: Vec<&OsStr> = vec![
        b.bin.as_os_str(),
        OsStr::new("--config"),
        conf.as_os_str(),
        OsStr::new("--"),
    ];
    v.extend(argv.iter().map(OsStr::new));
    in_netns(&v).output().expect("run wrapguard")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn unresolvable_endpoint_is_one_line_error_before_launch() {
    skip_without_netns!();
    let c = conf(
        "badhost.conf",
        &text_for(Some("no-such-host.invalid:51820"), ""),
        0o600,
    );
    let out = run(&c, &["sh", "-c", "echo LAUNCHED"]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stderr}");
    assert!(!stdout.contains("LAUNCHED"), "the child must not run");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("\"level\":\"error\""))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("no-such-host.invalid:51820") && errors[0].contains("badhost.conf:5:"),
        "names the endpoint and the line: {stderr}"
    );
    assert!(!stderr.contains(PRIVATE));
}

#[test]
fn hostname_endpoint_is_resolved_at_start_and_logged_without_keys() {
    skip_without_netns!();
    let c = conf(
        "localhost.conf",
        &text_for(Some("localhost:51820"), "PersistentKeepalive = 25"),
        0o600,
    );
    let out = run(&c, &["sh", "-c", "echo LAUNCHED"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("LAUNCHED"));
    assert!(
        stderr.contains("endpoint 127.0.0.1:51820") || stderr.contains("endpoint [::1]:51820"),
        "{stderr}"
    );
    assert!(stderr.contains("\"Interface: 10.77.0.2/24\""), "{stderr}");
    assert!(!stderr.contains(PRIVATE), "private key in the log");
}

#[test]
fn world_readable_config_is_a_warning() {
    skip_without_netns!();
    let c = conf("readable.conf", &text_for(None, ""), 0o644);
    let out = run(&c, &["true"]);
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("\"level\":\"warn\"") && l.contains("chmod 600")),
        "{stderr}"
    );
}

#[test]
fn peer_without_endpoint_that_never_called_is_unreachable_at_once() {
    skip_without_netns!();
    let c = conf("noendpoint.conf", &text_for(None, ""), 0o600);
    let py = Wrapguard::under_test().python.display().to_string();
    let script = r#"
import errno, socket, time
t = time.time()
s = socket.socket(); s.settimeout(10)
try:
    s.connect(("10.77.0.1", 80)); print("FAIL connected")
except OSError as e:
    print("ERRNO", errno.errorcode.get(e.errno), round(time.time() - t, 2))
"#;
    let out = run(&c, &[&py, "-c", script]);
    let (stdout, stderr) = text(&out);
    assert!(stdout.contains("ERRNO EHOSTUNREACH"), "{stdout}\n{stderr}");
}

/// A host-name endpoint is resolved again while handshakes fail: the name
/// first points at an address where nothing answers, then (the hosts file
/// rewritten in place, inside a private mount and network namespace) at a
/// local UDP socket, which then receives wrapguard's handshake initiation.
#[test]
fn hostname_endpoint_is_resolved_again_while_handshakes_fail() {
    if !unshare_ok("-nm") {
        eprintln!("SKIPPED: needs unshare -nm (root)");
        return;
    }
    let port = 40_000 + (std::process::id() % 20_000) as u16;
    let dir = std::env::temp_dir().join(format!("wgreresolve-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let hosts = dir.join("hosts");
    std::fs::write(&hosts, "127.0.0.9 wgpeer.test\n").expect("hosts");
    let c = conf(
        "reresolve.conf",
        &text_for(
            Some(&format!("wgpeer.test:{port}")),
            "PersistentKeepalive = 25",
        ),
        0o600,
    );
    // The wrapped program is the "peer": it binds 127.0.0.1:port, points
    // the name there, and waits for a handshake initiation (type 1, 148 bytes).
    let script = r#"
import socket, sys, time
hosts, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", port))
time.sleep(1)
with open(hosts, "w") as f:
    f.write("127.0.0.1 wgpeer.test\n")
s.settimeout(90)
t = time.time()
while True:
    d, a = s.recvfrom(2048)
    if len(d) == 148 and d[0] == 1:
        print("GOT_INITIATION after %.1f s" % (time.time() - t), flush=True)
        break
"#;
    let b = Wrapguard::under_test();
    let out = std::process::Command::new("unshare")
        .args([
            "-nm",
            "sh",
            "-c",
            r#"ip link set lo up && mount --bind "$0" /etc/hosts && exec "$@""#,
        ])
        .arg(&hosts)
        .arg(&b.bin)
        .arg("--config")
        .arg(&c)
        .args(["--", "python3", "-c", script])
        .arg(&hosts)
        .arg(port.to_string())
        .output()
        .expect("run wrapguard");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("endpoint 127.0.0.9:"),
        "first resolution used: {stderr}"
    );
    assert!(stdout.contains("GOT_INITIATION"), "{stdout}\n{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("peer endpoint re-resolved")
                && l.contains(&format!("127.0.0.1:{port}"))),
        "{stderr}"
    );
    assert!(!stderr.contains(PRIVATE), "private key in the log");
}
