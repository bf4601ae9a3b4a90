//! Placeholder until the peer_wire benchmark lands.
fn main() {}
