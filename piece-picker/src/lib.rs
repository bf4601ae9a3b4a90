//! Which block to ask which peer for: rarest first, fastest peer first,
//! end-game. Sans-IO: it takes events (a peer's `have`, a block arrived, a
//! hash failed) and returns decisions (these blocks from that peer, cancel
//! these peers); it never reads the clock, spawns threads or touches a socket.
//!
//! ```
//! use rustico_piece_picker::{PickerConfig, PiecePicker};
//!
//! // 3 pieces of 32 KiB (2 blocks of 16 KiB each), the last one 20 KiB.
//! let mut picker = PiecePicker::new(PickerConfig::new(32_768 * 2 + 20_480, 32_768))?;
//! let seed = picker.add_peer();
//! picker.peer_has_all(seed)?;
//! let leecher = picker.add_peer();
//! picker.peer_bitfield(leecher, &[0b0100_0000])?; // has piece 1 only
//! assert!(picker.interesting(leecher));
//!
//! let mut requests = Vec::new();
//! picker.pick(leecher, 8, &mut requests)?;
//! assert_eq!(requests.len(), 2); // both blocks of piece 1
//!
//! let mut cancel = Vec::new();
//! for block in requests.drain(..) {
//!     let outcome = picker.block_received(leecher, block, &mut cancel)?;
//!     if outcome.piece_complete {
//!         // hash the piece, then:
//!         picker.piece_verified(block.piece)?;
//!     }
//! }
//! assert!(picker.have(1));
//! assert!(!picker.interesting(leecher));
//!
//! picker.pick(seed, 100, &mut requests)?; // the remaining 4 blocks
//! assert_eq!(requests.len(), 4);
//! assert_eq!(requests.last().map(|b| b.length), Some(4096));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Map
//! - [`PiecePicker`]: the state and every event; [`PickerConfig`] and
//!   [`PickMode`] choose the rules; [`PeerKey`] is a peer's handle;
//!   [`BlockRequest`] a block; [`PickerError`] what a caller or peer got wrong.
//!
//! # The rules, in the order [`PiecePicker::pick`] applies them
//! 1. **A peer continues the piece it requested last**, then **partial
//!    pieces before new ones** (the highest priority first), so partial
//!    pieces do not pile up.
//! 2. **Fastest peer first** ([`PickerConfig::fastest_peer_first`]): a peer
//!    is [`SpeedClass::Fast`] when its rate ([`PiecePicker::set_peer_rate`])
//!    could download a whole piece within
//!    [`PickerConfig::whole_piece_seconds`]. In step 1 a peer may join a
//!    partial piece it does not own only if nothing is in flight for that
//!    piece (abandoned), or both the peer and the piece's owner are slow. So
//!    fast peers get whole pieces of their own and slow peers never hold up
//!    a fast peer's piece. Without rates every peer is slow and all partial
//!    pieces are shared.
//! 3. **New pieces**, highest priority first ([`PiecePicker::set_piece_priority`],
//!    0 = skip), then by mode: **rarest first** (least available, ties at
//!    random from the seeded generator), **random**, or **sequential**. In
//!    rarest-first mode the first [`PickerConfig::random_first_pieces`]
//!    pieces are picked at random.
//! 4. If the peer still has room: any partial piece (a fast peer helps
//!    rather than idles).
//! 5. **End-game**: when no block that any connected peer has is left
//!    unrequested, blocks in flight elsewhere are requested again, least
//!    duplicated first, at most
//!    [`PickerConfig::end_game_max_duplicates`] extra times per block;
//!    [`PiecePicker::block_received`] names the peers to `cancel`.
//!
//! # Costs
//! A `have` and a seed joining or leaving are O(1); a bitfield is O(pieces);
//! a pick touches the partial pieces and then a few entries of the
//! availability buckets, never every piece (see the README for the full
//! table). Open pieces sit in one bucket per (priority, availability); a
//! `have` moves one piece to the next bucket.
//!
//! # Threads
//! The picker is `Send` but not `Sync` (the interest cache in
//! [`PiecePicker::interesting`] uses `Cell`): one thread owns it, as the
//! torrent manager does.
#![forbid(unsafe_code)]

mod buckets;
mod config;
mod error;
mod peer_bits;
mod picker;
mod rng;

pub use config::{PickMode, PickerConfig, DEFAULT_BLOCK_SIZE, DEFAULT_PRIORITY, MAX_PRIORITY};
pub use error::PickerError;
pub use picker::{BlockOutcome, PeerKey, PiecePicker, PieceState, SpeedClass};
pub use rustico_pieces::BlockRequest;
