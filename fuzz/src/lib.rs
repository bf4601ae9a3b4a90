//! Checks shared by the fuzz targets in `fuzz_targets/`.
#![forbid(unsafe_code)]

use rustico_metainfo::Torrent;

/// What must hold for any torrent the parser accepts: the files tile the
/// byte stream, the pieces tile it too with one hash each, every accessor
/// answers within bounds, and the torrent's own magnet link parses back.
pub fn check_torrent(torrent: &Torrent) {
    let mut offset = 0u64;
    for (index, file) in torrent.files().iter().enumerate() {
        assert_eq!(
            file.offset, offset,
            "file {index} starts where the last ended"
        );
        offset += file.length;
        if file.length > 0 {
            assert_eq!(torrent.file_index_at(file.offset), Some(index));
        }
    }
    assert_eq!(offset, torrent.total_length());
    assert_eq!(torrent.file_index_at(offset), None);

    let pieces = torrent.num_pieces();
    if torrent.has_v1() {
        assert_eq!(torrent.piece_hashes().len(), pieces as usize * 20);
    }
    let mut covered = 0u64;
    for index in 0..pieces {
        let length = torrent
            .piece_size(index)
            .expect("a piece below num_pieces has a size");
        assert!(length > 0 && length <= torrent.piece_length());
        // v1 and hybrid torrents have a SHA-1 per piece; v2-only ones are
        // checked by merkle roots instead (and may lack their layers).
        assert!(torrent.piece_hash(index).is_some() || !torrent.has_v1());
        covered += u64::from(length);
    }
    assert_eq!(covered, torrent.total_length());
    assert_eq!(torrent.piece_size(pieces), None);
    assert_eq!(torrent.piece_hash(pieces), None);

    let magnet = torrent.magnet();
    let link = magnet.to_string();
    assert_eq!(rustico_metainfo::Magnet::parse(&link), Ok(magnet), "{link}");
}
