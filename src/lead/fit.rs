//! Posted text cut to what a Table storage row holds. A string property holds
//! 64 KiB of UTF-16, 32,768 units (Azurite refuses a JavaScript `length`
//! over `32 * 1024`), and Table storage refuses the whole row when one
//! property is over: a lead posted with a 40,000-character description would
//! never be stored. Each field is cut instead, and says so at its start,
//! where every alert shows it (each channel shortens long fields again).
//!
//! The entity limit (1 MiB) needs nothing of its own: the webhook takes at
//! most 64 KiB of body, and the row holds that text about twice (the offer
//! is in `LeadSource` and `OfferDisplayName`), far under it.

use std::borrow::Cow;

/// The longest string property Table storage stores, in UTF-16 units.
pub const MAX_PROPERTY_UTF16: usize = 32 * 1024;

/// `text` within `max` UTF-16 units: whole when it fits, else its start
/// after a marker saying how many characters were cut from its end.
pub fn fit_text(text: &str, max: usize) -> Cow<'_, str> {
    fit_measured(text, max, char::len_utf16)
}

/// [`fit_text`] with each character's size given by `size` (the units it
/// takes where the text is stored). Cut between characters, never inside
/// one; the result may exceed `max` only when `max` cannot hold the marker.
fn fit_measured(text: &str, max: usize, size: impl Fn(char) -> usize) -> Cow<'_, str> {
    if text.chars().map(&size).sum::<usize>() <= max {
        return Cow::Borrowed(text);
    }
    let total = text.chars().count();
    // The marker for every character cut is at least as long as the one
    // for the characters actually cut.
    let room = max.saturating_sub(marker(total).len());
    let mut used = 0;
    let mut end = 0;
    for (at, c) in text.char_indices() {
        used += size(c);
        if used > room {
            break;
        }
        end = at + c.len_utf8();
    }
    let kept = &text[..end];
    let cut = total - kept.chars().count();
    Cow::Owned(format!("{}{kept}", marker(cut)))
}

/// `[cut: the last 8,123 characters did not fit in the lead table] `
/// (ASCII only, so its length is its size in any unit and in JSON).
fn marker(cut: usize) -> String {
    format!(
        "[cut: the last {} characters did not fit in the lead table] ",
        grouped(cut)
    )
}

/// `8123` as `8,123`.
fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// Customer details as the JSON text of one property, within `max` UTF-16
/// units: when the members together are too long, the longest are cut (each
/// with its marker) until the JSON fits; short ones such as the address stay
/// whole, and the JSON is never cut.
pub(super) fn fit_members(members: &mut [(&str, String)], max: usize) {
    let json_size = |members: &[(&str, String)]| -> usize {
        let fields: usize = members
            .iter()
            .map(|(key, value)| json_string_size(key) + json_string_size(value) + 1)
            .sum();
        fields + members.len().saturating_sub(1) + 2
    };
    if json_size(members) <= max {
        return;
    }
    // What the JSON takes besides the values, then shares of what is left:
    // a value smaller than its share is kept whole and leaves the rest to
    // the longer ones.
    let frame = json_size(
        &members
            .iter()
            .map(|(k, _)| (*k, String::new()))
            .collect::<Vec<_>>(),
    );
    let mut room = max.saturating_sub(frame);
    let mut order: Vec<usize> = (0..members.len()).collect();
    order.sort_by_key(|&i| json_string_size(&members[i].1));
    for (done, &i) in order.iter().enumerate() {
        let share = room / (order.len() - done);
        let fitted = fit_measured(&members[i].1, share, json_char_size);
        // The frame already counts the value's two quotes.
        room = room.saturating_sub(json_string_size(&fitted) - 2);
        if let Cow::Owned(fitted) = fitted {
            members[i].1 = fitted;
        }
    }
}

/// UTF-16 units `text` takes as a JSON string, quotes included, written as
/// serde_json writes it.
fn json_string_size(text: &str) -> usize {
    text.chars().map(json_char_size).sum::<usize>() + 2
}

fn json_char_size(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
        '\0'..='\u{1f}' => 6,
        _ => c.len_utf16(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units(s: &str) -> usize {
        s.encode_utf16().count()
    }

    #[test]
    fn text_that_fits_is_kept_whole() {
        let text = "x".repeat(MAX_PROPERTY_UTF16);
        assert!(matches!(
            fit_text(&text, MAX_PROPERTY_UTF16),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn longer_text_is_cut_to_the_limit_and_says_how_much_was_cut() {
        let text = "Please call me. ".repeat(2_500);
        let fitted = fit_text(&text, MAX_PROPERTY_UTF16);
        assert!(units(&fitted) <= MAX_PROPERTY_UTF16);
        assert!(
            units(&fitted) > MAX_PROPERTY_UTF16 - 10,
            "{}",
            units(&fitted)
        );
        let kept = fitted
            .strip_prefix("[cut: the last 7,296 characters did not fit in the lead table] ")
            .expect("marker");
        assert_eq!(kept.chars().count(), 40_000 - 7_296);
        assert!(text.starts_with(kept));
    }

    #[test]
    fn characters_outside_the_bmp_count_twice_and_are_never_split() {
        let text = "😀".repeat(20_000);
        let fitted = fit_text(&text, MAX_PROPERTY_UTF16);
        assert!(units(&fitted) <= MAX_PROPERTY_UTF16);
        let kept = fitted.split("] ").nth(1).expect("text after the marker");
        assert!(kept.chars().all(|c| c == '😀'));
        assert!(fitted.contains(&format!(
            "the last {} characters",
            grouped(20_000 - kept.chars().count())
        )));
    }

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_000), "1,000");
        assert_eq!(grouped(8_123), "8,123");
        assert_eq!(grouped(1_234_567), "1,234,567");
    }

    #[test]
    fn members_are_cut_the_json_is_whole_and_short_members_are_kept() {
        let mut members = vec![
            ("FirstName", "Ada".to_owned()),
            ("Email", "ada@example.com".to_owned()),
            ("Company", "Northwind \"Traders\"\n".repeat(1_500)),
            ("Title", "Chief\u{1}".repeat(4_000)),
        ];
        fit_members(&mut members, MAX_PROPERTY_UTF16);
        let object: serde_json::Map<String, serde_json::Value> = members
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::from(v.as_str())))
            .collect();
        let json = serde_json::Value::Object(object).to_string();
        assert!(units(&json) <= MAX_PROPERTY_UTF16, "{}", units(&json));
        assert!(units(&json) > MAX_PROPERTY_UTF16 - 100, "{}", units(&json));
        assert_eq!(members[0].1, "Ada");
        assert_eq!(members[1].1, "ada@example.com");
        assert!(members[2].1.starts_with("[cut: the last "));
        assert!(members[3].1.starts_with("[cut: the last "));
    }

    #[test]
    fn members_that_fit_are_untouched() {
        let mut members = vec![
            ("Company", "Contoso".to_owned()),
            ("Title", "x".repeat(30_000)),
        ];
        let before = members.clone();
        fit_members(&mut members, MAX_PROPERTY_UTF16);
        assert_eq!(members, before);
    }
}
