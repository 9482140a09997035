//! Reading the `--proxy-auth` file: it must be a regular file readable by
//! its owner only (0600 or stricter), since it holds passwords.

use crate::auth::{AuthFileError, Credentials};
use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Why the credentials file was refused.
#[derive(Debug)]
pub enum LoadError {
    /// It cannot be read.
    Io(PathBuf, std::io::Error),
    /// Group or others may read or write it (the mode is given).
    Mode(PathBuf, u32),
    /// Its text is wrong.
    Text(PathBuf, AuthFileError),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Io(p, e) => write!(f, "cannot read --proxy-auth file {}: {e}", p.display()),
            LoadError::Mode(p, m) => write!(
                f,
                "--proxy-auth file {} has mode {m:04o}: it holds passwords, so only its owner may read it; run chmod 600 {}",
                p.display(),
                p.display()
            ),
            LoadError::Text(p, e) => write!(f, "--proxy-auth file {}:{e}", p.display()),
        }
    }
}

impl std::error::Error for LoadError {}

/// Reads and checks the file at `path`.
pub fn load(path: &Path) -> Result<Credentials, LoadError> {
    let meta = std::fs::metadata(path).map_err(|e| LoadError::Io(path.into(), e))?;
    if !meta.is_file() {
        return Err(LoadError::Io(
            path.into(),
            std::io::Error::other("not a regular file"),
        ));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(LoadError::Mode(path.into(), mode));
    }
    let text = std::fs::read_to_string(path).map_err(|e| LoadError::Io(path.into(), e))?;
    Credentials::parse(&text).map_err(|e| LoadError::Text(path.into(), e))
}
