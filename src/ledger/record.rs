//! One (lead, channel) record of the delivery ledger, and what a run may do
//! with the alert it stands for.

use std::time::Duration;

use azure_core::Etag;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::storage::parse_timestamp;

/// Where one alert stands. The lowercase names are stored: never rename.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// A run is sending it now (or crashed while doing so).
    Claimed,
    Delivered,
    /// Not delivered yet; a later run tries again.
    Retry,
    /// Given up for good.
    Failed,
    /// The lead is not alerted (test, .edu, do not contact).
    Skipped,
    /// Written by a newer version: left alone.
    #[serde(other)]
    Unknown,
}

/// A ledger entity. Times are fixed-width UTC text (see
/// [`crate::storage::format_timestamp`]) so `LeadTimestamp` filters compare
/// as text in time order. No personal data: keys, counts, reasons.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Record {
    pub partition_key: String,
    pub row_key: String,
    pub status: Status,
    /// Runs that have claimed this alert so far.
    #[serde(default)]
    pub attempts: u32,
    /// The lead row's `Timestamp`.
    #[serde(default)]
    pub lead_timestamp: String,
    #[serde(default)]
    pub lead_partition_key: String,
    #[serde(default)]
    pub lead_row_key: String,
    #[serde(default)]
    pub channel: String,
    #[serde(default)]
    pub claimed_by: String,
    #[serde(default)]
    pub claimed_at: String,
    #[serde(default)]
    pub last_error: String,
    #[serde(default)]
    pub skip_reason: String,
    #[serde(default)]
    pub updated_at: String,
    /// When the service last wrote the record, by its own clock. Read from
    /// query results; never written.
    #[serde(rename = "Timestamp", default, skip_serializing)]
    pub timestamp: Option<String>,
    /// Read from query results; never written.
    #[serde(rename = "odata.etag", default, skip_serializing)]
    pub etag: Option<String>,
}

/// A record as last read or written, with the ETag that proves it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub record: Record,
    pub etag: Option<Etag>,
}

impl Entry {
    pub fn from_record(mut record: Record) -> Entry {
        let etag = record.etag.take().map(Etag::from);
        Entry { record, etag }
    }

    /// When the claim on it was taken or last renewed: the service's
    /// `Timestamp` where the record was read (every claim write sets it),
    /// else the claiming run's own `ClaimedAt`.
    fn claimed_since(&self) -> Option<OffsetDateTime> {
        let record = &self.record;
        record
            .timestamp
            .as_deref()
            .and_then(parse_timestamp)
            .or_else(|| parse_timestamp(&record.claimed_at))
    }
}

/// What a run may do about one alert.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Delivered, skipped or given up: nothing to do.
    Done(Status),
    /// Another run's claim is still within its lease.
    Busy,
    /// Send it, claiming first: a new record, or a takeover of `prior`.
    Owed { prior: Option<Entry> },
    /// Abandoned by crashed runs too often: give up on it.
    Exhausted { prior: Entry },
}

/// Rules for judging records.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub claim_lease: Duration,
    pub max_attempts: u32,
}

