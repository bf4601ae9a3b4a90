//! BEP 52 `file tree`: the v2 list of files.

use rustico_bencode::{Decoder, Token, Value};

use crate::error::Error;
use crate::scan::cannot_happen;
use crate::torrent::MAX_DEPTH;

/// One file of a v2 file tree, as [`walk_file_tree`] hands it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TreeFile<'p, 'a> {
    /// The keys from the tree's root down to the file, as written.
    pub path: &'p [&'a [u8]],
    /// `length`.
    pub length: u64,
    /// `pieces root`: the merkle root of the file's blocks (absent for
    /// empty files).
    pub pieces_root: Option<[u8; 32]>,
    /// Byte offset of the file's `pieces root` (or of its node).
    pub offset: usize,
}

/// Whether a file tree key names a parent, the folder itself or more than
/// one element: BEP 52 keys are single path elements, and these are the
/// traversal attempts (or nonsense) no creator writes. Other unsafe names
/// (device names, control characters) are sanitised like v1 paths.
fn is_traversal_name(name: &[u8]) -> bool {
    name.is_empty()
        || name == b"."
        || name == b".."
        || name.contains(&b'/')
        || name.contains(&b'\\')
        || name.contains(&0)
}

/// A dictionary of the tree being read.
struct Node<'a> {
    /// Offset of its `d`.
    offset: usize,
    /// Keys read so far.
    keys: usize,
    /// The value of its `""` key: the node is a file.
    file: Option<Value<'a>>,
}

