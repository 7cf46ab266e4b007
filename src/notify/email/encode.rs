//! Rendered text → MIME body, in linear time, with no line that starts
//! with a dot.
//!
//! lettre's `Body::new` turns bare `\n` into `\r\n` with one `String::insert`
//! per line, shifting the rest of the body each time: quadratic in the body's
//! size, and a 500-lead digest has thousands of lines (glibc's vectorised
//! `memmove` hides it; musl's does not). Here the line endings are converted
//! in one pass first, so lettre finds nothing left to insert. The transfer
//! encoding is chosen on the text as rendered, exactly as lettre chooses it.
//!
//! SMTP doubles a dot that starts a line, and lettre does that into a copy
//! of the whole message sized for no dots: one such line and the copy is
//! made twice, a 1.5 MB digest held three times at once. So no line here
//! starts with one: quoted-printable writes it `=2E` (the same character to
//! every reader), and a 7- or 8-bit body with such a line is sent
//! quoted-printable instead.

use email_encoding::body::Encoding;
use lettre::message::header::ContentTransferEncoding;
use lettre::message::Body;
use quoted_printable::Options;

/// Quoted-printable lines are at most 76 characters (RFC 2045); two fewer
/// leave room for a leading dot's `=2E`.
const QP_LINE: usize = 74;

/// The MIME body for `text`: lettre's `Body::new(text)` without its
/// quadratic line-ending step, and without lines that start with a dot.
pub fn body(text: String) -> Body {
    // lettre decides on the text before its CRLF step, for 7-bit-only
    // transports (`supports_utf8` false): the same call gives the same answer.
    let encoding = match Encoding::choose(text.as_str(), false) {
        Encoding::SevenBit => ContentTransferEncoding::SevenBit,
        Encoding::EightBit => ContentTransferEncoding::EightBit,
        Encoding::QuotedPrintable => ContentTransferEncoding::QuotedPrintable,
        Encoding::Base64 => ContentTransferEncoding::Base64,
    };
    // Converted in place: a digest's HTML is about a megabyte, and every
    // extra copy is fresh pages for the allocator.
    let text = crlf(text);
    match encoding {
        // What `Body::new` stores for these: the CRLF text as it is. The
        // CRLF text can fail lettre's own line-length check (one more byte a
        // line) that the rendered text passed, so it is not asked again.
        ContentTransferEncoding::SevenBit | ContentTransferEncoding::EightBit
            if dot_lines(&text).is_empty() =>
        {
            Body::dangerous_pre_encoded(text, encoding)
        }
        ContentTransferEncoding::SevenBit
        | ContentTransferEncoding::EightBit
        | ContentTransferEncoding::QuotedPrintable => Body::dangerous_pre_encoded(
            quoted_printable(&text),
            ContentTransferEncoding::QuotedPrintable,
        ),
        // Always accepted, and encoded as `Body::new` does; base64 has no
        // dots.
        _ => Body::new_with_encoding(text, encoding).unwrap_or_else(Body::new),
    }
}

/// Quoted-printable as lettre writes it, lines two characters shorter, and
/// a dot that starts a line written `=2E`.
fn quoted_printable(text: &[u8]) -> Vec<u8> {
    let encoded =
        quoted_printable::encode_with_options(text, Options::default().line_length_limit(QP_LINE))
            .into_bytes();
    let dots = dot_lines(&encoded);
    widen(encoded, &dots, b"=2E")
}

/// Where a line starts with a dot (lines end with CRLF).
fn dot_lines(bytes: &[u8]) -> Vec<usize> {
    let starts = std::iter::once(0).chain(
        bytes
            .windows(2)
            .enumerate()
            .filter(|(_, pair)| pair == b"\r\n")
            .map(|(i, _)| i + 2),
    );
    starts.filter(|&i| bytes.get(i) == Some(&b'.')).collect()
}

/// Every bare `\n` becomes `\r\n` (an existing `\r\n` stays as it is).
fn crlf(text: String) -> Vec<u8> {
    let bytes = text.into_bytes();
    let bare: Vec<usize> = bytes
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\n' && (i == 0 || bytes[i - 1] != b'\r'))
        .map(|(i, _)| i)
        .collect();
    widen(bytes, &bare, b"\r\n")
}

