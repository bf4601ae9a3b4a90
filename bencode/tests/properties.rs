//! Property tests: round trips, raw spans, lenient versus strict on
//! non-canonical encodings of the same value, and arbitrary bytes never
//! panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{apply, canonical_document, edits, grammar_soup, owned_value};
use proptest::prelude::*;
use rustico_bencode::{
    decode, decode_prefix, decode_strict, encode, encode_into, Decoder, Kind, OwnedValue, Token,
    Value,
};

/// Checks that every value in the tree knows its exact input bytes, and
/// that those bytes decode on their own to the same value.
fn check_spans(input: &[u8], value: &Value<'_>) {
    let end = value.offset() + value.raw().len();
    assert_eq!(&input[value.offset()..end], value.raw());
    let alone = decode(value.raw()).unwrap();
    assert_eq!(alone.raw(), value.raw());
    assert_eq!(alone.to_owned_value(), value.to_owned_value());
    match value.kind() {
        Kind::Integer(_) => assert_eq!(value.raw()[0], b'i'),
        Kind::Bytes(bytes) => assert!(value.raw().ends_with(bytes)),
        Kind::List(items) => {
            for item in items {
                check_spans(input, item);
            }
        }
        Kind::Dict(dict) => {
            for (_, item) in dict.iter() {
                check_spans(input, item);
            }
        }
    }
}

/// Checks that every value in the tree, decoded alone with
/// [`Decoder::decode_at`] from its offset in the whole input, is the same
/// value with the same offsets and spans (what lets a caller decode one
/// item of a long list at a time).
fn check_decode_at(input: &[u8], value: &Value<'_>) {
    let (alone, end) = Decoder::new().decode_at(input, value.offset()).unwrap();
    assert_eq!(&alone, value);
    assert_eq!(end, value.offset() + value.raw().len());
    match value.kind() {
        Kind::List(items) => items.iter().for_each(|item| check_decode_at(input, item)),
        Kind::Dict(dict) => dict
            .iter()
            .for_each(|(_, item)| check_decode_at(input, item)),
        Kind::Integer(_) | Kind::Bytes(_) => {}
    }
}

/// The tokens a walk of `value` should produce, in order, with their
/// offsets (`None` for keys: the tree does not keep where a key starts).
fn expected_tokens<'a>(value: &Value<'a>, out: &mut Vec<(Option<usize>, Token<'a>)>) {
    let at = Some(value.offset());
    match value.kind() {
        Kind::Integer(n) => out.push((at, Token::Integer(*n))),
        Kind::Bytes(bytes) => out.push((at, Token::Bytes(bytes))),
        Kind::List(items) => {
            out.push((at, Token::List));
            items.iter().for_each(|item| expected_tokens(item, out));
        }
        Kind::Dict(dict) => {
            out.push((at, Token::Dict));
            for (key, item) in dict.iter() {
                out.push((None, Token::Key(key)));
                expected_tokens(item, out);
            }
        }
    }
    if matches!(value.kind(), Kind::List(_) | Kind::Dict(_)) {
        out.push((Some(value.offset() + value.raw().len() - 1), Token::End));
    }
}

