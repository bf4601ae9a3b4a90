//! The picker itself: per-piece state, per-peer state, the pick rules and
//! the events that feed them.

use std::cell::Cell;
use std::fmt;

use crate::buckets::Buckets;
use crate::config::{Geometry, PickMode, PickerConfig, DEFAULT_PRIORITY, MAX_PRIORITY};
use crate::peer_bits::PeerBits;
use crate::rng::SplitMix64;
use crate::PickerError;
use rustico_pieces::BlockRequest;

mod check;
mod pick;

const NONE: u32 = u32::MAX;
const LEVELS: usize = MAX_PRIORITY as usize + 1;
/// A bitfield or peer removal touching at least this many pieces (or a
/// quarter of a smaller torrent) marks the order stale instead of moving
/// each piece: one rebuild at the next pick is cheaper than thousands of
/// single moves when several peers arrive at once.
const REBUILD_THRESHOLD: u32 = 512;

/// A small copyable handle for a peer, issued by [`PiecePicker::add_peer`].
///
/// It carries a generation, so a handle kept after
/// [`PiecePicker::remove_peer`] is rejected instead of addressing whichever
/// peer reuses the slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerKey {
    index: u32,
    generation: u32,
}

impl PeerKey {
    /// Slot number, dense from 0: usable to index a caller's own tables.
    pub fn index(self) -> u32 {
        self.index
    }

    const NONE: PeerKey = PeerKey {
        index: NONE,
        generation: NONE,
    };
}

impl fmt::Display for PeerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}.{}", self.index, self.generation)
    }
}

/// What [`PiecePicker::block_received`] concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockOutcome {
    /// The block is new: write it. `false` means it was already received
    /// (an end-game duplicate or a late block) or the piece is already
    /// verified; drop the data.
    pub accepted: bool,
    /// Every block of the piece is now received: hash it, then report
    /// [`PiecePicker::piece_verified`] or [`PiecePicker::piece_hash_failed`].
    pub piece_complete: bool,
}

/// How a peer is treated by fastest-peer-first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpeedClass {
    /// Shares partial pieces with other slow peers.
    Slow,
    /// Could download a whole piece within
    /// [`PickerConfig::whole_piece_seconds`]: gets pieces of its own.
    Fast,
}

/// Where a piece stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PieceState {
    /// Verified (or declared present with [`PiecePicker::we_have`]).
    Have,
    /// All blocks received, waiting for the caller's hash check.
    Complete,
    /// Some blocks requested or received.
    Downloading,
    /// Wanted and not started.
    Open,
    /// Priority 0 and not started.
    Skipped,
}

#[derive(Clone, Copy, Debug)]
struct BlockSlot {
    received: bool,
    /// Peers this block is requested from and not yet received.
    requesters: u8,
    /// Who delivered it (for hash-failure blame).
    sender: PeerKey,
}

#[derive(Clone, Debug)]
struct Downloading {
    piece: u32,
    active: bool,
    blocks: Vec<BlockSlot>,
    /// Outstanding requests `(block, peer)`; the block's `requesters` counts
    /// them.
    requests: Vec<(u32, PeerKey)>,
    /// Blocks neither received nor requested.
    open_blocks: u32,
    /// No block below this index is open, so handing out blocks one or a
    /// few at a time does not rescan the requested prefix of the piece.
    first_open: u32,
    received: u32,
    owner: PeerKey,
    class: SpeedClass,
    /// Index in `open_partials`, or NONE.
    open_slot: u32,
}

#[derive(Clone, Debug)]
struct PeerSlot {
    generation: u32,
    live: bool,
    seed: bool,
    /// Its row in `PiecePicker::bits` (bit `p % 64` of word `p / 64`);
    /// NONE until the peer reports its first piece, and always for seeds.
    row: u32,
    has_count: u32,
    /// A piece it has that we wanted when last looked at (NONE if unknown):
    /// `interesting` re-checks it in O(1) and only searches when it has
    /// been completed since.
    witness: Cell<u32>,
    /// `want_version + 1` when a search found nothing we want; cleared by
    /// anything that could make the peer interesting again.
    not_interesting_at: Cell<u64>,
    rate: u64,
    class: SpeedClass,
    /// `(piece, block)` requested from this peer, in request order.
    in_flight: Vec<(u32, u32)>,
}

impl PeerSlot {
    #[inline]
    fn has(&self, bits: &PeerBits, piece: u32) -> bool {
        self.seed || (self.row != NONE && bits.has(self.row, piece))
    }

