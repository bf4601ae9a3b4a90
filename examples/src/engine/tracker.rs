//! The tracker thread of one torrent: announces `started`, then at the
//! tracker's interval, `completed` when the download finishes and `stopped`
//! on exit, falling back through the announce-list tiers. Peers it learns go
//! to the torrent manager. The timing is `rustico_tracker_client`'s
//! re-announce schedule and its [`AnnouncePass`] (which tracker to start
//! when, so a dead tier 1 holds up tier 2 by a few seconds at most); this
//! thread only sleeps and does the I/O, each attempt on a short-lived
//! thread of its own (at most [`PassConfig::max_in_flight`] at once).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use rustico_tracker_client::{
    AnnouncePass, AnnounceRequest, AnnounceResponse, Client, Error, Event, PassConfig,
    ReannounceSchedule, ScheduleConfig, TrackerList, TrackerPosition, TransportConfig,
};

use super::{Control, Status};

/// What the manager tells its tracker thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackerEvent {
    /// Every piece is on disk.
    Completed,
    /// The torrent stops: announce `stopped` and end.
    Stopped,
}

pub(super) struct TrackerSetup {
    pub tiers: Vec<Vec<String>>,
    /// The swarms to announce: the torrent's info-hash, and a hybrid's
    /// truncated v2 hash after it (BEP 52: it is in both swarms).
    pub info_hashes: Vec<[u8; 20]>,
    pub peer_id: [u8; 20],
    pub port: u16,
    pub status: Arc<Status>,
    pub control: super::actors::Mail<Control>,
    pub events: Receiver<TrackerEvent>,
}

/// How long the final `stopped` announce may take: exiting must not hang
/// on a dead tracker.
const STOP_TIMEOUT: Duration = Duration::from_secs(3);

/// Notes an announce's outcome in the torrent's [`Status::trackers`].
fn record(status: &Status, url: &str, result: Result<usize, &Error>) {
    // Reports are only replaced field by field with valid values: a
    // poisoned lock still holds usable ones.
    let mut reports = status
        .trackers
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let Some(report) = reports.iter_mut().find(|r| r.url == url) else {
        // `run` made one report per URL of the tiers the list announces to.
        debug_assert!(false, "no tracker report for {url}");
        log::error!(target: "rustico", "internal error: no tracker report for {url}");
        return;
    };
    report.last_announce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    report.last_ok = result.is_ok();
    match result {
        Ok(peers) => {
            report.last_peers = peers;
            report.last_result = "Success".into();
        }
        Err(why) => report.last_result = why.to_string(),
    }
}

/// The transports of a torrent's trackers: one [`Client`] per URL, so a
/// UDP tracker's connection id survives between announces. A client is
/// lent to the thread of an attempt and comes back with its result (a new
/// one is made if it does not).
pub(crate) struct Clients {
    config: TransportConfig,
    idle: HashMap<String, Client>,
}

impl Clients {
    pub(crate) fn new(config: TransportConfig) -> Clients {
        Clients {
            config,
            idle: HashMap::new(),
        }
    }

    fn take(&mut self, url: &str) -> Client {
        self.idle
            .remove(url)
            .unwrap_or_else(|| Client::new(self.config.clone()))
    }
}

/// What an attempt's thread sends back.
type Attempt = (
    TrackerPosition,
    String,
    Client,
    Result<AnnounceResponse, Error>,
);

/// One announce over the torrent's tiers as [`AnnouncePass`] plans it.
/// `report` hears every result that comes in before the pass ends; the
/// winner (promoted to the front of its tier) is returned, or `None` when
/// every tracker failed or the pass timed out. Attempts still running when
/// a tracker answered are abandoned: each ends by its own deadline and its
/// result is dropped. Trackers that failed or were abandoned are marked
/// ([`TrackerList::handle_failure`]), so the next pass tries them last.
pub(crate) fn announce_pass(
    trackers: &mut TrackerList,
    clients: &mut Clients,
    request: &AnnounceRequest,
    config: PassConfig,
    mut report: impl FnMut(&str, &Result<AnnounceResponse, Error>),
) -> Option<(String, AnnounceResponse)> {
    let (tx, rx) = crossbeam_channel::unbounded::<Attempt>();
    let mut pass: AnnouncePass = trackers.start_pass(config, Instant::now());
    let mut winner = None;
    loop {
        let now = Instant::now();
        while let Some((position, url)) = pass.poll_start(now) {
            let mut client = clients.take(&url);
            let (tx, request, thread_url) = (tx.clone(), request.clone(), url.clone());
            let spawned = super::spawn("tracker-announce", move || {
                let result = client.announce(&thread_url, &request);
                let _ = tx.send((position, thread_url, client, result));
            });
            if let Err(e) = spawned {
                report(&url, &Err(Error::Io(e)));
                trackers.handle_failure(position);
                pass.handle_result(position, false, now);
            }
        }
        if pass.is_finished() {
            break;
        }
        let Some(deadline) = pass.poll_timeout() else {
            // Not finished and nothing to wait for cannot happen: the pass
            // ends at its own timeout at the latest.
            debug_assert!(false, "an unfinished announce pass with no timeout");
            break;
        };
        match rx.recv_deadline(deadline) {
            Ok((position, url, client, result)) => {
                report(&url, &result);
                let now = Instant::now();
                if result.is_err() {
                    trackers.handle_failure(position);
                }
                pass.handle_result(position, result.is_ok(), now);
                clients.idle.insert(url.clone(), client);
                if let (Ok(response), Some(won)) = (result, pass.succeeded()) {
                    if won == position && winner.is_none() {
                        winner = Some((position, url, response));
                    }
                }
            }
            Err(_) => pass.handle_timeout(Instant::now()),
        }
    }
    // Trackers still running had their chance: try them last next time.
    for &position in pass.in_flight() {
        trackers.handle_failure(position);
    }
    let (position, url, response) = winner?;
    trackers.handle_success(position);
    Some((url, response))
}

