//! The history records in the state table: partition `history-<lead table>`,
//! one row per customer keyed by [`CustomerId`], holding their newest
//! [`KEPT`] leads as compact JSON (keys, action code, offer, time: nothing
//! personal).
//!
//! Reads are batched: one query per 14 customers (Azure allows 15
//! comparisons in a filter, one goes to the partition), a few queries at a
//! time. Writes go in entity group transactions, each record guarded by its
//! ETag; a record another run changed meanwhile is read again and merged.

use std::collections::HashMap;

use azure_core::Etag;
use azure_data_tables::IfMatchCondition;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{decode, encode, Book, CustomerId, PastLead, KEPT};
use crate::ledger::keys;
use crate::storage::format_timestamp;
use crate::storage::{
    is_conflict, is_entity_missing, is_precondition_failed, Storage, StorageError,
};

/// Customers per lookup query: 15 comparisons at most, one is the partition.
const PER_QUERY: usize = 14;
/// Lookup queries in flight at once.
const QUERIES_AT_ONCE: usize = 4;
/// Operations per entity group transaction: Table storage's limit.
const PER_TRANSACTION: usize = 100;
/// Attempts to write one record while other runs keep changing it.
const MAX_RACES: usize = 5;
/// The stored JSON stays well under Table storage's 64 KiB per property.
const MAX_TEXT: usize = 30_000;

/// One customer's record as read or about to be written.
#[derive(Debug, Clone, Default)]
pub struct Stored {
    /// Oldest first, at most [`KEPT`].
    pub leads: Vec<PastLead>,
    /// Every lead ever recorded, kept or not.
    pub total: usize,
    etag: Option<Etag>,
    /// Changed since it was read or written.
    dirty: bool,
}

impl Stored {
    /// Adds a lead unless it is there already; keeps the newest.
    pub fn add(&mut self, lead: PastLead) -> bool {
        if self.leads.iter().any(|p| p.key == lead.key) {
            return false;
        }
        // Most customers have one lead: a Vec's first growth would hold
        // room for four (600 bytes each), megabytes over a 10,000-lead run.
        self.leads.reserve_exact(1);
        self.leads.push(lead);
        self.leads.sort_by(|a, b| a.order().cmp(&b.order()));
        self.total += 1;
        if self.leads.len() > KEPT {
            self.leads.drain(..self.leads.len() - KEPT);
        }
        self.dirty = true;
        true
    }

    fn text(&mut self) -> String {
        let mut text = encode(&self.leads);
        // Only absurdly long lead keys get here: drop the oldest.
        while text.len() > MAX_TEXT && !self.leads.is_empty() {
            self.leads.remove(0);
            text = encode(&self.leads);
        }
        text
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entity {
    partition_key: String,
    row_key: String,
    #[serde(default)]
    leads: String,
    #[serde(default)]
    total: u32,
    #[serde(default)]
    updated_at: String,
    #[serde(rename = "odata.etag", default, skip_serializing)]
    etag: Option<String>,
}

impl Entity {
    /// `None` for a row that is not a customer record (its key is not an
    /// id this version writes).
    fn into_stored(self) -> Option<(CustomerId, Stored)> {
        let id = CustomerId::from_hex(&self.row_key)?;
        let leads = decode(&self.leads);
        let total = (self.total as usize).max(leads.len());
        let stored = Stored {
            leads,
            total,
            etag: self.etag.map(Etag::from),
            dirty: false,
        };
        Some((id, stored))
    }
}

/// The history partition of one lead table.
pub fn partition(lead_table: &str) -> String {
    // Like the ledger's: table names are case-insensitive.
    format!("history-{}", keys::encode(&lead_table.to_ascii_lowercase()))
}

/// The history records of one lead table.
pub struct HistoryStore<'a> {
    storage: &'a Storage,
    state_table: &'a str,
    partition: String,
}

impl<'a> HistoryStore<'a> {
    pub fn new(storage: &'a Storage, state_table: &'a str, lead_table: &str) -> HistoryStore<'a> {
        HistoryStore {
            storage,
            state_table,
            partition: partition(lead_table),
        }
    }

    /// The records of these customers; those without one are missing from
    /// the answer (a new customer, or state written before histories).
    pub async fn lookup(
        &self,
        ids: &[CustomerId],
    ) -> Result<HashMap<CustomerId, Stored>, StorageError> {
        let mut ids: Vec<CustomerId> = ids.to_vec();
        ids.sort();
        ids.dedup();
        // Owned chunks: a future borrowing the caller's slice would not be
        // `Send` for every lifetime, which the handler's routes require.
        let chunks: Vec<Vec<CustomerId>> = ids.chunks(PER_QUERY).map(<[_]>::to_vec).collect();
        let found: Vec<Vec<(CustomerId, Stored)>> = futures::stream::iter(chunks)
            .map(|chunk| self.query(chunk))
            .buffer_unordered(QUERIES_AT_ONCE)
            .try_collect()
            .await?;
        Ok(found.into_iter().flatten().collect())
    }

    /// Every record of the lead table: one request per 1,000.
    pub async fn all(&self) -> Result<HashMap<CustomerId, Stored>, StorageError> {
        let filter = format!("PartitionKey eq '{}'", self.partition);
        Ok(self.read(filter).await?.into_iter().collect())
    }

