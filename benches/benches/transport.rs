//! Placeholder until the owning issue fills this benchmark.
fn main() {}
