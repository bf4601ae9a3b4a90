//! Borrowed values: what [`decode`](crate::decode) returns.

use std::fmt;

/// A decoded bencode value that borrows from the input.
///
/// Besides its content, every value knows the exact input bytes it was
/// decoded from ([`Value::raw`]) and where they start ([`Value::offset`]),
/// so a caller can hash a `.torrent` file's info dictionary byte for byte
/// even when the file is not canonical.
#[derive(Clone, PartialEq, Eq)]
pub struct Value<'a> {
    pub(crate) raw: &'a [u8],
    pub(crate) offset: usize,
    pub(crate) kind: Kind<'a>,
}

/// The content of a [`Value`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind<'a> {
    /// `i42e`
    Integer(i64),
    /// `4:spam`: the bytes between the `:` and the end, not necessarily UTF-8.
    Bytes(&'a [u8]),
    /// `l...e`
    List(Vec<Value<'a>>),
    /// `d...e`
    Dict(Dict<'a>),
}

impl<'a> Value<'a> {
    /// The exact input bytes this value was decoded from, prefix and
    /// terminator included (`4:spam`, `i42e`, `d...e`).
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Byte offset of [`Value::raw`] in the decoded input.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The content.
    pub fn kind(&self) -> &Kind<'a> {
        &self.kind
    }

    /// Consumes the value and returns its content.
    pub fn into_kind(self) -> Kind<'a> {
        self.kind
    }

    /// The integer, if this is one.
    pub fn as_integer(&self) -> Option<i64> {
        match self.kind {
            Kind::Integer(i) => Some(i),
            _ => None,
        }
    }

    /// The byte string, if this is one.
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match self.kind {
            Kind::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The byte string as UTF-8, if this is a byte string holding valid UTF-8.
    pub fn as_str(&self) -> Option<&'a str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    /// The list's items, if this is a list.
    pub fn as_list(&self) -> Option<&[Value<'a>]> {
        match &self.kind {
            Kind::List(items) => Some(items),
            _ => None,
        }
    }

    /// The dictionary, if this is one.
    pub fn as_dict(&self) -> Option<&Dict<'a>> {
        match &self.kind {
            Kind::Dict(dict) => Some(dict),
            _ => None,
        }
    }

    /// Shorthand for `self.as_dict()?.get(key)`.
    pub fn get(&self, key: &[u8]) -> Option<&Value<'a>> {
        self.as_dict()?.get(key)
    }

    /// A name for the value's type, for error messages: `"integer"`,
    /// `"byte string"`, `"list"` or `"dictionary"`.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            Kind::Integer(_) => "integer",
            Kind::Bytes(_) => "byte string",
            Kind::List(_) => "list",
            Kind::Dict(_) => "dictionary",
        }
    }

    /// An owned copy, independent of the input buffer.
    pub fn to_owned_value(&self) -> crate::OwnedValue {
        crate::OwnedValue::from(self)
    }
}

impl fmt::Debug for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The raw span would repeat the content; the offset helps debugging.
        write!(f, "@{} ", self.offset)?;
        match &self.kind {
            Kind::Integer(i) => write!(f, "{i}"),
            Kind::Bytes(b) => write!(f, "{:?}", crate::DebugBytes(b)),
            Kind::List(items) => f.debug_list().entries(items).finish(),
            Kind::Dict(dict) => fmt::Debug::fmt(dict, f),
        }
    }
}

/// A decoded dictionary: its entries in input order.
///
/// Canonical input has its keys sorted and unique; the lenient decoder
/// also accepts unsorted and repeated keys (real trackers send them) and
/// keeps them as they came. [`Dict::get`] returns the first entry with the
/// key.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Dict<'a> {
    pub(crate) entries: Vec<(&'a [u8], Value<'a>)>,
}

impl<'a> Dict<'a> {
    /// The value of the first entry whose key is `key`.
    ///
    /// A linear scan: dictionaries in BitTorrent have a handful of keys,
    /// where a scan beats hashing or sorting.
    pub fn get(&self, key: &[u8]) -> Option<&Value<'a>> {
        self.entries.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// Whether the dictionary has an entry with this key.
    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    /// The entries in input order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&'a [u8], &Value<'a>)> + '_ {
        self.entries.iter().map(|(k, v)| (*k, v))
    }

    /// The entries in input order, as a slice.
    pub fn entries(&self) -> &[(&'a [u8], Value<'a>)] {
        &self.entries
    }

    /// Number of entries (repeated keys counted each time).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl fmt::Debug for Dict<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.entries.iter().map(|(k, v)| (crate::DebugBytes(k), v)))
            .finish()
    }
}
