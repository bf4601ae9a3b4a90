//! The one error type of decoding: what went wrong and at which byte.

/// Why a bencode input was rejected, and where.
///
/// `offset` is the byte position in the input where the problem was found
/// (for a value that ends too early, the position of the end of the input).
/// The error prints as one line, for example
/// `byte string claims 99 bytes but only 3 remain at byte 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{kind} at byte {offset}")]
pub struct Error {
    /// What went wrong.
    pub kind: ErrorKind,
    /// Byte offset in the input where it went wrong.
    pub offset: usize,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, offset: usize) -> Error {
        Error { kind, offset }
    }
}

/// What was wrong with a bencode input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input ended in the middle of a value (or was empty).
    #[error("unexpected end of input")]
    UnexpectedEnd,
    /// A byte that cannot start a value, or cannot appear inside an integer
    /// or a length prefix.
    #[error("unexpected byte 0x{byte:02x}")]
    UnexpectedByte {
        /// The offending byte.
        byte: u8,
    },
    /// `ie` or `i-e`: an integer with no digits.
    #[error("integer has no digits")]
    EmptyInteger,
    /// An integer that does not fit in an `i64`.
    #[error("integer does not fit in 64 bits")]
    IntegerOverflow,
    /// Strict mode: `i03e` or `03:abc`; canonical bencode has no leading zeros.
    #[error("leading zero (not canonical)")]
    LeadingZero,
    /// Strict mode: `i-0e`; canonical bencode writes zero as `i0e`.
    #[error("negative zero (not canonical)")]
    NegativeZero,
    /// A byte string whose length prefix is longer than what is left of
    /// the input. Caught before anything is allocated.
    #[error("byte string claims {claimed} bytes but only {remaining} remain")]
    StringTooLong {
        /// The length the prefix claims; `u64::MAX` for a prefix of 20
        /// digits or more.
        claimed: u64,
        /// Bytes left in the input after the `:`.
        remaining: usize,
    },
    /// Lists and dictionaries nested deeper than the decoder's limit.
    #[error("nesting deeper than the limit of {limit}")]
    TooDeep {
        /// The limit in force.
        limit: usize,
    },
    /// A dictionary key that is not a byte string.
    #[error("dictionary key is not a byte string")]
    KeyNotString,
    /// A dictionary key with no value after it.
    #[error("dictionary key has no value")]
    MissingValue,
    /// Strict mode: a key that sorts before the one preceding it.
    #[error("dictionary keys are not sorted")]
    UnsortedKey,
    /// Strict mode: the same key twice in one dictionary.
    #[error("duplicate dictionary key")]
    DuplicateKey,
    /// Strict mode: bytes after the value.
    #[error("{count} trailing bytes after the value")]
    TrailingBytes {
        /// How many bytes follow the value.
        count: usize,
    },
}
