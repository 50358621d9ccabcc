//! The `bildad` binary.

fn main() {}
