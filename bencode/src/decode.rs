//! The decoder: bytes in, a borrowed [`Value`] tree out.

use std::cmp::Ordering;

use crate::error::{Error, ErrorKind};
use crate::tokens::Tokens;
use crate::value::{Dict, Kind, Value};

/// The default nesting limit: deeper lists and dictionaries are an error.
pub const DEFAULT_MAX_DEPTH: usize = 256;

/// The highest nesting limit a [`Decoder`] accepts. The decoder keeps
/// open containers on the heap, not the call stack, but dropping a
/// [`Value`] tree recurses once per level, so the cap keeps that far
/// inside a thread's stack.
pub const MAX_DEPTH_CAP: usize = 4096;

/// Decodes one value, leniently: see [`Decoder`] for what lenient accepts.
///
/// ```
/// let value = rustico_bencode::decode(b"d3:cow3:moo4:spaml1:a1:bee")?;
/// assert_eq!(value.get(b"cow").and_then(|v| v.as_str()), Some("moo"));
/// assert_eq!(value.get(b"spam").and_then(|v| v.as_list()).map(|l| l.len()), Some(2));
/// # Ok::<(), rustico_bencode::Error>(())
/// ```
pub fn decode(input: &[u8]) -> Result<Value<'_>, Error> {
    Decoder::new().decode(input)
}

/// Decodes one value, rejecting anything that is not canonical bencode.
///
/// ```
/// assert!(rustico_bencode::decode_strict(b"d1:bi1e1:ai2ee").is_err()); // unsorted keys
/// assert!(rustico_bencode::decode_strict(b"d1:ai2e1:bi1ee").is_ok());
/// ```
pub fn decode_strict(input: &[u8]) -> Result<Value<'_>, Error> {
    Decoder::new().strict(true).decode(input)
}

/// Decodes the value at the start of `input` and returns it with the
/// number of bytes it took; whatever follows is left alone.
///
/// For values embedded in a larger message, such as a `ut_metadata` data
/// message (a dictionary followed by raw metadata bytes).
///
/// ```
/// let (value, used) = rustico_bencode::decode_prefix(b"d3:msgi1eeRAW")?;
/// assert_eq!(used, 10);
/// assert_eq!(value.get(b"msg").and_then(|v| v.as_integer()), Some(1));
/// # Ok::<(), rustico_bencode::Error>(())
/// ```
pub fn decode_prefix(input: &[u8]) -> Result<(Value<'_>, usize), Error> {
    Decoder::new().decode_prefix(input)
}

/// Decoding options: strictness and the nesting limit.
///
/// **Lenient** (the default) accepts what real-world encoders emit though
/// it is not canonical: dictionary keys out of order or repeated (trackers
/// send these), leading zeros (`i03e`, `03:abc`), `i-0e`, and bytes after
/// the value (ignored; [`Value::raw`] says where the value ended).
///
/// **Strict** rejects all of those, so that input accepted by it
/// re-encodes to the same bytes.
///
/// Both modes reject: truncated input, integers outside `i64`, a byte
/// string longer than the rest of the input (before allocating anything),
/// keys that are not byte strings, and nesting deeper than the limit.
///
/// [`Decoder::decode`] builds a [`Value`] tree; [`Decoder::tokens`] walks
/// the same grammar, with the same checks and errors, building nothing.
///
/// ```
/// use rustico_bencode::{Decoder, ErrorKind};
///
/// let deep = [b'l'; 20];
/// let err = Decoder::new().max_depth(10).decode(&deep).unwrap_err();
/// assert_eq!(err.kind, ErrorKind::TooDeep { limit: 10 });
/// assert_eq!(err.offset, 10);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoder {
    strict: bool,
    max_depth: usize,
}

impl Default for Decoder {
    fn default() -> Decoder {
        Decoder::new()
    }
}

impl Decoder {
    /// A lenient decoder with the default nesting limit.
    pub const fn new() -> Decoder {
        Decoder {
            strict: false,
            max_depth: DEFAULT_MAX_DEPTH,
        }
    }

