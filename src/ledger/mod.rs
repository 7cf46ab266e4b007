//! The state table: per lead table a watermark ([`watermark`]) and a delivery
//! ledger with one record per (lead, channel).
//!
//! Exactly once per channel rests on the claim: before sending, a run
//! inserts the record as `claimed` (the insert fails when the record exists)
//! or takes over a `retry` record or an expired claim with an ETag-conditional
//! replace. Only one of two racing runs can win either. A run that crashed
//! after claiming leaves a claim that others take over once `claim_lease`
//! has passed (the one case where an alert can be sent twice: the crash
//! may have come after the send).

mod batch;
mod clock;
pub mod keys;
mod record;
pub mod watermark;

use std::collections::HashMap;

use futures::StreamExt;
use time::OffsetDateTime;

pub use batch::{Outcome, Write};
pub use clock::ServerClock;
pub use record::{Entry, Policy, Record, Status, Verdict};
pub use watermark::{Watermark, Watermarks};

use crate::destination::DestinationId;
use crate::lead::{LeadKey, SkipReason};
use crate::storage::{format_timestamp, parse_timestamp};
use crate::storage::{is_entity_missing, Storage, StorageError};

/// One alert: a lead on a channel.
#[derive(Debug, Clone)]
pub struct AlertKey {
    pub lead: LeadKey,
    pub channel: DestinationId,
    /// The lead row's `Timestamp`.
    pub lead_timestamp: OffsetDateTime,
}

impl AlertKey {
    pub fn row_key(&self) -> String {
        keys::ledger_row(&self.lead, &self.channel)
    }
}

/// The result of trying to claim one alert.
#[derive(Debug, Clone)]
pub enum Claim {
    /// This run holds it: send, then [`Ledger::settle`].
    Won(Entry),
    /// Another run holds a live claim.
    Busy,
    /// Finished meanwhile by another run.
    Done(Status),
    /// Claimed and abandoned too often: settle it as failed.
    Exhausted(Entry),
    /// The state table does not take this alert's record (the reason says
    /// why): nothing was written, so it cannot be sent safely. It fails in
    /// this run; the others go on.
    Refused(String),
}

/// How a claimed alert ended in this run.
#[derive(Debug, Clone)]
pub enum Settlement {
    Delivered,
    /// Not delivered; a later run tries again.
    Retry {
        error: String,
    },
    /// Given up for good.
    Failed {
        error: String,
    },
    /// Claimed but never tried (its channel went down): the claim is
    /// returned without counting an attempt.
    Untried,
}

/// The ledger of one lead table, as used by one run.
pub struct Ledger<'a> {
    storage: &'a Storage,
    state_table: &'a str,
    partition: String,
    run_id: &'a str,
    policy: Policy,
    clock: ServerClock,
}

