//! `CreatedTime`: undocumented text. Microsoft's rows carry a .NET-style
//! US date (`11/21/2026 10:44:59 AM`, the same month/day/year order as the
//! PartitionKey); other writers use RFC 3339. Times without an offset are
//! taken as UTC, which is what Microsoft's services write.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

/// Reads `CreatedTime` when it is a date in a known form.
pub fn parse_created_time(text: &str) -> Option<OffsetDateTime> {
    let text = text.trim();
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(t);
    }
    let with_offset = format_description!(
        "[year]-[month]-[day] [hour padding:none]:[minute]:[second][optional [.[subsecond]]] [offset_hour sign:mandatory]:[offset_minute][optional [:[offset_second]]]"
    );
    if let Ok(t) = OffsetDateTime::parse(text, with_offset) {
        return Some(t);
    }
    let local = [
        format_description!(
            "[month padding:none]/[day padding:none]/[year] [hour repr:12 padding:none]:[minute]:[second] [period case_sensitive:false]"
        ),
        format_description!(
            "[month padding:none]/[day padding:none]/[year] [hour padding:none]:[minute]:[second]"
        ),
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"),
        format_description!("[year]-[month]-[day] [hour]:[minute]:[second][optional [.[subsecond]]]"),
    ];
    local
        .iter()
        .find_map(|format| PrimitiveDateTime::parse(text, format).ok())
        .map(PrimitiveDateTime::assume_utc)
}

/// `CreatedTime` the way Microsoft writes it: `11/21/2026 10:44:59 AM` (UTC).
pub fn format_created_time(t: OffsetDateTime) -> String {
    let format = format_description!(
        "[month padding:none]/[day padding:none]/[year] [hour repr:12 padding:none]:[minute]:[second] [period]"
    );
    t.to_offset(time::UtcOffset::UTC)
        .format(format)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn known_forms_parse_to_the_same_instant() {
        let at = datetime!(2026-11-21 22:44:59 UTC);
        for text in [
            "11/21/2026 10:44:59 PM",
            "11/21/2026 10:44:59 pm",
            "11/21/2026 22:44:59",
            "2026-11-21T22:44:59Z",
            "2026-11-21T23:44:59+01:00",
            "2026-11-21T22:44:59",
            "2026-11-21 22:44:59.0",
            " 2026-11-21 22:44:59 +00:00:00 ",
        ] {
            assert_eq!(parse_created_time(text), Some(at), "{text}");
        }
        // What `seed` wrote before: OffsetDateTime's Display.
        assert_eq!(
            parse_created_time("2026-11-23 9:03:13.558089198 +00:00:00"),
            Some(datetime!(2026-11-23 9:03:13.558089198 UTC))
        );
        for text in ["yesterday", "", "21.11.2026", "13/45/2026 10:00:00 AM"] {
            assert_eq!(parse_created_time(text), None, "{text}");
        }
    }

    #[test]
    fn written_like_microsoft_and_read_back() {
        let at = datetime!(2026-11-21 09:03:13 UTC);
        assert_eq!(format_created_time(at), "11/21/2026 9:03:13 AM");
        assert_eq!(parse_created_time(&format_created_time(at)), Some(at));
        let noon = datetime!(2026-01-05 12:00:00 UTC);
        assert_eq!(format_created_time(noon), "1/5/2026 12:00:00 PM");
    }
}
