//! Deterministic simulation of whole BitTorrent swarms, running the real
//! code: every simulated peer is a [`rustico_swarm::Swarm`] with one
//! [`rustico_peer_wire`] session per connection (handshake, framing,
//! messages), bytes cross simulated links with latency and bandwidth,
//! pieces are verified (SHA-1, or the same verdict by comparing bytes:
//! [`Verify`]) into in-memory storage, time is
//! simulated (an hour of swarm time runs in seconds), and one seed decides
//! everything, faults included.
//!
//! ```
//! use rustico_sim::{Sim, SimConfig};
//!
//! // One seed, 5 leechers, 12 pieces of 32 KiB, no faults.
//! let config = SimConfig::clean(7, 5, 12, 32_768);
//! let report = Sim::new(config)?.run()?;
//! assert_eq!(report.download_times.len(), 5);
//! assert!(report.seed_uploaded >= 12 * 32_768);
//!
//! // Faults chosen by a seed; a failure names the seed that replays it.
//! let report = Sim::new(SimConfig::from_seed(42))?.run()?;
//! assert!(report.events > 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Map
//! - [`SimConfig`] (with [`Faults`] and a [`Tune`] hook for the policy
//!   under test) → [`Sim`] → [`Report`] or [`SimError`] (an
//!   [`Invariant`] that broke, with the seed and the simulated time).
//!
//! # Invariants checked
//! At every step, for the peers the step touched (and every simulated
//! second for all): nothing is requested from a peer that lacks the piece
//! or chokes us; no honest peer is banned for bad data; a banned peer
//! does not get a connection again; per-peer queues stay bounded
//! (requests in flight, queued serves, buffered input, partial and
//! suspect pieces); some honest peer saves a piece within
//! [`SimConfig::progress_bound`]. At the end: every honest leecher has
//! every piece, verified; every corrupt peer that spoiled a piece for an
//! honest peer is banned by it.
#![forbid(unsafe_code)]

mod config;
mod report;
mod rng;
mod sim;

pub use config::{Faults, SimConfig, Tune, TuneFn, Verify};
pub use report::{Availability, Invariant, Report, SimError};
/// The picker's strategy switches, for a [`Tune`] hook
/// (`config.picker.mode`, `end_game_max_duplicates`, `fastest_peer_first`).
pub use rustico_piece_picker::{PickMode, PickerConfig};
/// The swarm's configuration, which a [`Tune`] hook adjusts.
pub use rustico_swarm::SwarmConfig;
pub use sim::{Kind, Sim};
