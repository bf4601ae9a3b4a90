//! `rustico_bencode::decode` (lenient tree decoder). Property: whatever it
//! accepts encodes to canonical bytes that the strict decoder accepts, that
//! re-encode to themselves and hold the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustico_bencode::{decode, decode_strict, encode};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = decode(data) else { return };
    assert!(value.raw().len() <= data.len());
    let canonical = encode(&value);
    let again = decode_strict(&canonical).expect("canonical output is strict bencode");
    assert_eq!(encode(&again), canonical);
    assert_eq!(again.to_owned_value(), value.to_owned_value());
    assert_eq!(encode(&value.to_owned_value()), canonical);
});
