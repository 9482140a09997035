//! The hook through which the bridge hands a process over to seccomp mode.

/// Takes over the seccomp listener of a carried process that execs a
/// program the shim cannot enter (the shim's `SeccompAttach`). The seccomp
/// crate implements it; the launcher hands it to [`spawn`], so the engine
/// does not depend on the seccomp front-end.
pub trait Supervise: Send + Sync {
    /// Starts supervising the seccomp listener that is descriptor `fd` in
    /// process `pid`; the supervisor asks the engine through the control
    /// socket at `control`, and calls `done` once no process is left under
    /// the filter (or at once, if it cannot start). The error is the errno
    /// for the shim.
    fn attach(
        &self,
        pid: u32,
        fd: u64,
        control: std::path::PathBuf,
        done: Box<dyn FnOnce() + Send>,
    ) -> Result<(), i32>;
}
