//! The engine's tracker service: every torrent's announces, on a fixed
//! number of threads whatever the number of torrents or trackers.
//!
//! ```text
//!   torrent managers --register / completed / stop--> scheduler thread
//!   scheduler --jobs (bounded queue)--> announce workers (ANNOUNCE_WORKERS)
//!   announce workers --results--> scheduler --peers--> torrent managers
//! ```
//!
//! One scheduler thread holds each torrent's re-announce timing
//! (`rustico_tracker_client`'s [`ReannounceSchedule`]: `started`, the
//! tracker's interval, `completed`, `stopped`, backoff after failures) and
//! its [`AnnouncePass`] in progress (which tracker of which tier to start
//! when, so a dead tier 1 holds up tier 2 by a few seconds at most), and
//! wakes at the earliest deadline of all of them from one timer heap: an
//! idle torrent costs one heap entry and no wake-up until its next
//! announce. The announces themselves are blocking HTTP and UDP calls
//! through [`Client`]s, run by [`ANNOUNCE_WORKERS`] threads that take jobs
//! from a bounded queue. A hybrid torrent announces its v1 and its
//! truncated v2 info-hash, one pass each. Peers a tracker returns go to the
//! torrent's manager; each result is noted in the torrent's
//! [`Status::trackers`].

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use rustico_tracker_client::{
    AnnouncePass, AnnounceRequest, AnnounceResponse, Client, Error, Event, PassConfig,
    ReannounceSchedule, ScheduleConfig, TrackerList, TrackerPosition, TransportConfig,
};

use super::{Control, Status};

/// Threads that run announces, for every torrent of the engine. An
/// attempt blocks its worker until the tracker answers or its deadline
/// passes (15 s over UDP, 30 s over HTTP), so this many dead trackers at
/// once delay the others' announces; a pass's stagger still starts the
/// next tier after 3 s, on another worker.
pub(super) const ANNOUNCE_WORKERS: usize = 4;

/// Jobs handed to the workers and not yet taken. The scheduler keeps the
/// rest in its own queue (at most a pass's in-flight limit per torrent),
/// where a `stopped` announce can go ahead of regular ones and a job whose
/// pass is over is dropped before it costs a tracker call.
const QUEUE_CAPACITY: usize = 2 * ANNOUNCE_WORKERS;

/// Idle [`Client`]s kept for reuse (a UDP tracker's connection id lives in
/// its client); past this many, a returned client is closed.
const MAX_IDLE_CLIENTS: usize = 256;

/// A torrent's trackers, as its manager registers them with the
/// [`TrackerService`].
pub(super) struct TrackerSetup {
    pub tiers: Vec<Vec<String>>,
    /// The swarms to announce: the torrent's info-hash, and a hybrid's
    /// truncated v2 hash after it (BEP 52: it is in both swarms).
    pub info_hashes: Vec<[u8; 20]>,
    pub peer_id: [u8; 20],
    pub port: u16,
    pub status: Arc<Status>,
    pub control: super::actors::Mail<Control>,
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

/// The transport settings of a `stopped` announce: short, so that exiting
/// does not hang on a dead tracker.
fn stop_transport() -> TransportConfig {
    let mut config = TransportConfig {
        timeout: STOP_TIMEOUT,
        connect_timeout: STOP_TIMEOUT,
        ..TransportConfig::default()
    };
    config.udp.attempt_timeout = STOP_TIMEOUT;
    config
}

/// What managers tell the scheduler.
enum Msg {
    /// A torrent starts: announce `started`, then at the interval.
    Register(u64, Box<TrackerSetup>, Arc<AtomicBool>),
    /// Every piece is on disk: announce `completed`.
    Completed(u64),
    /// The torrent stops: announce `stopped` and forget it.
    Stop(u64),
}

/// One announce attempt for a worker.
struct Job {
    torrent: u64,
    /// The serial number of the pass it belongs to.
    pass: u64,
    position: TrackerPosition,
    url: String,
    request: AnnounceRequest,
    /// A `stopped` announce: short timeouts.
    stop: bool,
    /// The pass ends by then: a job still queued at that time is skipped.
    expires: Instant,
}

/// A worker's answer to a [`Job`].
struct Outcome {
    torrent: u64,
    pass: u64,
    position: TrackerPosition,
    url: String,
    result: Result<AnnounceResponse, Error>,
}

/// Idle clients by announce URL and kind (`true`: for `stopped`).
type IdleClients = HashMap<(String, bool), Vec<Client>>;

/// Idle clients shared by the workers, with their count.
#[derive(Default)]
struct ClientPool {
    idle: Mutex<(usize, IdleClients)>,
}

impl ClientPool {
    fn take(&self, url: &str, stop: bool) -> Client {
        let mut guard = super::lock(&self.idle);
        let (count, idle) = &mut *guard;
        let key = (url.to_string(), stop);
        let client = idle.get_mut(&key).and_then(Vec::pop);
        if idle.get(&key).is_some_and(Vec::is_empty) {
            idle.remove(&key);
        }
        match client {
            Some(client) => {
                *count = count.saturating_sub(1);
                client
            }
            None if stop => Client::new(stop_transport()),
            None => Client::new(TransportConfig::default()),
        }
    }

