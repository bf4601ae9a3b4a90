//! Placeholder until the bencode benchmark lands.
fn main() {}
