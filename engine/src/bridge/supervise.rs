//! The hook through which the bridge hands a process over to seccomp mode.

/// Takes over the seccomp listener of a carried process that execs a
/// program the shim cannot enter (the shim's `SeccompAttach`). The seccomp
/// crate implements it; the launcher hands it to [`spawn`], so the engine
/// does not depend on the seccomp front-end.
pub trait Supervise: Send + Sync {
    /// Starts supervising the seccomp listener that is descriptor `fd` in
    /// process `pid`; the supervisor asks the engine through the control
    /// socket at `control`. The error is the errno for the shim.
    fn attach(&self, pid: u32, fd: u64, control: std::path::PathBuf) -> Result<(), i32>;
}
