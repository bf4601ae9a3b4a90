//! A thin blocking layer over any `Read + Write` (a `TcpStream`) for the
//! interop tests: handshake, send, receive, message by message. It moved
//! here from the library, which does no I/O (its peer connection is the
//! sans-IO `Session`). Timeouts are the socket's own.
#![allow(dead_code, missing_docs)]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use rustico_peer_wire::{
    FrameError, Framer, Handshake, HandshakeError, Limits, Message, Status, HANDSHAKE_LEN,
};

/// Socket timeouts for a connection. `None` blocks forever.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timeouts {
    /// Longest wait for bytes to arrive (`TcpStream::set_read_timeout`).
    pub read: Option<Duration>,
    /// Longest wait for a write to make progress.
    pub write: Option<Duration>,
}

impl Timeouts {
    /// Applies the timeouts to a TCP stream.
    pub fn apply(&self, stream: &TcpStream) -> io::Result<()> {
        stream.set_read_timeout(self.read)?;
        stream.set_write_timeout(self.write)
    }
}

/// Opens a TCP connection within `connect_timeout` and applies `timeouts`.
pub fn connect(
    addr: SocketAddr,
    connect_timeout: Duration,
    timeouts: Timeouts,
) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, connect_timeout)?;
    stream.set_nodelay(true)?;
    timeouts.apply(&stream)?;
    Ok(stream)
}

/// Why a blocking connection failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// The socket failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// A read or write waited longer than its timeout. A receive that
    /// timed out keeps what it had read; calling it again is safe.
    #[error("timed out")]
    TimedOut,
    /// The peer closed the connection.
    #[error("peer closed the connection{}", if *.mid_message { " in the middle of a message" } else { "" })]
    Closed {
        /// Whether part of a handshake or message had arrived.
        mid_message: bool,
    },
    /// The peer's handshake is not a BitTorrent handshake.
    #[error("bad handshake: {0}")]
    Handshake(#[from] HandshakeError),
    /// The peer answered for another torrent.
    #[error("peer's handshake is for another torrent")]
    InfoHashMismatch {
        /// The info-hash we asked for.
        expected: [u8; 20],
        /// The one the peer sent.
        found: [u8; 20],
    },
    /// We declined the peer's handshake (unknown torrent).
    #[error("declined the peer's handshake")]
    Declined,
    /// The peer broke the framing or a limit.
    #[error("bad message: {0}")]
    Frame(#[from] FrameError),
}

fn classify(err: io::Error) -> ConnectionError {
    match err.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ConnectionError::TimedOut,
        _ => ConnectionError::Io(err),
    }
}

/// A peer connection after the handshake: send and receive messages.
#[derive(Debug)]
pub struct Connection<S> {
    stream: S,
    framer: Framer,
    out: Vec<u8>,
    peer: Handshake,
}

impl<S: Read + Write> Connection<S> {
    /// Connecting side: sends our handshake, then reads the peer's and
    /// checks that it is for the same torrent.
    pub fn initiate(mut stream: S, ours: &Handshake) -> Result<Connection<S>, ConnectionError> {
        stream.write_all(&ours.to_bytes()).map_err(classify)?;
        stream.flush().map_err(classify)?;
        let theirs = read_handshake(&mut stream)?;
        if theirs.info_hash != ours.info_hash {
            return Err(ConnectionError::InfoHashMismatch {
                expected: ours.info_hash,
                found: theirs.info_hash,
            });
        }
        Ok(Connection::after_handshake(stream, theirs))
    }

    /// Accepting side: reads the peer's handshake, asks `answer` for ours
    /// (`None` declines, for a torrent we do not serve), then sends it.
    pub fn respond(
        mut stream: S,
        answer: impl FnOnce(&Handshake) -> Option<Handshake>,
    ) -> Result<Connection<S>, ConnectionError> {
        let theirs = read_handshake(&mut stream)?;
        let ours = answer(&theirs).ok_or(ConnectionError::Declined)?;
        stream.write_all(&ours.to_bytes()).map_err(classify)?;
        stream.flush().map_err(classify)?;
        Ok(Connection::after_handshake(stream, theirs))
    }

    /// Wraps a stream whose handshake is already done.
    pub fn after_handshake(stream: S, peer: Handshake) -> Connection<S> {
        Connection {
            stream,
            framer: Framer::new(),
            out: Vec::new(),
            peer,
        }
    }

    /// The peer's handshake.
    pub fn peer_handshake(&self) -> &Handshake {
        &self.peer
    }

    /// Changes the receive limits (once the torrent's size is known).
    pub fn set_limits(&mut self, limits: Limits) {
        self.framer.set_limits(limits);
    }

    /// Encodes a message into the send buffer without writing it; see
    /// [`Connection::flush`].
    pub fn queue(&mut self, message: &Message<'_>) {
        message.encode(&mut self.out);
    }

    /// Appends raw, already encoded bytes to the send buffer (for
    /// extension messages built with their own `encode_message`).
    pub fn queue_raw(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// Writes everything queued.
    pub fn flush(&mut self) -> Result<(), ConnectionError> {
        let result = self
            .stream
            .write_all(&self.out)
            .and_then(|()| self.stream.flush());
        self.out.clear();
        result.map_err(classify)
    }

    /// Queues a message and writes everything queued.
    pub fn send(&mut self, message: &Message<'_>) -> Result<(), ConnectionError> {
        self.queue(message);
        self.flush()
    }

    /// Blocks until the next message arrives (or the read timeout
    /// passes: [`ConnectionError::TimedOut`], safe to call again).
    pub fn receive(&mut self) -> Result<Message<'_>, ConnectionError> {
        while !self.framer.has_message()? {
            let spare = self.framer.spare_mut();
            let n = match self.stream.read(spare) {
                Ok(0) => {
                    return Err(ConnectionError::Closed {
                        mid_message: self.framer.buffered() > 0,
                    })
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(classify(e)),
            };
            self.framer.commit(n);
        }
        match self.framer.next_message()? {
            Some(message) => Ok(message),
            // has_message said yes; the framer cannot change its mind.
            None => Err(ConnectionError::Io(io::Error::other(
                "framer lost a message",
            ))),
        }
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// The underlying stream, mutably (to change timeouts, say).
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// The stream and the framer with any bytes already read.
    pub fn into_parts(self) -> (S, Framer) {
        (self.stream, self.framer)
    }
}

/// Reads exactly one handshake, checking bytes as they come and never
/// reading past it.
fn read_handshake<S: Read>(stream: &mut S) -> Result<Handshake, ConnectionError> {
    let mut buf = [0u8; HANDSHAKE_LEN];
    let mut filled = 0;
    loop {
        if let Status::Complete(handshake, _) = Handshake::decode(&buf[..filled])? {
            return Ok(handshake);
        }
        match stream.read(&mut buf[filled..]) {
            Ok(0) => {
                return Err(ConnectionError::Closed {
                    mid_message: filled > 0,
                })
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(classify(e)),
        }
    }
}
