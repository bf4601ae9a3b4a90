//! The peer connection thread: a blocking [`Link`] (a `TcpStream`, with
//! the cipher protocol encryption chose) driving one peer-wire session,
//! from [`Handshaking`] to [`Session`]. After the
//! handshake a helper thread reads the socket into a bounded channel (so a
//! slow manager slows the peer down through TCP, instead of growing a
//! queue), and the loop waits with `select!` on those bytes, the manager's
//! commands and the session's next timer. Protocol decisions are the
//! session's; this module only moves bytes, orders and events.

use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, select, Receiver, Sender};
use rustico_peer_wire::mse::Policy;
use rustico_peer_wire::{
    Action, Content, Handshake, Handshaking, Progress, Reserved, Session, SessionConfig,
};
use rustico_peer_wire::{Bitfield as Bits, Event as SessionEvent};
use rustico_storage::Storage;

use super::link::{self, Accepted, Dialled, Link, LinkReader};
use crate::dht::NodeSink;

use super::{Command, Event, PeerKey, ToManager};

/// How long connecting and the handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A write that blocks this long means the peer stopped reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// What the manager sends a connection.
#[derive(Debug)]
pub enum ConnInput {
    /// An order for the session.
    Command(Command),
    /// Close the connection, for this reason.
    Close(String),
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
    /// Peer exchange allowed (the torrent is not private).
    pub pex: bool,
    /// Our listen port, for the extension handshake.
    pub listen_port: u16,
    /// Protocol encryption for outgoing connections.
    pub encryption: Policy,
    /// Our DHT port and where to report peers' DHT nodes; `None` when the
    /// DHT is off or the torrent is private (BEP 27: no DHT bit).
    pub dht: Option<(u16, NodeSink)>,
    /// The manager's inbox.
    pub to_manager: Sender<ToManager>,
    /// This connection's inbox.
    pub inbox: Receiver<ConnInput>,
}

/// How the connection was made.
pub enum Origin {
    /// We dial the address.
    Outgoing,
    /// The peer dialled us; the listener set up its link and read the
    /// start of its handshake (up to the info-hash at least).
    Incoming(Accepted),
}

/// Runs one connection to its end; the last message to the manager is
/// always [`super::PeerMsg::Closed`].
pub fn run(setup: ConnSetup, origin: Origin) {
    let key = setup.key;
    let to_manager = setup.to_manager.clone();
    let reason = match connect(&setup, origin) {
        Ok((stream, session)) => drive(&setup, stream, session),
        Err(e) => Closed::Failed(e),
    };
    let _ = to_manager.send(ToManager::Peer(key, super::PeerMsg::Closed(reason)));
}

