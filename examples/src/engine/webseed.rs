//! A BEP 19 web seed (`url-list`) as a peer: the manager sees a peer
//! that has every piece and never chokes, and sends it block requests
//! like any other; this thread turns them into HTTP range requests of the
//! files (one per file a run of blocks touches) and reports the blocks.
//! Pieces are verified by the savers as always; a web seed whose data
//! fails (the manager bans it) or that errors is backed off, not dropped.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use rustico_peer_wire::{Bitfield as Bits, BlockRequest};

use super::conn::{Closed, Ending};
use super::{PeerKey, PeerMsg, ToManager};
use rustico_swarm::PeerEvent;

/// What the manager tells a web seed thread.
#[derive(Debug)]
pub enum WebSeedInput {
    /// Fetch these blocks.
    Request(Vec<BlockRequest>),
    /// Forget this request (another peer delivered the block).
    Cancel(BlockRequest),
    /// Its data failed the hash check: pause, then go on.
    BackOff,
    /// The torrent no longer needs it.
    Close,
}

/// Blocks fetched with one HTTP request at most (when contiguous).
const MAX_RUN_BLOCKS: usize = 64;
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
const STATS_EVERY: Duration = Duration::from_secs(1);

/// One file of the torrent as the web seed serves it.
#[derive(Debug, Clone)]
pub struct WebFile {
    /// Its URL; `None` for a BEP 47 padding file (zeros, not served).
    pub url: Option<String>,
    /// Its length.
    pub length: u64,
}

/// Everything a web seed thread needs.
pub struct WebSeedSetup {
    /// The manager's handle for this pseudo-peer.
    pub key: PeerKey,
    /// The base URL (for logs).
    pub base: String,
    /// The torrent's files in order, with their URLs.
    pub files: Vec<WebFile>,
    /// Nominal piece length.
    pub piece_length: u64,
    /// Pieces in the torrent.
    pub num_pieces: u32,
    /// The manager's inbox.
    pub to_manager: super::actors::Mail<ToManager>,
    /// This pseudo-peer's inbox.
    pub inbox: Receiver<WebSeedInput>,
}

/// The URL of each file under a BEP 19 base URL: a single-file torrent's
/// URL is the file itself (or `base/name` if it ends in `/`); a multi-file
/// torrent's files are `base/name/path...`. `files` are the paths with the
/// torrent name first when multi-file, as `TorrentMeta` has them.
pub fn file_urls(base: &str, multi_file: bool, files: &[(Vec<String>, u64, bool)]) -> Vec<WebFile> {
    files
        .iter()
        .map(|(path, length, padding)| {
            let url = (!padding).then(|| {
                if !multi_file && !base.ends_with('/') {
                    return base.to_string();
                }
                let mut url = base.to_string();
                if !url.ends_with('/') {
                    url.push('/');
                }
                let encoded: Vec<String> = path.iter().map(|s| percent_encode(s)).collect();
                url.push_str(&encoded.join("/"));
                url
            });
            WebFile {
                url,
                length: *length,
            }
        })
        .collect()
}