/// Walks the `file tree` that starts at byte `start` of `input` (`depth`
/// containers deep, already checked as bencode) in the order it is
/// written (depth first, keys in order) and hands each file to `each`.
/// Every node must be a dictionary; a file is a dictionary whose only key
/// is `""`, mapping to `{length, pieces root}` (`pieces root`, 32 bytes,
/// required when the length is not 0); any other dictionary is a folder,
/// which must not be empty.
///
/// One pass of the pull parser: no tree of the whole file tree is built
/// (a million files would cost hundreds of megabytes), only each file's
/// small `{length, pieces root}` dictionary is decoded, and the stack is
/// bounded by the nesting limit.
pub(crate) fn walk_file_tree<'a>(
    input: &'a [u8],
    start: usize,
    depth: usize,
    mut each: impl FnMut(&TreeFile<'_, 'a>) -> Result<(), Error>,
) -> Result<(), Error> {
    let show = |path: &[&[u8]]| {
        path.iter()
            .map(|e| String::from_utf8_lossy(e))
            .collect::<Vec<_>>()
            .join("/")
    };
    let invalid = |path: &[&'a [u8]], reason: &'static str, offset: usize| Error::InvalidFileTree {
        path: show(path),
        reason,
        offset,
    };
    let mut tokens = Decoder::new()
        .max_depth(MAX_DEPTH.saturating_sub(depth))
        .tokens(input.get(start..).unwrap_or_default());
    // Offsets of the pull parser are relative to `start`.
    let mut next = || -> Result<(usize, Token<'a>), Error> {
        match tokens.next_token() {
            Ok(Some((at, token))) => Ok((start + at, token)),
            Ok(None) => Err(cannot_happen(input.len())),
            Err(mut e) => {
                e.offset += start;
                Err(e.into())
            }
        }
    };
    let mut path: Vec<&'a [u8]> = Vec::new();
    let mut nodes: Vec<Node<'a>> = Vec::new();
    let (at, first) = next()?;
    if first != Token::Dict {
        return Err(invalid(&path, "not a dictionary", at));
    }
    nodes.push(Node {
        offset: at,
        keys: 0,
        file: None,
    });
    while !nodes.is_empty() {
        let open = nodes.len();
        let Some(node) = nodes.last_mut() else {
            break;
        };
        let (at, token) = next()?;
        match token {
            Token::Key(b"") => {
                if node.keys > 0 || path.is_empty() {
                    return Err(invalid(&path, "both a file and a folder", node.offset));
                }
                node.keys += 1;
                let (value_at, first) = next()?;
                let (value, _) = Decoder::new()
                    .max_depth(MAX_DEPTH.saturating_sub(depth + open))
                    .decode_at(input, value_at)?;
                node.file = Some(value);
                // Past the value just decoded.
                let mut open = usize::from(matches!(first, Token::List | Token::Dict));
                while open > 0 {
                    match next()?.1 {
                        Token::List | Token::Dict => open += 1,
                        Token::End => open -= 1,
                        _ => {}
                    }
                }
            }
            Token::Key(name) => {
                if node.file.is_some() {
                    return Err(invalid(&path, "both a file and a folder", node.offset));
                }
                node.keys += 1;
                let (child_at, child) = next()?;
                path.push(name);
                if is_traversal_name(name) {
                    return Err(invalid(
                        &path,
                        "a name that is empty, `.`, `..`, or holds `/`, `\\` or NUL",
                        child_at,
                    ));
                }
                if child != Token::Dict {
                    return Err(invalid(&path, "not a dictionary", child_at));
                }
                nodes.push(Node {
                    offset: child_at,
                    keys: 0,
                    file: None,
                });
            }
            Token::End => {
                let Some(node) = nodes.pop() else {
                    return Err(cannot_happen(at));
                };
                match node.file {
                    Some(file) => each(&read_file(&path, &file, node.offset, &invalid)?)?,
                    None if node.keys == 0 => {
                        return Err(invalid(&path, "an empty folder", node.offset))
                    }
                    None => {}
                }
                if !nodes.is_empty() {
                    path.pop();
                }
            }
            _ => return Err(cannot_happen(at)),
        }
    }
    Ok(())
}

/// A file node's `""` value: `{length, pieces root}`.
fn read_file<'p, 'a>(
    path: &'p [&'a [u8]],
    file: &Value<'a>,
    node: usize,
    invalid: &impl Fn(&[&'a [u8]], &'static str, usize) -> Error,
) -> Result<TreeFile<'p, 'a>, Error> {
    let bad = |reason| invalid(path, reason, node);
    if file.as_dict().is_none() {
        return Err(bad("the file's `\"\"` entry is not a dictionary"));
    }
    let length = file
        .get(b"length")
        .ok_or_else(|| bad("a file without `length`"))?
        .as_integer()
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| bad("`length` is not a non-negative integer"))?;
    let pieces_root = match file.get(b"pieces root") {
        Some(root) => Some(
            root.as_bytes()
                .and_then(|r| <[u8; 32]>::try_from(r).ok())
                .ok_or_else(|| bad("`pieces root` is not 32 bytes"))?,
        ),
        None if length > 0 => return Err(bad("a non-empty file without `pieces root`")),
        None => None,
    };
    let offset = file.get(b"pieces root").map_or(node, Value::offset);
    Ok(TreeFile {
        path,
        length,
        pieces_root,
        offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustico_bencode::decode;

    fn files(tree: &[u8]) -> Result<Vec<(String, u64)>, Error> {
        // Checked as bencode first, as the torrent parser does.
        decode(tree).unwrap();
        let mut out = Vec::new();
        walk_file_tree(tree, 0, 0, |f| {
            let path: Vec<_> = f.path.iter().map(|e| String::from_utf8_lossy(e)).collect();
            out.push((path.join("/"), f.length));
            Ok(())
        })?;
        Ok(out)
    }

    const ROOT: &str = "11:pieces root32:rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr";

    #[test]
    fn walks_in_order() {
        let tree = format!(
            "d1:ad1:bd0:d6:lengthi3e{ROOT}ee1:cd0:d6:lengthi0eeee1:dd0:d6:lengthi5e{ROOT}eee"
        );
        assert_eq!(
            files(tree.as_bytes()).unwrap(),
            [("a/b".into(), 3), ("a/c".into(), 0), ("d".into(), 5)]
        );
    }

    #[test]
    fn bad_nodes_are_errors() {
        for (tree, reason) in [
            ("i1e".to_string(), "not a dictionary"),
            ("de".to_string(), "an empty folder"),
            ("d1:adee".to_string(), "an empty folder"),
            ("d1:ai5ee".to_string(), "not a dictionary"),
            (
                format!("d1:ad0:d6:lengthi3e{ROOT}e1:bd0:d6:lengthi3e{ROOT}eeee"),
                "both a file and a folder",
            ),
            (
                format!("d0:d6:lengthi3e{ROOT}ee"),
                "both a file and a folder",
            ),
            (
                "d1:ad0:i3eee".to_string(),
                "the file's `\"\"` entry is not a dictionary",
            ),
            (
                "d1:ad0:d6:lengthi3eeee".to_string(),
                "a non-empty file without `pieces root`",
            ),
            (
                "d1:ad0:d6:lengthi-3eeee".to_string(),
                "`length` is not a non-negative integer",
            ),
            (
                "d1:ad0:d11:pieces root2:xxeee".to_string(),
                "a file without `length`",
            ),
            (
                "d1:ad0:d6:lengthi3e11:pieces root2:xxeee".to_string(),
                "`pieces root` is not 32 bytes",
            ),
            (
                format!("d2:..d0:d6:lengthi3e{ROOT}eee"),
                "a name that is empty, `.`, `..`, or holds `/`, `\\` or NUL",
            ),
            (
                format!("d1:ad3:b/cd0:d6:lengthi3e{ROOT}eeee"),
                "a name that is empty, `.`, `..`, or holds `/`, `\\` or NUL",
            ),
        ] {
            let err = files(tree.as_bytes()).unwrap_err();
            assert!(
                matches!(&err, Error::InvalidFileTree { reason: r, .. } if *r == reason),
                "{tree}: {err}"
            );
        }
    }
}