impl<'a> Ledger<'a> {
    pub fn new(
        storage: &'a Storage,
        state_table: &'a str,
        lead_table: &str,
        run_id: &'a str,
        policy: Policy,
    ) -> Ledger<'a> {
        Ledger {
            storage,
            state_table,
            partition: keys::ledger_partition(lead_table),
            run_id,
            policy,
            clock: ServerClock::default(),
        }
    }

    /// Judged by the storage service's clock as its answers so far tell it.
    pub fn judge(&self, entry: Option<&Entry>) -> Verdict {
        self.policy.judge(entry, self.clock.now())
    }

    pub fn claim_lease(&self) -> std::time::Duration {
        self.policy.claim_lease
    }

    /// Every record of leads written at or after `from`, by row key: one
    /// query (one request per 1,000 records) instead of one per lead.
    pub async fn window(
        &self,
        from: Option<OffsetDateTime>,
    ) -> Result<HashMap<String, Entry>, StorageError> {
        let mut filter = format!("PartitionKey eq '{}'", self.partition);
        if let Some(from) = from {
            filter.push_str(&format!(
                " and LeadTimestamp ge '{}'",
                format_timestamp(from)
            ));
        }
        let mut found = HashMap::new();
        self.query(filter, &mut found).await?;
        Ok(found)
    }

    /// Every record delivered (settled) at or after `from`, by row key: one
    /// query. Records written before `UpdatedAt` existed are not found.
    pub async fn delivered_since(
        &self,
        from: OffsetDateTime,
    ) -> Result<HashMap<String, Entry>, StorageError> {
        let filter = format!(
            "PartitionKey eq '{}' and Status eq 'delivered' and UpdatedAt ge '{}'",
            self.partition,
            format_timestamp(from)
        );
        let mut found = HashMap::new();
        self.query(filter, &mut found).await?;
        Ok(found)
    }

    /// The records with these row keys (made by [`keys`]: escaped or
    /// hashed, never holding a quote), by row key: a few queries, not one
    /// read per record.
    pub async fn records(
        &self,
        row_keys: &[String],
    ) -> Result<HashMap<String, Entry>, StorageError> {
        let mut found = HashMap::new();
        for filter in keys::row_filters(&self.partition, row_keys) {
            self.query(filter, &mut found).await?;
        }
        Ok(found)
    }

    async fn query(
        &self,
        filter: String,
        found: &mut HashMap<String, Entry>,
    ) -> Result<(), StorageError> {
        let mut pages = self
            .storage
            .table(self.state_table)
            .query()
            .filter(filter)
            .into_stream::<Record>();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.error(e, "reading the delivery ledger"))?;
            self.clock
                .observe(page.common_storage_response_headers.date);
            // Every record was written before now by the service's clock:
            // the latest one (to 100 ns, where `Date` has whole seconds)
            // tells its time more closely.
            let latest = page
                .entities
                .iter()
                .filter_map(|r| r.timestamp.as_deref())
                .max();
            if let Some(at) = latest.and_then(parse_timestamp) {
                self.clock.observe(at);
            }
            for record in page.entities {
                found.insert(record.row_key.clone(), Entry::from_record(record));
            }
        }
        Ok(())
    }

    /// One record, read fresh.
    pub async fn get(&self, row_key: &str) -> Result<Option<Entry>, StorageError> {
        let client = self
            .storage
            .table(self.state_table)
            .partition_key_client(&self.partition)
            .entity_client(row_key);
        match client.get::<Record>().await {
            Ok(found) => {
                self.clock
                    .observe(found.common_storage_response_headers.date);
                if let Some(at) = found.entity.timestamp.as_deref().and_then(parse_timestamp) {
                    self.clock.observe(at);
                }
                Ok(Some(Entry {
                    record: found.entity,
                    etag: Some(found.etag),
                }))
            }
            Err(e) if is_entity_missing(&e) => Ok(None),
            Err(e) => Err(self.error(e, "reading a ledger record")),
        }
    }

    /// Claims alerts, batched. `prior` is the record as last seen (`None`
    /// when there was none). Answers one [`Claim`] per item, in order.
    pub async fn claim(
        &self,
        items: Vec<(AlertKey, Option<Entry>)>,
    ) -> Result<Vec<Claim>, StorageError> {
        let now = format_timestamp(OffsetDateTime::now_utc());
        let mut writes = Vec::with_capacity(items.len());
        for (alert, prior) in &items {
            let record = self.claimed_record(alert, prior.as_ref(), &now);
            writes.push(match prior {
                None => Write::Insert(record),
                Some(prior) => Write::Replace(record, prior.etag.clone()),
            });
        }
        let outcomes = self.write(&writes).await?;
        let mut claims = Vec::with_capacity(items.len());
        for ((write, outcome), (alert, _)) in writes.into_iter().zip(outcomes).zip(&items) {
            let claim = match outcome {
                Outcome::Written(etag) => Claim::Won(Entry {
                    record: record_of(write),
                    etag,
                }),
                // Someone else wrote the record since it was last seen.
                Outcome::Conflict => self.claim_again(alert, &now).await?,
                Outcome::Stale | Outcome::Missing => Claim::Busy,
                Outcome::Refused(reason) => Claim::Refused(reason),
            };
            claims.push(claim);
        }
        Ok(claims)
    }

    /// After an insert found a record: judge it fresh and take it over once
    /// if that is allowed.
    async fn claim_again(&self, alert: &AlertKey, now: &str) -> Result<Claim, StorageError> {
        let current = self.get(&alert.row_key()).await?;
        Ok(match self.judge(current.as_ref()) {
            Verdict::Done(status) => Claim::Done(status),
            Verdict::Busy | Verdict::Owed { prior: None } => Claim::Busy,
            Verdict::Exhausted { prior } => Claim::Exhausted(prior),
            Verdict::Owed { prior: Some(prior) } => {
                let record = self.claimed_record(alert, Some(&prior), now);
                let write = Write::Replace(record.clone(), prior.etag);
                match self.write(std::slice::from_ref(&write)).await?.pop() {
                    Some(Outcome::Written(etag)) => Claim::Won(Entry { record, etag }),
                    Some(Outcome::Refused(reason)) => Claim::Refused(reason),
                    _ => Claim::Busy,
                }
            }
        })
    }

    fn claimed_record(&self, alert: &AlertKey, prior: Option<&Entry>, now: &str) -> Record {
        let (attempts, last_error) = prior
            .map(|p| (p.record.attempts, p.record.last_error.clone()))
            .unwrap_or_default();
        Record {
            partition_key: self.partition.clone(),
            row_key: alert.row_key(),
            status: Status::Claimed,
            attempts: attempts.saturating_add(1),
            lead_timestamp: format_timestamp(alert.lead_timestamp),
            lead_partition_key: alert.lead.partition_key.clone(),
            lead_row_key: alert.lead.row_key.clone(),
            channel: alert.channel.to_string(),
            claimed_by: self.run_id.to_owned(),
            claimed_at: now.to_owned(),
            last_error,
            skip_reason: String::new(),
            updated_at: now.to_owned(),
            timestamp: None,
            etag: None,
        }
    }

    /// Renews claims this run holds, batched, so no other run takes them
    /// over while they wait or are being sent. Answers per entry the renewed
    /// claim, or `None` where the claim was lost (taken over meanwhile).
    /// A claim whose write answered no ETag cannot be renewed safely (an
    /// unconditional write could undo a takeover) and counts as lost.
    pub async fn renew(&self, entries: &[&Entry]) -> Result<Vec<Option<Entry>>, StorageError> {
        let now = format_timestamp(OffsetDateTime::now_utc());
        let mut provable = Vec::with_capacity(entries.len());
        let mut writes = Vec::with_capacity(entries.len());
        for entry in entries {
            provable.push(entry.etag.is_some());
            if let Some(etag) = &entry.etag {
                let mut record = entry.record.clone();
                record.claimed_at = now.clone();
                record.updated_at = now.clone();
                writes.push(Write::Replace(record, Some(etag.clone())));
            }
        }
        let outcomes = self.write(&writes).await?;
        let mut renewed = writes
            .into_iter()
            .zip(outcomes)
            .map(|(write, outcome)| match outcome {
                Outcome::Written(etag) => Some(Entry {
                    record: record_of(write),
                    etag,
                }),
                _ => None,
            });
        Ok(provable
            .into_iter()
            .map(|ok| if ok { renewed.next().flatten() } else { None })
            .collect())
    }

    /// Records how claimed alerts ended, batched. A claim taken over by
    /// another run meanwhile is left to that run, except that a delivery is
    /// always recorded: it happened. Answers the records the state table
    /// refused, for the run's summary.
    pub async fn settle(&self, items: Vec<(Entry, Settlement)>) -> Result<Refusals, StorageError> {
        let now = format_timestamp(OffsetDateTime::now_utc());
        let mut failed_already = Vec::with_capacity(items.len());
        let writes: Vec<Write> = items
            .into_iter()
            .map(|(entry, settlement)| {
                failed_already.push(matches!(settlement, Settlement::Failed { .. }));
                let mut record = entry.record;
                record.updated_at = now.clone();
                let etag = match settlement {
                    Settlement::Delivered => {
                        record.status = Status::Delivered;
                        record.last_error.clear();
                        None
                    }
                    Settlement::Retry { error } => {
                        record.status = Status::Retry;
                        record.last_error = error;
                        entry.etag
                    }
                    Settlement::Failed { error } => {
                        record.status = Status::Failed;
                        record.last_error = error;
                        entry.etag
                    }
                    Settlement::Untried => {
                        record.status = Status::Retry;
                        record.attempts = record.attempts.saturating_sub(1);
                        entry.etag
                    }
                };
                Write::Replace(record, etag)
            })
            .collect();
        let outcomes = self.write(&writes).await?;
        let mut refusals = Refusals::default();
        for ((write, outcome), failed_already) in writes.iter().zip(outcomes).zip(failed_already) {
            if let Outcome::Refused(reason) = outcome {
                let record = write.record();
                refusals.add(
                    &record.channel,
                    &LeadKey {
                        partition_key: record.lead_partition_key.clone(),
                        row_key: record.lead_row_key.clone(),
                    },
                    &reason,
                    !failed_already,
                );
            }
        }
        Ok(refusals)
    }

    /// Records leads that are not alerted, once per channel, batched. Only
    /// where no record exists: a record written meanwhile (another run's
    /// claim, or one the caller did not know of) is never overwritten.
    /// Answers one outcome per item: a conflict means a record was there.
    pub async fn skip(
        &self,
        items: &[(AlertKey, SkipReason)],
    ) -> Result<Vec<Outcome>, StorageError> {
        let now = format_timestamp(OffsetDateTime::now_utc());
        let writes: Vec<Write> = items
            .iter()
            .map(|(alert, reason)| {
                let mut record = self.claimed_record(alert, None, &now);
                record.status = Status::Skipped;
                record.attempts = 0;
                record.claimed_by.clear();
                record.claimed_at.clear();
                record.skip_reason = reason.as_str().to_owned();
                Write::Insert(record)
            })
            .collect();
        self.write(&writes).await
    }

    async fn write(&self, writes: &[Write]) -> Result<Vec<Outcome>, StorageError> {
        batch::write_all(self.storage, self.state_table, &self.partition, writes).await
    }

    fn error(&self, e: azure_core::Error, what: &str) -> StorageError {
        self.storage.error(
            e,
            self.state_table,
            format!("{what} in state table {}", self.state_table),
        )
    }
}

/// Alerts whose ledger record the state table refused (see
/// [`Outcome::Refused`]): how many more failed, and a problem line each.
#[derive(Debug, Default)]
pub struct Refusals {
    /// Alerts not already counted as failed (a refused record of a failure
    /// is still one failure).
    pub failed: u64,
    /// One line per refused record, naming channel, lead keys and reason.
    pub problems: Vec<String>,
}

impl Refusals {
    /// Notes one refused record; `newly_failed` when the alert was not
    /// counted as failed already.
    pub fn add(&mut self, channel: &str, lead: &LeadKey, reason: &str, newly_failed: bool) {
        tracing::warn!(%lead, channel, "ledger record refused: {reason}");
        self.failed += u64::from(newly_failed);
        self.problems
            .push(format!("{channel}: lead {lead} failed: {reason}"));
    }
}

fn record_of(write: Write) -> Record {
    match write {
        Write::Insert(r) | Write::Replace(r, _) => r,
    }
}
