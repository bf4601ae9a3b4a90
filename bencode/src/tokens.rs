//! A pull parser: the same grammar, checks and errors as the tree decoder,
//! one token at a time and without building anything.

use std::cmp::Ordering;

use crate::decode::{byte_string, integer, unexpected_end};
use crate::error::{Error, ErrorKind};

/// One step of a [`Tokens`] walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token<'a> {
    /// `i42e`.
    Integer(i64),
    /// A byte string that is a value (not a dictionary key).
    Bytes(&'a [u8]),
    /// A dictionary key; its value's tokens follow.
    Key(&'a [u8]),
    /// `l`: a list opens; its items follow, then [`Token::End`].
    List,
    /// `d`: a dictionary opens; keys and values follow, then [`Token::End`].
    Dict,
    /// `e`: the innermost open list or dictionary closes.
    End,
}

/// Walks one bencode value token by token, allocating only a small stack of
/// open containers (one entry per nesting level).
///
/// For hot paths that read a few fields and skip the rest, or validate a
/// document without keeping it. It accepts exactly what [`crate::Decoder`]
/// accepts, in the same mode and with the same nesting limit, and fails
/// with the same [`Error`] (kind and offset) — at the token where the
/// problem is found, so the tokens before an error may already have been
/// handed out. After the value's last token, strict mode reports trailing
/// bytes as an error; lenient mode ends.
///
/// ```
/// use rustico_bencode::{Decoder, Token};
///
/// let mut tokens = Decoder::new().tokens(b"d8:intervali1800e5:peers0:e");
/// let mut interval = None;
/// while let Some((_offset, token)) = tokens.next_token()? {
///     if token == Token::Key(b"interval") {
///         if let Some((_, Token::Integer(seconds))) = tokens.next_token()? {
///             interval = Some(seconds);
///         }
///     }
/// }
/// assert_eq!(interval, Some(1800));
/// # Ok::<(), rustico_bencode::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Tokens<'a> {
    input: &'a [u8],
    pos: usize,
    strict: bool,
    max_depth: usize,
    levels: Vec<Level<'a>>,
    finished: bool,
}

#[derive(Debug, Clone, Copy)]
struct Level<'a> {
    dict: bool,
    /// In a dictionary: a key was read and its value comes next.
    awaiting_value: bool,
    /// In a dictionary: the last key, for strict mode's order check.
    last_key: Option<&'a [u8]>,
}

impl<'a> Tokens<'a> {
    pub(crate) fn new(input: &'a [u8], strict: bool, max_depth: usize) -> Tokens<'a> {
        Tokens {
            input,
            pos: 0,
            strict,
            max_depth,
            levels: Vec::new(),
            finished: false,
        }
    }

    /// Byte offset just after the last token handed out.
    pub fn offset(&self) -> usize {
        self.pos
    }

    /// The next token and its offset in the input, `None` after the
    /// value's last token, or the error that stops the walk (after which
    /// the walk is over and this returns `None`).
    #[inline]
    pub fn next_token(&mut self) -> Result<Option<(usize, Token<'a>)>, Error> {
        if self.finished {
            return Ok(None);
        }
        let result = self.step();
        match &result {
            Err(_) => self.finished = true,
            Ok(Some(_)) => {}
            Ok(None) => self.finished = true,
        }
        result
    }

    #[inline(always)]
    fn step(&mut self) -> Result<Option<(usize, Token<'a>)>, Error> {
        let input = self.input;
        let start = self.pos;
        let Some(level) = self.levels.last_mut() else {
            if start > 0 {
                // The root value is complete.
                if self.strict && start < input.len() {
                    return Err(Error::new(
                        ErrorKind::TrailingBytes {
                            count: input.len() - start,
                        },
                        start,
                    ));
                }
                return Ok(None);
            }
            return self.value();
        };
        match input.get(start) {
            None => Err(unexpected_end(input)),
            Some(b'e') if level.awaiting_value => Err(Error::new(ErrorKind::MissingValue, start)),
            Some(b'e') => {
                self.pos += 1;
                self.levels.pop();
                Ok(Some((start, Token::End)))
            }
            Some(_) if !level.dict || level.awaiting_value => {
                level.awaiting_value = false;
                self.value()
            }
            Some(b'0'..=b'9') => {
                let mut pos = start;
                let key = byte_string(input, &mut pos, self.strict)?;
                if self.strict {
                    if let Some(previous) = level.last_key {
                        match previous.cmp(key) {
                            Ordering::Less => {}
                            Ordering::Equal => {
                                return Err(Error::new(ErrorKind::DuplicateKey, start))
                            }
                            Ordering::Greater => {
                                return Err(Error::new(ErrorKind::UnsortedKey, start))
                            }
                        }
                    }
                    level.last_key = Some(key);
                }
                level.awaiting_value = true;
                self.pos = pos;
                Ok(Some((start, Token::Key(key))))
            }
            Some(_) => Err(Error::new(ErrorKind::KeyNotString, start)),
        }
    }

    /// A value starts at `pos`.
    #[inline(always)]
    fn value(&mut self) -> Result<Option<(usize, Token<'a>)>, Error> {
        let input = self.input;
        let start = self.pos;
        let mut pos = start;
        let token = match input.get(start) {
            Some(b'0'..=b'9') => Token::Bytes(byte_string(input, &mut pos, self.strict)?),
            Some(b'i') => {
                pos += 1;
                Token::Integer(integer(input, &mut pos, self.strict)?)
            }
            Some(&open @ (b'l' | b'd')) => {
                if self.levels.len() >= self.max_depth {
                    return Err(Error::new(
                        ErrorKind::TooDeep {
                            limit: self.max_depth,
                        },
                        start,
                    ));
                }
                let dict = open == b'd';
                self.levels.push(Level {
                    dict,
                    awaiting_value: false,
                    last_key: None,
                });
                pos += 1;
                if dict {
                    Token::Dict
                } else {
                    Token::List
                }
            }
            Some(&byte) => return Err(Error::new(ErrorKind::UnexpectedByte { byte }, start)),
            None => return Err(unexpected_end(input)),
        };
        self.pos = pos;
        Ok(Some((start, token)))
    }
}

impl<'a> Iterator for Tokens<'a> {
    type Item = Result<(usize, Token<'a>), Error>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.next_token().transpose()
    }
}
