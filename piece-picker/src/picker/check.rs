//! The self-check used by the tests: every counter and index recomputed
//! from scratch and compared.

use super::*;

impl PiecePicker {
    /// Checks every internal invariant against a recomputation from scratch;
    /// O(pieces * peers). For tests and debugging: returns what is wrong.
    pub fn debug_check_invariants(&self) -> Result<(), String> {
        let n = self.geo.num_pieces;
        let mut avail = vec![0u32; n as usize];
        let mut seeds = 0;
        for s in self.peers.iter().filter(|s| s.live) {
            if s.seed {
                seeds += 1;
                if s.row != NONE {
                    return Err("seed with a bitfield".into());
                }
            } else {
                for p in 0..n {
                    if s.has(&self.bits, p) {
                        avail[p as usize] += 1;
                    }
                }
                let want = (0..n).any(|p| s.has(&self.bits, p) && self.wanted(p));
                if want != self.peer_interesting(s) {
                    return Err(format!("peer interest {} != {want}", !want));
                }
            }
        }
        if avail != self.avail || seeds != self.seeds {
            return Err("availability differs from the peers' pieces".into());
        }
        let mut open_count = 0;
        for p in 0..n {
            let open = self.wanted(p) && self.dl_of[p as usize] == NONE;
            if open != self.is_open(p) {
                return Err(format!(
                    "piece {p}: open bit {} but open is {open}",
                    self.is_open(p)
                ));
            }
            open_count += u32::from(open);
        }
        if open_count != self.open_count {
            return Err("open_count wrong".into());
        }
        if !self.dirty {
            let mut listed = 0;
            for (level, b) in self.levels.iter().enumerate() {
                b.check(&self.pos, &self.avail)?;
                for &p in b.buckets.iter().flatten() {
                    if self.prio[p as usize] as usize != level || !self.is_open(p) {
                        return Err(format!("piece {p} listed in level {level} wrongly"));
                    }
                }
                listed += b.len;
            }
            if listed as u32 != open_count {
                return Err("levels do not list every open piece".into());
            }
        }
        let mut dups = 0;
        for (d, e) in self.dl.iter().enumerate() {
            if !e.active {
                continue;
            }
            if self.dl_of[e.piece as usize] != d as u32 {
                return Err("dl_of mismatch".into());
            }
            let mut open_blocks = 0;
            let mut received = 0;
            for (b, s) in e.blocks.iter().enumerate() {
                let reqs = e
                    .requests
                    .iter()
                    .filter(|&&(rb, _)| rb as usize == b)
                    .count();
                if reqs != s.requesters as usize {
                    return Err(format!("piece {} block {b}: requesters mismatch", e.piece));
                }
                if s.received && reqs > 0 {
                    return Err("received block still requested".into());
                }
                dups += reqs.saturating_sub(1) as u32;
                let open = !s.received && reqs == 0;
                if open && (b as u32) < e.first_open {
                    return Err(format!(
                        "piece {}: block {b} open below first_open {}",
                        e.piece, e.first_open
                    ));
                }
                open_blocks += u32::from(open);
                received += u32::from(s.received);
            }
            if open_blocks != e.open_blocks || received != e.received {
                return Err(format!("piece {}: block counters wrong", e.piece));
            }
            if (e.open_slot != NONE) != (e.open_blocks > 0) {
                return Err(format!("piece {}: open_partials membership wrong", e.piece));
            }
            for &(b, peer) in &e.requests {
                let ok = self
                    .peer(peer)
                    .is_ok_and(|s| s.in_flight.iter().filter(|&&x| x == (e.piece, b)).count() == 1);
                if !ok {
                    return Err(format!("request ({}, {b}) not in its peer's list", e.piece));
                }
            }
        }
        if dups != self.duplicate_requests {
            return Err("duplicate_requests wrong".into());
        }
        if dups > 0 && !self.end_game {
            return Err("duplicate requests outside end-game".into());
        }
        let total_in_flight: usize = self.peers.iter().map(|s| s.in_flight.len()).sum();
        let total_requests: usize = self
            .dl
            .iter()
            .filter(|e| e.active)
            .map(|e| e.requests.len())
            .sum();
        if total_in_flight != total_requests {
            return Err("peer in-flight lists and piece requests differ".into());
        }
        Ok(())
    }
}
