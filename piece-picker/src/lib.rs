//! Which block to ask which peer for: rarest first, fastest peer first, end-game.
//!
//! Not implemented yet: this crate is a placeholder in the workspace until
//! its issue lands. Nothing here pretends to work.
#![forbid(unsafe_code)]
