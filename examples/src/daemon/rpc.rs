//! Transmission's RPC (`docs/rpc-spec.md` of Transmission): the methods
//! and fields that `transmission-remote`, Transmission's web client and our
//! own page use. A request is one JSON object `{method, arguments, tag}`;
//! the answer is `{result, arguments, tag}`, with `result` "success" or a
//! sentence saying what was wrong.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::state::{self, lock, unix_now, Added, Daemon, Entry, Source};
use crate::engine::TorrentDetail;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::state::Saved;

    #[test]
    fn every_listed_torrent_field_is_served() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.bin");
        std::fs::write(&file, vec![7u8; 100_000]).unwrap();
        let built = rustico_metainfo::TorrentBuilder::new(&file)
            .build(|_| {}, &std::sync::atomic::AtomicBool::new(false))
            .unwrap();
        let (hash, meta, facts) = state::parse_metainfo(built.as_bytes()).unwrap();
        let entry = Entry {
            hash,
            saved: Saved {
                id: 1,
                name: meta.name.clone(),
                download_dir: dir.path().to_path_buf(),
                paused: true,
                added_date: 1,
                done_date: 0,
                magnet: None,
                downloaded_ever: 0,
                uploaded_ever: 0,
            },
            meta: Some(meta),
            facts,
            handle: None,
            last_status: None,
            fetching: None,
            error: None,
            started: None,
            session_down: 0,
            session_up: 0,
        };
        let ctx = Context {
            session_id: "s".into(),
            peer_port: 1,
            peer_limit: 50,
            max_connections: 0,
            max_upload_rate: 0,
            max_download_rate: 0,
            dht: false,
            config_dir: "c".into(),
            rpc_port: 2,
            auth: false,
        };
        let view = View {
            e: &entry,
            detail: None,
            position: 0,
            ctx: &ctx,
            torrent_file: dir.path().join("t"),
        };
        for field in TORRENT_FIELDS {
            assert_ne!(view.field(field), Value::Null, "{field}");
        }
        assert_eq!(view.field("status"), json!(0));
        assert_eq!(view.field("name"), json!("a.bin"));
        assert_eq!(view.field("files")[0]["length"], json!(100_000));
    }

    #[test]
    fn client_names_come_from_peer_id_prefixes() {
        assert_eq!(client_name("-LT2080-"), "libtorrent (Rasterbar) 2.0.8");
        assert_eq!(client_name("-RS0100-"), "rustico 0.1");
        assert_eq!(client_name("-XX1000-"), "-XX1000-");
        assert_eq!(client_name("M7-4-0--"), "M7-4-0--");
        assert_eq!(client_name("web seed"), "web seed");
    }
}

/// Our RPC version (Transmission 3.00's).
pub const RPC_VERSION: u32 = 15;

/// What the RPC reports of the daemon's settings.
#[derive(Debug, Clone)]
pub struct Context {
    /// The CSRF token clients echo in `X-Transmission-Session-Id`.
    pub session_id: String,
    /// Port peers reach us on.
    pub peer_port: u16,
    /// Most peers per torrent.
    pub peer_limit: usize,
    /// Most peers of all torrents together (0: no limit).
    pub max_connections: usize,
    /// Most bytes per second sent, all torrents together (0: no limit).
    pub max_upload_rate: u64,
    /// Most bytes per second read, all torrents together (0: no limit).
    pub max_download_rate: u64,
    /// The DHT is on.
    pub dht: bool,
    /// The state folder (Transmission's `config-dir`).
    pub config_dir: String,
    /// The RPC port.
    pub rpc_port: u16,
    /// Basic authentication is on.
    pub auth: bool,
}

/// Why a request failed: its text becomes `result`.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// The body is not a JSON object with a string `method`.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// No such method.
    #[error("method name not recognized: {0}")]
    UnknownMethod(String),
    /// An argument has the wrong type or value.
    #[error("invalid argument '{name}': {why}")]
    Argument {
        /// Which.
        name: &'static str,
        /// What is wrong.
        why: String,
    },
    /// A field name we do not know.
    #[error("unknown field '{0}' (see the README's RPC section for the fields rustico serves)")]
    UnknownField(String),
    /// No torrent with this id or hash.
    #[error("no torrent with id {0}")]
    UnknownTorrent(String),
    /// An argument we parse but cannot honour.
    #[error("{0} is not supported by rustico")]
    Unsupported(String),
    /// The daemon could not do it.
    #[error("{0}")]
    State(#[from] state::StateError),
}

fn arg_error(name: &'static str, why: impl Into<String>) -> RpcError {
    RpcError::Argument {
        name,
        why: why.into(),
    }
}