pub(super) fn run(setup: TrackerSetup) {
    {
        let mut reports = setup
            .status
            .trackers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *reports = setup
            .tiers
            .iter()
            .enumerate()
            .flat_map(|(tier, urls)| {
                urls.iter().map(move |url| super::TrackerReport {
                    url: url.clone(),
                    tier,
                    ..super::TrackerReport::default()
                })
            })
            .collect();
    }
    let mut trackers = TrackerList::new(setup.tiers.clone(), super::seed_from_clock());
    let mut clients = Clients::new(TransportConfig::default());
    let mut schedule = ReannounceSchedule::new(ScheduleConfig::default(), Instant::now());
    let key = super::seed_from_clock() as u32;
    let mut tracker_id: Option<Vec<u8>> = None;
    let mut stopping = false;
    loop {
        let now = Instant::now();
        if let Some(event) = schedule.poll_announce(now) {
            let status = &setup.status;
            let mut pass_config = PassConfig::default();
            if event == Event::Stopped {
                let mut config = TransportConfig {
                    timeout: STOP_TIMEOUT,
                    connect_timeout: STOP_TIMEOUT,
                    ..TransportConfig::default()
                };
                config.udp.attempt_timeout = STOP_TIMEOUT;
                clients = Clients::new(config);
                pass_config.pass_timeout = STOP_TIMEOUT;
            }
            // One pass per swarm; the first answer sets the schedule.
            let mut answered: Option<AnnounceResponse> = None;
            for (n, hash) in setup.info_hashes.iter().enumerate() {
                let swarm = if n == 0 { "" } else { " (v2 swarm)" };
                let mut request = AnnounceRequest::new(*hash, setup.peer_id, setup.port);
                request.uploaded = status.uploaded.load(Ordering::Relaxed);
                request.downloaded = status.downloaded.load(Ordering::Relaxed);
                request.left = status
                    .total_bytes
                    .load(Ordering::Relaxed)
                    .saturating_sub(status.have_bytes.load(Ordering::Relaxed));
                request.event = event;
                request.numwant = Some(if event == Event::Stopped { 0 } else { 50 });
                request.key = Some(key);
                request.tracker_id = tracker_id.clone();
                let outcome = announce_pass(
                    &mut trackers,
                    &mut clients,
                    &request,
                    pass_config,
                    |url, result| match result {
                        Ok(response) => {
                            record(&setup.status, url, Ok(response.peers.len()));
                            log::info!(
                                target: "rustico",
                                "tracker {url}: {event:?} announce ok{swarm}, {} peers",
                                response.peers.len()
                            );
                            for skipped in &response.skipped {
                                log::warn!(target: "rustico", "tracker {url}: {event:?} announce: {skipped}");
                            }
                        }
                        Err(e) => {
                            record(&setup.status, url, Err(e));
                            log::warn!(target: "rustico", "tracker {url}: {event:?} announce failed{swarm}: {e}");
                        }
                    },
                );
                if let Some((_, response)) = outcome {
                    if let Some(id) = &response.tracker_id {
                        tracker_id = Some(id.clone());
                    }
                    if !response.peers.is_empty() {
                        let _ = setup.control.send(Control::Peers(
                            response.peers.clone(),
                            rustico_swarm::PeerSource::Tracker,
                        ));
                    }
                    answered.get_or_insert(response);
                }
            }
            match answered {
                Some(response) => schedule.handle_response(Instant::now(), &response),
                None if event == Event::Stopped => return,
                None => schedule.handle_failure(Instant::now()),
            }
            if event == Event::Stopped {
                return;
            }
            continue;
        }
        if stopping && schedule.is_finished() {
            return;
        }
        let wait = schedule
            .poll_timeout()
            .map(|t| t.saturating_duration_since(now))
            .unwrap_or(Duration::from_secs(60));
        match setup.events.recv_timeout(wait) {
            Ok(TrackerEvent::Completed) => schedule.handle_completed(Instant::now()),
            Ok(TrackerEvent::Stopped) | Err(RecvTimeoutError::Disconnected) => {
                stopping = true;
                schedule.handle_stopped(Instant::now());
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}
