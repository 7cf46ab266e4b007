//! The scan position of one lead table: the `Timestamp` from which the next
//! run scans (less the overlap window). Written with ETag concurrency and
//! only ever moved forward, so overlapping runs cannot move it back.

use azure_core::Etag;
use azure_data_tables::IfMatchCondition;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::keys::{watermark_row, WATERMARK_PARTITION};
use crate::storage::{format_timestamp, parse_timestamp};
use crate::storage::{
    is_conflict, is_entity_missing, is_precondition_failed, is_table_missing, Storage, StorageError,
};

/// Concurrent writers retry this often before giving up.
const MAX_RACES: usize = 10;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WatermarkEntity {
    partition_key: String,
    row_key: String,
    lead_table: String,
    watermark: String,
    run_id: String,
    updated_at: String,
}

/// A stored watermark as read.
#[derive(Debug, Clone)]
pub struct Watermark {
    pub at: OffsetDateTime,
    etag: Option<Etag>,
}

/// The watermark store of one lead table.
pub struct Watermarks<'a> {
    storage: &'a Storage,
    state_table: &'a str,
    lead_table: &'a str,
}

impl<'a> Watermarks<'a> {
    pub fn new(storage: &'a Storage, state_table: &'a str, lead_table: &'a str) -> Self {
        Watermarks {
            storage,
            state_table,
            lead_table,
        }
    }

    /// The saved watermark; `None` before the first run. Creates the state
    /// table when it is missing (first run), so an ordinary run spends one
    /// request here.
    pub async fn load(&self) -> Result<Option<Watermark>, StorageError> {
        match self.read().await {
            Err(ReadError::TableMissing) => {
                self.storage
                    .create_table_if_missing(self.state_table)
                    .await?;
                Ok(None)
            }
            Err(ReadError::Storage(e)) => Err(e),
            Ok(found) => Ok(found),
        }
    }

    /// Like [`Self::load`] but never writes: `Ok(false)` when the state table
    /// does not exist yet.
    pub async fn probe(&self) -> Result<bool, StorageError> {
        match self.read().await {
            Err(ReadError::TableMissing) => Ok(false),
            Err(ReadError::Storage(e)) => Err(e),
            Ok(_) => Ok(true),
        }
    }

    /// Moves the watermark to `to` unless it is already there or beyond;
    /// returns the stored value. `loaded` is what this run read at its start.
    pub async fn advance(
        &self,
        loaded: Option<Watermark>,
        to: OffsetDateTime,
        run_id: &str,
    ) -> Result<OffsetDateTime, StorageError> {
        // Stored with 100 ns ticks: compare and answer in the same unit.
        let to = to
            .replace_nanosecond(to.nanosecond() / 100 * 100)
            .unwrap_or(to);
        let mut current = loaded;
        for _ in 0..MAX_RACES {
            if let Some(stored) = &current {
                if stored.at >= to {
                    return Ok(stored.at);
                }
            }
            let entity = WatermarkEntity {
                partition_key: WATERMARK_PARTITION.to_owned(),
                row_key: watermark_row(self.lead_table),
                lead_table: self.lead_table.to_owned(),
                watermark: format_timestamp(to),
                run_id: run_id.to_owned(),
                updated_at: format_timestamp(OffsetDateTime::now_utc()),
            };
            let result = match &current {
                Some(Watermark {
                    etag: Some(etag), ..
                }) => {
                    let client = self.entity_client();
                    match client.update(&entity, IfMatchCondition::Etag(etag.clone())) {
                        Ok(update) => update.await.map(|_| ()),
                        Err(e) => Err(e),
                    }
                }
                _ => match self
                    .storage
                    .table(self.state_table)
                    .insert::<_, serde_json::Value>(&entity)
                {
                    Ok(insert) => insert.await.map(|_| ()),
                    Err(e) => Err(e),
                },
            };
            match result {
                Ok(()) => return Ok(to),
                // Another run wrote first: look at what it wrote.
                Err(e) if is_precondition_failed(&e) || is_conflict(&e) => {
                    current = match self.read().await {
                        Ok(found) => found,
                        Err(ReadError::Storage(e)) => return Err(e),
                        Err(ReadError::TableMissing) => None,
                    };
                }
                Err(e) => return Err(self.error(e, "saving the watermark")),
            }
        }
        Err(StorageError::Other {
            account: self.storage.account().to_owned(),
            action: format!("saving the watermark of lead table {}", self.lead_table),
            reason: format!("{MAX_RACES} concurrent updates in a row"),
        })
    }

    async fn read(&self) -> Result<Option<Watermark>, ReadError> {
        match self.entity_client().get::<WatermarkEntity>().await {
            Ok(found) => {
                let at = parse_timestamp(&found.entity.watermark).ok_or_else(|| {
                    ReadError::Storage(StorageError::Other {
                        account: self.storage.account().to_owned(),
                        action: format!("reading the watermark of lead table {}", self.lead_table),
                        reason: format!("unreadable time {:?}", found.entity.watermark),
                    })
                })?;
                Ok(Some(Watermark {
                    at,
                    etag: Some(found.etag),
                }))
            }
            Err(e) if is_table_missing(&e) => Err(ReadError::TableMissing),
            Err(e) if is_entity_missing(&e) => Ok(None),
            Err(e) => Err(ReadError::Storage(self.error(e, "reading the watermark"))),
        }
    }

    fn entity_client(&self) -> azure_data_tables::prelude::EntityClient {
        self.storage
            .table(self.state_table)
            .partition_key_client(WATERMARK_PARTITION)
            .entity_client(watermark_row(self.lead_table))
    }

    fn error(&self, e: azure_core::Error, what: &str) -> StorageError {
        self.storage.error(
            e,
            self.state_table,
            format!(
                "{what} of lead table {} in state table {}",
                self.lead_table, self.state_table
            ),
        )
    }
}

enum ReadError {
    TableMissing,
    Storage(StorageError),
}
