//! Sending one channel's owed alerts: claim, send with bounded retries,
//! settle. A channel whose retry budget runs out, or that rejects an alert
//! for good, is "down" for the rest of the run: its remaining alerts wait for
//! the next run instead of hammering a service that is not answering.

use std::sync::Arc;
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use super::earliest;
use super::lease::Held;
use super::owed::{Owed, OwedAlert};
use crate::lead::Lead;
use crate::ledger::{AlertKey, Claim, Entry, Ledger, Refusals, Settlement, Verdict};
use crate::memory;
use crate::notify::{Alert, Attempt, DestinationId, Notifier, NotifyError};
use crate::storage::StorageError;

const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Leads one digest may hold in memory, whatever the channel allows: a
/// digest is built, claimed and sent from this many at a time.
pub(super) const MAX_DIGEST_HELD: usize = 500;

/// Single alerts claimed together (one entity group transaction).
const CLAIM_BATCH: usize = 100;

/// One channel within one run.
pub(super) struct Channel {
    pub notifier: Arc<dyn Notifier>,
    /// What the judging pass found owed here.
    pub owed: Owed,
    /// What happened so far.
    pub tally: Tally,
    /// Time spent on failed tries and waiting between them so far: what
    /// the retry budget bounds.
    spent: Duration,
    /// Why the channel was given up for this run.
    down: Option<String>,
}

impl Channel {
    pub fn new(notifier: Arc<dyn Notifier>) -> Channel {
        Channel {
            notifier,
            owed: Owed::default(),
            tally: Tally::default(),
            spent: Duration::ZERO,
            down: None,
        }
    }

    pub fn id(&self) -> DestinationId {
        self.notifier.channel()
    }

    pub fn is_down(&self) -> bool {
        self.down.is_some()
    }

    /// Leads gathered before sending: one digest (as many messages as the
    /// channel needs for them), or for a channel that takes no digests one
    /// claim transaction of single alerts.
    pub fn chunk_size(&self) -> usize {
        if self.notifier.takes_digests() {
            self.notifier.max_digest_leads().clamp(1, MAX_DIGEST_HELD)
        } else {
            CLAIM_BATCH
        }
    }

    /// Sends the alerts kept by the judging pass one by one (a run that owes
    /// this channel at most `digest_after`).
    pub async fn send_few(
        &mut self,
        ledger: &Ledger<'_>,
        limits: Limits,
    ) -> Result<(), StorageError> {
        let items = self.owed.take_few();
        self.send_each(ledger, limits, items).await
    }

    /// Sends one chunk of a run that owes many: a digest with the run's
    /// `total`, or single alerts for a channel that takes no digests.
    pub async fn send_chunk(
        &mut self,
        ledger: &Ledger<'_>,
        limits: Limits,
        chunk: Vec<OwedAlert>,
        total: usize,
    ) -> Result<(), StorageError> {
        if self.notifier.takes_digests() {
            self.send_digest(ledger, limits, chunk, total).await
        } else {
            self.send_each(ledger, limits, chunk).await
        }
    }

    /// Single alerts, as many a request as the channel takes
    /// ([`Notifier::batch_size`]); each lead settled on its own result.
    async fn send_each(
        &mut self,
        ledger: &Ledger<'_>,
        limits: Limits,
        items: Vec<OwedAlert>,
    ) -> Result<(), StorageError> {
        if items.is_empty() {
            return Ok(());
        }
        if self.is_down() {
            items.iter().for_each(|o| self.tally.pend(&o.alert));
            return Ok(());
        }
        let (owed, mut held) = self.claim(ledger, items).await?;
        let size = self.notifier.batch_size().max(1);
        let positions: Vec<usize> = (0..owed.len()).collect();
        for group in positions.chunks(size) {
            if self.is_down() || limits.past_deadline() {
                break;
            }
            let part = self
                .still_held(ledger, &mut held, &owed, group.to_vec())
                .await?;
            if part.is_empty() {
                continue;
            }
            let batch: Vec<Attempt> = part
                .iter()
                .map(|&i| Attempt {
                    lead: &owed[i].lead,
                    first: held.attempts(i) <= 1,
                })
                .collect();
            let sent = held.during(ledger, send_batch(self, limits, &batch)).await;
            drop(batch);
            // Recorded at once: after a crash, fewer claims to take over and resend.
            let results = part.into_iter().zip(sent).collect();
            self.settle_each(ledger, limits, &mut held, &owed, results)
                .await?;
        }
        self.leave_untried(ledger, &owed, &mut held).await
    }

