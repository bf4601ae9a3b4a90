//! A peer connection: its handshake on a short-lived thread of its own (a
//! blocking [`Link`], a `TcpStream` with the cipher protocol encryption
//! chose, driving peer-wire's [`Handshaking`] to a [`Session`]), then the
//! session on one of the engine's network threads (`net.rs`), which uses
//! this module's pieces: [`serve_blocks`], [`reports`], [`apply_orders`].
//! Protocol decisions are the session's; connections only move bytes,
//! orders and events.
//!
//! What one peer can make a connection hold is bounded: the session's
//! transmit buffer (blocks are read from storage only while it has room,
//! and the socket is read only while the session wants input), and the
//! manager's orders, which arrive through a [`Mailbox`] that coalesces
//! instead of queueing.

use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rustico_peer_wire::mse::Policy;
use rustico_peer_wire::{
    Action, Content, Handshake, Handshaking, Progress, Reserved, Session, SessionConfig,
};
use rustico_peer_wire::{Bitfield as Bits, Event as SessionEvent};
use rustico_storage::Storage;

use super::link::{self, Accepted, Dialled, Link};
use crate::dht::NodeSink;

use super::{Command, PeerKey, ToManager};
use rustico_swarm::PeerEvent;

/// How long connecting and the handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A write that blocks this long means the peer stopped reading.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a connection did not get as far as an established session.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Dialling, or protocol encryption's handshake, failed.
    #[error(transparent)]
    Link(#[from] link::LinkError),
    /// A socket option could not be set.
    #[error("socket: {0}")]
    Socket(#[source] std::io::Error),
    /// The peer closed the connection before its handshake was complete.
    #[error("closed during the handshake")]
    Closed,
    /// Reading the peer's handshake failed.
    #[error("handshake read: {0}")]
    Read(#[source] std::io::Error),
    /// Writing our handshake failed.
    #[error("handshake write: {0}")]
    Write(#[source] std::io::Error),
    /// The peer's handshake is wrong or late (peer-wire says which).
    #[error(transparent)]
    Handshake(#[from] rustico_peer_wire::SessionError),
    /// Our pieces do not fit the torrent's geometry (a bug in the caller).
    #[error("cannot start a session: {0}")]
    Content(#[source] rustico_peer_wire::ContentError),
    /// A broken invariant of this driver (a bug; debug builds panic).
    #[error("internal error: {what}")]
    Internal {
        /// The invariant.
        what: &'static str,
    },
}

/// Why the manager closes a connection, in [`ConnInput::Close`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseOrder {
    /// The swarm's decision.
    Swarm(rustico_swarm::CloseReason),
    /// The connection left more than [`MAX_ORDERS`] orders untaken.
    Backlog,
}

impl std::fmt::Display for CloseOrder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseOrder::Swarm(reason) => reason.fmt(f),
            CloseOrder::Backlog => write!(f, "more than {MAX_ORDERS} orders not taken"),
        }
    }
}

/// What the manager sends a connection.
#[derive(Debug)]
pub enum ConnInput {
    /// An order for the session.
    Command(Command),
    /// Close the connection, for this reason.
    Close(CloseOrder),
}

/// The manager's orders to one connection: a slot that coalesces, not a
/// queue, so a torrent that decides faster than a connection carries out
/// (a peer flipping its interest makes the choker decide at every flip)
/// holds a bounded amount per peer. Orders of state (choke, interest)
/// keep only their latest value; a close wins over everything; the others
/// (requests, cancels, haves, PEX) keep their order, and the swarm bounds
/// them (requests by the peer's pipeline, haves by the torrent's pieces,
/// PEX by its pace). Once the connection runs on a network thread, the
/// first order after each take wakes that thread for it (later ones ride
/// on the same wake-up); orders left during the handshake wait for its
/// first take. Dropping the [`Mailbox`] tells it the torrent stopped. As a
/// last guard, a connection that leaves more than [`MAX_ORDERS`] orders
/// untaken (stuck writing to a peer that does not read) is closed rather
/// than queued for.
pub fn mailbox() -> (Mailbox, Inbox) {
    let pending = Arc::new(Mutex::new(Pending::default()));
    (
        Mailbox {
            pending: Arc::clone(&pending),
        },
        Inbox { pending },
    )
}

/// Orders (other than choke, interest and close) a connection may leave
/// untaken before its mailbox closes it.
pub const MAX_ORDERS: usize = 1 << 16;

/// The manager's end of a [`mailbox`].
#[derive(Debug)]
pub struct Mailbox {
    pending: Arc<Mutex<Pending>>,
}

/// The connection's end of a [`mailbox`].
#[derive(Debug)]
pub struct Inbox {
    pending: Arc<Mutex<Pending>>,
}

/// Orders not yet taken by the connection, and how to wake it.
#[derive(Debug, Default)]
struct Pending {
    orders: Orders,
    /// The torrent dropped its [`Mailbox`].
    stopped: bool,
    /// Who to wake for new orders: `None` until the connection is on a
    /// network thread (its first take sees what came before).
    notify: Option<super::net::Notify>,
    /// A wake-up is on its way and the connection has not taken since.
    woken: bool,
}

/// What a connection takes from its inbox at once.
#[derive(Debug, Default)]
pub struct Orders {
    close: Option<CloseOrder>,
    choke: Option<bool>,
    interested: Option<bool>,
    ordered: Vec<Command>,
    /// The torrent stopped: nothing more will come.
    pub stopped: bool,
}

impl Mailbox {
    /// Leaves an order for the connection (never blocks).
    pub fn send(&self, input: ConnInput) {
        let notify = {
            let mut guard = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            let pending = &mut *guard;
            let p = &mut pending.orders;
            match input {
                ConnInput::Close(why) => p.close = Some(why),
                ConnInput::Command(Command::Choke(on)) => p.choke = Some(on),
                ConnInput::Command(Command::Interested(on)) => p.interested = Some(on),
                // Closing: nothing else will be carried out.
                ConnInput::Command(_) if p.close.is_some() => {}
                ConnInput::Command(_) if p.ordered.len() >= MAX_ORDERS => {
                    p.close = Some(CloseOrder::Backlog);
                    p.ordered = Vec::new();
                }
                ConnInput::Command(other) => p.ordered.push(other),
            }
            if pending.woken {
                None
            } else {
                pending.woken = pending.notify.is_some();
                pending.notify.clone()
            }
        };
        if let Some(notify) = notify {
            notify.wake();
        }
    }

    /// Orders waiting to be taken.
    #[cfg(test)]
    fn pending(&self) -> usize {
        let p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let p = &p.orders;
        p.ordered.len()
            + usize::from(p.close.is_some())
            + usize::from(p.choke.is_some())
            + usize::from(p.interested.is_some())
    }
}

impl Drop for Mailbox {
    fn drop(&mut self) {
        let notify = {
            let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            p.stopped = true;
            // A wake-up on its way leads to a take, which sees `stopped`.
            if p.woken {
                None
            } else {
                p.woken = p.notify.is_some();
                p.notify.clone()
            }
        };
        if let Some(notify) = notify {
            notify.wake();
        }
    }
}

impl Inbox {
    /// Takes every waiting order.
    pub fn take(&self) -> Orders {
        let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        p.woken = false;
        let mut orders = std::mem::take(&mut p.orders);
        orders.stopped = p.stopped;
        orders
    }

    /// From now on new orders wake the connection through `notify`
    /// (`None`: they no longer wake anyone, the connection ended).
    pub fn set_notify(&self, notify: Option<super::net::Notify>) {
        let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        p.woken = false;
        p.notify = notify;
    }
}

/// Everything a connection thread needs.
pub struct ConnSetup {
    /// The manager's handle for this peer.
    pub key: PeerKey,
    /// The peer's address.
    pub addr: SocketAddr,
    /// The torrent.
    pub info_hash: [u8; 20],
    /// Our peer id.
    pub peer_id: [u8; 20],
    /// Pieces in the torrent.
    pub num_pieces: u32,
    /// Our pieces when the connection starts (later ones arrive as
    /// [`Command::Have`]).
    pub ours: Bits,
    /// Where blocks we serve are read from.
    pub storage: Arc<Storage>,
    /// The info dictionary, served with `ut_metadata`.
    pub metadata: Arc<rustico_peer_wire::MetadataServer>,
    /// A v2 or hybrid torrent's piece layers, for BEP 52 hash requests.
    pub hashes: Option<Arc<dyn rustico_peer_wire::HashSource>>,
    /// A v2 or hybrid torrent's pieces' block hashes: checks the answers
    /// to our requests for them.
    pub block_layers: Option<Arc<rustico_metainfo::BlockLayers>>,
    /// Peer exchange allowed (the torrent is not private).
    pub pex: bool,
    /// Our listen port, for the extension handshake.
    pub listen_port: u16,
    /// Protocol encryption for outgoing connections.
    pub encryption: Policy,
    /// Our DHT port and where to report peers' DHT nodes; `None` when the
    /// DHT is off or the torrent is private (BEP 27: no DHT bit).
    pub dht: Option<(u16, NodeSink)>,
    /// The engine's upload and download rate limits, asked before the
    /// session's bytes are written or the socket is read.
    pub rates: super::limits::RateLimits,
    /// The manager's inbox.
    pub to_manager: super::actors::Mail<ToManager>,
    /// This connection's orders from the manager.
    pub inbox: Inbox,
    /// The network threads that run the connection once established.
    pub net: super::net::NetPool,
}

/// How the connection was made.
pub enum Origin {
    /// We dial the address.
    Outgoing,
    /// The peer dialled us; the listener set up its link and read the
    /// start of its handshake (up to the info-hash at least).
    Incoming(Accepted),
}

/// Runs one connection's handshake on this short-lived thread, then
/// hands the established session to a network thread ([`NetPool::adopt`]),
/// which runs it to its end. The last message to the manager is always
/// [`super::PeerMsg::Closed`]: from here if the handshake fails, else from
/// the network thread.
///
/// [`NetPool::adopt`]: super::net::NetPool::adopt
pub fn run(setup: ConnSetup, origin: Origin) {
    let (link, session) = match connect(&setup, origin) {
        Ok(established) => established,
        Err(e) => {
            let closed = super::PeerMsg::Closed(Closed::Failed(e.into()));
            let _ = setup.to_manager.send(ToManager::Peer(setup.key, closed));
            return;
        }
    };
    let their = *session.peer_handshake();
    // The first 8 of the id's 20 bytes: a constant range, always inside.
    let client = String::from_utf8_lossy(&their.peer_id[..8]).into_owned();
    log::debug!(target: "rustico", "{}: link {}", setup.addr, link.describe());
    let _ = setup.to_manager.send(ToManager::Peer(
        setup.key,
        super::PeerMsg::Connected {
            client,
            fast: session.fast(),
            peer_id: their.peer_id,
            encrypted: link.encrypted(),
        },
    ));
    let net = setup.net.clone();
    net.adopt(setup, link, session);
}

/// Why a connection ended.
#[derive(Debug)]
pub enum Closed {
    /// Connecting, the handshake or the protocol failed.
    Failed(ConnFailure),
    /// A normal end: the peer hung up, or we closed it.
    Normal(Ending),
}

/// How a connection failed, in [`Closed::Failed`].
#[derive(Debug, thiserror::Error)]
pub enum ConnFailure {
    /// It never got as far as a session.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// A socket option or the socket's split failed.
    #[error("socket: {0}")]
    Socket(#[source] std::io::Error),
    /// Writing to the peer failed.
    #[error("write: {0}")]
    Write(#[source] std::io::Error),
    /// Reading from the peer failed.
    #[error("read: {0}")]
    Read(#[source] std::io::Error),
    /// The peer broke the protocol (peer-wire says how).
    #[error(transparent)]
    Session(#[from] rustico_peer_wire::SessionError),
    /// A broken invariant of this driver (a bug; debug builds panic).
    #[error("internal error: {what}")]
    Internal {
        /// The invariant.
        what: &'static str,
    },
}

/// How a connection ended normally, in [`Closed::Normal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The peer closed the connection.
    PeerClosed,
    /// The torrent stopped (its manager is gone).
    TorrentStopped,
    /// The manager closed it.
    Ordered(CloseOrder),
    /// A web seed the swarm no longer needs.
    NotNeeded,
}

impl std::fmt::Display for Ending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ending::PeerClosed => f.write_str("peer closed the connection"),
            Ending::TorrentStopped => f.write_str("torrent stopped"),
            Ending::Ordered(order) => order.fmt(f),
            Ending::NotNeeded => f.write_str("not needed any more"),
        }
    }
}

/// The session settings of the client's connections.
pub fn session_config(listen_port: u16, pex: bool, dht_port: Option<u16>) -> SessionConfig {
    SessionConfig {
        handshake_timeout: HANDSHAKE_TIMEOUT,
        client: Some(format!("rustico {}", env!("CARGO_PKG_VERSION"))),
        listen_port: Some(listen_port),
        pex,
        dht_port,
        ..SessionConfig::default()
    }
}

/// Reads from `link` into a [`Handshaking`] until it becomes a session
/// (its deadline as the read timeout). The session may already hold the
/// first messages that came with the handshake.
pub fn finish_handshake(link: &mut Link, mut hs: Handshaking) -> Result<Session, ConnectError> {
    let mut chunk = [0u8; 4096];
    loop {
        let now = Instant::now();
        hs.handle_timeout(now)?;
        let wait = hs
            .poll_timeout()
            .map_or(HANDSHAKE_TIMEOUT, |t| t.saturating_duration_since(now))
            .max(Duration::from_millis(1));
        link.socket()
            .set_read_timeout(Some(wait))
            .map_err(ConnectError::Socket)?;
        let n = match link.read(&mut chunk) {
            Ok(0) => return Err(ConnectError::Closed),
            Ok(n) => n,
            Err(e) if link::is_retry(&e) => continue,
            Err(e) => return Err(ConnectError::Read(e)),
        };
        // `read` returns at most the buffer's length.
        let Some(got) = chunk.get(..n) else {
            debug_assert!(false, "read {n} bytes into a buffer of {}", chunk.len());
            return Err(ConnectError::Internal {
                what: "a read reported more bytes than its buffer holds",
            });
        };
        match hs.handle_input(got, Instant::now())? {
            Progress::Handshaking(next) => hs = next,
            Progress::Established(session) => {
                link.socket()
                    .set_read_timeout(None)
                    .map_err(ConnectError::Socket)?;
                return Ok(session);
            }
        }
    }
}

/// Opens a link to `addr` as `policy` says and starts the BitTorrent
/// handshake `hs` over it (in MSE's initial payload when encrypted).
pub fn dial(
    addr: SocketAddr,
    info_hash: [u8; 20],
    mut hs: Handshaking,
    policy: Policy,
) -> Result<(Link, Session), ConnectError> {
    let now = Instant::now();
    let mut ours = Vec::new();
    hs.poll_transmit(&mut ours, now);
    let Dialled { mut link, head } = link::dial(addr, info_hash, &ours, policy, HANDSHAKE_TIMEOUT)?;
    link.socket()
        .set_write_timeout(Some(WRITE_TIMEOUT))
        .map_err(ConnectError::Socket)?;
    let session = match hs.handle_input(&head, now)? {
        Progress::Handshaking(hs) => finish_handshake(&mut link, hs)?,
        Progress::Established(session) => session,
    };
    Ok((link, session))
}

fn connect(setup: &ConnSetup, origin: Origin) -> Result<(Link, Session), ConnectError> {
    let dht_port = setup.dht.as_ref().map(|(port, _)| *port);
    // BEP 52: a v2 or hybrid torrent's handshake says we speak v2.
    let reserved = Reserved::supported()
        .with_dht(dht_port.is_some())
        .with_v2_upgrade(setup.hashes.is_some());
    // An incoming peer may greet a hybrid under its v2 hash: we answer
    // under the hash it used (the listener routed it here by that hash).
    let info_hash = match &origin {
        Origin::Incoming(accepted) => accepted.info_hash,
        Origin::Outgoing => setup.info_hash,
    };
    let ours = Handshake::new(reserved, info_hash, setup.peer_id);
    let geometry = setup.storage.layout().geometry();
    let mut content = Content::torrent(geometry, setup.ours.clone())
        .map_err(ConnectError::Content)?
        .with_metadata(Arc::clone(&setup.metadata));
    if let Some(hashes) = &setup.hashes {
        content = content.with_hashes(Arc::clone(hashes));
    }
    let config = session_config(setup.listen_port, setup.pex, dht_port);
    let now = Instant::now();
    let mut hs = Handshaking::new(ours, content, config, now);
    match origin {
        Origin::Outgoing => dial(setup.addr, setup.info_hash, hs, setup.encryption),
        Origin::Incoming(Accepted { mut link, head, .. }) => {
            link.socket()
                .set_write_timeout(Some(WRITE_TIMEOUT))
                .map_err(ConnectError::Socket)?;
            let mut out = Vec::new();
            hs.poll_transmit(&mut out, now);
            link.write_all(&mut out).map_err(ConnectError::Write)?;
            // The listener read (and decrypted) the start of the peer's
            // stream to route it.
            let session = match hs.handle_input(&head, now)? {
                Progress::Handshaking(hs) => finish_handshake(&mut link, hs)?,
                Progress::Established(session) => session,
            };
            Ok((link, session))
        }
    }
}

/// An answer to one of our requests for a failed piece's block hashes.
enum BlockHashAnswer {
    /// The hashes, checked against the piece's hash.
    Checked { piece: u32, hashes: Vec<[u8; 32]> },
    /// Rejected, or the answer failed the check.
    Refused(u32),
}

/// An answer or a reject to one of our requests for a failed piece's
/// block hashes, checked (`None`: not one).
fn block_hashes_answer(
    layers: Option<&rustico_metainfo::BlockLayers>,
    event: &SessionEvent,
) -> Option<BlockHashAnswer> {
    let (request, hashes) = match event {
        SessionEvent::Hashes { request, hashes } => (request, Some(hashes)),
        SessionEvent::HashesRejected(request) => (request, None),
        _ => return None,
    };
    let blocks = layers?.for_request(&crate::meta::layer_range(request))?;
    Some(match hashes {
        Some(hashes) if blocks.check(hashes) => BlockHashAnswer::Checked {
            piece: blocks.piece(),
            hashes: hashes.clone(),
        },
        _ => BlockHashAnswer::Refused(blocks.piece()),
    })
}

/// Carries out the orders taken from the inbox: the latest choke and
/// interest first (so requests follow an `interested`), then the rest in
/// order. `Break` with the reason when the manager closes the connection.
pub fn apply_orders(
    session: &mut Session,
    pending: Orders,
    now: Instant,
) -> ControlFlow<CloseOrder> {
    if let Some(why) = pending.close {
        return ControlFlow::Break(why);
    }
    if let Some(choke) = pending.choke {
        session.set_choking(choke);
    }
    if let Some(on) = pending.interested {
        session.set_interested(on);
    }
    for command in pending.ordered {
        apply(session, command, now);
    }
    ControlFlow::Continue(())
}

fn apply(session: &mut Session, command: Command, now: Instant) {
    match command {
        Command::Request(reqs) => {
            for req in reqs {
                session.request(req, now);
            }
        }
        Command::Cancel(req) => session.cancel(req),
        Command::Have(piece) => session.have(piece),
        Command::Choke(choke) => session.set_choking(choke),
        Command::Interested(on) => session.set_interested(on),
        Command::Pex(message) => {
            session.send_pex(&message);
        }
        // Refused only with 16 hash requests out: the swarm then waits
        // for a good copy of the piece instead.
        Command::RequestHashes(request) => {
            session.request_hashes(request);
        }
    }
}

/// Serves the blocks the session asks for, from storage, while its
/// transmit buffer has room.
pub fn serve_blocks(setup: &ConnSetup, session: &mut Session) {
    while let Some(Action::Serve(req)) = session.poll_action() {
        session.send_block_with(req, |out| {
            let read = setup
                .storage
                .read_block(req.piece, req.offset, req.length, out);
            if let Err(e) = &read {
                log::debug!(target: "rustico", "{}: cannot serve {req:?}: {e}", setup.addr);
            }
            read
        });
    }
}

/// What the session reported, as messages for the manager (the events
/// of one wake-up as one message, then checked block-hash answers).
pub fn reports(setup: &ConnSetup, session: &mut Session, out: &mut Vec<super::PeerMsg>) {
    let mut batch = Vec::new();
    let mut answers = Vec::new();
    while let Some(event) = session.poll_event() {
        if let SessionEvent::DhtPort(port) = event {
            if let Some((_, nodes)) = &setup.dht {
                nodes.learned(SocketAddr::new(setup.addr.ip(), port));
            }
            continue;
        }
        match block_hashes_answer(setup.block_layers.as_deref(), &event) {
            Some(BlockHashAnswer::Checked { piece, hashes }) => {
                answers.push(super::PeerMsg::BlockHashes { piece, hashes });
                continue;
            }
            Some(BlockHashAnswer::Refused(piece)) => {
                batch.push(PeerEvent::BlockHashesRefused(piece));
                continue;
            }
            None => {}
        }
        // Metadata and hash events come only to the sessions that ask for
        // them (magnet links; block hashes are taken above).
        let _ = PeerEvent::from_session(event, setup.num_pieces, &mut batch);
    }
    if !batch.is_empty() {
        out.push(super::PeerMsg::Events(batch));
    }
    out.append(&mut answers);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Shutdown;

    /// A peer that reads our handshake and hangs up without a word: a
    /// typed `Closed`, not a string.
    #[test]
    fn a_peer_that_hangs_up_during_the_handshake_is_a_typed_error() {
        use std::io::Read;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut got = vec![0u8; 68];
            stream.read_exact(&mut got).unwrap();
            // A FIN, then drain until we hang up too (no reset).
            stream.shutdown(Shutdown::Write).unwrap();
            let _drained = std::io::copy(&mut stream, &mut std::io::sink());
        });
        let now = Instant::now();
        let ours = Handshake::new(Reserved::supported(), [1; 20], [2; 20]);
        let hs = Handshaking::new(ours, Content::magnet(), SessionConfig::default(), now);
        let result = dial(addr, [1; 20], hs, Policy::Disable);
        let Err(err) = result else {
            panic!("a handshake with a peer that said nothing");
        };
        assert!(matches!(err, ConnectError::Closed), "{err:?}");
        assert_eq!(err.to_string(), "closed during the handshake");
        peer.join().unwrap();
    }

    #[test]
    fn the_mailbox_coalesces_state_orders_and_wakes_once() {
        let (mailbox, inbox) = mailbox();
        // Before the connection is on a network thread nothing is woken;
        // orders wait for its first take.
        mailbox.send(ConnInput::Command(Command::Have(1)));
        let (notify, wakes) = super::super::net::Notify::for_test(7);
        inbox.set_notify(Some(notify));
        assert_eq!(inbox.take().ordered.len(), 1);
        for i in 0..100_000 {
            mailbox.send(ConnInput::Command(Command::Choke(i % 2 == 0)));
            mailbox.send(ConnInput::Command(Command::Interested(i % 2 == 1)));
        }
        mailbox.send(ConnInput::Command(Command::Have(3)));
        assert_eq!(mailbox.pending(), 3, "two state slots and one have");
        assert_eq!(wakes(), vec![7], "one wake-up, however many orders");
        let taken = inbox.take();
        assert_eq!(taken.choke, Some(false));
        assert_eq!(taken.interested, Some(true));
        assert_eq!(taken.ordered.len(), 1);
        assert!(!taken.stopped);
        assert_eq!(mailbox.pending(), 0);
        // A connection that takes nothing: closed, not queued for.
        for piece in 0..=MAX_ORDERS as u32 {
            mailbox.send(ConnInput::Command(Command::Have(piece)));
        }
        assert_eq!(mailbox.pending(), 1, "only the close");
        assert_eq!(wakes(), vec![7], "woken again after the take, once");
        assert_eq!(inbox.take().close, Some(CloseOrder::Backlog));
        let bye = CloseOrder::Swarm(rustico_swarm::CloseReason::Duplicate);
        mailbox.send(ConnInput::Close(bye));
        drop(mailbox);
        assert_eq!(wakes(), vec![7], "the close and the drop: one wake-up");
        let last = inbox.take();
        assert_eq!(last.close, Some(bye));
        assert!(last.stopped, "a dropped mailbox reads as stopped");
    }
}