    /// Word `w` of its pieces (all ones for a seed).
    #[inline]
    fn word(&self, bits: &PeerBits, w: usize) -> u64 {
        if self.seed {
            u64::MAX
        } else if self.row == NONE {
            0
        } else {
            bits.word(self.row, w)
        }
    }
}

/// Decides which blocks to request from which peer. See the crate docs for
/// the rules and their costs.
#[derive(Clone, Debug)]
pub struct PiecePicker {
    geo: Geometry,
    cfg: PickerConfig,
    rng: SplitMix64,
    words: usize,

    // Per piece.
    /// Non-seed peers that have the piece (seeds are `seeds`).
    avail: Vec<u32>,
    prio: Vec<u8>,
    /// Slot in `levels[prio].order` while open.
    pos: Vec<u32>,
    /// Index in `dl` while downloading, else NONE.
    dl_of: Vec<u32>,
    have_bits: Vec<u64>,
    /// Wanted (priority > 0) and missing.
    want_bits: Vec<u64>,
    /// Bumped whenever a piece becomes wanted again (cached "not
    /// interesting" answers expire).
    want_version: u64,
    /// Wanted, missing and not started.
    open_bits: Vec<u64>,
    have_count: u32,
    wanted_missing: u32,
    open_count: u32,

    levels: [Buckets; LEVELS],
    /// The level order is stale; rebuilt before the next pick.
    dirty: bool,
    seq_cursor: usize,

    seeds: u32,
    peers: Vec<PeerSlot>,
    /// The non-seed peers' bitfields.
    bits: PeerBits,
    /// Reused buffer for a bitfield being taken out of `bits`.
    scratch: Vec<u64>,
    free_peers: Vec<u32>,
    live_peers: u32,

    dl: Vec<Downloading>,
    free_dl: Vec<u32>,
    /// Downloading pieces that still have open blocks.
    open_partials: Vec<u32>,

    end_game: bool,
    /// Sum over blocks of `requesters - 1`.
    duplicate_requests: u32,
}

#[inline]
fn bit(bits: &[u64], p: u32) -> bool {
    bits[(p >> 6) as usize] & (1u64 << (p & 63)) != 0
}

#[inline]
fn set_bit(bits: &mut [u64], p: u32, on: bool) {
    let w = &mut bits[(p >> 6) as usize];
    if on {
        *w |= 1u64 << (p & 63);
    } else {
        *w &= !(1u64 << (p & 63));
    }
}

/// Rank of a candidate new piece: lower is better.
#[derive(Clone, Copy)]
enum Rank {
    Rarest,
    Random,
}

impl PiecePicker {
    /// Creates a picker for a torrent where we have nothing yet, every piece
    /// at [`DEFAULT_PRIORITY`](crate::DEFAULT_PRIORITY).
    pub fn new(config: PickerConfig) -> Result<Self, PickerError> {
        let geo = config.geometry()?;
        let n = geo.num_pieces as usize;
        let words = n.div_ceil(64);
        let mut open_bits = vec![u64::MAX; words];
        if n % 64 != 0 {
            if let Some(last) = open_bits.last_mut() {
                *last = (1u64 << (n % 64)) - 1;
            }
        }
        let mut picker = Self {
            geo,
            rng: SplitMix64::new(config.seed),
            cfg: config,
            words,
            avail: vec![0; n],
            prio: vec![DEFAULT_PRIORITY; n],
            pos: vec![NONE; n],
            dl_of: vec![NONE; n],
            have_bits: vec![0; words],
            want_bits: open_bits.clone(),
            want_version: 0,
            open_bits,
            have_count: 0,
            wanted_missing: n as u32,
            open_count: n as u32,
            levels: Default::default(),
            dirty: true,
            seq_cursor: 0,
            seeds: 0,
            peers: Vec::new(),
            bits: PeerBits::new(words),
            scratch: Vec::new(),
            free_peers: Vec::new(),
            live_peers: 0,
            dl: Vec::new(),
            free_dl: Vec::new(),
            open_partials: Vec::new(),
            end_game: false,
            duplicate_requests: 0,
        };
        picker.ensure_clean();
        Ok(picker)
    }

    // ----------------------------------------------------------------- getters

    /// Number of pieces in the torrent.
    pub fn num_pieces(&self) -> u32 {
        self.geo.num_pieces
    }

    /// Number of blocks in `piece` (0 if out of range).
    pub fn blocks_in_piece(&self, piece: u32) -> u32 {
        if piece < self.geo.num_pieces {
            self.geo.blocks_in(piece)
        } else {
            0
        }
    }

    /// Whether `piece` is verified (false if out of range).
    pub fn have(&self, piece: u32) -> bool {
        piece < self.geo.num_pieces && bit(&self.have_bits, piece)
    }

