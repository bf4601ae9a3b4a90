//! The network threads: a fixed few threads, each multiplexing many
//! established peer connections over non-blocking sockets with `mio`, so
//! the thread count does not grow with peers.
//!
//! A connection comes here once its handshake is done
//! ([`NetPool::adopt`], from `conn.rs`); the least busy thread takes it.
//! Readiness is edge-triggered: an event only says the socket may be
//! readable or writable again, and the connection reads until the socket
//! says `WouldBlock` (or its turn's budget is spent, so one fast peer
//! does not starve the others) and writes until it says `WouldBlock`.
//! Bytes are read straight into the session's receive buffer and
//! decrypted there (no intermediate copy). A connection's turn:
//! orders from the torrent, timers, read, serve blocks, report events,
//! write, repeated while it makes progress.
//!
//! Back-pressure is per connection: its session's transmit buffer is
//! refilled only while little is left unwritten (so a peer that does not
//! read stops being read and served), and when the torrent's inbox is
//! full the connection keeps its reports and reads nothing until they
//! are taken (the other connections of the thread carry on).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::TrySendError;
use mio::{Events, Interest, Poll, Token};
use rustico_peer_wire::mse::HalfCipher;
use rustico_peer_wire::Session;

use super::actors::Mail;
use super::conn::{self, Closed, ConnFailure, ConnSetup, Ending, WRITE_TIMEOUT};
use super::limits::Grant;
use super::link::Link;
use super::{PeerMsg, ToManager};

/// The token of each thread's [`mio::Waker`].
const WAKE: Token = Token(usize::MAX);
/// Bytes one connection may read in one turn before the others get
/// theirs.
const READ_BUDGET: usize = 1 << 20;
/// The session's transmit buffer is moved out only while fewer bytes
/// than this wait to be written: beyond it the session's own bound holds
/// the rest (and stops serving and reading).
const OUT_LOW_WATER: usize = 64 * 1024;
/// How soon a connection whose reports the torrent could not take yet
/// tries again.
const RETRY_REPORTS: Duration = Duration::from_millis(5);

/// Wakes a network thread for one connection's new orders (see
/// `conn::Mailbox`).
#[derive(Clone)]
pub struct Notify {
    thread: Arc<Shared>,
    slot: usize,
}

impl std::fmt::Debug for Notify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Notify({})", self.slot)
    }
}

impl Notify {
    /// A notify for `slot` of a thread that never runs, and a function
    /// returning (and forgetting) the slots woken so far.
    #[cfg(test)]
    pub fn for_test(slot: usize) -> (Notify, impl Fn() -> Vec<usize>) {
        let poll = Poll::new().unwrap_or_else(|e| panic!("poll: {e}"));
        let waker = mio::Waker::new(poll.registry(), WAKE).unwrap_or_else(|e| panic!("{e}"));
        let thread = Arc::new(Shared {
            waker,
            inbox: Mutex::default(),
            load: AtomicUsize::new(0),
        });
        let seen = Arc::clone(&thread);
        let woken = move || std::mem::take(&mut lock(&seen.inbox).woken);
        (Notify { thread, slot }, woken)
    }

    /// The connection in `slot` takes its orders soon. A connection that
    /// ended meanwhile costs its slot's next owner one empty take.
    pub fn wake(&self) {
        lock(&self.thread.inbox).woken.push(self.slot);
        self.thread.wake();
    }
}

/// What other threads hand one network thread.
#[derive(Default)]
struct ThreadInbox {
    adopted: Vec<(ConnSetup, Link, Session)>,
    woken: Vec<usize>,
}

/// One network thread, as other threads see it.
struct Shared {
    waker: mio::Waker,
    inbox: Mutex<ThreadInbox>,
    /// Connections it runs, to pick the least busy thread.
    load: AtomicUsize,
}

