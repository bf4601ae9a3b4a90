//! Shared helpers for the rustico benchmarks: deterministic documents that
//! look like what a BitTorrent client really parses.
//!
//! ```
//! let torrent = rustico_benches::torrent_document();
//! let root = rustico_bencode::decode_strict(&torrent)?;
//! let info = root.get(b"info").ok_or("no info")?;
//! let pieces = info.get(b"pieces").and_then(|v| v.as_bytes()).ok_or("no pieces")?;
//! assert_eq!(pieces.len(), 20 * rustico_benches::TORRENT_PIECES);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Map
//! - [`torrent_document`]: a ~5 MB multi-file v1 `.torrent`
//!   ([`TORRENT_FILES`] files, [`TORRENT_PIECES`] pieces of
//!   [`TORRENT_PIECE_LENGTH`] bytes).
//! - [`compact_tracker_response`]: an HTTP tracker's announce answer with
//!   compact IPv4 and IPv6 peers.
//! - [`extension_handshake`]: a ~1 KB BEP 10 extension handshake.
//! - [`SplitMix64`]: the tiny seeded generator behind all three, so every
//!   run (and every machine) benchmarks the same bytes.
//!
//! Every document is canonical bencode (keys sorted, no leading zeros), so
//! strict decoders accept it too.
#![forbid(unsafe_code)]

use rustico_bencode::{encode, OwnedValue};

/// Number of files in [`torrent_document`].
pub const TORRENT_FILES: usize = 20_000;
/// Number of pieces (SHA-1 hashes) in [`torrent_document`].
pub const TORRENT_PIECES: usize = 200_000;
/// `piece length` of [`torrent_document`]: 16 KiB.
pub const TORRENT_PIECE_LENGTH: u64 = 16 * 1024;
/// Sum of the file lengths of [`torrent_document`]: the last piece is half
/// full, so `ceil(total / piece length)` is exactly [`TORRENT_PIECES`].
pub const TORRENT_TOTAL_LENGTH: u64 =
    (TORRENT_PIECES as u64 - 1) * TORRENT_PIECE_LENGTH + TORRENT_PIECE_LENGTH / 2;
/// Number of compact IPv4 peers in [`compact_tracker_response`]
/// (it also carries half as many IPv6 peers).
pub const TRACKER_PEERS: usize = 50;

/// SplitMix64 (Steele, Lea and Flood): a few lines, good enough spread for
/// test data, and no dependency.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose whole output is fixed by `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    /// The next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `low..high` (`high > low`); the slight modulo bias does
    /// not matter for test data.
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next_u64() % (high - low)
    }

    /// Fills `out` with pseudo-random bytes.
    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }

    /// `len` lowercase letters and digits: a plausible file or folder name.
    fn name(&mut self, len: u64) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789_-";
        (0..len)
            .map(|_| char::from(ALPHABET[(self.next_u64() % ALPHABET.len() as u64) as usize]))
            .collect()
    }
}

