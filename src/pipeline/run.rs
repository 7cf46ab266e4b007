//! One run over a set of lead rows: judge each (lead, channel) against the
//! ledger, record skipped leads, deliver what is owed on every channel at
//! once, and keep track of how far the watermark may move.

use std::collections::{HashMap, HashSet};

use futures::future::join_all;
use time::OffsetDateTime;

use super::deliver::{deliver, Channel, Limits, Owed};
use super::summary::RunSummary;
use crate::config::Settings;
use crate::history::RunHistory;
use crate::lead::{Lead, LeadRow, SkipReason};
use crate::ledger::{keys, AlertKey, Entry, Ledger, Settlement, Verdict};
use crate::notify::DestinationId;
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
    /// Leads with an alert owed on some channel, kept until the scan ends so
    /// that the digest decision and a digest's contents cover the whole run.
    pub leads: Vec<Lead>,
    /// Per channel (in `channels` order), the alerts owed; `Owed::lead`
    /// indexes `leads`.
    pub owed: Vec<Vec<Owed>>,
}

impl Run<'_> {
    /// Handles one page of rows. `known` holds the ledger records of the scan
    /// window; an alert missing from it is claimed by insert, which finds a
    /// record written meanwhile anyway.
    pub async fn process(
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
        let repeats = self.customers(&mut leads, known).await?;
        let mut owed: Vec<Vec<Owed>> = self.channels.iter().map(|_| Vec::new()).collect();
        let mut keep = Vec::new();
        let mut skips = Vec::new();
        let mut exhausted = Vec::new();
        let ids: Vec<DestinationId> = self.channels.iter().map(Channel::id).collect();
        for (index, lead) in leads.iter().enumerate() {
            // Rows posted to the webhook have no Timestamp yet; a later
            // scan matches them by key.
            let stamp = lead.timestamp.unwrap_or(now);
            self.latest = Some(self.latest.map_or(stamp, |l| l.max(stamp)));
            let skip = self
                .settings
                .filters
                .skip_reason(lead)
                .or(repeats[index].then_some(SkipReason::Repeat));
            let mut new = false;
            for (channel, owed) in ids.iter().zip(owed.iter_mut()) {
                // Not routed here: nothing owed, nothing recorded.
                if !self.settings.destinations.router.takes(channel, lead) {
                    continue;
                }
                let alert = AlertKey {
                    lead: lead.key.clone(),
                    channel: channel.clone(),
                    lead_timestamp: stamp,
                };
                let entry = known.get(&alert.row_key());
                if let Some(reason) = skip {
                    if entry.is_none() {
                        skips.push((alert, reason));
                        new = true;
                    }
                    continue;
                }
                match self.ledger.judge(entry) {
                    Verdict::Done(_) => {}
                    Verdict::Busy => {
                        self.summary.busy += 1;
                        self.unfinished(stamp);
                    }
                    Verdict::Owed { prior } => {
                        new = true;
                        if keep.last() != Some(&index) {
                            keep.push(index);
                        }
                        owed.push(Owed {
                            alert,
                            prior,
                            lead: self.leads.len() + keep.len() - 1,
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
                if let Some(reason) = skip {
                    *self.summary.skipped.entry(reason).or_default() += 1;
                }
            }
        }
        if !skips.is_empty() {
            self.ledger.skip(skips).await?;
        }
        if !exhausted.is_empty() {
            self.ledger.settle(exhausted).await?;
        }
        let mut leads: Vec<Option<Lead>> = leads.into_iter().map(Some).collect();
        self.leads
            .extend(keep.into_iter().filter_map(|i| leads[i].take()));
        for (all, page) in self.owed.iter_mut().zip(owed) {
            all.extend(page);
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

    /// Sends everything the run owes, all channels at once: a slow or broken
    /// one does not hold up the others.
    pub async fn deliver(&mut self) -> Result<(), StorageError> {
        let ledger = &self.ledger;
        let limits = self.limits;
        let leads = &self.leads;
        let owed = std::mem::take(&mut self.owed);
        let tallies = join_all(
            self.channels
                .iter_mut()
                .zip(owed)
                .filter(|(_, items)| !items.is_empty())
                .map(|(channel, items)| async move {
                    let id = channel.id();
                    (id, deliver(ledger, channel, limits, leads, items).await)
                }),
        )
        .await;
        let mut first_error = None;
        for (channel, tally) in tallies {
            let tally = match tally {
                Ok(tally) => tally,
                Err(e) => {
                    first_error.get_or_insert(e);
                    continue;
                }
            };
            *self.summary.delivered.entry(channel).or_default() += tally.delivered;
            self.summary.failed += tally.failed;
            self.summary.pending += tally.pending;
            self.summary.busy += tally.busy;
            if let Some(t) = tally.unfinished {
                self.unfinished(t);
            }
            for problem in tally.problems {
                self.summary.problem(problem);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn unfinished(&mut self, stamp: OffsetDateTime) {
        self.unfinished = Some(self.unfinished.map_or(stamp, |u| u.min(stamp)));
    }
}
