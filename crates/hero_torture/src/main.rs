//! Placeholder; see the torture helper.
fn main() {}
