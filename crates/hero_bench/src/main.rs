//! Placeholder; see the bench helper.
fn main() {}
