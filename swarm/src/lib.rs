//! One torrent's swarm as a sans-IO state machine: the peer table, request
//! pipelines, piece assembly, smart ban, the choker, the connection policy,
//! peer exchange, web-seed scheduling and resume timing. Events go in with
//! `handle_*(…, now)`; decisions come out of `poll_*`. It never reads the
//! clock, does no I/O and starts no thread, so the same code runs under
//! threads, an async runtime or a simulator.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use rustico_swarm::{
//!     Bitfield, Event, HandshakeInfo, PeerCommand, PeerEvent, PeerSource, Swarm, SwarmConfig,
//! };
//!
//! let t0 = Instant::now();
//! // Two pieces of 32 KiB, nothing on disk yet.
//! let config = SwarmConfig::new(65_536, 32_768, *b"-RS0010-aaaaaaaaaaaa");
//! let mut swarm = Swarm::new(config, Bitfield::new(2), t0)?;
//!
//! // A tracker names a peer: the swarm asks for a connection.
//! swarm.handle_candidates(["127.0.0.1:6881".parse()?], PeerSource::User, t0);
//! let seed = swarm.poll_dial().ok_or("nothing to dial")?.peer;
//!
//! // The driver connected and shook hands; the peer has everything.
//! let info = HandshakeInfo { peer_id: *b"-XX0001-bbbbbbbbbbbb", fast: true, client: "XX".into(), encrypted: false };
//! swarm.handle_connected(seed, info, t0)?;
//! swarm.handle_peer_event(seed, PeerEvent::Pieces(Bitfield::full(2)), t0)?;
//! assert_eq!(swarm.poll_command(), Some((seed, PeerCommand::Interested(true))));
//!
//! // It unchokes us: the swarm requests every block (4 of 16 KiB).
//! swarm.handle_peer_event(seed, PeerEvent::Choked(false), t0)?;
//! let Some((_, PeerCommand::Request(blocks))) = swarm.poll_command() else {
//!     return Err("no requests".into());
//! };
//! assert_eq!(blocks.len(), 4);
//! let t1 = t0 + Duration::from_millis(50);
//! for req in blocks {
//!     let data = vec![0u8; req.length as usize];
//!     swarm.handle_peer_event(seed, PeerEvent::Block { req, data }, t1)?;
//! }
//!
//! // Complete pieces come out to be hashed and saved; say how it went.
//! while let Some(piece) = swarm.poll_piece() {
//!     swarm.handle_piece_saved(piece.piece, piece.data, t1)?;
//! }
//! assert!(swarm.is_complete());
//! let events: Vec<Event> = std::iter::from_fn(|| swarm.poll_event()).collect();
//! assert!(events.contains(&Event::Complete));
//!
//! // Two seeds have nothing to trade: the swarm closes the connection.
//! let commands: Vec<_> = std::iter::from_fn(|| swarm.poll_command()).collect();
//! assert!(commands.contains(&(seed, PeerCommand::Close(rustico_swarm::CloseReason::BothSeeding))));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Map
//! - [`Swarm`]: the state machine (its docs give the order in which a
//!   driver drains the `poll_*` methods); [`SwarmConfig`] its limits,
//!   intervals and seed; [`SwarmError`] what a driver got wrong.
//! - In: [`HandshakeInfo`], [`PeerEvent`], [`Disconnect`]; out:
//!   [`PeerCommand`] (with [`CloseReason`]), [`CompletedPiece`], [`Dial`]
//!   to a [`Remote`], [`Event`] (with [`BanReason`]), [`Refusal`].
//! - Figures for a user interface: [`SwarmStats`], [`PeerStats`].
//! - [`TokenBucket`]: a sans-IO token bucket for the driver's rate
//!   limits (the swarm itself moves no bytes).
//! - [`PeerKey`]: a peer's `Copy` handle, the piece picker's own, so there
//!   is one key for a peer across swarm and picker.
//!
//! # Decisions it makes
//! - **Requests**: rarest first and fastest peer first (the piece
//!   picker); pipelines of about one second of the peer's measured rate,
//!   within its `reqq`; end-game duplicates and their cancels; a peer that
//!   sits on requests past [`SwarmConfig::request_timeout`] loses them to
//!   others; a rejected block goes to another peer before the one that
//!   rejected it is asked again.
//! - **Pieces**: a piece is kept in the buffers its blocks arrived in
//!   ([`PieceData`], never copied into one piece buffer); a
//!   complete piece comes out of [`Swarm::poll_piece`]; the hash result
//!   comes back. **Smart ban**: per-block SHA-1 hashes of failed pieces
//!   (never whole copies, at most [`SwarmConfig::max_suspect_pieces`])
//!   name the sender of a bad block once a good copy is saved; a peer that
//!   alone sent failed pieces, or took part in too many, is banned.
//! - **Choking**: tit-for-tat by download rate while leeching, by upload
//!   rate while seeding, a fixed number of slots, one of them an
//!   optimistic unchoke rotated every [`SwarmConfig::optimistic_interval`].
//! - **Connections**: whom to dial from a capped candidate list (random
//!   order among equals), connection limits (per torrent, per IP address,
//!   dials in progress; dials leave a tenth of the table to peers that
//!   dial us), exponential backoff, bans; when every slot is
//!   taken a newcomer replaces a peer that moved nothing for a grace
//!   period; idle peers are closed, so keep-alives hold no slot forever;
//!   duplicate connections resolved so an established useful connection
//!   wins (by peer id from the same address, and by address), never by
//!   peer id alone.
//! - **PEX** (BEP 11) through peer-wire's `PexState`, never for private
//!   torrents; **web seeds** (BEP 19) started when peers are few or slow;
//!   **resume snapshots** when pieces were added and some seconds passed.
#![forbid(unsafe_code)]

mod choker;
mod config;
mod error;
mod policy;
mod rate;
mod rng;
mod slots;
mod smart_ban;
mod swarm;
mod types;

pub use config::SwarmConfig;
pub use error::SwarmError;
pub use rate::TokenBucket;
pub use rustico_piece_picker::PeerKey;
pub use rustico_pieces::{Bitfield, BlockRequest, PieceData};
pub use swarm::Swarm;
pub use types::{
    BanReason, CloseReason, CompletedPiece, Dial, Disconnect, Event, HandshakeInfo, PeerCommand,
    PeerEvent, PeerSource, PeerStats, Refusal, Remote, SwarmStats,
};