impl Shared {
    fn wake(&self) {
        if let Err(e) = self.waker.wake() {
            // Only fails when the poller itself is broken.
            log::error!(target: "rustico", "cannot wake a network thread: {e}");
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every value behind these locks is changed by pushes and takes, so a
    // panic elsewhere leaves it whole.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The engine's network threads. Cheap to clone; they end with the
/// process.
#[derive(Clone)]
pub struct NetPool {
    threads: Arc<Vec<Arc<Shared>>>,
}

impl std::fmt::Debug for NetPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NetPool({} threads)", self.threads.len())
    }
}

impl NetPool {
    /// Starts `threads` network threads (at least one).
    pub fn new(threads: usize) -> io::Result<NetPool> {
        let mut all = Vec::new();
        for _ in 0..threads.max(1) {
            let poll = Poll::new()?;
            let waker = mio::Waker::new(poll.registry(), WAKE)?;
            let shared = Arc::new(Shared {
                waker,
                inbox: Mutex::default(),
                load: AtomicUsize::new(0),
            });
            let mine = Arc::clone(&shared);
            super::spawn("net", move || NetThread::new(mine, poll).run())?;
            all.push(shared);
        }
        Ok(NetPool {
            threads: Arc::new(all),
        })
    }

    /// How many threads.
    pub fn threads(&self) -> usize {
        self.threads.len()
    }

    /// Runs an established connection to its end on the least busy thread.
    pub fn adopt(&self, setup: ConnSetup, link: Link, session: Session) {
        let Some(thread) = self
            .threads
            .iter()
            .min_by_key(|t| t.load.load(Ordering::Relaxed))
        else {
            // `new` starts at least one thread.
            debug_assert!(false, "a network pool without threads");
            return;
        };
        thread.load.fetch_add(1, Ordering::Relaxed);
        lock(&thread.inbox).adopted.push((setup, link, session));
        thread.wake();
    }
}

/// One established connection on a network thread.
struct Conn {
    setup: ConnSetup,
    stream: mio::net::TcpStream,
    send: HalfCipher,
    recv: HalfCipher,
    session: Session,
    /// Encrypted bytes not yet written, from `written` on.
    out: Vec<u8>,
    written: usize,
    /// Plaintext from the session, before encryption.
    fresh: Vec<u8>,
    /// The socket may have bytes to read / room to write (edge-triggered:
    /// set by events, cleared by `WouldBlock`).
    can_read: bool,
    can_write: bool,
    /// Orders may be waiting in the inbox.
    orders: bool,
    /// Reports the torrent's inbox had no room for yet, in order.
    unsent: VecDeque<PeerMsg>,
    /// Since when unwritten bytes made no progress.
    write_stalled: Option<Instant>,
    /// The engine's rate limits left nothing to read or write with
    /// until then.
    rate_wait: Option<Instant>,
    /// The earliest time this connection is in the timer heap for.
    scheduled: Option<Instant>,
    /// In this round's run list already.
    queued: bool,
}

impl Conn {
    fn unwritten(&self) -> usize {
        self.out.len() - self.written
    }

    /// When the connection next needs a turn without any event.
    fn deadline(&self, now: Instant) -> Option<Instant> {
        let session = self.session.poll_timeout();
        let stall = self.write_stalled.map(|t| t + WRITE_TIMEOUT);
        let retry = (!self.unsent.is_empty()).then(|| now + RETRY_REPORTS);
        [session, stall, retry, self.rate_wait]
            .into_iter()
            .flatten()
            .min()
    }

    /// Hands queued reports to the torrent; `Ok(false)` while its inbox
    /// is full.
    fn deliver(&mut self) -> Result<bool, Closed> {
        while let Some(msg) = self.unsent.pop_front() {
            match self
                .setup
                .to_manager
                .try_send(ToManager::Peer(self.setup.key, msg))
            {
                Ok(()) => {}
                Err(TrySendError::Full(ToManager::Peer(_, msg))) => {
                    self.unsent.push_front(msg);
                    return Ok(false);
                }
                Err(_) => return Err(Closed::Normal(Ending::TorrentStopped)),
            }
        }
        Ok(true)
    }

