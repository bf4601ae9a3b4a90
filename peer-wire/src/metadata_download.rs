//! BEP 9 bookkeeping on both sides of `ut_metadata`: [`MetadataDownload`]
//! fetches the info dictionary of a magnet link from several peers and
//! checks it against the info-hash; [`MetadataServer`] answers requests
//! once we have it. No I/O: the caller decodes [`MetadataMessage`]s, feeds
//! them in, and sends what `poll_request` hands out.

use std::time::{Duration, Instant};

use sha1::{Digest, Sha1};

use crate::metadata::{metadata_piece_count, MetadataMessage, METADATA_PIECE_LEN};

/// Limits of a [`MetadataDownload`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetadataConfig {
    /// Largest `metadata_size` believed. The default, 16 MiB, is far above
    /// real info dictionaries (a 20-byte hash per piece: 16 MiB holds
    /// about 800 000 pieces) and bounds what a lying peer can make us
    /// allocate.
    pub max_size: u32,
    /// After this long without an answer a piece may be asked of another
    /// peer (the first request stays open: its answer is still taken).
    pub request_timeout: Duration,
    /// Requests a single peer may have open at once. Timed-out requests
    /// count until answered or rejected, or the peer is gone, so a peer
    /// that stops answering stops being asked.
    pub max_requests_per_peer: usize,
}

impl Default for MetadataConfig {
    fn default() -> MetadataConfig {
        MetadataConfig {
            max_size: 16 * 1024 * 1024,
            request_timeout: Duration::from_secs(20),
            max_requests_per_peer: 4,
        }
    }
}

/// Input a [`MetadataDownload`] refuses. Each one names the offending
/// piece or size; none changes the download's state, and the download
/// goes on with other peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// A peer announced `metadata_size` 0.
    #[error("metadata_size 0 announced")]
    ZeroSize,
    /// A peer announced a `metadata_size` above [`MetadataConfig::max_size`].
    #[error("metadata_size {size} announced, the limit is {max}")]
    SizeTooLarge {
        /// The announced size.
        size: u64,
        /// The configured limit.
        max: u32,
    },
    /// A message about a piece past the end of the metadata.
    #[error("metadata piece {piece} out of range ({count} pieces)")]
    PieceOutOfRange {
        /// The piece index received.
        piece: u32,
        /// How many pieces the metadata has.
        count: u32,
    },
    /// A `Data` message whose `total_size` is not the size being fetched.
    #[error("metadata piece {piece} says total_size {total_size}, expected {expected}")]
    TotalSizeMismatch {
        /// The piece index received.
        piece: u32,
        /// The `total_size` it carried.
        total_size: u64,
        /// The size being fetched.
        expected: u32,
    },
    /// A `Data` message whose payload is not the piece's length.
    #[error("metadata piece {piece} has {got} bytes, expected {expected}")]
    WrongPieceLength {
        /// The piece index received.
        piece: u32,
        /// Bytes received.
        got: usize,
        /// Bytes that piece has.
        expected: u32,
    },
    /// Data for a piece this peer was not asked for (or whose request was
    /// forgotten by a reset); it is dropped.
    #[error("metadata piece {piece} was not requested from this peer")]
    NotRequested {
        /// The piece index received.
        piece: u32,
    },
    /// A message arrived while no size is being fetched (none chosen yet,
    /// or the metadata is already complete).
    #[error("metadata message for piece {piece} while no download is in progress")]
    NotDownloading {
        /// The piece index received.
        piece: u32,
    },
}

/// What [`MetadataDownload::handle_data`] did with a valid piece.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataOutcome<P> {
    /// Stored; more pieces are needed.
    Stored,
    /// The piece was already in (a late or duplicate answer); ignored.
    Duplicate,
    /// That was the last piece and the SHA-1 matches: take the bytes with
    /// [`MetadataDownload::poll_complete`].
    Complete,
    /// That was the last piece and the SHA-1 does not match the info-hash.
    /// Everything was discarded and the download starts over without these
    /// peers (each one that supplied a piece); the caller should drop them.
    HashMismatch {
        /// The peers that supplied pieces, each once.
        contributors: Vec<P>,
    },
}

#[derive(Debug)]
struct PeerEntry<P> {
    peer: P,
    size: u32,
    /// Pieces it answered with a reject; not asked again until a reset.
    refused: Vec<u32>,
}

#[derive(Debug, Clone)]
enum Slot<P> {
    Missing,
    /// Open requests, oldest first.
    Requested(Vec<(P, Instant)>),
    Have(P),
}

