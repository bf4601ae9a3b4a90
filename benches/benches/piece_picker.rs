//! Placeholder until the piece_picker benchmark lands.
fn main() {}
