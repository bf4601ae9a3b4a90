//! The tracker thread of one torrent: announces `started`, then at the
//! tracker's interval, `completed` when the download finishes and `stopped`
//! on exit, falling back through the announce-list tiers. Peers it learns go
//! to the torrent manager. The timing is `rustico_tracker_client`'s
//! re-announce schedule; this thread only sleeps and does the I/O.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use rustico_tracker_client::{
    AnnounceRequest, Client, Event, ReannounceSchedule, ScheduleConfig, TrackerList,
    TransportConfig,
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
    pub info_hash: [u8; 20],
    pub peer_id: [u8; 20],
    pub port: u16,
    pub status: Arc<Status>,
    pub control: Sender<Control>,
    pub events: Receiver<TrackerEvent>,
}

/// How long the final `stopped` announce may take: exiting must not hang
/// on a dead tracker.
const STOP_TIMEOUT: Duration = Duration::from_secs(3);

/// Notes an announce's outcome in the torrent's [`Status::trackers`].
fn record(status: &Status, url: &str, result: Result<usize, String>) {
    let Ok(mut reports) = status.trackers.lock() else {
        return;
    };
    let Some(report) = reports.iter_mut().find(|r| r.url == url) else {
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
        Err(why) => report.last_result = why,
    }
}

pub(super) fn run(setup: TrackerSetup) {
    if let Ok(mut reports) = setup.status.trackers.lock() {
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
    let mut client = Client::new(TransportConfig::default());
    let mut schedule = ReannounceSchedule::new(ScheduleConfig::default(), Instant::now());
    let key = super::seed_from_clock() as u32;
    let mut tracker_id: Option<Vec<u8>> = None;
    let mut stopping = false;
    loop {
        let now = Instant::now();
        if let Some(event) = schedule.poll_announce(now) {
            let mut request = AnnounceRequest::new(setup.info_hash, setup.peer_id, setup.port);
            let status = &setup.status;
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
            if event == Event::Stopped {
                let config = TransportConfig {
                    timeout: STOP_TIMEOUT,
                    connect_timeout: STOP_TIMEOUT,
                    ..TransportConfig::default()
                };
                client = Client::new(config);
            }
            match trackers.try_in_order(|url| client.announce(url, &request)) {
                Ok((_, url, response)) => {
                    record(&setup.status, url.as_str(), Ok(response.peers.len()));
                    log::info!(
                        target: "rustico",
                        "tracker {url}: {:?} announce ok, {} peers",
                        event,
                        response.peers.len()
                    );
                    if let Some(id) = &response.tracker_id {
                        tracker_id = Some(id.clone());
                    }
                    if !response.peers.is_empty() {
                        let _ = setup.control.send(Control::Peers(
                            response.peers.clone(),
                            rustico_swarm::PeerSource::Tracker,
                        ));
                    }
                    schedule.handle_response(Instant::now(), &response);
                }
                Err(errors) => {
                    for (url, e) in errors {
                        record(&setup.status, url.as_str(), Err(e.to_string()));
                        log::warn!(target: "rustico", "tracker {url}: {:?} announce failed: {e}", event);
                    }
                    if event == Event::Stopped {
                        return;
                    }
                    schedule.handle_failure(Instant::now());
                }
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
