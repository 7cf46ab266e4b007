//! Customer histories as one run uses them: looked up per page for the
//! leads the run has to judge, each lead given its history in the order the
//! leads happened, repeats found, and the records written back before any
//! alert goes out (a retried lead finds itself in its customer's record and
//! is not its own repeat: [`Book::history`] leaves the lead itself out).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use time::OffsetDateTime;

use super::{Book, CustomerId, HistoryStore};
use crate::lead::{is_test_lead, Lead, LeadKey};
use crate::storage::{Storage, StorageError};
use crate::take::store::TakeStore;

/// Above this many unknown customers in one page, reading the whole history
/// partition once is about as cheap as the per-customer queries, and the
/// rest of the run needs no lookup at all.
const SCAN_ABOVE: usize = 56;

pub struct RunHistory<'a> {
    store: HistoryStore<'a>,
    /// Who took customers' earlier leads, when take links are on: the
    /// store, and the answers so far (`None`: nobody took it).
    takes: Option<(TakeStore<'a>, HashMap<LeadKey, Option<String>>)>,
    book: Book,
    window: Duration,
    /// The whole partition has been read: customers not in the book are new.
    complete: bool,
    /// Stands in for a missing `Timestamp` (rows posted to the webhook), the
    /// same in every answer of this run.
    now: OffsetDateTime,
}

impl<'a> RunHistory<'a> {
    /// `window`: `REPEAT_WINDOW` (zero: no folding).
    pub fn new(
        storage: &'a Storage,
        state_table: &'a str,
        lead_table: &str,
        window: Duration,
    ) -> RunHistory<'a> {
        RunHistory {
            store: HistoryStore::new(storage, state_table, lead_table),
            takes: None,
            book: Book::default(),
            window,
            complete: false,
            now: OffsetDateTime::now_utc(),
        }
    }

    /// Also says, in each history, who took the customer's earlier leads.
    pub fn with_takes(
        mut self,
        storage: &'a Storage,
        state_table: &'a str,
        lead_table: &str,
    ) -> Self {
        self.takes = Some((
            TakeStore::new(storage, state_table, lead_table),
            HashMap::new(),
        ));
        self
    }

    /// Gives each lead its customer's history, in the order the leads
    /// happened, and records it there. Returns, per lead in the given order,
    /// whether it repeats an earlier lead within the window. Reads storage
    /// only for customers not seen yet in this run; writes nothing (see
    /// [`Self::save`]).
    pub async fn judge(&mut self, leads: &mut [&mut Lead]) -> Result<Vec<bool>, StorageError> {
        let now = self.now;
        let ids: Vec<Option<CustomerId>> = leads.iter().map(|l| CustomerId::of(l)).collect();
        self.look_up(&ids).await?;
        let at = |lead: &Lead| lead.timestamp.unwrap_or(now);
        let mut order: Vec<usize> = (0..leads.len()).collect();
        order.sort_by(|&a, &b| (at(leads[a]), &leads[a].key).cmp(&(at(leads[b]), &leads[b].key)));
        let mut repeats = vec![false; leads.len()];
        for i in order {
            let Some(id) = &ids[i] else {
                continue;
            };
            let lead = &mut *leads[i];
            let when = at(lead);
            lead.history = Some(self.book.history(id, lead, when));
            repeats[i] = self.book.is_repeat(id, lead, when, self.window);
            // Partner Center's test leads are not customers.
            if !is_test_lead(lead) {
                self.book.add(id, lead, when);
            }
        }
        self.look_up_takes(leads).await?;
        for lead in leads.iter_mut() {
            self.fill_takes(lead);
        }
        Ok(repeats)
    }

    /// Reads who took the earlier leads of `leads` not asked about yet.
    async fn look_up_takes(&mut self, leads: &[&mut Lead]) -> Result<(), StorageError> {
        let Some((store, known)) = &mut self.takes else {
            return Ok(());
        };
        let mut unknown: Vec<LeadKey> = leads
            .iter()
            .filter_map(|lead| lead.history.as_ref())
            .flat_map(|history| history.earlier.iter().map(|past| &past.key))
            .filter(|key| !known.contains_key(*key))
            .cloned()
            .collect();
        unknown.sort();
        unknown.dedup();
        if unknown.is_empty() {
            return Ok(());
        }
        let mut found = store.lookup(&unknown).await?;
        for key in unknown {
            let by = found.remove(&key).map(|take| take.by);
            known.insert(key, by);
        }
        Ok(())
    }

    /// Puts the takes known of `lead`'s earlier leads into its history.
    fn fill_takes(&self, lead: &mut Lead) {
        let (Some((_, known)), Some(history)) = (&self.takes, lead.history.as_mut()) else {
            return;
        };
        history.taken = history
            .earlier
            .iter()
            .filter_map(|past| Some((past.key.clone(), known.get(&past.key)?.clone()?)))
            .collect();
    }

    /// The history of a lead judged earlier in this run (digests read their
    /// leads again): the same answer [`Self::judge`] gave.
    pub fn attach(&self, lead: &mut Lead) {
        if let Some(id) = CustomerId::of(lead) {
            let at = lead.timestamp.unwrap_or(self.now);
            lead.history = Some(self.book.history(&id, lead, at));
            self.fill_takes(lead);
        }
    }

    /// Writes the records changed since the last save, batched.
    pub async fn save(&mut self) -> Result<(), StorageError> {
        self.store.save(&mut self.book).await
    }

    async fn look_up(&mut self, ids: &[Option<CustomerId>]) -> Result<(), StorageError> {
        if self.complete {
            return Ok(());
        }
        let unknown: HashSet<&CustomerId> = ids
            .iter()
            .flatten()
            .filter(|id| !self.book.knows(id))
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        if unknown.len() > SCAN_ABOVE {
            let all = self.store.all().await?;
            self.book.extend(all);
            self.complete = true;
        } else {
            let unknown: Vec<CustomerId> = unknown.into_iter().copied().collect();
            let found = self.store.lookup(&unknown).await?;
            self.book.extend(found);
            // Looked up and not found: new customers, not to ask about again.
            for id in unknown {
                self.book.customers.entry(id).or_default();
            }
        }
        Ok(())
    }
}