    /// Reads while the socket has bytes, the session wants them and the
    /// budget lasts; returns the bytes read.
    fn read(&mut self, now: Instant, budget: &mut usize) -> Result<usize, Closed> {
        let mut total = 0;
        while self.can_read && *budget > 0 && self.session.wants_input() {
            let down = &self.setup.rates.down;
            let buf = self.session.recv_buffer();
            if buf.is_empty() {
                debug_assert!(false, "a healthy session with no receive buffer");
                return Err(Closed::Failed(ConnFailure::Internal {
                    what: "a session with no room to receive",
                }));
            }
            let allowed = match down.request(buf.len(), now) {
                Grant::Now(n) => n.min(buf.len()),
                Grant::Wait(at) => {
                    self.rate_wait = Some(at);
                    break;
                }
            };
            let Some(buf) = buf.get_mut(..allowed) else {
                break;
            };
            let read = self.stream.read(buf);
            down.give_back(allowed - read.as_ref().map_or(0, |&n| n.min(allowed)));
            match read {
                Ok(0) => return Err(Closed::Normal(Ending::PeerClosed)),
                Ok(n) => {
                    if let Some(got) = buf.get_mut(..n) {
                        self.recv.apply(got);
                    }
                    self.session
                        .handle_received(n, now)
                        .map_err(|e| Closed::Failed(e.into()))?;
                    total += n;
                    *budget = budget.saturating_sub(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.can_read = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Closed::Failed(ConnFailure::Read(e))),
            }
        }
        Ok(total)
    }

    /// Moves the session's output out while little is unwritten, and
    /// writes until the socket is full; returns the bytes written.
    fn write(&mut self, now: Instant) -> Result<usize, Closed> {
        if self.unwritten() < OUT_LOW_WATER && self.session.poll_transmit(&mut self.fresh, now) > 0
        {
            self.send.apply(&mut self.fresh);
            if self.written == self.out.len() {
                self.out.clear();
                self.written = 0;
                std::mem::swap(&mut self.out, &mut self.fresh);
            } else {
                self.out.drain(..self.written);
                self.written = 0;
                self.out.append(&mut self.fresh);
                shrink(&mut self.fresh);
            }
        }
        let mut total = 0;
        while self.can_write && self.unwritten() > 0 {
            let up = &self.setup.rates.up;
            let allowed = match up.request(self.unwritten(), now) {
                Grant::Now(n) => n.min(self.unwritten()),
                Grant::Wait(at) => {
                    self.rate_wait = Some(at);
                    break;
                }
            };
            let Some(rest) = self.out.get(self.written..self.written + allowed) else {
                debug_assert!(false, "written past the end of the output");
                return Err(Closed::Failed(ConnFailure::Internal {
                    what: "written past the end of the output",
                }));
            };
            let wrote = self.stream.write(rest);
            up.give_back(allowed - wrote.as_ref().map_or(0, |&n| n.min(allowed)));
            match wrote {
                Ok(0) => {
                    return Err(Closed::Failed(ConnFailure::Write(
                        io::ErrorKind::WriteZero.into(),
                    )))
                }
                Ok(n) => {
                    self.written += n;
                    total += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.can_write = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Closed::Failed(ConnFailure::Write(e))),
            }
        }
        if self.unwritten() == 0 {
            self.out.clear();
            shrink(&mut self.out);
            self.written = 0;
            self.write_stalled = None;
        } else if total > 0 || self.write_stalled.is_none() {
            self.write_stalled = Some(now);
        }
        Ok(total)
    }

    /// One turn; `Ok(true)` when it stopped with work left (its read
    /// budget spent) and wants another turn soon.
    fn turn(&mut self, now: Instant) -> Result<bool, Closed> {
        self.rate_wait = None;
        if std::mem::take(&mut self.orders) {
            let orders = self.setup.inbox.take();
            if orders.stopped {
                return Err(Closed::Normal(Ending::TorrentStopped));
            }
            if let ControlFlow::Break(why) = conn::apply_orders(&mut self.session, orders, now) {
                return Err(Closed::Normal(Ending::Ordered(why)));
            }
        }
        if self.session.poll_timeout().is_some_and(|t| t <= now) {
            self.session
                .handle_timeout(now)
                .map_err(|e| Closed::Failed(e.into()))?;
        }
        if self
            .write_stalled
            .is_some_and(|since| now.saturating_duration_since(since) >= WRITE_TIMEOUT)
        {
            return Err(Closed::Failed(ConnFailure::Write(
                io::ErrorKind::TimedOut.into(),
            )));
        }
        let mut budget = READ_BUDGET;
        // Bounded: every round but the last moves bytes, and the budget
        // bounds the reading; the cap is only a guard.
        for _ in 0..64 {
            let delivered = self.deliver()?;
            // A torrent that cannot take our reports gets no more input
            // from this peer until it does.
            let read = if delivered {
                self.read(now, &mut budget)?
            } else {
                0
            };
            conn::serve_blocks(&self.setup, &mut self.session);
            let mut msgs = Vec::new();
            conn::reports(&self.setup, &mut self.session, &mut msgs);
            self.unsent.extend(msgs);
            let written = self.write(now)?;
            if read == 0 && written == 0 {
                break;
            }
        }
        self.deliver()?;
        Ok(budget == 0 && self.can_read && self.unsent.is_empty())
    }
}

/// Frees an empty buffer that grew past [`OUT_LOW_WATER`]: a busy peer's
/// buffers would otherwise each keep the size of its largest burst, for
/// as long as it stays connected (three of them per connection, with the
/// session's own).
fn shrink(buf: &mut Vec<u8>) {
    if buf.is_empty() && buf.capacity() > OUT_LOW_WATER {
        *buf = Vec::new();
    }
}

/// One network thread's state.
struct NetThread {
    shared: Arc<Shared>,
    poll: Poll,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    run: Vec<usize>,
    /// Last words of ended connections that the torrent's inbox had no
    /// room for yet.
    last_words: Vec<(Mail<ToManager>, VecDeque<ToManager>)>,
}

impl NetThread {
    fn new(shared: Arc<Shared>, poll: Poll) -> NetThread {
        NetThread {
            shared,
            poll,
            conns: Vec::new(),
            free: Vec::new(),
            timers: BinaryHeap::new(),
            run: Vec::new(),
            last_words: Vec::new(),
        }
    }

    fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        loop {
            let now = Instant::now();
            let timeout = if !self.run.is_empty() {
                Some(Duration::ZERO)
            } else if !self.last_words.is_empty() {
                Some(RETRY_REPORTS)
            } else {
                self.timers
                    .peek()
                    .map(|Reverse((t, _))| t.saturating_duration_since(now))
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    // A broken poller cannot be waited on again: pause
                    // instead of spinning, and keep serving timers.
                    log::error!(target: "rustico", "network thread: poll: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            for event in events.iter() {
                let slot = event.token().0;
                if event.token() == WAKE {
                    continue;
                }
                let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
                    continue;
                };
                if event.is_readable() || event.is_read_closed() || event.is_error() {
                    conn.can_read = true;
                }
                if event.is_writable() || event.is_write_closed() || event.is_error() {
                    conn.can_write = true;
                }
                self.queue(slot);
            }
            self.take_inbox();
            let now = Instant::now();
            while let Some(&Reverse((t, slot))) = self.timers.peek() {
                if t > now {
                    break;
                }
                self.timers.pop();
                if let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) {
                    if conn.scheduled == Some(t) {
                        conn.scheduled = None;
                        self.queue(slot);
                    }
                }
            }
            self.retry_last_words();
            let run = std::mem::take(&mut self.run);
            for slot in run {
                self.turn(slot, now);
            }
        }
    }

