//! The BitTorrent peer wire protocol: the handshake, every message of
//! BEP 3 and BEP 6, the extension protocol of BEP 10 with `ut_metadata`
//! (BEP 9) and `ut_pex` (BEP 11), a stream framer, and the peer session:
//! one connection's protocol state as a sans-IO state machine
//! ([`Handshaking`] then [`Session`]). Nothing here does I/O or reads the
//! clock: the caller moves bytes and passes `Instant`s. Sans-IO
//! bookkeeping for fetching and serving metadata (BEP 9) and for peer
//! exchange (BEP 11) sits beside the session.
//!
//! ```
//! use rustico_peer_wire::{Framer, Handshake, Message, Reserved, Status, BlockRequest};
//!
//! // What a peer might send: a handshake, then messages.
//! let peer = Handshake::new(Reserved::supported(), [0xaa; 20], *b"-XX0001-abcdefghijkl");
//! let mut wire = Vec::new();
//! peer.encode(&mut wire);
//! Message::HaveAll.encode(&mut wire);
//! Message::Unchoke.encode(&mut wire);
//! Message::Piece { index: 3, begin: 0, data: b"block bytes" }.encode(&mut wire);
//!
//! // The handshake first; the rest of the stream goes to the framer.
//! let Status::Complete(handshake, used) = Handshake::decode(&wire)? else { unreachable!() };
//! assert!(handshake.reserved.fast());
//! let mut framer = Framer::new();
//! framer.feed(&wire[used..]);
//! assert_eq!(framer.next_message()?, Some(Message::HaveAll));
//! assert_eq!(framer.next_message()?, Some(Message::Unchoke));
//! // Piece payloads borrow from the framer's buffer: no copy.
//! let Some(Message::Piece { data, .. }) = framer.next_message()? else { unreachable!() };
//! assert_eq!(data, b"block bytes");
//! assert_eq!(framer.next_message()?, None); // needs more bytes
//!
//! // Encoding appends to a buffer the caller owns.
//! let mut out = Vec::new();
//! Message::Request(BlockRequest { piece: 3, offset: 0, length: 16384 }).encode(&mut out);
//! assert_eq!(out, [0, 0, 0, 13, 6, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0x40, 0]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The session, two of them talking in memory (see [`Session`] for a
//! whole exchange, and for the order in which to drain its `poll_*`
//! methods):
//!
//! ```
//! use std::time::Instant;
//! use rustico_peer_wire::{
//!     Bitfield, Content, Event, Geometry, Handshake, Handshaking, Progress, Reserved,
//!     SessionConfig,
//! };
//!
//! let now = Instant::now();
//! let geometry = Geometry::new(100_000, 32_768)?;
//! let start = |id: u8, have: Bitfield| {
//!     let ours = Handshake::new(Reserved::supported(), [9; 20], [id; 20]);
//!     Handshaking::new(ours, Content::torrent(geometry, have).unwrap(), SessionConfig::default(), now)
//! };
//! let (mut seed, mut leech) = (start(1, Bitfield::full(4)), start(2, Bitfield::new(4)));
//! let (mut to_leech, mut to_seed) = (Vec::new(), Vec::new());
//! seed.poll_transmit(&mut to_leech, now);
//! leech.poll_transmit(&mut to_seed, now);
//! // Only the peer's handshake turns a `Handshaking` into a `Session`.
//! let Progress::Established(mut seed) = seed.handle_input(&to_seed, now)? else { unreachable!() };
//! let Progress::Established(mut leech) = leech.handle_input(&to_leech, now)? else { unreachable!() };
//! // The seed sends its pieces, then its extension handshake.
//! let mut wire = Vec::new();
//! seed.poll_transmit(&mut wire, now);
//! leech.handle_input(&wire, now)?;
//! assert_eq!(leech.poll_event(), Some(Event::HaveAll));
//! assert!(matches!(leech.poll_event(), Some(Event::Extensions(e)) if e.reqq == Some(500)));
//! assert_eq!(leech.poll_timeout(), Some(now + SessionConfig::default().stats_interval.unwrap()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Map
//! - [`Handshaking`] → [`Session`] ([`Progress`]): the peer session, with
//!   its [`SessionConfig`] and [`Content`] (a torrent's [`Geometry`] and
//!   our pieces, or a magnet link's metadata fetch). Out of it come
//!   [`Event`]s for the torrent, [`Action`]s for the driver (blocks to
//!   serve), bytes to send and one deadline from a table of [`Timer`]s;
//!   [`SessionError`] and [`Violation`] say why it ended.
//! - [`Handshake`], [`Reserved`]: the 68-byte handshake and its capability
//!   bits; incremental [`Handshake::decode`].
//! - [`Message`] (borrowed) and [`OwnedMessage`]: every message;
//!   [`Message::encode`] into a caller's buffer, [`decode_frame`] from a
//!   slice, [`piece_header`] for zero-copy sends.
//! - [`HashMessage`] (BEP 52 `hash request`, `hashes`, `hash reject`,
//!   ids 21 to 23, with their proof layers; [`HashMessageError`]) and
//!   [`v2_handshake`] / [`Reserved::v2_upgrade`]: the v2 wire.
//! - [`Framer`] and [`Limits`]: bytes in any split to messages, with
//!   bounded memory. [`FrameError`] says what broke and at which stream
//!   offset.
//! - [`Bitfield`]: a checked set of pieces; [`BlockRequest`]: one block
//!   (both from `rustico-pieces`, shared with the picker and storage).
//! - [`generate_peer_id`]: a peer id in the usual `-XXvvvv-` style.
//! - [`allowed_fast_set`]: BEP 6's allowed-fast pieces for a peer.
//! - [`ExtensionHandshake`], [`ExtensionMap`]: BEP 10;
//!   [`MetadataMessage`]: BEP 9; [`PexMessage`]: BEP 11.
//! - [`MetadataDownload`] (fetching a magnet link's info dictionary from
//!   several peers, SHA-1 checked, [`MetadataError`], [`DataOutcome`]) and
//!   [`MetadataServer`] (answering requests): BEP 9 bookkeeping, sans-IO.
//! - [`PexState`] (what to tell one peer, rate- and size-limited),
//!   [`PexState::handle_incoming`] and [`filter_incoming_pex`] (what to
//!   believe of what it tells us): BEP 11 bookkeeping. Never for private
//!   torrents; the caller enforces that.
//! - [`mse`]: Message Stream Encryption (MSE/PE), both roles as sans-IO
//!   state machines ([`mse::Initiator`], [`mse::Responder`]), the
//!   negotiated [`mse::Cipher`] a driver applies under the framer,
//!   [`mse::detect`] for incoming connections and the [`mse::Policy`]
//!   setting.
//!
//! Decoders never panic and never allocate by a length they have not
//! seen the bytes for.
#![forbid(unsafe_code)]