    /// Whether to reject non-canonical input.
    pub const fn strict(mut self, strict: bool) -> Decoder {
        self.strict = strict;
        self
    }

    /// How many lists and dictionaries may nest inside each other
    /// (capped at [`MAX_DEPTH_CAP`]).
    pub const fn max_depth(mut self, max_depth: usize) -> Decoder {
        self.max_depth = if max_depth > MAX_DEPTH_CAP {
            MAX_DEPTH_CAP
        } else {
            max_depth
        };
        self
    }

    /// Decodes one value from the whole input. In strict mode, bytes after
    /// the value are an error; in lenient mode they are ignored.
    pub fn decode<'a>(&self, input: &'a [u8]) -> Result<Value<'a>, Error> {
        let (value, used) = self.decode_prefix(input)?;
        if self.strict && used < input.len() {
            return Err(Error::new(
                ErrorKind::TrailingBytes {
                    count: input.len() - used,
                },
                used,
            ));
        }
        Ok(value)
    }

    /// Walks the value at the start of `input` token by token, with this
    /// decoder's mode and nesting limit, building nothing: see [`Tokens`].
    pub fn tokens<'a>(&self, input: &'a [u8]) -> Tokens<'a> {
        Tokens::new(input, self.strict, self.max_depth)
    }

    /// Decodes the value at the start of the input; returns it and the
    /// number of bytes it took.
    pub fn decode_prefix<'a>(&self, input: &'a [u8]) -> Result<(Value<'a>, usize), Error> {
        self.decode_at(input, 0)
    }

    /// Decodes the value that starts at byte `start` of `input` (a value
    /// inside a larger document, found with [`Decoder::tokens`], say);
    /// returns it and the offset just after it. Offsets (in the value and
    /// in errors) and [`Value::raw`] spans are those of the whole `input`,
    /// so a caller can decode one item of a long list at a time and still
    /// report where in the file something is wrong. The nesting limit
    /// counts from this value.
    ///
    /// ```
    /// use rustico_bencode::Decoder;
    ///
    /// let input = b"l3:abci7ee";
    /// let (item, end) = Decoder::new().decode_at(input, 6)?;
    /// assert_eq!((item.as_integer(), item.offset(), end), (Some(7), 6, 9));
    /// let err = Decoder::new().decode_at(b"li1eX", 4).unwrap_err();
    /// assert_eq!(err.offset, 4);
    /// # Ok::<(), rustico_bencode::Error>(())
    /// ```
    pub fn decode_at<'a>(
        &self,
        input: &'a [u8],
        start: usize,
    ) -> Result<(Value<'a>, usize), Error> {
        Parser {
            input,
            strict: self.strict,
            max_depth: self.max_depth,
            frames: Vec::new(),
            items: Vec::new(),
            entries: Vec::new(),
        }
        .parse(start)
    }
}

/// An open list or dictionary.
struct Frame<'a> {
    /// Offset of its `l` or `d`.
    start: usize,
    /// Where its items begin on the parser's `items` (list) or `entries`
    /// (dictionary) stack.
    mark: usize,
    dict: bool,
    /// The key whose value is being decoded (dictionaries only).
    key: &'a [u8],
}

/// An iterative parser: open containers live on `frames`, not on the call
/// stack, so depth costs heap, not stack, and a crafted input cannot
/// overflow the stack whatever the limit.
///
/// Finished values wait on `items` and `entries` until their container
/// closes; the container then takes them in one exact-size allocation
/// (`split_off`), so no container's vector grows by doubling.
struct Parser<'a> {
    input: &'a [u8],
    strict: bool,
    max_depth: usize,
    frames: Vec<Frame<'a>>,
    items: Vec<Value<'a>>,
    entries: Vec<(&'a [u8], Value<'a>)>,
}

