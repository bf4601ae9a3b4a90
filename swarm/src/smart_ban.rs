//! Smart ban: who sent the bad blocks of a piece that failed its hash.
//!
//! For each failed piece the swarm keeps, per block, who sent it and the
//! SHA-1 of what they sent (20 bytes a block, never the piece itself), for
//! at most a fixed number of pieces (the oldest is forgotten). When a good
//! copy of the piece is saved, every block whose hash differs names a peer
//! that sent corrupt data. Besides that proof, peers are counted: a peer
//! that alone sent a failed piece, or that took part in many failed pieces,
//! is banned after a configured number of them.

use std::collections::{HashMap, VecDeque};

use sha1::{Digest, Sha1};

use rustico_pieces::PieceData;

use crate::{BanReason, Remote};

/// Most remotes whose failure counts are remembered.
const MAX_BLAMED: usize = 4096;
/// Failed copies of one piece whose records are kept, the latest ones
/// (within the cap of all suspect records): each may name a different
/// liar.
const MAX_COPIES_PER_PIECE: usize = 4;

/// Who sent one block of a failed piece, and the SHA-1 of what they sent.
type BlockRecord = Option<(Remote, [u8; 20])>;

#[derive(Debug, Default, Clone, Copy)]
struct Blame {
    sole: u32,
    shared: u32,
}

#[derive(Debug)]
pub(crate) struct SmartBan {
    max_pieces: usize,
    sole_to_ban: u32,
    shared_to_ban: u32,
    /// Failed pieces, oldest first: per block, the sender and the hash of
    /// its bytes.
    suspects: VecDeque<(u32, Vec<BlockRecord>)>,
    blame: HashMap<Remote, Blame>,
}

/// The SHA-1 of the `len` bytes of `data` from `start`.
fn block_hash(data: &PieceData, start: usize, len: usize) -> [u8; 20] {
    let mut sha1 = Sha1::new();
    for slice in data.range(start, len) {
        sha1.update(slice);
    }
    sha1.finalize().into()
}

impl SmartBan {
    pub(crate) fn new(max_pieces: usize, sole_to_ban: u32, shared_to_ban: u32) -> SmartBan {
        SmartBan {
            max_pieces,
            sole_to_ban: sole_to_ban.max(1),
            shared_to_ban: shared_to_ban.max(1),
            suspects: VecDeque::new(),
            blame: HashMap::new(),
        }
    }

    /// Failed pieces remembered now.
    pub(crate) fn suspects(&self) -> usize {
        self.suspects.len()
    }

