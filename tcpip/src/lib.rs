//! A kernel-free TCP/UDP/ICMP stack over IPv4 and IPv6, sans-IO: packets in
//! with `now`, packets out, and `poll_at()` for the next timer.
#![forbid(unsafe_code)]