#[derive(Debug)]
struct Fetch<P> {
    size: u32,
    buffer: Bytes,
    slots: Vec<Slot<P>>,
    have: usize,
}

/// Metadata bytes, shown by length only: a `{:?}` of the download
/// should not print megabytes.
#[derive(Default)]
struct Bytes(Vec<u8>);

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{} bytes>", self.0.len())
    }
}

#[derive(Debug)]
enum Phase<P> {
    /// No size chosen yet; the next `poll_request` picks its peer's.
    Idle,
    Fetching(Fetch<P>),
    /// Verified bytes, not yet taken.
    Complete(Bytes),
    /// Bytes handed out by `poll_complete`.
    Taken,
}

/// Fetches a torrent's info dictionary with BEP 9 `ut_metadata`, from as
/// many peers as announce `metadata_size`, and checks its SHA-1 against
/// the info-hash.
///
/// `P` is the caller's peer handle (a slab key, an address): small and
/// `Copy`. Peers are kept in a list searched linearly, which is right for
/// the few dozen a torrent connects to.
///
/// Driving it:
/// 1. [`handle_metadata_size`](Self::handle_metadata_size) for each peer
///    whose extension handshake carries `metadata_size` and `ut_metadata`;
/// 2. [`poll_request`](Self::poll_request) for a peer until it returns
///    `None`, sending each piece as a `MetadataMessage::Request`; again
///    when something changed (an answer, a new peer, the deadline of
///    [`poll_timeout`](Self::poll_timeout));
/// 3. [`handle_data`](Self::handle_data), [`handle_reject`](Self::handle_reject),
///    [`handle_peer_gone`](Self::handle_peer_gone) as things happen;
/// 4. [`poll_complete`](Self::poll_complete) after a `DataOutcome::Complete`.
///
/// The size fetched is the first asking peer's; peers announcing another
/// size get no requests while pieces of this one are in or asked for and
/// some connected peer still claims it (if the chosen size was a lie, the
/// hash check fails, its contributors are reported and the next peer's
/// size is tried). BEP 9 has no per-piece hashes, so a mismatch cannot
/// tell an honest contributor from a lying one: all are reported. Requests go to distinct
/// pieces; a piece is asked of a second peer only once its request timed
/// out or when every piece is in or asked for (the end of the download).
///
/// ```
/// use std::time::Instant;
/// use rustico_peer_wire::{DataOutcome, MetadataDownload, MetadataServer, MetadataMessage};
/// use sha1::{Digest, Sha1};
///
/// let info = b"d6:lengthi5e4:name1:a12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaae".to_vec();
/// let info_hash: [u8; 20] = Sha1::digest(&info).into();
/// let seed = MetadataServer::new(info.clone());
///
/// let mut download = MetadataDownload::new(info_hash);
/// let now = Instant::now();
/// download.handle_metadata_size(7_u32, seed.metadata_size())?;
/// while let Some(piece) = download.poll_request(7, now) {
///     // Over the wire: a Request to the peer, a Data back.
///     let Some(MetadataMessage::Data { piece, total_size, data }) =
///         seed.answer(MetadataMessage::Request { piece }) else { unreachable!() };
///     if download.handle_data(7, piece, total_size, data)? == DataOutcome::Complete {
///         break;
///     }
/// }
/// assert_eq!(download.poll_complete(), Some(info));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct MetadataDownload<P> {
    info_hash: [u8; 20],
    /// What the info dictionary must hash to `info_hash` by.
    digest: fn(&[u8]) -> [u8; 20],
    config: MetadataConfig,
    peers: Vec<PeerEntry<P>>,
    phase: Phase<P>,
}

impl<P: Copy + Eq> MetadataDownload<P> {
    /// A download for `info_hash` with the default [`MetadataConfig`].
    pub fn new(info_hash: [u8; 20]) -> MetadataDownload<P> {
        MetadataDownload::with_config(info_hash, MetadataConfig::default())
    }

    /// A download for `info_hash` with the given limits.
    pub fn with_config(info_hash: [u8; 20], config: MetadataConfig) -> MetadataDownload<P> {
        MetadataDownload {
            info_hash,
            digest: sha1_digest,
            config,
            peers: Vec::new(),
            phase: Phase::Idle,
        }
    }

    /// The info-hash the metadata must match.
    pub fn info_hash(&self) -> [u8; 20] {
        self.info_hash
    }