    fn give_back(&self, url: String, stop: bool, client: Client) {
        let mut guard = super::lock(&self.idle);
        let (count, idle) = &mut *guard;
        if *count < MAX_IDLE_CLIENTS {
            *count += 1;
            idle.entry((url, stop)).or_default().push(client);
        }
    }
}

/// An announce worker: runs jobs until the scheduler is gone.
fn work(jobs: &Receiver<Job>, outcomes: &Sender<Outcome>, clients: &ClientPool) {
    for job in jobs {
        let result = if Instant::now() >= job.expires {
            Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "not sent: the announce waited for a worker past its deadline",
            )))
        } else {
            let mut client = clients.take(&job.url, job.stop);
            let result = client.announce(&job.url, &job.request);
            clients.give_back(job.url.clone(), job.stop, client);
            result
        };
        let outcome = Outcome {
            torrent: job.torrent,
            pass: job.pass,
            position: job.position,
            url: job.url,
            result,
        };
        if outcomes.send(outcome).is_err() {
            return;
        }
    }
}

/// The engine's tracker service (see the [module docs](self)): a handle
/// to its scheduler thread. Clones share the service.
#[derive(Clone)]
pub(super) struct TrackerService {
    tx: Sender<Msg>,
    next_id: Arc<AtomicU64>,
}

