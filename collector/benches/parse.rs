//! Placeholder replaced by the parse benches below.
fn main() {}