    async fn query(&self, ids: Vec<CustomerId>) -> Result<Vec<(CustomerId, Stored)>, StorageError> {
        // Row keys are hex: nothing to escape.
        let rows = ids
            .iter()
            .map(|id| format!("RowKey eq '{}'", id.to_hex()))
            .collect::<Vec<_>>()
            .join(" or ");
        self.read(format!("PartitionKey eq '{}' and ({rows})", self.partition))
            .await
    }

    async fn read(&self, filter: String) -> Result<Vec<(CustomerId, Stored)>, StorageError> {
        let mut pages = self
            .storage
            .table(self.state_table)
            .query()
            .filter(filter)
            .into_stream::<Entity>();
        let mut found = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.error(e, "reading customer histories"))?;
            found.extend(page.entities.into_iter().filter_map(Entity::into_stored));
        }
        Ok(found)
    }

    /// Writes every record the book changed, batched; records changed by
    /// another run meanwhile are merged and written again.
    pub async fn save(&self, book: &mut Book) -> Result<(), StorageError> {
        let mut dirty: Vec<CustomerId> = book
            .customers
            .iter()
            .filter(|(_, s)| s.dirty)
            .map(|(id, _)| *id)
            .collect();
        dirty.sort();
        for group in dirty.chunks(PER_TRANSACTION) {
            if group.len() > 1 && self.write_group(book, group).await? {
                continue;
            }
            for id in group {
                self.write_one(book, id).await?;
            }
        }
        Ok(())
    }

    fn entity(&self, id: &CustomerId, stored: &mut Stored) -> Entity {
        let leads = stored.text();
        Entity {
            partition_key: self.partition.clone(),
            row_key: id.to_hex(),
            leads,
            total: u32::try_from(stored.total).unwrap_or(u32::MAX),
            updated_at: format_timestamp(OffsetDateTime::now_utc()),
            etag: None,
        }
    }

    /// `false` when the transaction did not succeed as a whole.
    async fn write_group(
        &self,
        book: &mut Book,
        group: &[CustomerId],
    ) -> Result<bool, StorageError> {
        let client = self.storage.table(self.state_table);
        let mut transaction = client.partition_key_client(&self.partition).transaction();
        for id in group {
            let Some(stored) = book.customers.get_mut(id) else {
                continue;
            };
            let entity = self.entity(id, stored);
            transaction = match &stored.etag {
                Some(etag) => transaction.update(
                    entity.row_key.clone(),
                    &entity,
                    Some(IfMatchCondition::Etag(etag.clone())),
                ),
                None => transaction.insert(&entity),
            }
            .map_err(|e| self.error(e, "writing customer histories"))?;
        }
        let Ok(response) = transaction.await else {
            return Ok(false);
        };
        let answers = response.operation_responses;
        if answers.len() != group.len() || !answers.iter().all(|a| a.status_code.is_success()) {
            return Ok(false);
        }
        for (id, answer) in group.iter().zip(answers) {
            if let Some(stored) = book.customers.get_mut(id) {
                stored.etag = answer.etag;
                stored.dirty = false;
            }
        }
        Ok(true)
    }

    async fn write_one(&self, book: &mut Book, id: &CustomerId) -> Result<(), StorageError> {
        let client = self.storage.table(self.state_table);
        let entity_client = client
            .partition_key_client(&self.partition)
            .entity_client(id.to_hex());
        for _ in 0..MAX_RACES {
            let Some(stored) = book.customers.get_mut(id) else {
                return Ok(());
            };
            let entity = self.entity(id, stored);
            let result = match &stored.etag {
                Some(etag) => {
                    match entity_client.update(&entity, IfMatchCondition::Etag(etag.clone())) {
                        Ok(update) => update.await.map(|done| Some(done.etag)),
                        Err(e) => Err(e),
                    }
                }
                None => match client.insert::<_, serde_json::Value>(&entity) {
                    Ok(insert) => insert.await.map(|done| Some(done.etag)),
                    Err(e) => Err(e),
                },
            };
            match result {
                Ok(etag) => {
                    stored.etag = etag;
                    stored.dirty = false;
                    return Ok(());
                }
                // Another run wrote this customer meanwhile: merge into theirs.
                Err(e)
                    if is_conflict(&e) || is_precondition_failed(&e) || is_entity_missing(&e) =>
                {
                    let fresh = self.get(id).await?;
                    let ours = std::mem::take(&mut stored.leads);
                    *stored = fresh.unwrap_or_default();
                    for lead in ours {
                        stored.add(lead);
                    }
                    stored.dirty = true;
                }
                Err(e) => return Err(self.error(e, "writing a customer history")),
            }
        }
        Err(StorageError::Other {
            account: self.storage.account().to_owned(),
            action: format!(
                "writing a customer history in state table {}",
                self.state_table
            ),
            reason: format!("{MAX_RACES} concurrent updates in a row"),
        })
    }

    async fn get(&self, id: &CustomerId) -> Result<Option<Stored>, StorageError> {
        let client = self
            .storage
            .table(self.state_table)
            .partition_key_client(&self.partition)
            .entity_client(id.to_hex());
        match client.get::<Entity>().await {
            // Read by its own id's key, so it always is a customer record.
            Ok(found) => Ok(found.entity.into_stored().map(|(_, mut stored)| {
                stored.etag = Some(found.etag);
                stored
            })),
            Err(e) if is_entity_missing(&e) => Ok(None),
            Err(e) => Err(self.error(e, "reading a customer history")),
        }
    }

    fn error(&self, e: azure_core::Error, what: &str) -> StorageError {
        self.storage.error(
            e,
            self.state_table,
            format!("{what} in state table {}", self.state_table),
        )
    }
}