impl TrackerService {
    /// Starts the scheduler thread and [`ANNOUNCE_WORKERS`] workers. They
    /// end once every handle is dropped and every torrent has announced
    /// `stopped`.
    pub(super) fn start() -> std::io::Result<TrackerService> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let (jobs_tx, jobs_rx) = crossbeam_channel::bounded(QUEUE_CAPACITY);
        let (outcomes_tx, outcomes_rx) = crossbeam_channel::unbounded();
        let clients = Arc::new(ClientPool::default());
        for _ in 0..ANNOUNCE_WORKERS {
            let (jobs, outcomes, clients) = (jobs_rx.clone(), outcomes_tx.clone(), clients.clone());
            super::spawn("announce", move || work(&jobs, &outcomes, &clients))?;
        }
        let scheduler = Scheduler {
            torrents: HashMap::new(),
            timers: BinaryHeap::new(),
            queue: Queue {
                backlog: VecDeque::new(),
                jobs: jobs_tx,
                serial: 0,
            },
        };
        super::spawn("trackers", move || scheduler.run(&rx, &outcomes_rx))?;
        Ok(TrackerService {
            tx,
            next_id: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Registers a torrent: its `started` announce goes out at once.
    /// Its [`Status::trackers`] lists every tracker from now on.
    pub(super) fn register(&self, setup: TrackerSetup) -> TrackerTorrent {
        *super::lock(&setup.status.trackers) = setup
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
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let finished = Arc::new(AtomicBool::new(false));
        if self
            .tx
            .send(Msg::Register(id, Box::new(setup), finished.clone()))
            .is_err()
        {
            // The scheduler thread is gone (it panicked): nothing will be
            // announced, and nothing is left to wait for.
            log::error!(target: "rustico", "internal error: the tracker service has stopped");
            finished.store(true, Ordering::SeqCst);
        }
        TrackerTorrent {
            id,
            tx: self.tx.clone(),
            finished,
            stopped: false,
        }
    }
}

/// One torrent's registration with the [`TrackerService`]. Dropping it
/// stops the torrent's announces as [`TrackerTorrent::stop`] does.
pub(super) struct TrackerTorrent {
    id: u64,
    tx: Sender<Msg>,
    finished: Arc<AtomicBool>,
    stopped: bool,
}

impl TrackerTorrent {
    /// Every piece is on disk: announce `completed`.
    pub(super) fn completed(&self) {
        let _ = self.tx.send(Msg::Completed(self.id));
    }

    /// The torrent stops: once the announce in progress (if any) and
    /// what is due now are done, announce `stopped` (with short
    /// timeouts), then forget it.
    pub(super) fn stop(&mut self) {
        if !std::mem::replace(&mut self.stopped, true) {
            let _ = self.tx.send(Msg::Stop(self.id));
        }
    }

    /// The service has forgotten the torrent: its `stopped` announce
    /// ended (answered, failed or timed out).
    pub(super) fn is_finished(&self) -> bool {
        self.finished.load(Ordering::SeqCst)
    }
}

impl Drop for TrackerTorrent {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One torrent as the scheduler keeps it.
struct Torrent {
    setup: Box<TrackerSetup>,
    trackers: TrackerList,
    schedule: ReannounceSchedule,
    key: u32,
    tracker_id: Option<Vec<u8>>,
    /// The announce in progress.
    round: Option<Round>,
    /// Told to stop: forgotten once `stopped` is announced.
    stopping: bool,
    /// The schedule was told to announce `stopped`.
    stop_scheduled: bool,
    /// Set once the torrent is forgotten.
    finished: Arc<AtomicBool>,
    /// The deadline the timer heap holds for it; other entries of its
    /// are stale.
    armed: Option<Instant>,
}

/// One announce (one event) of a torrent: a pass per swarm, in turn.
struct Round {
    event: Event,
    /// Index in [`TrackerSetup::info_hashes`] of the swarm announced now.
    swarm: usize,
    /// This pass's serial number: results of older passes are stale.
    serial: u64,
    pass: AnnouncePass,
    request: AnnounceRequest,
    expires: Instant,
    /// The tracker that answered this pass first, with its answer.
    winner: Option<(TrackerPosition, AnnounceResponse)>,
    /// The first swarm's answer: it sets the schedule.
    answered: Option<AnnounceResponse>,
}

/// Jobs on their way to the workers.
struct Queue {
    /// Jobs not yet in the bounded channel, in order (`stopped` first).
    backlog: VecDeque<Job>,
    jobs: Sender<Job>,
    /// The last pass's serial number.
    serial: u64,
}

impl Queue {
    /// Moves jobs of passes still running into the workers' channel until
    /// it is full; drops those of passes that are over.
    fn feed(&mut self, torrents: &HashMap<u64, Torrent>) {
        while let Some(job) = self.backlog.pop_front() {
            let live = torrents
                .get(&job.torrent)
                .and_then(|t| t.round.as_ref())
                .is_some_and(|r| r.serial == job.pass);
            if !live {
                continue;
            }
            match self.jobs.try_send(job) {
                Ok(()) => {}
                Err(TrySendError::Full(job)) => {
                    self.backlog.push_front(job);
                    return;
                }
                Err(TrySendError::Disconnected(_)) => {
                    // Every worker has ended (panicked): passes time out.
                    debug_assert!(false, "every announce worker has ended");
                    log::error!(target: "rustico", "internal error: no announce worker is left");
                    self.backlog.clear();
                    return;
                }
            }
        }
    }
}

/// The scheduler thread's state.
struct Scheduler {
    torrents: HashMap<u64, Torrent>,
    /// `(deadline, torrent)`, earliest first; an entry is stale unless it
    /// is the torrent's `armed` deadline.
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    queue: Queue,
}

impl Scheduler {
    fn run(mut self, msgs: &Receiver<Msg>, outcomes: &Receiver<Outcome>) {
        let mut msgs = msgs.clone();
        let mut open = true;
        loop {
            self.queue.feed(&self.torrents);
            if !open && self.torrents.is_empty() {
                return;
            }
            let wait = self
                .timers
                .peek()
                .map_or(Duration::from_secs(3600), |Reverse((at, _))| {
                    at.saturating_duration_since(Instant::now())
                });
            crossbeam_channel::select! {
                recv(msgs) -> msg => match msg {
                    Ok(msg) => self.handle_msg(msg, Instant::now()),
                    Err(_) => {
                        // Every handle is gone; finish the torrents left.
                        open = false;
                        msgs = crossbeam_channel::never();
                    }
                },
                recv(outcomes) -> outcome => {
                    if let Ok(outcome) = outcome {
                        self.handle_outcome(outcome, Instant::now());
                    }
                },
                default(wait) => {}
            }
            self.handle_timers(Instant::now());
        }
    }

    fn handle_msg(&mut self, msg: Msg, now: Instant) {
        let id = match msg {
            Msg::Register(id, setup, finished) => {
                let torrent = Torrent {
                    trackers: TrackerList::new(setup.tiers.clone(), super::seed_from_clock()),
                    setup,
                    schedule: ReannounceSchedule::new(ScheduleConfig::default(), now),
                    key: super::seed_from_clock() as u32,
                    tracker_id: None,
                    round: None,
                    stopping: false,
                    stop_scheduled: false,
                    finished,
                    armed: None,
                };
                self.torrents.insert(id, torrent);
                id
            }
            Msg::Completed(id) => {
                if let Some(t) = self.torrents.get_mut(&id) {
                    t.schedule.handle_completed(now);
                }
                id
            }
            Msg::Stop(id) => {
                // `stopped` goes out once nothing else is due (see
                // `Torrent::advance`).
                if let Some(t) = self.torrents.get_mut(&id) {
                    t.stopping = true;
                }
                id
            }
        };
        self.drive(id, now);
    }

    fn handle_outcome(&mut self, outcome: Outcome, now: Instant) {
        let Outcome {
            torrent: id,
            pass,
            position,
            url,
            result,
        } = outcome;
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        let Some(round) = t.round.as_mut().filter(|r| r.serial == pass) else {
            // The pass was over before this attempt ended: dropped.
            return;
        };
        let (event, swarm) = (round.event, round.swarm);
        let swarm = if swarm == 0 { "" } else { " (v2 swarm)" };
        match &result {
            Ok(response) => {
                record(&t.setup.status, &url, Ok(response.peers.len()));
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
                record(&t.setup.status, &url, Err(e));
                log::warn!(target: "rustico", "tracker {url}: {event:?} announce failed{swarm}: {e}");
                t.trackers.handle_failure(position);
            }
        }
        round.pass.handle_result(position, result.is_ok(), now);
        if let (Ok(response), Some(won)) = (result, round.pass.succeeded()) {
            if won == position && round.winner.is_none() {
                round.winner = Some((position, response));
            }
        }
        self.drive(id, now);
    }

    /// Drives every torrent whose deadline has come.
    fn handle_timers(&mut self, now: Instant) {
        while let Some(&Reverse((at, id))) = self.timers.peek() {
            if at > now {
                return;
            }
            self.timers.pop();
            let Some(t) = self.torrents.get_mut(&id) else {
                continue;
            };
            if t.armed != Some(at) {
                continue;
            }
            t.armed = None;
            self.drive(id, now);
        }
    }

    /// Starts what torrent `id` has due at `now`, ends its passes that are
    /// over, forgets it once it is done, and arms its next deadline.
    fn drive(&mut self, id: u64, now: Instant) {
        let Some(t) = self.torrents.get_mut(&id) else {
            return;
        };
        if !t.advance(id, &mut self.queue, now) {
            if let Some(t) = self.torrents.remove(&id) {
                t.finished.store(true, Ordering::SeqCst);
                log::debug!(target: "rustico", "trackers: torrent {id} done");
            }
            return;
        }
        let next = match &t.round {
            Some(round) => round.pass.poll_timeout(),
            None => t.schedule.poll_timeout(),
        };
        if next != t.armed {
            t.armed = next;
            if let Some(at) = next {
                self.timers.push(Reverse((at, id)));
            }
        }
    }
}

impl Torrent {
    /// The announce of `event` to swarm number `swarm`, with the
    /// torrent's counters as they are now.
    fn request(&self, event: Event, hash: [u8; 20]) -> AnnounceRequest {
        let status = &self.setup.status;
        let mut request = AnnounceRequest::new(hash, self.setup.peer_id, self.setup.port);
        request.uploaded = status.uploaded.load(Ordering::Relaxed);
        request.downloaded = status.downloaded.load(Ordering::Relaxed);
        request.left = status
            .total_bytes
            .load(Ordering::Relaxed)
            .saturating_sub(status.have_bytes.load(Ordering::Relaxed));
        request.event = event;
        request.numwant = Some(if event == Event::Stopped { 0 } else { 50 });
        request.key = Some(self.key);
        request.tracker_id = self.tracker_id.clone();
        request
    }

    /// Starts a pass of `event` to swarm number `swarm`; `None` past the
    /// last swarm.
    fn start_pass(
        &self,
        event: Event,
        swarm: usize,
        answered: Option<AnnounceResponse>,
        queue: &mut Queue,
        now: Instant,
    ) -> Option<Round> {
        let hash = *self.setup.info_hashes.get(swarm)?;
        let mut config = PassConfig::default();
        if event == Event::Stopped {
            config.pass_timeout = STOP_TIMEOUT;
        }
        queue.serial += 1;
        Some(Round {
            event,
            swarm,
            serial: queue.serial,
            pass: self.trackers.start_pass(config, now),
            request: self.request(event, hash),
            expires: now + config.pass_timeout,
            winner: None,
            answered,
        })
    }

    /// Runs the torrent's announces forward at `now`: queues the attempts
    /// its pass starts, ends a pass that is over (the next swarm's, or the
    /// next announce, follows). `false` once the torrent is done.
    fn advance(&mut self, id: u64, queue: &mut Queue, now: Instant) -> bool {
        loop {
            if let Some(round) = &mut self.round {
                let stop = round.event == Event::Stopped;
                while let Some((position, url)) = round.pass.poll_start(now) {
                    let job = Job {
                        torrent: id,
                        pass: round.serial,
                        position,
                        url,
                        request: round.request.clone(),
                        stop,
                        expires: round.expires,
                    };
                    if stop {
                        queue.backlog.push_front(job);
                    } else {
                        queue.backlog.push_back(job);
                    }
                }
                round.pass.handle_timeout(now);
                if !round.pass.is_finished() {
                    return true;
                }
                let Some(round) = self.round.take() else {
                    debug_assert!(false, "the round just looked at is gone");
                    return true;
                };
                if !self.end_pass(round, queue, now) {
                    return false;
                }
                continue;
            }
            if let Some(event) = self.schedule.poll_announce(now) {
                self.round = self.start_pass(event, 0, None, queue, now);
                if self.round.is_none() {
                    // A registered torrent has at least its own info-hash.
                    debug_assert!(false, "a torrent with no info-hash to announce");
                    log::error!(target: "rustico", "internal error: torrent {id} has no info-hash to announce");
                    return false;
                }
                continue;
            }
            // As the tracker thread did: a stop waits for the announce in
            // progress and for what is due now (a `completed` raised
            // meanwhile), so trackers hear `started`, `completed` and
            // `stopped` in order.
            if self.stopping && !self.stop_scheduled {
                self.stop_scheduled = true;
                self.schedule.handle_stopped(now);
                continue;
            }
            return !(self.stopping && self.schedule.is_finished());
        }
    }

    /// A pass is over: notes which trackers failed or answered, sends the
    /// peers to the manager, and starts the next swarm's pass or ends the
    /// announce. `false` once the torrent is done (its `stopped` went out).
    fn end_pass(&mut self, round: Round, queue: &mut Queue, now: Instant) -> bool {
        let Round {
            event,
            swarm,
            pass,
            winner,
            mut answered,
            ..
        } = round;
        // Trackers still running had their chance: try them last next time.
        for &position in pass.in_flight() {
            self.trackers.handle_failure(position);
        }
        if let Some((position, response)) = winner {
            self.trackers.handle_success(position);
            if let Some(id) = &response.tracker_id {
                self.tracker_id = Some(id.clone());
            }
            if !response.peers.is_empty() {
                let _ = self.setup.control.send(Control::Peers(
                    response.peers.clone(),
                    rustico_swarm::PeerSource::Tracker,
                ));
            }
            answered.get_or_insert(response);
        }
        // One pass per swarm; the first answer sets the schedule.
        if swarm + 1 < self.setup.info_hashes.len() {
            self.round = self.start_pass(event, swarm + 1, answered, queue, now);
            return true;
        }
        match answered {
            Some(response) => self.schedule.handle_response(now, &response),
            None => self.schedule.handle_failure(now),
        }
        // A `stopped` announce is tried once.
        event != Event::Stopped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::actors::{Actor, Mail, Pool, Step};
    use std::io::{BufRead, BufReader, Write};
    use std::net::{SocketAddr, TcpListener};

    /// An actor that does nothing: the test reads its inbox itself.
    struct Idle;

    impl Actor for Idle {
        fn run(&mut self, _now: Instant) -> Step {
            Step::Wait(None)
        }
    }

    /// An HTTP tracker on 127.0.0.1 that notes each announce's query and
    /// answers with one peer, 10.0.0.1:6881, and a 30-minute interval;
    /// it never answers a request that contains `hang_on`. Returns its URL
    /// and what it heard.
    fn fake_tracker(hang_on: Option<&'static str>) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/announce", listener.local_addr().unwrap());
        let heard = Arc::new(Mutex::new(Vec::new()));
        let log = heard.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut line = String::new();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                reader.read_line(&mut line).unwrap();
                // The rest of the head, up to the empty line.
                let mut rest = String::new();
                while reader.read_line(&mut rest).is_ok_and(|n| n > 2) {
                    rest.clear();
                }
                let hang = hang_on.is_some_and(|h| line.contains(h));
                log.lock().unwrap().push(line);
                if hang {
                    // Kept open, unanswered, until the test ends.
                    std::mem::forget(stream);
                    continue;
                }
                let body = b"d8:intervali1800e5:peers6:\x0a\x00\x00\x01\x1a\xe1e";
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(body);
            }
        });
        (url, heard)
    }

    /// A tracker URL whose server accepts connections and never answers.
    fn silent_tracker() -> (String, TcpListener) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/announce", listener.local_addr().unwrap());
        (url, listener)
    }

