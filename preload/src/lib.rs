//! `libwrapguard.so`, the LD_PRELOAD shim that carries a wrapped program's
//! sockets into the wrapguard engine. Filled by the launcher issue.
