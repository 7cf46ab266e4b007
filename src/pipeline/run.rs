//! One run over the lead rows, in two passes. The first judges each
//! (lead, channel) against the ledger, records skipped leads and counts what
//! is owed per channel, keeping the leads only while there are few. Then
//! every channel is served at once: a few alerts one by one from what was
//! kept, many as digests from a second reading of the same rows
//! ([`super::digests`]). Memory stays flat in the backlog; counts decide
//! between single alerts and digests and give a digest its total.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::future::join_all;
use time::OffsetDateTime;

use super::deliver::{Channel, Limits};
use super::digests::{send_digests, Reread};
use super::earliest;
use super::owed::{LeadTag, OwedAlert};
use super::summary::RunSummary;
use crate::config::Settings;
use crate::history::RunHistory;
use crate::lead::{Lead, LeadKey, LeadRow, SkipReason};
use crate::ledger::{keys, AlertKey, Entry, Ledger, Outcome, Refusals, Settlement, Verdict};
use crate::storage::StorageError;

/// A skip to record: the alert, and where to follow it should its record
/// be there already.
struct Skip {
    alert: AlertKey,
    reason: SkipReason,
    /// The channel's index in [`Run::channels`].
    channel: usize,
    lead: Arc<Lead>,
    tag: LeadTag,
    /// The lead's index in the page's [`LeadCount`]s.
    count: usize,
}

/// What one lead of a page counts for in the summary.
struct LeadCount {
    key: LeadKey,
    /// Something is owed on some channel.
    new: bool,
    /// Newly recorded as not alerted, on some channel.
    skipped: Option<SkipReason>,
}

pub(super) struct Run<'a> {
    pub ledger: Ledger<'a>,
    /// Customer histories: looked up per page, saved before alerts go out.
    pub history: RunHistory<'a>,
    pub channels: Vec<Channel>,
    pub limits: Limits,
    pub settings: &'a Settings,
    pub summary: RunSummary,
    /// Earliest timestamp of a lead with an alert left pending or busy.
    pub unfinished: Option<OffsetDateTime>,
    /// Latest timestamp seen.
    pub latest: Option<OffsetDateTime>,
}

