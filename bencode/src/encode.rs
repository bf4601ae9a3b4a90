//! The encoder: always canonical (dictionary keys sorted as raw bytes,
//! each once, no leading zeros).
//!
//! [`Encode`] turns whole values into bytes; the free functions
//! ([`integer`], [`bytes`]) write single items, for hot paths that build a
//! message without building a value first.

use crate::owned::OwnedValue;
use crate::value::{Kind, Value};

/// Something that can be written as canonical bencode.
pub trait Encode {
    /// Appends the canonical encoding of `self` to `out`.
    fn encode_into(&self, out: &mut Vec<u8>);

    /// A guess at the encoded size, for [`encode`] to allocate once; 0
    /// when unknown. A decoded [`Value`] answers the size of its input
    /// bytes, which is exact for canonical input.
    fn size_hint(&self) -> usize {
        0
    }
}

/// The canonical encoding of a value, in a new buffer.
///
/// ```
/// let value = rustico_bencode::decode(b"d1:bi2e1:ai1ee")?; // unsorted keys
/// assert_eq!(rustico_bencode::encode(&value), b"d1:ai1e1:bi2ee");
/// # Ok::<(), rustico_bencode::Error>(())
/// ```
pub fn encode<T: Encode + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.size_hint());
    value.encode_into(&mut out);
    out
}

/// Appends the canonical encoding of a value to a buffer the caller owns.
pub fn encode_into<T: Encode + ?Sized>(value: &T, out: &mut Vec<u8>) {
    value.encode_into(out);
}

/// Writes `i<n>e`.
pub fn integer(out: &mut Vec<u8>, n: i64) {
    out.push(b'i');
    push_decimal(out, n.unsigned_abs(), n < 0);
    out.push(b'e');
}

/// Writes `<len>:<bytes>`.
pub fn bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    push_decimal(out, bytes.len() as u64, false);
    out.push(b':');
    out.extend_from_slice(bytes);
}

fn push_decimal(out: &mut Vec<u8>, mut n: u64, negative: bool) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if negative {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[start..]);
}

impl Encode for OwnedValue {
    fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            OwnedValue::Integer(i) => integer(out, *i),
            OwnedValue::Bytes(b) => bytes(out, b),
            OwnedValue::List(items) => {
                out.push(b'l');
                for item in items {
                    item.encode_into(out);
                }
                out.push(b'e');
            }
            OwnedValue::Dict(dict) => {
                out.push(b'd');
                for (key, value) in dict {
                    bytes(out, key);
                    value.encode_into(out);
                }
                out.push(b'e');
            }
        }
    }
}

impl Encode for Value<'_> {
    fn size_hint(&self) -> usize {
        self.raw().len()
    }

    /// Canonical even when the input was not: keys are sorted, and of a
    /// repeated key the first entry is kept (as [`crate::Dict::get`] sees it).
    fn encode_into(&self, out: &mut Vec<u8>) {
        match self.kind() {
            Kind::Integer(i) => integer(out, *i),
            Kind::Bytes(b) => bytes(out, b),
            Kind::List(items) => {
                out.push(b'l');
                for item in items {
                    item.encode_into(out);
                }
                out.push(b'e');
            }
            Kind::Dict(dict) => {
                out.push(b'd');
                let entries = dict.entries();
                if entries.windows(2).all(|pair| pair[0].0 < pair[1].0) {
                    for (key, value) in entries {
                        bytes(out, key);
                        value.encode_into(out);
                    }
                } else {
                    let mut sorted: Vec<&(&[u8], Value<'_>)> = entries.iter().collect();
                    sorted.sort_by(|a, b| a.0.cmp(b.0)); // stable: first of equal keys stays first
                    sorted.dedup_by(|later, earlier| later.0 == earlier.0);
                    for (key, value) in sorted {
                        bytes(out, key);
                        value.encode_into(out);
                    }
                }
                out.push(b'e');
            }
        }
    }
}

impl<T: Encode + ?Sized> Encode for &T {
    fn encode_into(&self, out: &mut Vec<u8>) {
        (**self).encode_into(out);
    }

    fn size_hint(&self) -> usize {
        (**self).size_hint()
    }
}

impl Encode for i64 {
    fn encode_into(&self, out: &mut Vec<u8>) {
        integer(out, *self);
    }
}

impl Encode for [u8] {
    fn encode_into(&self, out: &mut Vec<u8>) {
        bytes(out, self);
    }

    fn size_hint(&self) -> usize {
        self.len() + 21
    }
}

impl Encode for str {
    fn encode_into(&self, out: &mut Vec<u8>) {
        bytes(out, self.as_bytes());
    }
}