    async fn send_digest(
        &mut self,
        ledger: &Ledger<'_>,
        limits: Limits,
        chunk: Vec<OwedAlert>,
        total: usize,
    ) -> Result<(), StorageError> {
        if self.is_down() {
            chunk.iter().for_each(|o| self.tally.pend(&o.alert));
            return Ok(());
        }
        let (owed, mut held) = self.claim(ledger, chunk).await?;
        // A message settles only the leads it lists. One the channel cannot
        // fill with every lead (Teams' 28 KB, Slack's 50 blocks) lists those
        // that fit and the rest go in further messages; the first message
        // is handed the whole chunk so its head counts all of it. A digest
        // the service finds too large goes again as two halves. Each
        // message is settled on its own answer. Parts are positions in
        // `owed`.
        let mut parts = vec![(0..owed.len()).collect::<Vec<usize>>()];
        let mut first = true;
        while let Some(part) = parts.pop() {
            if part.is_empty() || self.is_down() || limits.past_deadline() {
                continue;
            }
            let mut part = self.still_held(ledger, &mut held, &owed, part).await?;
            if part.is_empty() {
                continue;
            }
            let digest: Vec<&Lead> = part.iter().map(|&i| &*owed[i].lead).collect();
            let fits = self
                .notifier
                .digest_fits(&digest, total)
                .clamp(1, digest.len());
            let whole = std::mem::take(&mut first);
            if fits < part.len() && !whole {
                // Measured again on exactly the leads it will carry.
                drop(digest);
                let rest = part.split_off(fits);
                parts.push(rest);
                parts.push(part);
                continue;
            }
            // A digest is a run's memory peak: what the allocator kept for
            // reuse goes back first, so the peak is what the run holds.
            memory::release_freed();
            let alert = Alert::Digest {
                leads: &digest,
                total,
            };
            let sent = held.during(ledger, send(self, limits, alert)).await;
            drop(digest);
            // What the message did not list goes next.
            parts.push(part.split_off(fits));
            if matches!(sent, Err(NotifyError::TooLarge { .. })) && part.len() > 1 {
                let back = part.split_off(part.len() / 2);
                parts.push(back);
                parts.push(part);
                continue;
            }
            self.settle_part(ledger, limits, &mut held, &owed, part, &sent)
                .await?;
        }
        self.leave_untried(ledger, &owed, &mut held).await
    }

    /// Claims a batch: the alerts this run won, and their claims held.
    async fn claim(
        &mut self,
        ledger: &Ledger<'_>,
        items: Vec<OwedAlert>,
    ) -> Result<(Vec<OwedAlert>, Held), StorageError> {
        let since = Instant::now();
        let (owed, entries): (Vec<OwedAlert>, Vec<Entry>) = claim(ledger, items, &mut self.tally)
            .await?
            .into_iter()
            .unzip();
        Ok((owed, Held::new(entries, since, ledger.claim_lease())))
    }

    /// The positions of `part` whose claims this run still holds, renewed
    /// where due; those another run took over meanwhile are its to send.
    async fn still_held(
        &mut self,
        ledger: &Ledger<'_>,
        held: &mut Held,
        owed: &[OwedAlert],
        part: Vec<usize>,
    ) -> Result<Vec<usize>, StorageError> {
        held.refresh(ledger).await?;
        Ok(part
            .into_iter()
            .filter(|&i| {
                let mine = held.is_held(i);
                if !mine {
                    held.forget(i);
                    self.tally.lost(&owed[i].alert);
                }
                mine
            })
            .collect())
    }

    /// Records how the alerts at `part` ended on one message's answer.
    async fn settle_part(
        &mut self,
        ledger: &Ledger<'_>,
        limits: Limits,
        held: &mut Held,
        owed: &[OwedAlert],
        part: Vec<usize>,
        sent: &Result<(), NotifyError>,
    ) -> Result<(), StorageError> {
        let results = part.into_iter().map(|i| (i, sent.clone())).collect();
        self.settle_each(ledger, limits, held, owed, results).await
    }

