//! The storage service's clock, as its answers tell it. Claims expire by
//! this clock, not by the local one: two machines (or one with a clock set
//! wrong) judging the same claim must agree on when its lease ends.

use std::sync::Mutex;
use std::time::Instant;

use time::OffsetDateTime;

/// The service's time, from what its answers tell: their `Date` header and
/// the `Timestamp` of records read. Each was written before the answer
/// arrived (and `Date` has whole seconds), so each reading is a little
/// behind the service's real time; the latest reading is kept and carried
/// forward on this machine's monotonic clock, so a wall clock stepped
/// meanwhile changes nothing. Judged by it, a claim may look live a little
/// longer than it is, never shorter.
#[derive(Debug, Default)]
pub struct ServerClock {
    /// The service's time as last read, and when it was read.
    reading: Mutex<Option<(OffsetDateTime, Instant)>>,
}

impl ServerClock {
    /// Takes note of a time the service had passed when an answer that
    /// arrived now was written.
    pub fn observe(&self, server_time: OffsetDateTime) {
        self.observe_at(server_time, Instant::now());
    }

    fn observe_at(&self, server_time: OffsetDateTime, now: Instant) {
        let Ok(mut reading) = self.reading.lock() else {
            return;
        };
        let ahead = match *reading {
            Some(last) => server_time > carried(last, now),
            None => true,
        };
        if ahead {
            *reading = Some((server_time, now));
        }
    }

    /// The service's time now; this machine's until an answer was seen.
    pub fn now(&self) -> OffsetDateTime {
        let reading = self.reading.lock().ok().and_then(|r| *r);
        match reading {
            Some(last) => carried(last, Instant::now()),
            None => OffsetDateTime::now_utc(),
        }
    }
}

fn carried((time, at): (OffsetDateTime, Instant), now: Instant) -> OffsetDateTime {
    let elapsed =
        time::Duration::try_from(now.saturating_duration_since(at)).unwrap_or(time::Duration::MAX);
    time.checked_add(elapsed).unwrap_or(time)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use time::macros::datetime;

    #[test]
    fn the_service_clock_is_read_from_its_answers_and_carried_forward() {
        let clock = ServerClock::default();
        let start = Instant::now();
        clock.observe_at(datetime!(2026-12-05 09:00:00 UTC), start);
        let later = start + Duration::from_secs(10);
        assert_eq!(
            carried(clock.reading.lock().unwrap().unwrap(), later),
            datetime!(2026-12-05 09:00:10 UTC)
        );
        // A reading behind what is carried forward (it was on its way
        // longer, or has whole seconds) changes nothing; one ahead wins.
        clock.observe_at(datetime!(2026-12-05 09:00:09 UTC), later);
        assert_eq!(
            clock.reading.lock().unwrap().unwrap(),
            (datetime!(2026-12-05 09:00:00 UTC), start)
        );
        clock.observe_at(datetime!(2026-12-05 09:00:11 UTC), later);
        assert_eq!(
            clock.reading.lock().unwrap().unwrap(),
            (datetime!(2026-12-05 09:00:11 UTC), later)
        );
    }

    #[test]
    fn without_an_answer_it_is_this_machines_clock() {
        let clock = ServerClock::default();
        let before = OffsetDateTime::now_utc();
        let now = clock.now();
        assert!(now >= before && now <= OffsetDateTime::now_utc());
    }
}
