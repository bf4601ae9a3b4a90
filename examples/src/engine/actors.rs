//! Actors on a fixed pool of worker threads: many torrents, few threads.
//!
//! An [`Actor`] owns its state and the receiving ends of its channels. Whoever
//! sends to it goes through a [`Mail`], which wakes the actor after each
//! message; a woken actor is queued once, and a free worker runs it until
//! it has handled what waits ([`Actor::run`]). An actor names its next
//! deadline, and one timer thread wakes it then. So a torrent with nothing
//! to do costs no thread and no wake-up, and the number of threads is the
//! pool's, whatever the number of torrents.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Instant;

use crossbeam_channel::{unbounded, Receiver, SendError, Sender};

/// What an actor wants after a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Run again when a message comes, or at this instant at the latest.
    Wait(Option<Instant>),
    /// Finished: the actor is dropped and never runs again.
    Done,
}

/// A state machine run by the pool's workers, one run at a time.
pub trait Actor: Send + 'static {
    /// Handles what is waiting (messages, due timers) and says what next.
    /// A run should not block for long: other actors wait for the worker.
    /// An actor with more work than one run should do returns
    /// `Step::Wait(Some(now))` to run again after the others had a turn.
    fn run(&mut self, now: Instant) -> Step;
}

/// One actor's place in the pool.
struct Cell {
    actor: Mutex<Option<Box<dyn Actor>>>,
    /// In the ready queue (or about to be): a second wake-up adds nothing.
    queued: AtomicBool,
    /// The earliest deadline handed to the timer thread and not yet due;
    /// a later one need not be handed (the actor runs by then anyway).
    deadline: Mutex<Option<Instant>>,
}

/// Wakes one actor: queues it for a worker unless it is queued already.
#[derive(Clone)]
pub struct Waker {
    cell: Arc<Cell>,
    ready: Sender<Arc<Cell>>,
}

impl std::fmt::Debug for Waker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Waker")
    }
}

impl Waker {
    /// The actor runs soon (at once if a worker is free).
    pub fn wake(&self) {
        if !self.cell.queued.swap(true, Ordering::AcqRel) {
            // Only fails once the pool is gone: nothing runs anymore.
            let _ = self.ready.send(Arc::clone(&self.cell));
        }
    }
}

/// The sending end of an actor's channel: each message wakes the actor.
#[derive(Debug)]
pub struct Mail<T> {
    tx: Sender<T>,
    waker: Waker,
}

impl<T> Clone for Mail<T> {
    fn clone(&self) -> Self {
        Mail {
            tx: self.tx.clone(),
            waker: self.waker.clone(),
        }
    }
}

impl<T> Mail<T> {
    /// A channel end that wakes `waker`'s actor.
    pub fn new(tx: Sender<T>, waker: Waker) -> Mail<T> {
        Mail { tx, waker }
    }

    /// Sends, blocking while a bounded channel is full (the actor was
    /// woken by the messages that filled it), then wakes the actor.
    pub fn send(&self, msg: T) -> Result<(), SendError<T>> {
        let sent = self.tx.send(msg);
        self.waker.wake();
        sent
    }

    /// Sends unless a bounded channel is full, and wakes the actor (also
    /// when full: it has messages to take).
    pub fn try_send(&self, msg: T) -> Result<(), crossbeam_channel::TrySendError<T>> {
        let sent = self.tx.try_send(msg);
        self.waker.wake();
        sent
    }
}

/// The worker threads and the timer thread. They end with the process
/// (or once every [`Waker`] and the pool are dropped).
#[derive(Debug)]
pub struct Pool {
    ready: Sender<Arc<Cell>>,
    threads: usize,
}

impl std::fmt::Debug for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cell")
    }
}

impl Pool {
    /// Starts `workers` worker threads (at least one) and the timer
    /// thread.
    pub fn new(workers: usize) -> std::io::Result<Pool> {
        let (ready, ready_rx) = unbounded::<Arc<Cell>>();
        let (timers, timers_rx) = unbounded::<(Instant, Weak<Cell>)>();
        for _ in 0..workers.max(1) {
            let (ready_rx, ready_tx) = (ready_rx.clone(), ready.clone());
            let timers = timers.clone();
            super::spawn("worker", move || work(&ready_rx, &ready_tx, &timers))?;
        }
        let ready_tx = ready.clone();
        super::spawn("timers", move || keep_time(&timers_rx, &ready_tx))?;
        Ok(Pool {
            ready,
            threads: workers.max(1) + 1,
        })
    }

    /// Registers an actor made by `make` with its waker (to build the
    /// [`Mail`]s that reach it), and runs it once.
    pub fn start<A: Actor>(&self, make: impl FnOnce(Waker) -> A) -> Waker {
        let cell = Arc::new(Cell {
            actor: Mutex::new(None),
            queued: AtomicBool::new(false),
            deadline: Mutex::new(None),
        });
        let waker = Waker {
            cell: Arc::clone(&cell),
            ready: self.ready.clone(),
        };
        let actor = make(waker.clone());
        *cell.actor.lock().unwrap_or_else(PoisonError::into_inner) = Some(Box::new(actor));
        waker.wake();
        waker
    }

    /// Threads the pool runs (workers and the timer thread).
    pub fn threads(&self) -> usize {
        self.threads
    }
}

