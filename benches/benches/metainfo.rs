//! Placeholder until the metainfo benchmark lands.
fn main() {}
