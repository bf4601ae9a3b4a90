//! The pull parser on small documents, token by token.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rustico_bencode::{Decoder, Error, ErrorKind, Token};

#[test]
fn tokens_come_in_order_with_offsets() {
    let input = b"d1:ali1e2:xye1:bi-3ee";
    let tokens: Vec<_> = Decoder::new()
        .tokens(input)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        tokens,
        vec![
            (0, Token::Dict),
            (1, Token::Key(b"a")),
            (4, Token::List),
            (5, Token::Integer(1)),
            (8, Token::Bytes(b"xy")),
            (12, Token::End),
            (13, Token::Key(b"b")),
            (16, Token::Integer(-3)),
            (20, Token::End),
        ]
    );
}

#[test]
fn a_scalar_root_is_one_token() {
    let mut tokens = Decoder::new().tokens(b"4:spam");
    assert_eq!(tokens.next_token(), Ok(Some((0, Token::Bytes(b"spam")))));
    assert_eq!(tokens.next_token(), Ok(None));
    assert_eq!(tokens.offset(), 6);
    assert_eq!(tokens.next_token(), Ok(None));
}

#[test]
fn trailing_bytes_end_a_lenient_walk_and_fail_a_strict_one() {
    let lenient: Vec<_> = Decoder::new().tokens(b"lei1e").collect();
    assert_eq!(lenient, vec![Ok((0, Token::List)), Ok((1, Token::End))]);
    let strict: Vec<_> = Decoder::new().strict(true).tokens(b"lei1e").collect();
    assert_eq!(
        strict,
        vec![
            Ok((0, Token::List)),
            Ok((1, Token::End)),
            Err(Error {
                kind: ErrorKind::TrailingBytes { count: 3 },
                offset: 2
            }),
        ]
    );
}

#[test]
fn errors_arrive_at_the_token_that_breaks() {
    let walk: Vec<_> = Decoder::new()
        .strict(true)
        .tokens(b"d1:bi1e1:ai2ee")
        .collect();
    assert_eq!(
        walk,
        vec![
            Ok((0, Token::Dict)),
            Ok((1, Token::Key(b"b"))),
            Ok((4, Token::Integer(1))),
            Err(Error {
                kind: ErrorKind::UnsortedKey,
                offset: 7
            }),
        ]
    );
    let walk: Vec<_> = Decoder::new().tokens(b"d1:ae").collect();
    assert_eq!(
        walk.last(),
        Some(&Err(Error {
            kind: ErrorKind::MissingValue,
            offset: 4
        }))
    );
}
