//! Text from torrents, trackers and peers, made safe to print: one
//! escaping function for every place such text reaches a terminal or a
//! log (names, file names, comments, tracker URLs and failure reasons,
//! peers' client strings, error messages that quote any of them).

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` must not reach a terminal as is: C0 and C1 controls and
/// DEL (escape sequences, NUL, BEL, carriage return, newline: a forged
/// line), and the Unicode bidirectional overrides and isolates (text that
/// displays in another order than it reads).
fn unsafe_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every control character (C0, DEL, C1) and every Unicode
/// bidirectional override escaped as Rust writes it (`\u{1b}`, `\n`,
/// `\u{202e}`), so untrusted text prints on one line and sends nothing
/// to the terminal; borrowed when there is nothing to escape.
///
/// ```ignore
/// assert_eq!(shown("a\u{1b}[2Jb\n"), "a\\u{1b}[2Jb\\n");
/// ```
pub fn shown(s: &str) -> Cow<'_, str> {
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if unsafe_char(c) {
            // `escape_debug` writes `\n`, `\r`, `\t`, `\0` and `\u{..}`.
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// JSON text with the characters [`shown`] escapes written as JSON
/// `\uXXXX` escapes. serde_json escapes only C0 controls; DEL, C1
/// controls and the bidirectional overrides would reach the terminal
/// raw. In JSON such characters can only be inside strings, where the
/// escape means the same character, so the document's value is unchanged.
pub fn json_shown(json: &str) -> Cow<'_, str> {
    if !json.chars().any(unsafe_char) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 8);
    for c in json.chars() {
        if unsafe_char(c) {
            // All of them are in the Basic Multilingual Plane: one escape.
            // Writing to a `String` cannot fail.
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_and_unchanged() {
        assert!(matches!(shown("plain name ü.txt"), Cow::Borrowed(_)));
        assert_eq!(shown("a\\b"), "a\\b");
    }

    #[test]
    fn controls_and_bidi_overrides_are_escaped() {
        let evil = "a\u{1b}]0;t\u{7}\0\r\nb\u{7f}\u{9b}\u{202e}c\u{2066}";
        let safe = shown(evil);
        assert!(!safe.chars().any(unsafe_char), "{safe:?}");
        assert_eq!(
            safe,
            "a\\u{1b}]0;t\\u{7}\\0\\r\\nb\\u{7f}\\u{9b}\\u{202e}c\\u{2066}"
        );
    }

    #[test]
    fn json_keeps_its_value_and_loses_its_raw_controls() {
        let value = serde_json::json!({ "name": "a\u{7f}b\u{9b}c\u{202e}d\u{1b}e" });
        let raw = value.to_string();
        let safe = json_shown(&raw);
        assert!(!safe.chars().any(unsafe_char), "{safe}");
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back, value);
        assert!(matches!(json_shown("{\"a\":1}"), Cow::Borrowed(_)));
    }
}
