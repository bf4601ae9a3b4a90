//! File names made safe: every path element a torrent names becomes a
//! plain, portable file name, and no two files end up at the same path.
//! The rules are listed in the crate docs (`Paths are sanitised`).

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

use hashbrown::HashTable;

use crate::error::{Error, PathProblem, Warning};
use crate::torrent::FileEntry;

/// The longest path element kept, in bytes (`NAME_MAX` of Linux, ext4,
/// NTFS and APFS: 255). Longer elements are cut on a character boundary.
pub const MAX_ELEMENT_LENGTH: usize = 255;

/// An extension (from the last `.`) at most this many bytes long survives
/// the cutting of an over-long element and the renaming of a duplicate.
pub const MAX_KEPT_EXTENSION: usize = 32;

/// The most files a torrent may have renamed because their path was
/// already taken (by another file, or by a folder of another file). A
/// torrent with more is refused ([`Error::TooManyDuplicateNames`]): a few
/// duplicates are sloppiness, thousands are an attack on whoever lists the
/// folder. libtorrent caps the same thing.
pub const MAX_DUPLICATE_NAMES: usize = 10_000;

/// Checks that `name` is already a safe path element: sanitising would
/// leave it as it is.
pub(crate) fn check_element(name: &str) -> Result<(), PathProblem> {
    if name.is_empty() {
        return Err(PathProblem::Empty);
    }
    if name == "." || name == ".." {
        return Err(PathProblem::DotComponent);
    }
    for c in name.chars() {
        match c {
            '/' | '\\' => return Err(PathProblem::Separator),
            '\0' => return Err(PathProblem::Nul),
            c if c.is_control() => return Err(PathProblem::ControlCharacter),
            _ => {}
        }
    }
    if has_drive_prefix(name) {
        return Err(PathProblem::DrivePrefix);
    }
    if name.ends_with(['.', ' ']) {
        return Err(PathProblem::TrailingDotOrSpace);
    }
    if name.len() > MAX_ELEMENT_LENGTH {
        return Err(PathProblem::TooLong);
    }
    if reserved_stem_end(name).is_some() {
        return Err(PathProblem::ReservedName);
    }
    Ok(())
}

/// Sanitises one path element (bytes as in the torrent); `None` when
/// nothing of it is left (empty, `.`, `..`, only dots and spaces), in
/// which case the element is dropped. The result always passes
/// [`check_element`], and equals the input when the input passes it.
pub(crate) fn sanitize_element(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    // 1. Separators, NUL and control characters become `_`.
    let mut out: String = text
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    // 2. A drive prefix (`C:x`) loses its colon.
    if has_drive_prefix(&out) {
        out.replace_range(1..2, "_");
    }
    // 3. A Windows device name gets `_` after its stem: `CON.txt` -> `CON_.txt`.
    if let Some(end) = reserved_stem_end(&out) {
        out.insert(end, '_');
    }
    // 4. Over-long elements are cut, keeping a short extension.
    if out.len() > MAX_ELEMENT_LENGTH {
        let (base, ext) = split_extension(&out);
        let cut = floor_char_boundary(base, MAX_ELEMENT_LENGTH - ext.len());
        out = format!("{}{ext}", &base[..cut]);
    }
    // 5. Trailing dots and spaces go (Windows drops them itself, so `a.`
    //    and `a` would be one file there); `.` and `..` vanish here.
    let kept = out.trim_end_matches(['.', ' ']).len();
    out.truncate(kept);
    if out.is_empty() {
        return None;
    }
    debug_assert_eq!(check_element(&out), Ok(()), "{out:?}");
    Some(out)
}

/// Sanitises a whole path and joins its elements with `/`; never empty
/// (`_` when every element was dropped).
pub(crate) fn sanitize_path<'a>(elements: impl IntoIterator<Item = &'a [u8]>) -> String {
    let mut path = String::new();
    for element in elements.into_iter().filter_map(sanitize_element) {
        if !path.is_empty() {
            path.push('/');
        }
        path.push_str(&element);
    }
    if path.is_empty() {
        path.push('_');
    }
    path
}

fn has_drive_prefix(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':'
}

