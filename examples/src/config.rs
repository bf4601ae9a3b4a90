//! Settings from a TOML file, overridden by command-line flags.
//!
//! The default file is `$XDG_CONFIG_HOME/rustico/config.toml`, else
//! `$HOME/.config/rustico/config.toml`; a missing default file means "all
//! defaults", a missing `--config FILE` is an error. Example:
//!
//! ```toml
//! listen_port = 6881
//! download_dir = "/home/me/Downloads"
//! log_dir = "/home/me/.local/state/rustico"
//! peers_per_torrent = 50
//! peers_per_ip = 8         # connections per torrent from one IP address
//! upload_slots = 4
//! max_connections = 200    # peers of all torrents together; 0: no limit
//! max_upload_rate = 2097152    # bytes per second, all torrents; 0: no limit
//! max_download_rate = 0        # bytes per second, all torrents; 0: no limit
//! # The DHT (BEP 5): on by default, bootstrapped from the public routers;
//! # `dht = false` (or `--no-dht`) turns it off.
//! dht = true
//! dht_bootstrap = ["router.bittorrent.com:6881"]
//! dht_port = 6881          # default: the listen port
//! state_dir = "/home/me/.local/share/rustico"   # the DHT routing table
//! # Protocol encryption (MSE/PE): "prefer" (default), "require" or "disable".
//! encryption = "prefer"
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Everything a config file may set. Unknown keys are an error, so a typo
/// is reported instead of silently ignored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// TCP port to accept peers on (0: any free port).
    pub listen_port: u16,
    /// Where downloads go when `-o` is not given.
    pub download_dir: Option<PathBuf>,
    /// Where the log file `rustico.log` is written.
    pub log_dir: Option<PathBuf>,
    /// Most peers connected per torrent.
    pub peers_per_torrent: usize,
    /// Most connections per torrent with one IP address, so that one host
    /// cannot take many of the torrent's slots.
    pub peers_per_ip: usize,
    /// Most peers unchoked at once per torrent (one of them optimistic).
    pub upload_slots: usize,
    /// Most peer connections of all torrents together, dialling and
    /// incoming alike (0: no limit). A torrent that finds none free dials
    /// again later; an incoming peer over the limit is refused.
    pub max_connections: usize,
    /// Most bytes per second sent to peers, all torrents together (0: no
    /// limit; else at least [`MIN_RATE`]).
    pub max_upload_rate: u64,
    /// Most bytes per second read from peers, all torrents together (0:
    /// no limit; else at least [`MIN_RATE`]).
    pub max_download_rate: u64,
    /// Run a DHT node (BEP 5) and use it for every non-private torrent.
    pub dht: bool,
    /// `HOST:PORT` nodes to bootstrap the DHT from (besides the routing
    /// table saved by the last run).
    pub dht_bootstrap: Vec<String>,
    /// UDP port of the DHT node; default: the peer listen port.
    pub dht_port: Option<u16>,
    /// Where state that outlives a run is kept (the DHT routing table).
    pub state_dir: Option<PathBuf>,
    /// Protocol encryption (MSE/PE) with peers, both ways.
    pub encryption: Encryption,
    /// `rustico daemon`'s settings (the `[daemon]` table).
    pub daemon: DaemonConfig,
}

/// The protocol encryption setting (`encryption` in the config,
/// `--encryption` on the command line).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Encryption {
    /// Dial encrypted (RC4) and fall back to plaintext once if the peer
    /// hangs up; accept both.
    #[default]
    Prefer,
    /// RC4-encrypted connections only, both ways.
    Require,
    /// Plaintext only, both ways.
    Disable,
}

impl From<Encryption> for rustico_peer_wire::mse::Policy {
    fn from(setting: Encryption) -> Self {
        use rustico_peer_wire::mse::Policy;
        match setting {
            Encryption::Prefer => Policy::Prefer,
            Encryption::Require => Policy::Require,
            Encryption::Disable => Policy::Disable,
        }
    }
}

/// The `[daemon]` table: the RPC server and the daemon's state folder.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DaemonConfig {
    /// Where torrents, resume data and settings live (default:
    /// `STATE_DIR/daemon`).
    pub state_dir: Option<PathBuf>,
    /// The RPC and web page port.
    pub rpc_port: u16,
    /// The address the RPC listens on; anything but loopback needs
    /// `rpc_username` and `rpc_password`.
    pub rpc_bind: std::net::IpAddr,
    /// HTTP Basic user name (with `rpc_password`: authentication on).
    pub rpc_username: Option<String>,
    /// HTTP Basic password.
    pub rpc_password: Option<String>,
    /// Host names accepted in the `Host` header besides `localhost` and IP
    /// addresses (DNS rebinding protection).
    pub rpc_host_whitelist: Vec<String>,
    /// Largest request body accepted, in bytes.
    pub rpc_max_body: usize,
    /// Serve the web page from this folder instead of the embedded one
    /// (for example Transmission's `/usr/share/transmission/web`).
    pub web_root: Option<PathBuf>,
    /// Where downloaded content goes (default: `STATE_DIR/downloads`).
    pub download_dir: Option<PathBuf>,
}