/// Answers one request body. The HTTP status is 200 whatever the result
/// (as Transmission does); only a body that is not JSON at all is the
/// caller's 400.
pub fn handle(daemon: &Arc<Mutex<Daemon>>, ctx: &Context, request: &Value) -> Value {
    let tag = request.get("tag").cloned();
    let (result, arguments) = match dispatch(daemon, ctx, request) {
        Ok(args) => ("success".to_string(), args),
        Err(e) => (e.to_string(), Value::Object(Map::new())),
    };
    let mut answer = json!({ "result": result, "arguments": arguments });
    if let (Some(tag), Some(obj)) = (tag, answer.as_object_mut()) {
        obj.insert("tag".into(), tag);
    }
    answer
}

fn dispatch(
    daemon: &Arc<Mutex<Daemon>>,
    ctx: &Context,
    request: &Value,
) -> Result<Value, RpcError> {
    let obj = request
        .as_object()
        .ok_or_else(|| RpcError::Malformed("the body is not a JSON object".into()))?;
    let method = obj
        .get("method")
        .ok_or_else(|| RpcError::Malformed("no 'method'".into()))?
        .as_str()
        .ok_or_else(|| RpcError::Malformed("'method' is not a string".into()))?;
    let empty = Map::new();
    let args = match obj.get("arguments") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(a)) => a,
        Some(_) => return Err(arg_error("arguments", "not an object")),
    };
    match method {
        "session-get" => session_get(daemon, ctx, args),
        "session-stats" => Ok(session_stats(&lock(daemon))),
        "session-set" => match args.keys().next() {
            None => Ok(json!({})),
            Some(key) => Err(RpcError::Unsupported(format!("session-set of '{key}'"))),
        },
        "session-close" => Err(RpcError::Unsupported("session-close".into())),
        "torrent-get" => torrent_get(daemon, ctx, args),
        "torrent-add" => torrent_add(daemon, args),
        "torrent-start" | "torrent-start-now" => {
            let ids = ids_of(&lock(daemon), args)?;
            Daemon::start(daemon, &ids)?;
            Ok(json!({}))
        }
        "torrent-stop" => {
            let ids = ids_of(&lock(daemon), args)?;
            let handles = lock(daemon).stop(&ids);
            stop_all(handles);
            Ok(json!({}))
        }
        "torrent-verify" => {
            let ids = ids_of(&lock(daemon), args)?;
            Daemon::verify(daemon, &ids)?;
            Ok(json!({}))
        }
        "torrent-remove" => {
            let delete = match args.get("delete-local-data") {
                None => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => return Err(arg_error("delete-local-data", "not a boolean")),
            };
            let (handles, doomed) = {
                let mut d = lock(daemon);
                let ids = ids_of(&d, args)?;
                d.remove(&ids, delete)
            };
            stop_all(handles);
            for path in doomed {
                let result = if path.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
                if let Err(e) = result {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        log::warn!(target: "rustico", "daemon: cannot delete {}: {e}", path.display());
                    }
                }
            }
            Ok(json!({}))
        }
        "torrent-reannounce" => {
            ids_of(&lock(daemon), args)?;
            Err(RpcError::Unsupported("torrent-reannounce".into()))
        }
        "torrent-set" => {
            ids_of(&lock(daemon), args)?;
            match args.keys().find(|k| *k != "ids") {
                None => Ok(json!({})),
                Some(key) => Err(RpcError::Unsupported(format!("torrent-set of '{key}'"))),
            }
        }
        "port-test" => Ok(json!({ "port-is-open": false })),
        other => Err(RpcError::UnknownMethod(other.to_string())),
    }
}

fn stop_all(handles: Vec<crate::engine::TorrentHandle>) {
    let threads: Vec<_> = handles
        .into_iter()
        .map(|h| std::thread::spawn(move || h.stop(state::STOP_TIMEOUT)))
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

/// The torrents an `ids` argument names: absent means all; a number, a
/// hash, a list of them, or "recently-active".
fn ids_of(d: &Daemon, args: &Map<String, Value>) -> Result<Vec<u32>, RpcError> {
    let all = || d.torrents.iter().map(|e| e.saved.id).collect::<Vec<u32>>();
    let one = |v: &Value| -> Result<u32, RpcError> {
        match v {
            Value::Number(n) => {
                let id = n
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| arg_error("ids", format!("{n} is not a torrent id")))?;
                d.get(id)
                    .map(|_| id)
                    .ok_or_else(|| RpcError::UnknownTorrent(id.to_string()))
            }
            Value::String(s) => d
                .id_of_hash(s)
                .ok_or_else(|| RpcError::UnknownTorrent(s.clone())),
            other => Err(arg_error(
                "ids",
                format!("{other} is neither an id nor a hash"),
            )),
        }
    };
    match args.get("ids") {
        None => Ok(all()),
        Some(Value::String(s)) if s == "recently-active" => Ok(all()),
        Some(Value::Array(list)) => list.iter().map(one).collect(),
        Some(v) => one(v).map(|id| vec![id]),
    }
}

