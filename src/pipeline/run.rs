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
use crate::lead::{Lead, LeadRow, SkipReason};
use crate::ledger::{keys, AlertKey, Entry, Ledger, Outcome, Settlement, Verdict};
use crate::storage::StorageError;

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
        let digest_after = self.limits.digest_after;
        // The same row twice (a caller's repeat) would be claimed twice in
        // one transaction, which Table storage rejects.
        let mut seen = HashSet::new();
        let mut leads: Vec<Lead> = rows
            .iter()
            .filter(|row| seen.insert((&row.partition_key, &row.row_key)))
            .map(Lead::from_row)
            .collect();
        let repeats = self.customers(&mut leads, known).await?;
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
            let mut new = false;
            let mut skipped = false;
            for channel in &mut self.channels {
                // Not routed here: nothing owed, nothing recorded.
                if !self
                    .settings
                    .destinations
                    .router
                    .takes(&channel.id(), &lead)
                {
                    continue;
                }
                let alert = AlertKey {
                    lead: lead.key.clone(),
                    channel: channel.id(),
                    lead_timestamp: stamp,
                };
                let entry = known.get(&alert.row_key());
                // A skip is decided once, for a lead with no record yet. A
                // lead already on record (claimed, due a retry) keeps its
                // course: a later history can make it look like a repeat,
                // and skipping it then would lose an alert that is owed.
                if let (Some(reason), None) = (skip, entry) {
                    skips.push((alert, reason));
                    new = true;
                    skipped = true;
                    continue;
                }
                match self.ledger.judge(entry) {
                    Verdict::Done(_) => {}
                    Verdict::Busy => {
                        self.summary.busy += 1;
                        earliest(&mut self.unfinished, stamp);
                    }
                    Verdict::Owed { prior } => {
                        new = true;
                        let lead = &lead;
                        channel.owed.add(tag, stamp, digest_after, || OwedAlert {
                            alert,
                            prior,
                            lead: Arc::clone(lead),
                        });
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
                    }
                }
            }
            if new {
                self.summary.leads_new += 1;
                tracing::debug!(lead = %lead.key, skipped = ?skip, "new lead");
                if let (Some(reason), true) = (skip, skipped) {
                    *self.summary.skipped.entry(reason).or_default() += 1;
                }
            }
        }
        if !skips.is_empty() {
            let outcomes = self.ledger.skip(&skips).await?;
            for ((alert, _), outcome) in skips.iter().zip(outcomes) {
                // A record written since the ledger was read (another run's
                // claim): its fate is not known here, so the watermark
                // stays before it and the next run judges that record.
                if outcome == Outcome::Conflict {
                    earliest(&mut self.unfinished, alert.lead_timestamp);
                }
            }
        }
        if !exhausted.is_empty() {
            self.ledger.settle(exhausted).await?;
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
            send_digests(ledger, history, many, limits, known, reread()).await
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