impl Run<'_> {
    /// Judges one page of rows. `known` holds the ledger records of the
    /// scan window; an alert missing from it is claimed by insert, which
    /// finds a record written meanwhile anyway.
    pub async fn judge(
        &mut self,
        rows: &[LeadRow],
        known: &HashMap<String, Entry>,
    ) -> Result<(), StorageError> {
        let now = OffsetDateTime::now_utc();
        // The same row twice (a caller's repeat) would be claimed twice in
        // one transaction, which Table storage rejects.
        let mut seen = HashSet::new();
        let mut leads: Vec<Lead> = rows
            .iter()
            .filter(|row| seen.insert((&row.partition_key, &row.row_key)))
            .map(Lead::from_row)
            .collect();
        for lead in &mut leads {
            crate::take::attach(self.settings.take.as_ref(), lead, now);
        }
        let repeats = self.customers(&mut leads, known).await?;
        let mut counts = Vec::with_capacity(leads.len());
        let mut skips = Vec::new();
        let mut exhausted = Vec::new();
        for (lead, repeat) in leads.into_iter().zip(repeats) {
            let lead = Arc::new(lead);
            let tag = LeadTag::of(&lead.key.partition_key, &lead.key.row_key);
            // Rows posted to the webhook have no Timestamp yet; a later
            // scan matches them by key.
            let stamp = lead.timestamp.unwrap_or(now);
            self.latest = Some(self.latest.map_or(stamp, |l| l.max(stamp)));
            let skip = self
                .settings
                .filters
                .skip_reason(&lead)
                .or(repeat.then_some(SkipReason::Repeat));
            let mut count = LeadCount {
                key: lead.key.clone(),
                new: false,
                skipped: None,
            };
            for index in 0..self.channels.len() {
                let id = self.channels[index].id();
                // Not routed here: nothing owed, nothing recorded.
                if !self.settings.destinations.router.takes(&id, &lead) {
                    continue;
                }
                let alert = AlertKey {
                    lead: lead.key.clone(),
                    channel: id,
                    lead_timestamp: stamp,
                };
                let entry = known.get(&alert.row_key());
                // A lead this destination cannot take (HubSpot without an
                // email address) is skipped here only.
                let skip = skip.or_else(|| self.channels[index].notifier.refuses(&lead));
                // A skip is decided once, for a lead with no record yet. A
                // lead already on record (claimed, due a retry) keeps its
                // course: a later history can make it look like a repeat,
                // and skipping it then would lose an alert that is owed.
                if let (Some(reason), None) = (skip, entry) {
                    skips.push(Skip {
                        alert,
                        reason,
                        channel: index,
                        lead: Arc::clone(&lead),
                        tag,
                        count: counts.len(),
                    });
                    continue;
                }
                let verdict = self.ledger.judge(entry);
                count.new |= self.follow(index, verdict, alert, &lead, tag, &mut exhausted);
            }
            counts.push(count);
        }
        if !skips.is_empty() {
            self.record_skips(skips, &mut counts, &mut exhausted)
                .await?;
        }
        for count in counts {
            if count.new || count.skipped.is_some() {
                self.summary.leads_new += 1;
                tracing::debug!(lead = %count.key, skipped = ?count.skipped, "new lead");
            }
            if let Some(reason) = count.skipped {
                *self.summary.skipped.entry(reason).or_default() += 1;
            }
        }
        if !exhausted.is_empty() {
            let refused = self.ledger.settle(exhausted).await?;
            self.refused(refused);
        }
        Ok(())
    }

    /// Records the state table would not take: failed alerts.
    fn refused(&mut self, refused: Refusals) {
        self.summary.failed += refused.failed;
        for problem in refused.problems {
            self.summary.problem(problem);
        }
    }

    /// Does what `verdict` says about one alert on the channel at `index`;
    /// `true` when the alert is owed.
    fn follow(
        &mut self,
        index: usize,
        verdict: Verdict,
        alert: AlertKey,
        lead: &Arc<Lead>,
        tag: LeadTag,
        exhausted: &mut Vec<(Entry, Settlement)>,
    ) -> bool {
        let stamp = alert.lead_timestamp;
        match verdict {
            Verdict::Done(_) => false,
            Verdict::Busy => {
                self.summary.busy += 1;
                earliest(&mut self.unfinished, stamp);
                false
            }
            Verdict::Owed { prior } => {
                let digest_after = self.limits.digest_after;
                self.channels[index]
                    .owed
                    .add(tag, stamp, digest_after, || OwedAlert {
                        alert,
                        prior,
                        lead: Arc::clone(lead),
                    });
                true
            }
            Verdict::Exhausted { prior } => {
                let error = format!(
                    "gave up after {} attempt(s); last error: {}",
                    prior.record.attempts, prior.record.last_error
                );
                self.summary.failed += 1;
                self.summary.problem(format!(
                    "{}: lead {} failed for good: {error}",
                    alert.channel, alert.lead
                ));
                exhausted.push((prior, Settlement::Failed { error }));
                false
            }
        }
    }

    /// Records skipped leads. Where a record was there already (another
    /// run's claim, or one of a lead whose row changed after its record
    /// left the scan's window), that record is read and judged like any
    /// other: only one that is really unfinished holds the watermark, so a
    /// rewritten skipped row does not pin it for good.
    async fn record_skips(
        &mut self,
        skips: Vec<Skip>,
        counts: &mut [LeadCount],
        exhausted: &mut Vec<(Entry, Settlement)>,
    ) -> Result<(), StorageError> {
        let items: Vec<(AlertKey, SkipReason)> =
            skips.iter().map(|s| (s.alert.clone(), s.reason)).collect();
        let outcomes = self.ledger.skip(&items).await?;
        let mut conflicts = Vec::new();
        let mut refused = Refusals::default();
        for (skip, outcome) in skips.into_iter().zip(outcomes) {
            match outcome {
                Outcome::Written(_) => counts[skip.count].skipped = Some(skip.reason),
                Outcome::Refused(reason) => {
                    let channel = skip.alert.channel.to_string();
                    refused.add(&channel, &skip.alert.lead, &reason, true);
                }
                Outcome::Conflict | Outcome::Stale | Outcome::Missing => conflicts.push(skip),
            }
        }
        self.refused(refused);
        if conflicts.is_empty() {
            return Ok(());
        }
        let row_keys: Vec<String> = conflicts.iter().map(|s| s.alert.row_key()).collect();
        let found = self.ledger.records(&row_keys).await?;
        for (skip, row_key) in conflicts.into_iter().zip(row_keys) {
            let Some(entry) = found.get(&row_key) else {
                // Gone again since: the next run decides.
                earliest(&mut self.unfinished, skip.alert.lead_timestamp);
                continue;
            };
            let verdict = self.ledger.judge(Some(entry));
            let owed = self.follow(
                skip.channel,
                verdict,
                skip.alert,
                &skip.lead,
                skip.tag,
                exhausted,
            );
            counts[skip.count].new |= owed;
        }
        Ok(())
    }

    /// Gives the leads with something left to do their customers' history
    /// and records them there (saved before any alert goes out); answers,
    /// per lead, whether it is a repeat. Leads done on every channel cost
    /// nothing, so an idle run reads no history.
    async fn customers(
        &mut self,
        leads: &mut [Lead],
        known: &HashMap<String, Entry>,
    ) -> Result<Vec<bool>, StorageError> {
        let open: Vec<bool> = leads
            .iter()
            .map(|lead| {
                self.channels.iter().any(|channel| {
                    let id = channel.id();
                    let row = keys::ledger_row(&lead.key, &id);
                    self.settings.destinations.router.takes(&id, lead)
                        && !matches!(self.ledger.judge(known.get(&row)), Verdict::Done(_))
                })
            })
            .collect();
        let mut judged: Vec<&mut Lead> = leads
            .iter_mut()
            .zip(&open)
            .filter_map(|(lead, &open)| open.then_some(lead))
            .collect();
        if judged.is_empty() {
            return Ok(vec![false; open.len()]);
        }
        let mut found = self.history.judge(&mut judged).await?.into_iter();
        self.history.save().await?;
        Ok(open
            .into_iter()
            .map(|open| open && found.next().unwrap_or(false))
            .collect())
    }

    /// Sends everything the run owes, all channels at once (a slow or
    /// broken one does not hold up the others): one by one where few are
    /// owed, digests from `reread` where many are.
    pub async fn deliver<'r>(
        &mut self,
        known: &HashMap<String, Entry>,
        reread: impl FnOnce() -> Reread<'r>,
    ) -> Result<(), StorageError> {
        let ledger = &self.ledger;
        let history = &self.history;
        let take = self.settings.take.as_ref();
        let limits = self.limits;
        let (many, few): (Vec<&mut Channel>, Vec<&mut Channel>) = self
            .channels
            .iter_mut()
            .partition(|c| c.owed.count() > limits.digest_after);
        let each = join_all(few.into_iter().map(|c| c.send_few(ledger, limits)));
        let digests = async {
            if many.is_empty() {
                return Ok(());
            }
            send_digests(ledger, history, take, many, limits, known, reread()).await
        };
        let (each, digests) = futures::join!(each, digests);
        let mut first_error = digests.err();
        for result in each {
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        for channel in &mut self.channels {
            channel.finish();
            let tally = std::mem::take(&mut channel.tally);
            *self.summary.delivered.entry(channel.id()).or_default() += tally.delivered;
            self.summary.failed += tally.failed;
            self.summary.pending += tally.pending;
            self.summary.busy += tally.busy;
            if let Some(t) = tally.unfinished {
                earliest(&mut self.unfinished, t);
            }
            for problem in tally.problems {
                self.summary.problem(problem);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}