fn session_get(
    daemon: &Arc<Mutex<Daemon>>,
    ctx: &Context,
    args: &Map<String, Value>,
) -> Result<Value, RpcError> {
    let d = lock(daemon);
    let all = json!({
        "alt-speed-down": 50, "alt-speed-enabled": false, "alt-speed-time-begin": 540,
        "alt-speed-time-day": 127, "alt-speed-time-enabled": false, "alt-speed-time-end": 1020,
        "alt-speed-up": 50, "blocklist-enabled": false, "blocklist-size": 0,
        "blocklist-url": "", "cache-size-mb": 0, "config-dir": ctx.config_dir,
        "dht-enabled": ctx.dht, "download-dir": d.download_dir.display().to_string(),
        "download-queue-enabled": false, "download-queue-size": 0,
        "encryption": "tolerated", "idle-seeding-limit": 30,
        "idle-seeding-limit-enabled": false, "incomplete-dir": "",
        "incomplete-dir-enabled": false, "lpd-enabled": false,
        "peer-limit-global": match ctx.max_connections {
            0 => ctx.peer_limit * d.torrents.len().max(1),
            max => max,
        },
        "peer-limit-per-torrent": ctx.peer_limit, "peer-port": ctx.peer_port,
        "peer-port-random-on-start": false, "pex-enabled": true,
        "port-forwarding-enabled": false, "queue-stalled-enabled": false,
        "queue-stalled-minutes": 30, "rename-partial-files": false,
    });
    let more = json!({
        "rpc-version": RPC_VERSION, "rpc-version-minimum": 1,
        "rpc-port": ctx.rpc_port, "rpc-authentication-required": ctx.auth,
        "script-torrent-done-enabled": false, "script-torrent-done-filename": "",
        "seedRatioLimit": 2.0, "seedRatioLimited": false, "seed-queue-enabled": false,
        "seed-queue-size": 0, "session-id": ctx.session_id,
        // Transmission's speed limits are in kB/s (`speed-bytes`: 1000).
        "speed-limit-down": ctx.max_download_rate / 1000,
        "speed-limit-down-enabled": ctx.max_download_rate > 0,
        "speed-limit-up": ctx.max_upload_rate / 1000,
        "speed-limit-up-enabled": ctx.max_upload_rate > 0,
        "start-added-torrents": true, "trash-original-torrent-files": false,
        "units": {
            "speed-units": ["kB/s", "MB/s", "GB/s", "TB/s"], "speed-bytes": 1000,
            "size-units": ["kB", "MB", "GB", "TB"], "size-bytes": 1000,
            "memory-units": ["KiB", "MiB", "GiB", "TiB"], "memory-bytes": 1024
        },
        "utp-enabled": false,
        "version": format!("rustico {}", env!("CARGO_PKG_VERSION")),
    });
    let mut all = all;
    if let (Some(a), Value::Object(m)) = (all.as_object_mut(), more) {
        a.extend(m);
    }
    let Some(fields) = args.get("fields") else {
        return Ok(all);
    };
    let names = field_names(fields)?;
    let mut out = Map::new();
    for name in names {
        match all.get(name) {
            Some(v) => {
                out.insert(name.to_string(), v.clone());
            }
            None => return Err(RpcError::UnknownField(name.to_string())),
        }
    }
    Ok(Value::Object(out))
}

fn session_stats(d: &Daemon) -> Value {
    let mut down_rate = 0u64;
    let mut up_rate = 0u64;
    let mut active = 0;
    for e in &d.torrents {
        if let Some(h) = &e.handle {
            active += 1;
            down_rate += h.status().down_rate.load(Ordering::Relaxed);
            up_rate += h.status().up_rate.load(Ordering::Relaxed);
        }
    }
    let totals = d.totals_now();
    json!({
        "activeTorrentCount": active,
        "pausedTorrentCount": d.torrents.len() - active,
        "torrentCount": d.torrents.len(),
        "downloadSpeed": down_rate,
        "uploadSpeed": up_rate,
        "cumulative-stats": {
            "uploadedBytes": totals.uploaded,
            "downloadedBytes": totals.downloaded,
            "filesAdded": totals.files_added,
            "sessionCount": totals.session_count,
            "secondsActive": totals.seconds_active,
        },
        "current-stats": {
            "uploadedBytes": d.uploaded_this_run(),
            "downloadedBytes": d.downloaded_this_run(),
            "filesAdded": d.added_this_run,
            "sessionCount": 1,
            "secondsActive": d.started.elapsed().as_secs(),
        },
    })
}

