//! `pick` and its rules: partial pieces, new pieces by mode, end-game.

use super::*;

impl PiecePicker {
    /// Appends up to `max_blocks` requests for `peer` to `out` and records
    /// them as in flight; returns how many were appended. See the crate docs
    /// for the order of the rules.
    pub fn pick(
        &mut self,
        peer: PeerKey,
        max_blocks: usize,
        out: &mut Vec<BlockRequest>,
    ) -> Result<usize, PickerError> {
        self.peer(peer)?;
        let before = out.len();
        if max_blocks == 0 {
            return Ok(0);
        }
        self.ensure_clean();
        if self.end_game && self.duplicate_requests == 0 && self.any_pickable_open_block() {
            self.end_game = false;
        }
        let mut left = max_blocks;
        left = self.pick_partials(peer, left, out, true);
        while left > 0 {
            let Some(piece) = self.choose_new_piece(peer) else {
                break;
            };
            let d = self.start_piece(piece, peer);
            left = self.request_open_blocks(d, peer, left, out);
        }
        if left > 0 {
            left = self.pick_partials(peer, left, out, false);
        }
        if left > 0 && self.cfg.end_game_max_duplicates > 0 && !self.any_pickable_open_block() {
            self.end_game = true;
            self.pick_end_game(peer, left, out);
        }
        Ok(out.len() - before)
    }

    /// Like [`pick`](Self::pick), but only blocks of `pieces`, in that
    /// order: the BEP 6 allowed-fast pieces a peer serves while it chokes
    /// us. A piece is taken when the peer has it and it is wanted, either
    /// already downloading (its open blocks) or not started; no end-game
    /// duplicates. Returns how many requests were appended.
    pub fn pick_in(
        &mut self,
        peer: PeerKey,
        pieces: &[u32],
        max_blocks: usize,
        out: &mut Vec<BlockRequest>,
    ) -> Result<usize, PickerError> {
        self.peer(peer)?;
        let before = out.len();
        self.ensure_clean();
        let mut left = max_blocks;
        for &piece in pieces {
            if left == 0 {
                break;
            }
            if piece >= self.geo.num_pieces
                || !self.wanted(piece)
                || !self.peer_has_piece(peer, piece)
            {
                continue;
            }
            let d = match self.dl_of[piece as usize] {
                NONE if self.is_open(piece) => self.start_piece(piece, peer),
                NONE => continue,
                d if self.dl[d as usize].open_blocks > 0 => d,
                _ => continue,
            };
            left = self.request_open_blocks(d, peer, left, out);
        }
        Ok(out.len() - before)
    }

    /// Partial pieces first. `strict` applies fastest-peer-first: own
    /// pieces, then abandoned ones (nothing in flight), then — for slow
    /// peers — other slow peers' pieces. Not strict: any partial piece.
    fn pick_partials(
        &mut self,
        peer: PeerKey,
        mut left: usize,
        out: &mut Vec<BlockRequest>,
        strict: bool,
    ) -> usize {
        while left > 0 {
            let Some(d) = self.choose_partial(peer, strict) else {
                break;
            };
            let before = left;
            left = self.request_open_blocks(d, peer, left, out);
            // A listed partial piece always yields a block; should that
            // ever break, stop rather than spin (the model test then fails).
            debug_assert!(left < before, "partial piece {d} yielded no block");
            if left == before {
                break;
            }
        }
        left
    }

