//! `rustico_bencode::decode_strict`. Property: input it accepts is
//! canonical, so it encodes back to exactly the input bytes, and the
//! lenient decoder reads the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustico_bencode::{decode, decode_strict, encode};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = decode_strict(data) else {
        return;
    };
    assert_eq!(encode(&value), data);
    let lenient = decode(data).expect("strict input is lenient input");
    assert_eq!(lenient, value);
});
