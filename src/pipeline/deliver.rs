//! Sending one channel's owed alerts: claim, send with bounded retries,
//! settle. A channel whose retry budget runs out, or that rejects an alert
//! for good, is "down" for the rest of the run: its remaining alerts wait for
//! the next run instead of hammering a service that is not answering.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::lead::Lead;
use crate::ledger::{AlertKey, Claim, Entry, Ledger, Settlement};
use crate::notify::{Alert, DestinationId, Notifier, NotifyError};
use crate::storage::StorageError;

const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// One channel within one run.
pub(super) struct Channel {
    pub notifier: Arc<dyn Notifier>,
    /// Time spent waiting between retries so far.
    waited: Duration,
    /// Why the channel was given up for this run.
    down: Option<String>,
}

impl Channel {
    pub fn new(notifier: Arc<dyn Notifier>) -> Channel {
        Channel {
            notifier,
            waited: Duration::ZERO,
            down: None,
        }
    }

    pub fn id(&self) -> DestinationId {
        self.notifier.channel()
    }
}

/// An alert the ledger says is owed. `lead` indexes the run's owed leads.
pub(super) struct Owed {
    pub alert: AlertKey,
    pub prior: Option<Entry>,
    pub lead: usize,
}

/// The limits a channel works within.
#[derive(Clone, Copy)]
pub(super) struct Limits {
    pub digest_after: usize,
    pub retry_budget: Duration,
    pub max_attempts: u32,
}

/// What happened on one channel for one page.
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
        let t = alert.lead_timestamp;
        self.unfinished = Some(self.unfinished.map_or(t, |u| u.min(t)));
    }
}

/// Delivers `items` on `channel`: one alert per lead, or digests when more
/// than `digest_after` are owed.
pub(super) async fn deliver(
    ledger: &Ledger<'_>,
    channel: &mut Channel,
    limits: Limits,
    leads: &[Lead],
    items: Vec<Owed>,
) -> Result<Tally, StorageError> {
    let mut tally = Tally::default();
    let total = items.len();
    if total > limits.digest_after && channel.notifier.takes_digests() {
        let size = channel.notifier.max_digest_leads().max(1);
        let mut rest = items;
        while !rest.is_empty() {
            let chunk: Vec<Owed> = rest.drain(..size.min(rest.len())).collect();
            if channel.down.is_some() {
                chunk.iter().for_each(|o| pend(&mut tally, &o.alert));
                continue;
            }
            let won = claim(ledger, chunk, &mut tally).await?;
            if won.is_empty() {
                continue;
            }
            let digest: Vec<&Lead> = won.iter().map(|(o, _)| &leads[o.lead]).collect();
            let sent = send(
                channel,
                limits,
                Alert::Digest {
                    leads: &digest,
                    total,
                },
            )
            .await;
            let settled = won
                .into_iter()
                .map(|(owed, entry)| {
                    let settlement = settle(channel, limits, &mut tally, &owed, &entry, &sent);
                    (entry, settlement)
                })
                .collect();
            ledger.settle(settled).await?;
        }
    } else if channel.down.is_some() {
        items.iter().for_each(|o| pend(&mut tally, &o.alert));
    } else {
        let won = claim(ledger, items, &mut tally).await?;
        let mut untried = Vec::new();
        for (owed, entry) in won {
            if channel.down.is_some() {
                pend(&mut tally, &owed.alert);
                untried.push((entry, Settlement::Untried));
                continue;
            }
            let sent = send(channel, limits, Alert::Lead(&leads[owed.lead])).await;
            let settlement = settle(channel, limits, &mut tally, &owed, &entry, &sent);
            // Recorded at once: after a crash, fewer claims to take over and resend.
            ledger.settle(vec![(entry, settlement)]).await?;
        }
        if !untried.is_empty() {
            ledger.settle(untried).await?;
        }
    }
    if let Some(reason) = &channel.down {
        if tally.pending > 0 {
            let line = format!(
                "{}: {} alert(s) not delivered, to retry next run: {reason}",
                channel.id(),
                tally.pending
            );
            tally.problems.push(line);
        }
    }
    Ok(tally)
}

