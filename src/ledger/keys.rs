//! State-table keys. Microsoft's lead keys are opaque text that may hold
//! characters Table storage forbids in keys (`/ \ # ?`, control characters) or
//! that break the SDK's entity URLs (`'`), so they are escaped. The escape
//! character is `~`, not `%`: Azure mishandles `%` in keys of point requests.
//!
//! Escaping can make a key too long to store (every non-ASCII byte takes
//! three characters), so a ledger key longer than [`MAX_KEY`] is stored as a
//! hash instead. Keys are users' data: every key that fits keeps the form
//! earlier versions wrote, so their records are still found.

use sha2::{Digest, Sha256};

use crate::destination::DestinationId;
use crate::lead::LeadKey;

/// The longest PartitionKey or RowKey Table storage takes, in UTF-16 code
/// units: "up to 1 KiB", and it keeps strings as UTF-16. Azurite refuses a
/// key of 513 units with 400 InvalidInput; Azure answers 400
/// KeyValueTooLarge. Escaped keys are ASCII, one unit a character, so a
/// ledger key of this length or less could always be written and keeps its
/// escaped form; only longer ones, which no version could store, are hashed.
pub const MAX_KEY: usize = 512;

/// Starts a hashed ledger key. [`encode`] escapes `!` and destination ids
/// are letters, digits and `:`, so no escaped key contains it: the two forms
/// never meet.
const HASHED: char = '!';

/// Partition of the watermarks of all lead tables.
pub const WATERMARK_PARTITION: &str = "watermark";

/// Every byte outside `A-Z a-z 0-9 . _ : -` becomes `~XX` (hex), so the
/// result is plain ASCII, cannot contain the `|` separator, and decodes
/// unambiguously.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b':' | b'-') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("~{byte:02X}"));
        }
    }
    out
}

/// Table names are case-insensitive: `MarketplaceLeads` and
/// `marketplaceleads` share state.
fn table_id(lead_table: &str) -> String {
    encode(&lead_table.to_ascii_lowercase())
}

/// The ledger partition of one lead table.
pub fn ledger_partition(lead_table: &str) -> String {
    format!("ledger-{}", table_id(lead_table))
}

/// The watermark row of one lead table.
pub fn watermark_row(lead_table: &str) -> String {
    table_id(lead_table)
}

/// One (lead, channel) ledger record: `encode(pk)|encode(rk)|channel`, or
/// when that is longer than [`MAX_KEY`], `!` and the hex SHA-256 of it (65
/// characters). Never change either form: records are found by it.
pub fn ledger_row(lead: &LeadKey, channel: &DestinationId) -> String {
    fitted(format!(
        "{}|{}|{}",
        encode(&lead.partition_key),
        encode(&lead.row_key),
        channel
    ))
}

/// One lead's row in a partition of per-lead records (takes):
/// `encode(pk)|encode(rk)`, hashed like [`ledger_row`] when too long.
pub fn lead_row(lead: &LeadKey) -> String {
    fitted(format!(
        "{}|{}",
        encode(&lead.partition_key),
        encode(&lead.row_key)
    ))
}

/// Query filters that find the rows `row_keys` (made here: escaped or
/// hashed, never holding a quote) of `partition`, a few rows a filter:
/// Table storage allows at most 15 comparisons in one, and one goes to the
/// partition.
pub fn row_filters(partition: &str, row_keys: &[String]) -> Vec<String> {
    row_keys
        .chunks(14)
        .map(|group| {
            let rows: Vec<String> = group.iter().map(|k| format!("RowKey eq '{k}'")).collect();
            format!("PartitionKey eq '{partition}' and ({})", rows.join(" or "))
        })
        .collect()
}

/// `row` as it is, or `!` and its hex SHA-256 when longer than [`MAX_KEY`].
fn fitted(row: String) -> String {
    if row.encode_utf16().count() <= MAX_KEY {
        row
    } else {
        format!("{HASHED}{}", hex::encode(Sha256::digest(row.as_bytes())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(pk: &str, rk: &str) -> LeadKey {
        LeadKey {
            partition_key: pk.into(),
            row_key: rk.into(),
        }
    }

    #[test]
    fn forbidden_characters_are_escaped() {
        let row = ledger_row(
            &key("9:2F28:2F2018", "a/b\\c#d?e'f|g~h%i\u{1}"),
            &DestinationId::TEAMS,
        );
        assert_eq!(
            row,
            "9:2F28:2F2018|a~2Fb~5Cc~23d~3Fe~27f~7Cg~7Eh~25i~01|teams"
        );
        for bad in ['/', '\\', '#', '?', '\'', '%'] {
            assert!(!row.contains(bad), "{bad} in {row}");
        }
    }

    #[test]
    fn distinct_keys_stay_distinct() {
        let a = ledger_row(&key("a|b", "c"), &DestinationId::EMAIL);
        let b = ledger_row(&key("a", "b|c"), &DestinationId::EMAIL);
        assert_ne!(a, b);
        assert_ne!(encode("~7C"), encode("|"));
    }

    #[test]
    fn table_names_are_case_insensitive() {
        assert_eq!(
            ledger_partition("MarketplaceLeads"),
            ledger_partition("marketplaceleads")
        );
        assert_eq!(
            ledger_partition("MarketplaceLeads"),
            "ledger-marketplaceleads"
        );
        assert_eq!(encode("Jürgen"), "J~C3~BCrgen");
    }

    /// `pk|rk|email` of exactly `len` characters, the row key all ASCII.
    fn of_length(len: usize) -> LeadKey {
        key(
            "9:2F28:2F2018",
            &"r".repeat(len - "9:2F28:2F2018||email".len()),
        )
    }

    #[test]
    fn keys_that_fit_keep_their_escaped_form() {
        let at_limit = ledger_row(&of_length(MAX_KEY), &DestinationId::EMAIL);
        assert_eq!(at_limit.len(), MAX_KEY);
        assert_eq!(
            at_limit,
            format!("9:2F28:2F2018|{}|email", "r".repeat(MAX_KEY - 20))
        );
        // 82 × `é` escapes to 492 characters: 512 with the rest.
        let accents = key("9:2F28:2F2018", &"é".repeat(82));
        let row = ledger_row(&accents, &DestinationId::EMAIL);
        assert_eq!(row, format!("9:2F28:2F2018|{}|email", "~C3~A9".repeat(82)));
        assert_eq!(row.len(), MAX_KEY);
    }

    #[test]
    fn longer_keys_are_hashed_to_a_form_no_escaped_key_has() {
        let over = ledger_row(&of_length(MAX_KEY + 1), &DestinationId::EMAIL);
        assert_eq!(over.len(), 65, "{over}");
        assert!(over.starts_with(HASHED), "{over}");
        assert!(over[1..].bytes().all(|b| b.is_ascii_hexdigit()), "{over}");
        let long = key("9:2F28:2F2018", &"é".repeat(300));
        let email = ledger_row(&long, &DestinationId::EMAIL);
        let teams = ledger_row(&long, &DestinationId::TEAMS);
        assert_ne!(email, teams);
        assert_eq!(email, ledger_row(&long, &DestinationId::EMAIL));
        assert!(email.len() <= MAX_KEY);
        let other = key("9:2F28:2F2018", &format!("{}è", "é".repeat(299)));
        assert_ne!(email, ledger_row(&other, &DestinationId::EMAIL));
        // The marker is escaped wherever lead text holds it.
        let marked = ledger_row(&key("!", "!"), &DestinationId::EMAIL);
        assert_eq!(marked, "~21|~21|email");
    }
}
