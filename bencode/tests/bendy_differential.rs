//! Differential tests against bendy, a bencode implementation nobody here
//! wrote. bendy only reads canonical bencode, so it is compared with our
//! strict mode: wherever bendy accepts, we must decode the same structure,
//! and every accept/reject disagreement must be one of the differences
//! listed in the crate README (each asserted below, none skipped).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bendy::decoding::{Decoder as BendyDecoder, Object};
use common::{apply, canonical_document, edits, grammar_soup};
use proptest::prelude::*;
use rustico_bencode::{decode, Decoder, ErrorKind, OwnedDict, OwnedValue};

/// bendy's default nesting limit.
const BENDY_MAX_DEPTH: usize = 2048;

/// What bendy made of an input.
#[derive(Debug, PartialEq)]
enum Bendy {
    /// A single complete value spanning the whole input.
    Accepted(OwnedValue),
    /// Well-formed for bendy, but holding an integer outside `i64`, which
    /// bendy hands out as text (README difference 1).
    BigInteger,
    /// Rejected, or not exactly one value.
    Rejected,
}

enum Walk {
    Value(OwnedValue),
    BigInteger,
}

fn walk(object: Object<'_, '_>) -> Result<Walk, bendy::decoding::Error> {
    Ok(match object {
        Object::Integer(text) => match text.parse::<i64>() {
            Ok(n) => Walk::Value(OwnedValue::Integer(n)),
            Err(_) => Walk::BigInteger,
        },
        Object::Bytes(bytes) => Walk::Value(OwnedValue::Bytes(bytes.to_vec())),
        Object::List(mut list) => {
            let mut items = Vec::new();
            let mut big = false;
            while let Some(item) = list.next_object()? {
                match walk(item)? {
                    Walk::Value(v) => items.push(v),
                    Walk::BigInteger => big = true,
                }
            }
            if big {
                Walk::BigInteger
            } else {
                Walk::Value(OwnedValue::List(items))
            }
        }
        Object::Dict(mut dict) => {
            let mut entries = OwnedDict::new();
            let mut big = false;
            while let Some((key, item)) = dict.next_pair()? {
                match walk(item)? {
                    Walk::Value(v) => {
                        entries.insert(key.to_vec(), v);
                    }
                    Walk::BigInteger => big = true,
                }
            }
            if big {
                Walk::BigInteger
            } else {
                Walk::Value(OwnedValue::Dict(entries))
            }
        }
    })
}

/// Runs bendy over the whole input: exactly one value, fully walked.
fn bendy(input: &[u8]) -> Bendy {
    let mut decoder = BendyDecoder::new(input);
    let walked = match decoder.next_object() {
        Ok(Some(object)) => walk(object),
        _ => return Bendy::Rejected,
    };
    let outcome = match walked {
        Ok(Walk::Value(v)) => Bendy::Accepted(v),
        Ok(Walk::BigInteger) => Bendy::BigInteger,
        Err(_) => return Bendy::Rejected,
    };
    let at_end = matches!(decoder.next_object(), Ok(None));
    if at_end {
        outcome
    } else {
        Bendy::Rejected // a second value, or garbage, after the first
    }
}

/// Our strict decoder with bendy's nesting limit, so depth is not a difference.
fn ours_like_bendy(input: &[u8]) -> Result<OwnedValue, ErrorKind> {
    Decoder::new()
        .strict(true)
        .max_depth(BENDY_MAX_DEPTH)
        .decode(input)
        .map(|v| v.to_owned_value())
        .map_err(|e| e.kind)
}

