//! Hostile input: deep nesting is an error and not a stack overflow, and a
//! length prefix is checked against the input before anything is allocated.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rustico_bencode::{
    decode, decode_strict, Decoder, Error, ErrorKind, DEFAULT_MAX_DEPTH, MAX_DEPTH_CAP,
};

const ONE_MB: usize = 1 << 20;

#[test]
fn a_megabyte_of_list_openers_is_too_deep() {
    let input = vec![b'l'; ONE_MB];
    let expected = Error {
        kind: ErrorKind::TooDeep {
            limit: DEFAULT_MAX_DEPTH,
        },
        offset: DEFAULT_MAX_DEPTH,
    };
    assert_eq!(decode(&input).unwrap_err(), expected);
    assert_eq!(decode_strict(&input).unwrap_err(), expected);
}

#[test]
fn a_megabyte_of_nested_dictionaries_is_too_deep() {
    let input = b"d1:a".repeat(ONE_MB / 4);
    assert_eq!(
        decode(&input).unwrap_err(),
        Error {
            kind: ErrorKind::TooDeep {
                limit: DEFAULT_MAX_DEPTH
            },
            offset: 4 * DEFAULT_MAX_DEPTH,
        }
    );
    // Even at the highest limit, the error comes at the limit.
    let decoder = Decoder::new().max_depth(usize::MAX);
    assert_eq!(
        decoder.decode(&input).unwrap_err(),
        Error {
            kind: ErrorKind::TooDeep {
                limit: MAX_DEPTH_CAP
            },
            offset: 4 * MAX_DEPTH_CAP,
        }
    );
}

#[test]
fn nesting_up_to_the_limit_decodes_and_drops() {
    for limit in [1, DEFAULT_MAX_DEPTH, MAX_DEPTH_CAP] {
        let mut input = b"l".repeat(limit);
        input.extend(b"i7e");
        input.extend(b"e".repeat(limit));
        let value = Decoder::new().max_depth(limit).decode(&input).unwrap();
        assert_eq!(value.raw().len(), input.len());
        let mut inner = &value;
        for _ in 0..limit {
            inner = &inner.as_list().unwrap()[0];
        }
        assert_eq!(inner.as_integer(), Some(7));
        assert_eq!(inner.offset(), limit);
        // One more level is refused.
        let deeper = [b"l".as_slice(), &input, b"e"].concat();
        assert_eq!(
            Decoder::new()
                .max_depth(limit)
                .decode(&deeper)
                .unwrap_err()
                .kind,
            ErrorKind::TooDeep { limit }
        );
    }
}

#[test]
fn a_deep_but_unclosed_input_ends_cleanly() {
    let input = b"l".repeat(DEFAULT_MAX_DEPTH);
    assert_eq!(
        decode(&input).unwrap_err(),
        Error {
            kind: ErrorKind::UnexpectedEnd,
            offset: DEFAULT_MAX_DEPTH
        }
    );
}

#[test]
fn huge_length_prefixes_fail_without_allocating() {
    // Were any of these lengths allocated, the test would abort (capacity
    // overflow or out of memory) instead of returning an error.
    for (input, claimed) in [
        (&b"1000000000000:abc"[..], 1_000_000_000_000u64),
        (b"18446744073709551615:", u64::MAX),
        (b"4294967296:x", 1 << 32),
        (b"l9223372036854775807:e", i64::MAX as u64),
    ] {
        let err = decode(input).unwrap_err();
        assert!(
            matches!(err.kind, ErrorKind::StringTooLong { claimed: c, .. } if c == claimed),
            "{err}"
        );
    }
    // A megabyte of digits saturates instead of overflowing.
    let mut digits = vec![b'9'; ONE_MB];
    digits.push(b':');
    assert_eq!(
        decode(&digits).unwrap_err(),
        Error {
            kind: ErrorKind::StringTooLong {
                claimed: u64::MAX,
                remaining: 0
            },
            offset: 0
        }
    );
}

#[test]
fn a_megabyte_of_integer_digits_is_an_overflow() {
    let mut input = vec![b'i'];
    input.extend(vec![b'1'; ONE_MB]);
    input.push(b'e');
    assert_eq!(
        decode(&input).unwrap_err(),
        Error {
            kind: ErrorKind::IntegerOverflow,
            offset: 1
        }
    );
}

#[test]
fn a_wide_list_decodes() {
    // Width costs memory in proportion to the input, never the stack.
    let mut input = b"l".to_vec();
    input.extend(b"i1e".repeat(100_000));
    input.push(b'e');
    let value = decode_strict(&input).unwrap();
    let items = value.as_list().unwrap();
    assert_eq!(items.len(), 100_000);
    assert_eq!(items[99_999].offset(), 1 + 3 * 99_999);
}

#[test]
fn the_pull_parser_has_the_same_limits() {
    let expected = Error {
        kind: ErrorKind::TooDeep {
            limit: DEFAULT_MAX_DEPTH,
        },
        offset: DEFAULT_MAX_DEPTH,
    };
    let mut tokens = Decoder::new().tokens(&[b'l'; ONE_MB]);
    let outcome: Result<Vec<_>, _> = tokens.by_ref().collect();
    assert_eq!(outcome.unwrap_err(), expected);
    // The walk is over after an error.
    assert_eq!(tokens.next_token(), Ok(None));
    let outcome: Result<Vec<_>, _> = Decoder::new().tokens(b"99999999999999:x").collect();
    assert_eq!(
        outcome.unwrap_err().kind,
        ErrorKind::StringTooLong {
            claimed: 99_999_999_999_999,
            remaining: 1
        }
    );
}