    /// Number of verified pieces.
    pub fn have_count(&self) -> u32 {
        self.have_count
    }

    /// Every piece is verified.
    pub fn is_complete(&self) -> bool {
        self.have_count == self.geo.num_pieces
    }

    /// Every piece with a non-zero priority is verified.
    pub fn is_finished(&self) -> bool {
        self.wanted_missing == 0
    }

    /// Where `piece` stands (`None` if out of range).
    pub fn piece_state(&self, piece: u32) -> Option<PieceState> {
        if piece >= self.geo.num_pieces {
            return None;
        }
        let p = piece as usize;
        Some(if bit(&self.have_bits, piece) {
            PieceState::Have
        } else if self.dl_of[p] != NONE {
            let d = &self.dl[self.dl_of[p] as usize];
            if d.received as usize == d.blocks.len() {
                PieceState::Complete
            } else {
                PieceState::Downloading
            }
        } else if self.prio[p] == 0 {
            PieceState::Skipped
        } else {
            PieceState::Open
        })
    }

    /// How many connected peers have `piece`, seeds included (0 if out of
    /// range).
    pub fn availability(&self, piece: u32) -> u32 {
        self.avail.get(piece as usize).map_or(0, |a| a + self.seeds)
    }

    /// Priority of `piece` (0 if out of range).
    pub fn piece_priority(&self, piece: u32) -> u8 {
        self.prio.get(piece as usize).copied().unwrap_or(0)
    }

    /// Connected peers.
    pub fn num_peers(&self) -> u32 {
        self.live_peers
    }

    /// Connected peers that have every piece.
    pub fn num_seeds(&self) -> u32 {
        self.seeds
    }

    /// Pieces with some blocks requested or received but not yet verified.
    pub fn downloading_count(&self) -> usize {
        self.dl.len() - self.free_dl.len()
    }

    /// Whether duplicate requests are being handed out (every missing block
    /// that a connected peer has is already requested).
    pub fn in_end_game(&self) -> bool {
        self.end_game
    }

    /// Whether `peer` has a piece we still want: send `interested` if so.
    /// False for unknown peers. O(1) while the piece that proved interest
    /// last time (its *witness*) is still wanted; otherwise one word-wise
    /// search of the peer's pieces, whose negative answer is cached until a
    /// piece becomes wanted again.
    pub fn interesting(&self, peer: PeerKey) -> bool {
        match self.peer(peer) {
            Ok(slot) if slot.seed => self.wanted_missing > 0,
            Ok(slot) => self.peer_interesting(slot),
            Err(_) => false,
        }
    }

    /// Whether `peer` has `piece` (false for unknown peers or pieces).
    pub fn peer_has_piece(&self, peer: PeerKey, piece: u32) -> bool {
        piece < self.geo.num_pieces && self.peer(peer).is_ok_and(|s| s.has(&self.bits, piece))
    }

    /// The speed class fastest-peer-first assigns to `peer`.
    pub fn speed_class(&self, peer: PeerKey) -> Option<SpeedClass> {
        self.peer(peer).ok().map(|s| s.class)
    }

