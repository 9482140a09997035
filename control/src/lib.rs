//! The control protocol spoken between the LD_PRELOAD shim and the engine:
//! message types and their wire encoding, defined in exactly one place.
#![forbid(unsafe_code)]