    /// The same download, checking the metadata with `digest` instead of
    /// SHA-1: a v2-only torrent (BEP 52) goes by its SHA-256 info-hash
    /// truncated to 20 bytes, which this crate does not compute itself.
    ///
    /// ```
    /// use rustico_peer_wire::MetadataDownload;
    /// // Any 20-byte digest; a real one is the truncated SHA-256.
    /// fn first_20(info: &[u8]) -> [u8; 20] {
    ///     let mut out = [0u8; 20];
    ///     for (o, b) in out.iter_mut().zip(info) { *o = *b; }
    ///     out
    /// }
    /// let download = MetadataDownload::<u8>::new([0; 20]).with_digest(first_20);
    /// # let _ = download;
    /// ```
    pub fn with_digest(mut self, digest: fn(&[u8]) -> [u8; 20]) -> MetadataDownload<P> {
        self.digest = digest;
        self
    }

    /// Whether the metadata is verified (taken or not).
    pub fn is_complete(&self) -> bool {
        matches!(self.phase, Phase::Complete(_) | Phase::Taken)
    }

    /// The size being fetched, once chosen.
    pub fn size(&self) -> Option<u32> {
        match &self.phase {
            Phase::Fetching(fetch) => Some(fetch.size),
            _ => None,
        }
    }

    /// Pieces in and pieces in all, while fetching: for progress display.
    pub fn progress(&self) -> Option<(usize, usize)> {
        match &self.phase {
            Phase::Fetching(fetch) => Some((fetch.have, fetch.slots.len())),
            _ => None,
        }
    }

    /// A peer announced `metadata_size` in its extension handshake (again:
    /// the new size replaces the old). A size of 0 or above the limit is
    /// refused and the peer is not used.
    pub fn handle_metadata_size(&mut self, peer: P, size: u64) -> Result<(), MetadataError> {
        let checked = if size == 0 {
            Err(MetadataError::ZeroSize)
        } else {
            u32::try_from(size)
                .ok()
                .filter(|&s| s <= self.config.max_size)
                .ok_or(MetadataError::SizeTooLarge {
                    size,
                    max: self.config.max_size,
                })
        };
        match checked {
            Ok(size) => {
                match self.peers.iter_mut().find(|e| e.peer == peer) {
                    Some(entry) => entry.size = size,
                    None => self.peers.push(PeerEntry {
                        peer,
                        size,
                        refused: Vec::new(),
                    }),
                }
                Ok(())
            }
            Err(e) => {
                self.forget_peer(peer);
                Err(e)
            }
        }
    }

    /// The next metadata piece to request from `peer`, if any: `None` when
    /// the peer announced no usable size, announced another size than the
    /// one being fetched, has [`MetadataConfig::max_requests_per_peer`]
    /// open, refused what is left, or nothing is left to ask.
    pub fn poll_request(&mut self, peer: P, now: Instant) -> Option<u32> {
        let size = self.peers.iter().find(|e| e.peer == peer)?.size;
        // A size nobody has delivered or been asked for yet, or that no
        // connected peer claims any more, gives way to this peer's:
        // otherwise one peer's bad size would block the others for good.
        let restart = match &self.phase {
            Phase::Idle => true,
            Phase::Fetching(fetch) => {
                fetch.size != size
                    && ((fetch.have == 0 && fetch.slots.iter().all(|s| matches!(s, Slot::Missing)))
                        || !self.peers.iter().any(|e| e.size == fetch.size))
            }
            Phase::Complete(_) | Phase::Taken => return None,
        };
        if restart {
            self.phase = Phase::Fetching(Fetch::new(size));
            for entry in &mut self.peers {
                entry.refused.clear();
            }
        }
        let refused = &self.peers.iter().find(|e| e.peer == peer)?.refused;
        let Phase::Fetching(fetch) = &mut self.phase else {
            return None;
        };
        if fetch.size != size {
            return None;
        }
        let open = fetch
            .slots
            .iter()
            .filter(|s| matches!(s, Slot::Requested(r) if r.iter().any(|(p, _)| *p == peer)))
            .count();
        if open >= self.config.max_requests_per_peer {
            return None;
        }
        let askable = |index: usize, slot: &Slot<P>| {
            !refused.contains(&(index as u32))
                && !matches!(slot, Slot::Requested(r) if r.iter().any(|(p, _)| *p == peer))
        };
        let timeout = self.config.request_timeout;
        let timed_out = |r: &Vec<(P, Instant)>| {
            r.iter()
                .all(|(_, at)| now.saturating_duration_since(*at) >= timeout)
        };
        // Untouched pieces first, then those whose requests all timed out,
        // then, when everything is in or asked for, the least-asked piece.
        let choice = fetch
            .slots
            .iter()
            .enumerate()
            .position(|(i, s)| matches!(s, Slot::Missing) && askable(i, s))
            .or_else(|| {
                fetch.slots.iter().enumerate().position(|(i, s)| {
                    matches!(s, Slot::Requested(r) if timed_out(r)) && askable(i, s)
                })
            })
            .or_else(|| {
                if fetch.slots.iter().any(|s| matches!(s, Slot::Missing)) {
                    return None;
                }
                fetch
                    .slots
                    .iter()
                    .enumerate()
                    .filter_map(|(i, s)| match s {
                        Slot::Requested(r) if askable(i, s) => Some((r.len(), i)),
                        _ => None,
                    })
                    .min()
                    .map(|(_, i)| i)
            })?;
        let slot = fetch.slots.get_mut(choice)?;
        match slot {
            Slot::Requested(r) => r.push((peer, now)),
            _ => *slot = Slot::Requested(vec![(peer, now)]),
        }
        u32::try_from(choice).ok()
    }

