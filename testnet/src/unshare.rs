//! Namespaces of one command: `unshare -n` (as root) or `unshare -rn`,
//! loopback up, nothing else. Nothing sent there can leave the machine, so
//! these need no leak guard.

use std::ffi::OsStr;
use std::process::{Command, Stdio};

/// `unshare -n` (as root) or `unshare -rn`, loopback up, then `argv`.
pub fn in_netns<S: AsRef<OsStr>>(argv: &[S]) -> Command {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let mut c = Command::new("unshare");
    c.arg(if root { "-n" } else { "-rn" });
    c.args(["sh", "-c", "ip link set lo up && exec \"$@\"", "sh"]);
    c.args(argv);
    c.stdin(Stdio::null());
    c
}

/// Whether [`in_netns`] works here.
pub fn netns_ok() -> bool {
    in_netns(&["true"]).status().is_ok_and(|s| s.success())
}

/// Whether `unshare <flags> true` works here (`-rn`: user namespaces;
/// `-nm`: root).
pub fn unshare_ok(flags: &str) -> bool {
    Command::new("unshare")
        .args([flags, "true"])
        .status()
        .is_ok_and(|s| s.success())
}