/// The pull parser accepts what the tree decoder accepts, yields the tree
/// in pre-order, and fails with the same error.
fn check_tokens(input: &[u8], strict: bool) {
    let decoder = Decoder::new().strict(strict);
    let walked: Result<Vec<(usize, Token<'_>)>, _> = decoder.tokens(input).collect();
    match decoder.decode(input) {
        Ok(value) => {
            let walked = walked.unwrap();
            let mut expected = Vec::new();
            expected_tokens(&value, &mut expected);
            assert_eq!(walked.len(), expected.len());
            for ((offset, token), (want_offset, want_token)) in walked.iter().zip(&expected) {
                assert_eq!(token, want_token);
                if let Some(want) = want_offset {
                    assert_eq!(offset, want);
                }
            }
        }
        Err(err) => assert_eq!(walked.unwrap_err(), err, "{input:?}"),
    }
}

/// A deterministic choice source for [`sloppy_encode`].
struct Choices(u64);

impl Choices {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn chance(&mut self, one_in: u64) -> bool {
        self.next() % one_in == 0
    }
}

/// Encodes `value` the way a careless encoder might: dictionary keys in
/// reverse or rotated order, leading zeros on numbers and lengths, `i-0e`
/// for zero. Decodes, leniently, to the same value.
fn sloppy_encode(value: &OwnedValue, choices: &mut Choices, out: &mut Vec<u8>) {
    let zeros = |choices: &mut Choices, out: &mut Vec<u8>| {
        if choices.chance(4) {
            out.extend(std::iter::repeat_n(b'0', 1 + choices.next() as usize % 3));
        }
    };
    match value {
        OwnedValue::Integer(n) => {
            out.push(b'i');
            // Zero is sometimes written "-0".
            if *n < 0 || (*n == 0 && choices.chance(3)) {
                out.push(b'-');
            }
            zeros(choices, out);
            out.extend(n.unsigned_abs().to_string().bytes());
            out.push(b'e');
        }
        OwnedValue::Bytes(bytes) => {
            zeros(choices, out);
            out.extend(bytes.len().to_string().bytes());
            out.push(b':');
            out.extend(bytes);
        }
        OwnedValue::List(items) => {
            out.push(b'l');
            for item in items {
                sloppy_encode(item, choices, out);
            }
            out.push(b'e');
        }
        OwnedValue::Dict(dict) => {
            out.push(b'd');
            let mut entries: Vec<_> = dict.iter().collect();
            if choices.chance(2) {
                entries.reverse();
            } else if !entries.is_empty() {
                let by = choices.next() as usize % entries.len();
                entries.rotate_left(by);
            }
            for (key, item) in entries {
                zeros(choices, out);
                out.extend(key.len().to_string().bytes());
                out.push(b':');
                out.extend(key);
                sloppy_encode(item, choices, out);
            }
            out.push(b'e');
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn owned_values_round_trip(value in owned_value()) {
        let bytes = encode(&value);
        let decoded = decode_strict(&bytes).unwrap();
        prop_assert_eq!(decoded.to_owned_value(), value.clone());
        prop_assert_eq!(decoded.raw(), &bytes[..]);
        prop_assert_eq!(decoded.offset(), 0);
        // Encoding the borrowed tree, or into a used buffer, gives the same bytes.
        prop_assert_eq!(encode(&decoded), bytes.clone());
        let mut out = b"prefix".to_vec();
        encode_into(&value, &mut out);
        prop_assert_eq!(&out[6..], &bytes[..]);
    }

    #[test]
    fn canonical_input_re_encodes_to_itself(doc in canonical_document()) {
        let value = decode_strict(&doc).unwrap();
        prop_assert_eq!(encode(&value), doc.clone());
        prop_assert_eq!(encode(&value.to_owned_value()), doc.clone());
        let lenient = decode(&doc).unwrap();
        prop_assert_eq!(lenient, value);
    }

    #[test]
    fn every_value_knows_its_span(doc in canonical_document(), seed in any::<u64>()) {
        let value = decode_strict(&doc).unwrap();
        check_spans(&doc, &value);
        // Spans stay exact in sloppy input, where re-encoding would differ.
        let mut sloppy = Vec::new();
        sloppy_encode(&value.to_owned_value(), &mut Choices(seed), &mut sloppy);
        let value = decode(&sloppy).unwrap();
        check_spans(&sloppy, &value);
        check_decode_at(&sloppy, &value);
        check_tokens(&doc, true);
        check_tokens(&sloppy, false);
        check_tokens(&sloppy, true);
    }

    #[test]
    fn lenient_reads_sloppy_encodings_and_strict_only_canonical(
        value in owned_value(),
        seed in any::<u64>(),
    ) {
        let mut sloppy = Vec::new();
        sloppy_encode(&value, &mut Choices(seed), &mut sloppy);
        let lenient = decode(&sloppy).unwrap();
        prop_assert_eq!(lenient.to_owned_value(), value.clone());
        let canonical = encode(&value);
        prop_assert_eq!(encode(&lenient), canonical.clone());
        prop_assert_eq!(decode_strict(&sloppy).is_ok(), sloppy == canonical);
    }

    #[test]
    fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..256)) {
        check_any_input(&input);
    }

    #[test]
    fn grammar_soup_never_panics(input in grammar_soup()) {
        check_any_input(&input);
    }

    #[test]
    fn mutated_documents_never_panic(doc in canonical_document(), edits in edits()) {
        check_any_input(&apply(doc, &edits));
    }
}

/// Whatever the input: no panic, and what is accepted is self-consistent.
fn check_any_input(input: &[u8]) {
    check_tokens(input, false);
    check_tokens(input, true);
    let lenient = decode(input);
    let strict = decode_strict(input);
    let prefix = decode_prefix(input);
    match (&lenient, &prefix) {
        (Ok(value), Ok((prefixed, used))) => {
            assert_eq!(value, prefixed);
            assert_eq!(value.raw(), &input[..*used]);
            check_spans(input, value);
        }
        (Err(a), Err(b)) => {
            assert_eq!(a, b);
            assert!(a.offset <= input.len());
        }
        _ => panic!("decode and decode_prefix disagree: {lenient:?} {prefix:?}"),
    }
    match strict {
        // Strict acceptance means canonical: re-encoding gives the input back.
        Ok(value) => {
            assert_eq!(encode(&value), input);
            assert_eq!(lenient.as_ref().ok(), Some(&value));
        }
        Err(err) => assert!(err.offset <= input.len()),
    }
}