    /// The next moment after `now` when an open request times out (and
    /// its piece may go to another peer): call
    /// [`poll_request`](Self::poll_request) for idle peers then. Pieces
    /// whose requests timed out already are handed out by `poll_request`
    /// at any time, so they set no deadline. `None` when nothing is
    /// waiting to time out.
    pub fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        let Phase::Fetching(fetch) = &self.phase else {
            return None;
        };
        fetch
            .slots
            .iter()
            .filter_map(|s| match s {
                Slot::Requested(r) => r.iter().map(|(_, at)| *at).max(),
                _ => None,
            })
            .map(|at| at + self.config.request_timeout)
            .filter(|&deadline| deadline > now)
            .min()
    }

    /// A `Data` message from `peer`. Checks, in order: a download is in
    /// progress, the piece is in range, `total_size` is the size fetched,
    /// the payload has the piece's length, the peer was asked for it. The
    /// last piece in triggers the SHA-1 check.
    pub fn handle_data(
        &mut self,
        peer: P,
        piece: u32,
        total_size: u64,
        data: &[u8],
    ) -> Result<DataOutcome<P>, MetadataError> {
        let Phase::Fetching(fetch) = &mut self.phase else {
            return Err(MetadataError::NotDownloading { piece });
        };
        let (start, len) = fetch.piece_range(piece)?;
        if total_size != u64::from(fetch.size) {
            return Err(MetadataError::TotalSizeMismatch {
                piece,
                total_size,
                expected: fetch.size,
            });
        }
        if data.len() != len {
            return Err(MetadataError::WrongPieceLength {
                piece,
                got: data.len(),
                expected: len as u32,
            });
        }
        let Some(slot) = fetch.slots.get_mut(piece as usize) else {
            return Err(MetadataError::NotRequested { piece });
        };
        match slot {
            Slot::Have(_) => return Ok(DataOutcome::Duplicate),
            Slot::Requested(r) if r.iter().any(|(p, _)| *p == peer) => {}
            _ => return Err(MetadataError::NotRequested { piece }),
        }
        *slot = Slot::Have(peer);
        fetch.have += 1;
        if fetch.buffer.0.is_empty() {
            // Allocated once a peer delivered a valid piece of this size,
            // not when one merely claims it.
            fetch.buffer = Bytes(vec![0; fetch.size as usize]);
        }
        if let Some(target) = fetch.buffer.0.get_mut(start..start + len) {
            target.copy_from_slice(data);
        }
        if fetch.have < fetch.slots.len() {
            return Ok(DataOutcome::Stored);
        }
        if (self.digest)(&fetch.buffer.0) == self.info_hash {
            let bytes = std::mem::take(&mut fetch.buffer);
            self.phase = Phase::Complete(bytes);
            return Ok(DataOutcome::Complete);
        }
        let mut contributors: Vec<P> = Vec::new();
        for slot in &fetch.slots {
            if let Slot::Have(p) = slot {
                if !contributors.contains(p) {
                    contributors.push(*p);
                }
            }
        }
        self.phase = Phase::Idle;
        self.peers.retain(|e| !contributors.contains(&e.peer));
        for entry in &mut self.peers {
            entry.refused.clear();
        }
        Ok(DataOutcome::HashMismatch { contributors })
    }

    /// A `Reject` from `peer`: its request for `piece` is closed and the
    /// piece is not asked of it again (other peers are asked instead).
    pub fn handle_reject(&mut self, peer: P, piece: u32) -> Result<(), MetadataError> {
        let Phase::Fetching(fetch) = &mut self.phase else {
            return Err(MetadataError::NotDownloading { piece });
        };
        fetch.piece_range(piece)?;
        if let Some(slot) = fetch.slots.get_mut(piece as usize) {
            slot.drop_request(peer);
        }
        if let Some(entry) = self.peers.iter_mut().find(|e| e.peer == peer) {
            if !entry.refused.contains(&piece) {
                entry.refused.push(piece);
            }
        }
        Ok(())
    }

    /// `peer` disconnected: its open requests are closed so other peers
    /// get its pieces. Pieces it delivered are kept.
    pub fn handle_peer_gone(&mut self, peer: P) {
        self.forget_peer(peer);
    }

    /// The verified info dictionary, once (later calls return `None`).
    pub fn poll_complete(&mut self) -> Option<Vec<u8>> {
        match std::mem::replace(&mut self.phase, Phase::Taken) {
            Phase::Complete(bytes) => Some(bytes.0),
            other => {
                self.phase = other;
                None
            }
        }
    }

    fn forget_peer(&mut self, peer: P) {
        self.peers.retain(|e| e.peer != peer);
        if let Phase::Fetching(fetch) = &mut self.phase {
            for slot in &mut fetch.slots {
                slot.drop_request(peer);
            }
        }
    }
}