fn field_names(fields: &Value) -> Result<Vec<&str>, RpcError> {
    let list = fields
        .as_array()
        .ok_or_else(|| arg_error("fields", "not a list"))?;
    list.iter()
        .map(|f| {
            f.as_str()
                .ok_or_else(|| arg_error("fields", format!("{f} is not a field name")))
        })
        .collect()
}

fn torrent_add(daemon: &Arc<Mutex<Daemon>>, args: &Map<String, Value>) -> Result<Value, RpcError> {
    let text = |name: &'static str| -> Result<Option<&str>, RpcError> {
        match args.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(arg_error(name, "not a string")),
        }
    };
    let paused = match args.get("paused") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(arg_error("paused", "not a boolean")),
    };
    let dir = text("download-dir")?.map(std::path::PathBuf::from);
    let source = match (text("metainfo")?, text("filename")?) {
        (Some(b64), _) => {
            // Clients wrap base64 in lines; the spec's engine ignores them.
            let compact: String = b64.chars().filter(|c| !c.is_whitespace()).collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(compact.as_bytes())
                .map_err(|e| arg_error("metainfo", format!("not base64: {e}")))?;
            Source::Metainfo(bytes)
        }
        (None, Some(name)) if name.starts_with("magnet:") => Source::Magnet(name.to_string()),
        (None, Some(name)) if name.starts_with("http://") || name.starts_with("https://") => {
            return Err(RpcError::Unsupported("adding a torrent by URL".into()))
        }
        (None, Some(name)) => {
            let bytes =
                std::fs::read(name).map_err(|e| arg_error("filename", format!("{name}: {e}")))?;
            Source::Metainfo(bytes)
        }
        (None, None) => {
            return Err(arg_error(
                "filename",
                "neither 'filename' nor 'metainfo' given",
            ))
        }
    };
    for key in args.keys() {
        if !matches!(
            key.as_str(),
            "metainfo"
                | "filename"
                | "download-dir"
                | "paused"
                | "peer-limit"
                | "bandwidthPriority"
        ) {
            return Err(RpcError::Unsupported(format!("torrent-add's '{key}'")));
        }
    }
    Ok(
        match Daemon::add(daemon, source, dir, paused, Vec::new())? {
            Added::New { id, name, hash } => {
                json!({ "torrent-added": { "id": id, "name": name, "hashString": hash } })
            }
            Added::Duplicate { id, name, hash } => {
                json!({ "torrent-duplicate": { "id": id, "name": name, "hashString": hash } })
            }
        },
    )
}

/// Every `torrent-get` field rustico serves: Transmission's names, plus
/// `rusticoDownloadingPieces` (pieces being downloaded, for the piece map).
pub const TORRENT_FIELDS: &[&str] = &[
    "activityDate",
    "addedDate",
    "bandwidthPriority",
    "comment",
    "corruptEver",
    "creator",
    "dateCreated",
    "desiredAvailable",
    "doneDate",
    "downloadDir",
    "downloadedEver",
    "downloadLimit",
    "downloadLimited",
    "editDate",
    "error",
    "errorString",
    "eta",
    "etaIdle",
    "file-count",
    "fileStats",
    "files",
    "hashString",
    "haveUnchecked",
    "haveValid",
    "honorsSessionLimits",
    "id",
    "isFinished",
    "isPrivate",
    "isStalled",
    "labels",
    "leftUntilDone",
    "magnetLink",
    "manualAnnounceTime",
    "maxConnectedPeers",
    "metadataPercentComplete",
    "name",
    "peer-limit",
    "peers",
    "peersConnected",
    "peersFrom",
    "peersGettingFromUs",
    "peersSendingToUs",
    "percentComplete",
    "percentDone",
    "pieces",
    "pieceCount",
    "pieceSize",
    "priorities",
    "queuePosition",
    "rateDownload",
    "rateUpload",
    "recheckProgress",
    "secondsDownloading",
    "secondsSeeding",
    "seedIdleLimit",
    "seedIdleMode",
    "seedRatioLimit",
    "seedRatioMode",
    "sizeWhenDone",
    "startDate",
    "status",
    "totalSize",
    "torrentFile",
    "trackers",
    "trackerStats",
    "uploadedEver",
    "uploadLimit",
    "uploadLimited",
    "uploadRatio",
    "wanted",
    "webseeds",
    "webseedsSendingToUs",
    "rusticoDownloadingPieces",
];

