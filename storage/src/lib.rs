//! Pieces on disk: file layout, positional I/O, hash checks, read cache, resume.
//!
//! Not implemented yet: this crate is a placeholder in the workspace until
//! its issue lands. Nothing here pretends to work.
#![forbid(unsafe_code)]
