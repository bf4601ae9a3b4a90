//! The daemon's torrents and the state folder that keeps them across
//! restarts:
//!
//! ```text
//! STATE/torrents/HASH.torrent   the metainfo (absent while a magnet link's
//!                               metadata is being fetched)
//! STATE/torrents/HASH.json      the daemon's settings for it (Saved)
//! STATE/resume/HASH             resume data (pieces verified on disk)
//! STATE/session.json            cumulative session statistics
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustico_metainfo::{Magnet, Torrent};
use serde::{Deserialize, Serialize};

use crate::engine::{Engine, Status, TorrentDetail, TorrentHandle, TorrentOptions};
use crate::meta::TorrentMeta;

/// How long a stopping torrent may take (peers closed, trackers told).
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a daemon operation failed; the RPC shows the message as its result.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A state file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A saved settings file is not what this daemon writes.
    #[error("{path}: bad settings file: {source}")]
    Settings {
        /// The file.
        path: String,
        /// Why.
        source: serde_json::Error,
    },
    /// The metainfo is not a valid torrent.
    #[error("invalid or corrupt torrent file: {0}")]
    Torrent(#[source] rustico_metainfo::Error),
    /// The torrent's files cannot be laid out on disk.
    #[error("invalid or corrupt torrent file: {0}")]
    Layout(#[from] crate::meta::MetaError),
    /// The magnet link is not valid.
    #[error("invalid magnet link: {0}")]
    Magnet(#[source] rustico_metainfo::MagnetError),
    /// The magnet link's metadata could not be fetched.
    #[error("metadata: {0}")]
    Metadata(#[from] crate::magnet::FetchError),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What the state folder keeps of one torrent besides its metainfo.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Saved {
    /// The RPC id (stable across restarts).
    pub id: u32,
    /// The torrent's name (the magnet link's `dn` until the metadata came).
    pub name: String,
    /// The folder that holds its content.
    pub download_dir: PathBuf,
    /// Stopped by the user.
    pub paused: bool,
    /// When it was added (Unix seconds).
    pub added_date: u64,
    /// When it completed (Unix seconds; 0: not yet).
    pub done_date: u64,
    /// The magnet link it was added by, if any.
    pub magnet: Option<String>,
    /// Payload bytes received in earlier runs.
    pub downloaded_ever: u64,
    /// Payload bytes sent in earlier runs.
    pub uploaded_ever: u64,
}

/// Facts of the metainfo the RPC shows, kept once it is known.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// `comment`.
    pub comment: String,
    /// `created by`.
    pub creator: String,
    /// `creation date`.
    pub date_created: u64,
}

/// One torrent of the daemon.
pub struct Entry {
    /// 20-byte info-hash.
    pub hash: [u8; 20],
    /// What is saved of it.
    pub saved: Saved,
    /// The metainfo (None while a magnet link's metadata is fetched).
    pub meta: Option<TorrentMeta>,
    /// Metainfo facts for display.
    pub facts: Facts,
    /// The running torrent (None while stopped or fetching metadata).
    pub handle: Option<TorrentHandle>,
    /// The counters of the last run, kept while stopped.
    pub last_status: Option<Arc<Status>>,
    /// Set to cancel a running metadata fetch.
    pub fetching: Option<Arc<AtomicBool>>,
    /// Why it failed, if it did outside the engine (metadata fetch).
    pub error: Option<String>,
    /// When the current run started.
    pub started: Option<Instant>,
    /// Payload counters of earlier runs in this session.
    pub session_down: u64,
    /// Payload bytes sent in earlier runs of this session.
    pub session_up: u64,
}

impl Entry {
    /// The info-hash in lowercase hex.
    pub fn hex(&self) -> String {
        rustico_metainfo::hex(&self.hash).to_string()
    }

    /// The counters of the running torrent, else of its last run.
    pub fn status(&self) -> Option<&Arc<Status>> {
        self.handle
            .as_ref()
            .map(TorrentHandle::status)
            .or(self.last_status.as_ref())
    }

    /// Payload bytes received this session (every run).
    pub fn downloaded_session(&self) -> u64 {
        self.session_down
            + self
                .handle
                .as_ref()
                .map_or(0, |h| h.status().downloaded.load(Ordering::Relaxed))
    }

    /// Payload bytes sent this session (every run).
    pub fn uploaded_session(&self) -> u64 {
        self.session_up
            + self
                .handle
                .as_ref()
                .map_or(0, |h| h.status().uploaded.load(Ordering::Relaxed))
    }

    /// Asks the running torrent for its peers and pieces (None while
    /// stopped or checking); the answer comes on the channel.
    pub fn ask_detail(&self) -> Option<crossbeam_channel::Receiver<TorrentDetail>> {
        let handle = self.handle.as_ref()?;
        if handle.status().checking.load(Ordering::Relaxed) {
            return None;
        }
        handle.ask_detail()
    }

    /// Takes the running torrent out (to stop it without holding the
    /// daemon's lock), folding its counters into the session's.
    fn take_handle(&mut self) -> Option<TorrentHandle> {
        let handle = self.handle.take()?;
        let status = handle.status().clone();
        self.session_down += status.downloaded.load(Ordering::Relaxed);
        self.session_up += status.uploaded.load(Ordering::Relaxed);
        self.last_status = Some(status);
        self.started = None;
        Some(handle)
    }
}

/// Cumulative statistics across runs (`STATE/session.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionTotals {
    /// Payload bytes received in earlier runs.
    pub downloaded: u64,
    /// Payload bytes sent in earlier runs.
    pub uploaded: u64,
    /// Torrents ever added.
    pub files_added: u64,
    /// Runs of the daemon, this one included.
    pub session_count: u64,
    /// Seconds the daemon ran before this run.
    pub seconds_active: u64,
}

/// The daemon: its engine, torrents and state folder.
pub struct Daemon {
    /// The peer engine every torrent runs in (shared with metadata
    /// fetches, which look up the DHT without holding the daemon's lock).
    pub engine: Arc<Engine>,
    /// The state folder.
    pub state_dir: PathBuf,
    /// Default content folder of new torrents.
    pub download_dir: PathBuf,
    /// The torrents, in id order.
    pub torrents: Vec<Entry>,
    /// Totals of earlier runs.
    pub totals: SessionTotals,
    /// When this run started.
    pub started: Instant,
    /// Torrents added this run.
    pub added_this_run: u64,
    /// Torrents removed since the start (ids), for `recently-active`.
    pub removed: Vec<u32>,
    next_id: u32,
}

/// What [`Daemon::add`] did.
pub enum Added {
    /// A new torrent.
    New {
        /// Its id.
        id: u32,
        /// Its name.
        name: String,
        /// Its info-hash in hex.
        hash: String,
    },
    /// The torrent was already there.
    Duplicate {
        /// Its id.
        id: u32,
        /// Its name.
        name: String,
        /// Its info-hash in hex.
        hash: String,
    },
}

/// Something to add: metainfo bytes or a magnet link.
pub enum Source {
    /// A `.torrent` file's bytes.
    Metainfo(Vec<u8>),
    /// A magnet link.
    Magnet(String),
}

impl Daemon {
    /// Opens (or creates) the state folder and starts every torrent it
    /// holds that was not paused.
    pub fn open(
        engine: Engine,
        state_dir: PathBuf,
        download_dir: PathBuf,
    ) -> Result<Arc<Mutex<Daemon>>, StateError> {
        for sub in ["torrents", "resume"] {
            let dir = state_dir.join(sub);
            std::fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        }
        let session_path = state_dir.join("session.json");
        let mut totals: SessionTotals = match std::fs::read(&session_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| StateError::Settings {
                path: session_path.display().to_string(),
                source,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => SessionTotals::default(),
            Err(e) => return Err(io_error(&session_path)(e)),
        };
        totals.session_count += 1;
        let daemon = Daemon {
            engine: Arc::new(engine),
            state_dir,
            download_dir,
            torrents: Vec::new(),
            totals,
            started: Instant::now(),
            added_this_run: 0,
            removed: Vec::new(),
            next_id: 1,
        };
        let mut saved = Vec::new();
        let dir = daemon.state_dir.join("torrents");
        for item in std::fs::read_dir(&dir).map_err(io_error(&dir))? {
            let path = item.map_err(io_error(&dir))?.path();
            if path.extension().is_some_and(|e| e == "json") {
                let bytes = std::fs::read(&path).map_err(io_error(&path))?;
                let s: Saved =
                    serde_json::from_slice(&bytes).map_err(|source| StateError::Settings {
                        path: path.display().to_string(),
                        source,
                    })?;
                let hex = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or_default()
                    .to_string();
                saved.push((hex, s));
            }
        }
        saved.sort_by_key(|(_, s)| s.id);
        let daemon = Arc::new(Mutex::new(daemon));
        for (hex, s) in saved {
            let Some(hash) = unhex(&hex) else {
                log::warn!(target: "rustico", "daemon: {hex}.json: not named by an info-hash; skipped");
                continue;
            };
            let torrent_path = daemon_path(&daemon, |d| d.torrent_path(&hex));
            let loaded = match std::fs::read(&torrent_path) {
                Ok(bytes) => Some(parse_metainfo(&bytes)?),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(io_error(&torrent_path)(e)),
            };
            let restart = !s.paused;
            let magnet = s.magnet.clone();
            let id = s.id;
            let mut guard = lock(&daemon);
            guard.next_id = guard.next_id.max(id + 1);
            let (meta, facts) = match loaded {
                Some((_, meta, facts)) => (Some(meta), facts),
                None => (None, Facts::default()),
            };
            let has_meta = meta.is_some();
            guard.torrents.push(Entry {
                hash,
                saved: s,
                meta,
                facts,
                handle: None,
                last_status: None,
                fetching: None,
                error: None,
                started: None,
                session_down: 0,
                session_up: 0,
            });
            if restart {
                if has_meta {
                    if let Err(e) = guard.start_entry(id, Vec::new()) {
                        log::warn!(target: "rustico", "daemon: torrent {id}: {e}");
                    }
                } else if let Some(link) = magnet {
                    drop(guard);
                    start_fetch(&daemon, id, &link);
                }
            }
        }
        lock(&daemon).save_totals();
        Ok(daemon)
    }

    fn torrent_path(&self, hex: &str) -> PathBuf {
        self.state_dir
            .join("torrents")
            .join(format!("{hex}.torrent"))
    }

    fn settings_path(&self, hex: &str) -> PathBuf {
        self.state_dir.join("torrents").join(format!("{hex}.json"))
    }

    /// Where a torrent's resume data lives.
    pub fn resume_path(&self, hex: &str) -> PathBuf {
        self.state_dir.join("resume").join(hex)
    }

    /// The torrent with this id.
    pub fn get(&self, id: u32) -> Option<&Entry> {
        self.torrents.iter().find(|e| e.saved.id == id)
    }

    fn get_mut(&mut self, id: u32) -> Option<&mut Entry> {
        self.torrents.iter_mut().find(|e| e.saved.id == id)
    }

    /// The id of the torrent with this info-hash (hex, any case).
    pub fn id_of_hash(&self, hex: &str) -> Option<u32> {
        let hash = unhex(hex)?;
        self.torrents
            .iter()
            .find(|e| e.hash == hash)
            .map(|e| e.saved.id)
    }

    /// Writes a torrent's settings file.
    pub fn save_entry(&self, id: u32) {
        let Some(e) = self.get(id) else { return };
        let path = self.settings_path(&e.hex());
        let mut saved = e.saved.clone();
        saved.downloaded_ever += e.downloaded_session();
        saved.uploaded_ever += e.uploaded_session();
        match serde_json::to_vec_pretty(&saved) {
            Ok(bytes) => write_atomically(&path, &bytes),
            Err(err) => log::warn!(target: "rustico", "daemon: {}: {err}", path.display()),
        }
    }

    /// Writes the session totals, this run's included.
    pub fn save_totals(&self) {
        let path = self.state_dir.join("session.json");
        let totals = self.totals_now();
        match serde_json::to_vec_pretty(&totals) {
            Ok(bytes) => write_atomically(&path, &bytes),
            Err(err) => log::warn!(target: "rustico", "daemon: {}: {err}", path.display()),
        }
    }

    /// Totals of every run, this one included.
    pub fn totals_now(&self) -> SessionTotals {
        let mut t = self.totals.clone();
        t.downloaded += self.downloaded_this_run();
        t.uploaded += self.uploaded_this_run();
        t.files_added += self.added_this_run;
        t.seconds_active += self.started.elapsed().as_secs();
        t
    }

    /// Payload bytes received this run, every torrent.
    pub fn downloaded_this_run(&self) -> u64 {
        self.torrents.iter().map(Entry::downloaded_session).sum()
    }

    /// Payload bytes sent this run, every torrent.
    pub fn uploaded_this_run(&self) -> u64 {
        self.torrents.iter().map(Entry::uploaded_session).sum()
    }

    /// Starts the engine's torrent for an entry with metainfo.
    fn start_entry(&mut self, id: u32, peers: Vec<SocketAddr>) -> Result<(), StateError> {
        let resume = {
            let Some(e) = self.get(id) else {
                return Ok(());
            };
            self.resume_path(&e.hex())
        };
        let Some(e) = self.torrents.iter_mut().find(|e| e.saved.id == id) else {
            return Ok(());
        };
        let Some(meta) = e.meta.clone() else {
            return Ok(());
        };
        if e.handle.is_some() {
            return Ok(());
        }
        // The peers its last run knew: a recheck or a stop and start must
        // not depend on a tracker to find them again.
        let mut peers = peers;
        if let Some(known) = e
            .last_status
            .as_ref()
            .and_then(|s| s.known_peers.lock().ok())
        {
            for &addr in known.iter() {
                if !peers.contains(&addr) {
                    peers.push(addr);
                }
            }
        }
        let options = TorrentOptions {
            keep_seeding: true,
            peers,
            use_trackers: true,
            resume_path: Some(resume),
        };
        let dir = e.saved.download_dir.clone();
        let handle = self.engine.add_torrent(meta, dir, options);
        let Some(e) = self.get_mut(id) else {
            return Ok(());
        };
        e.handle = Some(handle);
        e.error = None;
        e.started = Some(Instant::now());
        Ok(())
    }

    /// Adds a torrent (started unless `paused`), saving it in the state
    /// folder first.
    pub fn add(
        this: &Arc<Mutex<Daemon>>,
        source: Source,
        download_dir: Option<PathBuf>,
        paused: bool,
        peers: Vec<SocketAddr>,
    ) -> Result<Added, StateError> {
        let mut d = lock(this);
        let dir = download_dir.unwrap_or_else(|| d.download_dir.clone());
        match source {
            Source::Metainfo(bytes) => {
                let (hash, meta, facts) = parse_metainfo(&bytes)?;
                if let Some(e) = d.torrents.iter().find(|e| e.hash == hash) {
                    return Ok(Added::Duplicate {
                        id: e.saved.id,
                        name: e.saved.name.clone(),
                        hash: e.hex(),
                    });
                }
                let hex = rustico_metainfo::hex(&hash).to_string();
                let path = d.torrent_path(&hex);
                write_atomically(&path, &bytes);
                let id = d.next_id;
                d.next_id += 1;
                d.added_this_run += 1;
                let name = meta.name.clone();
                d.torrents.push(new_entry(
                    hash,
                    id,
                    name.clone(),
                    dir,
                    paused,
                    None,
                    Some(meta),
                    facts,
                ));
                d.save_entry(id);
                if !paused {
                    d.start_entry(id, peers)?;
                }
                Ok(Added::New {
                    id,
                    name,
                    hash: hex,
                })
            }
            Source::Magnet(link) => {
                let magnet = Magnet::parse(&link).map_err(StateError::Magnet)?;
                let hash = magnet.info_hash.0;
                if let Some(e) = d.torrents.iter().find(|e| e.hash == hash) {
                    return Ok(Added::Duplicate {
                        id: e.saved.id,
                        name: e.saved.name.clone(),
                        hash: e.hex(),
                    });
                }
                let hex = rustico_metainfo::hex(&hash).to_string();
                let id = d.next_id;
                d.next_id += 1;
                d.added_this_run += 1;
                let name = magnet.display_name.clone().unwrap_or_else(|| hex.clone());
                d.torrents.push(new_entry(
                    hash,
                    id,
                    name.clone(),
                    dir,
                    paused,
                    Some(link.clone()),
                    None,
                    Facts::default(),
                ));
                d.save_entry(id);
                drop(d);
                if !paused {
                    start_fetch(this, id, &link);
                }
                Ok(Added::New {
                    id,
                    name,
                    hash: hex,
                })
            }
        }
    }

    /// Starts stopped torrents (`torrent-start`).
    pub fn start(this: &Arc<Mutex<Daemon>>, ids: &[u32]) -> Result<(), StateError> {
        for &id in ids {
            let mut d = lock(this);
            let Some(e) = d.get_mut(id) else { continue };
            e.saved.paused = false;
            let magnet = e.saved.magnet.clone();
            let needs_fetch = e.meta.is_none() && e.fetching.is_none();
            d.save_entry(id);
            if needs_fetch {
                drop(d);
                if let Some(link) = magnet {
                    start_fetch(this, id, &link);
                }
            } else {
                d.start_entry(id, Vec::new())?;
            }
        }
        Ok(())
    }

    /// Stops torrents (`torrent-stop`); returns the handles to stop once
    /// the lock is released.
    pub fn stop(&mut self, ids: &[u32]) -> Vec<TorrentHandle> {
        let mut handles = Vec::new();
        for &id in ids {
            let Some(e) = self.get_mut(id) else { continue };
            e.saved.paused = true;
            if let Some(flag) = e.fetching.take() {
                flag.store(true, Ordering::SeqCst);
            }
            handles.extend(e.take_handle());
            self.save_entry(id);
        }
        handles
    }

    /// Removes torrents (`torrent-remove`), with their content when
    /// `delete_data`; returns handles to stop and files to delete once the
    /// lock is released.
    pub fn remove(&mut self, ids: &[u32], delete_data: bool) -> (Vec<TorrentHandle>, Vec<PathBuf>) {
        let mut handles = Vec::new();
        let mut doomed = Vec::new();
        for &id in ids {
            let Some(pos) = self.torrents.iter().position(|e| e.saved.id == id) else {
                continue;
            };
            let mut e = self.torrents.remove(pos);
            if let Some(flag) = e.fetching.take() {
                flag.store(true, Ordering::SeqCst);
            }
            handles.extend(e.take_handle());
            self.totals.downloaded += e.session_down;
            self.totals.uploaded += e.session_up;
            let hex = e.hex();
            for path in [
                self.torrent_path(&hex),
                self.settings_path(&hex),
                self.resume_path(&hex),
            ] {
                if let Err(err) = std::fs::remove_file(&path) {
                    if err.kind() != std::io::ErrorKind::NotFound {
                        log::warn!(target: "rustico", "daemon: {}: {err}", path.display());
                    }
                }
            }
            if delete_data {
                if let Some(meta) = &e.meta {
                    for file in meta.layout.files().iter().filter(|f| !f.padding) {
                        doomed.push(e.saved.download_dir.join(file.relative_path()));
                    }
                    if meta.multi_file {
                        // The torrent's folder last, once emptied.
                        doomed.push(e.saved.download_dir.join(&meta.name));
                    }
                }
            }
            self.removed.push(id);
        }
        self.save_totals();
        (handles, doomed)
    }

    /// Stops torrents and starts them again with a full recheck
    /// (`torrent-verify`): their resume data is deleted first.
    pub fn verify(this: &Arc<Mutex<Daemon>>, ids: &[u32]) -> Result<(), StateError> {
        for &id in ids {
            let handle = {
                let mut d = lock(this);
                let Some(e) = d.get_mut(id) else { continue };
                if e.meta.is_none() {
                    continue;
                }
                e.take_handle()
            };
            if let Some(h) = handle {
                h.stop(STOP_TIMEOUT);
            }
            let mut d = lock(this);
            let Some(e) = d.get(id) else { continue };
            let path = d.resume_path(&e.hex());
            if let Err(err) = std::fs::remove_file(&path) {
                if err.kind() != std::io::ErrorKind::NotFound {
                    return Err(io_error(&path)(err));
                }
            }
            if let Some(e) = d.get_mut(id) {
                e.saved.paused = false;
            }
            d.save_entry(id);
            d.start_entry(id, Vec::new())?;
        }
        Ok(())
    }

    /// Stops everything and saves the state (daemon shutdown).
    pub fn shutdown(this: Arc<Mutex<Daemon>>) {
        let handles: Vec<(u32, TorrentHandle)> = {
            let mut d = lock(&this);
            let ids: Vec<u32> = d.torrents.iter().map(|e| e.saved.id).collect();
            for id in &ids {
                d.save_entry(*id);
            }
            d.save_totals();
            let mut handles = Vec::new();
            for e in &mut d.torrents {
                if let Some(flag) = e.fetching.take() {
                    flag.store(true, Ordering::SeqCst);
                }
                if let Some(h) = e.handle.take() {
                    handles.push((e.saved.id, h));
                }
            }
            handles
        };
        // Stop them together: each waits for its peers and trackers.
        let threads: Vec<_> = handles
            .into_iter()
            .map(|(_, h)| std::thread::spawn(move || h.stop(STOP_TIMEOUT)))
            .collect();
        for t in threads {
            let _ = t.join();
        }
        let engine = match Arc::try_unwrap(this) {
            Ok(mutex) => match mutex.into_inner() {
                Ok(d) => d.engine,
                Err(poisoned) => poisoned.into_inner().engine,
            },
            Err(_) => {
                log::debug!(target: "rustico", "daemon: state still shared at shutdown");
                return;
            }
        };
        // A metadata fetch that was cancelled may still hold the engine
        // for a moment.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut engine = engine;
        loop {
            match Arc::try_unwrap(engine) {
                Ok(e) => return e.shutdown(),
                Err(shared) if Instant::now() < deadline => {
                    engine = shared;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(_) => {
                    log::debug!(target: "rustico", "daemon: engine still shared at shutdown");
                    return;
                }
            }
        }
    }

    /// Notes completion dates (called as the RPC reads torrents).
    pub fn note_completions(&mut self) {
        let mut done = Vec::new();
        for e in &mut self.torrents {
            let complete = e
                .status()
                .is_some_and(|s| s.complete.load(Ordering::Relaxed));
            if complete && e.saved.done_date == 0 {
                e.saved.done_date = unix_now();
                done.push(e.saved.id);
            }
        }
        for id in done {
            self.save_entry(id);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn new_entry(
    hash: [u8; 20],
    id: u32,
    name: String,
    download_dir: PathBuf,
    paused: bool,
    magnet: Option<String>,
    meta: Option<TorrentMeta>,
    facts: Facts,
) -> Entry {
    Entry {
        hash,
        saved: Saved {
            id,
            name,
            download_dir,
            paused,
            added_date: unix_now(),
            done_date: 0,
            magnet,
            downloaded_ever: 0,
            uploaded_ever: 0,
        },
        meta,
        facts,
        handle: None,
        last_status: None,
        fetching: None,
        error: None,
        started: None,
        session_down: 0,
        session_up: 0,
    }
}

/// Locks the daemon; a poisoned lock (a panic elsewhere) still gives the
/// state, which stays consistent between statements.
pub fn lock(this: &Arc<Mutex<Daemon>>) -> std::sync::MutexGuard<'_, Daemon> {
    match this.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn daemon_path(this: &Arc<Mutex<Daemon>>, f: impl FnOnce(&Daemon) -> PathBuf) -> PathBuf {
    f(&lock(this))
}

/// Fetches a magnet link's metadata on a thread of its own, then saves
/// the metainfo and starts the torrent.
fn start_fetch(this: &Arc<Mutex<Daemon>>, id: u32, link: &str) {
    let Ok(magnet) = Magnet::parse(link) else {
        return;
    };
    let stop = Arc::new(AtomicBool::new(false));
    let engine = {
        let mut d = lock(this);
        let engine = d.engine.clone();
        let Some(e) = d.get_mut(id) else { return };
        e.fetching = Some(stop.clone());
        e.error = None;
        engine
    };
    let shared = Arc::clone(this);
    let spawned = crate::engine::spawn("metadata", move || {
        let port = engine.port();
        // A magnet link has no private flag: its peers may come from the DHT.
        let mut dht_peers = engine
            .dht()
            .map(|dht| dht.get_peers(magnet.info_hash.0))
            .unwrap_or_default();
        drop(engine);
        let mut sources = crate::magnet::PeerSources::from_magnet(&magnet, &[], port);
        sources.peers.append(&mut dht_peers);
        let result = crate::magnet::resolve(&magnet, &sources, None, &stop);
        let mut d = lock(&shared);
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let outcome = result
            .map_err(StateError::from)
            .and_then(|(torrent, bytes, answered)| {
                let meta = TorrentMeta::from_torrent(&torrent)?;
                Ok((torrent, bytes, meta, answered))
            });
        let hex = rustico_metainfo::hex(&magnet.info_hash.0).to_string();
        let path = d.torrent_path(&hex);
        let Some(e) = d.get_mut(id) else { return };
        e.fetching = None;
        match outcome {
            Ok((torrent, bytes, meta, mut peers)) => {
                e.saved.name = meta.name.clone();
                e.facts = facts_of(&torrent);
                e.meta = Some(meta);
                write_atomically(&path, &bytes);
                d.save_entry(id);
                peers.extend(sources.peers.iter().copied());
                if let Err(err) = d.start_entry(id, peers) {
                    if let Some(e) = d.get_mut(id) {
                        e.error = Some(err.to_string());
                    }
                }
            }
            Err(why) => e.error = Some(why.to_string()),
        }
    });
    if let Err(err) = spawned {
        let mut d = lock(this);
        if let Some(e) = d.get_mut(id) {
            e.fetching = None;
            e.error = Some(format!("cannot start a thread: {err}"));
        }
    }
}

fn facts_of(t: &Torrent) -> Facts {
    Facts {
        comment: t.comment().unwrap_or_default().to_string(),
        creator: t.created_by().unwrap_or_default().to_string(),
        date_created: t
            .creation_date()
            .map_or(0, |d| u64::try_from(d).unwrap_or(0)),
    }
}

/// Parses metainfo bytes into what the daemon keeps.
pub fn parse_metainfo(bytes: &[u8]) -> Result<([u8; 20], TorrentMeta, Facts), StateError> {
    let torrent = Torrent::from_bytes(bytes).map_err(StateError::Torrent)?;
    let meta = TorrentMeta::from_torrent(&torrent)?;
    Ok((torrent.info_hash().0, meta, facts_of(&torrent)))
}

/// 40 hex digits to 20 bytes.
pub fn unhex(hex: &str) -> Option<[u8; 20]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 40 {
        return None;
    }
    let mut out = [0u8; 20];
    for (i, byte) in out.iter_mut().enumerate() {
        let pair = std::str::from_utf8(bytes.get(2 * i..2 * i + 2)?).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

/// Writes through a temporary file and a rename, so a crash leaves the
/// old file or the new one; failures are logged (the daemon keeps going).
fn write_atomically(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    let result = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = result {
        log::warn!(target: "rustico", "daemon: cannot write {}: {e}", path.display());
    }
}
