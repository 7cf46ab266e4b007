//! Times as Table storage writes them: the lead table's `Timestamp` and every
//! time the state table keeps.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// `2026-11-21T10:00:00.1234567Z`: the 7-digit UTC form Table storage uses.
/// Fixed width, so stored values compare as text in the same order as times.
pub fn format_timestamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:07}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond() / 100
    )
}

/// Reads a timestamp as Table storage writes it (RFC 3339).
pub fn parse_timestamp(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text.trim(), &Rfc3339).ok()
}
