//! Who took a lead, in the state table: partition `take-<lead table>`, one
//! row per taken lead keyed like the ledger's (escaped keys, hashed when too
//! long). A row is only ever inserted, never replaced: Table storage refuses
//! a second insert of the same row (409), so of two people who take a lead
//! at the same moment exactly one wins, and the other reads who did.
//!
//! State written before takes existed has no such partition: every lead
//! there reads as open.

use std::collections::HashMap;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::lead::LeadKey;
use crate::ledger::keys;
use crate::storage::{
    format_timestamp, is_conflict, is_entity_missing, is_table_missing, parse_timestamp, Storage,
    StorageError,
};

/// A take as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Take {
    /// The taker's name as they gave it (or as the sign-in gave it).
    pub by: String,
    pub at: OffsetDateTime,
}

/// How an attempt to take a lead ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// This attempt took it.
    Now(Take),
    /// Someone (maybe the same person) took it before.
    Before(Take),
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entity {
    partition_key: String,
    row_key: String,
    #[serde(default)]
    lead_partition_key: String,
    #[serde(default)]
    lead_row_key: String,
    #[serde(default)]
    taken_by: String,
    #[serde(default)]
    taken_at: String,
    /// The lead row's `Timestamp`, for reports of time to take.
    #[serde(default)]
    lead_timestamp: String,
}

/// The take partition of one lead table.
pub fn partition(lead_table: &str) -> String {
    // Like the ledger's: table names are case-insensitive.
    format!("take-{}", keys::encode(&lead_table.to_ascii_lowercase()))
}

/// The take records of one lead table.
pub struct TakeStore<'a> {
    storage: &'a Storage,
    state_table: &'a str,
    partition: String,
}

impl<'a> TakeStore<'a> {
    pub fn new(storage: &'a Storage, state_table: &'a str, lead_table: &str) -> TakeStore<'a> {
        TakeStore {
            storage,
            state_table,
            partition: partition(lead_table),
        }
    }

    /// Who took `lead`, if anyone. Reads only.
    pub async fn get(&self, lead: &LeadKey) -> Result<Option<Take>, StorageError> {
        let client = self
            .storage
            .table(self.state_table)
            .partition_key_client(&self.partition)
            .entity_client(keys::lead_row(lead));
        match client.get::<Entity>().await {
            Ok(found) => Ok(Some(self.read(found.entity)?)),
            Err(e) if is_entity_missing(&e) || is_table_missing(&e) => Ok(None),
            Err(e) => Err(self.error(e, "reading who took a lead")),
        }
    }

    /// Takes `lead` for `by` unless someone has: inserts the record, and on
    /// a conflict reads the one that won. `lead_timestamp` is the lead
    /// row's `Timestamp` when known.
    pub async fn take(
        &self,
        lead: &LeadKey,
        by: &str,
        lead_timestamp: Option<OffsetDateTime>,
    ) -> Result<Taken, StorageError> {
        let at = OffsetDateTime::now_utc();
        let entity = Entity {
            partition_key: self.partition.clone(),
            row_key: keys::lead_row(lead),
            lead_partition_key: lead.partition_key.clone(),
            lead_row_key: lead.row_key.clone(),
            taken_by: by.to_owned(),
            taken_at: format_timestamp(at),
            lead_timestamp: lead_timestamp.map(format_timestamp).unwrap_or_default(),
        };
        let mut created_table = false;
        loop {
            let insert = self
                .storage
                .table(self.state_table)
                .insert::<_, serde_json::Value>(&entity);
            let result = match insert {
                Ok(request) => request.await.map(drop),
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => {
                    return Ok(Taken::Now(Take {
                        by: by.to_owned(),
                        at,
                    }))
                }
                Err(e) if is_conflict(&e) => {
                    return match self.get(lead).await? {
                        Some(first) => Ok(Taken::Before(first)),
                        None => Err(StorageError::Other {
                            account: self.storage.account().to_owned(),
                            action: format!("taking a lead in state table {}", self.state_table),
                            reason: "the take record was refused as existing, yet is not there"
                                .to_owned(),
                        }),
                    };
                }
                // A state table that no run has made yet.
                Err(e) if is_table_missing(&e) && !created_table => {
                    self.storage
                        .create_table_if_missing(self.state_table)
                        .await?;
                    created_table = true;
                }
                Err(e) => return Err(self.error(e, "recording who took a lead")),
            }
        }
    }

    /// Every take recorded at or after `from`, by lead; empty when the
    /// state table does not exist yet.
    pub async fn since(
        &self,
        from: OffsetDateTime,
    ) -> Result<HashMap<LeadKey, Take>, StorageError> {
        let filter = format!(
            "PartitionKey eq '{}' and TakenAt ge '{}'",
            self.partition,
            format_timestamp(from)
        );
        let mut takes = HashMap::new();
        self.query(filter, &mut takes).await?;
        Ok(takes)
    }

    /// The takes of these leads, by lead: a few queries, not one read per
    /// lead. Leads nobody took are missing from the answer.
    pub async fn lookup(&self, leads: &[LeadKey]) -> Result<HashMap<LeadKey, Take>, StorageError> {
        let rows: Vec<String> = leads.iter().map(keys::lead_row).collect();
        let mut takes = HashMap::new();
        for filter in keys::row_filters(&self.partition, &rows) {
            self.query(filter, &mut takes).await?;
        }
        Ok(takes)
    }

    async fn query(
        &self,
        filter: String,
        takes: &mut HashMap<LeadKey, Take>,
    ) -> Result<(), StorageError> {
        let mut pages = self
            .storage
            .table(self.state_table)
            .query()
            .filter(filter)
            .into_stream::<Entity>();
        while let Some(page) = pages.next().await {
            let page = match page {
                Ok(page) => page,
                Err(e) if is_table_missing(&e) => return Ok(()),
                Err(e) => return Err(self.error(e, "reading who took leads")),
            };
            for entity in page.entities {
                let lead = LeadKey {
                    partition_key: entity.lead_partition_key.clone(),
                    row_key: entity.lead_row_key.clone(),
                };
                takes.insert(lead, self.read(entity)?);
            }
        }
        Ok(())
    }

    fn read(&self, entity: Entity) -> Result<Take, StorageError> {
        let at = parse_timestamp(&entity.taken_at).ok_or_else(|| StorageError::Other {
            account: self.storage.account().to_owned(),
            action: format!(
                "reading who took a lead in state table {}",
                self.state_table
            ),
            reason: format!("unreadable time {:?}", entity.taken_at),
        })?;
        Ok(Take {
            by: entity.taken_by,
            at,
        })
    }

    fn error(&self, e: azure_core::Error, what: &str) -> StorageError {
        self.storage.error(
            e,
            self.state_table,
            format!("{what} in state table {}", self.state_table),
        )
    }
}
