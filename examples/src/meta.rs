//! What the engine needs of a torrent, converted once from
//! `rustico_metainfo::Torrent` (the crates do not know each other's types).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustico_metainfo::{BlockLayers, HashServer, LayerRange, Torrent};
use rustico_peer_wire::{HashRequest, HashSource, MetadataServer};
use rustico_storage::{Layout, Storage};

/// Why a torrent cannot be handed to the engine.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// The `.torrent` file cannot be read or is not a valid torrent.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why (metainfo's error names the key and byte offset).
        #[source]
        source: rustico_metainfo::Error,
    },
    /// The torrent's files cannot be laid out on disk.
    #[error("{name}: bad layout: {source}")]
    Layout {
        /// The torrent's name.
        name: String,
        /// Why.
        #[source]
        source: rustico_storage::LayoutError,
    },
}

/// A torrent as the engine sees it.
#[derive(Debug, Clone)]
pub struct TorrentMeta {
    /// SHA-1 of the info dictionary.
    pub info_hash: [u8; 20],
    /// The torrent's name (file or top folder).
    pub name: String,
    /// Nominal piece length.
    pub piece_length: u32,
    /// Total bytes.
    pub total_length: u64,
    /// Number of pieces.
    pub num_pieces: u32,
    /// Where every piece's bytes live on disk (padding files virtual).
    pub layout: Layout,
    /// Announce tiers.
    pub trackers: Vec<Vec<String>>,
    /// The info dictionary, served to peers with `ut_metadata`.
    pub metadata: Arc<MetadataServer>,
    /// For a v2 or hybrid torrent: its piece layers, served to peers'
    /// BEP 52 hash requests.
    pub hashes: Option<Arc<dyn HashSource>>,
    /// For a v2 or hybrid torrent: where each piece's block hashes sit in
    /// its file's merkle tree (to ask for them, check and serve them).
    pub block_layers: Option<Arc<BlockLayers>>,
    /// For a hybrid torrent: the truncated v2 info-hash, the name of its
    /// second swarm (peers may greet us under either hash).
    pub v2_swarm: Option<[u8; 20]>,
    /// BEP 27: peers from the trackers only (no peer exchange).
    pub private: bool,
    /// BEP 19 web seeds (`url-list`).
    pub web_seeds: Vec<String>,
    /// A multi-file torrent (files under a folder named `name`).
    pub multi_file: bool,
}

impl TorrentMeta {
    /// Converts a parsed torrent; fails when its files cannot be laid out
    /// on disk.
    pub fn from_torrent(t: &Torrent) -> Result<TorrentMeta, MetaError> {
        let layout = Layout::from_torrent(t).map_err(|source| MetaError::Layout {
            name: t.name().to_string(),
            source,
        })?;
        Ok(TorrentMeta {
            info_hash: t.info_hash().0,
            name: t.name().to_string(),
            piece_length: t.piece_length(),
            total_length: t.total_length(),
            num_pieces: t.num_pieces(),
            layout,
            trackers: t.trackers().to_vec(),
            metadata: Arc::new(MetadataServer::new(t.info_bytes().to_vec())),
            hashes: t
                .has_v2()
                .then(|| Arc::new(LayerHashes(HashServer::new(t))) as Arc<dyn HashSource>),
            block_layers: t.has_v2().then(|| Arc::new(BlockLayers::new(t))),
            v2_swarm: t
                .info_hashes()
                .v2
                .filter(|_| t.has_v1())
                .map(|v2| v2.truncated().0),
            private: t.is_private(),
            web_seeds: t.web_seeds().to_vec(),
            multi_file: t.is_multi_file(),
        })
    }

    /// Reads and converts a `.torrent` file.
    pub fn from_file(path: &Path) -> Result<TorrentMeta, MetaError> {
        let t = Torrent::from_file(path).map_err(|source| MetaError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        TorrentMeta::from_torrent(&t)
    }

    /// What a v2 or hybrid torrent answers peers' hash requests from: its
    /// piece layers, and a piece's block hashes computed from its bytes
    /// in `storage` (only for a piece whose bytes check).
    pub fn served_hashes(&self, storage: &Arc<Storage>) -> Option<Arc<dyn HashSource>> {
        let (layers, blocks) = (self.hashes.clone()?, self.block_layers.clone()?);
        Some(Arc::new(ServedHashes {
            layers,
            blocks,
            storage: Arc::clone(storage),
        }))
    }

    /// The info-hash as 40 lowercase hex digits.
    pub fn hex_hash(&self) -> String {
        rustico_metainfo::hex(&self.info_hash).to_string()
    }
}

/// A torrent's piece layers, and block hashes from the pieces on disk.
#[derive(Debug)]
struct ServedHashes {
    layers: Arc<dyn HashSource>,
    blocks: Arc<BlockLayers>,
    storage: Arc<Storage>,
}

impl HashSource for ServedHashes {
    fn hashes(&self, r: &HashRequest) -> Option<Vec<[u8; 32]>> {
        match self.blocks.for_request(&layer_range(r)) {
            // Reading and hashing a piece per request costs what serving
            // it would; the session's transmit bound paces the answers.
            Some(blocks) => blocks.hashes_of(&self.storage.read_piece(blocks.piece()).ok()?),
            None => self.layers.hashes(r),
        }
    }
}

/// metainfo's [`HashServer`] behind peer-wire's [`HashSource`].
#[derive(Debug)]
struct LayerHashes(HashServer);

impl HashSource for LayerHashes {
    fn hashes(&self, r: &HashRequest) -> Option<Vec<[u8; 32]>> {
        self.0.answer(&layer_range(r))
    }
}

/// A wire hash request as metainfo's [`LayerRange`] (the crates do not
/// know each other's type for the same five numbers).
pub fn layer_range(r: &HashRequest) -> LayerRange {
    LayerRange {
        pieces_root: r.pieces_root,
        base_layer: r.base_layer,
        index: r.index,
        length: r.length,
        proof_layers: r.proof_layers,
    }
}

/// The other way: metainfo's [`LayerRange`] as a wire hash request.
pub fn hash_request(r: &LayerRange) -> HashRequest {
    HashRequest {
        pieces_root: r.pieces_root,
        base_layer: r.base_layer,
        index: r.index,
        length: r.length,
        proof_layers: r.proof_layers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalid_torrent_file_is_named_with_the_byte_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junk.torrent");
        std::fs::write(&path, b"d4:infoi1ee").unwrap();
        let err = TorrentMeta::from_file(&path).unwrap_err();
        assert!(
            matches!(&err, MetaError::Read { path: p, .. } if p == &path),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(text.starts_with(&path.display().to_string()), "{text}");
        assert!(text.contains("at byte 7"), "{text}");
    }
}
