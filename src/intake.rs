//! Writes lead rows into the lead table in Microsoft's own format: the
//! real-time `LeadWebhook` and `lead-notifier seed` both go through here, so
//! the table stays the one system of record.

use crate::config::Settings;
use crate::lead::LeadRow;
use crate::storage::{is_conflict, is_table_missing, Storage, StorageError};

/// Inserts `rows` into `LEADS_TABLE`, creating the table when missing, and
/// returns how many were new. A row whose keys exist already is the same
/// lead sent again (its RowKey derives from its content) and is left as is.
pub async fn store(settings: &Settings, rows: &[LeadRow]) -> Result<usize, StorageError> {
    let storage = Storage::new(&settings.storage, reqwest::Client::new());
    let table = &settings.leads_table;
    let mut stored = 0;
    for row in rows {
        if insert(&storage, table, row).await? {
            stored += 1;
        }
    }
    Ok(stored)
}

async fn insert(storage: &Storage, table: &str, row: &LeadRow) -> Result<bool, StorageError> {
    let action = || format!("storing lead {}/{}", row.partition_key, row.row_key);
    let attempt = |storage: &Storage| {
        let client = storage.table(table);
        async move { client.insert::<_, serde_json::Value>(row)?.await }
    };
    match attempt(storage).await {
        Ok(_) => Ok(true),
        Err(e) if is_conflict(&e) => Ok(false),
        Err(e) if is_table_missing(&e) => {
            storage.create_table_if_missing(table).await?;
            match attempt(storage).await {
                Ok(_) => Ok(true),
                Err(e) if is_conflict(&e) => Ok(false),
                Err(e) => Err(storage.error(e, table, action())),
            }
        }
        Err(e) => Err(storage.error(e, table, action())),
    }
}
