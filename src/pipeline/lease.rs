//! Claims a channel holds while it sends. A batch is claimed at once and
//! then sent one message at a time, which can outlast `CLAIM_LEASE`: the
//! claims are renewed (ETag-conditional) once half the lease has passed,
//! while they wait their turn and while a message is on its way, and a
//! message starts only for claims still held. A claim another run took over
//! meanwhile is left to that run.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::ledger::{Entry, Ledger};
use crate::storage::StorageError;

/// Renewals never come closer together than this, whatever the lease.
const MIN_RENEWAL_GAP: Duration = Duration::from_millis(100);

pub(super) struct Held {
    slots: Vec<Slot>,
    /// When the claims (or their last renewal) were sent, by this machine's
    /// monotonic clock: the service stamped them later, so by the service's
    /// clock they hold at least a lease from here.
    since: Instant,
    lease: Duration,
}

struct Slot {
    entry: Entry,
    state: State,
}

#[derive(Clone, Copy, PartialEq)]
enum State {
    Held,
    /// Another run took the claim over.
    Lost,
    /// Handed back to the caller to settle.
    Taken,
}

impl Held {
    /// `since`: taken right before the claims were sent.
    pub fn new(entries: Vec<Entry>, since: Instant, lease: Duration) -> Held {
        let slots = entries
            .into_iter()
            .map(|entry| Slot {
                entry,
                state: State::Held,
            })
            .collect();
        Held {
            slots,
            since,
            lease,
        }
    }

    fn renew_at(&self) -> Instant {
        self.since + (self.lease / 2).max(MIN_RENEWAL_GAP)
    }

    /// Renews the claims still held once half the lease has passed; then
    /// [`Self::is_held`] tells which are still this run's.
    pub async fn refresh(&mut self, ledger: &Ledger<'_>) -> Result<(), StorageError> {
        if Instant::now() < self.renew_at() {
            return Ok(());
        }
        self.renew(ledger).await
    }

    async fn renew(&mut self, ledger: &Ledger<'_>) -> Result<(), StorageError> {
        let started = Instant::now();
        let held: Vec<usize> = (0..self.slots.len())
            .filter(|&i| self.slots[i].state == State::Held)
            .collect();
        if !held.is_empty() {
            let entries: Vec<&Entry> = held.iter().map(|&i| &self.slots[i].entry).collect();
            let renewed = ledger.renew(&entries).await?;
            for (i, renewed) in held.into_iter().zip(renewed) {
                let slot = &mut self.slots[i];
                match renewed {
                    Some(entry) => slot.entry = entry,
                    None => slot.state = State::Lost,
                }
            }
        }
        self.since = started;
        Ok(())
    }

    /// Runs that have claimed the alert of slot `i`, this one included.
    pub fn attempts(&self, i: usize) -> u32 {
        self.slots[i].entry.record.attempts
    }

    pub fn is_held(&self, i: usize) -> bool {
        self.slots[i].state == State::Held
    }

    /// Awaits `send` while renewing the claims on time. A send is never cut
    /// off, and neither is a renewal under way when the send ends (its
    /// write may be stored: the new ETags must be kept). A renewal that
    /// fails (storage unreachable) is tried again shortly.
    pub async fn during<T>(&mut self, ledger: &Ledger<'_>, send: impl Future<Output = T>) -> T {
        let sent = Notify::new();
        let send = async {
            let answer = send.await;
            sent.notify_one();
            answer
        };
        let keep = async {
            let mut due = self.renew_at();
            loop {
                tokio::select! {
                    () = tokio::time::sleep_until(due.into()) => {}
                    () = sent.notified() => return,
                }
                due = match self.renew(ledger).await {
                    Ok(()) => self.renew_at(),
                    Err(e) => {
                        tracing::warn!("could not renew claims while sending, trying again: {e}");
                        Instant::now() + (self.lease / 10).max(MIN_RENEWAL_GAP)
                    }
                };
            }
        };
        futures::future::join(send, keep).await.0
    }

    /// The claim of slot `i` as last written, to settle it; a claim lost
    /// meanwhile still settles a delivery (it happened) and nothing else.
    pub fn take(&mut self, i: usize) -> Entry {
        let slot = &mut self.slots[i];
        slot.state = State::Taken;
        slot.entry.clone()
    }

    /// Claims lost to another run and not yet reported by
    /// [`Self::is_held`]'s caller: positions, each handed out once.
    pub fn lost(&mut self) -> Vec<usize> {
        let mut lost = Vec::new();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if slot.state == State::Lost {
                slot.state = State::Taken;
                lost.push(i);
            }
        }
        lost
    }

    /// Marks a lost claim as reported.
    pub fn forget(&mut self, i: usize) {
        self.slots[i].state = State::Taken;
    }

    /// Slots neither taken nor lost, handed back.
    pub fn rest(&mut self) -> Vec<(usize, Entry)> {
        let mut rest = Vec::new();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if slot.state == State::Held {
                slot.state = State::Taken;
                rest.push((i, slot.entry.clone()));
            }
        }
        rest
    }
}