impl Policy {
    /// `now` is the storage service's time (see [`super::ServerClock`]).
    pub fn judge(&self, entry: Option<&Entry>, now: OffsetDateTime) -> Verdict {
        let Some(entry) = entry else {
            return Verdict::Owed { prior: None };
        };
        let record = &entry.record;
        match record.status {
            Status::Delivered | Status::Skipped | Status::Failed => Verdict::Done(record.status),
            // Unknown to this version: sending could duplicate what a newer
            // version already did.
            Status::Unknown => Verdict::Done(Status::Unknown),
            Status::Retry if record.attempts >= self.max_attempts => Verdict::Exhausted {
                prior: entry.clone(),
            },
            Status::Retry => Verdict::Owed {
                prior: Some(entry.clone()),
            },
            Status::Claimed => {
                let live = entry
                    .claimed_since()
                    .is_some_and(|at| now - at < self.claim_lease);
                if live {
                    Verdict::Busy
                } else if record.attempts >= self.max_attempts {
                    Verdict::Exhausted {
                        prior: entry.clone(),
                    }
                } else {
                    Verdict::Owed {
                        prior: Some(entry.clone()),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::format_timestamp;
    use time::macros::datetime;

    fn entry(status: Status, attempts: u32, claimed_at: OffsetDateTime) -> Entry {
        Entry {
            record: Record {
                partition_key: "p".into(),
                row_key: "r".into(),
                status,
                attempts,
                lead_timestamp: String::new(),
                lead_partition_key: String::new(),
                lead_row_key: String::new(),
                channel: "email".into(),
                claimed_by: "run".into(),
                claimed_at: format_timestamp(claimed_at),
                last_error: String::new(),
                skip_reason: String::new(),
                updated_at: String::new(),
                timestamp: None,
                etag: None,
            },
            etag: Some(Etag::from("W/\"1\"")),
        }
    }

    const POLICY: Policy = Policy {
        claim_lease: Duration::from_secs(600),
        max_attempts: 3,
    };

    #[test]
    fn claims_block_until_the_lease_ends() {
        let at = datetime!(2026-01-01 10:00 UTC);
        let claimed = entry(Status::Claimed, 1, at);
        let soon = at + Duration::from_secs(599);
        let later = at + Duration::from_secs(601);
        assert!(matches!(POLICY.judge(Some(&claimed), soon), Verdict::Busy));
        assert!(matches!(
            POLICY.judge(Some(&claimed), later),
            Verdict::Owed { prior: Some(_) }
        ));
        let worn = entry(Status::Claimed, 3, at);
        assert!(matches!(
            POLICY.judge(Some(&worn), later),
            Verdict::Exhausted { .. }
        ));
    }

    #[test]
    fn leases_run_on_the_service_clock() {
        // The claiming machine's clock was an hour slow: its `ClaimedAt`
        // says 08:00 while the service stamped the claim at 09:00.
        let mut claimed = entry(Status::Claimed, 1, datetime!(2026-01-01 08:00 UTC));
        claimed.record.timestamp = Some("2026-01-01T09:00:00.0000000Z".into());
        let service_now = datetime!(2026-01-01 09:05 UTC);
        assert!(matches!(
            POLICY.judge(Some(&claimed), service_now),
            Verdict::Busy
        ));
        assert!(matches!(
            POLICY.judge(Some(&claimed), service_now + Duration::from_secs(600)),
            Verdict::Owed { prior: Some(_) }
        ));
    }

    #[test]
    fn finished_records_are_done_and_missing_ones_owed() {
        let at = datetime!(2026-01-01 10:00 UTC);
        for status in [
            Status::Delivered,
            Status::Skipped,
            Status::Failed,
            Status::Unknown,
        ] {
            assert!(matches!(
                POLICY.judge(Some(&entry(status, 1, at)), at),
                Verdict::Done(s) if s == status
            ));
        }
        assert!(matches!(
            POLICY.judge(None, at),
            Verdict::Owed { prior: None }
        ));
        assert!(matches!(
            POLICY.judge(Some(&entry(Status::Retry, 2, at)), at),
            Verdict::Owed { prior: Some(_) }
        ));
    }

    #[test]
    fn unknown_statuses_read_back() {
        let record: Record = serde_json::from_value(serde_json::json!({
            "PartitionKey": "p", "RowKey": "r", "Status": "archived", "odata.etag": "W/\"x\""
        }))
        .unwrap();
        assert_eq!(record.status, Status::Unknown);
        let entry = Entry::from_record(record);
        assert_eq!(
            entry.etag.map(|e| e.to_string()).as_deref(),
            Some("W/\"x\"")
        );
        assert!(!serde_json::to_string(&entry.record)
            .unwrap()
            .contains("odata"));
    }
}