/// How long `torrent-get` waits for the managers' peers and pieces.
const DETAIL_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// Fields that need the manager's peers and pieces.
const DETAIL_FIELDS: &[&str] = &[
    "peers",
    "pieces",
    "fileStats",
    "files",
    "peersGettingFromUs",
    "peersSendingToUs",
    "peersFrom",
    "webseedsSendingToUs",
    "rusticoDownloadingPieces",
    "desiredAvailable",
];

fn torrent_get(
    daemon: &Arc<Mutex<Daemon>>,
    ctx: &Context,
    args: &Map<String, Value>,
) -> Result<Value, RpcError> {
    let fields = field_names(
        args.get("fields")
            .ok_or_else(|| arg_error("fields", "missing (name the fields you want)"))?,
    )?;
    if let Some(bad) = fields.iter().find(|f| !TORRENT_FIELDS.contains(f)) {
        return Err(RpcError::UnknownField((*bad).to_string()));
    }
    let table = match args.get("format") {
        None => false,
        Some(Value::String(s)) if s == "objects" => false,
        Some(Value::String(s)) if s == "table" => true,
        Some(_) => return Err(arg_error("format", "neither \"objects\" nor \"table\"")),
    };
    let recently_active =
        matches!(args.get("ids"), Some(Value::String(s)) if s == "recently-active");
    let want_detail = fields.iter().any(|f| DETAIL_FIELDS.contains(f));
    // Ask the managers first, then wait for them without the lock held.
    let pending: Vec<(u32, crossbeam_channel::Receiver<TorrentDetail>)> = {
        let mut d = lock(daemon);
        d.note_completions();
        let ids = ids_of(&d, args)?;
        d.torrents
            .iter()
            .filter(|e| want_detail && ids.contains(&e.saved.id))
            .filter_map(|e| e.ask_detail().map(|rx| (e.saved.id, rx)))
            .collect()
    };
    let deadline = std::time::Instant::now() + DETAIL_WAIT;
    let details: std::collections::HashMap<u32, TorrentDetail> = pending
        .into_iter()
        .filter_map(|(id, rx)| rx.recv_deadline(deadline).ok().map(|d| (id, d)))
        .collect();
    let d = lock(daemon);
    // Torrents removed meanwhile are left out.
    let ids = ids_of(&d, args).unwrap_or_default();
    let mut rows = Vec::new();
    for (position, e) in d.torrents.iter().enumerate() {
        if !ids.contains(&e.saved.id) {
            continue;
        }
        let view = View {
            e,
            detail: details.get(&e.saved.id),
            position,
            ctx,
            torrent_file: d
                .state_dir
                .join("torrents")
                .join(format!("{}.torrent", e.hex())),
        };
        rows.push(
            fields
                .iter()
                .map(|f| (f.to_string(), view.field(f)))
                .collect::<Map<String, Value>>(),
        );
    }
    let torrents = if table {
        let mut out = vec![Value::from(fields.clone())];
        for row in rows {
            out.push(Value::Array(
                fields
                    .iter()
                    .map(|f| row.get(*f).cloned().unwrap_or(Value::Null))
                    .collect(),
            ));
        }
        out
    } else {
        rows.into_iter().map(Value::Object).collect()
    };
    let mut answer = json!({ "torrents": torrents });
    if recently_active {
        if let Some(obj) = answer.as_object_mut() {
            obj.insert("removed".into(), json!(d.removed));
        }
    }
    Ok(answer)
}

/// One torrent as `torrent-get` shows it.
struct View<'a> {
    e: &'a Entry,
    detail: Option<&'a TorrentDetail>,
    position: usize,
    ctx: &'a Context,
    torrent_file: std::path::PathBuf,
}

/// Transmission's status codes.
mod code {
    pub const STOPPED: u8 = 0;
    pub const CHECK: u8 = 2;
    pub const DOWNLOAD: u8 = 4;
    pub const SEED: u8 = 6;
}

