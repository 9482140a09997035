//! The WireGuard protocol, sans-IO: keys, the Noise_IKpsk2 handshake, cookies,
//! transport data, the replay window and the timers of the WireGuard paper.
#![forbid(unsafe_code)]