/// Why a connection ended.
#[derive(Debug, Clone)]
pub enum Closed {
    /// Connecting, the handshake or the protocol failed.
    Failed(String),
    /// A normal end: the peer hung up, or we closed it.
    Normal(String),
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
pub fn finish_handshake(link: &mut Link, mut hs: Handshaking) -> Result<Session, String> {
    let mut chunk = [0u8; 4096];
    loop {
        let now = Instant::now();
        hs.handle_timeout(now).map_err(|e| e.to_string())?;
        let wait = hs
            .poll_timeout()
            .map_or(HANDSHAKE_TIMEOUT, |t| t.saturating_duration_since(now))
            .max(Duration::from_millis(1));
        link.socket()
            .set_read_timeout(Some(wait))
            .map_err(|e| format!("socket: {e}"))?;
        let n = match link.read(&mut chunk) {
            Ok(0) => return Err("closed during the handshake".into()),
            Ok(n) => n,
            Err(e) if link::is_retry(&e) => continue,
            Err(e) => return Err(format!("handshake read: {e}")),
        };
        let got = chunk.get(..n).unwrap_or(&[]);
        match hs.handle_input(got, Instant::now()) {
            Ok(Progress::Handshaking(next)) => hs = next,
            Ok(Progress::Established(session)) => {
                link.socket()
                    .set_read_timeout(None)
                    .map_err(|e| format!("socket: {e}"))?;
                return Ok(session);
            }
            Err(e) => return Err(e.to_string()),
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
) -> Result<(Link, Session), String> {
    let now = Instant::now();
    let mut ours = Vec::new();
    hs.poll_transmit(&mut ours, now);
    let Dialled { mut link, head } =
        link::dial(addr, info_hash, &ours, policy, HANDSHAKE_TIMEOUT).map_err(|e| e.to_string())?;
    link.socket()
        .set_write_timeout(Some(WRITE_TIMEOUT))
        .map_err(|e| format!("socket: {e}"))?;
    let session = match hs.handle_input(&head, now).map_err(|e| e.to_string())? {
        Progress::Handshaking(hs) => finish_handshake(&mut link, hs)?,
        Progress::Established(session) => session,
    };
    Ok((link, session))
}

fn connect(setup: &ConnSetup, origin: Origin) -> Result<(Link, Session), String> {
    let dht_port = setup.dht.as_ref().map(|(port, _)| *port);
    let reserved = Reserved::supported().with_dht(dht_port.is_some());
    let ours = Handshake::new(reserved, setup.info_hash, setup.peer_id);
    let geometry = setup.storage.layout().geometry();
    let content = Content::torrent(geometry, setup.ours.clone())
        .map_err(|e| format!("cannot start a session: {e}"))?
        .with_metadata(Arc::clone(&setup.metadata));
    let config = session_config(setup.listen_port, setup.pex, dht_port);
    let now = Instant::now();
    let mut hs = Handshaking::new(ours, content, config, now);
    match origin {
        Origin::Outgoing => dial(setup.addr, setup.info_hash, hs, setup.encryption),
        Origin::Incoming(Accepted { mut link, head, .. }) => {
            link.socket()
                .set_write_timeout(Some(WRITE_TIMEOUT))
                .map_err(|e| format!("socket: {e}"))?;
            let mut out = Vec::new();
            hs.poll_transmit(&mut out, now);
            link.write_all(&mut out)
                .map_err(|e| format!("handshake write: {e}"))?;
            // The listener read (and decrypted) the start of the peer's
            // stream to route it.
            let session = match hs.handle_input(&head, now).map_err(|e| e.to_string())? {
                Progress::Handshaking(hs) => finish_handshake(&mut link, hs)?,
                Progress::Established(session) => session,
            };
            Ok((link, session))
        }
    }
}

fn drive(setup: &ConnSetup, link: Link, mut session: Session) -> Closed {
    let their = *session.peer_handshake();
    let client = String::from_utf8_lossy(their.peer_id.get(..8).unwrap_or(&[])).into_owned();
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
    // The handshake's read deadline must not outlive it (it does when the
    // whole handshake came with the first read): a peer may say nothing
    // for minutes while it waits for an unchoke, and the session's own
    // timers judge that, not a socket time-out.
    if let Err(e) = link.socket().set_read_timeout(None) {
        return Closed::Failed(format!("socket: {e}"));
    }
    let (bytes_tx, bytes_rx) = bounded::<std::io::Result<Vec<u8>>>(8);
    // Read buffers go back to the reader once handled, so reading costs
    // no allocation per chunk.
    let (spare_tx, spare_rx) = bounded::<Vec<u8>>(4);
    let (reader_link, mut link) = match link.split() {
        Ok(halves) => halves,
        Err(e) => return Closed::Failed(format!("socket: {e}")),
    };
    let reader = std::thread::Builder::new()
        .name("peer-reader".into())
        .spawn(move || read_loop(reader_link, bytes_tx, spare_rx));
    if let Err(e) = reader {
        return Closed::Failed(format!("thread: {e}"));
    }
    let closed = event_loop(setup, &mut link, &mut session, &bytes_rx, &spare_tx);
    let _ = link.socket().shutdown(Shutdown::Both);
    let (down, up) = session.take_stats();
    let _ = setup.to_manager.send(ToManager::Peer(
        setup.key,
        super::PeerMsg::Events(vec![Event::Stats { down, up }]),
    ));
    closed
}

const READ_CHUNK: usize = 128 * 1024;

fn read_loop(
    mut stream: LinkReader,
    out: Sender<std::io::Result<Vec<u8>>>,
    spare: Receiver<Vec<u8>>,
) {
    loop {
        let mut buf = spare.try_recv().unwrap_or_default();
        buf.resize(READ_CHUNK, 0);
        match stream.read(&mut buf) {
            Ok(0) => {
                let _ = out.send(Ok(Vec::new()));
                return;
            }
            Ok(n) => {
                buf.truncate(n);
                if out.send(Ok(buf)).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                let _ = out.send(Err(e));
                return;
            }
        }
    }
}

/// A session event as the manager takes it (`None`: nothing to tell).
/// Consecutive drops are merged into one report.
fn to_manager_event(event: SessionEvent, num_pieces: u32, batch: &mut Vec<Event>) {
    let event = match event {
        SessionEvent::Bitfield(bits) => Event::Pieces(bits),
        // Once per connection: the session reports `have all` only when
        // it changes what the peer has.
        SessionEvent::HaveAll => Event::Pieces(Bits::full(num_pieces)),
        SessionEvent::HaveNone => Event::Pieces(Bits::new(num_pieces)),
        SessionEvent::Have(piece) => Event::Have(piece),
        SessionEvent::Choked => Event::Choked(true),
        SessionEvent::Unchoked => Event::Choked(false),
        SessionEvent::Interested => Event::Interested(true),
        SessionEvent::NotInterested => Event::Interested(false),
        SessionEvent::Block { req, data } => Event::Block { req, data },
        SessionEvent::Dropped(reqs) => {
            if let Some(Event::Dropped(previous)) = batch.last_mut() {
                previous.extend(reqs);
                return;
            }
            Event::Dropped(reqs)
        }
        SessionEvent::Stalled(reqs) => Event::Stalled(reqs),
        SessionEvent::Extensions(ext) => {
            if let Some(reqq) = ext.reqq {
                batch.push(Event::Reqq(reqq.clamp(1, 2000) as usize));
            }
            Event::PeerInfo {
                listen_port: ext.listen_port,
                pex: ext.ut_pex,
            }
        }
        SessionEvent::Pex(message) => Event::Pex(message),
        SessionEvent::Stats { down, up } => Event::Stats { down, up },
        // Pieces the peer lets us fetch while choked: the manager does not
        // ask for them yet. Metadata events come only to magnet sessions.
        SessionEvent::AllowedFast(_)
        | SessionEvent::DhtPort(_)
        | SessionEvent::MetadataPiece { .. }
        | SessionEvent::MetadataRejected { .. } => return,
    };
    batch.push(event);
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
    }
}

fn event_loop(
    setup: &ConnSetup,
    link: &mut Link,
    session: &mut Session,
    bytes_rx: &Receiver<std::io::Result<Vec<u8>>>,
    spare_tx: &Sender<Vec<u8>>,
) -> Closed {
    let mut out = Vec::with_capacity(256 * 1024);
    loop {
        // Drain what the session wants done before waiting again, in the
        // session's order: serve blocks, report events (the manager gets
        // the events of one wake-up as one message), write, then time.
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
        let mut batch = Vec::new();
        while let Some(event) = session.poll_event() {
            if let SessionEvent::DhtPort(port) = event {
                if let Some((_, nodes)) = &setup.dht {
                    nodes.learned(SocketAddr::new(setup.addr.ip(), port));
                }
                continue;
            }
            to_manager_event(event, setup.num_pieces, &mut batch);
        }
        if !batch.is_empty()
            && setup
                .to_manager
                .send(ToManager::Peer(setup.key, super::PeerMsg::Events(batch)))
                .is_err()
        {
            return Closed::Normal("torrent stopped".into());
        }
        session.poll_transmit(&mut out, Instant::now());
        if !out.is_empty() {
            if let Err(e) = link.write_all(&mut out) {
                return Closed::Failed(format!("write: {e}"));
            }
            out.clear();
        }
        let now = Instant::now();
        let Some(deadline) = session.poll_timeout() else {
            // Only a failed session has no timer, and failures return.
            debug_assert!(false, "a live session without a timer");
            return Closed::Failed("session without a timer".into());
        };
        select! {
            recv(bytes_rx) -> got => match got {
                Ok(Ok(bytes)) if bytes.is_empty() => return Closed::Normal("peer closed the connection".into()),
                Ok(Ok(bytes)) => {
                    if let Err(e) = session.handle_input(&bytes, now) {
                        return Closed::Failed(e.to_string());
                    }
                    let _ = spare_tx.try_send(bytes);
                    // Take whatever else has arrived before answering: fewer,
                    // larger writes and messages.
                    while let Ok(Ok(more)) = bytes_rx.try_recv() {
                        if more.is_empty() {
                            return Closed::Normal("peer closed the connection".into());
                        }
                        if let Err(e) = session.handle_input(&more, now) {
                            return Closed::Failed(e.to_string());
                        }
                        let _ = spare_tx.try_send(more);
                    }
                }
                Ok(Err(e)) => return Closed::Failed(format!("read: {e}")),
                Err(_) => return Closed::Failed("reader stopped".into()),
            },
            recv(setup.inbox) -> got => match got {
                Ok(ConnInput::Command(c)) => apply(session, c, now),
                Ok(ConnInput::Close(why)) => return Closed::Normal(why),
                Err(_) => return Closed::Normal("torrent stopped".into()),
            },
            recv(crossbeam_channel::at(deadline)) -> _ => {
                if let Err(e) = session.handle_timeout(Instant::now()) {
                    return Closed::Failed(e.to_string());
                }
            }
        }
    }
}