    fn wait_until(what: &str, limit: Duration, cond: impl Fn() -> bool) -> Duration {
        let start = Instant::now();
        while !cond() {
            assert!(start.elapsed() < limit, "{what} within {limit:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
        start.elapsed()
    }

    fn heard_with(heard: &Mutex<Vec<String>>, parts: &[&str]) -> usize {
        heard
            .lock()
            .unwrap()
            .iter()
            .filter(|line| parts.iter().all(|p| line.contains(p)))
            .count()
    }

    /// A torrent registered with `service`, its inbox and status.
    fn register(
        service: &TrackerService,
        pool: &Pool,
        tiers: Vec<Vec<String>>,
        info_hashes: Vec<[u8; 20]>,
    ) -> (TrackerTorrent, Receiver<Control>, Arc<Status>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        let waker = pool.start(|_| Idle);
        let status = Arc::new(Status::default());
        let torrent = service.register(TrackerSetup {
            tiers,
            info_hashes,
            peer_id: *b"-RS0000-abcdefghijkl",
            port: 6881,
            status: status.clone(),
            control: Mail::new(tx, waker),
        });
        (torrent, rx, status)
    }

    #[test]
    fn a_hybrid_announces_both_swarms_for_each_event_and_its_peers_reach_the_manager() {
        let pool = Pool::new(1).unwrap();
        let service = TrackerService::start().unwrap();
        let (url, heard) = fake_tracker(None);
        let (v1, v2) = ([b'a'; 20], [b'b'; 20]);
        let (mut torrent, inbox, status) =
            register(&service, &pool, vec![vec![url.clone()]], vec![v1, v2]);
        let limit = Duration::from_secs(10);
        let mut peers: Vec<SocketAddr> = Vec::new();
        for (n, event) in ["started", "completed", "stopped"].into_iter().enumerate() {
            match event {
                "completed" => torrent.completed(),
                "stopped" => torrent.stop(),
                _ => {}
            }
            for hash in ["aaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbb"] {
                let parts = [&format!("info_hash={hash}&")[..], &format!("event={event}")];
                wait_until(&format!("{event} for {hash}"), limit, || {
                    heard_with(&heard, &parts) == 1
                });
            }
            // Each answer (two swarms a round) lists one peer, and each
            // reaches the manager's inbox.
            let start = Instant::now();
            while peers.len() < 2 * (n + 1) && start.elapsed() < limit {
                if let Ok(Control::Peers(got, _)) = inbox.recv_timeout(Duration::from_millis(50)) {
                    peers.extend(got);
                }
            }
            assert_eq!(peers.len(), 2 * (n + 1), "after {event}: {peers:?}");
        }
        wait_until("the torrent forgotten", limit, || torrent.is_finished());
        assert!(inbox.try_recv().is_err(), "more than one answer a swarm");
        assert!(peers
            .iter()
            .all(|p| *p == SocketAddr::from(([10, 0, 0, 1], 6881))));
        let reports = status.trackers.lock().unwrap().clone();
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].url, url);
        assert!(
            reports[0].last_ok && reports[0].last_announce > 0,
            "{reports:?}"
        );
        // Nothing more after `stopped`.
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(heard.lock().unwrap().len(), 6);
    }