fn percent_encode(segment: &str) -> String {
    let mut out = String::new();
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The pieces of `[start, start + len)` of the torrent's bytes in each
/// file: `(file index, offset in the file, length)`.
fn file_ranges(files: &[WebFile], start: u64, len: u64) -> Vec<(usize, u64, u64)> {
    let mut out = Vec::new();
    let end = start + len;
    let mut file_start = 0u64;
    for (i, f) in files.iter().enumerate() {
        let file_end = file_start + f.length;
        let from = start.max(file_start);
        let to = end.min(file_end);
        if from < to {
            out.push((i, from - file_start, to - from));
        }
        if file_end >= end {
            break;
        }
        file_start = file_end;
    }
    out
}

/// Runs the web seed until the manager closes it.
pub fn run(setup: WebSeedSetup) {
    let closed = drive(&setup);
    let _ = setup
        .to_manager
        .send(ToManager::Peer(setup.key, PeerMsg::Closed(closed)));
}

fn send_events(setup: &WebSeedSetup, events: Vec<PeerEvent>) -> bool {
    setup
        .to_manager
        .send(ToManager::Peer(setup.key, PeerMsg::Events(events)))
        .is_ok()
}

fn drive(setup: &WebSeedSetup) -> Closed {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(HTTP_TIMEOUT))
        .build()
        .into();
    let mut peer_id = *b"-WS0010-000000000000";
    for (b, d) in peer_id
        .iter_mut()
        .skip(8)
        .zip(format!("{:012}", setup.key.index()).bytes())
    {
        *b = d;
    }
    let connected = PeerMsg::Connected {
        client: format!("web seed {}", setup.base),
        fast: true,
        peer_id,
        // MSE is a peer-wire layer; HTTPS is not reported here.
        encrypted: false,
    };
    if setup
        .to_manager
        .send(ToManager::Peer(setup.key, connected))
        .is_err()
    {
        return Closed::Normal(Ending::TorrentStopped);
    }
    let mut all = Bits::new(setup.num_pieces);
    for i in 0..setup.num_pieces {
        all.set(i);
    }
    if !send_events(
        setup,
        vec![PeerEvent::Pieces(all), PeerEvent::Choked(false)],
    ) {
        return Closed::Normal(Ending::TorrentStopped);
    }
    let mut queue: VecDeque<BlockRequest> = VecDeque::new();
    let mut backoff = FIRST_BACKOFF;
    let mut down = 0u64;
    let mut next_stats = Instant::now() + STATS_EVERY;
    loop {
        // Take every waiting order; wait for one when there is nothing to do.
        let mut first = true;
        loop {
            let input = if first && queue.is_empty() {
                match setup.inbox.recv_timeout(STATS_EVERY) {
                    Ok(i) => Some(i),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => {
                        return Closed::Normal(Ending::TorrentStopped)
                    }
                }
            } else {
                setup.inbox.try_recv().ok()
            };
            first = false;
            let Some(input) = input else { break };
            match input {
                WebSeedInput::Request(reqs) => queue.extend(reqs),
                WebSeedInput::Cancel(req) => queue.retain(|r| *r != req),
                WebSeedInput::BackOff => {
                    log::warn!(
                        target: "rustico",
                        "web seed {}: its data failed the hash check; backing off {backoff:?}",
                        setup.base
                    );
                    if let Err(closed) = pause(setup, &mut queue, &mut backoff) {
                        return closed;
                    }
                }
                WebSeedInput::Close => return Closed::Normal(Ending::NotNeeded),
            }
        }
        let now = Instant::now();
        if now >= next_stats {
            next_stats = now + STATS_EVERY;
            if !send_events(setup, vec![PeerEvent::Transferred { down, up: 0 }]) {
                return Closed::Normal(Ending::TorrentStopped);
            }
            down = 0;
        }
        let run = take_run(&mut queue, setup.piece_length);
        if run.is_empty() {
            continue;
        }
        match fetch_run(&agent, setup, &run) {
            Ok(blocks) => {
                backoff = FIRST_BACKOFF;
                down += blocks.iter().map(|(_, d)| d.len() as u64).sum::<u64>();
                let events = blocks
                    .into_iter()
                    .map(|(req, data)| PeerEvent::Block { req, data })
                    .collect();
                if !send_events(setup, events) {
                    return Closed::Normal(Ending::TorrentStopped);
                }
            }
            Err(why) => {
                log::warn!(
                    target: "rustico",
                    "web seed {}: {why}; backing off {backoff:?}",
                    setup.base
                );
                queue.extend(run);
                if let Err(closed) = pause(setup, &mut queue, &mut backoff) {
                    return closed;
                }
            }
        }
    }
}

/// Hands every queued request back, says "choked" for `backoff` (orders
/// meanwhile are refused), then unchokes and doubles the next backoff.
/// `Err` when the web seed must end.
fn pause(
    setup: &WebSeedSetup,
    queue: &mut VecDeque<BlockRequest>,
    backoff: &mut Duration,
) -> Result<(), Closed> {
    let stopped = || Closed::Normal(Ending::TorrentStopped);
    let dropped: Vec<BlockRequest> = queue.drain(..).collect();
    if !send_events(
        setup,
        vec![PeerEvent::Choked(true), PeerEvent::Rejected(dropped)],
    ) {
        return Err(stopped());
    }
    let until = Instant::now() + *backoff;
    *backoff = (*backoff * 2).min(MAX_BACKOFF);
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match setup.inbox.recv_timeout(left) {
            Ok(WebSeedInput::Request(reqs)) => {
                if !send_events(setup, vec![PeerEvent::Rejected(reqs)]) {
                    return Err(stopped());
                }
            }
            Ok(WebSeedInput::Close) => {
                return Err(Closed::Normal(Ending::NotNeeded));
            }
            Ok(_) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Err(stopped()),
        }
    }
    if send_events(setup, vec![PeerEvent::Choked(false)]) {
        Ok(())
    } else {
        Err(stopped())
    }
}

/// The longest run of contiguous requests at the front of the queue (the
/// manager asks in order, so runs are common), at most
/// [`MAX_RUN_BLOCKS`].
fn take_run(queue: &mut VecDeque<BlockRequest>, piece_length: u64) -> Vec<BlockRequest> {
    let mut run: Vec<BlockRequest> = Vec::new();
    while let Some(next) = queue.front().copied() {
        if let Some(last) = run.last() {
            let last_end = u64::from(last.piece) * piece_length
                + u64::from(last.offset)
                + u64::from(last.length);
            let next_start = u64::from(next.piece) * piece_length + u64::from(next.offset);
            if next_start != last_end || run.len() >= MAX_RUN_BLOCKS {
                break;
            }
        }
        run.push(next);
        queue.pop_front();
    }
    run
}