impl<P: Copy + Eq> Slot<P> {
    fn drop_request(&mut self, peer: P) {
        if let Slot::Requested(r) = self {
            r.retain(|(p, _)| *p != peer);
            if r.is_empty() {
                *self = Slot::Missing;
            }
        }
    }
}

impl<P> Fetch<P> {
    /// `size` is already checked against the configured maximum.
    fn new(size: u32) -> Fetch<P> {
        let count = metadata_piece_count(u64::from(size)) as usize;
        Fetch {
            size,
            buffer: Bytes(Vec::new()),
            slots: (0..count).map(|_| Slot::Missing).collect(),
            have: 0,
        }
    }

    /// Byte offset and length of `piece`.
    fn piece_range(&self, piece: u32) -> Result<(usize, usize), MetadataError> {
        piece_range(self.size, piece)
    }
}

fn piece_range(size: u32, piece: u32) -> Result<(usize, usize), MetadataError> {
    let count = metadata_piece_count(u64::from(size)) as u32;
    if piece >= count {
        return Err(MetadataError::PieceOutOfRange { piece, count });
    }
    let start = u64::from(piece) * u64::from(METADATA_PIECE_LEN);
    let len = (u64::from(size) - start).min(u64::from(METADATA_PIECE_LEN));
    Ok((start as usize, len as usize))
}

/// Answers `ut_metadata` requests from the info dictionary we have
/// (BEP 9's serving side).
///
/// ```
/// use rustico_peer_wire::{MetadataMessage, MetadataServer};
///
/// let server = MetadataServer::new(vec![b'x'; 20_000]);
/// assert_eq!(server.metadata_size(), 20_000); // for the extension handshake
/// let Some(MetadataMessage::Data { piece: 1, total_size: 20_000, data }) =
///     server.answer(MetadataMessage::Request { piece: 1 }) else { unreachable!() };
/// assert_eq!(data.len(), 20_000 - 16_384);
/// assert_eq!(
///     server.answer(MetadataMessage::Request { piece: 2 }),
///     Some(MetadataMessage::Reject { piece: 2 })
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataServer {
    info: Vec<u8>,
}

impl MetadataServer {
    /// Serves `info`, the bencoded info dictionary (whose SHA-1 is the
    /// info-hash).
    pub fn new(info: Vec<u8>) -> MetadataServer {
        MetadataServer { info }
    }

    /// The `metadata_size` to put in our extension handshake.
    pub fn metadata_size(&self) -> u64 {
        self.info.len() as u64
    }

    /// The info dictionary served.
    pub fn info(&self) -> &[u8] {
        &self.info
    }

