//! State-machine tests (filled below).
