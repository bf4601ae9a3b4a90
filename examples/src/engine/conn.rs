//! The peer connection thread: handshake over a blocking `TcpStream`, then
//! a thin loop driving a [`PeerSession`]. A helper thread reads the socket
//! into a bounded channel (so a slow manager slows the peer down through
//! TCP, instead of growing a queue), and the loop waits with `select!` on
//! those bytes, the manager's commands and the session's next timer.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, select, Receiver, Sender};
use rustico_peer_wire::{Handshake, Reserved, HANDSHAKE_LEN};
use rustico_storage::Storage;

use crate::session::{Command, Event, PeerSession, SessionSetup};
use rustico_peer_wire::Bitfield as Bits;

use super::{PeerKey, ToManager};

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
    /// The manager's inbox.
    pub to_manager: Sender<ToManager>,
    /// This connection's inbox.
    pub inbox: Receiver<ConnInput>,
}

/// How the connection was made.
pub enum Origin {
    /// We dial the address.
    Outgoing,
    /// The peer dialled us; the server already read the first 48 bytes of
    /// its handshake (up to the info-hash).
    Incoming(TcpStream, Vec<u8>),
}

/// Runs one connection to its end; the last message to the manager is
/// always [`super::PeerMsg::Closed`].
pub fn run(setup: ConnSetup, origin: Origin) {
    let key = setup.key;
    let to_manager = setup.to_manager.clone();
    let reason = match connect(&setup, origin) {
        Ok((stream, their, leftover)) => drive(&setup, stream, their, leftover),
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

fn connect(setup: &ConnSetup, origin: Origin) -> Result<(TcpStream, Handshake, Vec<u8>), String> {
    let ours = Handshake::new(Reserved::supported(), setup.info_hash, setup.peer_id);
    let (mut stream, mut buf) = match origin {
        Origin::Outgoing => {
            let s = TcpStream::connect_timeout(&setup.addr, HANDSHAKE_TIMEOUT)
                .map_err(|e| format!("connect: {e}"))?;
            (s, Vec::new())
        }
        Origin::Incoming(s, head) => (s, head),
    };
    let _ = stream.set_nodelay(true);
    stream
        .set_read_timeout(Some(HANDSHAKE_TIMEOUT))
        .and_then(|_| stream.set_write_timeout(Some(WRITE_TIMEOUT)))
        .map_err(|e| format!("socket: {e}"))?;
    stream
        .write_all(&ours.to_bytes())
        .map_err(|e| format!("handshake write: {e}"))?;
    let mut chunk = [0u8; 4096];
    let their = loop {
        match Handshake::decode(&buf).map_err(|e| format!("bad handshake: {e}"))? {
            rustico_peer_wire::Status::Complete(h, _) => break h,
            rustico_peer_wire::Status::Incomplete => {}
        }
        let n = stream
            .read(&mut chunk)
            .map_err(|e| format!("handshake read: {e}"))?;
        if n == 0 {
            return Err("closed during the handshake".into());
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
    };
    if their.info_hash != setup.info_hash {
        return Err("handshake for another torrent".into());
    }
    if their.peer_id == setup.peer_id {
        return Err("connected to ourselves".into());
    }
    let leftover = buf.get(HANDSHAKE_LEN..).unwrap_or(&[]).to_vec();
    stream
        .set_read_timeout(None)
        .map_err(|e| format!("socket: {e}"))?;
    Ok((stream, their, leftover))
}

fn drive(setup: &ConnSetup, stream: TcpStream, their: Handshake, leftover: Vec<u8>) -> Closed {
    let common = Reserved::supported().common(&their.reserved);
    let now = Instant::now();
    let mut session = PeerSession::new(
        SessionSetup {
            num_pieces: setup.num_pieces,
            fast: common.fast(),
            extended: common.extension_protocol(),
            ours: setup.ours.clone(),
            client: format!("rustico {}", env!("CARGO_PKG_VERSION")),
            metadata: Some(Arc::clone(&setup.metadata)),
            pex: setup.pex,
            listen_port: Some(setup.listen_port),
        },
        now,
    );
    let client = String::from_utf8_lossy(their.peer_id.get(..8).unwrap_or(&[])).into_owned();
    let _ = setup.to_manager.send(ToManager::Peer(
        setup.key,
        super::PeerMsg::Connected {
            client,
            fast: common.fast(),
            peer_id: their.peer_id,
        },
    ));
    let (bytes_tx, bytes_rx) = bounded::<std::io::Result<Vec<u8>>>(8);
    // Read buffers go back to the reader once handled, so reading costs
    // neither an allocation nor a copy per chunk.
    let (spare_tx, spare_rx) = bounded::<Vec<u8>>(4);
    let reader_stream = match stream.try_clone() {
        Ok(s) => s,
        Err(e) => return Closed::Failed(format!("socket: {e}")),
    };
    let reader = std::thread::Builder::new()
        .name("peer-reader".into())
        .spawn(move || read_loop(reader_stream, bytes_tx, spare_rx));
    if let Err(e) = reader {
        return Closed::Failed(format!("thread: {e}"));
    }
    let closed = event_loop(setup, &stream, &mut session, &bytes_rx, &spare_tx, leftover);
    let _ = stream.shutdown(Shutdown::Both);
    let (down, up) = session.take_stats();
    let _ = setup.to_manager.send(ToManager::Peer(
        setup.key,
        super::PeerMsg::Events(vec![Event::Stats { down, up }]),
    ));
    closed
}

const READ_CHUNK: usize = 128 * 1024;

fn read_loop(
    mut stream: TcpStream,
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

fn event_loop(
    setup: &ConnSetup,
    mut stream: &TcpStream,
    session: &mut PeerSession,
    bytes_rx: &Receiver<std::io::Result<Vec<u8>>>,
    spare_tx: &Sender<Vec<u8>>,
    leftover: Vec<u8>,
) -> Closed {
    let mut out = Vec::with_capacity(256 * 1024);
    if !leftover.is_empty() {
        if let Err(e) = session.handle_input(&leftover, Instant::now()) {
            return Closed::Failed(e.to_string());
        }
    }
    loop {
        // Drain what the session wants done before waiting again; the
        // manager gets the events of one wake-up as one message.
        let mut batch = Vec::new();
        while let Some(event) = session.poll_event() {
            match event {
                Event::Serve(req) => {
                    session.send_block_with(req, |out| {
                        let read = setup.storage.read_block(req.piece, req.offset, req.length, out);
                        if let Err(e) = &read {
                            log::debug!(target: "rustico", "{}: cannot serve {req:?}: {e}", setup.addr);
                        }
                        read
                    });
                }
                other => batch.push(other),
            }
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
            if let Err(e) = stream.write_all(&out) {
                return Closed::Failed(format!("write: {e}"));
            }
            out.clear();
        }
        let deadline = session.poll_timeout();
        let now = Instant::now();
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
                Ok(ConnInput::Command(c)) => session.handle_command(c, now),
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
