//! The stream framer: bytes in as they arrive, whole messages out.

use crate::message::{frame_len, FrameError, Limits, Message};
use crate::Status;

/// Cuts a byte stream (after the handshake) into messages.
///
/// Feed it bytes in any split, with [`Framer::feed`] or by reading straight
/// into [`Framer::spare_mut`] and calling [`Framer::commit`]; take complete
/// messages out with [`Framer::next_message`], whose payloads borrow from
/// the framer's buffer.
///
/// Memory is bounded: the framer never holds more than
/// [`Framer::capacity`] bytes (two of the largest frames its [`Limits`]
/// allow), and a length prefix over the limits is an error as soon as its
/// 4 bytes (5 with the id) are in, before its payload is buffered. After
/// an error the stream cannot be resynchronised: every later call returns
/// the same error.
///
/// ```
/// use rustico_peer_wire::{Framer, Message};
///
/// let mut wire = Vec::new();
/// Message::Unchoke.encode(&mut wire);
/// Message::Piece { index: 0, begin: 0, data: b"hello" }.encode(&mut wire);
///
/// let mut framer = Framer::new();
/// let mut seen = Vec::new();
/// for byte in &wire {
///     // One byte at a time: the framer waits until a frame is whole.
///     assert_eq!(framer.feed(std::slice::from_ref(byte)), 1);
///     while let Some(message) = framer.next_message()? {
///         seen.push(message.to_owned());
///     }
/// }
/// assert_eq!(seen.len(), 2);
/// assert_eq!(seen[1].as_message(), Message::Piece { index: 0, begin: 0, data: b"hello" });
/// # Ok::<(), rustico_peer_wire::FrameError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Framer {
    limits: Limits,
    /// `limits.max_frame_len()`, computed once.
    max_frame: u32,
    capacity: usize,
    buf: Vec<u8>,
    /// Unconsumed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// Stream offset of `buf[start]`, for errors.
    position: u64,
    failed: Option<FrameError>,
}

impl Default for Framer {
    fn default() -> Framer {
        Framer::new()
    }
}

impl Framer {
    /// A framer with the default [`Limits`].
    pub fn new() -> Framer {
        Framer::with_limits(Limits::default())
    }

    /// A framer with the given limits.
    pub fn with_limits(limits: Limits) -> Framer {
        Framer {
            limits,
            max_frame: limits.max_frame_len(),
            capacity: capacity_for(&limits),
            buf: Vec::new(),
            start: 0,
            end: 0,
            position: 0,
            failed: None,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Changes the limits, for example once the torrent's piece count is
    /// known. Bytes already buffered are kept; if they no longer fit the
    /// new capacity, the capacity stays large enough to hold them.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
        self.max_frame = limits.max_frame_len();
        self.capacity = capacity_for(&limits).max(self.buffered());
        if self.buf.len() > self.capacity {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            self.buf.truncate(self.capacity);
            self.buf.shrink_to_fit();
        }
    }

    /// The most bytes the framer will ever hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes received but not yet taken out as messages.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Bytes consumed so far (handed out as messages): the stream offset
    /// of the next frame.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The bytes received but not yet taken out as messages.
    pub fn pending(&self) -> &[u8] {
        self.buf.get(self.start..self.end).unwrap_or(&[])
    }

    /// Copies as much of `bytes` as fits and returns how many bytes it
    /// took. It takes everything unless the buffer is full of complete
    /// messages: take those out with [`Framer::next_message`], then feed
    /// the rest.
    pub fn feed(&mut self, bytes: &[u8]) -> usize {
        let spare = self.spare_mut();
        let n = spare.len().min(bytes.len());
        spare[..n].copy_from_slice(&bytes[..n]);
        self.end += n;
        n
    }

    /// Free buffer space to read into directly (then call
    /// [`Framer::commit`] with the count read), saving the copy of
    /// [`Framer::feed`]. Moves pending bytes to the front of the buffer
    /// when the current frame would not fit otherwise. Empty when the
    /// buffer is full of complete messages.
    pub fn spare_mut(&mut self) -> &mut [u8] {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.start > 0 && self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() && self.buf.len() < self.capacity {
            // Grow with use rather than up front: most peers never send a
            // frame near the limit, and the limit may be large.
            let new_len = (self.buf.len() * 2).clamp(MIN_BUFFER, self.capacity.max(MIN_BUFFER));
            let new_len = new_len.min(self.capacity);
            self.buf.reserve_exact(new_len - self.buf.len());
            self.buf.resize(new_len, 0);
        }
        let end = self.end;
        self.buf.get_mut(end..).unwrap_or(&mut [])
    }

    /// Marks `n` bytes of [`Framer::spare_mut`] as received. Counts beyond
    /// the spare space are clamped.
    pub fn commit(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    /// Whether a complete message is waiting (checking its header against
    /// the limits).
    pub fn has_message(&mut self) -> Result<bool, FrameError> {
        if let Some(err) = self.failed {
            return Err(err);
        }
        match frame_len(self.pending(), &self.limits, self.max_frame, self.position) {
            Ok(Status::Complete(..)) => Ok(true),
            Ok(Status::Incomplete) => Ok(false),
            Err(err) => {
                self.failed = Some(err);
                Err(err)
            }
        }
    }

    /// Takes the next complete message out, or `None` until one has
    /// arrived. Its payload borrows from the framer until the next call.
    #[inline]
    pub fn next_message(&mut self) -> Result<Option<Message<'_>>, FrameError> {
        if let Some(err) = self.failed {
            return Err(err);
        }
        let pending = self.buf.get(self.start..self.end).unwrap_or(&[]);
        let used = match frame_len(pending, &self.limits, self.max_frame, self.position) {
            Ok(Status::Complete((), used)) => used,
            Ok(Status::Incomplete) => return Ok(None),
            Err(err) => {
                self.failed = Some(err);
                return Err(err);
            }
        };
        let frame_start = self.start;
        self.start += used;
        self.position += used as u64;
        let body = self
            .buf
            .get(frame_start + 4..frame_start + used)
            .unwrap_or(&[]);
        Ok(Some(Message::from_checked_body(body)))
    }

    /// Takes a message from the front of `input` in place, without copying
    /// it into the buffer: returns it with the bytes it took, or `None`
    /// when bytes are buffered (they come first: feed `input` after them)
    /// or `input` does not start with a whole message (feed it). The
    /// limits and errors are those of [`Framer::next_message`].
    #[inline]
    pub fn next_message_in<'a>(
        &mut self,
        input: &'a [u8],
    ) -> Result<Option<(Message<'a>, usize)>, FrameError> {
        if let Some(err) = self.failed {
            return Err(err);
        }
        if self.start != self.end {
            return Ok(None);
        }
        let used = match frame_len(input, &self.limits, self.max_frame, self.position) {
            Ok(Status::Complete((), used)) => used,
            Ok(Status::Incomplete) => return Ok(None),
            Err(err) => {
                self.failed = Some(err);
                return Err(err);
            }
        };
        self.position += used as u64;
        let body = input.get(4..used).unwrap_or(&[]);
        Ok(Some((Message::from_checked_body(body), used)))
    }
}

/// First allocation of the buffer.
const MIN_BUFFER: usize = 4096;

fn capacity_for(limits: &Limits) -> usize {
    2 * (4 + limits.max_frame_len() as usize)
}