fn work(
    ready: &Receiver<Arc<Cell>>,
    ready_tx: &Sender<Arc<Cell>>,
    timers: &Sender<(Instant, Weak<Cell>)>,
) {
    for cell in ready {
        // Cleared before the run: a message sent during it queues the
        // actor again, and the mutex keeps the two runs apart.
        cell.queued.store(false, Ordering::Release);
        let mut slot = cell.actor.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(actor) = slot.as_mut() else {
            continue;
        };
        match actor.run(Instant::now()) {
            Step::Done => *slot = None,
            Step::Wait(None) => {}
            // Due already (more work waits): back in the queue, behind
            // the actors already there.
            Step::Wait(Some(at)) if at <= Instant::now() => {
                if !cell.queued.swap(true, Ordering::AcqRel) {
                    drop(slot);
                    let _ = ready_tx.send(Arc::clone(&cell));
                }
            }
            Step::Wait(Some(at)) => {
                let mut deadline = cell.deadline.lock().unwrap_or_else(PoisonError::into_inner);
                if deadline.is_none_or(|d| at < d) {
                    *deadline = Some(at);
                    let _ = timers.send((at, Arc::downgrade(&cell)));
                }
            }
        }
    }
}

/// Wakes each actor at its deadline.
fn keep_time(new: &Receiver<(Instant, Weak<Cell>)>, ready: &Sender<Arc<Cell>>) {
    let mut heap: BinaryHeap<Reverse<Entry>> = BinaryHeap::new();
    loop {
        let got = match heap.peek() {
            Some(Reverse(next)) => new.recv_deadline(next.at),
            None => new
                .recv()
                .map_err(|_| crossbeam_channel::RecvTimeoutError::Disconnected),
        };
        match got {
            Ok((at, cell)) => heap.push(Reverse(Entry { at, cell })),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        while heap.peek().is_some_and(|Reverse(e)| e.at <= now) {
            let Some(Reverse(entry)) = heap.pop() else {
                break;
            };
            let Some(cell) = entry.cell.upgrade() else {
                continue;
            };
            {
                let mut deadline = cell.deadline.lock().unwrap_or_else(PoisonError::into_inner);
                if deadline.is_some_and(|d| d <= now) {
                    *deadline = None;
                }
            }
            if !cell.queued.swap(true, Ordering::AcqRel) {
                let _ = ready.send(cell);
            }
        }
    }
}

struct Entry {
    at: Instant,
    cell: Weak<Cell>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.at.cmp(&other.at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::bounded;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    /// Counts the messages it receives; wakes itself every `tick`.
    struct Counter {
        rx: Receiver<u32>,
        seen: Arc<AtomicUsize>,
        runs: Arc<AtomicUsize>,
        tick: Option<Duration>,
        done_at: usize,
    }

    impl Actor for Counter {
        fn run(&mut self, now: Instant) -> Step {
            self.runs.fetch_add(1, Ordering::SeqCst);
            while self.rx.try_recv().is_ok() {
                self.seen.fetch_add(1, Ordering::SeqCst);
            }
            if self.seen.load(Ordering::SeqCst) >= self.done_at {
                return Step::Done;
            }
            Step::Wait(self.tick.map(|t| now + t))
        }
    }

    fn wait_until(what: &str, cond: impl Fn() -> bool) {
        let start = Instant::now();
        while !cond() {
            assert!(start.elapsed() < Duration::from_secs(10), "{what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_thousand_actors_share_the_pools_threads_and_get_every_message() {
        let pool = Pool::new(2).unwrap();
        assert_eq!(pool.threads(), 3);
        let seen = Arc::new(AtomicUsize::new(0));
        let runs = Arc::new(AtomicUsize::new(0));
        let mut mails = Vec::new();
        for _ in 0..1000 {
            let (tx, rx) = bounded(4);
            let (seen, runs) = (Arc::clone(&seen), Arc::clone(&runs));
            let waker = pool.start(|_| Counter {
                rx,
                seen,
                runs,
                tick: None,
                done_at: usize::MAX,
            });
            mails.push(Mail::new(tx, waker));
        }
        // Senders block on a full channel until a worker drains it.
        let senders: Vec<_> = mails
            .chunks(250)
            .map(|chunk| {
                let chunk = chunk.to_vec();
                std::thread::spawn(move || {
                    for i in 0..20 {
                        for mail in &chunk {
                            mail.send(i).unwrap();
                        }
                    }
                })
            })
            .collect();
        for s in senders {
            s.join().unwrap();
        }
        wait_until("every message handled", || {
            seen.load(Ordering::SeqCst) == 20_000
        });
        // Idle actors are not run again: no wake-up without a message.
        let before = runs.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(runs.load(Ordering::SeqCst), before);
    }

    #[test]
    fn an_actor_runs_at_its_deadline_and_ends_when_done() {
        let pool = Pool::new(1).unwrap();
        let (tx, rx) = bounded(4);
        let seen = Arc::new(AtomicUsize::new(0));
        let runs = Arc::new(AtomicUsize::new(0));
        let waker = pool.start(|_| Counter {
            rx,
            seen: Arc::clone(&seen),
            runs: Arc::clone(&runs),
            tick: Some(Duration::from_millis(20)),
            done_at: 3,
        });
        let start = Instant::now();
        wait_until("woken by its timer", || runs.load(Ordering::SeqCst) >= 5);
        assert!(start.elapsed() >= Duration::from_millis(60));
        let mail = Mail::new(tx, waker);
        for i in 0..3 {
            mail.send(i).unwrap();
        }
        wait_until("done", || seen.load(Ordering::SeqCst) == 3);
        std::thread::sleep(Duration::from_millis(100));
        let after = runs.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            runs.load(Ordering::SeqCst),
            after,
            "a finished actor never runs"
        );
        assert!(
            mail.send(9).is_err(),
            "a finished actor's channel is closed"
        );
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(runs.load(Ordering::SeqCst), after);
    }
}
