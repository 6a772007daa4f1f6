//! The Floe production node.
fn main() {}
