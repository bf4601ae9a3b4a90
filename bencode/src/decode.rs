//! The decoder: bytes in, a borrowed [`Value`] tree out.

use crate::error::{Error, ErrorKind};
use crate::value::{Dict, Kind, Value};

/// The default nesting limit: deeper lists and dictionaries are an error.
pub const DEFAULT_MAX_DEPTH: usize = 256;

/// The highest nesting limit a [`Decoder`] accepts. The decoder recurses
/// once per level, so the cap keeps even a configured limit far inside a
/// thread's stack.
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

    /// Decodes the value at the start of the input; returns it and the
    /// number of bytes it took.
    pub fn decode_prefix<'a>(&self, input: &'a [u8]) -> Result<(Value<'a>, usize), Error> {
        let mut parser = Parser {
            input,
            pos: 0,
            strict: self.strict,
            max_depth: self.max_depth,
        };
        let value = parser.value(0)?;
        Ok((value, parser.pos))
    }
}

struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
    strict: bool,
    max_depth: usize,
}

impl<'a> Parser<'a> {
    fn error(&self, kind: ErrorKind, offset: usize) -> Error {
        Error::new(kind, offset)
    }

    fn end(&self) -> Error {
        Error::new(ErrorKind::UnexpectedEnd, self.input.len())
    }

    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn value(&mut self, depth: usize) -> Result<Value<'a>, Error> {
        let start = self.pos;
        let kind = match self.peek() {
            None => return Err(self.end()),
            Some(b'0'..=b'9') => Kind::Bytes(self.byte_string()?),
            Some(b'i') => {
                self.pos += 1;
                Kind::Integer(self.integer()?)
            }
            Some(b'l') => {
                self.enter(depth)?;
                let mut items = Vec::new();
                loop {
                    match self.peek() {
                        None => return Err(self.end()),
                        Some(b'e') => break,
                        Some(_) => items.push(self.value(depth + 1)?),
                    }
                }
                self.pos += 1;
                Kind::List(items)
            }
            Some(b'd') => {
                self.enter(depth)?;
                Kind::Dict(self.dict_entries(depth)?)
            }
            Some(byte) => return Err(self.error(ErrorKind::UnexpectedByte { byte }, start)),
        };
        Ok(Value {
            raw: self.input.get(start..self.pos).unwrap_or_default(),
            offset: start,
            kind,
        })
    }

    /// Steps over the `l` or `d` of a container at `depth`, if the limit allows.
    fn enter(&mut self, depth: usize) -> Result<(), Error> {
        if depth >= self.max_depth {
            return Err(self.error(
                ErrorKind::TooDeep {
                    limit: self.max_depth,
                },
                self.pos,
            ));
        }
        self.pos += 1;
        Ok(())
    }

    fn dict_entries(&mut self, depth: usize) -> Result<Dict<'a>, Error> {
        let mut entries: Vec<(&'a [u8], Value<'a>)> = Vec::new();
        loop {
            let key_start = self.pos;
            match self.peek() {
                None => return Err(self.end()),
                Some(b'e') => break,
                Some(b'0'..=b'9') => {}
                Some(_) => return Err(self.error(ErrorKind::KeyNotString, key_start)),
            }
            let key = self.byte_string()?;
            if self.strict {
                if let Some((previous, _)) = entries.last() {
                    match (*previous).cmp(key) {
                        std::cmp::Ordering::Less => {}
                        std::cmp::Ordering::Equal => {
                            return Err(self.error(ErrorKind::DuplicateKey, key_start))
                        }
                        std::cmp::Ordering::Greater => {
                            return Err(self.error(ErrorKind::UnsortedKey, key_start))
                        }
                    }
                }
            }
            match self.peek() {
                None => return Err(self.end()),
                Some(b'e') => return Err(self.error(ErrorKind::MissingValue, self.pos)),
                Some(_) => {}
            }
            let value = self.value(depth + 1)?;
            entries.push((key, value));
        }
        self.pos += 1;
        Ok(Dict { entries })
    }

    /// `<digits>:<bytes>`, with `pos` on the first digit.
    fn byte_string(&mut self) -> Result<&'a [u8], Error> {
        let start = self.pos;
        let mut claimed: u64 = 0;
        loop {
            match self.peek() {
                Some(digit @ b'0'..=b'9') => {
                    claimed = claimed
                        .saturating_mul(10)
                        .saturating_add(u64::from(digit - b'0'));
                    self.pos += 1;
                }
                Some(b':') => break,
                Some(byte) => return Err(self.error(ErrorKind::UnexpectedByte { byte }, self.pos)),
                None => return Err(self.end()),
            }
        }
        if self.strict && self.pos - start > 1 && self.input.get(start) == Some(&b'0') {
            return Err(self.error(ErrorKind::LeadingZero, start));
        }
        self.pos += 1; // the ':'
        let remaining = self.input.len() - self.pos;
        let length = match usize::try_from(claimed) {
            Ok(length) if length <= remaining => length,
            _ => {
                return Err(self.error(ErrorKind::StringTooLong { claimed, remaining }, start));
            }
        };
        let bytes = self
            .input
            .get(self.pos..self.pos + length)
            .unwrap_or_default();
        self.pos += length;
        Ok(bytes)
    }

    /// `[-]<digits>e`, with `pos` just after the `i`.
    fn integer(&mut self) -> Result<i64, Error> {
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        let digits_start = self.pos;
        let mut value: i64 = 0;
        loop {
            match self.peek() {
                Some(digit @ b'0'..=b'9') => {
                    let digit = i64::from(digit - b'0');
                    // Accumulate towards the sign so that i64::MIN parses.
                    value = value
                        .checked_mul(10)
                        .and_then(|v| {
                            if negative {
                                v.checked_sub(digit)
                            } else {
                                v.checked_add(digit)
                            }
                        })
                        .ok_or_else(|| self.error(ErrorKind::IntegerOverflow, digits_start))?;
                    self.pos += 1;
                }
                Some(b'e') => break,
                Some(byte) => return Err(self.error(ErrorKind::UnexpectedByte { byte }, self.pos)),
                None => return Err(self.end()),
            }
        }
        let digits = self.pos - digits_start;
        if digits == 0 {
            return Err(self.error(ErrorKind::EmptyInteger, digits_start));
        }
        if self.strict {
            if digits > 1 && self.input.get(digits_start) == Some(&b'0') {
                return Err(self.error(ErrorKind::LeadingZero, digits_start));
            }
            if negative && value == 0 {
                return Err(self.error(ErrorKind::NegativeZero, digits_start - 1));
            }
        }
        self.pos += 1; // the 'e'
        Ok(value)
    }
}
