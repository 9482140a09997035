//! The programs the bench runs: release `wrapguard` + `libwrapguard.so`
//! (built here unless `WRAPGUARD_BIN_DIR` is set), onetun (installed into
//! a cache directory on first use), and this bench binary itself (helpers).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Paths of everything the bench executes.
pub struct Bins {
    /// Release `wrapguard` (with `libwrapguard.so` beside it).
    pub wrapguard: PathBuf,
    /// onetun, or why there is none.
    pub onetun: Result<PathBuf, String>,
    /// This executable (its `__…` subcommands are the helper programs).
    pub me: PathBuf,
}

impl Bins {
    /// Builds or finds wrapguard and onetun.
    pub fn prepare() -> Result<Bins, String> {
        let me = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        // <target>/release/deps/e2e-<hash>
        let target = me
            .ancestors()
            .nth(3)
            .ok_or("cannot find the target directory above the bench binary")?
            .to_path_buf();
        let dir = match std::env::var_os("WRAPGUARD_BIN_DIR") {
            Some(d) => PathBuf::from(d),
            None => build_wrapguard(&target)?,
        };
        let wrapguard = dir.join("wrapguard");
        for f in [&wrapguard, &dir.join("libwrapguard.so")] {
            if !f.is_file() {
                return Err(format!("{} missing", f.display()));
            }
        }
        let onetun = install_onetun(&target.join("bench-tools"));
        Ok(Bins {
            wrapguard,
            onetun,
            me,
        })
    }
}

/// `cargo build --release -p wrapguard -p wrapguard-preload` into
/// `<target>/e2e-bench` (its own directory: the cargo running this bench
/// may still hold the lock of the main one).
fn build_wrapguard(target: &Path) -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("no workspace above benches/")?;
    let out = target.join("e2e-bench");
    eprintln!(
        "e2e: cargo build --release -p wrapguard -p wrapguard-preload (target {})",
        out.display()
    );
    let st = Command::new(cargo)
        .current_dir(workspace)
        .args([
            "build",
            "--release",
            "-q",
            "-p",
            "wrapguard",
            "-p",
            "wrapguard-preload",
        ])
        .arg("--target-dir")
        .arg(&out)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !st.success() {
        return Err("cargo build --release of wrapguard failed".into());
    }
    Ok(out.join("release"))
}

/// `cargo install --locked onetun --root <cache>` unless already there.
fn install_onetun(cache: &Path) -> Result<PathBuf, String> {
    let bin = cache.join("bin").join("onetun");
    if bin.is_file() {
        return Ok(bin);
    }
    eprintln!(
        "e2e: cargo install --locked onetun --root {}",
        cache.display()
    );
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["install", "--locked", "-q", "onetun", "--root"])
        .arg(cache)
        .output()
        .map_err(|e| format!("cannot run cargo install: {e}"))?;
    if out.status.success() && bin.is_file() {
        Ok(bin)
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or("no output");
        Err(format!("cargo install --locked onetun failed: {last}"))
    }
}