    #[test]
    fn a_silent_tier_falls_back_and_stop_ends_within_its_timeout() {
        let pool = Pool::new(1).unwrap();
        let service = TrackerService::start().unwrap();
        let (silent, _listener) = silent_tracker();
        let (honest, heard) = fake_tracker(None);
        let (mut torrent, _inbox, status) = register(
            &service,
            &pool,
            vec![vec![silent.clone()], vec![honest]],
            vec![[b'c'; 20]],
        );
        // Tier 2 starts once tier 1 has been silent for the stagger (3 s).
        let took = wait_until("started on tier 2", Duration::from_secs(10), || {
            heard_with(&heard, &["event=started"]) == 1
        });
        assert!(took >= Duration::from_secs(2), "{took:?}");
        // The silent tracker is tried last now; `stopped` goes to tier 2
        // first and answers: done long before the silent one's 30 s.
        torrent.stop();
        let took = wait_until("stopped", STOP_TIMEOUT + Duration::from_secs(2), || {
            torrent.is_finished()
        });
        assert_eq!(heard_with(&heard, &["event=stopped"]), 1, "{took:?}");
        let reports = status.trackers.lock().unwrap().clone();
        assert_eq!(reports.len(), 2);
        assert_eq!((reports[0].tier, reports[1].tier), (0, 1));
    }

    #[test]
    fn a_stopped_the_tracker_never_answers_ends_within_the_stop_timeout() {
        let pool = Pool::new(1).unwrap();
        let service = TrackerService::start().unwrap();
        let (url, heard) = fake_tracker(Some("event=stopped"));
        let (mut torrent, _inbox, _status) =
            register(&service, &pool, vec![vec![url]], vec![[b'd'; 20]]);
        wait_until("started", Duration::from_secs(10), || {
            heard_with(&heard, &["event=started"]) == 1
        });
        // The tracker takes `stopped` and never answers: the service
        // gives up after the stop timeout (3 s), not HTTP's 30 s.
        torrent.stop();
        let took = wait_until(
            "the torrent forgotten",
            STOP_TIMEOUT + Duration::from_secs(3),
            || torrent.is_finished(),
        );
        assert_eq!(heard_with(&heard, &["event=stopped"]), 1);
        assert!(
            took >= STOP_TIMEOUT - Duration::from_millis(500),
            "{took:?}"
        );
    }
}