/// A valid v1 multi-file `.torrent` of 5,306,824 bytes, canonical bencode.
///
/// - `announce`, a three-tier `announce-list`, `comment`, `created by`,
///   `creation date`;
/// - `info`: `files` ([`TORRENT_FILES`] entries, each path 2 or 3
///   components of varied length), `name`, `piece length`
///   ([`TORRENT_PIECE_LENGTH`]) and `pieces` ([`TORRENT_PIECES`]
///   pseudo-random 20-byte hashes).
///
/// The file lengths add up to [`TORRENT_TOTAL_LENGTH`], so the piece count
/// is consistent and a metainfo parser accepts the document. The hashes are
/// not those of any real content.
pub fn torrent_document() -> Vec<u8> {
    let mut rng = SplitMix64::new(0x7072_6573_656e_7473);

    // Lengths vary in pairs (+r, -r) around the mean so that their sum is
    // exact; the last file takes the remainder of the division.
    let files_count = TORRENT_FILES as u64;
    let mean = TORRENT_TOTAL_LENGTH / files_count;
    let mut lengths = Vec::with_capacity(TORRENT_FILES);
    for _ in 0..TORRENT_FILES / 2 {
        let jitter = rng.range(0, mean);
        lengths.push(mean + jitter);
        lengths.push(mean - jitter);
    }
    if let Some(last) = lengths.last_mut() {
        *last += TORRENT_TOTAL_LENGTH - mean * files_count;
    }

    let folders: Vec<String> = (0..40)
        .map(|_| {
            let len = rng.range(3, 16);
            rng.name(len)
        })
        .collect();
    const EXTENSIONS: [&str; 6] = [".bin", ".mkv", ".flac", ".txt", ".iso", ".tar.gz"];
    let files: Vec<OwnedValue> = lengths
        .iter()
        .map(|&length| {
            let mut path = Vec::with_capacity(3);
            path.push(OwnedValue::from(
                folders[(rng.next_u64() % folders.len() as u64) as usize].as_str(),
            ));
            if rng.next_u64() % 2 == 0 {
                path.push(OwnedValue::from(
                    folders[(rng.next_u64() % folders.len() as u64) as usize].as_str(),
                ));
            }
            let stem_len = rng.range(4, 28);
            let extension = EXTENSIONS[(rng.next_u64() % EXTENSIONS.len() as u64) as usize];
            path.push(OwnedValue::from(rng.name(stem_len) + extension));
            OwnedValue::dict([
                ("length", OwnedValue::Integer(length as i64)),
                ("path", OwnedValue::List(path)),
            ])
        })
        .collect();

    let mut pieces = vec![0u8; 20 * TORRENT_PIECES];
    rng.fill(&mut pieces);

    let info = OwnedValue::dict([
        ("files", OwnedValue::List(files)),
        ("name", OwnedValue::from("rustico benchmark collection")),
        (
            "piece length",
            OwnedValue::Integer(TORRENT_PIECE_LENGTH as i64),
        ),
        ("pieces", OwnedValue::Bytes(pieces)),
    ]);
    let tier = |urls: &[&str]| OwnedValue::list(urls.iter().map(|&u| OwnedValue::from(u)));
    let root = OwnedValue::dict([
        (
            "announce",
            OwnedValue::from("http://tracker.example.org:6969/announce"),
        ),
        (
            "announce-list",
            OwnedValue::list([
                tier(&["http://tracker.example.org:6969/announce"]),
                tier(&[
                    "udp://tracker.example.net:1337/announce",
                    "udp://backup.example.net:1337/announce",
                ]),
                tier(&["https://tracker.example.com/announce"]),
            ]),
        ),
        (
            "comment",
            OwnedValue::from("Synthetic torrent for the rustico benchmarks"),
        ),
        ("created by", OwnedValue::from("rustico-benches 0.1")),
        ("creation date", OwnedValue::Integer(1_700_000_000)),
        ("info", info),
    ]);
    encode(&root)
}

/// A typical HTTP tracker announce response (BEP 3, BEP 23, BEP 7):
/// `complete`, `incomplete`, `interval`, `min interval`, `tracker id`,
/// [`TRACKER_PEERS`] compact IPv4 peers in `peers` (6 bytes each) and
/// half as many IPv6 peers in `peers6` (18 bytes each): 887 bytes.
pub fn compact_tracker_response() -> Vec<u8> {
    let mut rng = SplitMix64::new(0x0074_7261_636b_6572);
    let mut peers = vec![0u8; 6 * TRACKER_PEERS];
    rng.fill(&mut peers);
    let mut peers6 = vec![0u8; 18 * (TRACKER_PEERS / 2)];
    rng.fill(&mut peers6);
    let root = OwnedValue::dict([
        ("complete", OwnedValue::Integer(1_342)),
        ("downloaded", OwnedValue::Integer(28_117)),
        ("incomplete", OwnedValue::Integer(87)),
        ("interval", OwnedValue::Integer(1_800)),
        ("min interval", OwnedValue::Integer(900)),
        ("peers", OwnedValue::Bytes(peers)),
        ("peers6", OwnedValue::Bytes(peers6)),
        ("tracker id", OwnedValue::from("a81f3c2d")),
    ]);
    encode(&root)
}

