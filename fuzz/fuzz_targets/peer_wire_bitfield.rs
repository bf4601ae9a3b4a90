//! `Bitfield::from_wire` (a `bitfield` message checked against the piece
//! count). The first byte picks the piece count: near the payload's size
//! in bits, or `u32::MAX`. Property: an accepted bitfield keeps the bytes
//! and counts, lists and tests the same set bits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustico_peer_wire::Bitfield;

fuzz_target!(|data: &[u8]| {
    let Some((&choice, bytes)) = data.split_first() else {
        return;
    };
    let pieces = match choice {
        255 => u32::MAX,
        _ => (bytes.len() as u32 * 8).saturating_sub(u32::from(choice % 9)),
    };
    let Ok(bitfield) = Bitfield::from_wire(bytes, pieces) else {
        return;
    };
    assert_eq!(bitfield.as_wire(), bytes);
    assert_eq!(bitfield.len(), pieces);
    let set: Vec<u32> = bitfield.iter_set().collect();
    assert_eq!(set.len() as u32, bitfield.count());
    assert!(set
        .iter()
        .all(|&piece| piece < pieces && bitfield.get(piece)));
    assert_eq!(bitfield.iter().filter(|&bit| bit).count(), set.len());
    assert_eq!(bitfield.is_complete(), bitfield.count() == pieces);
});