    /// Records how each alert ended, on its own answer (positions in `owed`).
    async fn settle_each(
        &mut self,
        ledger: &Ledger<'_>,
        limits: Limits,
        held: &mut Held,
        owed: &[OwedAlert],
        results: Vec<(usize, Result<(), NotifyError>)>,
    ) -> Result<(), StorageError> {
        let settled = results
            .into_iter()
            .map(|(i, sent)| {
                let entry = held.take(i);
                let settlement = settle(self, limits, &owed[i].alert, &entry, &sent);
                (entry, settlement)
            })
            .collect();
        let refused = ledger.settle(settled).await?;
        self.tally.refused(refused);
        Ok(())
    }

    /// Claims won but not sent (the channel went down, or the deadline
    /// passed): pending in the tally and recorded as untried, so the next
    /// run sends them without counting an attempt.
    async fn leave_untried(
        &mut self,
        ledger: &Ledger<'_>,
        owed: &[OwedAlert],
        held: &mut Held,
    ) -> Result<(), StorageError> {
        // Taken over by another run while waiting: its to send, and the
        // watermark stays before it until it is done.
        for i in held.lost() {
            self.tally.lost(&owed[i].alert);
        }
        let rest = held.rest();
        if rest.is_empty() {
            return Ok(());
        }
        rest.iter()
            .for_each(|&(i, _)| self.tally.pend(&owed[i].alert));
        let untried = rest.into_iter().map(|(_, e)| (e, Settlement::Untried));
        let refused = ledger.settle(untried.collect()).await?;
        self.tally.refused(refused);
        Ok(())
    }

    /// Sends one message that is not a lead alert (the summary, a health
    /// note) once on this channel, keyed by `alert`: the same claim, send
    /// with retries and settlement as a lead's alert. `prior` is its record
    /// as last seen.
    pub async fn send_once(
        &mut self,
        ledger: &Ledger<'_>,
        limits: Limits,
        alert: AlertKey,
        prior: Option<Entry>,
        message: Alert<'_>,
    ) -> Result<(), StorageError> {
        let since = Instant::now();
        let won = self.claim_once(ledger, vec![(alert, prior)]).await?;
        self.send_claimed(ledger, limits, won, since, message).await
    }

    /// Claims the keys of one message that stands for several (reminders
    /// of many leads in one): answers the keys this run won, for the
    /// message to cover and [`Self::send_claimed`] to settle.
    pub async fn claim_once(
        &mut self,
        ledger: &Ledger<'_>,
        wanted: Vec<(AlertKey, Option<Entry>)>,
    ) -> Result<Vec<(AlertKey, Entry)>, StorageError> {
        if self.is_down() {
            for (alert, _) in &wanted {
                self.tally.pend(alert);
            }
            return Ok(Vec::new());
        }
        let alerts: Vec<AlertKey> = wanted.iter().map(|(a, _)| a.clone()).collect();
        let won = claim_keys(ledger, wanted, &mut self.tally).await?;
        Ok(alerts
            .into_iter()
            .zip(won)
            .filter_map(|(alert, entry)| entry.map(|entry| (alert, entry)))
            .collect())
    }

    /// Sends `message` once for all the claims in `won` (claimed since
    /// `since`) and settles each of them by how the send ended.
    pub async fn send_claimed(
        &mut self,
        ledger: &Ledger<'_>,
        limits: Limits,
        won: Vec<(AlertKey, Entry)>,
        since: Instant,
        message: Alert<'_>,
    ) -> Result<(), StorageError> {
        if won.is_empty() {
            return Ok(());
        }
        let (alerts, entries): (Vec<AlertKey>, Vec<Entry>) = won.into_iter().unzip();
        let mut held = Held::new(entries, since, ledger.claim_lease());
        let sent = held.during(ledger, send(self, limits, message)).await;
        let mut settlements = Vec::with_capacity(alerts.len());
        for (i, alert) in alerts.iter().enumerate() {
            let entry = held.take(i);
            let settlement = settle(self, limits, alert, &entry, &sent);
            settlements.push((entry, settlement));
        }
        let refused = ledger.settle(settlements).await?;
        self.tally.refused(refused);
        Ok(())
    }

