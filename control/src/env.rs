//! Environment variables and arguments through which the launcher, the
//! engine and the shim find each other.

/// Environment variable holding the engine's control socket path.
pub const ENV_CONTROL: &str = "WRAPGUARD_CONTROL";
/// Environment variable holding the absolute path of `libwrapguard.so`, so
/// the shim can put itself back into `LD_PRELOAD` when a program clears it.
pub const ENV_PRELOAD: &str = "WRAPGUARD_PRELOAD";
/// Environment variable holding the absolute path of the `wrapguard`
/// binary, set in auto mode: when a carried process execs a program the
/// shim cannot enter, the shim execs it through `wrapguard`'s
/// [`SECCOMP_EXEC_ARG`] instead, which puts it under seccomp mode.
pub const ENV_LAUNCHER: &str = "WRAPGUARD_LAUNCHER";
/// First argument that makes `wrapguard` the seccomp hand-off of an exec:
/// `wrapguard SECCOMP_EXEC_ARG PATH ARGV0 ARGS…` installs the filter,
/// has the engine supervise it
/// ([`Request::SeccompAttach`](crate::Request::SeccompAttach)), and execs
/// `PATH` with `ARGV0 ARGS…`.
pub const SECCOMP_EXEC_ARG: &str = "--internal-seccomp-exec";
/// Environment variable holding the shim's hold on the engine
/// ([`Request::Hold`](crate::Request::Hold)) across `exec`: `FD:INODE`,
/// the descriptor number and the inode of the socket, so a new image
/// takes over the same connection (and never mistakes another descriptor
/// that got the number for it).
pub const ENV_HOLD: &str = "WRAPGUARD_HOLD";
