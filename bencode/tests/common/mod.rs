//! Strategies and helpers shared by the bencode integration tests.
#![allow(dead_code)]

use proptest::prelude::*;
use rustico_bencode::{encode, OwnedValue};

/// Any owned value: integers over the whole `i64` range, short byte
/// strings of any bytes, and lists and dictionaries nested a few levels.
pub fn owned_value() -> impl Strategy<Value = OwnedValue> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(OwnedValue::Integer),
        (-3i64..300).prop_map(OwnedValue::Integer),
        proptest::collection::vec(any::<u8>(), 0..12).prop_map(OwnedValue::Bytes),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(OwnedValue::List),
            proptest::collection::btree_map(
                proptest::collection::vec(any::<u8>(), 0..6),
                inner,
                0..6
            )
            .prop_map(OwnedValue::Dict),
        ]
    })
}

/// Canonical encodings of [`owned_value`].
pub fn canonical_document() -> impl Strategy<Value = Vec<u8>> {
    owned_value().prop_map(|v| encode(&v))
}

/// One edit to a document: overwrite, insert or delete a byte.
#[derive(Debug, Clone)]
pub enum Edit {
    /// Replace the byte at (index mod len).
    Overwrite(usize, u8),
    /// Insert a byte at (index mod len+1).
    Insert(usize, u8),
    /// Delete the byte at (index mod len).
    Delete(usize),
}

/// Bytes that matter to bencode's grammar, so edits hit structure often.
pub fn grammar_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        proptest::sample::select(b"ilde0123456789:-".to_vec()),
        any::<u8>(),
    ]
}

/// A few edits.
pub fn edits() -> impl Strategy<Value = Vec<Edit>> {
    proptest::collection::vec(
        prop_oneof![
            (any::<usize>(), grammar_byte()).prop_map(|(i, b)| Edit::Overwrite(i, b)),
            (any::<usize>(), grammar_byte()).prop_map(|(i, b)| Edit::Insert(i, b)),
            any::<usize>().prop_map(Edit::Delete),
        ],
        1..4,
    )
}

/// Applies `edits` to `doc`.
pub fn apply(mut doc: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for edit in edits {
        match *edit {
            Edit::Overwrite(i, b) if !doc.is_empty() => {
                let at = i % doc.len();
                doc[at] = b;
            }
            Edit::Insert(i, b) => {
                let at = i % (doc.len() + 1);
                doc.insert(at, b);
            }
            Edit::Delete(i) if !doc.is_empty() => {
                let at = i % doc.len();
                doc.remove(at);
            }
            _ => {}
        }
    }
    doc
}

/// Short byte strings drawn mostly from bencode's grammar.
pub fn grammar_soup() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![
            4 => proptest::sample::select(b"ilde0123456789:-".to_vec()),
            1 => any::<u8>(),
        ],
        0..40,
    )
}
