//! Shared test support.
#![allow(dead_code)]
pub mod sim;
pub mod tun;
