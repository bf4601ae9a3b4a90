//! The first pass over a `.torrent`: the whole document is checked with
//! bencode's pull parser, which builds nothing, and the top-level and
//! info dictionaries are read one level deep: each key with the byte span
//! of its value. Values are then decoded one at a time where they are
//! needed ([`Fields::get`]), and the file list one file at a time, so a
//! torrent of a million files never becomes a tree of a million
//! dictionaries in memory (issue 20: that tree cost about 400 bytes per
//! file, more than the files themselves).

use std::ops::Range;

use rustico_bencode::{Decoder, Token, Tokens, Value};

use crate::error::Error;

/// One entry of a dictionary read one level deep.
#[derive(Debug, Clone)]
pub(crate) struct Field<'a> {
    /// The key, as written.
    pub key: &'a [u8],
    /// Where the value lies in the input.
    pub span: Range<usize>,
    /// How many items (list) or keys (dictionary) the value holds; 0 for
    /// an integer or byte string.
    pub children: usize,
}

/// A dictionary read one level deep: its keys, in input order, and where
/// their values lie. Offsets are those of the whole input.
#[derive(Debug, Clone)]
pub(crate) struct Fields<'a> {
    input: &'a [u8],
    span: Range<usize>,
    /// How many containers enclose the values (the top-level
    /// dictionary's values are at depth 1), for the nesting limit.
    depth: usize,
    entries: Vec<Field<'a>>,
}

impl<'a> Fields<'a> {
    /// The dictionary's exact bytes.
    pub fn raw(&self) -> &'a [u8] {
        self.input.get(self.span.clone()).unwrap_or_default()
    }

    /// The whole input the dictionary is part of.
    pub fn input(&self) -> &'a [u8] {
        self.input
    }

    /// How many containers enclose the dictionary's values.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Offset of the dictionary's `d`.
    pub fn offset(&self) -> usize {
        self.span.start
    }

    /// The first entry whose key is `key` (what [`rustico_bencode::Dict::get`] finds).
    pub fn field(&self, key: &[u8]) -> Option<&Field<'a>> {
        self.entries.iter().find(|f| f.key == key)
    }

    /// The entries in input order.
    pub fn entries(&self) -> &[Field<'a>] {
        &self.entries
    }

    /// The value of the first entry whose key is `key`, decoded.
    pub fn get(&self, key: &[u8]) -> Result<Option<Value<'a>>, Error> {
        match self.field(key) {
            Some(field) => Ok(Some(self.decode(field)?)),
            None => Ok(None),
        }
    }

    /// Decodes the value of one entry.
    pub fn decode(&self, field: &Field<'a>) -> Result<Value<'a>, Error> {
        decode_at(self.input, field.span.start, self.depth)
    }
}

/// Decodes the value at `start` of `input`, `depth` containers deep,
/// keeping the nesting limit of the whole document.
pub(crate) fn decode_at(input: &[u8], start: usize, depth: usize) -> Result<Value<'_>, Error> {
    let (value, _) = Decoder::new()
        .max_depth(crate::torrent::MAX_DEPTH.saturating_sub(depth))
        .decode_at(input, start)?;
    Ok(value)
}

/// What [`scan`] finds.
#[derive(Debug)]
pub(crate) struct Scanned<'a> {
    /// The top-level dictionary, `None` when the top level is not one.
    pub root: Option<Fields<'a>>,
    /// The value of the root's first `descend` key, read one level deep
    /// when it is a dictionary.
    pub inner: Option<Fields<'a>>,
    /// Where the top-level value ends (bytes after it are not part of it).
    pub end: usize,
}

/// Checks the value at the start of `input` with the pull parser (the
/// same errors, kind and offset, as decoding it into a tree), and reads
/// the top-level dictionary one level deep, and inside it the first
/// value under `descend` (`info`) when that is a dictionary.
pub(crate) fn scan<'a>(input: &'a [u8], descend: Option<&[u8]>) -> Result<Scanned<'a>, Error> {
    let mut tokens = Decoder::new()
        .max_depth(crate::torrent::MAX_DEPTH)
        .tokens(input);
    let Some((start, first)) = tokens.next_token()? else {
        return Err(cannot_happen(input.len()));
    };
    let mut scanned = Scanned {
        root: None,
        inner: None,
        end: 0,
    };
    if first == Token::Dict {
        let (root, inner) = read_dict(&mut tokens, input, start, 1, descend)?;
        scanned.root = Some(root);
        scanned.inner = inner;
    } else {
        skip(&mut tokens, first)?;
    }
    // The top-level value is complete: lenient mode ends here.
    scanned.end = tokens.offset();
    if tokens.next_token()?.is_some() {
        return Err(cannot_happen(scanned.end));
    }
    Ok(scanned)
}

/// Where the value at the start of `input` ends, checked as [`scan`] does.
pub(crate) fn value_end(input: &[u8]) -> Result<usize, Error> {
    Ok(scan(input, None)?.end)
}

