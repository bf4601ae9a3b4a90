//! `info` and `create`: the commands that need no network.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use rustico_metainfo::{CreateError as BuildError, Magnet, MagnetError, Torrent, TorrentBuilder};
use serde_json::json;

use crate::cli::CreateArgs;
use crate::magnet::PeerSources;
use crate::text::shown;

/// Why `info` failed.
#[derive(Debug, thiserror::Error)]
pub enum InfoError {
    /// The magnet link does not parse.
    #[error("bad magnet link: {0}")]
    BadMagnet(#[source] MagnetError),
    /// The magnet link's metadata could not be fetched.
    #[error(transparent)]
    Fetch(#[from] crate::magnet::FetchError),
    /// The `.torrent` file cannot be read or is not a valid torrent.
    #[error("{path}: {source}")]
    Torrent {
        /// The file, as given.
        path: String,
        /// Why (metainfo's error names the key and byte offset).
        #[source]
        source: rustico_metainfo::Error,
    },
}

/// Why `create` failed.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// A `--tracker` URL is refused.
    #[error("{0}")]
    Tracker(#[source] BuildError),
    /// A `--web-seed` URL is refused.
    #[error("{0}")]
    WebSeed(#[source] BuildError),
    /// Reading or hashing the content failed.
    #[error("cannot create a torrent from {}: {source}", path.display())]
    Build {
        /// The content's path.
        path: PathBuf,
        /// Why.
        #[source]
        source: BuildError,
    },
    /// The `.torrent` file cannot be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The output file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// How `info` fetches a magnet link's metadata.
#[derive(Debug, Clone)]
pub struct MagnetFetch {
    /// Peers besides the link's.
    pub peers: Vec<SocketAddr>,
    /// Give up after this long.
    pub timeout: Duration,
    /// `-v` count, for the log on stderr.
    pub verbose: u8,
}

/// `rustico info TORRENT|MAGNET [--json]`: prints the torrent's contents
/// (for a magnet link, once fetched from peers).
pub fn info(source: &str, as_json: bool, fetch: &MagnetFetch) -> Result<(), InfoError> {
    let torrent = if source.starts_with("magnet:") {
        // Without a log folder, `init` writes no file and returns no path.
        crate::logging::init(fetch.verbose, None);
        let magnet = Magnet::parse(source).map_err(InfoError::BadMagnet)?;
        // Trackers need a port; nothing listens on it during `info`.
        let sources = PeerSources::from_magnet(&magnet, &fetch.peers, 6881);
        let (torrent, _, _) = crate::magnet::resolve(
            &magnet,
            &sources,
            Some(Instant::now() + fetch.timeout),
            &AtomicBool::new(false),
        )?;
        torrent
    } else {
        Torrent::from_file(source).map_err(|e| InfoError::Torrent {
            path: source.to_string(),
            source: e,
        })?
    };
    for warning in torrent.warnings() {
        eprintln!("warning: {}", shown(&warning.to_string()));
    }
    if as_json {
        println!(
            "{}",
            crate::text::json_shown(&info_json(&torrent).to_string())
        );
        return Ok(());
    }
    println!("name:         {}", shown(torrent.name()));
    println!("info hash:    {}", torrent.info_hash());
    println!(
        "size:         {} ({} bytes)",
        crate::progress::human_bytes(torrent.total_length()),
        torrent.total_length()
    );
    println!(
        "pieces:       {} of {}",
        torrent.num_pieces(),
        crate::progress::human_bytes(u64::from(torrent.piece_length()))
    );
    println!(
        "private:      {}",
        if torrent.is_private() { "yes" } else { "no" }
    );
    for (i, tier) in torrent.trackers().iter().enumerate() {
        println!("tier {i}:       {}", shown(&tier.join(" ")));
    }
    if let Some(comment) = torrent.comment() {
        println!("comment:      {}", shown(comment));
    }
    println!("files:");
    for f in torrent.files().iter().filter(|f| !f.is_padding()) {
        println!("  {:>12}  {}", f.length, shown(&f.path_string()));
    }
    Ok(())
}

/// The JSON object of `info --json` (fields as DESIGN.md lists them):
/// `info_hash` is the v1 hash (40 hex; `null` for a v2-only torrent),
/// `info_hash_v2` the BEP 52 SHA-256 hash (64 hex; `null` for v1-only).
pub fn info_json(torrent: &Torrent) -> serde_json::Value {
    let files: Vec<_> = torrent
        .files()
        .iter()
        .filter(|f| !f.is_padding())
        .map(|f| json!({ "path": f.path_string(), "length": f.length }))
        .collect();
    json!({
        "info_hash": torrent.info_hashes().v1.map(|h| h.to_string()),
        "info_hash_v2": torrent.info_hashes().v2.map(|h| h.to_string()),
        "name": torrent.name(),
        "total_length": torrent.total_length(),
        "piece_length": torrent.piece_length(),
        "num_pieces": torrent.num_pieces(),
        "private": torrent.is_private(),
        "trackers": torrent.trackers(),
        "files": files,
    })
}

/// `rustico create PATH -o OUT ...`: hashes PATH and writes a .torrent.
pub fn create(args: &CreateArgs) -> Result<(), CreateError> {
    let torrent = build(args)?;
    std::fs::write(&args.output, torrent.as_bytes()).map_err(|source| CreateError::Write {
        path: args.output.clone(),
        source,
    })?;
    let hashes = torrent.info_hashes();
    let v1 = hashes.v1.map(|h| format!(", info hash {h}"));
    let v2 = hashes.v2.map(|h| format!(", v2 info hash {h}"));
    eprintln!(
        "wrote {} ({} pieces{}{})",
        args.output.display(),
        torrent.num_pieces(),
        v1.unwrap_or_default(),
        v2.unwrap_or_default()
    );
    Ok(())
}

/// Builds the torrent `create` describes, without writing it.
pub fn build(args: &CreateArgs) -> Result<Torrent, CreateError> {
    let mut builder = TorrentBuilder::new(&args.path)
        .version(args.format.into())
        .private(args.private)
        .created_by(format!("rustico {}", env!("CARGO_PKG_VERSION")));
    for url in &args.trackers {
        builder = builder
            .tracker_tier([url.clone()])
            .map_err(CreateError::Tracker)?;
    }
    for url in &args.web_seeds {
        builder = builder
            .web_seed(url.clone())
            .map_err(CreateError::WebSeed)?;
    }
    if let Some(comment) = &args.comment {
        builder = builder.comment(comment.clone());
    }
    if let Some(len) = args.piece_length {
        builder = builder.piece_length(len);
    }
    builder
        .build(|_| {}, &AtomicBool::new(false))
        .map_err(|source| CreateError::Build {
            path: args.path.clone(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustico_metainfo::TorrentVersion;

    #[test]
    fn info_json_has_both_hashes_or_null() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.bin");
        std::fs::write(&file, vec![3u8; 40_000]).unwrap();
        for version in [
            TorrentVersion::V1,
            TorrentVersion::V2,
            TorrentVersion::Hybrid,
        ] {
            let t = TorrentBuilder::new(&file)
                .version(version)
                .build(|_| {}, &AtomicBool::new(false))
                .unwrap();
            let v = info_json(&t);
            let v1 = v["info_hash"].as_str();
            let v2 = v["info_hash_v2"].as_str();
            assert_eq!(v1.is_some(), version != TorrentVersion::V2, "{version:?}");
            assert_eq!(v2.is_some(), version != TorrentVersion::V1, "{version:?}");
            assert!(v1.is_none_or(|h| h.len() == 40 && h == h.to_lowercase()));
            assert!(v2.is_none_or(|h| h.len() == 64 && h == h.to_lowercase()));
            assert_eq!(v2, t.info_hashes().v2.map(|h| h.to_string()).as_deref());
        }
    }

    fn create_args(path: &std::path::Path, out: &std::path::Path) -> CreateArgs {
        use crate::cli::{Cli, Command};
        use clap::Parser;
        let argv = [
            "rustico",
            "create",
            path.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ];
        let Command::Create(args) = Cli::try_parse_from(argv).unwrap().command else {
            panic!("not a create command");
        };
        args
    }

    #[test]
    fn info_and_create_errors_name_their_files() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nothing-here");
        let out = dir.path().join("no-such-folder").join("x.torrent");
        let err = create(&create_args(&missing, &out)).unwrap_err();
        assert!(
            matches!(&err, CreateError::Build { path, .. } if path == &missing),
            "{err:?}"
        );
        assert!(
            err.to_string().contains(&missing.display().to_string()),
            "{err}"
        );

        let file = dir.path().join("a.bin");
        std::fs::write(&file, vec![1u8; 1000]).unwrap();
        let err = create(&create_args(&file, &out)).unwrap_err();
        assert!(
            matches!(&err, CreateError::Write { path, source }
                if path == &out && source.kind() == std::io::ErrorKind::NotFound),
            "{err:?}"
        );
        assert!(err.to_string().starts_with("cannot write "), "{err}");
        assert!(
            err.to_string().contains(&out.display().to_string()),
            "{err}"
        );

        let fetch = MagnetFetch {
            peers: Vec::new(),
            timeout: Duration::from_secs(1),
            verbose: 0,
        };
        let source = file.to_str().unwrap();
        let err = info(source, false, &fetch).unwrap_err();
        assert!(
            matches!(&err, InfoError::Torrent { path, .. } if path == source),
            "{err:?}"
        );
        assert!(err.to_string().starts_with(source), "{err}");
        let err = info("magnet:?xt=urn:btih:zz", false, &fetch).unwrap_err();
        assert!(matches!(err, InfoError::BadMagnet(_)), "{err:?}");
        assert!(err.to_string().starts_with("bad magnet link: "), "{err}");
    }

    #[test]
    fn create_format_picks_the_protocol_version() {
        use crate::cli::{Cli, Command};
        use clap::Parser;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.bin");
        std::fs::write(&file, vec![5u8; 70_000]).unwrap();
        let out = dir.path().join("a.torrent");
        for (format, v1, v2) in [
            (None, true, false),
            (Some("v1"), true, false),
            (Some("v2"), false, true),
            (Some("hybrid"), true, true),
        ] {
            let mut argv = vec!["rustico", "create", file.to_str().unwrap()];
            argv.extend(["-o", out.to_str().unwrap()]);
            argv.extend(format.iter().flat_map(|f| ["--format", f]));
            let Command::Create(args) = Cli::try_parse_from(&argv).unwrap().command else {
                panic!("not a create command");
            };
            let t = build(&args).unwrap();
            assert_eq!(t.has_v1(), v1, "{format:?}");
            assert_eq!(t.has_v2(), v2, "{format:?}");
        }
        assert!(
            Cli::try_parse_from(["rustico", "create", "x", "-o", "y", "--format", "v3"]).is_err()
        );
    }
}