    /// The reply to `message`: `Data` (the piece and `total_size`) for a
    /// request in range, `Reject` for one out of range, `None` for
    /// messages that are not requests.
    pub fn answer(&self, message: MetadataMessage<'_>) -> Option<MetadataMessage<'_>> {
        let MetadataMessage::Request { piece } = message else {
            return None;
        };
        let data = u32::try_from(self.info.len())
            .ok()
            .and_then(|size| piece_range(size, piece).ok())
            .and_then(|(start, len)| self.info.get(start..start + len));
        Some(match data {
            Some(data) => MetadataMessage::Data {
                piece,
                total_size: self.metadata_size(),
                data,
            },
            None => MetadataMessage::Reject { piece },
        })
    }
}

fn sha1_digest(info: &[u8]) -> [u8; 20] {
    Sha1::digest(info).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(len: usize) -> (Vec<u8>, [u8; 20]) {
        let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + i / 251) as u8).collect();
        let hash = Sha1::digest(&bytes).into();
        (bytes, hash)
    }

    fn piece(bytes: &[u8], index: u32) -> &[u8] {
        let start = index as usize * 16384;
        &bytes[start..(start + 16384).min(bytes.len())]
    }

    #[test]
    fn sizes_are_validated() {
        let mut d = MetadataDownload::<u8>::new([0; 20]);
        assert_eq!(d.handle_metadata_size(1, 0), Err(MetadataError::ZeroSize));
        assert_eq!(
            d.handle_metadata_size(1, 1 << 30),
            Err(MetadataError::SizeTooLarge {
                size: 1 << 30,
                max: 16 << 20
            })
        );
        assert_eq!(
            d.handle_metadata_size(1, u64::MAX),
            Err(MetadataError::SizeTooLarge {
                size: u64::MAX,
                max: 16 << 20
            })
        );
        assert_eq!(d.poll_request(1, Instant::now()), None);
        assert_eq!(d.handle_metadata_size(1, 16 << 20), Ok(()));
    }

    #[test]
    fn distinct_pieces_to_several_peers_then_endgame() {
        let (bytes, hash) = info(40_000); // 3 pieces
        let mut d = MetadataDownload::new(hash);
        let now = Instant::now();
        for p in 1..=4u8 {
            d.handle_metadata_size(p, bytes.len() as u64).unwrap();
        }
        assert_eq!(d.poll_request(1, now), Some(0));
        assert_eq!(d.poll_request(2, now), Some(1));
        assert_eq!(d.poll_request(3, now), Some(2));
        // All asked: the fourth peer duplicates the least-asked piece.
        assert_eq!(d.poll_request(4, now), Some(0));
        assert_eq!(
            d.handle_data(2, 1, 40_000, piece(&bytes, 1)),
            Ok(DataOutcome::Stored)
        );
        assert_eq!(
            d.handle_data(1, 0, 40_000, piece(&bytes, 0)),
            Ok(DataOutcome::Stored)
        );
        assert_eq!(
            d.handle_data(4, 0, 40_000, piece(&bytes, 0)),
            Ok(DataOutcome::Duplicate)
        );
        assert_eq!(d.progress(), Some((2, 3)));
        assert!(format!("{d:?}").contains("<40000 bytes>"), "{d:?}");
        assert_eq!(
            d.handle_data(3, 2, 40_000, piece(&bytes, 2)),
            Ok(DataOutcome::Complete)
        );
        assert!(d.is_complete());
        assert_eq!(d.poll_request(1, now), None);
        assert_eq!(d.poll_complete(), Some(bytes));
        assert_eq!(d.poll_complete(), None);
    }

    #[test]
    fn timed_out_piece_goes_to_another_peer() {
        let (bytes, hash) = info(20_000); // 2 pieces
        let config = MetadataConfig {
            max_requests_per_peer: 1,
            ..MetadataConfig::default()
        };
        let mut d = MetadataDownload::with_config(hash, config);
        let t0 = Instant::now();
        d.handle_metadata_size(1u8, 20_000).unwrap();
        assert_eq!(d.poll_request(1, t0), Some(0));
        assert_eq!(d.poll_request(1, t0), None, "one open request per peer");
        d.handle_metadata_size(2, 20_000).unwrap();
        d.handle_metadata_size(3, 20_000).unwrap();
        assert_eq!(d.poll_request(2, t0), Some(1));
        assert_eq!(
            d.poll_request(3, t0 + Duration::from_secs(19)),
            Some(0),
            "endgame"
        );
        assert_eq!(d.poll_timeout(t0), Some(t0 + Duration::from_secs(20)));
        assert_eq!(
            d.poll_timeout(t0 + Duration::from_secs(20)),
            Some(t0 + Duration::from_secs(39)),
            "the endgame request of peer 3"
        );
        d.handle_peer_gone(3);
        d.handle_metadata_size(4, 20_000).unwrap();
        // Piece 0 is asked of peer 1 only, not timed out yet: endgame
        // picks the least-asked piece (1 and 0 tie; lowest index).
        assert_eq!(d.poll_request(4, t0 + Duration::from_secs(5)), Some(0));
        d.handle_peer_gone(4);
        d.handle_metadata_size(5, 20_000).unwrap();
        assert_eq!(d.poll_request(5, t0 + Duration::from_secs(20)), Some(0));
        // The late answer of the first peer still counts.
        assert_eq!(
            d.handle_data(1, 0, 20_000, piece(&bytes, 0)),
            Ok(DataOutcome::Stored)
        );
        assert_eq!(
            d.handle_data(5, 0, 20_000, piece(&bytes, 0)),
            Ok(DataOutcome::Duplicate)
        );
    }

    #[test]
    fn rejects_and_gone_peers_free_their_pieces() {
        let (bytes, hash) = info(20_000);
        let mut d = MetadataDownload::new(hash);
        let now = Instant::now();
        d.handle_metadata_size(1u8, 20_000).unwrap();
        d.handle_metadata_size(2, 20_000).unwrap();
        assert_eq!(d.poll_request(1, now), Some(0));
        assert_eq!(d.poll_request(1, now), Some(1));
        d.handle_reject(1, 0).unwrap();
        assert_eq!(
            d.poll_request(1, now),
            None,
            "refused piece not asked again"
        );
        assert_eq!(d.poll_request(2, now), Some(0));
        d.handle_peer_gone(1);
        assert_eq!(d.poll_request(2, now), Some(1));
        assert_eq!(
            d.handle_reject(2, 9),
            Err(MetadataError::PieceOutOfRange { piece: 9, count: 2 })
        );
        d.handle_data(2, 0, 20_000, piece(&bytes, 0)).unwrap();
        assert_eq!(
            d.handle_data(2, 1, 20_000, piece(&bytes, 1)),
            Ok(DataOutcome::Complete)
        );
    }

    #[test]
    fn bad_data_is_refused_with_typed_errors() {
        let (bytes, hash) = info(20_000);
        let mut d = MetadataDownload::new(hash);
        let now = Instant::now();
        assert_eq!(
            d.handle_data(1u8, 0, 20_000, &bytes[..16384]),
            Err(MetadataError::NotDownloading { piece: 0 })
        );
        d.handle_metadata_size(1, 20_000).unwrap();
        assert_eq!(d.poll_request(1, now), Some(0));
        assert_eq!(
            d.handle_data(1, 2, 20_000, &[]),
            Err(MetadataError::PieceOutOfRange { piece: 2, count: 2 })
        );
        assert_eq!(
            d.handle_data(1, 0, 1 << 40, &bytes[..16384]),
            Err(MetadataError::TotalSizeMismatch {
                piece: 0,
                total_size: 1 << 40,
                expected: 20_000
            })
        );
        assert_eq!(
            d.handle_data(1, 0, 20_000, &bytes[..100]),
            Err(MetadataError::WrongPieceLength {
                piece: 0,
                got: 100,
                expected: 16384
            })
        );
        assert_eq!(
            d.handle_data(1, 1, 20_000, &bytes[16384..]),
            Err(MetadataError::NotRequested { piece: 1 })
        );
        assert_eq!(d.progress(), Some((0, 2)));
    }

    #[test]
    fn another_digest_checks_the_metadata_instead_of_sha1() {
        // Stands in for a truncated SHA-256: the bytes' last 20.
        fn tail(info: &[u8]) -> [u8; 20] {
            info[info.len() - 20..].try_into().unwrap()
        }
        let (bytes, sha1) = info(5_000);
        let now = Instant::now();
        for (want, outcome) in [
            (tail(&bytes), DataOutcome::Complete),
            (
                sha1,
                DataOutcome::HashMismatch {
                    contributors: vec![1],
                },
            ),
        ] {
            let mut d = MetadataDownload::new(want).with_digest(tail);
            d.handle_metadata_size(1u8, 5_000).unwrap();
            assert_eq!(d.poll_request(1, now), Some(0));
            assert_eq!(d.handle_data(1, 0, 5_000, &bytes), Ok(outcome));
        }
    }

    #[test]
    fn hash_mismatch_resets_and_blames_contributors() {
        let (bytes, hash) = info(20_000);
        let mut d = MetadataDownload::new(hash);
        let now = Instant::now();
        d.handle_metadata_size(1u8, 20_000).unwrap();
        d.handle_metadata_size(2, 20_000).unwrap();
        d.handle_metadata_size(3, 20_000).unwrap();
        assert_eq!(d.poll_request(1, now), Some(0));
        assert_eq!(d.poll_request(2, now), Some(1));
        d.handle_data(1, 0, 20_000, piece(&bytes, 0)).unwrap();
        let forged = vec![0u8; 20_000 - 16384];
        assert_eq!(
            d.handle_data(2, 1, 20_000, &forged),
            Ok(DataOutcome::HashMismatch {
                contributors: vec![1, 2]
            })
        );
        assert_eq!(d.progress(), None);
        assert_eq!(d.poll_request(1, now), None, "blamed peers are forgotten");
        assert_eq!(d.poll_request(3, now), Some(0));
        assert_eq!(d.poll_request(3, now), Some(1));
        d.handle_data(3, 0, 20_000, piece(&bytes, 0)).unwrap();
        assert_eq!(
            d.handle_data(3, 1, 20_000, piece(&bytes, 1)),
            Ok(DataOutcome::Complete)
        );
    }

    #[test]
    fn a_lying_size_does_not_block_honest_peers() {
        let (bytes, hash) = info(20_000);
        let mut d = MetadataDownload::new(hash);
        let now = Instant::now();
        d.handle_metadata_size(1u8, 5).unwrap();
        d.handle_metadata_size(2, 20_000).unwrap();
        assert_eq!(d.poll_request(1, now), Some(0));
        assert_eq!(d.size(), Some(5));
        assert_eq!(
            d.poll_request(2, now),
            None,
            "another size is being fetched"
        );
        d.handle_reject(1, 0).unwrap();
        // Nothing of size 5 is in or asked for: the honest size takes over.
        assert_eq!(d.poll_request(2, now), Some(0));
        assert_eq!(d.size(), Some(20_000));
        d.handle_data(2, 0, 20_000, piece(&bytes, 0)).unwrap();
        assert_eq!(d.poll_request(2, now), Some(1));
        assert_eq!(
            d.handle_data(2, 1, 20_000, piece(&bytes, 1)),
            Ok(DataOutcome::Complete)
        );
    }

    #[test]
    fn a_size_nobody_claims_any_more_is_abandoned() {
        let (bytes, hash) = info(20_000);
        let mut d = MetadataDownload::new(hash);
        let now = Instant::now();
        d.handle_metadata_size(1u8, 40_000).unwrap();
        d.handle_metadata_size(2, 20_000).unwrap();
        assert_eq!(d.poll_request(1, now), Some(0));
        d.handle_data(1, 0, 40_000, &[0; 16384]).unwrap();
        assert_eq!(
            d.poll_request(2, now),
            None,
            "40 000 bytes still claimed by 1"
        );
        d.handle_peer_gone(1);
        assert_eq!(d.poll_request(2, now), Some(0));
        assert_eq!(d.progress(), Some((0, 2)));
        d.handle_data(2, 0, 20_000, piece(&bytes, 0)).unwrap();
        assert_eq!(d.poll_request(2, now), Some(1));
        assert_eq!(
            d.handle_data(2, 1, 20_000, piece(&bytes, 1)),
            Ok(DataOutcome::Complete)
        );
    }

    #[test]
    fn server_answers_requests() {
        let (bytes, _) = info(32_768);
        let server = MetadataServer::new(bytes.clone());
        let Some(MetadataMessage::Data {
            piece: 1,
            total_size: 32_768,
            data,
        }) = server.answer(MetadataMessage::Request { piece: 1 })
        else {
            panic!("expected data")
        };
        assert_eq!(data, &bytes[16384..]);
        assert_eq!(
            server.answer(MetadataMessage::Request { piece: 2 }),
            Some(MetadataMessage::Reject { piece: 2 })
        );
        assert_eq!(
            server.answer(MetadataMessage::Request { piece: u32::MAX }),
            Some(MetadataMessage::Reject { piece: u32::MAX })
        );
        assert_eq!(server.answer(MetadataMessage::Reject { piece: 0 }), None);
        let empty = MetadataServer::new(Vec::new());
        assert_eq!(
            empty.answer(MetadataMessage::Request { piece: 0 }),
            Some(MetadataMessage::Reject { piece: 0 })
        );
    }
}