/// Where the stem of a Windows device name ends (`CON`, `nul.txt`,
/// `LPT1 .log`, `COM¹`, `CONIN$`), or `None` if `name` is not one.
/// Windows ignores the extension and trailing spaces of the stem.
fn reserved_stem_end(name: &str) -> Option<usize> {
    let end = name.find('.').unwrap_or(name.len());
    let stem = name[..end].trim_end_matches(' ');
    let upper = stem.to_ascii_uppercase();
    let reserved = match upper.as_str() {
        "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$" => true,
        _ => {
            let digit = upper
                .strip_prefix("COM")
                .or_else(|| upper.strip_prefix("LPT"));
            matches!(
                digit,
                Some("1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9" | "¹" | "²" | "³")
            )
        }
    };
    reserved.then_some(end)
}

/// Splits `name` into base and extension (from the last `.`, kept only
/// when at most [`MAX_KEPT_EXTENSION`] bytes long).
fn split_extension(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(dot) if name.len() - dot <= MAX_KEPT_EXTENSION => name.split_at(dot),
        _ => (name, ""),
    }
}

fn floor_char_boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// The name for the `n`th duplicate of `name`: `bar.txt` -> `bar.1.txt`,
/// `bar` -> `bar.1`, `.bashrc` -> `.1.bashrc` (libtorrent's rule), cut to
/// [`MAX_ELEMENT_LENGTH`] bytes.
fn numbered(name: &str, n: usize) -> String {
    let (base, ext) = split_extension(name);
    let suffix = format!(".{n}{ext}");
    let cut = floor_char_boundary(base, MAX_ELEMENT_LENGTH.saturating_sub(suffix.len()));
    let out = format!("{}{suffix}", &base[..cut]);
    debug_assert_eq!(check_element(&out), Ok(()), "{out:?}");
    out
}

/// Node 0 of [`Names`]: the torrent's folder.
const ROOT: u32 = 0;

/// A name [`Names`] holds: bytes `start..start + len` of file `file`'s
/// path, in folder `parent`.
#[derive(Debug, Clone, Copy)]
struct Node {
    parent: u32,
    file: u32,
    start: u32,
    len: u32,
}

/// The names taken in each folder, compared ignoring ASCII case: a trie
/// whose nodes point into the files' own paths rather than copying them,
/// in a hash table of node numbers (about 25 bytes a name, where a map
/// of owned lowercase keys took about 100, which mattered for a million
/// files). Names are hashed with a random key, so crafted names cannot
/// pile up in one bucket.
struct Names {
    nodes: Vec<Node>,
    table: HashTable<u32>,
    state: RandomState,
}

impl Names {
    fn new() -> Names {
        Names {
            nodes: Vec::new(),
            table: HashTable::new(),
            state: RandomState::new(),
        }
    }

    fn hash(&self, parent: u32, name: &str) -> u64 {
        hash_name(&self.state, parent, name)
    }

    /// The node of `name` in folder `parent`, if taken.
    fn find(&self, files: &[FileEntry], parent: u32, name: &str, hash: u64) -> Option<u32> {
        let nodes = &self.nodes;
        self.table
            .find(hash, |&index| {
                nodes.get(index as usize).is_some_and(|node| {
                    node.parent == parent
                        && name_of(files, node).is_some_and(|n| n.eq_ignore_ascii_case(name))
                })
            })
            .map(|&index| index + 1)
    }

    /// Takes the name at `start..start + len` of file `file`'s path in
    /// folder `parent`, which must be free; returns its node.
    fn insert(
        &mut self,
        files: &[FileEntry],
        parent: u32,
        hash: u64,
        file: usize,
        start: usize,
        len: usize,
    ) -> Result<u32, Error> {
        let too_many = || Error::Invalid {
            key: format!("info.files[{file}].path"),
            reason: "more than 2^32 - 2 names or bytes in a path".into(),
            offset: 0,
        };
        let small = |n: usize| u32::try_from(n).ok().filter(|n| *n < u32::MAX);
        let index = small(self.nodes.len()).ok_or_else(too_many)?;
        self.nodes.push(Node {
            parent,
            file: small(file).ok_or_else(too_many)?,
            start: small(start).ok_or_else(too_many)?,
            len: small(len).ok_or_else(too_many)?,
        });
        let Names {
            nodes,
            table,
            state,
        } = self;
        table.insert_unique(hash, index, |&index| {
            let node = nodes.get(index as usize);
            let name = node
                .and_then(|node| name_of(files, node))
                .unwrap_or_default();
            hash_name(state, node.map_or(ROOT, |n| n.parent), name)
        });
        Ok(index + 1)
    }