    /// Blocks requested from `peer` and not yet received, rejected or
    /// returned, oldest first. Empty for unknown peers.
    pub fn in_flight(&self, peer: PeerKey) -> impl Iterator<Item = BlockRequest> + '_ {
        let list: &[(u32, u32)] = match self.peer(peer) {
            Ok(slot) => &slot.in_flight,
            Err(_) => &[],
        };
        list.iter().map(move |&(p, b)| self.block_request(p, b))
    }

    /// Number of blocks in flight to `peer` (0 for unknown peers).
    pub fn in_flight_count(&self, peer: PeerKey) -> usize {
        self.peer(peer).map_or(0, |s| s.in_flight.len())
    }

    fn block_request(&self, piece: u32, block: u32) -> BlockRequest {
        BlockRequest {
            piece,
            offset: block * self.geo.block_size,
            length: self.geo.block_len(piece, block),
        }
    }

    fn peer(&self, key: PeerKey) -> Result<&PeerSlot, PickerError> {
        match self.peers.get(key.index as usize) {
            Some(s) if s.live && s.generation == key.generation => Ok(s),
            _ => Err(PickerError::UnknownPeer { peer: key }),
        }
    }

    fn peer_mut(&mut self, key: PeerKey) -> Result<&mut PeerSlot, PickerError> {
        match self.peers.get_mut(key.index as usize) {
            Some(s) if s.live && s.generation == key.generation => Ok(s),
            _ => Err(PickerError::UnknownPeer { peer: key }),
        }
    }

    fn check_piece(&self, piece: u32) -> Result<(), PickerError> {
        if piece < self.geo.num_pieces {
            Ok(())
        } else {
            Err(PickerError::PieceOutOfRange {
                piece,
                num_pieces: self.geo.num_pieces,
            })
        }
    }

    fn block_index(&self, block: BlockRequest) -> Result<u32, PickerError> {
        self.check_piece(block.piece)?;
        let bs = self.geo.block_size;
        let index = block.offset / bs;
        if block.offset % bs != 0
            || index >= self.geo.blocks_in(block.piece)
            || block.length != self.geo.block_len(block.piece, index)
        {
            return Err(PickerError::BadBlock {
                piece: block.piece,
                offset: block.offset,
                length: block.length,
            });
        }
        Ok(index)
    }

    fn rebuild_threshold(&self) -> u32 {
        (self.geo.num_pieces / 4).clamp(1, REBUILD_THRESHOLD)
    }

    #[inline]
    fn is_open(&self, piece: u32) -> bool {
        bit(&self.open_bits, piece)
    }

    #[inline]
    fn wanted(&self, piece: u32) -> bool {
        self.prio[piece as usize] > 0 && !bit(&self.have_bits, piece)
    }

    // ------------------------------------------------------------- peer events

    /// Registers a new peer that has nothing yet.
    pub fn add_peer(&mut self) -> PeerKey {
        self.live_peers += 1;
        if let Some(index) = self.free_peers.pop() {
            let slot = &mut self.peers[index as usize];
            slot.live = true;
            return PeerKey {
                index,
                generation: slot.generation,
            };
        }
        let index = self.peers.len() as u32;
        self.peers.push(PeerSlot {
            generation: 0,
            live: true,
            seed: false,
            row: NONE,
            has_count: 0,
            witness: Cell::new(NONE),
            not_interesting_at: Cell::new(0),
            rate: 0,
            class: SpeedClass::Slow,
            in_flight: Vec::new(),
        });
        PeerKey {
            index,
            generation: 0,
        }
    }

    /// Forgets a peer: its in-flight blocks return to the pool and its
    /// pieces stop counting. O(1) for a seed, O(pieces / 64 + its pieces)
    /// otherwise. The handle becomes invalid.
    pub fn remove_peer(&mut self, peer: PeerKey) -> Result<(), PickerError> {
        self.peer(peer)?;
        self.return_all(peer);
        let idx = peer.index as usize;
        let slot = &mut self.peers[idx];
        let row = std::mem::replace(&mut slot.row, NONE);
        let was_seed = slot.seed;
        let count = slot.has_count;
        slot.live = false;
        slot.seed = false;
        slot.generation = slot.generation.wrapping_add(1);
        slot.has_count = 0;
        slot.witness.set(NONE);
        slot.not_interesting_at.set(0);
        slot.rate = 0;
        slot.class = SpeedClass::Slow;
        if was_seed {
            self.seeds -= 1;
        } else {
            if count >= self.rebuild_threshold() {
                self.dirty = true;
            }
            self.forget_row(row);
        }
        self.free_peers.push(peer.index);
        self.live_peers -= 1;
        Ok(())
    }

    /// Frees a peer's row (if any) and takes its pieces out of the
    /// availability counts.
    fn forget_row(&mut self, row: u32) {
        if row == NONE {
            return;
        }
        let mut pieces = std::mem::take(&mut self.scratch);
        self.bits.release(row, &mut pieces);
        self.for_each_bit(&pieces, |picker, p| picker.sub_availability(p));
        self.scratch = pieces;
    }

    fn for_each_bit(&mut self, bits: &[u64], mut f: impl FnMut(&mut Self, u32)) {
        for (w, &word) in bits.iter().enumerate() {
            let mut word = word;
            while word != 0 {
                let p = (w as u32) * 64 + word.trailing_zeros();
                word &= word - 1;
                f(self, p);
            }
        }
    }

    /// `peer` announced `piece` (a `have` message). O(1).
    pub fn peer_has(&mut self, peer: PeerKey, piece: u32) -> Result<(), PickerError> {
        self.check_piece(piece)?;
        let wanted = self.wanted(piece);
        let slot = self.peer_mut(peer)?;
        if slot.seed {
            return Ok(());
        }
        if slot.row == NONE {
            let row = self.bits.alloc();
            self.peers[peer.index as usize].row = row;
        }
        let slot = &mut self.peers[peer.index as usize];
        let w = self.bits.word_mut(slot.row, (piece >> 6) as usize);
        let m = 1u64 << (piece & 63);
        if *w & m != 0 {
            return Ok(());
        }
        *w |= m;
        slot.has_count += 1;
        if wanted {
            slot.witness.set(piece);
            slot.not_interesting_at.set(0);
        }
        self.add_availability(piece);
        Ok(())
    }

    /// `peer` sent its BitTorrent bitfield (one bit per piece, most
    /// significant bit of byte 0 is piece 0). Pieces in it are added to what
    /// the peer has. O(pieces).
    pub fn peer_bitfield(&mut self, peer: PeerKey, bitfield: &[u8]) -> Result<(), PickerError> {
        let n = self.geo.num_pieces as usize;
        let expected = n.div_ceil(8);
        if bitfield.len() != expected {
            return Err(PickerError::BitfieldLength {
                expected,
                actual: bitfield.len(),
            });
        }
        if n % 8 != 0 {
            let spare_mask = 0xFFu8 >> (n % 8);
            if bitfield[expected - 1] & spare_mask != 0 {
                return Err(PickerError::BitfieldSpareBits {
                    byte_offset: expected - 1,
                });
            }
        }
        let words = self.words;
        let slot = self.peer_mut(peer)?;
        if slot.seed {
            return Ok(());
        }
        if slot.row == NONE {
            let row = self.bits.alloc();
            self.peers[peer.index as usize].row = row;
        }
        let row = self.peers[peer.index as usize].row;
        let mut new_bits = Vec::with_capacity(words);
        let mut new_count = 0u32;
        for (w, chunk) in bitfield.chunks(8).enumerate() {
            let mut word = 0u64;
            for (k, byte) in chunk.iter().enumerate() {
                word |= u64::from(byte.reverse_bits()) << (8 * k);
            }
            let mine = self.bits.word_mut(row, w);
            let fresh = word & !*mine;
            *mine |= fresh;
            new_count += fresh.count_ones();
            new_bits.push(fresh);
        }
        self.peers[peer.index as usize].has_count += new_count;
        if new_count >= self.rebuild_threshold() {
            self.dirty = true;
        }
        let mut witness = NONE;
        self.for_each_bit(&new_bits, |picker, p| {
            if witness == NONE && picker.wanted(p) {
                witness = p;
            }
            picker.add_availability(p);
        });
        if witness != NONE {
            let slot = &self.peers[peer.index as usize];
            slot.witness.set(witness);
            slot.not_interesting_at.set(0);
        }
        Ok(())
    }

    /// `peer` has every piece (a bitfield full of ones or `have_all`): it
    /// becomes a seed, counted once rather than per piece. O(1) for a fresh
    /// peer.
    pub fn peer_has_all(&mut self, peer: PeerKey) -> Result<(), PickerError> {
        let n = self.geo.num_pieces;
        let slot = self.peer_mut(peer)?;
        if slot.seed {
            return Ok(());
        }
        let row = std::mem::replace(&mut slot.row, NONE);
        let count = slot.has_count;
        slot.seed = true;
        slot.has_count = n;
        self.seeds += 1;
        if count >= self.rebuild_threshold() {
            self.dirty = true;
        }
        self.forget_row(row);
        Ok(())
    }

    /// `peer` has no pieces (`have_none`). Nothing to do beyond checking the
    /// handle; provided so every BEP 6 message has a counterpart.
    pub fn peer_has_none(&mut self, peer: PeerKey) -> Result<(), PickerError> {
        self.peer(peer).map(|_| ())
    }

    /// The measured download rate from `peer` in bytes per second; decides
    /// its [`SpeedClass`].
    pub fn set_peer_rate(
        &mut self,
        peer: PeerKey,
        bytes_per_second: u64,
    ) -> Result<(), PickerError> {
        let fast = self.cfg.fastest_peer_first
            && bytes_per_second.saturating_mul(u64::from(self.cfg.whole_piece_seconds))
                >= u64::from(self.geo.piece_length);
        let slot = self.peer_mut(peer)?;
        slot.rate = bytes_per_second;
        slot.class = if fast {
            SpeedClass::Fast
        } else {
            SpeedClass::Slow
        };
        Ok(())
    }

    fn add_availability(&mut self, piece: u32) {
        let p = piece as usize;
        let old = self.avail[p];
        self.avail[p] = old + 1;
        if !self.dirty && self.is_open(piece) {
            self.levels[self.prio[p] as usize].increment(&mut self.pos, piece, old);
        }
    }

    fn sub_availability(&mut self, piece: u32) {
        let p = piece as usize;
        let old = self.avail[p];
        self.avail[p] = old - 1;
        if !self.dirty && self.is_open(piece) {
            self.levels[self.prio[p] as usize].decrement(&mut self.pos, piece, old);
        }
    }

    // ------------------------------------------------------------ block events

    /// `peer` choked us (or its requests timed out): every block in flight
    /// to it returns to the pool.
    pub fn peer_choked(&mut self, peer: PeerKey) -> Result<(), PickerError> {
        self.peer(peer)?;
        self.return_all(peer);
        Ok(())
    }

    /// `peer` rejected a request (BEP 6 `reject`): the block returns to the
    /// pool. A block not in flight to the peer is ignored.
    pub fn block_rejected(
        &mut self,
        peer: PeerKey,
        block: BlockRequest,
    ) -> Result<(), PickerError> {
        let b = self.block_index(block)?;
        let slot = self.peer_mut(peer)?;
        if let Some(i) = slot.in_flight.iter().position(|&x| x == (block.piece, b)) {
            slot.in_flight.remove(i);
            self.drop_request(block.piece, b, peer);
        }
        Ok(())
    }

    /// `peer` delivered `block`. Peers that were also asked for it (end-game)
    /// are appended to `cancel`: send them `cancel`; their requests are
    /// already forgotten here.
    pub fn block_received(
        &mut self,
        peer: PeerKey,
        block: BlockRequest,
        cancel: &mut Vec<PeerKey>,
    ) -> Result<BlockOutcome, PickerError> {
        let b = self.block_index(block)?;
        let piece = block.piece;
        let slot = self.peer_mut(peer)?;
        if let Some(i) = slot.in_flight.iter().position(|&x| x == (piece, b)) {
            slot.in_flight.remove(i);
        }
        let rejected = BlockOutcome {
            accepted: false,
            piece_complete: false,
        };
        if bit(&self.have_bits, piece) {
            self.drop_request(piece, b, peer);
            return Ok(rejected);
        }
        let d = match self.dl_of[piece as usize] {
            NONE => self.start_piece(piece, peer),
            d => d,
        };
        let entry = &mut self.dl[d as usize];
        let slot = entry.blocks[b as usize];
        if slot.received {
            self.drop_request(piece, b, peer);
            return Ok(rejected);
        }
        let r = u32::from(slot.requesters);
        self.duplicate_requests -= r.saturating_sub(1);
        if r == 0 {
            entry.open_blocks -= 1;
        }
        entry.blocks[b as usize] = BlockSlot {
            received: true,
            requesters: 0,
            sender: peer,
        };
        entry.received += 1;
        let mut i = 0;
        while i < entry.requests.len() {
            let (rb, rp) = entry.requests[i];
            if rb == b {
                entry.requests.swap_remove(i);
                if rp != peer {
                    cancel.push(rp);
                    if let Some(s) = self.peers.get_mut(rp.index as usize) {
                        if let Some(j) = s.in_flight.iter().position(|&x| x == (piece, b)) {
                            s.in_flight.remove(j);
                        }
                    }
                }
            } else {
                i += 1;
            }
        }
        let complete = entry.received as usize == entry.blocks.len();
        if entry.open_blocks == 0 {
            self.unlist_partial(d);
        }
        Ok(BlockOutcome {
            accepted: true,
            piece_complete: complete,
        })
    }

    /// The caller hashed a complete piece and it matched: we have it now.
    pub fn piece_verified(&mut self, piece: u32) -> Result<(), PickerError> {
        self.check_piece(piece)?;
        if bit(&self.have_bits, piece) {
            return Ok(());
        }
        let d = self.dl_of[piece as usize];
        if d == NONE || self.dl[d as usize].received as usize != self.dl[d as usize].blocks.len() {
            return Err(PickerError::PieceNotComplete { piece });
        }
        self.free_downloading(d);
        self.mark_have(piece);
        Ok(())
    }

    /// The caller hashed a complete piece and it did not match: the piece is
    /// reset and can be picked again. The distinct peers that sent its
    /// blocks are appended to `contributors` (handles of peers that left
    /// since are included; they are simply unknown now).
    pub fn piece_hash_failed(
        &mut self,
        piece: u32,
        contributors: &mut Vec<PeerKey>,
    ) -> Result<(), PickerError> {
        self.check_piece(piece)?;
        let d = self.dl_of[piece as usize];
        if d == NONE || self.dl[d as usize].received as usize != self.dl[d as usize].blocks.len() {
            return Err(PickerError::PieceNotComplete { piece });
        }
        let first = contributors.len();
        for s in &self.dl[d as usize].blocks {
            if !contributors[first..].contains(&s.sender) {
                contributors.push(s.sender);
            }
        }
        self.free_downloading(d);
        self.make_open(piece);
        Ok(())
    }

    /// Declares `piece` present without downloading it (resume data, or a
    /// piece found on disk). Requests in flight for it are forgotten: their
    /// blocks, if they arrive, come back as not accepted.
    pub fn we_have(&mut self, piece: u32) -> Result<(), PickerError> {
        self.check_piece(piece)?;
        if bit(&self.have_bits, piece) {
            return Ok(());
        }
        let d = self.dl_of[piece as usize];
        if d != NONE {
            let requests = std::mem::take(&mut self.dl[d as usize].requests);
            for &(b, peer) in &requests {
                if let Some(s) = self.peers.get_mut(peer.index as usize) {
                    if let Some(j) = s.in_flight.iter().position(|&x| x == (piece, b)) {
                        s.in_flight.remove(j);
                    }
                }
                let slot = &mut self.dl[d as usize].blocks[b as usize];
                if slot.requesters > 1 {
                    self.duplicate_requests -= 1;
                }
                slot.requesters -= 1;
            }
            self.free_downloading(d);
        } else if self.is_open(piece) {
            self.make_closed(piece);
        }
        self.mark_have(piece);
        Ok(())
    }

    /// Sets one piece's priority (0 = skip, 1..=7, higher first). A piece
    /// already downloading keeps its requests but gets no new ones at 0.
    pub fn set_piece_priority(&mut self, piece: u32, priority: u8) -> Result<(), PickerError> {
        self.check_piece(piece)?;
        if priority > MAX_PRIORITY {
            return Err(PickerError::PriorityOutOfRange { priority });
        }
        let p = piece as usize;
        let old = self.prio[p];
        if old == priority {
            return Ok(());
        }
        let was_open = self.is_open(piece);
        if was_open {
            self.make_closed(piece);
        }
        self.prio[p] = priority;
        if !bit(&self.have_bits, piece) && (old == 0) != (priority == 0) {
            let gained = priority > 0;
            if gained {
                self.wanted_missing += 1;
            } else {
                self.wanted_missing -= 1;
            }
            set_bit(&mut self.want_bits, piece, gained);
            if gained {
                self.want_version += 1;
            }
        }
        if self.dl_of[p] == NONE && self.wanted(piece) {
            self.make_open(piece);
        }
        Ok(())
    }

    /// Sets every piece's priority at once (for example from file
    /// priorities). O(pieces).
    pub fn set_priorities(&mut self, priorities: &[u8]) -> Result<(), PickerError> {
        let n = self.geo.num_pieces as usize;
        if priorities.len() != n {
            return Err(PickerError::PrioritiesLength {
                expected: n,
                actual: priorities.len(),
            });
        }
        if let Some(&priority) = priorities.iter().find(|&&x| x > MAX_PRIORITY) {
            return Err(PickerError::PriorityOutOfRange { priority });
        }
        self.prio.copy_from_slice(priorities);
        self.dirty = true;
        self.wanted_missing = 0;
        self.open_count = 0;
        for piece in 0..n as u32 {
            let wanted = self.wanted(piece);
            self.wanted_missing += u32::from(wanted);
            let open = wanted && self.dl_of[piece as usize] == NONE;
            set_bit(&mut self.open_bits, piece, open);
            self.open_count += u32::from(open);
        }
        for w in 0..self.words {
            let mut word = !self.have_bits[w];
            for k in 0..64 {
                if self.prio.get(w * 64 + k).is_none_or(|&x| x == 0) {
                    word &= !(1u64 << k);
                }
            }
            self.want_bits[w] = word;
        }
        self.want_version += 1;
        self.seq_cursor = 0;
        Ok(())
    }

    /// Whether a non-seed or seed peer has something we want: check the
    /// witness, else search `bits & want_bits` from it, caching a miss until
    /// the wanted set grows.
    fn peer_interesting(&self, slot: &PeerSlot) -> bool {
        if slot.seed {
            return self.wanted_missing > 0;
        }
        let w = slot.witness.get();
        if w != NONE && bit(&self.want_bits, w) && slot.has(&self.bits, w) {
            return true;
        }
        if slot.not_interesting_at.get() == self.want_version + 1 || slot.row == NONE {
            return false;
        }
        let words = self.words;
        let from = if w == NONE { 0 } else { (w >> 6) as usize };
        for k in 0..words {
            let i = (from + k) % words;
            let hit = self.bits.word(slot.row, i) & self.want_bits[i];
            if hit != 0 {
                slot.witness.set((i as u32) * 64 + hit.trailing_zeros());
                return true;
            }
        }
        slot.not_interesting_at.set(self.want_version + 1);
        false
    }

    // --------------------------------------------------------- state changes

    fn mark_have(&mut self, piece: u32) {
        set_bit(&mut self.have_bits, piece, true);
        self.have_count += 1;
        if self.prio[piece as usize] > 0 {
            self.wanted_missing -= 1;
            set_bit(&mut self.want_bits, piece, false);
        }
    }

    /// Open -> not open (started, had, or skipped).
    fn make_closed(&mut self, piece: u32) {
        set_bit(&mut self.open_bits, piece, false);
        self.open_count -= 1;
        if !self.dirty {
            let p = piece as usize;
            self.levels[self.prio[p] as usize].remove(&mut self.pos, piece, self.avail[p]);
            self.pos[p] = NONE;
        }
    }

    /// Not open -> open, if it is wanted.
    fn make_open(&mut self, piece: u32) {
        if !self.wanted(piece) || self.is_open(piece) {
            return;
        }
        set_bit(&mut self.open_bits, piece, true);
        self.open_count += 1;
        let w = (piece >> 6) as usize;
        self.seq_cursor = self.seq_cursor.min(w);
        if !self.dirty {
            let p = piece as usize;
            self.levels[self.prio[p] as usize].insert(&mut self.pos, piece, self.avail[p]);
        }
    }

    /// Moves `piece` into the downloading set, owned by `owner`.
    fn start_piece(&mut self, piece: u32, owner: PeerKey) -> u32 {
        if self.is_open(piece) {
            self.make_closed(piece);
        }
        let nb = self.geo.blocks_in(piece);
        let class = self.peer(owner).map_or(SpeedClass::Slow, |s| s.class);
        let d = match self.free_dl.pop() {
            Some(d) => d,
            None => {
                self.dl.push(Downloading {
                    piece,
                    active: false,
                    blocks: Vec::new(),
                    requests: Vec::new(),
                    open_blocks: 0,
                    first_open: 0,
                    received: 0,
                    owner,
                    class,
                    open_slot: NONE,
                });
                (self.dl.len() - 1) as u32
            }
        };
        let entry = &mut self.dl[d as usize];
        entry.piece = piece;
        entry.active = true;
        entry.blocks.clear();
        entry.blocks.resize(
            nb as usize,
            BlockSlot {
                received: false,
                requesters: 0,
                sender: PeerKey::NONE,
            },
        );
        entry.requests.clear();
        entry.open_blocks = nb;
        entry.first_open = 0;
        entry.received = 0;
        entry.owner = owner;
        entry.class = class;
        entry.open_slot = NONE;
        self.dl_of[piece as usize] = d;
        self.list_partial(d);
        d
    }

    fn free_downloading(&mut self, d: u32) {
        self.unlist_partial(d);
        let entry = &mut self.dl[d as usize];
        entry.active = false;
        self.dl_of[entry.piece as usize] = NONE;
        self.free_dl.push(d);
    }

    fn list_partial(&mut self, d: u32) {
        let entry = &mut self.dl[d as usize];
        if entry.open_slot == NONE {
            entry.open_slot = self.open_partials.len() as u32;
            self.open_partials.push(d);
        }
    }

    fn unlist_partial(&mut self, d: u32) {
        let slot = self.dl[d as usize].open_slot;
        if slot != NONE {
            self.open_partials.swap_remove(slot as usize);
            if let Some(&moved) = self.open_partials.get(slot as usize) {
                self.dl[moved as usize].open_slot = slot;
            }
            self.dl[d as usize].open_slot = NONE;
        }
    }

    /// Returns every block in flight to `peer`.
    fn return_all(&mut self, peer: PeerKey) {
        let idx = peer.index as usize;
        let mut list = std::mem::take(&mut self.peers[idx].in_flight);
        for &(piece, b) in &list {
            self.drop_request(piece, b, peer);
        }
        list.clear();
        self.peers[idx].in_flight = list;
    }

    /// Forgets the request of `(piece, block)` from `peer` (its in-flight
    /// entry is already gone). A block nobody is asked for any more becomes
    /// open; a piece with nothing requested or received becomes open.
    fn drop_request(&mut self, piece: u32, block: u32, peer: PeerKey) {
        let d = self.dl_of[piece as usize];
        if d == NONE {
            return;
        }
        let entry = &mut self.dl[d as usize];
        let Some(i) = entry.requests.iter().position(|&x| x == (block, peer)) else {
            return;
        };
        entry.requests.swap_remove(i);
        let slot = &mut entry.blocks[block as usize];
        slot.requesters -= 1;
        if slot.requesters > 0 {
            self.duplicate_requests -= 1;
            return;
        }
        if slot.received {
            return;
        }
        entry.open_blocks += 1;
        entry.first_open = entry.first_open.min(block);
        if entry.received == 0 && entry.requests.is_empty() {
            self.free_downloading(d);
            self.make_open(piece);
        } else {
            self.list_partial(d);
        }
    }
}