impl View<'_> {
    fn load(&self, f: impl Fn(&crate::engine::Status) -> u64) -> u64 {
        self.e.status().map_or(0, |s| f(s))
    }

    fn total(&self) -> u64 {
        self.e.meta.as_ref().map_or(0, |m| m.total_length)
    }

    fn have(&self) -> u64 {
        self.load(|s| s.have_bytes.load(Ordering::Relaxed))
    }

    fn running(&self) -> bool {
        self.e.handle.is_some()
    }

    fn rate_down(&self) -> u64 {
        if self.running() {
            self.load(|s| s.down_rate.load(Ordering::Relaxed))
        } else {
            0
        }
    }

    fn rate_up(&self) -> u64 {
        if self.running() {
            self.load(|s| s.up_rate.load(Ordering::Relaxed))
        } else {
            0
        }
    }

    fn error_text(&self) -> Option<String> {
        if let Some(e) = &self.e.error {
            return Some(e.clone());
        }
        self.e
            .status()
            .and_then(|s| crate::run::torrent_error(s).map(|e| e.to_string()))
    }

    fn status_code(&self) -> u8 {
        if self.e.fetching.is_some() {
            return code::DOWNLOAD;
        }
        let Some(h) = &self.e.handle else {
            return code::STOPPED;
        };
        let s = h.status();
        if s.stopped.load(Ordering::Relaxed) {
            code::STOPPED
        } else if s.checking.load(Ordering::Relaxed) {
            code::CHECK
        } else if s.complete.load(Ordering::Relaxed) {
            code::SEED
        } else {
            code::DOWNLOAD
        }
    }

    fn downloaded_ever(&self) -> u64 {
        self.e.saved.downloaded_ever + self.e.downloaded_session()
    }

    fn uploaded_ever(&self) -> u64 {
        self.e.saved.uploaded_ever + self.e.uploaded_session()
    }

    fn seconds_active(&self) -> u64 {
        self.e.started.map_or(0, |t| t.elapsed().as_secs())
    }

    fn peers(&self) -> impl Iterator<Item = &crate::engine::PeerDetail> {
        self.detail
            .into_iter()
            .flat_map(|d| d.peers.iter())
            .filter(|p| p.stats.connected)
    }

    fn file_progress(&self) -> Vec<(String, u64, u64)> {
        let Some(meta) = &self.e.meta else {
            return Vec::new();
        };
        let piece_len = u64::from(meta.piece_length.max(1));
        let mut out = Vec::new();
        let mut offset = 0u64;
        for file in meta.layout.files() {
            let start = offset;
            let end = start + file.length;
            offset = end;
            if file.padding {
                continue;
            }
            let mut done = 0u64;
            if let Some(detail) = self.detail {
                if file.length > 0 {
                    let first = start / piece_len;
                    let last = (end - 1) / piece_len;
                    for piece in first..=last {
                        let Ok(p) = u32::try_from(piece) else { break };
                        if detail.have.get(p) {
                            let ps = piece * piece_len;
                            let pe = ps + piece_len;
                            done += end.min(pe) - start.max(ps);
                        }
                    }
                }
            } else if self.have() >= self.total() && self.total() > 0 {
                done = file.length;
            }
            out.push((file.path().to_string(), file.length, done));
        }
        out
    }

    fn field(&self, name: &str) -> Value {
        let e = self.e;
        let meta = e.meta.as_ref();
        let total = self.total();
        let have = self.have();
        let left = total.saturating_sub(have);
        match name {
            "activityDate" => json!(if self.rate_down() + self.rate_up() > 0 { unix_now() } else { e.saved.added_date }),
            "addedDate" => json!(e.saved.added_date),
            "bandwidthPriority" | "corruptEver" | "downloadLimit" | "uploadLimit" | "haveUnchecked"
            | "seedIdleMode" | "seedRatioMode" | "editDate" => json!(0),
            "comment" => json!(e.facts.comment),
            "creator" => json!(e.facts.creator),
            "dateCreated" => json!(e.facts.date_created),
            "desiredAvailable" => json!(if self.peers().next().is_some() { left } else { 0 }),
            "doneDate" => json!(e.saved.done_date),
            "downloadDir" => json!(e.saved.download_dir.display().to_string()),
            "downloadedEver" => json!(self.downloaded_ever()),
            "downloadLimited" | "uploadLimited" | "isFinished" | "isStalled" => json!(false),
            "honorsSessionLimits" => json!(true),
            "error" => json!(if self.error_text().is_some() { 3 } else { 0 }),
            "errorString" => json!(self.error_text().unwrap_or_default()),
            "eta" => {
                let rate = self.rate_down();
                if left == 0 || total == 0 {
                    json!(-1)
                } else {
                    left.checked_div(rate).map_or(json!(-2), |eta| json!(eta))
                }
            }
            "etaIdle" | "manualAnnounceTime" => json!(-1),
            "file-count" => json!(self.file_progress().len()),
            "fileStats" => Value::Array(
                self.file_progress()
                    .into_iter()
                    .map(|(_, _, done)| json!({ "bytesCompleted": done, "wanted": true, "priority": 0 }))
                    .collect(),
            ),
            "files" => Value::Array(
                self.file_progress()
                    .into_iter()
                    .map(|(name, length, done)| json!({ "name": name, "length": length, "bytesCompleted": done }))
                    .collect(),
            ),
            "hashString" => json!(e.hex()),
            "haveValid" => json!(have),
            "id" => json!(e.saved.id),
            "isPrivate" => json!(meta.is_some_and(|m| m.private)),
            "labels" => json!([]),
            "leftUntilDone" => json!(left),
            "magnetLink" => json!(e.saved.magnet.clone().unwrap_or_else(|| format!(
                "magnet:?xt=urn:btih:{}&dn={}",
                e.hex(),
                percent_encode(&e.saved.name)
            ))),
            "maxConnectedPeers" | "peer-limit" => json!(self.ctx.peer_limit),
            "metadataPercentComplete" => json!(if meta.is_some() { 1.0 } else { 0.0 }),
            "name" => json!(e.saved.name),
            "peers" => Value::Array(self.peers().map(|p| peer_json(p, meta.map_or(0, |m| m.num_pieces))).collect()),
            "peersConnected" => json!(if self.running() { self.load(|s| s.peers.load(Ordering::Relaxed) as u64) } else { 0 }),
            "peersFrom" => {
                let incoming = self.peers().filter(|p| !p.stats.outgoing).count();
                let outgoing = self.peers().count() - incoming;
                json!({ "fromCache": 0, "fromDht": 0, "fromIncoming": incoming, "fromLpd": 0,
                        "fromLtep": 0, "fromPex": 0, "fromTracker": outgoing })
            }
            "peersGettingFromUs" => json!(self.peers().filter(|p| p.stats.up_rate > 0.0).count()),
            "peersSendingToUs" => json!(self.peers().filter(|p| p.stats.down_rate > 0.0).count()),
            "percentDone" | "percentComplete" => json!(if total == 0 { 0.0 } else { have as f64 / total as f64 }),
            "pieces" => json!(self.detail.map_or_else(String::new, |d| {
                base64::engine::general_purpose::STANDARD.encode(d.have.as_wire())
            })),
            "pieceCount" => json!(meta.map_or(0, |m| m.num_pieces)),
            "pieceSize" => json!(meta.map_or(0, |m| m.piece_length)),
            "priorities" => json!(vec![0; self.file_count()]),
            "wanted" => json!(vec![1; self.file_count()]),
            "queuePosition" => json!(self.position),
            "rateDownload" => json!(self.rate_down()),
            "rateUpload" => json!(self.rate_up()),
            "recheckProgress" => json!(0.0),
            "secondsDownloading" => json!(if left > 0 { self.seconds_active() } else { 0 }),
            "secondsSeeding" => json!(if left == 0 { self.seconds_active() } else { 0 }),
            "seedIdleLimit" => json!(30),
            "seedRatioLimit" => json!(2.0),
            "sizeWhenDone" | "totalSize" => json!(total),
            "startDate" => json!(e.started.map_or(0, |t| unix_now().saturating_sub(t.elapsed().as_secs()))),
            "status" => json!(self.status_code()),
            "torrentFile" => json!(self.torrent_file.display().to_string()),
            "trackers" => Value::Array(
                self.trackers()
                    .into_iter()
                    .enumerate()
                    .map(|(i, t)| json!({ "announce": t.url, "id": i, "scrape": "", "tier": t.tier }))
                    .collect(),
            ),
            "trackerStats" => Value::Array(
                self.trackers()
                    .into_iter()
                    .enumerate()
                    .map(|(i, t)| tracker_json(i, &t, self.running()))
                    .collect(),
            ),
            "uploadedEver" => json!(self.uploaded_ever()),
            "uploadRatio" => {
                let base = self.downloaded_ever().max(have);
                if base == 0 {
                    json!(-1)
                } else {
                    json!(self.uploaded_ever() as f64 / base as f64)
                }
            }
            "webseeds" => json!(meta.map_or(Vec::new(), |m| m.web_seeds.clone())),
            "webseedsSendingToUs" => json!(self
                .detail
                .into_iter()
                .flat_map(|d| d.peers.iter())
                .filter(|p| matches!(p.stats.remote, rustico_swarm::Remote::WebSeed(_)) && p.stats.down_rate > 0.0)
                .count()),
            "rusticoDownloadingPieces" => json!(self.detail.map_or(Vec::new(), |d| d.downloading.clone())),
            other => {
                debug_assert!(false, "field {other} is listed but not served");
                Value::Null
            }
        }
    }

    fn file_count(&self) -> usize {
        self.e.meta.as_ref().map_or(0, |m| {
            m.layout.files().iter().filter(|f| !f.padding).count()
        })
    }

    fn trackers(&self) -> Vec<crate::engine::TrackerReport> {
        let live = self
            .e
            .status()
            .and_then(|s| s.trackers.lock().ok().map(|t| t.clone()))
            .unwrap_or_default();
        if !live.is_empty() {
            return live;
        }
        let Some(meta) = &self.e.meta else {
            return Vec::new();
        };
        meta.trackers
            .iter()
            .enumerate()
            .flat_map(|(tier, urls)| {
                urls.iter().map(move |url| crate::engine::TrackerReport {
                    url: url.clone(),
                    tier,
                    ..Default::default()
                })
            })
            .collect()
    }
}

