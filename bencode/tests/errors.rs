//! Every error kind, with the exact byte offset it reports, in both modes
//! where both reject, and only strict where lenient accepts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rustico_bencode::{decode, decode_prefix, decode_strict, Decoder, Error, ErrorKind};

/// Both modes must reject `input` with `kind` at `offset`.
#[track_caller]
fn both_reject(input: &[u8], kind: ErrorKind, offset: usize) {
    let expected = Error { kind, offset };
    assert_eq!(decode(input).unwrap_err(), expected, "lenient, {input:?}");
    assert_eq!(
        decode_strict(input).unwrap_err(),
        expected,
        "strict, {input:?}"
    );
}

/// Strict must reject `input` with `kind` at `offset`; lenient must accept it.
#[track_caller]
fn only_strict_rejects(input: &[u8], kind: ErrorKind, offset: usize) {
    assert!(decode(input).is_ok(), "lenient should accept {input:?}");
    assert_eq!(
        decode_strict(input).unwrap_err(),
        Error { kind, offset },
        "strict, {input:?}"
    );
}

#[test]
fn unexpected_end_points_at_the_end_of_input() {
    both_reject(b"", ErrorKind::UnexpectedEnd, 0);
    both_reject(b"i12", ErrorKind::UnexpectedEnd, 3);
    both_reject(b"i-", ErrorKind::UnexpectedEnd, 2);
    both_reject(b"4", ErrorKind::UnexpectedEnd, 1);
    both_reject(b"l", ErrorKind::UnexpectedEnd, 1);
    both_reject(b"li1e", ErrorKind::UnexpectedEnd, 4);
    both_reject(b"d", ErrorKind::UnexpectedEnd, 1);
    both_reject(b"d1:a", ErrorKind::UnexpectedEnd, 4);
    both_reject(b"d1:ai1e", ErrorKind::UnexpectedEnd, 7);
    both_reject(b"ld1:ali", ErrorKind::UnexpectedEnd, 7);
}

#[test]
fn unexpected_byte_names_the_byte_and_its_position() {
    both_reject(b"x", ErrorKind::UnexpectedByte { byte: b'x' }, 0);
    both_reject(b"e", ErrorKind::UnexpectedByte { byte: b'e' }, 0);
    both_reject(b"-1:a", ErrorKind::UnexpectedByte { byte: b'-' }, 0);
    both_reject(b"i1x2e", ErrorKind::UnexpectedByte { byte: b'x' }, 2);
    both_reject(b"i+1e", ErrorKind::UnexpectedByte { byte: b'+' }, 1);
    both_reject(b"i--1e", ErrorKind::UnexpectedByte { byte: b'-' }, 2);
    both_reject(b"i1.5e", ErrorKind::UnexpectedByte { byte: b'.' }, 2);
    both_reject(b"12a:x", ErrorKind::UnexpectedByte { byte: b'a' }, 2);
    both_reject(b"l4:spamxe", ErrorKind::UnexpectedByte { byte: b'x' }, 7);
    both_reject(b"d1:a\xffe", ErrorKind::UnexpectedByte { byte: 0xff }, 4);
}

#[test]
fn empty_integer_points_after_the_sign() {
    both_reject(b"ie", ErrorKind::EmptyInteger, 1);
    both_reject(b"i-e", ErrorKind::EmptyInteger, 2);
    both_reject(b"li1eie", ErrorKind::EmptyInteger, 5);
}

#[test]
fn integer_overflow_points_at_the_first_digit() {
    both_reject(b"i9223372036854775808e", ErrorKind::IntegerOverflow, 1);
    both_reject(b"i-9223372036854775809e", ErrorKind::IntegerOverflow, 2);
    both_reject(
        b"i99999999999999999999999999e",
        ErrorKind::IntegerOverflow,
        1,
    );
    both_reject(b"l0:i18446744073709551616ee", ErrorKind::IntegerOverflow, 4);
}

#[test]
fn i64_extremes_decode_and_round_trip() {
    for (text, n) in [
        (&b"i9223372036854775807e"[..], i64::MAX),
        (b"i-9223372036854775808e", i64::MIN),
        (b"i0e", 0),
        (b"i-1e", -1),
    ] {
        let value = decode_strict(text).unwrap();
        assert_eq!(value.as_integer(), Some(n));
        assert_eq!(rustico_bencode::encode(&value), text);
        assert_eq!(rustico_bencode::encode(&n), text);
    }
}

#[test]
fn leading_zero_is_strict_only() {
    only_strict_rejects(b"i03e", ErrorKind::LeadingZero, 1);
    only_strict_rejects(b"i00e", ErrorKind::LeadingZero, 1);
    only_strict_rejects(b"i-03e", ErrorKind::LeadingZero, 2);
    only_strict_rejects(b"03:abc", ErrorKind::LeadingZero, 0);
    only_strict_rejects(b"00:", ErrorKind::LeadingZero, 0);
    only_strict_rejects(b"l1:a02:bce", ErrorKind::LeadingZero, 4);
    // A single zero is canonical.
    assert_eq!(decode_strict(b"0:").unwrap().as_bytes(), Some(&b""[..]));
    assert_eq!(decode(b"i007e").unwrap().as_integer(), Some(7));
    assert_eq!(decode(b"03:abc").unwrap().as_bytes(), Some(&b"abc"[..]));
}

#[test]
fn negative_zero_is_strict_only_and_points_at_the_sign() {
    only_strict_rejects(b"i-0e", ErrorKind::NegativeZero, 1);
    only_strict_rejects(b"li1ei-0ee", ErrorKind::NegativeZero, 5);
    assert_eq!(decode(b"i-0e").unwrap().as_integer(), Some(0));
    // "-00" is a leading zero first.
    assert_eq!(
        decode_strict(b"i-00e").unwrap_err(),
        Error {
            kind: ErrorKind::LeadingZero,
            offset: 2
        }
    );
}