/// The comparison every property test makes.
fn compare(input: &[u8]) {
    match (bendy(input), ours_like_bendy(input)) {
        (Bendy::Accepted(theirs), Ok(ours)) => assert_eq!(ours, theirs, "{input:?}"),
        (Bendy::Rejected, Err(_)) => {}
        // README difference 1: integers beyond i64.
        (Bendy::BigInteger, Err(ErrorKind::IntegerOverflow)) => {}
        (theirs, ours) => {
            panic!("undocumented difference on {input:?}: bendy {theirs:?}, ours {ours:?}")
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn canonical_documents_agree(doc in canonical_document()) {
        let theirs = bendy(&doc);
        prop_assert!(matches!(theirs, Bendy::Accepted(_)), "bendy rejected canonical {:?}", doc);
        compare(&doc);
    }

    #[test]
    fn mutated_documents_agree(doc in canonical_document(), edits in edits()) {
        compare(&apply(doc, &edits));
    }

    #[test]
    fn grammar_soup_agrees(input in grammar_soup()) {
        compare(&input);
    }
}

#[test]
fn torrent_shaped_documents_agree() {
    let file = |len: i64, path: &[&str]| {
        OwnedValue::dict([
            ("length", OwnedValue::from(len)),
            (
                "path",
                OwnedValue::list(path.iter().map(|&p| OwnedValue::from(p))),
            ),
        ])
    };
    let torrent = OwnedValue::dict([
        (
            "announce",
            OwnedValue::from("http://tracker.example/announce"),
        ),
        (
            "info",
            OwnedValue::dict([
                (
                    "files",
                    OwnedValue::list([file(5, &["a", "b.txt"]), file(70_000, &["c.bin"])]),
                ),
                ("name", OwnedValue::from("x")),
                ("piece length", OwnedValue::from(16_384)),
                ("pieces", OwnedValue::bytes(vec![0xaa; 100])),
            ]),
        ),
    ]);
    let tracker = OwnedValue::dict([
        ("interval", OwnedValue::from(1800)),
        ("peers", OwnedValue::bytes(vec![127, 0, 0, 1, 0x1a, 0xe1])),
    ]);
    for value in [torrent, tracker] {
        let doc = rustico_bencode::encode(&value);
        assert_eq!(bendy(&doc), Bendy::Accepted(value));
        compare(&doc);
    }
}

/// README difference 1: bendy hands out integers as text, any length; we
/// decode them to `i64` and reject the rest.
#[test]
fn difference_integers_beyond_i64() {
    for input in [
        &b"i9223372036854775808e"[..],
        b"i-9223372036854775809e",
        b"li123456789012345678901234567890ee",
    ] {
        assert_eq!(bendy(input), Bendy::BigInteger);
        assert_eq!(ours_like_bendy(input), Err(ErrorKind::IntegerOverflow));
        assert_eq!(decode(input).unwrap_err().kind, ErrorKind::IntegerOverflow);
    }
}

/// README difference 2: nesting limits. bendy allows 2048 levels; our
/// default is 256 (configurable up to 4096).
#[test]
fn difference_nesting_limit() {
    // Walking 2048 levels recursively (bendy's walk, to_owned_value) needs
    // more than a test thread's default stack.
    std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(nesting_limit)
        .unwrap()
        .join()
        .unwrap();
}

fn nesting_limit() {
    let nested = |depth: usize| [b"l".repeat(depth), b"e".repeat(depth)].concat();
    let deep = nested(DEFAULT_DEPTH_PLUS_ONE);
    assert!(matches!(bendy(&deep), Bendy::Accepted(_)));
    assert_eq!(
        decode(&deep).unwrap_err().kind,
        ErrorKind::TooDeep {
            limit: rustico_bencode::DEFAULT_MAX_DEPTH
        }
    );
    // With bendy's limit, the two agree on both sides of it.
    assert!(ours_like_bendy(&nested(BENDY_MAX_DEPTH)).is_ok());
    assert!(matches!(
        bendy(&nested(BENDY_MAX_DEPTH)),
        Bendy::Accepted(_)
    ));
    assert_eq!(bendy(&nested(BENDY_MAX_DEPTH + 1)), Bendy::Rejected);
    assert!(ours_like_bendy(&nested(BENDY_MAX_DEPTH + 1)).is_err());
}

const DEFAULT_DEPTH_PLUS_ONE: usize = rustico_bencode::DEFAULT_MAX_DEPTH + 1;

/// README difference 3: our lenient mode (the default) accepts
/// non-canonical input that bendy, which is always strict, rejects; our
/// strict mode rejects it as bendy does.
#[test]
fn difference_lenient_mode_accepts_non_canonical_input() {
    for input in [
        &b"d1:bi1e1:ai2ee"[..], // unsorted keys
        b"d1:ai1e1:ai2ee",      // duplicate key
        b"i03e",                // leading zero in an integer
        b"03:abc",              // leading zero in a length
        b"i-0e",                // negative zero
        b"i1ei2e",              // bytes after the value
        b"le\n",                // bytes after the value
    ] {
        assert_eq!(bendy(input), Bendy::Rejected, "{input:?}");
        assert!(decode(input).is_ok(), "{input:?}");
        assert!(ours_like_bendy(input).is_err(), "{input:?}");
    }
}

/// Not a difference, pinned so it stays that way: empty input, empty keys
/// and empty containers.
#[test]
fn agreements_on_edge_cases() {
    assert_eq!(bendy(b""), Bendy::Rejected);
    assert!(ours_like_bendy(b"").is_err());
    for input in [&b"de"[..], b"le", b"0:", b"d0:0:e", b"i0e", b"d0:lee"] {
        assert!(matches!(bendy(input), Bendy::Accepted(_)), "{input:?}");
        compare(input);
    }
}
