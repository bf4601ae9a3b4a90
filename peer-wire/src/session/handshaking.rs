//! The first state of a peer session: handshakes exchanged, nothing else.

use std::time::Instant;

use crate::handshake::{Handshake, HANDSHAKE_LEN};
use crate::Status;

use super::timers::{Timer, TimerTable};
use super::{Content, Session, SessionConfig, SessionError};

/// A peer connection whose handshake is not finished: it sends ours and
/// waits for the peer's. It has no methods for blocks or messages; the
/// peer's handshake turns it into a [`Session`] ([`Progress::Established`]).
///
/// Both roles use it: the dialling side and the accepting side (which,
/// with several torrents, first reads 48 bytes and picks the torrent with
/// [`Handshake::peek_info_hash`], then feeds those bytes here).
///
/// Drain order: [`Handshaking::poll_transmit`] (our handshake), then
/// [`Handshaking::poll_timeout`] (the handshake deadline).
///
/// ```
/// use std::time::{Duration, Instant};
/// use rustico_peer_wire::{Content, Handshake, Handshaking, Progress, Reserved, SessionConfig, SessionError};
///
/// let now = Instant::now();
/// let ours = Handshake::new(Reserved::supported(), [7; 20], [1; 20]);
/// let mut hs = Handshaking::new(ours, Content::magnet(), SessionConfig::default(), now);
/// let mut wire = Vec::new();
/// hs.poll_transmit(&mut wire, now);
/// assert_eq!(wire.len(), 68);
///
/// // Half a handshake: still handshaking, and the deadline stands.
/// let theirs = Handshake::new(Reserved::supported(), [7; 20], [2; 20]).to_bytes();
/// let Progress::Handshaking(mut hs) = hs.handle_input(&theirs[..30], now)? else { unreachable!() };
/// assert_eq!(hs.poll_timeout(), Some(now + Duration::from_secs(10)));
/// let late = now + Duration::from_secs(10);
/// assert_eq!(hs.handle_timeout(late), Err(SessionError::HandshakeTimeout(Duration::from_secs(10))));
/// # Ok::<(), SessionError>(())
/// ```
#[derive(Debug)]
pub struct Handshaking {
    config: SessionConfig,
    content: Content,
    ours: Handshake,
    received: [u8; HANDSHAKE_LEN],
    filled: usize,
    out: Vec<u8>,
    timers: TimerTable,
}

/// What a [`Handshaking::handle_input`] led to.
// Moved a handful of times per connection, during the handshake only: a
// box per session would cost more than the copies.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Progress {
    /// More handshake bytes are needed.
    Handshaking(Handshaking),
    /// The peer's handshake is in and checked: a session, which has
    /// already handled the bytes that followed the handshake.
    Established(Session),
}

impl Handshaking {
    /// Starts a connection for the torrent of `ours.info_hash`, in either
    /// role: our handshake is queued at once, and the peer's must arrive
    /// within [`SessionConfig::handshake_timeout`].
    pub fn new(
        ours: Handshake,
        content: Content,
        config: SessionConfig,
        now: Instant,
    ) -> Handshaking {
        let mut out = Vec::with_capacity(HANDSHAKE_LEN);
        ours.encode(&mut out);
        let mut timers = TimerTable::default();
        timers.set(Timer::Handshake, now + config.handshake_timeout);
        Handshaking {
            config,
            content,
            ours,
            received: [0; HANDSHAKE_LEN],
            filled: 0,
            out,
            timers,
        }
    }

    /// Our handshake.
    pub fn our_handshake(&self) -> &Handshake {
        &self.ours
    }

    /// The deadline of one timer (only [`Timer::Handshake`] is set).
    pub fn timer(&self, timer: Timer) -> Option<Instant> {
        self.timers.get(timer)
    }

    /// Bytes of the peer's handshake received so far.
    pub fn received(&self) -> usize {
        self.filled
    }

    /// Bytes from the socket. Consumes the state: it comes back as
    /// [`Progress::Handshaking`] until the peer's 68 bytes are in, then
    /// becomes a [`Session`] that handles whatever followed them. The
    /// peer's handshake must be a BitTorrent one, for our info-hash, and
    /// not carry our own peer id.
    pub fn handle_input(mut self, bytes: &[u8], now: Instant) -> Result<Progress, SessionError> {
        let want = HANDSHAKE_LEN - self.filled;
        let (head, rest) = bytes.split_at(want.min(bytes.len()));
        if let Some(dst) = self.received.get_mut(self.filled..self.filled + head.len()) {
            dst.copy_from_slice(head);
        }
        self.filled += head.len();
        let got = self.received.get(..self.filled).unwrap_or(&[]);
        let theirs = match Handshake::decode(got)? {
            Status::Incomplete => return Ok(Progress::Handshaking(self)),
            Status::Complete(theirs, _) => theirs,
        };
        if theirs.info_hash != self.ours.info_hash {
            return Err(SessionError::InfoHashMismatch {
                expected: self.ours.info_hash,
                found: theirs.info_hash,
            });
        }
        if theirs.peer_id == self.ours.peer_id {
            return Err(SessionError::OwnPeerId);
        }
        let mut session =
            Session::establish(self.config, self.content, &self.ours, theirs, self.out, now);
        if !rest.is_empty() {
            session.handle_input(rest, now)?;
        }
        Ok(Progress::Established(session))
    }

    /// Moves our handshake (once) into `buf`; returns how many bytes.
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>, _now: Instant) -> usize {
        let n = self.out.len();
        buf.append(&mut self.out);
        n
    }

    /// The handshake deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Fails once the handshake deadline has passed; harmless before.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), SessionError> {
        if self.timers.is_due(Timer::Handshake, now) {
            return Err(SessionError::HandshakeTimeout(
                self.config.handshake_timeout,
            ));
        }
        Ok(())
    }
}
