//! The private control directory: 0700, owned by us, under
//! `$XDG_RUNTIME_DIR` (or `/tmp`), removed when dropped — and `main` drops
//! it on every exit path before calling `exit`.

use anyhow::{bail, Context, Result};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::PathBuf;

/// Longest unix socket path (`sun_path` minus the NUL).
const MAX_SOCKET_PATH: usize = 107;

/// See the module doc.
pub struct ControlDir {
    path: PathBuf,
}

impl ControlDir {
    /// Creates a fresh private directory.
    pub fn create() -> Result<ControlDir> {
        let mut bases = Vec::new();
        if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR") {
            bases.push(PathBuf::from(x));
        }
        bases.push(PathBuf::from("/tmp"));
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!("wrapguard-{}-{:08x}", std::process::id(), nanos);
        let mut last_err = None;
        for base in bases {
            let path = base.join(&name);
            if path.join("control.sock").as_os_str().len() > MAX_SOCKET_PATH || !base.is_dir() {
                continue;
            }
            // create (not create_all): fails if anything is already there.
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => {
                    let dir = ControlDir { path };
                    dir.verify()?;
                    return Ok(dir);
                }
                Err(e) => last_err = Some(e),
            }
        }
        match last_err {
            Some(e) => Err(e).context("cannot create the private control directory"),
            None => bail!("no usable directory for the control socket ($XDG_RUNTIME_DIR or /tmp)"),
        }
    }

    fn verify(&self) -> Result<()> {
        std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(0o700))?;
        let md = std::fs::symlink_metadata(&self.path)?;
        // SAFETY: getuid cannot fail.
        let uid = unsafe { libc::getuid() };
        if !md.is_dir() || md.uid() != uid || md.mode() & 0o777 != 0o700 {
            bail!(
                "control directory {} is not a private directory",
                self.path.display()
            );
        }
        Ok(())
    }

    /// The control socket path inside it.
    pub fn socket_path(&self) -> PathBuf {
        self.path.join("control.sock")
    }
}

impl Drop for ControlDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