    /// A piece failed: `senders[i]` sent block `i` (of `block_len` bytes)
    /// of `data`. Returns the remotes to ban now, with why. Without
    /// `count_shared`, a piece from several senders is recorded but
    /// counts against none of them (something better will tell).
    pub(crate) fn piece_failed(
        &mut self,
        piece: u32,
        data: &PieceData,
        block_len: usize,
        senders: &[Option<Remote>],
        count_shared: bool,
    ) -> Vec<(Remote, BanReason)> {
        let mut distinct: Vec<Remote> = senders.iter().flatten().copied().collect();
        distinct.sort_unstable();
        distinct.dedup();
        let mut bans = Vec::new();
        if self.makes_room_for(piece, &distinct) {
            let record = senders
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let start = i * block_len;
                    if start >= data.len() {
                        return None;
                    }
                    s.map(|r| (r, block_hash(data, start, block_len)))
                })
                .collect();
            if self.suspects.len() >= self.max_pieces {
                self.suspects.pop_front();
            }
            self.suspects.push_back((piece, record));
        }
        if self.blame.len() >= MAX_BLAMED {
            self.blame.retain(|_, b| b.sole > 0);
            if self.blame.len() >= MAX_BLAMED {
                self.blame.clear();
            }
        }
        let sole = distinct.len() == 1;
        if !sole && !count_shared {
            return bans;
        }
        for remote in distinct {
            let b = self.blame.entry(remote).or_default();
            if sole {
                b.sole += 1;
                if b.sole >= self.sole_to_ban {
                    bans.push((remote, BanReason::FailedPieces));
                }
            } else {
                b.shared += 1;
                if b.shared >= self.shared_to_ban {
                    bans.push((remote, BanReason::SharedFailedPieces));
                }
            }
        }
        bans
    }

    /// Whether a failed copy of `piece` sent by `senders` is recorded.
    /// Every copy is, up to a few per piece: keeping only the first let
    /// the sender of a later bad copy escape once a good copy arrived
    /// (simulator seed 20). Past the few, a copy that names a sender no
    /// kept copy names takes the place of the oldest copy whose senders
    /// the others still name: keeping the first few let a liar that came
    /// after them escape (seed 12309), and dropping the oldest let the
    /// first liar escape (12 other seeds).
    fn makes_room_for(&mut self, piece: u32, senders: &[Remote]) -> bool {
        if self.max_pieces == 0 {
            return false;
        }
        let kept: Vec<usize> = (0..self.suspects.len())
            .filter(|&i| self.suspects[i].0 == piece)
            .collect();
        if kept.len() < MAX_COPIES_PER_PIECE {
            return true;
        }
        let names = |i: usize, r: &Remote| {
            self.suspects[i]
                .1
                .iter()
                .flatten()
                .any(|(sender, _)| sender == r)
        };
        let named_elsewhere =
            |skip: Option<usize>, r: &Remote| kept.iter().any(|&i| Some(i) != skip && names(i, r));
        if senders.iter().all(|r| named_elsewhere(None, r)) {
            return false;
        }
        let spare = kept.iter().copied().find(|&i| {
            self.suspects[i]
                .1
                .iter()
                .flatten()
                .all(|(r, _)| senders.contains(r) || named_elsewhere(Some(i), r))
        });
        match spare {
            Some(i) => {
                self.suspects.remove(i);
                true
            }
            None => false,
        }
    }

    /// The blocks `corrupt` of the latest failed copy of `piece` were
    /// proved wrong (a v2 piece's block hashes): their senders, and the
    /// copy's record is done with. Empty when no copy is remembered.
    pub(crate) fn blocks_corrupt(&mut self, piece: u32, corrupt: &[u32]) -> Vec<Remote> {
        let Some(at) = self.suspects.iter().rposition(|(p, _)| *p == piece) else {
            return Vec::new();
        };
        let Some((_, record)) = self.suspects.remove(at) else {
            return Vec::new();
        };
        let mut liars: Vec<Remote> = Vec::new();
        for &block in corrupt {
            if let Some(Some((remote, _))) = record.get(block as usize) {
                if !liars.contains(remote) {
                    liars.push(*remote);
                }
            }
        }
        liars
    }

    /// A good copy of `piece` was saved: the senders of blocks that differ
    /// from it sent corrupt data.
    pub(crate) fn piece_saved(
        &mut self,
        piece: u32,
        good: &PieceData,
        block_len: usize,
    ) -> Vec<Remote> {
        let mut liars: Vec<Remote> = Vec::new();
        while let Some(at) = self.suspects.iter().position(|(p, _)| *p == piece) {
            let Some((_, record)) = self.suspects.remove(at) else {
                break;
            };
            for (i, entry) in record.iter().enumerate() {
                let Some((remote, hash)) = entry else {
                    continue;
                };
                let start = i * block_len;
                if start >= good.len() {
                    continue;
                }
                if block_hash(good, start, block_len) != *hash && !liars.contains(remote) {
                    liars.push(*remote);
                }
            }
        }
        liars
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Test bytes as a piece in 16-byte chunks, like its blocks.
    fn pd(data: &[u8]) -> PieceData {
        PieceData::from_chunks(data.chunks(16).map(<[u8]>::to_vec).collect())
    }
    use std::net::SocketAddr;

    fn remote(port: u16) -> Remote {
        Remote::Addr(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    #[test]
    fn a_good_copy_names_the_sender_of_the_bad_block() {
        let mut s = SmartBan::new(4, 2, 6);
        let good = vec![7u8; 40];
        let mut bad = good.clone();
        bad[25] ^= 1;
        let senders = [Some(remote(1)), Some(remote(2)), Some(remote(1))];
        assert!(s.piece_failed(3, &pd(&bad), 16, &senders, true).is_empty());
        assert_eq!(s.piece_saved(3, &pd(&good), 16), [remote(2)]);
        assert_eq!(s.suspects(), 0);
        assert!(s.piece_saved(3, &pd(&good), 16).is_empty());
    }

    /// Found by the simulator (seed 20 of `rustico-sim`'s seeds test): a
    /// piece failed first with one liar's block, then with another's; only
    /// the first copy was kept, so the second liar was never named.
    #[test]
    fn every_failed_copy_of_a_piece_can_name_its_liar() {
        let mut s = SmartBan::new(8, 100, 100);
        let good = vec![7u8; 32];
        let mut first = good.clone();
        first[3] ^= 1;
        let mut second = good.clone();
        second[20] ^= 1;
        s.piece_failed(
            5,
            &pd(&first),
            16,
            &[Some(remote(1)), Some(remote(3))],
            true,
        );
        s.piece_failed(
            5,
            &pd(&second),
            16,
            &[Some(remote(3)), Some(remote(2))],
            true,
        );
        assert_eq!(s.suspects(), 2);
        assert_eq!(s.piece_saved(5, &pd(&good), 16), [remote(1), remote(2)]);
        assert_eq!(s.suspects(), 0);
    }

    /// Found by the simulator (seed 12309): four copies of a piece failed
    /// with one liar's blocks, then more with another's. Only the first
    /// four were kept, so the good copy never named the second liar.
    #[test]
    fn a_liar_after_the_first_few_failed_copies_is_still_named() {
        let mut s = SmartBan::new(16, 100, 100);
        let good = vec![7u8; 32];
        let mut bad = good.clone();
        bad[3] ^= 1;
        for _ in 0..MAX_COPIES_PER_PIECE {
            s.piece_failed(5, &pd(&bad), 16, &[Some(remote(1)), Some(remote(9))], true);
        }
        s.piece_failed(5, &pd(&bad), 16, &[Some(remote(2)), Some(remote(9))], true);
        assert_eq!(s.suspects(), MAX_COPIES_PER_PIECE, "still bounded");
        assert_eq!(s.piece_saved(5, &pd(&good), 16), [remote(1), remote(2)]);
    }

    /// Found when the fix above dropped the oldest copy instead (12
    /// seeds): the first liar, named only there, escaped.
    #[test]
    fn a_copy_that_alone_names_a_liar_is_kept() {
        let mut s = SmartBan::new(16, 100, 100);
        let good = vec![7u8; 32];
        let mut bad = good.clone();
        bad[3] ^= 1;
        bad[19] ^= 1;
        let copy = |a, b| [Some(remote(a)), Some(remote(b))];
        s.piece_failed(5, &pd(&bad), 16, &copy(1, 9), true);
        for _ in 1..MAX_COPIES_PER_PIECE {
            s.piece_failed(5, &pd(&bad), 16, &copy(9, 2), true);
        }
        s.piece_failed(5, &pd(&bad), 16, &copy(9, 3), true);
        // Nothing new: not recorded, and nothing is dropped for it.
        s.piece_failed(5, &pd(&bad), 16, &copy(3, 2), true);
        assert_eq!(s.suspects(), MAX_COPIES_PER_PIECE, "still bounded");
        let mut liars = s.piece_saved(5, &pd(&good), 16);
        liars.sort_unstable();
        assert_eq!(liars, [remote(1), remote(2), remote(3), remote(9)]);
    }

    #[test]
    fn proved_corrupt_blocks_name_their_senders_in_the_latest_copy() {
        let mut s = SmartBan::new(8, 100, 100);
        let data = [0u8; 48];
        s.piece_failed(
            2,
            &pd(&data),
            16,
            &[Some(remote(1)), Some(remote(2)), Some(remote(3))],
            true,
        );
        s.piece_failed(
            2,
            &pd(&data),
            16,
            &[Some(remote(4)), Some(remote(5)), Some(remote(4))],
            true,
        );
        assert_eq!(s.blocks_corrupt(2, &[0, 2, 7]), [remote(4)]);
        assert_eq!(s.suspects(), 1, "the first copy is still kept");
        assert_eq!(s.blocks_corrupt(2, &[1]), [remote(2)]);
        assert!(s.blocks_corrupt(2, &[1]).is_empty(), "nothing left");
    }

    #[test]
    fn a_sole_sender_is_banned_after_the_configured_failures() {
        let mut s = SmartBan::new(4, 2, 6);
        let data = [0u8; 32];
        let only = [Some(remote(1)), Some(remote(1))];
        assert!(s.piece_failed(0, &pd(&data), 16, &only, true).is_empty());
        assert_eq!(
            s.piece_failed(1, &pd(&data), 16, &only, true),
            [(remote(1), BanReason::FailedPieces)]
        );
    }

    #[test]
    fn shared_failures_count_only_when_asked_to() {
        let mut s = SmartBan::new(8, 1, 1);
        let shared = [Some(remote(1)), Some(remote(2))];
        assert!(s
            .piece_failed(0, &pd(&[0u8; 32]), 16, &shared, false)
            .is_empty());
        assert_eq!(s.suspects(), 1, "recorded all the same");
        assert_eq!(
            s.piece_failed(1, &pd(&[0u8; 32]), 16, &shared, true).len(),
            2
        );
        let sole = [Some(remote(3)), Some(remote(3))];
        assert_eq!(
            s.piece_failed(2, &pd(&[0u8; 32]), 16, &sole, false),
            [(remote(3), BanReason::FailedPieces)],
            "a sole sender is counted anyway"
        );
    }

    #[test]
    fn memory_is_bounded_by_the_suspect_cap() {
        let mut s = SmartBan::new(3, 100, 100);
        for piece in 0..10 {
            s.piece_failed(
                piece,
                &pd(&[1u8; 32]),
                16,
                &[Some(remote(1)), Some(remote(2))],
                true,
            );
        }
        assert_eq!(s.suspects(), 3);
        assert!(
            s.piece_saved(0, &pd(&[0u8; 32]), 16).is_empty(),
            "forgotten"
        );
        assert_eq!(s.piece_saved(9, &pd(&[0u8; 32]), 16).len(), 2);
    }
}
