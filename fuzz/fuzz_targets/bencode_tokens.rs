//! `Decoder::tokens` (the pull parser), lenient or strict and with a
//! nesting limit chosen by the first byte. Property: it accepts exactly
//! what the tree decoder with the same options accepts, fails with the
//! same error (kind and offset), and ends where the value ends.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustico_bencode::Decoder;

fuzz_target!(|data: &[u8]| {
    let Some((&options, input)) = data.split_first() else {
        return;
    };
    let decoder = Decoder::new()
        .strict(options & 1 == 1)
        .max_depth(usize::from(options >> 1));
    let mut tokens = decoder.tokens(input);
    let walked = loop {
        match tokens.next_token() {
            Ok(Some(_)) => {}
            Ok(None) => break Ok(tokens.offset()),
            Err(err) => break Err(err),
        }
    };
    assert_eq!(
        tokens.next_token(),
        Ok(None),
        "a finished walk stays finished"
    );
    let decoded = decoder.decode_prefix(input).map(|(value, used)| {
        assert_eq!(value.raw().len(), used);
        used
    });
    match (walked, decoder.decode(input)) {
        (Ok(end), Ok(_)) => assert_eq!(Ok(end), decoded),
        (Err(a), Err(b)) => assert_eq!(a, b),
        (walked, tree) => panic!("tokens {walked:?} but tree {tree:?}"),
    }
});