#[test]
fn string_too_long_is_caught_at_the_prefix() {
    both_reject(
        b"5:abc",
        ErrorKind::StringTooLong {
            claimed: 5,
            remaining: 3,
        },
        0,
    );
    both_reject(
        b"l1:a9:abce",
        ErrorKind::StringTooLong {
            claimed: 9,
            remaining: 4,
        },
        4,
    );
    // Saturates rather than wrapping: a wrapped length could look small.
    both_reject(
        b"99999999999999999999999999:abc",
        ErrorKind::StringTooLong {
            claimed: u64::MAX,
            remaining: 3,
        },
        0,
    );
    // 2^64 + 1 would wrap to 1 and "succeed" on the next byte.
    both_reject(
        b"18446744073709551617:ab",
        ErrorKind::StringTooLong {
            claimed: u64::MAX,
            remaining: 2,
        },
        0,
    );
}

#[test]
fn too_deep_points_at_the_container_over_the_limit() {
    let decoder = Decoder::new().max_depth(3);
    assert!(decoder.decode(b"llleee").is_ok());
    assert_eq!(
        decoder.decode(b"lllleeee").unwrap_err(),
        Error {
            kind: ErrorKind::TooDeep { limit: 3 },
            offset: 3
        }
    );
    assert_eq!(
        decoder.decode(b"d1:ad1:bd1:cd1:di1eeeee").unwrap_err(),
        Error {
            kind: ErrorKind::TooDeep { limit: 3 },
            offset: 12
        }
    );
    // Depth is nesting, not count: many siblings at depth 1 are fine.
    assert!(decoder.decode(b"llelelelelelee").is_ok());
    // A limit of zero allows only scalars.
    let flat = Decoder::new().max_depth(0);
    assert!(flat.decode(b"i1e").is_ok());
    assert_eq!(
        flat.decode(b"le").unwrap_err().kind,
        ErrorKind::TooDeep { limit: 0 }
    );
}

#[test]
fn key_not_string_points_at_the_key() {
    both_reject(b"di1ei2ee", ErrorKind::KeyNotString, 1);
    both_reject(b"dlei1ee", ErrorKind::KeyNotString, 1);
    both_reject(b"d1:ai1ed1:bei1ee", ErrorKind::KeyNotString, 7);
    both_reject(b"d-1:a", ErrorKind::KeyNotString, 1);
}

#[test]
fn missing_value_points_at_the_closing_e() {
    both_reject(b"d1:ae", ErrorKind::MissingValue, 4);
    both_reject(b"d1:ai1e1:be", ErrorKind::MissingValue, 10);
}

#[test]
fn unsorted_and_duplicate_keys_are_strict_only() {
    only_strict_rejects(b"d1:bi1e1:ai2ee", ErrorKind::UnsortedKey, 7);
    only_strict_rejects(b"d1:ai1e1:ai2ee", ErrorKind::DuplicateKey, 7);
    // Raw byte order: "B" (0x42) sorts before "a" (0x61), and a prefix first.
    assert!(decode_strict(b"d1:Bi1e1:ai2ee").is_ok());
    assert!(decode_strict(b"d1:ai1e2:aai2ee").is_ok());
    only_strict_rejects(b"d2:aai1e1:ai2ee", ErrorKind::UnsortedKey, 8);
    // Each dictionary is checked on its own.
    assert!(decode_strict(b"d1:bd1:ai1ee1:cd1:ai1eee").is_ok());
    only_strict_rejects(b"d1:ad1:bi1e1:ai1eee", ErrorKind::UnsortedKey, 11);
}

#[test]
fn trailing_bytes_are_strict_only() {
    only_strict_rejects(b"i1ei2e", ErrorKind::TrailingBytes { count: 3 }, 3);
    only_strict_rejects(b"le\n", ErrorKind::TrailingBytes { count: 1 }, 2);
    // Lenient ignores them but says where the value ended.
    let value = decode(b"4:spamGARBAGE").unwrap();
    assert_eq!(value.raw(), b"4:spam");
    let (value, used) = decode_prefix(b"d1:ai1eeRAW").unwrap();
    assert_eq!((value.raw(), used), (&b"d1:ai1ee"[..], 8));
    // decode_prefix is for embedded values: strict mode leaves the rest too.
    let (_, used) = Decoder::new()
        .strict(true)
        .decode_prefix(b"i1eXYZ")
        .unwrap();
    assert_eq!(used, 3);
}

#[test]
fn errors_print_as_one_line_with_the_offset() {
    let cases: &[&[u8]] = &[
        b"",
        b"x",
        b"ie",
        b"i99999999999999999999e",
        b"5:abc",
        b"d1:ae",
        b"di1ei1ee",
        b"i1ei2e",
    ];
    for input in cases {
        let err = decode_strict(input).unwrap_err();
        let text = err.to_string();
        assert!(!text.contains('\n'), "{text}");
        assert!(
            text.ends_with(&format!(" at byte {}", err.offset)),
            "{text}"
        );
    }
    let err = decode(b"5:abc").unwrap_err();
    assert_eq!(
        err.to_string(),
        "byte string claims 5 bytes but only 3 remain at byte 0"
    );
    assert_eq!(
        decode(b"x").unwrap_err().to_string(),
        "unexpected byte 0x78 at byte 0"
    );
    let deep = Decoder::new().max_depth(1).decode(b"llee").unwrap_err();
    assert_eq!(
        deep.to_string(),
        "nesting deeper than the limit of 1 at byte 1"
    );
}
