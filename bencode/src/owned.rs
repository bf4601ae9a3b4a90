//! Owned values: for building what to encode, and for keeping decoded data
//! after the input buffer is gone.

use std::collections::BTreeMap;

use crate::value::{Kind, Value};

/// An owned dictionary. A `BTreeMap` orders keys as raw bytes, which is
/// exactly bencode's canonical order, so encoding needs no sorting.
pub type OwnedDict = BTreeMap<Vec<u8>, OwnedValue>;

/// An owned bencode value.
///
/// ```
/// use rustico_bencode::{encode, OwnedValue};
///
/// let request = OwnedValue::dict([
///     ("msg_type", OwnedValue::from(0)),
///     ("piece", OwnedValue::from(3)),
/// ]);
/// assert_eq!(encode(&request), b"d8:msg_typei0e5:piecei3ee");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OwnedValue {
    /// An integer.
    Integer(i64),
    /// A byte string.
    Bytes(Vec<u8>),
    /// A list.
    List(Vec<OwnedValue>),
    /// A dictionary, keys in canonical order.
    Dict(OwnedDict),
}

impl OwnedValue {
    /// A dictionary from `(key, value)` pairs; a repeated key keeps its last value.
    pub fn dict<K, I>(entries: I) -> OwnedValue
    where
        K: AsRef<[u8]>,
        I: IntoIterator<Item = (K, OwnedValue)>,
    {
        OwnedValue::Dict(
            entries
                .into_iter()
                .map(|(k, v)| (k.as_ref().to_vec(), v))
                .collect(),
        )
    }

    /// A list from values.
    pub fn list<I: IntoIterator<Item = OwnedValue>>(items: I) -> OwnedValue {
        OwnedValue::List(items.into_iter().collect())
    }

    /// A byte string.
    pub fn bytes(bytes: impl Into<Vec<u8>>) -> OwnedValue {
        OwnedValue::Bytes(bytes.into())
    }

    /// The integer, if this is one.
    pub fn as_integer(&self) -> Option<i64> {
        match self {
            OwnedValue::Integer(i) => Some(*i),
            _ => None,
        }
    }

    /// The byte string, if this is one.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            OwnedValue::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The byte string as UTF-8, if it is one and valid.
    pub fn as_str(&self) -> Option<&str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    /// The list, if this is one.
    pub fn as_list(&self) -> Option<&[OwnedValue]> {
        match self {
            OwnedValue::List(items) => Some(items),
            _ => None,
        }
    }

    /// The dictionary, if this is one.
    pub fn as_dict(&self) -> Option<&OwnedDict> {
        match self {
            OwnedValue::Dict(dict) => Some(dict),
            _ => None,
        }
    }

    /// The dictionary, mutably, if this is one.
    pub fn as_dict_mut(&mut self) -> Option<&mut OwnedDict> {
        match self {
            OwnedValue::Dict(dict) => Some(dict),
            _ => None,
        }
    }

    /// Shorthand for `self.as_dict()?.get(key)`.
    pub fn get(&self, key: &[u8]) -> Option<&OwnedValue> {
        self.as_dict()?.get(key)
    }
}

impl From<&Value<'_>> for OwnedValue {
    /// Copies a decoded value. Of repeated dictionary keys (lenient input)
    /// the first is kept, as [`crate::Dict::get`] does.
    fn from(value: &Value<'_>) -> OwnedValue {
        match value.kind() {
            Kind::Integer(i) => OwnedValue::Integer(*i),
            Kind::Bytes(b) => OwnedValue::Bytes(b.to_vec()),
            Kind::List(items) => OwnedValue::List(items.iter().map(OwnedValue::from).collect()),
            Kind::Dict(dict) => {
                let mut out = OwnedDict::new();
                for (key, value) in dict.iter() {
                    out.entry(key.to_vec())
                        .or_insert_with(|| OwnedValue::from(value));
                }
                OwnedValue::Dict(out)
            }
        }
    }
}

impl From<i64> for OwnedValue {
    fn from(i: i64) -> OwnedValue {
        OwnedValue::Integer(i)
    }
}

impl From<i32> for OwnedValue {
    fn from(i: i32) -> OwnedValue {
        OwnedValue::Integer(i64::from(i))
    }
}

impl From<u32> for OwnedValue {
    fn from(i: u32) -> OwnedValue {
        OwnedValue::Integer(i64::from(i))
    }
}

impl From<bool> for OwnedValue {
    /// `1` or `0`, as BitTorrent encodes flags such as `private`.
    fn from(b: bool) -> OwnedValue {
        OwnedValue::Integer(i64::from(b))
    }
}

impl From<&str> for OwnedValue {
    fn from(s: &str) -> OwnedValue {
        OwnedValue::Bytes(s.as_bytes().to_vec())
    }
}

impl From<String> for OwnedValue {
    fn from(s: String) -> OwnedValue {
        OwnedValue::Bytes(s.into_bytes())
    }
}

impl From<&[u8]> for OwnedValue {
    fn from(b: &[u8]) -> OwnedValue {
        OwnedValue::Bytes(b.to_vec())
    }
}

impl From<Vec<u8>> for OwnedValue {
    fn from(b: Vec<u8>) -> OwnedValue {
        OwnedValue::Bytes(b)
    }
}

impl From<Vec<OwnedValue>> for OwnedValue {
    fn from(items: Vec<OwnedValue>) -> OwnedValue {
        OwnedValue::List(items)
    }
}

impl From<OwnedDict> for OwnedValue {
    fn from(dict: OwnedDict) -> OwnedValue {
        OwnedValue::Dict(dict)
    }
}
