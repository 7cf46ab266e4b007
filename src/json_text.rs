//! JSON text as it comes in from systems that count in UTF-16 (Table
//! storage, the Functions host, Partner Center). Such a system can cut a
//! character outside the Basic Multilingual Plane (an emoji) in half and
//! write the half as an escape, `\ud83d`, with no low surrogate after it.
//! JSON allows that; a Rust string cannot hold it, so serde_json refuses the
//! whole document when it reads one into a `String` or a `Value`. It has no
//! lossy mode: it takes lone surrogates only into a byte buffer (as WTF-8,
//! which would need a reader of our own for every string) or when it only
//! skips over text (`RawValue`). Rewriting each such escape to `\ufffd`
//! before parsing makes one bad character cost that character: it reads as
//! U+FFFD, the replacement character.
//!
//! The bottom layer under every place JSON comes in: it uses nothing else
//! from the crate.

use std::borrow::Cow;

/// `json` with every lone-surrogate escape written `\ufffd`; valid pairs and
/// everything else as they were, and the length unchanged. Borrowed when
/// there was nothing to rewrite.
pub fn repair(json: &str) -> Cow<'_, str> {
    let mut lone = lone_surrogate_escapes(json.as_bytes()).peekable();
    if lone.peek().is_none() {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len());
    let mut from = 0;
    for at in lone {
        // `at` is a backslash, so both cuts are on character boundaries.
        out.push_str(&json[from..at]);
        out.push_str("\\ufffd");
        from = at + 6;
    }
    out.push_str(&json[from..]);
    Cow::Owned(out)
}

/// [`repair`] for bytes off the wire; bytes that are not UTF-8 (a surrogate
/// written out raw, as WTF-8 or CESU-8) become U+FFFD too.
pub fn repair_bytes(json: &[u8]) -> Cow<'_, [u8]> {
    match String::from_utf8_lossy(json) {
        Cow::Borrowed(text) => match repair(text) {
            Cow::Borrowed(_) => Cow::Borrowed(json),
            Cow::Owned(fixed) => Cow::Owned(fixed.into_bytes()),
        },
        Cow::Owned(text) => Cow::Owned(repair(&text).into_owned().into_bytes()),
    }
}

/// Byte offsets of the `\uXXXX` escapes that are surrogates without their
/// other half. A backslash always starts an escape (none stands alone in
/// JSON), so `\\ud800` is an escaped backslash followed by text.
fn lone_surrogate_escapes(json: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let mut next = 0;
    std::iter::from_fn(move || loop {
        let at = next + json.get(next..)?.iter().position(|&b| b == b'\\')?;
        if json.get(at + 1) != Some(&b'u') {
            // `\\`, `\"`, `\n`…: one escaped character.
            next = at + 2;
            continue;
        }
        let Some(unit) = hex_unit(json, at + 2) else {
            // Not an escape serde_json takes either: left for it to report.
            next = at + 2;
            continue;
        };
        next = at + 6;
        match unit {
            0xD800..=0xDBFF => {
                let low_follows = json.get(at + 6..at + 8) == Some(b"\\u")
                    && matches!(hex_unit(json, at + 8), Some(0xDC00..=0xDFFF));
                if low_follows {
                    next = at + 12;
                } else {
                    return Some(at);
                }
            }
            0xDC00..=0xDFFF => return Some(at),
            _ => {}
        }
    })
}

/// The four hex digits at `from`, as a UTF-16 unit.
fn hex_unit(json: &[u8], from: usize) -> Option<u16> {
    let digits = json.get(from..from + 4)?;
    digits.iter().try_fold(0u16, |unit, &d| {
        let value = char::from(d).to_digit(16)?;
        Some(unit << 4 | value as u16)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(json: &str) -> String {
        serde_json::from_str(&repair(json)).expect("parses after repair")
    }

    #[test]
    fn lone_surrogates_become_the_replacement_character() {
        assert_eq!(parsed(r#""a\ud83d""#), "a\u{FFFD}");
        assert_eq!(parsed(r#""\uD83Db""#), "\u{FFFD}b");
        assert_eq!(parsed(r#""\ude00x""#), "\u{FFFD}x");
        assert_eq!(parsed(r#""\ud83d\ud83d\ude00""#), "\u{FFFD}😀");
        assert_eq!(parsed(r#""\ud83d\n""#), "\u{FFFD}\n");
        assert_eq!(parsed(r#""\ud83d\u0041""#), "\u{FFFD}A");
        assert_eq!(parsed(r#""\ude00\ud83d""#), "\u{FFFD}\u{FFFD}");
        assert_eq!(parsed(r#""ä\ud83d""#), "ä\u{FFFD}");
    }

    #[test]
    fn pairs_escaped_backslashes_and_other_text_are_kept() {
        for json in [
            r#""\ud83d\ude00""#,
            r#""\\ud800""#,
            r#""\\\\ud800""#,
            r#""\"\ud83d\ude00\"""#,
            r#""plain ü 😀""#,
            r#""\u00e9\u0000""#,
        ] {
            assert!(matches!(repair(json), Cow::Borrowed(_)), "{json}");
        }
        assert_eq!(parsed(r#""\\ud800""#), "\\ud800");
        // An escaped backslash before a real lone escape.
        assert_eq!(parsed(r#""\\\ud800""#), "\\\u{FFFD}");
    }

    #[test]
    fn the_length_is_kept_and_broken_escapes_are_left_to_the_parser() {
        let json = r#"{"a":"\ud83d","b":["\udfff"]}"#;
        assert_eq!(repair(json).len(), json.len());
        for broken in [r#""\ud8"#, r#""\u12"#, r#""\"#, r#""\u+fff""#] {
            assert!(matches!(repair(broken), Cow::Borrowed(_)), "{broken}");
        }
        assert_eq!(repair(r#""\ud83d\u""#), r#""\ufffd\u""#);
    }

    #[test]
    fn bytes_that_are_not_utf8_become_the_replacement_character() {
        let fixed = repair_bytes(b"[\"a\xed\xa0\xbd\", \"\\ud83d\"]");
        let value: Vec<String> = serde_json::from_slice(&fixed).expect("parses");
        assert!(value[0].starts_with('a') && value[0][1..].chars().all(|c| c == '\u{FFFD}'));
        assert_eq!(value[1], "\u{FFFD}");
        assert!(matches!(repair_bytes(b"{\"ok\":1}"), Cow::Borrowed(_)));
    }
}
