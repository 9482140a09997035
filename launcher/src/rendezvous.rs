//! Where shared engines are found: one private directory per user
//! (`$XDG_RUNTIME_DIR/wrapguard/`, else `/tmp/wrapguard-<uid>/`, 0700 and
//! ours, checked), and in it per engine a control socket named from our
//! public key and the network namespace (`<key>-<netns>.sock`: an engine
//! serves the namespace it runs in), and one lock file (`start.lock`) that
//! serialises starting and removing engines. (One for all: a lock file per
//! engine could not be removed safely, and starts take milliseconds.)
//!
//! A socket nobody answers on (`ECONNREFUSED`: its engine was killed) is
//! stale; the instance holding the lock removes it and starts a new engine.

use anyhow::{anyhow, bail, Context, Result};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Longest unix socket path (`sun_path` minus the NUL).
const MAX_SOCKET_PATH: usize = 107;
/// Characters of the (URL-safe) public key in a socket's name.
const KEY_CHARS: usize = 16;

/// The per-user directory, created if missing and checked to be private.
pub fn dir() -> Result<PathBuf> {
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let mut candidates = Vec::new();
    if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR").filter(|x| !x.is_empty()) {
        let base = PathBuf::from(x);
        if base.is_dir() && owned_by(&base, uid) {
            candidates.push(base.join("wrapguard"));
        }
    }
    candidates.push(PathBuf::from(format!("/tmp/wrapguard-{uid}")));
    let mut last = None;
    for d in candidates {
        // Room for `<key>-<netns>.sock` (and `.lock`).
        if d.as_os_str().len() + 1 + KEY_CHARS + 1 + 10 + 5 > MAX_SOCKET_PATH {
            continue;
        }
        match private_dir(&d, uid) {
            Ok(()) => return Ok(d),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| anyhow!("no usable directory for shared tunnels")))
}

fn owned_by(p: &Path, uid: u32) -> bool {
    std::fs::metadata(p)
        .map(|m| m.uid() == uid)
        .unwrap_or(false)
}

/// Creates `d` (0700) if missing; refuses one that is not a directory of
/// ours with no access for others (someone else could have made it to
/// catch our programs' traffic).
fn private_dir(d: &Path, uid: u32) -> Result<()> {
    match std::fs::DirBuilder::new().mode(0o700).create(d) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("cannot create {}", d.display())),
    }
    let md =
        std::fs::symlink_metadata(d).with_context(|| format!("cannot read {}", d.display()))?;
    if !md.is_dir() || md.uid() != uid {
        bail!(
            "{} is not a directory of ours (uid {uid}); remove it, or set XDG_RUNTIME_DIR to a private directory",
            d.display()
        );
    }
    if md.mode() & 0o077 != 0 {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot make {} private", d.display()))?;
    }
    Ok(())
}

/// The network namespace we run in (its inode).
pub fn netns() -> u64 {
    std::fs::metadata("/proc/self/ns/net")
        .map(|m| m.ino())
        .unwrap_or(0)
}

/// The file stem of the engine for `public_key` (base64) in this namespace.
pub fn stem(public_key: &str) -> String {
    let safe: String = public_key
        .chars()
        .filter(|c| *c != '=')
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .take(KEY_CHARS)
        .collect();
    format!("{safe}-{:x}", netns())
}

/// The control socket of the engine for `public_key`.
pub fn socket_path(dir: &Path, public_key: &str) -> PathBuf {
    dir.join(format!("{}.sock", stem(public_key)))
}

/// Every engine socket in `dir` of this namespace.
pub fn sockets(dir: &Path) -> Vec<PathBuf> {
    let suffix = format!("-{:x}.sock", netns());
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.ends_with(&suffix))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// An exclusive lock on the directory's `start.lock`, held until dropped.
pub struct StartLock {
    _file: File,
}

impl StartLock {
    /// Waits for the lock of the directory `socket` is in.
    pub fn take(socket: &Path) -> Result<StartLock> {
        let path = socket.with_file_name("start.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        loop {
            // SAFETY: flock on a descriptor we own.
            let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
            if r == 0 {
                return Ok(StartLock { _file: file });
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
    }
}

/// Removes `socket` if it is still the socket with inode `ino` (an engine
/// removing its own, not a successor's).
pub fn remove_if_ours(socket: &Path, ino: u64) {
    if std::fs::symlink_metadata(socket).is_ok_and(|m| m.ino() == ino) {
        let _ = std::fs::remove_file(socket);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_are_path_safe_and_per_namespace() {
        let s = stem("a+b/cdefghijklmnopqrstuvwxyz0123456789ABCDEFG=");
        assert!(s.starts_with("a-b_cdefghijklmn-"), "{s}");
        assert!(!s.contains('/') && !s.contains('='));
        assert!(s.ends_with(&format!("{:x}", netns())));
    }
}