    /// Which partial piece `peer` should continue. Asking whether the peer
    /// has a piece is the costly step (a cache miss into its bitfield), so
    /// cheap filters run first: the piece it requested last; then the
    /// highest priority among the eligible partial pieces, taking the first
    /// listed that the peer has. Sequential mode takes the lowest index.
    fn choose_partial(&self, peer: PeerKey, strict: bool) -> Option<u32> {
        let slot = &self.peers[peer.index as usize];
        if let Some(&(piece, _)) = slot.in_flight.last() {
            let d = self.dl_of[piece as usize];
            if d != NONE && self.dl[d as usize].open_blocks > 0 && self.prio[piece as usize] > 0 {
                return Some(d);
            }
        }
        let eligible = |entry: &Downloading| {
            entry.owner == peer
                || !strict
                || entry.requests.is_empty()
                || !self.cfg.fastest_peer_first
                || (slot.class == SpeedClass::Slow && entry.class == SpeedClass::Slow)
        };
        if self.cfg.mode == PickMode::Sequential {
            let mut best: Option<((u8, u32), u32)> = None;
            for &d in &self.open_partials {
                let entry = &self.dl[d as usize];
                let prio = self.prio[entry.piece as usize];
                if prio == 0 || !eligible(entry) || !slot.has(&self.bits, entry.piece) {
                    continue;
                }
                let key = (MAX_PRIORITY - prio, entry.piece);
                if best.is_none_or(|(k, _)| key < k) {
                    best = Some((key, d));
                }
            }
            return best.map(|(_, d)| d);
        }
        let mut level = 0u8;
        for &d in &self.open_partials {
            let entry = &self.dl[d as usize];
            let prio = self.prio[entry.piece as usize];
            if prio > level && eligible(entry) {
                level = prio;
            }
        }
        // Candidates are tested in batches of 8 without an early exit, so
        // the bitfield loads (likely cache misses) overlap instead of
        // queueing one behind the other.
        const BATCH: usize = 8;
        let mut batch = [(0u32, 0u32); BATCH];
        while level > 0 {
            let mut lower = 0u8;
            let mut filled = 0;
            for &d in &self.open_partials {
                let entry = &self.dl[d as usize];
                let prio = self.prio[entry.piece as usize];
                if prio > level || prio == 0 || !eligible(entry) {
                    continue;
                }
                if prio < level {
                    lower = lower.max(prio);
                    continue;
                }
                batch[filled] = (d, entry.piece);
                filled += 1;
                if filled == BATCH {
                    if let Some(d) = Self::first_held(&self.bits, slot, &batch) {
                        return Some(d);
                    }
                    filled = 0;
                }
            }
            if let Some(d) = Self::first_held(&self.bits, slot, &batch[..filled]) {
                return Some(d);
            }
            level = lower;
        }
        None
    }

    /// The first `(d, piece)` whose piece the peer has, testing all of them
    /// first so the loads can run in parallel.
    fn first_held(bits: &PeerBits, slot: &PeerSlot, candidates: &[(u32, u32)]) -> Option<u32> {
        let mut mask = 0u32;
        for (i, &(_, piece)) in candidates.iter().enumerate() {
            mask |= u32::from(slot.has(bits, piece)) << i;
        }
        candidates
            .get(mask.trailing_zeros() as usize)
            .map(|&(d, _)| d)
    }

    /// Requests open blocks of downloading piece `d` from `peer`, in block
    /// order. Returns how many blocks are still wanted.
    fn request_open_blocks(
        &mut self,
        d: u32,
        peer: PeerKey,
        mut left: usize,
        out: &mut Vec<BlockRequest>,
    ) -> usize {
        let geo = self.geo;
        let pslot = &mut self.peers[peer.index as usize];
        let entry = &mut self.dl[d as usize];
        if entry.requests.is_empty() || entry.owner == PeerKey::NONE {
            entry.owner = peer;
            entry.class = pslot.class;
        }
        let piece = entry.piece;
        let mut next = entry.first_open as usize;
        while left > 0 && entry.open_blocks > 0 {
            let Some(slot) = entry.blocks.get_mut(next) else {
                break;
            };
            let b = next as u32;
            next += 1;
            if slot.received || slot.requesters > 0 {
                continue;
            }
            slot.requesters = 1;
            entry.open_blocks -= 1;
            entry.requests.push((b, peer));
            pslot.in_flight.push((piece, b));
            out.push(BlockRequest {
                piece,
                offset: b * geo.block_size,
                length: geo.block_len(piece, b),
            });
            left -= 1;
        }
        entry.first_open = next as u32;
        if entry.open_blocks == 0 {
            self.unlist_partial(d);
        }
        left
    }

    fn choose_new_piece(&mut self, peer: PeerKey) -> Option<u32> {
        if self.open_count == 0 {
            return None;
        }
        if self.cfg.mode == PickMode::RarestFirst && self.have_count < self.cfg.random_first_pieces
        {
            return self.scan_levels(peer, Rank::Random);
        }
        match self.cfg.mode {
            PickMode::RarestFirst => self.scan_levels(peer, Rank::Rarest),
            PickMode::Random => self.scan_levels(peer, Rank::Random),
            PickMode::Sequential => self.sequential(peer),
        }
    }

