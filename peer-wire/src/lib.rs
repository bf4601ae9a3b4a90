//! The BitTorrent peer wire protocol: handshake, messages and a stream framer.
//!
//! Not implemented yet: this crate is a placeholder in the workspace until
//! its issue lands. Nothing here pretends to work.
#![forbid(unsafe_code)]