/// Why a web seed's range request failed (the web seed backs off).
#[derive(Debug, thiserror::Error)]
enum FetchError {
    /// The request failed (connection, TLS, HTTP status, body).
    #[error("GET {url}: {source}")]
    Http {
        /// The file's URL.
        url: String,
        /// ureq's error.
        #[source]
        source: ureq::Error,
    },
    /// The server answered a range request with neither 206 nor a 200
    /// for the whole file.
    #[error("GET {url}: status {status} to a range request")]
    Status {
        /// The file's URL.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// The body is not the length of the range asked for.
    #[error("GET {url}: {got} bytes for a range of {want}")]
    Length {
        /// The file's URL.
        url: String,
        /// Bytes received.
        got: u64,
        /// Bytes asked for.
        want: u64,
    },
    /// The bytes gathered do not cover the run (a bug in this module).
    #[error("internal error: {what}")]
    Internal {
        /// The broken invariant.
        what: &'static str,
    },
}

/// Fetches a contiguous run of blocks: one range request per file it
/// touches; padding files are zeros.
fn fetch_run(
    agent: &ureq::Agent,
    setup: &WebSeedSetup,
    run: &[BlockRequest],
) -> Result<Vec<(BlockRequest, Vec<u8>)>, FetchError> {
    let (Some(first), Some(last)) = (run.first(), run.last()) else {
        return Ok(Vec::new());
    };
    let start = u64::from(first.piece) * setup.piece_length + u64::from(first.offset);
    let end = u64::from(last.piece) * setup.piece_length
        + u64::from(last.offset)
        + u64::from(last.length);
    let mut bytes = Vec::with_capacity((end - start) as usize);
    for (file, offset, len) in file_ranges(&setup.files, start, end - start) {
        let Some(url) = setup.files.get(file).and_then(|f| f.url.as_deref()) else {
            bytes.resize(bytes.len() + len as usize, 0);
            continue;
        };
        let mut response = agent
            .get(url)
            .header("Range", &format!("bytes={}-{}", offset, offset + len - 1))
            .call()
            .map_err(|source| FetchError::Http {
                url: url.to_string(),
                source,
            })?;
        let status = response.status().as_u16();
        if status != 206 && !(status == 200 && offset == 0 && len == setup.files[file].length) {
            return Err(FetchError::Status {
                url: url.to_string(),
                status,
            });
        }
        let body = response
            .body_mut()
            .with_config()
            .limit(len + 1)
            .read_to_vec()
            .map_err(|source| FetchError::Http {
                url: url.to_string(),
                source,
            })?;
        if body.len() as u64 != len {
            return Err(FetchError::Length {
                url: url.to_string(),
                got: body.len() as u64,
                want: len,
            });
        }
        bytes.extend_from_slice(&body);
    }
    let mut out = Vec::with_capacity(run.len());
    let mut at = 0usize;
    for req in run {
        let len = req.length as usize;
        // The file ranges cover the run exactly: it is contiguous
        // (`take_run`), and each range added its length in bytes.
        let Some(data) = bytes.get(at..at + len) else {
            debug_assert!(false, "the fetched ranges are shorter than the run");
            return Err(FetchError::Internal {
                what: "the fetched ranges are shorter than the run",
            });
        };
        let data = data.to_vec();
        at += len;
        out.push((*req, data));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_follow_bep_19() {
        let single = [(vec!["a b.iso".to_string()], 10, false)];
        assert_eq!(
            file_urls("http://h/x.iso", false, &single)[0]
                .url
                .as_deref(),
            Some("http://h/x.iso")
        );
        assert_eq!(
            file_urls("http://h/d/", false, &single)[0].url.as_deref(),
            Some("http://h/d/a%20b.iso")
        );
        let multi = [
            (vec!["t".to_string(), "sub".into(), "f".into()], 5, false),
            (vec!["t".to_string(), ".pad".into(), "3".into()], 3, true),
        ];
        let urls = file_urls("http://h/seed", true, &multi);
        assert_eq!(urls[0].url.as_deref(), Some("http://h/seed/t/sub/f"));
        assert_eq!(urls[1].url, None);
    }

    #[test]
    fn ranges_split_across_files() {
        let files = [10u64, 0, 5, 20].map(|length| WebFile {
            url: Some(String::new()),
            length,
        });
        assert_eq!(
            file_ranges(&files, 8, 10),
            [(0, 8, 2), (2, 0, 5), (3, 0, 3)]
        );
        assert_eq!(file_ranges(&files, 0, 10), [(0, 0, 10)]);
        assert_eq!(file_ranges(&files, 30, 5), [(3, 15, 5)]);
    }
}
