//! Where the shim (`libwrapguard.so`) is, and how the child preloads it.

use anyhow::{anyhow, Context, Result};
use std::ffi::OsString;
use std::path::PathBuf;

/// Name of the shim, looked up next to the `wrapguard` binary.
pub const SHIM_NAME: &str = "libwrapguard.so";

/// Where `libwrapguard.so` must be: next to the running binary.
pub fn shim_location() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot locate the wrapguard binary")?;
    let dir = exe
        .parent()
        .ok_or_else(|| anyhow!("cannot locate the wrapguard binary's directory"))?;
    Ok(dir.join(SHIM_NAME))
}

/// `libwrapguard.so` next to the running binary, if it is there.
pub fn shim_path() -> Result<PathBuf> {
    let p = shim_location()?;
    if !p.is_file() {
        return Err(anyhow!(
            "{SHIM_NAME} not found next to the wrapguard binary (expected {}); keep the two files together (cargo build --release puts both in target/release/)",
            p.display()
        ));
    }
    Ok(p)
}

/// `LD_PRELOAD` for the child: the shim first, then what was there.
pub fn ld_preload_value(shim: &std::path::Path) -> OsString {
    let mut v = OsString::from(shim.as_os_str());
    if let Some(old) = std::env::var_os("LD_PRELOAD").filter(|o| !o.is_empty()) {
        v.push(":");
        v.push(old);
    }
    v
}
