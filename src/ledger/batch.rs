//! Ledger writes, grouped into entity group transactions where possible.
//!
//! A transaction is all or nothing and answers `Ok` even when it failed, so
//! every operation's status is checked; when any failed (one claim lost a
//! race, say), the group is redone one write at a time so the others still
//! happen and each gets its own answer.

use azure_core::Etag;
use azure_data_tables::prelude::TableClient;
use azure_data_tables::IfMatchCondition;

use super::record::Record;
use crate::storage::{
    is_conflict, is_entity_missing, is_precondition_failed, Storage, StorageError,
};

/// Operations per transaction: Table storage's limit.
const MAX_GROUP: usize = 100;

/// One ledger write.
#[derive(Debug, Clone)]
pub enum Write {
    /// Fails with [`Outcome::Conflict`] when the record exists.
    Insert(Record),
    /// Replaces the record if its ETag still matches (any ETag for `None`).
    Replace(Record, Option<Etag>),
}

impl Write {
    fn record(&self) -> &Record {
        match self {
            Write::Insert(r) | Write::Replace(r, _) => r,
        }
    }
}

/// How one write ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Written(Option<Etag>),
    /// 409: an insert found the record already there.
    Conflict,
    /// 412: the record changed since its ETag was read.
    Stale,
    /// 404: a replace found no record.
    Missing,
}

/// Applies `writes` (all in one partition), answering one outcome each, in order.
pub async fn write_all(
    storage: &Storage,
    table: &str,
    partition: &str,
    writes: &[Write],
) -> Result<Vec<Outcome>, StorageError> {
    let client = storage.table(table);
    let mut outcomes = Vec::with_capacity(writes.len());
    for group in writes.chunks(MAX_GROUP) {
        let grouped = if group.len() > 1 {
            write_group(storage, &client, table, partition, group).await?
        } else {
            None
        };
        match grouped {
            Some(done) => outcomes.extend(done),
            None => {
                for write in group {
                    outcomes.push(write_one(storage, &client, table, partition, write).await?);
                }
            }
        }
    }
    Ok(outcomes)
}

/// `None` when the transaction did not succeed as a whole.
async fn write_group(
    storage: &Storage,
    client: &TableClient,
    table: &str,
    partition: &str,
    group: &[Write],
) -> Result<Option<Vec<Outcome>>, StorageError> {
    let context = || format!("writing {} records to table {table}", group.len());
    let mut transaction = client.partition_key_client(partition).transaction();
    for write in group {
        transaction = match write {
            Write::Insert(r) => transaction.insert(r),
            Write::Replace(r, etag) => {
                transaction.update(r.row_key.clone(), r, Some(condition(etag)))
            }
        }
        .map_err(|e| storage.error(e, table, context()))?;
    }
    // A rejected transaction is redone one write at a time, which either
    // works or fails with the precise error of the write at fault.
    let Ok(response) = transaction.await else {
        return Ok(None);
    };
    let answers = response.operation_responses;
    let all_ok = answers.len() == group.len() && answers.iter().all(|a| a.status_code.is_success());
    Ok(all_ok.then(|| {
        answers
            .into_iter()
            .map(|a| Outcome::Written(a.etag))
            .collect()
    }))
}

async fn write_one(
    storage: &Storage,
    client: &TableClient,
    table: &str,
    partition: &str,
    write: &Write,
) -> Result<Outcome, StorageError> {
    let record = write.record();
    let entity = client
        .partition_key_client(partition)
        .entity_client(record.row_key.clone());
    let context = || format!("writing ledger record {} to table {table}", record.row_key);
    let result = match write {
        Write::Insert(r) => match client.insert::<_, serde_json::Value>(r) {
            Ok(insert) => insert.await.map(|done| Some(done.etag)),
            Err(e) => Err(e),
        },
        Write::Replace(r, etag) => match entity.update(r, condition(etag)) {
            Ok(update) => update.await.map(|done| Some(done.etag)),
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(etag) => Ok(Outcome::Written(etag)),
        Err(e) if is_conflict(&e) => Ok(Outcome::Conflict),
        Err(e) if is_precondition_failed(&e) => Ok(Outcome::Stale),
        Err(e) if is_entity_missing(&e) => Ok(Outcome::Missing),
        Err(e) => Err(storage.error(e, table, context())),
    }
}

fn condition(etag: &Option<Etag>) -> IfMatchCondition {
    match etag {
        Some(etag) => IfMatchCondition::Etag(etag.clone()),
        None => IfMatchCondition::Any,
    }
}
