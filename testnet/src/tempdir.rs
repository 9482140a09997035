//! A temporary directory removed on drop.

use crate::COUNTER;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

/// A temporary directory, removed on drop.
pub struct TempDir {
    /// Its path.
    pub path: PathBuf,
}

impl TempDir {
    /// A fresh directory under the system temp dir.
    pub fn new() -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("wge2e-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&path).expect("temp dir");
        TempDir { path }
    }

    /// A path inside.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Writes a file inside (mode 0600) and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.join(name);
        std::fs::write(&p, text).expect("write temp file");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        p
    }
}

impl TempDir {
    /// A web root `name` inside whose `index.html` is `text`.
    pub fn webroot(&self, name: &str, text: &str) -> PathBuf {
        let d = self.join(name);
        std::fs::create_dir_all(&d).expect("webroot");
        std::fs::write(d.join("index.html"), text).expect("index.html");
        d
    }
}

impl Default for TempDir {
    fn default() -> Self {
        TempDir::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A file's text, empty if it cannot be read (a log not written yet).
pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}
