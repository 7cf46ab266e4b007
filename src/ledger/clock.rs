//! The storage service's clock, as its answers tell it. Claims expire by
//! this clock, not by the local one: two machines (or one with a clock set
//! wrong) judging the same claim must agree on when its lease ends.

use std::sync::atomic::{AtomicI64, Ordering};

use time::{Duration, OffsetDateTime};

const UNKNOWN: i64 = i64::MIN;

/// How far the service's clock is ahead of this machine's, from what its
/// answers tell: their `Date` header and the `Timestamp` of records read.
/// Each was written before the answer arrived (and `Date` has whole
/// seconds), so each reading is a little behind the service's real time;
/// the largest reading is kept. Judged by it, a claim
/// may look live a little longer than it is, never shorter.
#[derive(Debug)]
pub struct ServerClock {
    ahead_ms: AtomicI64,
}

impl Default for ServerClock {
    fn default() -> Self {
        ServerClock {
            ahead_ms: AtomicI64::new(UNKNOWN),
        }
    }
}

impl ServerClock {
    /// Takes note of a time the service had passed when an answer that
    /// arrived now was written.
    pub fn observe(&self, server_date: OffsetDateTime) {
        self.observe_at(server_date, OffsetDateTime::now_utc());
    }

    fn observe_at(&self, server_date: OffsetDateTime, local: OffsetDateTime) {
        let ahead = (server_date - local).whole_milliseconds();
        let ahead = i64::try_from(ahead).unwrap_or(if ahead < 0 { i64::MIN + 1 } else { i64::MAX });
        self.ahead_ms.fetch_max(ahead, Ordering::Relaxed);
    }

    /// The service's time now; this machine's until an answer was seen.
    pub fn now(&self) -> OffsetDateTime {
        self.at(OffsetDateTime::now_utc())
    }

    fn at(&self, local: OffsetDateTime) -> OffsetDateTime {
        match self.ahead_ms.load(Ordering::Relaxed) {
            UNKNOWN => local,
            ahead => local
                .checked_add(Duration::milliseconds(ahead))
                .unwrap_or(local),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn the_service_clock_is_read_from_its_answers() {
        let clock = ServerClock::default();
        let local = datetime!(2026-12-05 10:00:00 UTC);
        assert_eq!(clock.at(local), local);
        // This machine is an hour fast.
        clock.observe_at(datetime!(2026-12-05 09:00:00 UTC), local);
        assert_eq!(clock.at(local), datetime!(2026-12-05 09:00:00 UTC));
        // A later answer that says a second more (whole seconds) wins; one
        // that says less (it was on its way longer) does not.
        clock.observe_at(datetime!(2026-12-05 09:00:01 UTC), local);
        clock.observe_at(datetime!(2026-12-05 08:59:58 UTC), local);
        assert_eq!(clock.at(local), datetime!(2026-12-05 09:00:01 UTC));
    }
}
