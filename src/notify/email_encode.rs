//! Rendered text → MIME body, in linear time.
//!
//! lettre's `Body::new` turns bare `\n` into `\r\n` with one `String::insert`
//! per line, shifting the rest of the body each time: quadratic in the body's
//! size, and a 500-lead digest has thousands of lines (glibc's vectorised
//! `memmove` hides it; musl's does not). Here the line endings are converted
//! in one pass first, so lettre finds nothing left to insert. The bytes are
//! the same as `Body::new` would have made: the transfer encoding is chosen
//! on the text as rendered, exactly as lettre chooses it.

use email_encoding::body::Encoding;
use lettre::message::header::ContentTransferEncoding;
use lettre::message::Body;

/// The MIME body lettre's `Body::new(text)` would make, without its
/// quadratic line-ending step.
pub fn body(text: String) -> Body {
    // lettre decides on the text before its CRLF step, for 7-bit-only
    // transports (`supports_utf8` false): the same call gives the same answer.
    let encoding = match Encoding::choose(text.as_str(), false) {
        Encoding::SevenBit => ContentTransferEncoding::SevenBit,
        Encoding::EightBit => ContentTransferEncoding::EightBit,
        Encoding::QuotedPrintable => ContentTransferEncoding::QuotedPrintable,
        Encoding::Base64 => ContentTransferEncoding::Base64,
    };
    // Converted in place: a digest's HTML is 3 MB, and every extra copy is
    // fresh pages for musl's allocator, which returns them to the kernel.
    let text = crlf(text);
    match encoding {
        // What `Body::new` stores for these: the CRLF text as it is. The
        // CRLF text can fail lettre's own line-length check (one more byte a
        // line) that the rendered text passed, so it is not asked again.
        ContentTransferEncoding::SevenBit | ContentTransferEncoding::EightBit => {
            Body::dangerous_pre_encoded(text, encoding)
        }
        // The call lettre's `Body::new` makes for this encoding (the same
        // crate and version); done here, lettre's second choice of encoding
        // and second line-ending scan over the whole text are skipped.
        ContentTransferEncoding::QuotedPrintable => {
            Body::dangerous_pre_encoded(quoted_printable::encode(text), encoding)
        }
        // Always accepted, and encoded as `Body::new` does.
        _ => Body::new_with_encoding(text, encoding).unwrap_or_else(Body::new),
    }
}

/// Every bare `\n` becomes `\r\n` (an existing `\r\n` stays as it is), in
/// place and in linear time: the text grows by one byte per bare line end
/// and is moved from the back, one line at a time.
fn crlf(text: String) -> Vec<u8> {
    let mut bytes = text.into_bytes();
    let bare = bytes
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\n' && (i == 0 || bytes[i - 1] != b'\r'))
        .count();
    let mut read = bytes.len();
    bytes.resize(read + bare, 0);
    // Everything below `read` is still the original text; `write` is where
    // the converted text already moved starts. `write - read` is the number
    // of bare line ends still to convert, so a write never reaches below
    // the line end being looked at.
    let mut write = bytes.len();
    while let Some(newline) = bytes[..read].iter().rposition(|&b| b == b'\n') {
        let line = newline + 1..read;
        write -= line.len();
        bytes.copy_within(line, write);
        let carriage_return = newline > 0 && bytes[newline - 1] == b'\r';
        write -= 1;
        bytes[write] = b'\n';
        if !carriage_return {
            write -= 1;
            bytes[write] = b'\r';
        }
        read = newline;
    }
    // The first line has not moved: every bare line end is converted.
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

    #[test]
    fn bodies_match_lettres_byte_for_byte() {
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
        ];
        for text in cases {
            let ours = body(text.clone());
            let (bytes, encoding) = lettre_body(&text);
            assert_eq!(ours.encoding(), encoding, "{text:?}");
            assert_eq!(ours.as_ref(), &bytes[..], "{text:?}");
        }
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