    /// Alerts still owed after sending (not found again, or their channel
    /// went down) wait for the next run; the summary's line for a channel
    /// that went down.
    pub fn finish(&mut self) {
        if let Some(held) = self.owed.held() {
            earliest(&mut self.tally.unfinished, held);
        }
        for stamp in self.owed.drain() {
            self.tally.pending += 1;
            earliest(&mut self.tally.unfinished, stamp);
        }
        if let Some(reason) = &self.down {
            if self.tally.pending > 0 {
                let line = format!(
                    "{}: {} alert(s) not delivered, to retry next run: {reason}",
                    self.id(),
                    self.tally.pending
                );
                self.tally.problems.push(line);
            }
        }
    }
}

/// How one message sent by [`send_message_once`] ended for its caller.
#[derive(Default)]
pub(super) struct Once {
    /// Left for a later run (the channel down, another run's claim).
    pub unsettled: bool,
    /// Lines for the run's summary.
    pub problems: Vec<String>,
}

/// Sends `message`, which is not a lead alert, once to `notifier` under
/// `key`, unless `prior` (its record as last seen) says it is done or held
/// by another run; `what` names it in the summary's line when it is left
/// for a later run.
pub(super) async fn send_message_once(
    notifier: Arc<dyn Notifier>,
    ledger: &Ledger<'_>,
    limits: Limits,
    key: AlertKey,
    prior: Option<Entry>,
    message: Alert<'_>,
    what: &str,
) -> Result<Once, StorageError> {
    match ledger.judge(prior.as_ref()) {
        Verdict::Owed { .. } | Verdict::Exhausted { .. } => {}
        Verdict::Busy => {
            return Ok(Once {
                unsettled: true,
                problems: Vec::new(),
            })
        }
        Verdict::Done(_) => return Ok(Once::default()),
    }
    let to = key.channel.clone();
    let mut channel = Channel::new(notifier);
    channel
        .send_once(ledger, limits, key, prior, message)
        .await?;
    let mut problems = std::mem::take(&mut channel.tally.problems);
    if channel.tally.pending > 0 {
        problems.push(format!("{to}: {what} not sent, to retry next run"));
    }
    Ok(Once {
        unsettled: channel.tally.pending + channel.tally.busy > 0,
        problems,
    })
}

/// The limits a channel works within.
#[derive(Clone, Copy)]
pub(super) struct Limits {
    pub digest_after: usize,
    pub retry_budget: Duration,
    pub max_attempts: u32,
    /// When sending must stop (the webhook's alerting budget): no send
    /// starts and no retry waits past it; what is left goes to the next run.
    pub deadline: Option<Instant>,
}