impl Default for DaemonConfig {
    fn default() -> DaemonConfig {
        DaemonConfig {
            state_dir: None,
            rpc_port: 9091,
            rpc_bind: std::net::IpAddr::from([127, 0, 0, 1]),
            rpc_username: None,
            rpc_password: None,
            rpc_host_whitelist: Vec::new(),
            rpc_max_body: 16 << 20,
            web_root: None,
            download_dir: None,
        }
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen_port: 6881,
            download_dir: None,
            log_dir: None,
            peers_per_torrent: 50,
            peers_per_ip: 8,
            upload_slots: 4,
            max_connections: 0,
            max_upload_rate: 0,
            max_download_rate: 0,
            dht: true,
            dht_bootstrap: crate::dht::PUBLIC_ROUTERS.map(String::from).to_vec(),
            dht_port: None,
            state_dir: None,
            encryption: Encryption::default(),
            daemon: DaemonConfig::default(),
        }
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}", path = .0.display(), source = .1)]
    Read(PathBuf, #[source] std::io::Error),
    /// The file is not valid TOML for [`Config`].
    #[error("bad config {path}: {source}", path = .0.display(), source = .1)]
    Parse(PathBuf, #[source] toml::de::Error),
    /// A key has a value of the right type that cannot be used.
    #[error("bad config {path}: `{key} = {value}`: {problem}", path = path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The key.
        key: &'static str,
        /// Its value.
        value: u64,
        /// What is wrong with it.
        problem: Problem,
    },
}

/// What is wrong with a value, in [`ConfigError::Invalid`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// A count that must be at least one.
    #[error("must be at least 1")]
    Zero,
    /// A rate limit so low that one 16 KiB block takes over 16 s.
    #[error("a rate limit is 0 (none) or at least {MIN_RATE} bytes per second")]
    RateTooLow,
}

/// The lowest rate limit accepted, bytes per second (one 16 KiB block in
/// 16 s).
pub const MIN_RATE: u64 = 1024;