    fn queue(&mut self, slot: usize) {
        if let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) {
            if !conn.queued {
                conn.queued = true;
                self.run.push(slot);
            }
        }
    }

    fn take_inbox(&mut self) {
        let ThreadInbox { adopted, woken } = std::mem::take(&mut *lock(&self.shared.inbox));
        for slot in woken {
            if let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) {
                conn.orders = true;
                self.queue(slot);
            }
        }
        for (setup, link, session) in adopted {
            self.add(setup, link, session);
        }
    }

    fn add(&mut self, setup: ConnSetup, link: Link, session: Session) {
        let (std_stream, send, recv) = link.into_parts();
        let closed = |setup: &ConnSetup, e: io::Error| {
            let msg = PeerMsg::Closed(Closed::Failed(ConnFailure::Socket(e)));
            let _ = setup.to_manager.send(ToManager::Peer(setup.key, msg));
        };
        // Blocking mode and timeouts were the handshake's.
        if let Err(e) = std_stream
            .set_read_timeout(None)
            .and_then(|()| std_stream.set_nonblocking(true))
        {
            self.shared.load.fetch_sub(1, Ordering::Relaxed);
            return closed(&setup, e);
        }
        let mut stream = mio::net::TcpStream::from_std(std_stream);
        let slot = self.free.pop().unwrap_or(self.conns.len());
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            Token(slot),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            self.shared.load.fetch_sub(1, Ordering::Relaxed);
            self.free.push(slot);
            return closed(&setup, e);
        }
        setup.inbox.set_notify(Some(Notify {
            thread: Arc::clone(&self.shared),
            slot,
        }));
        let conn = Conn {
            setup,
            stream,
            send,
            recv,
            session,
            out: Vec::new(),
            written: 0,
            fresh: Vec::new(),
            // The handshake may have left bytes in the socket, and our
            // first messages wait to be written.
            can_read: true,
            can_write: true,
            orders: true,
            unsent: VecDeque::new(),
            write_stalled: None,
            rate_wait: None,
            scheduled: None,
            queued: false,
        };
        if self.conns.len() <= slot {
            self.conns.resize_with(slot + 1, || None);
        }
        if let Some(place) = self.conns.get_mut(slot) {
            *place = Some(conn);
        }
        self.queue(slot);
    }

    fn turn(&mut self, slot: usize, now: Instant) {
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        conn.queued = false;
        match conn.turn(now) {
            Ok(more) => {
                if more {
                    self.queue(slot);
                }
                let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
                    return;
                };
                if let Some(t) = conn.deadline(now) {
                    if conn.scheduled.is_none_or(|s| t < s) {
                        conn.scheduled = Some(t);
                        self.timers.push(Reverse((t, slot)));
                    }
                }
            }
            Err(closed) => self.close(slot, closed),
        }
    }

    /// Ends the connection in `slot`: the torrent hears its last counts
    /// and [`PeerMsg::Closed`].
    fn close(&mut self, slot: usize, closed: Closed) {
        let Some(mut conn) = self.conns.get_mut(slot).and_then(Option::take) else {
            return;
        };
        self.free.push(slot);
        self.shared.load.fetch_sub(1, Ordering::Relaxed);
        conn.setup.inbox.set_notify(None);
        let _ = self.poll.registry().deregister(&mut conn.stream);
        let _ = conn.stream.shutdown(Shutdown::Both);
        let (down, up) = conn.session.take_stats();
        let key = conn.setup.key;
        let mut words: VecDeque<ToManager> = conn
            .unsent
            .drain(..)
            .map(|msg| ToManager::Peer(key, msg))
            .collect();
        let counts = vec![rustico_swarm::PeerEvent::Transferred { down, up }];
        words.push_back(ToManager::Peer(key, PeerMsg::Events(counts)));
        words.push_back(ToManager::Peer(key, PeerMsg::Closed(closed)));
        let mail = conn.setup.to_manager.clone();
        if !send_all(&mail, &mut words) {
            self.last_words.push((mail, words));
        }
    }

    fn retry_last_words(&mut self) {
        self.last_words
            .retain_mut(|(mail, words)| !send_all(mail, words));
    }
}

/// Sends what the torrent's inbox takes now; `true` when all went (or the
/// torrent is gone).
fn send_all(mail: &Mail<ToManager>, words: &mut VecDeque<ToManager>) -> bool {
    while let Some(msg) = words.pop_front() {
        match mail.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Full(msg)) => {
                words.push_front(msg);
                return false;
            }
            Err(TrySendError::Disconnected(_)) => return true,
        }
    }
    true
}
