//! State-table keys. Microsoft's lead keys are opaque text that may hold
//! characters Table storage forbids in keys (`/ \ # ?`, control characters) or
//! that break the SDK's entity URLs (`'`), so they are escaped. The escape
//! character is `~`, not `%`: Azure mishandles `%` in keys of point requests.

use crate::lead::LeadKey;
use crate::notify::DestinationId;

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

/// One (lead, channel) ledger record.
pub fn ledger_row(lead: &LeadKey, channel: &DestinationId) -> String {
    format!(
        "{}|{}|{}",
        encode(&lead.partition_key),
        encode(&lead.row_key),
        channel
    )
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
}
