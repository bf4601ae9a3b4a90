//! The command line, exactly as `DESIGN.md` specifies it.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// rustico: a BitTorrent client and seeder.
///
/// Start with `rustico demo`: it makes random data, seeds it and downloads it
/// with a few leechers on this machine (no network, no setup), then checks
/// every byte.
#[derive(Debug, Parser)]
#[command(name = "rustico", version, about, long_about)]
pub struct Cli {
    /// More output on stderr: -v for details, -vv for everything.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what a .torrent file contains, or fetch and show a magnet
    /// link's metadata from peers.
    Info {
        /// A .torrent file or a magnet link.
        #[arg(value_name = "TORRENT|MAGNET")]
        torrent: String,
        /// For a magnet link: a peer to fetch the metadata from (besides
        /// the link's x.pe and trackers); repeat for several.
        #[arg(long = "peer", value_name = "HOST:PORT", value_parser = parse_peer)]
        peers: Vec<SocketAddr>,
        /// For a magnet link: give up after this many seconds.
        #[arg(long, default_value_t = 60, value_name = "SECONDS")]
        timeout: u64,
        /// Print one JSON object (info_hash, name, total_length,
        /// piece_length, num_pieces, private, trackers, files).
        #[arg(long)]
        json: bool,
    },
    /// Make a .torrent file from a file or a folder.
    Create(CreateArgs),
    /// Download one or more torrents, then exit (or keep seeding with --seed).
    Download(DownloadArgs),
    /// Share content you already have: verify DIR against TORRENT and upload
    /// to anyone who asks, until stopped.
    Seed(SeedArgs),
    /// Run a whole swarm on this machine: random data, one seeder and N
    /// leechers on 127.0.0.1; shows progress and checks every byte.
    Demo(DemoArgs),
    /// Run until stopped, serving Transmission's RPC and a web page;
    /// torrents, resume data and settings live in a state folder, so a
    /// restart brings everything back.
    Daemon(DaemonArgs),
}

/// `rustico daemon`
#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// The state folder (torrents, resume data, settings). Default: the
    /// config's `[daemon] state_dir`, else STATE_DIR/daemon.
    #[arg(long = "state", value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Port of the RPC and the web page (0 = any free port; the port is
    /// printed as "rpc listening on 127.0.0.1:N"). Default: the config's,
    /// else 9091.
    #[arg(long, value_name = "N")]
    pub rpc_port: Option<u16>,
    /// TCP port to accept peers on (0 = any free port).
    #[arg(long, value_name = "N")]
    pub port: Option<u16>,
    /// Read settings from this TOML file instead of the default location.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// `rustico create`
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The file or folder to share.
    pub path: PathBuf,
    /// Where to write the .torrent file.
    #[arg(short, long = "output", value_name = "OUT.torrent")]
    pub output: PathBuf,
    /// A tracker announce URL; repeat for several (each becomes its own tier).
    #[arg(long = "tracker", value_name = "URL")]
    pub trackers: Vec<String>,
    /// Piece length in bytes (a power of two, at least 16384); chosen from
    /// the total size when absent.
    #[arg(long, value_name = "BYTES")]
    pub piece_length: Option<u32>,
    /// Mark the torrent private (BEP 27): peers only from its trackers.
    #[arg(long)]
    pub private: bool,
    /// A web seed URL (BEP 19); repeat for several.
    #[arg(long = "web-seed", value_name = "URL")]
    pub web_seeds: Vec<String>,
    /// A free-text comment stored in the torrent.
    #[arg(long, value_name = "TEXT")]
    pub comment: Option<String>,
    /// Which protocol version the torrent is for: `v1` (BEP 3, every
    /// client), `v2` (BEP 52 only: SHA-256 merkle trees) or `hybrid`
    /// (both; padding files start every file on a piece, as libtorrent
    /// writes them).
    #[arg(long, value_enum, default_value_t = TorrentFormat::V1, value_name = "VERSION")]
    pub format: TorrentFormat,
}

/// `create --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TorrentFormat {
    /// BEP 3.
    V1,
    /// BEP 52 only.
    V2,
    /// BEP 3 and BEP 52.
    Hybrid,
}

impl From<TorrentFormat> for rustico_metainfo::TorrentVersion {
    fn from(format: TorrentFormat) -> Self {
        use rustico_metainfo::TorrentVersion;
        match format {
            TorrentFormat::V1 => TorrentVersion::V1,
            TorrentFormat::V2 => TorrentVersion::V2,
            TorrentFormat::Hybrid => TorrentVersion::Hybrid,
        }
    }
}

/// `rustico download`
#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// One or more .torrent files or magnet links; all share one listen
    /// port. A magnet link's metadata is fetched from its peers (x.pe,
    /// --peer, its trackers) and saved as DIR/NAME.torrent.
    #[arg(required = true, value_name = "TORRENT|MAGNET")]
    pub torrents: Vec<String>,
    /// The folder that receives the content (a single-file torrent becomes
    /// DIR/NAME, a multi-file one DIR/NAME/...). Default: the config's
    /// download folder, else the current folder.
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub net: NetArgs,
    /// Keep seeding after the download completes (until Ctrl-C).
    #[arg(long)]
    pub seed: bool,
    /// Read settings from this TOML file instead of the default location
    /// ($XDG_CONFIG_HOME/rustico/config.toml, else ~/.config/rustico/config.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// `rustico seed`