fn tracker_json(id: usize, t: &crate::engine::TrackerReport, running: bool) -> Value {
    let host = t
        .url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default();
    let scheme = t.url.split("://").next().unwrap_or_default();
    json!({
        // Transmission's states: 0 inactive, 1 waiting for the next announce.
        "announce": t.url, "announceState": u8::from(running), "downloadCount": -1,
        "hasAnnounced": t.last_announce > 0, "hasScraped": false,
        "host": format!("{scheme}://{host}"), "id": id, "isBackup": false,
        "lastAnnouncePeerCount": t.last_peers, "lastAnnounceResult": t.last_result,
        "lastAnnounceStartTime": t.last_announce, "lastAnnounceSucceeded": t.last_ok,
        "lastAnnounceTime": t.last_announce, "lastAnnounceTimedOut": false,
        "lastScrapeResult": "", "lastScrapeStartTime": 0, "lastScrapeSucceeded": false,
        "lastScrapeTime": 0, "lastScrapeTimedOut": false, "leecherCount": -1,
        "nextAnnounceTime": 0, "nextScrapeTime": 0, "scrape": "", "scrapeState": 0,
        "seederCount": -1, "tier": t.tier,
    })
}

fn peer_json(p: &crate::engine::PeerDetail, num_pieces: u32) -> Value {
    let s = &p.stats;
    let (address, port) = match s.remote {
        rustico_swarm::Remote::Addr(a) => (a.ip().to_string(), a.port()),
        rustico_swarm::Remote::WebSeed(_) => (p.address.clone(), 0),
    };
    let downloading = s.am_interested && !s.peer_choking;
    let uploading = s.peer_interested && !s.am_choking;
    let mut flags = String::new();
    if downloading {
        flags.push('D');
    } else if s.am_interested {
        flags.push('d');
    }
    if uploading {
        flags.push('U');
    } else if s.peer_interested {
        flags.push('u');
    }
    if !s.am_choking && !s.peer_interested {
        flags.push('?');
    }
    if !s.peer_choking && !s.am_interested {
        flags.push('K');
    }
    if !s.outgoing {
        flags.push('I');
    }
    if s.snubbed {
        flags.push('S');
    }
    json!({
        "address": address, "port": port, "clientName": client_name(&s.client),
        "clientIsChoked": s.peer_choking, "clientIsInterested": s.am_interested,
        "peerIsChoked": s.am_choking, "peerIsInterested": s.peer_interested,
        "isDownloadingFrom": downloading, "isUploadingTo": uploading,
        "isEncrypted": s.encrypted, "isIncoming": !s.outgoing, "isUTP": false,
        "flagStr": flags,
        "progress": if num_pieces == 0 { 0.0 } else { f64::from(s.pieces) / f64::from(num_pieces) },
        "rateToClient": s.down_rate as u64, "rateToPeer": s.up_rate as u64,
        "rusticoRequestsInFlight": s.requests_in_flight, "rusticoSnubbed": s.snubbed,
    })
}

/// A readable client name from an Azureus-style peer id prefix
/// (`-LT2080-` is libtorrent 2.0.8); other text is shown as it is.
pub fn client_name(prefix: &str) -> String {
    let b = prefix.as_bytes();
    let (Some(b'-'), Some(b'-')) = (b.first(), b.get(7)) else {
        return prefix.to_string();
    };
    let code = prefix.get(1..3).unwrap_or_default();
    let version = prefix.get(3..7).unwrap_or_default();
    let name = match code {
        "LT" => "libtorrent (Rasterbar)",
        "lt" => "libTorrent (Rakshasa)",
        "TR" => "Transmission",
        "qB" => "qBittorrent",
        "DE" => "Deluge",
        "AZ" => "Vuze",
        "UT" => "µTorrent",
        "BC" => "BitComet",
        "RS" => "rustico",
        "AR" => "aria2",
        _ => return prefix.to_string(),
    };
    let digits: Vec<String> = version
        .trim_end_matches(['0', '-'])
        .chars()
        .take(3)
        .map(String::from)
        .collect();
    if code == "TR" || digits.is_empty() {
        return format!("{name} {version}");
    }
    format!("{name} {}", digits.join("."))
}

fn percent_encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
