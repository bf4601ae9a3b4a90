//! `.torrent` files, info-hashes, magnet links and torrent creation.
//!
//! Not implemented yet: this crate is a placeholder in the workspace until
//! its issue lands. Nothing here pretends to work.
#![forbid(unsafe_code)]