/// Replaces the byte at each of `spots` (ascending) with `with`, in place
/// and in linear time: the text grows by `with.len() - 1` bytes a spot and
/// is moved from the back, one stretch at a time.
fn widen(mut bytes: Vec<u8>, spots: &[usize], with: &[u8]) -> Vec<u8> {
    let mut read = bytes.len();
    bytes.resize(read + spots.len() * (with.len() - 1), 0);
    // Everything below `read` is still the original text; `write` is where
    // the text already moved starts. `write - read` is the growth still to
    // come, so a write never reaches below the spot being looked at.
    let mut write = bytes.len();
    for &spot in spots.iter().rev() {
        let tail = spot + 1..read;
        write -= tail.len();
        bytes.copy_within(tail, write);
        write -= with.len();
        bytes[write..write + with.len()].copy_from_slice(with);
        read = spot;
    }
    // What is left in front of the first spot has not moved.
    debug_assert_eq!(read, write);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes lettre makes the slow way, for comparison.
    fn lettre_body(text: &str) -> (Vec<u8>, ContentTransferEncoding) {
        let body = Body::new(text.to_owned());
        (body.as_ref().to_vec(), body.encoding())
    }

    /// What a reader of the body gets back.
    fn decoded(body: &[u8], encoding: ContentTransferEncoding) -> Vec<u8> {
        match encoding {
            ContentTransferEncoding::QuotedPrintable => {
                quoted_printable::decode(body, quoted_printable::ParseMode::Strict).unwrap()
            }
            _ => body.to_vec(),
        }
    }

    fn lines(body: &[u8]) -> impl Iterator<Item = &[u8]> {
        body.split(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
    }

    #[test]
    fn bodies_read_as_lettres_do_and_no_line_starts_with_a_dot() {
        let long = "x".repeat(75);
        let wide = "ä".repeat(400);
        let cases = [
            String::new(),
            "one line".to_owned(),
            "a\nb\n\nc\n".to_owned(),
            "\nstarts with a newline".to_owned(),
            "already\r\nCRLF\r\nmixed\nends".to_owned(),
            // 74 characters then `\n`: 7-bit as rendered, one byte longer
            // per line once CRLF.
            format!("{}\n{}\n", "y".repeat(74), "z".repeat(74)),
            format!("{long}\n{long}\n"),
            "Zoë Łukasiewicz-王\nJürgen\n".to_owned(),
            format!("{wide}\n"),
            "\u{1}\u{2}\u{3}binary-ish\n".repeat(50),
            "<p>html &amp; text</p>\n".repeat(2_000),
            // Dots where lines start, as written and after a soft break.
            ".NET shop\n.\n..two\nends with a dot.\n".to_owned(),
            ".Zoë\n".to_owned(),
            ".".repeat(500),
            (0..200)
                .map(|n| format!("{}.{}\n", "w".repeat(n % 90), "ü".repeat(n % 3)))
                .collect(),
        ];
        for text in cases {
            let ours = body(text.clone());
            let (theirs, encoding) = lettre_body(&text);
            let dot_line = lines(&theirs).any(|l| l.starts_with(b"."));
            let expected = match encoding {
                ContentTransferEncoding::SevenBit | ContentTransferEncoding::EightBit
                    if dot_line =>
                {
                    ContentTransferEncoding::QuotedPrintable
                }
                other => other,
            };
            assert_eq!(ours.encoding(), expected, "{text:?}");
            assert_eq!(
                decoded(ours.as_ref(), ours.encoding()),
                decoded(&theirs, encoding),
                "{text:?}"
            );
            if ours.encoding() == encoding && encoding != ContentTransferEncoding::QuotedPrintable {
                assert_eq!(ours.as_ref(), &theirs[..], "{text:?}");
            }
            for line in lines(ours.as_ref()) {
                assert!(!line.starts_with(b"."), "{text:?}: {line:?}");
                if ours.encoding() == ContentTransferEncoding::QuotedPrintable {
                    assert!(line.len() <= 76, "{text:?}: {} characters", line.len());
                }
            }
        }
    }

    #[test]
    fn a_dot_after_a_soft_break_is_encoded() {
        // 73 characters fill the first line up to its soft break.
        let ours = body(format!("{}.rest", "a".repeat(QP_LINE - 1)));
        assert_eq!(ours.encoding(), ContentTransferEncoding::QuotedPrintable);
        let expected = format!("{}=\r\n=2Erest", "a".repeat(QP_LINE - 1));
        assert_eq!(ours.as_ref(), expected.as_bytes());
    }

    #[test]
    fn bare_newlines_become_crlf_once() {
        let naive = |text: &str| text.replace("\r\n", "\n").replace('\n', "\r\n");
        for text in [
            "a\nb\r\nc\n\n",
            "\n",
            "\r\n",
            "\n\r\n\n",
            "none",
            "",
            "ends\r",
            "\r\r\nx\ny\r",
            "Zoë\nŁukasiewicz\r\n王\n",
        ] {
            let ours = crlf(text.to_owned());
            assert_eq!(String::from_utf8(ours).unwrap(), naive(text), "{text:?}");
        }
    }
}