    /// Walks the open pieces of each level from the highest priority down.
    /// Rarest: non-empty buckets from the least available up; inside a
    /// bucket start at a random slot and wrap, so ties are broken at random.
    /// After a bounded number of probes (the peer has few of the open
    /// pieces) it switches to a word-wise scan of the peer's bitfield, which
    /// costs O(pieces / 64) at most.
    fn scan_levels(&mut self, peer: PeerKey, rank: Rank) -> Option<u32> {
        if let Rank::Random = rank {
            return self.random_piece(peer);
        }
        let slot = &self.peers[peer.index as usize];
        let budget = 64 + self.words;
        let mut probes = 0usize;
        // Candidates in preference order, tested 8 at a time (see
        // `first_held`).
        let mut batch = [0u32; 8];
        let mut filled = 0;
        for level in (1..LEVELS).rev() {
            let b = &self.levels[level];
            let mut next = b.next_non_empty(0);
            while let Some(a) = next {
                let bucket = &b.buckets[a];
                let width = bucket.len();
                let start = self.rng.below(width as u32) as usize;
                for t in 0..width {
                    let j = if start + t >= width {
                        start + t - width
                    } else {
                        start + t
                    };
                    batch[filled] = bucket[j];
                    filled += 1;
                    if filled == batch.len() {
                        if let Some(piece) = Self::first_held_piece(&self.bits, slot, &batch) {
                            return Some(piece);
                        }
                        filled = 0;
                        probes += batch.len();
                        if probes > budget {
                            return self.bitset_scan(peer, rank);
                        }
                    }
                }
                next = b.next_non_empty(a + 1);
            }
            if let Some(piece) = Self::first_held_piece(&self.bits, slot, &batch[..filled]) {
                return Some(piece);
            }
            filled = 0;
        }
        None
    }

    /// The first piece of `candidates` that the peer has; all are tested
    /// before choosing so the bitfield loads overlap.
    fn first_held_piece(bits: &PeerBits, slot: &PeerSlot, candidates: &[u32]) -> Option<u32> {
        let mut mask = 0u32;
        for (i, &piece) in candidates.iter().enumerate() {
            mask |= u32::from(slot.has(bits, piece)) << i;
        }
        candidates.get(mask.trailing_zeros() as usize).copied()
    }

    /// A random open piece the peer has, at the highest open priority: a
    /// word-wise walk of `peer bits & open bits` from a random word, then a
    /// random candidate inside the first word that has one.
    fn random_piece(&mut self, peer: PeerKey) -> Option<u32> {
        let top = (1..LEVELS).rev().find(|&l| self.levels[l].len > 0)? as u8;
        let slot = &self.peers[peer.index as usize];
        let words = self.words;
        let start = self.rng.below(words as u32) as usize;
        for k in 0..words {
            let w = (start + k) % words;
            let mine = slot.word(&self.bits, w);
            let mut word = self.open_bits[w] & mine;
            let mut at_top = 0u64;
            while word != 0 {
                let bit = word.trailing_zeros();
                word &= word - 1;
                if self.prio[w * 64 + bit as usize] == top {
                    at_top |= 1u64 << bit;
                }
            }
            if at_top != 0 {
                let mut skip = self.rng.below(at_top.count_ones());
                while skip > 0 {
                    at_top &= at_top - 1;
                    skip -= 1;
                }
                return Some((w as u32) * 64 + at_top.trailing_zeros());
            }
        }
        self.bitset_scan(peer, Rank::Random)
    }

    /// Best open piece among those the peer has, by a word-wise walk of
    /// `peer bits & open bits`; ties broken by reservoir sampling.
    fn bitset_scan(&mut self, peer: PeerKey, rank: Rank) -> Option<u32> {
        let slot = &self.peers[peer.index as usize];
        let mut best: Option<((u8, u32), u32)> = None;
        let mut ties = 0u32;
        for (w, &open) in self.open_bits.iter().enumerate() {
            let mine = slot.word(&self.bits, w);
            let mut word = mine & open;
            while word != 0 {
                let piece = (w as u32) * 64 + word.trailing_zeros();
                word &= word - 1;
                let p = piece as usize;
                let key = match rank {
                    Rank::Rarest => (MAX_PRIORITY - self.prio[p], self.avail[p]),
                    Rank::Random => (MAX_PRIORITY - self.prio[p], 0),
                };
                match best {
                    Some((k, _)) if key > k => {}
                    Some((k, _)) if key == k => {
                        ties += 1;
                        if self.rng.below(ties) == 0 {
                            best = Some((key, piece));
                        }
                    }
                    _ => {
                        ties = 1;
                        best = Some((key, piece));
                    }
                }
            }
        }
        best.map(|(_, piece)| piece)
    }