/// Claims a batch; returns the alerts this run won, tallying the others.
async fn claim(
    ledger: &Ledger<'_>,
    items: Vec<Owed>,
    tally: &mut Tally,
) -> Result<Vec<(Owed, Entry)>, StorageError> {
    let wanted = items
        .iter()
        .map(|o| (o.alert.clone(), o.prior.clone()))
        .collect();
    let claims = ledger.claim(wanted).await?;
    let mut won = Vec::new();
    let mut exhausted = Vec::new();
    for (owed, claim) in items.into_iter().zip(claims) {
        match claim {
            Claim::Won(entry) => won.push((owed, entry)),
            Claim::Busy => {
                tally.busy += 1;
                tally.unfinished(&owed.alert);
            }
            Claim::Done(_) => {}
            Claim::Exhausted(entry) => {
                let error = format!(
                    "abandoned by {} run(s) that did not finish; last error: {}",
                    entry.record.attempts,
                    or_none(&entry.record.last_error)
                );
                give_up(tally, &owed.alert, &error);
                exhausted.push((entry, Settlement::Failed { error }));
            }
        }
    }
    if !exhausted.is_empty() {
        ledger.settle(exhausted).await?;
    }
    Ok(won)
}

/// Decides how a claimed alert ends after a send, and tallies it.
fn settle(
    channel: &mut Channel,
    limits: Limits,
    tally: &mut Tally,
    owed: &Owed,
    entry: &Entry,
    sent: &Result<(), NotifyError>,
) -> Settlement {
    match sent {
        Ok(()) => {
            tally.delivered += 1;
            tracing::debug!(lead = %owed.alert.lead, channel = %channel.id(), "delivered");
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
                give_up(tally, &owed.alert, &error);
                Settlement::Failed { error }
            } else {
                pend(tally, &owed.alert);
                Settlement::Retry { error }
            }
        }
        Err(e) => {
            // Permanent errors are mostly configuration (a refused sender, a
            // deleted workflow) and would fail every alert alike: give up on
            // this one and hold the rest for the next run, so a fix made
            // meanwhile loses one lead, not the whole backlog.
            channel.down = Some(e.reason().to_owned());
            let error = e.reason().to_owned();
            give_up(tally, &owed.alert, &error);
            Settlement::Failed { error }
        }
    }
}

fn pend(tally: &mut Tally, alert: &AlertKey) {
    tally.pending += 1;
    tally.unfinished(alert);
}

fn give_up(tally: &mut Tally, alert: &AlertKey, error: &str) {
    tally.failed += 1;
    tracing::warn!(lead = %alert.lead, channel = %alert.channel, "alert failed for good: {error}");
    tally.problems.push(format!(
        "{}: lead {} failed for good: {error}",
        alert.channel, alert.lead
    ));
}

fn or_none(text: &str) -> &str {
    if text.is_empty() {
        "none"
    } else {
        text
    }
}

/// Sends once, retrying retryable failures while the channel's budget lasts.
async fn send(channel: &mut Channel, limits: Limits, alert: Alert<'_>) -> Result<(), NotifyError> {
    let mut retries = 0u32;
    loop {
        let error = match channel.notifier.send(alert).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        let NotifyError::Retryable { retry_after, .. } = &error else {
            return Err(error);
        };
        let wait = retry_after.unwrap_or_else(|| backoff(retries));
        if channel.waited + wait > limits.retry_budget {
            return Err(error);
        }
        tracing::info!(channel = %channel.id(), "send failed, retrying in {wait:?}: {}", error.reason());
        tokio::time::sleep(wait).await;
        channel.waited += wait;
        retries += 1;
    }
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
}