    /// The node of `name` in `parent`, taken if it was free.
    fn find_or_insert(
        &mut self,
        files: &[FileEntry],
        parent: u32,
        name: &str,
        file: usize,
        start: usize,
    ) -> Result<u32, Error> {
        let hash = self.hash(parent, name);
        match self.find(files, parent, name, hash) {
            Some(node) => Ok(node),
            None => self.insert(files, parent, hash, file, start, name.len()),
        }
    }
}

/// The hash of `name` (ASCII case ignored) in folder `parent`.
fn hash_name(state: &RandomState, parent: u32, name: &str) -> u64 {
    let mut hasher = state.build_hasher();
    hasher.write_u32(parent);
    let mut lower = [0u8; 64];
    for chunk in name.as_bytes().chunks(lower.len()) {
        for (out, byte) in lower.iter_mut().zip(chunk) {
            *out = byte.to_ascii_lowercase();
        }
        hasher.write(lower.get(..chunk.len()).unwrap_or_default());
    }
    hasher.finish()
}

/// The name a node points at.
fn name_of<'f>(files: &'f [FileEntry], node: &Node) -> Option<&'f str> {
    let start = node.start as usize;
    files
        .get(node.file as usize)?
        .path()
        .get(start..start + node.len as usize)
}

/// Renames files whose (sanitised) path is taken, in torrent order:
/// folders first claim their paths, then each file claims its own; a file
/// whose path is taken (compared ignoring ASCII case) becomes
/// `base.N.ext` with the smallest free `N` from 1. Padding files are left
/// alone: they are never on disk. Each rename is a warning.
pub(crate) fn resolve_duplicates(
    files: &mut [FileEntry],
    warnings: &mut Vec<Warning>,
) -> Result<(), Error> {
    // Walking the trie costs the length of each path, whatever the
    // depth, where hashing every prefix would be quadratic.
    let mut names = Names::new();
    let mut parents = Vec::with_capacity(files.len());
    for (index, file) in files.iter().enumerate() {
        let mut parent = ROOT;
        if !file.is_padding() {
            if let Some((folders, _)) = file.path().rsplit_once('/') {
                let mut start = 0;
                for folder in folders.split('/') {
                    parent = names.find_or_insert(files, parent, folder, index, start)?;
                    start += folder.len() + 1;
                }
            }
        }
        parents.push(parent);
    }
    // For each taken name (its node): the next number to try.
    let mut next_number: HashMap<u32, usize> = HashMap::new();
    let mut renamed = 0usize;
    for (index, &parent) in parents.iter().enumerate() {
        let Some(file) = files.get(index) else {
            break;
        };
        if file.is_padding() {
            continue;
        }
        let path = file.path();
        let start = path.rfind('/').map_or(0, |slash| slash + 1);
        let last = path.get(start..).unwrap_or_default();
        if last.is_empty() {
            debug_assert!(false, "sanitised paths have no empty element");
            return Err(Error::Invalid {
                key: format!("info.files[{index}].path"),
                reason: "empty after sanitising (a bug)".into(),
                offset: 0,
            });
        }
        let hash = names.hash(parent, last);
        let Some(taken) = names.find(files, parent, last, hash) else {
            names.insert(files, parent, hash, index, start, last.len())?;
            continue;
        };
        renamed += 1;
        if renamed > MAX_DUPLICATE_NAMES {
            return Err(Error::TooManyDuplicateNames {
                max: MAX_DUPLICATE_NAMES,
                file: index,
            });
        }
        let counter = next_number.entry(taken).or_insert(1);
        let (new_name, new_hash) = loop {
            let candidate = numbered(last, *counter);
            *counter += 1;
            let candidate_hash = names.hash(parent, &candidate);
            if names
                .find(files, parent, &candidate, candidate_hash)
                .is_none()
            {
                break (candidate, candidate_hash);
            }
        };
        let original = path.to_string();
        let renamed_path = format!("{}{new_name}", path.get(..start).unwrap_or_default());
        if let Some(file) = files.get_mut(index) {
            file.rename(renamed_path.clone());
        }
        names.insert(files, parent, new_hash, index, start, new_name.len())?;
        warnings.push(Warning::DuplicateRenamed {
            file: index,
            original,
            renamed: renamed_path,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(name: &[u8]) -> Option<String> {
        sanitize_element(name)
    }

    #[test]
    fn element_rules() {
        for (input, expected) in [
            (&b"plain.txt"[..], Some("plain.txt")),
            (b"", None),
            (b".", None),
            (b"..", None),
            (b"...", None),
            (b". .", None),
            (b"/", Some("_")),
            (b"\\", Some("_")),
            (b"/foobar", Some("_foobar")),
            (b"abc/../../def", Some("abc_.._.._def")),
            (b"temp\\..\\abc", Some("temp_.._abc")),
            (b"a\0b\x01c\x7fd", Some("a_b_c_d")),
            (b"C:x", Some("C_x")),
            (b"ab:c", Some("ab:c")),
            (b"CON", Some("CON_")),
            (b"con.txt", Some("con_.txt")),
            (b"Lpt9.tar.gz", Some("Lpt9_.tar.gz")),
            (b"aux .c", Some("aux _.c")),
            (b"NUL.", Some("NUL_")),
            ("COM¹".as_bytes(), Some("COM¹_")),
            (b"conout$", Some("conout$_")),
            (b"console", Some("console")),
            (b"com10", Some("com10")),
            (b"abc. ", Some("abc")),
            (b".hidden", Some(".hidden")),
            (b"a\xffb", Some("a\u{fffd}b")),
        ] {
            assert_eq!(
                s(input).as_deref(),
                expected,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn long_elements_keep_their_extension_and_characters() {
        let long = format!("{}.txt", "a".repeat(300));
        let out = s(long.as_bytes()).unwrap();
        assert_eq!(out.len(), MAX_ELEMENT_LENGTH);
        assert!(out.ends_with("aaa.txt"));
        // A huge "extension" is not kept: the whole is cut.
        let long_ext = format!("a.{}", "e".repeat(300));
        assert_eq!(s(long_ext.as_bytes()).unwrap().len(), MAX_ELEMENT_LENGTH);
        // Two-byte characters are never split.
        let wide = "é".repeat(200);
        let out = s(wide.as_bytes()).unwrap();
        assert_eq!(out, "é".repeat(127));
    }

    #[test]
    fn numbered_names_follow_libtorrent() {
        assert_eq!(numbered("bar.txt", 1), "bar.1.txt");
        assert_eq!(numbered("bar.tar.gz", 2), "bar.tar.2.gz");
        assert_eq!(numbered("bar", 3), "bar.3");
        assert_eq!(numbered(".bashrc", 1), ".1.bashrc");
        let long = format!("{}.txt", "a".repeat(251));
        let out = numbered(&long, 1000);
        assert_eq!(out.len(), MAX_ELEMENT_LENGTH);
        assert!(out.ends_with("a.1000.txt"));
    }

    /// The renaming rule written plainly, as it was before issue 20 (an
    /// owned lowercase key per name): what [`resolve_duplicates`] must
    /// agree with. `None` paths are padding.
    fn plain_rule(paths: &[Option<Vec<String>>]) -> Vec<Option<Vec<String>>> {
        let mut out = paths.to_vec();
        let mut nodes: HashMap<(usize, String), usize> = HashMap::new();
        let mut parents = Vec::new();
        for path in paths {
            let mut parent = 0;
            if let Some((_, folders)) = path.as_ref().and_then(|p| p.split_last()) {
                for folder in folders {
                    let next = nodes.len() + 1;
                    parent = *nodes
                        .entry((parent, folder.to_ascii_lowercase()))
                        .or_insert(next);
                }
            }
            parents.push(parent);
        }
        let mut next_number: HashMap<(usize, String), usize> = HashMap::new();
        for (path, &parent) in out.iter_mut().zip(&parents) {
            let Some(last) = path.as_mut().and_then(|p| p.last_mut()) else {
                continue;
            };
            let key = (parent, last.to_ascii_lowercase());
            if !nodes.contains_key(&key) {
                let id = nodes.len() + 1;
                nodes.insert(key, id);
                continue;
            }
            let counter = next_number.entry(key).or_insert(1);
            *last = loop {
                let candidate = numbered(last, *counter);
                *counter += 1;
                let key = (parent, candidate.to_ascii_lowercase());
                if !nodes.contains_key(&key) {
                    let id = nodes.len() + 1;
                    nodes.insert(key, id);
                    break candidate;
                }
            };
        }
        out
    }

    fn entries(paths: &[Option<Vec<String>>]) -> Vec<FileEntry> {
        paths
            .iter()
            .enumerate()
            .map(|(i, path)| match path {
                Some(path) => FileEntry::new(path.join("/"), 1, i as u64),
                None => {
                    let mut pad = FileEntry::new(".pad/1".into(), 1, i as u64);
                    pad.set_attributes(crate::torrent::Attributes::from_bytes(b"p"));
                    pad
                }
            })
            .collect()
    }

    #[test]
    fn renaming_keeps_originals_and_warns() {
        let paths: Vec<Option<Vec<String>>> = [
            vec!["Dir", "a.txt"],
            vec!["dir", "A.TXT"],
            vec!["dir", "a.1.txt"],
            vec!["dir"],
            vec!["x.tar.gz"],
            vec!["X.tar.gz"],
        ]
        .iter()
        .map(|p| Some(p.iter().map(|e| e.to_string()).collect()))
        .chain([None, None])
        .collect();
        let mut files = entries(&paths);
        let mut warnings = Vec::new();
        resolve_duplicates(&mut files, &mut warnings).unwrap();
        let got: Vec<&str> = files.iter().map(FileEntry::path).collect();
        assert_eq!(
            got,
            [
                "Dir/a.txt",
                "dir/A.1.TXT",
                "dir/a.1.1.txt",
                "dir.1",
                "x.tar.gz",
                "X.tar.1.gz",
                ".pad/1",
                ".pad/1"
            ]
        );
        assert_eq!(files[1].original_path(), "dir/A.TXT");
        assert!(files[1].was_renamed() && !files[0].was_renamed() && !files[6].was_renamed());
        assert_eq!(warnings.len(), 4);
        assert_eq!(
            warnings[0],
            Warning::DuplicateRenamed {
                file: 1,
                original: "dir/A.TXT".into(),
                renamed: "dir/A.1.TXT".into()
            }
        );
    }

    #[test]
    fn too_many_duplicates_are_refused() {
        let paths = vec![Some(vec!["same".to_string()]); MAX_DUPLICATE_NAMES + 2];
        let mut files = entries(&paths);
        let err = resolve_duplicates(&mut files, &mut Vec::new()).unwrap_err();
        assert!(
            matches!(
                err,
                Error::TooManyDuplicateNames {
                    max: MAX_DUPLICATE_NAMES,
                    file
                } if file == MAX_DUPLICATE_NAMES + 1
            ),
            "{err}"
        );
    }

    proptest! {
        /// Names from a small alphabet, so paths collide often: as files,
        /// as folders, in another case, with numbered names already taken.
        #[test]
        fn renaming_matches_the_plain_rule(
            paths in proptest::collection::vec(
                proptest::option::weighted(
                    0.9,
                    proptest::collection::vec(
                        proptest::sample::select(vec!["a", "A", "b", "a.1", "A.1", "b.txt", "B.TXT", "b.1.txt", ".x", ".1.x"]),
                        1..4,
                    ),
                ),
                1..40,
            )
        ) {
            let paths: Vec<Option<Vec<String>>> = paths
                .iter()
                .map(|p| p.as_ref().map(|p| p.iter().map(|e| e.to_string()).collect()))
                .collect();
            let mut files = entries(&paths);
            let mut warnings = Vec::new();
            resolve_duplicates(&mut files, &mut warnings).unwrap();
            let expected = plain_rule(&paths);
            for (file, want) in files.iter().zip(&expected) {
                match want {
                    Some(want) => prop_assert_eq!(file.path(), want.join("/")),
                    None => prop_assert_eq!(file.path(), ".pad/1"),
                }
            }
            let renamed = paths.iter().zip(&expected).filter(|(a, b)| a != b).count();
            prop_assert_eq!(warnings.len(), renamed);
        }
    }

    proptest! {
        #[test]
        fn sanitised_elements_are_safe_and_stable(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Some(out) = sanitize_element(&bytes) {
                prop_assert_eq!(check_element(&out), Ok(()));
                prop_assert_eq!(sanitize_element(out.as_bytes()), Some(out.clone()));
            }
            let text = String::from_utf8_lossy(&bytes);
            if check_element(&text).is_ok() {
                prop_assert_eq!(sanitize_element(&bytes), Some(text.into_owned()));
            }
        }

        #[test]
        fn sanitised_text_is_safe(text in "[a-zA-Z0-9 ./\\\\:$¹\u{0}-\u{1f}é]{0,20}") {
            if let Some(out) = sanitize_element(text.as_bytes()) {
                prop_assert_eq!(check_element(&out), Ok(()));
            }
        }
    }
}
