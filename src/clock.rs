//! "Now" for the schedule of the summary, the lead-flow health check and
//! `report`. Debug builds (the integration tests' binary) take it from
//! `LEAD_NOTIFIER_TEST_NOW` (RFC 3339) so a test can stand at next Monday or
//! three weeks on without waiting; release builds, which are what ships,
//! never read that variable.

use time::OffsetDateTime;

/// The test-only variable, honoured in debug builds alone.
pub const TEST_NOW: &str = "LEAD_NOTIFIER_TEST_NOW";

pub fn now() -> OffsetDateTime {
    if cfg!(debug_assertions) {
        if let Some(at) = std::env::var(TEST_NOW).ok().and_then(|t| {
            OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339).ok()
        }) {
            return at;
        }
    }
    OffsetDateTime::now_utc()
}
