//! BEP 52 `file tree`: the v2 list of files.

use rustico_bencode::Value;

use crate::error::Error;

/// One file of a v2 file tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TreeFile<'a> {
    /// The keys from the tree's root down to the file, as written.
    pub path: Vec<&'a [u8]>,
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

/// Walks a `file tree` in the order it is written (depth first, keys in
/// order). Every node must be a dictionary; a file is a dictionary whose
/// only key is `""`, mapping to `{length, pieces root}` (`pieces root`,
/// 32 bytes, required when the length is not 0); any other dictionary is
/// a folder, which must not be empty. No recursion: the walk keeps its
/// own stack, bounded by the decoder's nesting limit.
pub(crate) fn parse_file_tree<'a>(tree: &Value<'a>) -> Result<Vec<TreeFile<'a>>, Error> {
    let mut files = Vec::new();
    // (node, its path); popped from the end, so children go in reversed.
    let mut stack: Vec<(&Value<'a>, Vec<&'a [u8]>)> = vec![(tree, Vec::new())];
    while let Some((node, path)) = stack.pop() {
        let invalid = |reason: &'static str| Error::InvalidFileTree {
            path: path
                .iter()
                .map(|e| String::from_utf8_lossy(e))
                .collect::<Vec<_>>()
                .join("/"),
            reason,
            offset: node.offset(),
        };
        let Some(dict) = node.as_dict() else {
            return Err(invalid("not a dictionary"));
        };
        if let Some(file) = dict.get(b"") {
            if dict.len() != 1 || path.is_empty() {
                return Err(invalid("both a file and a folder"));
            }
            if file.as_dict().is_none() {
                return Err(invalid("the file's `\"\"` entry is not a dictionary"));
            }
            let length = file
                .get(b"length")
                .ok_or_else(|| invalid("a file without `length`"))?
                .as_integer()
                .and_then(|n| u64::try_from(n).ok())
                .ok_or_else(|| invalid("`length` is not a non-negative integer"))?;
            let pieces_root = match file.get(b"pieces root") {
                Some(root) => Some(
                    root.as_bytes()
                        .and_then(|r| <[u8; 32]>::try_from(r).ok())
                        .ok_or_else(|| invalid("`pieces root` is not 32 bytes"))?,
                ),
                None if length > 0 => {
                    return Err(invalid("a non-empty file without `pieces root`"))
                }
                None => None,
            };
            let offset = file
                .get(b"pieces root")
                .map_or(node.offset(), Value::offset);
            files.push(TreeFile {
                path,
                length,
                pieces_root,
                offset,
            });
            continue;
        }
        if dict.is_empty() {
            return Err(invalid("an empty folder"));
        }
        for (name, child) in dict.entries().iter().rev() {
            if is_traversal_name(name) {
                return Err(Error::InvalidFileTree {
                    path: path
                        .iter()
                        .chain(std::iter::once(name))
                        .map(|e| String::from_utf8_lossy(e))
                        .collect::<Vec<_>>()
                        .join("/"),
                    reason: "a name that is empty, `.`, `..`, or holds `/`, `\\` or NUL",
                    offset: child.offset(),
                });
            }
            let mut child_path = Vec::with_capacity(path.len() + 1);
            child_path.extend_from_slice(&path);
            child_path.push(*name);
            stack.push((child, child_path));
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustico_bencode::decode;

    fn files(tree: &[u8]) -> Result<Vec<(String, u64)>, Error> {
        let value = decode(tree).unwrap();
        Ok(parse_file_tree(&value)?
            .into_iter()
            .map(|f| {
                let path: Vec<_> = f.path.iter().map(|e| String::from_utf8_lossy(e)).collect();
                (path.join("/"), f.length)
            })
            .collect())
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