#[derive(Debug, Args)]
pub struct SeedArgs {
    /// The .torrent file describing the content.
    pub torrent: PathBuf,
    /// The folder holding the content (DIR/NAME for a single file,
    /// DIR/NAME/... for a folder).
    pub dir: PathBuf,
    #[command(flatten)]
    pub net: NetArgs,
    /// Read settings from this TOML file instead of the default location.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Network flags shared by `download` and `seed`.
#[derive(Debug, Args, Clone, Default)]
pub struct NetArgs {
    /// TCP port to accept peers on (0 = any free port). Default: the
    /// config's listen port, else 6881.
    #[arg(long, value_name = "N")]
    pub port: Option<u16>,
    /// Connect to this peer directly, besides the trackers' peers; repeat
    /// for several.
    #[arg(long = "peer", value_name = "HOST:PORT", value_parser = parse_peer)]
    pub peers: Vec<SocketAddr>,
    /// Run without the DHT (it is on by default for non-private torrents).
    #[arg(long)]
    pub no_dht: bool,
    /// Bootstrap the DHT from this node instead of the configured ones
    /// (default: the public routers); repeat for several.
    #[arg(long = "dht-bootstrap", value_name = "HOST:PORT")]
    pub dht_bootstrap: Vec<String>,
    /// UDP port of the DHT node (default: the peer port).
    #[arg(long, value_name = "N")]
    pub dht_port: Option<u16>,
    /// Protocol encryption (MSE/PE) with peers: `prefer` dials encrypted,
    /// falls back to plaintext and accepts both; `require` and `disable`
    /// allow only encrypted or only plaintext links. Default: the config's
    /// `encryption`, else `prefer`.
    #[arg(long, value_enum, value_name = "POLICY")]
    pub encryption: Option<crate::config::Encryption>,
}

/// Why a `--peer` argument is not an address.
#[derive(Debug, thiserror::Error)]
pub enum PeerArgError {
    /// Not `IP:PORT`, or its host name does not resolve.
    #[error("{text}: {source}")]
    Resolve {
        /// The argument.
        text: String,
        /// The resolver's error.
        #[source]
        source: std::io::Error,
    },
    /// The host name resolved to no address.
    #[error("{text}: no address")]
    NoAddress {
        /// The argument.
        text: String,
    },
}

/// A peer address: `IP:PORT`, `[IPv6]:PORT` or `HOST:PORT` (resolved now).
fn parse_peer(text: &str) -> Result<SocketAddr, PeerArgError> {
    use std::net::ToSocketAddrs;
    text.to_socket_addrs()
        .map_err(|source| PeerArgError::Resolve {
            text: text.to_string(),
            source,
        })?
        .next()
        .ok_or_else(|| PeerArgError::NoAddress {
            text: text.to_string(),
        })
}

/// `rustico demo`
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Size of the random content in MiB.
    #[arg(long, default_value_t = 64, value_name = "MIB")]
    pub size: u64,
    /// How many leechers download it from the seeder (and from each other).
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub leechers: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_bad_peer_argument_is_named() {
        let err = parse_peer("127.0.0.1").unwrap_err();
        assert!(
            matches!(&err, PeerArgError::Resolve { text, .. } if text == "127.0.0.1"),
            "{err:?}"
        );
        assert!(err.to_string().starts_with("127.0.0.1: "), "{err}");
        let usage = Cli::try_parse_from(["rustico", "download", "a.torrent", "--peer", "nonsense"])
            .unwrap_err()
            .to_string();
        assert!(usage.contains("nonsense"), "{usage}");
    }

    #[test]
    fn download_takes_every_documented_flag() {
        let cli = Cli::try_parse_from([
            "rustico",
            "-v",
            "download",
            "a.torrent",
            "b.torrent",
            "-o",
            "out",
            "--port",
            "7000",
            "--peer",
            "127.0.0.1:6881",
            "--peer",
            "127.0.0.1:6882",
            "--seed",
            "--config",
            "c.toml",
        ])
        .unwrap();
        assert_eq!(cli.verbose, 1);
        let Command::Download(args) = cli.command else {
            panic!("not download")
        };
        assert_eq!(args.torrents, ["a.torrent", "b.torrent"]);
        assert_eq!(args.output, Some(PathBuf::from("out")));
        assert_eq!(args.net.port, Some(7000));
        assert_eq!(args.net.peers.len(), 2);
        assert!(args.seed);
        assert_eq!(args.config, Some(PathBuf::from("c.toml")));
    }

    #[test]
    fn create_seed_info_and_demo_parse() {
        let cli = Cli::try_parse_from([
            "rustico",
            "create",
            "dir",
            "-o",
            "x.torrent",
            "--tracker",
            "http://t/a",
            "--piece-length",
            "32768",
            "--private",
            "--web-seed",
            "http://w/",
            "--comment",
            "hi",
        ])
        .unwrap();
        let Command::Create(c) = cli.command else {
            panic!("not create")
        };
        assert_eq!(c.piece_length, Some(32768));
        assert!(c.private);
        let cli =
            Cli::try_parse_from(["rustico", "seed", "x.torrent", "d", "--port", "1"]).unwrap();
        assert!(matches!(cli.command, Command::Seed(_)));
        let cli = Cli::try_parse_from(["rustico", "info", "x.torrent", "--json"]).unwrap();
        assert!(matches!(cli.command, Command::Info { json: true, .. }));
        let cli = Cli::try_parse_from([
            "rustico",
            "daemon",
            "--state",
            "s",
            "--rpc-port",
            "0",
            "--port",
            "7",
            "--config",
            "c",
        ])
        .unwrap();
        let Command::Daemon(d) = cli.command else {
            panic!("not daemon")
        };
        assert_eq!((d.rpc_port, d.port), (Some(0), Some(7)));
        assert_eq!(d.state, Some(PathBuf::from("s")));
        let cli = Cli::try_parse_from(["rustico", "demo"]).unwrap();
        let Command::Demo(d) = cli.command else {
            panic!("not demo")
        };
        assert_eq!((d.size, d.leechers), (64, 3));
    }
}