/// A BEP 10 extension handshake of exactly 1,024 bytes, as a well-featured
/// client sends it: an `m` dictionary of 16 extensions, `v`, `reqq`,
/// `yourip`, `ipv4`, `ipv6`, `p`, `metadata_size`, `complete_ago`,
/// `upload_only`, `e`, plus a vendor-specific dictionary and a padding
/// string that brings the size to 1 KB.
pub fn extension_handshake() -> Vec<u8> {
    const TARGET: usize = 1024;
    let extensions = [
        "lt_donthave",
        "lt_tex",
        "share_mode",
        "ut_comment",
        "ut_holepunch",
        "ut_metadata",
        "ut_pex",
        "upload_only",
        "lt_metadata",
        "LT_metadata",
        "ut_upload_only",
        "ut_recommend",
        "i2p_pex",
        "ut_dht_scrape",
        "x_hashes",
        "x_piece_layers",
    ];
    let build = |padding: usize| {
        let m = OwnedValue::dict(
            extensions
                .iter()
                .enumerate()
                .map(|(id, name)| (*name, OwnedValue::Integer(id as i64 + 1))),
        );
        let vendor = OwnedValue::dict([
            (
                "build",
                OwnedValue::from("2024-11-02T10:31:07Z release x86_64-linux-gnu"),
            ),
            (
                "features",
                OwnedValue::list(
                    ["dht", "pex", "lsd", "utp", "holepunch", "webseed"].map(OwnedValue::from),
                ),
            ),
            ("upnp", OwnedValue::Integer(1)),
        ]);
        OwnedValue::dict([
            ("complete_ago", OwnedValue::Integer(-1)),
            ("e", OwnedValue::Integer(1)),
            ("ipv4", OwnedValue::bytes(vec![192, 0, 2, 17])),
            (
                "ipv6",
                OwnedValue::bytes(vec![
                    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11,
                ]),
            ),
            ("m", m),
            ("metadata_size", OwnedValue::Integer(31_235)),
            ("p", OwnedValue::Integer(51_413)),
            ("reqq", OwnedValue::Integer(500)),
            ("upload_only", OwnedValue::Integer(0)),
            (
                "v",
                OwnedValue::from("rustico/0.1.0 (libtorrent-compatible; +https://example.invalid)"),
            ),
            ("x_padding", OwnedValue::bytes(vec![b'.'; padding])),
            ("x_vendor", vendor),
            ("yourip", OwnedValue::bytes(vec![198, 51, 100, 23])),
        ])
    };
    let unpadded = encode(&build(0)).len();
    // Padding grows the value and, past 9 and 99 bytes, its length prefix;
    // search the few candidates instead of reasoning about digit counts.
    let wanted = TARGET.saturating_sub(unpadded);
    (wanted.saturating_sub(3)..=wanted)
        .rev()
        .map(|padding| encode(&build(padding)))
        .find(|doc| doc.len() == TARGET)
        .unwrap_or_else(|| encode(&build(wanted)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustico_bencode::decode_strict;

    #[test]
    fn torrent_document_is_consistent() {
        let doc = torrent_document();
        assert_eq!(doc.len(), 5_306_824, "the documented size");
        let root = decode_strict(&doc).unwrap();
        let info = root.get(b"info").unwrap();
        let files = info.get(b"files").unwrap().as_list().unwrap();
        assert_eq!(files.len(), TORRENT_FILES);
        let total: u64 = files
            .iter()
            .map(|f| {
                let length = f.get(b"length").unwrap().as_integer().unwrap();
                assert!(length > 0);
                let path = f.get(b"path").unwrap().as_list().unwrap();
                assert!((2..=3).contains(&path.len()));
                length as u64
            })
            .sum();
        assert_eq!(total, TORRENT_TOTAL_LENGTH);
        let piece_length = info.get(b"piece length").unwrap().as_integer().unwrap() as u64;
        let pieces = info.get(b"pieces").unwrap().as_bytes().unwrap();
        assert_eq!(pieces.len(), 20 * TORRENT_PIECES);
        assert_eq!(total.div_ceil(piece_length), TORRENT_PIECES as u64);
        assert_eq!(torrent_document(), doc, "deterministic");
    }

    #[test]
    fn tracker_response_is_canonical() {
        let doc = compact_tracker_response();
        assert_eq!(doc.len(), 887, "the documented size");
        let root = decode_strict(&doc).unwrap();
        assert_eq!(
            root.get(b"peers").unwrap().as_bytes().unwrap().len(),
            6 * TRACKER_PEERS
        );
        assert_eq!(root.get(b"interval").unwrap().as_integer(), Some(1800));
    }

    #[test]
    fn extension_handshake_is_one_kilobyte() {
        let doc = extension_handshake();
        assert_eq!(doc.len(), 1024);
        let root = decode_strict(&doc).unwrap();
        assert_eq!(
            root.get(b"m")
                .unwrap()
                .get(b"ut_metadata")
                .unwrap()
                .as_integer(),
            Some(6)
        );
    }
}