impl<'a> Parser<'a> {
    fn parse(mut self, start: usize) -> Result<(Value<'a>, usize), Error> {
        let input = self.input;
        let mut pos = start;
        loop {
            if let Some(frame) = self.frames.last_mut() {
                match input.get(pos) {
                    Some(b'e') => {
                        pos += 1;
                        let Some(frame) = self.frames.pop() else {
                            break Err(unexpected_end(input));
                        };
                        let kind = if frame.dict {
                            Kind::Dict(Dict {
                                entries: self.entries.split_off(frame.mark),
                            })
                        } else {
                            Kind::List(self.items.split_off(frame.mark))
                        };
                        match self.place(input, frame.start, pos, kind) {
                            Some(root) => break Ok((root, pos)),
                            None => continue,
                        }
                    }
                    None => break Err(unexpected_end(input)),
                    Some(_) if !frame.dict => {}
                    Some(b'0'..=b'9') => {
                        let key_start = pos;
                        let key = byte_string(input, &mut pos, self.strict)?;
                        if self.strict && self.entries.len() > frame.mark {
                            if let Some((previous, _)) = self.entries.last() {
                                match (*previous).cmp(key) {
                                    Ordering::Less => {}
                                    Ordering::Equal => {
                                        break Err(Error::new(ErrorKind::DuplicateKey, key_start))
                                    }
                                    Ordering::Greater => {
                                        break Err(Error::new(ErrorKind::UnsortedKey, key_start))
                                    }
                                }
                            }
                        }
                        match input.get(pos) {
                            None => break Err(unexpected_end(input)),
                            Some(b'e') => break Err(Error::new(ErrorKind::MissingValue, pos)),
                            Some(_) => frame.key = key,
                        }
                    }
                    Some(_) => break Err(Error::new(ErrorKind::KeyNotString, pos)),
                }
            }

            // A value starts at `pos`.
            let start = pos;
            match input.get(pos) {
                Some(b'0'..=b'9') => {
                    let bytes = byte_string(input, &mut pos, self.strict)?;
                    if let Some(root) = self.place(input, start, pos, Kind::Bytes(bytes)) {
                        break Ok((root, pos));
                    }
                }
                Some(b'i') => {
                    pos += 1;
                    let n = integer(input, &mut pos, self.strict)?;
                    if let Some(root) = self.place(input, start, pos, Kind::Integer(n)) {
                        break Ok((root, pos));
                    }
                }
                Some(&open @ (b'l' | b'd')) => {
                    if self.frames.len() >= self.max_depth {
                        break Err(Error::new(
                            ErrorKind::TooDeep {
                                limit: self.max_depth,
                            },
                            pos,
                        ));
                    }
                    let dict = open == b'd';
                    self.frames.push(Frame {
                        start,
                        mark: if dict {
                            self.entries.len()
                        } else {
                            self.items.len()
                        },
                        dict,
                        key: &[],
                    });
                    pos += 1;
                }
                Some(&byte) => break Err(Error::new(ErrorKind::UnexpectedByte { byte }, pos)),
                None => break Err(unexpected_end(input)),
            }
        }
    }

    /// Hands the value spanning `start..end` to its container, or returns
    /// it if it is the root.
    ///
    /// Inlined into each caller so that the value is written straight into
    /// its slot: a value built first and moved in afterwards goes through
    /// the stack, and that copy cost more than the parsing around it.
    #[inline(always)]
    fn place(
        &mut self,
        input: &'a [u8],
        start: usize,
        end: usize,
        kind: Kind<'a>,
    ) -> Option<Value<'a>> {
        let value = Value {
            raw: input.get(start..end).unwrap_or_default(),
            offset: start,
            kind,
        };
        match self.frames.last() {
            None => Some(value),
            Some(frame) if frame.dict => {
                self.entries.push((frame.key, value));
                None
            }
            Some(_) => {
                self.items.push(value);
                None
            }
        }
    }
}

pub(crate) fn unexpected_end(input: &[u8]) -> Error {
    Error::new(ErrorKind::UnexpectedEnd, input.len())
}

/// Digits that always fit in a `u64`: 10^19 - 1 < 2^64.
const SAFE_U64_DIGITS: usize = 19;