impl Limits {
    fn past_deadline(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

/// What happened on one channel in one run.
#[derive(Default)]
pub(super) struct Tally {
    pub delivered: u64,
    pub failed: u64,
    pub pending: u64,
    pub busy: u64,
    /// Earliest lead timestamp left pending or busy.
    pub unfinished: Option<OffsetDateTime>,
    pub problems: Vec<String>,
}

impl Tally {
    fn unfinished(&mut self, alert: &AlertKey) {
        earliest(&mut self.unfinished, alert.lead_timestamp);
    }

    fn pend(&mut self, alert: &AlertKey) {
        self.pending += 1;
        self.unfinished(alert);
    }

    /// Claimed by this run, then taken over by another before it was sent.
    fn lost(&mut self, alert: &AlertKey) {
        self.busy += 1;
        self.unfinished(alert);
    }

    /// Records the state table would not take: failed alerts.
    fn refused(&mut self, refused: Refusals) {
        self.failed += refused.failed;
        self.problems.extend(refused.problems);
    }

    fn give_up(&mut self, alert: &AlertKey, error: &str) {
        self.failed += 1;
        tracing::warn!(lead = %alert.lead, channel = %alert.channel, "alert failed for good: {error}");
        self.problems.push(format!(
            "{}: lead {} failed for good: {error}",
            alert.channel, alert.lead
        ));
    }
}

/// Claims a batch; returns the alerts this run won, tallying the others.
async fn claim(
    ledger: &Ledger<'_>,
    items: Vec<OwedAlert>,
    tally: &mut Tally,
) -> Result<Vec<(OwedAlert, Entry)>, StorageError> {
    let wanted = items
        .iter()
        .map(|o| (o.alert.clone(), o.prior.clone()))
        .collect();
    let claims = claim_keys(ledger, wanted, tally).await?;
    Ok(items
        .into_iter()
        .zip(claims)
        .filter_map(|(owed, won)| won.map(|entry| (owed, entry)))
        .collect())
}

/// Claims alerts by key; answers per alert the claim this run won, if any,
/// tallying the others.
async fn claim_keys(
    ledger: &Ledger<'_>,
    wanted: Vec<(AlertKey, Option<Entry>)>,
    tally: &mut Tally,
) -> Result<Vec<Option<Entry>>, StorageError> {
    let alerts: Vec<AlertKey> = wanted.iter().map(|(a, _)| a.clone()).collect();
    let claims = ledger.claim(wanted).await?;
    let mut won = Vec::with_capacity(alerts.len());
    let mut exhausted = Vec::new();
    for (alert, claim) in alerts.iter().zip(claims) {
        won.push(match claim {
            Claim::Won(entry) => Some(entry),
            Claim::Busy => {
                tally.busy += 1;
                tally.unfinished(alert);
                None
            }
            Claim::Done(_) => None,
            // Not sent: with no record, a send could not be told from one
            // still owed.
            Claim::Refused(reason) => {
                tally.give_up(alert, &reason);
                None
            }
            Claim::Exhausted(entry) => {
                let error = format!(
                    "abandoned by {} run(s) that did not finish; last error: {}",
                    entry.record.attempts,
                    or_none(&entry.record.last_error)
                );
                tally.give_up(alert, &error);
                exhausted.push((entry, Settlement::Failed { error }));
                None
            }
        });
    }
    if !exhausted.is_empty() {
        let refused = ledger.settle(exhausted).await?;
        tally.refused(refused);
    }
    Ok(won)
}

/// Decides how a claimed alert ends after a send, and tallies it.
fn settle(
    channel: &mut Channel,
    limits: Limits,
    alert: &AlertKey,
    entry: &Entry,
    sent: &Result<(), NotifyError>,
) -> Settlement {
    match sent {
        Ok(()) => {
            channel.tally.delivered += 1;
            tracing::debug!(lead = %alert.lead, channel = %channel.id(), "delivered");
            Settlement::Delivered
        }
        Err(e) if e.is_retryable() => {
            channel.down = Some(e.reason().to_owned());
            let error = e.reason().to_owned();
            if entry.record.attempts >= limits.max_attempts {
                let error = format!(
                    "gave up after {} attempt(s): {error}",
                    entry.record.attempts
                );
                channel.tally.give_up(alert, &error);
                Settlement::Failed { error }
            } else {
                channel.tally.pend(alert);
                Settlement::Retry { error }
            }
        }
        Err(e @ (NotifyError::TooLarge { .. } | NotifyError::Rejected { .. })) => {
            // This lead alone is too large (a digest was split down to it),
            // or its data refused: its own problem, not the channel's.
            let error = e.reason().to_owned();
            channel.tally.give_up(alert, &error);
            Settlement::Failed { error }
        }
        Err(e) => {
            // Permanent errors are mostly configuration (a refused sender, a
            // deleted workflow) and would fail every alert alike: give up on
            // this one and hold the rest for the next run, so a fix made
            // meanwhile loses one lead, not the whole backlog.
            channel.down = Some(e.reason().to_owned());
            let error = e.reason().to_owned();
            channel.tally.give_up(alert, &error);
            Settlement::Failed { error }
        }
    }
}

fn or_none(text: &str) -> &str {
    if text.is_empty() {
        "none"
    } else {
        text
    }
}

/// Longest wait between two tries: a `Retry-After` beyond it ends the
/// channel's run (the next run tries again) instead of waiting.
const MAX_WAIT: Duration = Duration::from_secs(3600);

/// Sends once, retrying retryable failures while the channel's budget lasts.
/// The budget bounds the channel's failing time: each failed try and each
/// wait counts, no retry starts once it is spent, and a try that has no
/// answer within the whole budget counts as failed (so a service that never
/// answers holds the run about that long). A try is never cut off sooner:
/// what is left of the budget after a blip would cut a healthy slow send,
/// which may have arrived, and recording it for retry would alert twice.
/// With a deadline (the webhook's alerting budget) no retry waits past it,
/// and the deadline never cuts a send off.
async fn send(channel: &mut Channel, limits: Limits, alert: Alert<'_>) -> Result<(), NotifyError> {
    let mut retries = 0u32;
    loop {
        let tried = Instant::now();
        let error = match try_within_budget(limits, channel.notifier.send(alert), Err).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        let NotifyError::Retryable { retry_after, .. } = &error else {
            // Not the channel failing (a permanent refusal ends its run, a
            // digest too large is split): no budget spent.
            return Err(error);
        };
        match next_wait(
            channel,
            limits,
            tried,
            *retry_after,
            retries,
            error.reason(),
        ) {
            Some(wait) => wait_out(channel, wait).await,
            None => return Err(error),
        }
        retries += 1;
    }
}

/// [`send`] for a batch of single alerts: a try sends the leads not yet
/// settled, and only those that failed retryably go again, the wait the
/// longest any of them asked for. One result per lead.
async fn send_batch(
    channel: &mut Channel,
    limits: Limits,
    batch: &[Attempt<'_>],
) -> Vec<Result<(), NotifyError>> {
    let mut results: Vec<Result<(), NotifyError>> = vec![Ok(()); batch.len()];
    let mut todo: Vec<usize> = (0..batch.len()).collect();
    let mut retries = 0u32;
    while !todo.is_empty() {
        let tried = Instant::now();
        // A lead tried once in this run may have arrived too (an answer
        // lost): not the first try any more.
        let round: Vec<Attempt> = todo
            .iter()
            .map(|&i| Attempt {
                first: batch[i].first && retries == 0,
                ..batch[i]
            })
            .collect();
        let mut answers = try_within_budget(limits, channel.notifier.send_batch(&round), |e| {
            vec![Err(e); round.len()]
        })
        .await;
        // A lead without an answer may or may not have gone: never taken
        // as delivered.
        answers.resize_with(round.len(), || {
            Err(NotifyError::retryable(
                "the channel gave no answer for this lead (a lead-notifier bug)",
            ))
        });
        let mut again = Vec::new();
        let mut asked: Option<Duration> = None;
        let mut reason = String::new();
        for (i, answer) in todo.iter().zip(answers) {
            if let Err(e @ NotifyError::Retryable { retry_after, .. }) = &answer {
                again.push(*i);
                asked = asked.max(*retry_after);
                reason = e.reason().to_owned();
            }
            results[*i] = answer;
        }
        if again.is_empty() {
            break;
        }
        match next_wait(channel, limits, tried, asked, retries, &reason) {
            Some(wait) => wait_out(channel, wait).await,
            None => break,
        }
        todo = again;
        retries += 1;
    }
    results
}

/// After a failed try started at `tried`: the wait before the next one, or
/// `None` when the budget or the deadline does not allow another.
fn next_wait(
    channel: &mut Channel,
    limits: Limits,
    tried: Instant,
    retry_after: Option<Duration>,
    retries: u32,
    reason: &str,
) -> Option<Duration> {
    channel.spent += tried.elapsed();
    let wait = retry_after.unwrap_or_else(|| backoff(retries));
    if !may_wait(channel.spent, wait, limits, Instant::now()) {
        return None;
    }
    tracing::info!(channel = %channel.id(), "send failed, retrying in {wait:?}: {reason}");
    Some(wait)
}

async fn wait_out(channel: &mut Channel, wait: Duration) {
    tokio::time::sleep(wait).await;
    channel.spent += wait;
}

/// One try, with no answer within the retry budget counting as a failure
/// (`0` turns retries off: the one try then runs to the client's own
/// timeout). `timed_out` makes the try's answer from that failure.
async fn try_within_budget<T>(
    limits: Limits,
    attempt: impl std::future::Future<Output = T>,
    timed_out: impl FnOnce(NotifyError) -> T,
) -> T {
    if limits.retry_budget.is_zero() {
        return attempt.await;
    }
    match tokio::time::timeout(limits.retry_budget, attempt).await {
        Ok(answer) => answer,
        Err(_) => timed_out(NotifyError::retryable(format!(
            "no answer within the retry budget (RETRY_BUDGET={})",
            humantime::format_duration(limits.retry_budget)
        ))),
    }
}

/// Whether a retry after `wait` stays within the channel's retry budget
/// and the deadline. A wait from a server's `Retry-After` can be anything.
fn may_wait(waited: Duration, wait: Duration, limits: Limits, now: Instant) -> bool {
    if wait > MAX_WAIT {
        return false;
    }
    let within_budget = waited
        .checked_add(wait)
        .is_some_and(|total| total <= limits.retry_budget);
    let before_deadline = match limits.deadline {
        None => true,
        Some(deadline) => now.checked_add(wait).is_some_and(|at| at < deadline),
    };
    within_budget && before_deadline
}

/// Exponential with ±50 % jitter, so runs retrying together spread out.
fn backoff(retries: u32) -> Duration {
    let base = FIRST_BACKOFF
        .saturating_mul(1 << retries.min(8))
        .min(MAX_BACKOFF);
    base.mul_f64(0.5 + fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_bounded() {
        for _ in 0..100 {
            let first = backoff(0);
            assert!(first >= FIRST_BACKOFF / 2 && first <= FIRST_BACKOFF * 3 / 2);
            assert!(backoff(30) <= MAX_BACKOFF * 3 / 2);
        }
        assert!(backoff(4) > FIRST_BACKOFF * 4);
    }

    fn limits(deadline: Option<Instant>) -> Limits {
        Limits {
            digest_after: 20,
            retry_budget: Duration::from_secs(30),
            max_attempts: 5,
            deadline,
        }
    }

    #[test]
    fn waits_stay_within_budget_deadline_and_any_retry_after() {
        let now = Instant::now();
        let second = Duration::from_secs(1);
        assert!(may_wait(Duration::ZERO, second, limits(None), now));
        assert!(!may_wait(
            Duration::from_secs(29),
            2 * second,
            limits(None),
            now
        ));
        let soon = Some(now + 2 * second);
        assert!(may_wait(Duration::ZERO, second, limits(soon), now));
        assert!(!may_wait(Duration::ZERO, 3 * second, limits(soon), now));
        // A server may answer `Retry-After: 18446744073709551615`.
        assert!(!may_wait(Duration::ZERO, Duration::MAX, limits(None), now));
        assert!(!may_wait(Duration::MAX, second, limits(None), now));
        assert!(!may_wait(Duration::ZERO, Duration::MAX, limits(soon), now));
    }

    /// A channel that answers a batch with fewer results than leads.
    struct Short;

    impl Notifier for Short {
        fn channel(&self) -> DestinationId {
            DestinationId::HUBSPOT
        }
        fn send<'a>(&'a self, _: Alert<'a>) -> crate::notify::SendFuture<'a> {
            Box::pin(async { Ok(()) })
        }
        fn batch_size(&self) -> usize {
            2
        }
        fn send_batch<'a>(&'a self, batch: &'a [Attempt<'a>]) -> crate::notify::BatchFuture<'a> {
            Box::pin(async move { vec![Ok(()); batch.len() - 1] })
        }
    }

    #[tokio::test]
    async fn a_lead_a_batch_answers_nothing_for_is_not_delivered() {
        let lead = crate::notify::sample_lead();
        let batch = [
            Attempt {
                lead: &lead,
                first: true,
            },
            Attempt {
                lead: &lead,
                first: true,
            },
        ];
        let mut channel = Channel::new(Arc::new(Short));
        let no_retry = Limits {
            retry_budget: Duration::ZERO,
            ..limits(None)
        };
        let results = send_batch(&mut channel, no_retry, &batch).await;
        assert_eq!(results.len(), 2);
        assert!(results[0].is_ok());
        assert!(
            matches!(&results[1], Err(e) if e.is_retryable()),
            "{results:?}"
        );
    }
}