mod extension;
mod fast;
mod framer;
mod handshake;
mod message;
mod message_v2;
mod metadata;
mod metadata_download;
pub mod mse;
mod peer_id;
mod pex;
mod pex_state;
pub mod session;

pub use extension::{
    encode_extended, ExtensionError, ExtensionHandshake, ExtensionMap, HANDSHAKE_ID, UT_METADATA,
    UT_PEX,
};
pub use fast::allowed_fast_set;
pub use framer::Framer;
pub use handshake::{Handshake, HandshakeError, Reserved, HANDSHAKE_LEN, PROTOCOL};
pub use message::{decode_frame, id, piece_header, FrameError, Limits, Message, OwnedMessage};
pub use message_v2::{
    v2_handshake, Hash32, HashMessage, HashMessageError, HashRequest, HASHES, HASH_REJECT,
    HASH_REQUEST, HASH_REQUEST_LEN, MAX_HASHES_PER_MESSAGE,
};
pub use metadata::{metadata_piece_count, MetadataMessage, METADATA_PIECE_LEN};
pub use metadata_download::{
    DataOutcome, MetadataConfig, MetadataDownload, MetadataError, MetadataServer,
};
pub use peer_id::{generate_peer_id, RUSTICO_PEER_ID_PREFIX};
pub use pex::{PexFlags, PexMessage, PexPeer};
pub use pex_state::{filter_incoming_pex, IncomingPex, PexConfig, PexState};
pub use rustico_pieces::{
    Bitfield, BitfieldError, BlockRequest, Geometry, GeometryError, BLOCK_LEN,
};
pub use session::{
    Action, Content, ContentError, Event, Handshaking, HashSource, PeerExtensions, PeerPieces,
    Progress, Served, Session, SessionConfig, SessionError, Timer, Violation, MAX_HASH_REQUESTS,
};

/// The answer of an incremental decoder: not enough bytes yet, or a value
/// and how many bytes it used. Malformed input is an `Err` instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status<T> {
    /// The input ends before the value does; call again with more.
    Incomplete,
    /// The value, and the number of input bytes it took.
    Complete(T, usize),
}
