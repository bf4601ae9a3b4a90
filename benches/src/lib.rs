//! Shared helpers for the rustico benchmarks (data generators, peers to compare).
//!
//! Not implemented yet: this crate is a placeholder in the workspace until
//! its issue lands. Nothing here pretends to work.
#![forbid(unsafe_code)]
