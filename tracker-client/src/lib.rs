//! Tracker announce and scrape over HTTP(S) and UDP, tiers and re-announce timing.
//!
//! Not implemented yet: this crate is a placeholder in the workspace until
//! its issue lands. Nothing here pretends to work.
#![forbid(unsafe_code)]