/// Reads a dictionary whose `d` (at `start`) was just handed out: each
/// key with its value's span. The first value under `descend` that is a
/// dictionary is read the same way and returned too.
fn read_dict<'a>(
    tokens: &mut Tokens<'a>,
    input: &'a [u8],
    start: usize,
    depth: usize,
    descend: Option<&[u8]>,
) -> Result<(Fields<'a>, Option<Fields<'a>>), Error> {
    let mut entries = Vec::new();
    let mut inner = None;
    let mut descended = false;
    loop {
        let Some((at, token)) = tokens.next_token()? else {
            return Err(cannot_happen(tokens.offset()));
        };
        let key = match token {
            Token::End => break,
            Token::Key(key) => key,
            _ => return Err(cannot_happen(at)),
        };
        let Some((value_start, first)) = tokens.next_token()? else {
            return Err(cannot_happen(tokens.offset()));
        };
        let children = if descend == Some(key) && !descended {
            descended = true;
            if first == Token::Dict {
                let (fields, _) = read_dict(tokens, input, value_start, depth + 1, None)?;
                let children = fields.entries.len();
                inner = Some(fields);
                children
            } else {
                skip(tokens, first)?
            }
        } else {
            skip(tokens, first)?
        };
        entries.push(Field {
            key,
            span: value_start..tokens.offset(),
            children,
        });
    }
    let fields = Fields {
        input,
        span: start..tokens.offset(),
        depth,
        entries,
    };
    Ok((fields, inner))
}

/// Skips the rest of a value whose first token was `first`; returns how
/// many items or keys it holds.
fn skip(tokens: &mut Tokens<'_>, first: Token<'_>) -> Result<usize, Error> {
    let dict = match first {
        Token::List => false,
        Token::Dict => true,
        Token::Integer(_) | Token::Bytes(_) => return Ok(0),
        Token::Key(_) | Token::End => return Err(cannot_happen(tokens.offset())),
    };
    let mut depth = 1usize;
    let mut children = 0usize;
    while depth > 0 {
        let Some((_, token)) = tokens.next_token()? else {
            return Err(cannot_happen(tokens.offset()));
        };
        let counts = match token {
            Token::End => {
                depth -= 1;
                false
            }
            Token::Key(_) => true,
            Token::List | Token::Dict => {
                depth += 1;
                !dict
            }
            Token::Integer(_) | Token::Bytes(_) => !dict,
        };
        // An opening token has already raised `depth`.
        let level = if matches!(token, Token::List | Token::Dict) {
            depth - 1
        } else {
            depth
        };
        if counts && level == 1 {
            children += 1;
        }
    }
    Ok(children)
}

/// The pull parser handed out a token its grammar does not allow here.
pub(crate) fn cannot_happen(offset: usize) -> Error {
    debug_assert!(
        false,
        "the bencode pull parser broke its grammar at {offset}"
    );
    Error::Invalid {
        key: "(bencode)".into(),
        reason: "the pull parser broke its grammar (a bug)".into(),
        offset,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_two_levels_and_counts_children() {
        let input = b"d1:ai1e4:infod5:filesld1:xi1eeli2ei3eee1:nlee1:zl1:pdeee";
        let scanned = scan(input, Some(b"info")).unwrap();
        assert_eq!(scanned.end, input.len());
        let root = scanned.root.unwrap();
        let keys: Vec<_> = root.entries().iter().map(|f| f.key).collect();
        assert_eq!(keys, [&b"a"[..], b"info", b"z"]);
        assert_eq!(root.field(b"z").unwrap().children, 2);
        let info = scanned.inner.unwrap();
        assert_eq!(info.raw(), &b"d5:filesld1:xi1eeli2ei3eee1:nlee"[..]);
        let files = info.field(b"files").unwrap();
        assert_eq!(files.children, 2);
        assert_eq!(&input[files.span.clone()], b"ld1:xi1eeli2ei3eee");
        assert_eq!(info.field(b"n").unwrap().children, 0);
        let value = info.get(b"files").unwrap().unwrap();
        assert_eq!(value.offset(), files.span.start);
        assert_eq!(value.as_list().unwrap().len(), 2);
    }

    #[test]
    fn errors_are_the_decoders() {
        for bad in [
            &b"d4:infod5:filesli1e"[..],
            b"d4:infoi1x",
            b"d1:ai1e1:a",
            b"l",
            b"",
            b"d4:infod1:ai1ee3:key",
        ] {
            let ours = scan(bad, Some(b"info")).unwrap_err();
            let theirs = Decoder::new()
                .max_depth(crate::torrent::MAX_DEPTH)
                .decode(bad);
            let theirs = Error::Bencode(theirs.unwrap_err());
            assert_eq!(format!("{ours:?}"), format!("{theirs:?}"), "{bad:?}");
        }
        let deep = [b'l'; 300];
        let ours = scan(&deep, None).unwrap_err();
        let theirs = Decoder::new()
            .max_depth(crate::torrent::MAX_DEPTH)
            .decode(&deep)
            .unwrap_err();
        assert_eq!(format!("{ours:?}"), format!("{:?}", Error::Bencode(theirs)));
    }

    #[test]
    fn not_a_dictionary_and_trailing_bytes() {
        let scanned = scan(b"li1ee", Some(b"info")).unwrap();
        assert!(scanned.root.is_none());
        assert_eq!(scanned.end, 5);
        let scanned = scan(b"d4:infoi1eeXYZ", Some(b"info")).unwrap();
        assert_eq!(scanned.end, 11);
        assert!(scanned.inner.is_none());
        assert_eq!(value_end(b"i5eabc").unwrap(), 3);
    }
}