    /// Lowest-index open piece the peer has, at the highest priority it can
    /// serve. O(pieces / 64) words at most, from the first open word.
    fn sequential(&mut self, peer: PeerKey) -> Option<u32> {
        while self.seq_cursor < self.words && self.open_bits[self.seq_cursor] == 0 {
            self.seq_cursor += 1;
        }
        let top = (1..LEVELS).rev().find(|&l| self.levels[l].len > 0)? as u8;
        let slot = &self.peers[peer.index as usize];
        let mut best: Option<(u8, u32)> = None;
        for w in self.seq_cursor..self.words {
            let mine = slot.word(&self.bits, w);
            let mut word = self.open_bits[w] & mine;
            while word != 0 {
                let piece = (w as u32) * 64 + word.trailing_zeros();
                word &= word - 1;
                let prio = self.prio[piece as usize];
                if prio == top {
                    return Some(piece);
                }
                if best.is_none_or(|(bp, _)| prio > bp) {
                    best = Some((prio, piece));
                }
            }
        }
        best.map(|(_, piece)| piece)
    }

    /// Whether some block nobody is asked for could be requested from some
    /// connected peer. End-game starts when this is false.
    fn any_pickable_open_block(&self) -> bool {
        if self.open_count > 0
            && (self.seeds > 0
                || self.levels[1..]
                    .iter()
                    .any(|l| l.len > l.buckets.first().map_or(0, Vec::len)))
        {
            return true;
        }
        self.open_partials.iter().any(|&d| {
            let p = self.dl[d as usize].piece as usize;
            self.prio[p] > 0 && self.avail[p] + self.seeds > 0
        })
    }

    /// End-game: blocks already in flight elsewhere, least duplicated first,
    /// at most `1 + end_game_max_duplicates` requests per block.
    fn pick_end_game(&mut self, peer: PeerKey, mut left: usize, out: &mut Vec<BlockRequest>) {
        let geo = self.geo;
        let max_requesters = self.cfg.end_game_max_duplicates.saturating_add(1);
        for wanted_requesters in 1..max_requesters {
            for d in 0..self.dl.len() {
                if left == 0 {
                    return;
                }
                let entry = &mut self.dl[d];
                let piece = entry.piece;
                let pslot = &mut self.peers[peer.index as usize];
                if !entry.active || self.prio[piece as usize] == 0 || !pslot.has(&self.bits, piece)
                {
                    continue;
                }
                for b in 0..entry.blocks.len() {
                    if left == 0 {
                        break;
                    }
                    let slot = entry.blocks[b];
                    let b = b as u32;
                    if slot.received
                        || slot.requesters != wanted_requesters
                        || entry.requests.contains(&(b, peer))
                    {
                        continue;
                    }
                    entry.blocks[b as usize].requesters += 1;
                    self.duplicate_requests += 1;
                    entry.requests.push((b, peer));
                    pslot.in_flight.push((piece, b));
                    out.push(BlockRequest {
                        piece,
                        offset: b * geo.block_size,
                        length: geo.block_len(piece, b),
                    });
                    left -= 1;
                }
            }
        }
    }

    /// Rebuilds every level's availability order if it is stale. O(pieces).
    pub(super) fn ensure_clean(&mut self) {
        if !self.dirty {
            return;
        }
        let mut per_level: [Vec<(u32, u32)>; LEVELS] = Default::default();
        for (w, &word) in self.open_bits.iter().enumerate() {
            let mut word = word;
            while word != 0 {
                let piece = (w as u32) * 64 + word.trailing_zeros();
                word &= word - 1;
                let p = piece as usize;
                per_level[self.prio[p] as usize].push((piece, self.avail[p]));
            }
        }
        for (level, pieces) in per_level.iter().enumerate() {
            self.levels[level].rebuild(&mut self.pos, pieces);
        }
        self.dirty = false;
    }
}