impl Config {
    /// The documented default location, if a home can be found.
    pub fn default_path() -> Option<PathBuf> {
        if let Some(xdg) = std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
            return Some(PathBuf::from(xdg).join("rustico/config.toml"));
        }
        std::env::var_os("HOME")
            .filter(|v| !v.is_empty())
            .map(|home| PathBuf::from(home).join(".config/rustico/config.toml"))
    }

    /// Parses TOML text and checks its values.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        let config: Config =
            toml::from_str(text).map_err(|e| ConfigError::Parse(origin.to_path_buf(), e))?;
        config.check(origin)?;
        Ok(config)
    }

    /// Refuses values of the right type that cannot be used.
    fn check(&self, origin: &Path) -> Result<(), ConfigError> {
        let counts = [
            ("peers_per_torrent", self.peers_per_torrent),
            ("peers_per_ip", self.peers_per_ip),
            ("upload_slots", self.upload_slots),
        ];
        let invalid = |key, value, problem| ConfigError::Invalid {
            path: origin.to_path_buf(),
            key,
            value,
            problem,
        };
        for (key, value) in counts {
            if value == 0 {
                return Err(invalid(key, 0, Problem::Zero));
            }
        }
        let rates = [
            ("max_upload_rate", self.max_upload_rate),
            ("max_download_rate", self.max_download_rate),
        ];
        for (key, value) in rates {
            if value != 0 && value < MIN_RATE {
                return Err(invalid(key, value, Problem::RateTooLow));
            }
        }
        Ok(())
    }

    /// Loads `explicit` (must exist) or the default file (may be absent).
    pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        let (path, required) = match explicit {
            Some(p) => (p.to_path_buf(), true),
            None => match Config::default_path() {
                Some(p) => (p, false),
                None => return Ok(Config::default()),
            },
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Config::from_toml(&text, &path),
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                Ok(Config::default())
            }
            Err(e) => Err(ConfigError::Read(path, e)),
        }
    }

    /// The state folder: the configured one, else `$XDG_DATA_HOME/rustico`,
    /// else `$HOME/.local/share/rustico`, else the system temp folder.
    pub fn state_dir(&self) -> PathBuf {
        if let Some(dir) = &self.state_dir {
            return dir.clone();
        }
        if let Some(data) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
            return PathBuf::from(data).join("rustico");
        }
        match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => PathBuf::from(home).join(".local/share/rustico"),
            None => std::env::temp_dir().join("rustico"),
        }
    }

    /// The log folder: the configured one, else `$XDG_STATE_HOME/rustico`,
    /// else `$HOME/.local/state/rustico`, else the system temp folder.
    pub fn log_dir(&self) -> PathBuf {
        if let Some(dir) = &self.log_dir {
            return dir.clone();
        }
        if let Some(state) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
            return PathBuf::from(state).join("rustico");
        }
        match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => PathBuf::from(home).join(".local/state/rustico"),
            None => std::env::temp_dir().join("rustico"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_read() {
        let c = Config::from_toml(
            "listen_port = 7000\ndownload_dir = \"/d\"\nlog_dir = \"/l\"\npeers_per_torrent = 9\npeers_per_ip = 3\nupload_slots = 2\n",
            Path::new("x"),
        )
        .unwrap();
        assert_eq!(c.listen_port, 7000);
        assert_eq!(c.download_dir, Some(PathBuf::from("/d")));
        assert_eq!(c.log_dir(), PathBuf::from("/l"));
        assert_eq!((c.peers_per_torrent, c.upload_slots), (9, 2));
        assert_eq!(c.peers_per_ip, 3);
    }

    #[test]
    fn missing_keys_take_defaults_and_typos_are_errors() {
        let c = Config::from_toml("upload_slots = 3", Path::new("x")).unwrap();
        assert_eq!(c.listen_port, 6881);
        assert_eq!(c.upload_slots, 3);
        let err = Config::from_toml("upload_slot = 3", Path::new("x")).unwrap_err();
        assert!(err.to_string().contains("upload_slot"), "{err}");
    }

    #[test]
    fn limits_are_read_and_zero_means_none() {
        let c = Config::from_toml(
            "max_connections = 30\nmax_upload_rate = 2097152\nmax_download_rate = 1024\n",
            Path::new("x"),
        )
        .unwrap();
        assert_eq!(c.max_connections, 30);
        assert_eq!((c.max_upload_rate, c.max_download_rate), (2 << 20, 1024));
        let d = Config::from_toml("", Path::new("x")).unwrap();
        assert_eq!(d.max_connections, 0, "no limit by default");
        assert_eq!((d.max_upload_rate, d.max_download_rate), (0, 0));
        let z = Config::from_toml("max_upload_rate = 0\nmax_connections = 0", Path::new("x"));
        assert!(z.is_ok());
    }

    #[test]
    fn bad_limits_are_typed_errors() {
        let cases = [
            (
                "max_upload_rate = 1023",
                "max_upload_rate",
                1023,
                Problem::RateTooLow,
            ),
            (
                "max_download_rate = 1",
                "max_download_rate",
                1,
                Problem::RateTooLow,
            ),
            (
                "peers_per_torrent = 0",
                "peers_per_torrent",
                0,
                Problem::Zero,
            ),
            ("upload_slots = 0", "upload_slots", 0, Problem::Zero),
            ("peers_per_ip = 0", "peers_per_ip", 0, Problem::Zero),
        ];
        for (text, want_key, want_value, want) in cases {
            match Config::from_toml(text, Path::new("c.toml")) {
                Err(ConfigError::Invalid {
                    path,
                    key,
                    value,
                    problem,
                }) => {
                    assert_eq!(path, Path::new("c.toml"));
                    assert_eq!(
                        (key, value, problem),
                        (want_key, want_value, want),
                        "{text}"
                    );
                }
                other => panic!("{text}: {other:?}"),
            }
        }
        // Negative numbers, fractions and strings are not plain integers.
        for text in [
            "max_upload_rate = -1",
            "max_download_rate = 1.5",
            "max_upload_rate = \"2 MiB\"",
            "max_connections = -3",
        ] {
            assert!(
                matches!(
                    Config::from_toml(text, Path::new("x")),
                    Err(ConfigError::Parse(..))
                ),
                "{text}"
            );
        }
        let err = Config::from_toml("max_upload_rate = 10", Path::new("c.toml")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "bad config c.toml: `max_upload_rate = 10`: a rate limit is 0 (none) or at least 1024 bytes per second"
        );
    }

    #[test]
    fn an_explicit_missing_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Config::load(Some(&dir.path().join("nope.toml"))).is_err());
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "listen_port = 1\n").unwrap();
        assert_eq!(Config::load(Some(&path)).unwrap().listen_port, 1);
    }
}