/// Skips the run of ASCII digits at `at`; returns where it ends and its
/// value, exact for up to [`SAFE_U64_DIGITS`] digits (longer runs wrap, and
/// callers must not trust the value).
#[inline(always)]
fn digit_run(input: &[u8], mut at: usize) -> (usize, u64) {
    let mut value: u64 = 0;
    while let Some(&byte) = input.get(at) {
        let digit = byte.wrapping_sub(b'0');
        if digit > 9 {
            break;
        }
        value = value.wrapping_mul(10).wrapping_add(u64::from(digit));
        at += 1;
    }
    (at, value)
}

/// `<digits>:<bytes>`, with `pos` on the first digit; leaves `pos` after
/// the bytes.
#[inline]
pub(crate) fn byte_string<'a>(
    input: &'a [u8],
    pos: &mut usize,
    strict: bool,
) -> Result<&'a [u8], Error> {
    let start = *pos;
    let (at, value) = digit_run(input, start);
    match input.get(at) {
        Some(b':') => {}
        Some(&byte) => return Err(Error::new(ErrorKind::UnexpectedByte { byte }, at)),
        None => return Err(unexpected_end(input)),
    }
    let digits = at - start;
    if strict && digits > 1 && input.get(start) == Some(&b'0') {
        return Err(Error::new(ErrorKind::LeadingZero, start));
    }
    let claimed = if digits > SAFE_U64_DIGITS {
        u64::MAX
    } else {
        value
    };
    let body = at + 1; // after the ':'
    let remaining = input.len() - body;
    let length = match usize::try_from(claimed) {
        Ok(length) if length <= remaining => length,
        _ => {
            return Err(Error::new(
                ErrorKind::StringTooLong { claimed, remaining },
                start,
            ))
        }
    };
    *pos = body + length;
    Ok(input.get(body..body + length).unwrap_or_default())
}

/// `[-]<digits>e`, with `pos` just after the `i`; leaves `pos` after the `e`.
#[inline]
pub(crate) fn integer(input: &[u8], pos: &mut usize, strict: bool) -> Result<i64, Error> {
    let mut digits_start = *pos;
    let negative = input.get(digits_start) == Some(&b'-');
    if negative {
        digits_start += 1;
    }
    let (at, mut magnitude) = digit_run(input, digits_start);
    let digits = at - digits_start;
    if digits >= SAFE_U64_DIGITS {
        // Long enough to overflow: parse again, checked. The magnitude of
        // i64::MIN is one more than i64::MAX.
        let limit = if negative {
            i64::MIN.unsigned_abs()
        } else {
            i64::MAX.unsigned_abs()
        };
        magnitude = input
            .get(digits_start..at)
            .unwrap_or_default()
            .iter()
            .try_fold(0u64, |m, &d| {
                m.checked_mul(10)?
                    .checked_add(u64::from(d - b'0'))
                    .filter(|&m| m <= limit)
            })
            .ok_or(Error::new(ErrorKind::IntegerOverflow, digits_start))?;
    }
    match input.get(at) {
        Some(b'e') => {}
        Some(&byte) => return Err(Error::new(ErrorKind::UnexpectedByte { byte }, at)),
        None => return Err(unexpected_end(input)),
    }
    if digits == 0 {
        return Err(Error::new(ErrorKind::EmptyInteger, digits_start));
    }
    if strict {
        if digits > 1 && input.get(digits_start) == Some(&b'0') {
            return Err(Error::new(ErrorKind::LeadingZero, digits_start));
        }
        if negative && magnitude == 0 {
            return Err(Error::new(ErrorKind::NegativeZero, digits_start - 1));
        }
    }
    *pos = at + 1; // after the 'e'
                   // Up to 18 digits fit in i64, and longer runs were checked against the
                   // limit, so the cast and negation are exact (i64::MIN's magnitude casts
                   // to i64::MIN, whose wrapping negation is itself).
    Ok(if negative {
        (magnitude as i64).wrapping_neg()
    } else {
        magnitude as i64
    })
}
