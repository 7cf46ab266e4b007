//! Ledger writes, grouped into entity group transactions where possible.
//!
//! A transaction is all or nothing and answers `Ok` even when it failed, so
//! every operation's status is checked; when any failed (one claim lost a
//! race, say), the group is redone one write at a time so the others still
//! happen and each gets its own answer. A write the service refuses for
//! what it holds (a key or value it does not take) is that write's answer,
//! not an error of the whole batch.

use azure_core::Etag;
use azure_data_tables::prelude::TableClient;
use azure_data_tables::IfMatchCondition;

use super::record::Record;
use crate::storage::{
    http_status, is_conflict, is_entity_missing, is_precondition_failed, Storage, StorageError,
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
    pub fn record(&self) -> &Record {
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
    /// 400 or 413: the service does not take this record (a key or a value
    /// too large, a character it refuses). Trying again cannot help; the
    /// reason names the record's key and the service's error code.
    Refused(String),
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
        Err(e) => match outcome_of(&e, &record.row_key) {
            Some(outcome) => Ok(outcome),
            None => Err(storage.error(e, table, context())),
        },
    }
}

/// The answer a failed single write gives, when it is about this record
/// alone; `None` for failures of the request or the account (auth,
/// throttling that outlasted the retries, the network), which fail the run.
fn outcome_of(error: &azure_core::Error, row_key: &str) -> Option<Outcome> {
    if is_conflict(error) {
        return Some(Outcome::Conflict);
    }
    if is_precondition_failed(error) {
        return Some(Outcome::Stale);
    }
    if is_entity_missing(error) {
        return Some(Outcome::Missing);
    }
    match http_status(error) {
        Some((status, code)) if status == 413 || (status == 400 && about_the_entity(code)) => {
            Some(Outcome::Refused(format!(
                "the state table refused ledger record {}: HTTP {status} {}",
                shortened(row_key),
                code.unwrap_or("(no error code)")
            )))
        }
        _ => None,
    }
}

/// Whether a 400 is about the record's content (a key or value too large
/// or out of range), not about the request: any other 400 (a bad header, a
/// proxy's answer) would refuse every record alike and fails the run.
fn about_the_entity(code: Option<&str>) -> bool {
    matches!(
        code,
        Some(
            "KeyValueTooLarge"
                | "PropertyValueTooLarge"
                | "EntityTooLarge"
                | "PropertyNameTooLong"
                | "TooManyProperties"
                | "OutOfRangeInput"
                | "InvalidValueType"
                // Azurite's answer to a key over its limit.
                | "InvalidInput"
        )
    )
}

/// A key as a reason shows it: a too-long one cut to its start.
fn shortened(key: &str) -> String {
    const SHOWN: usize = 100;
    match key.char_indices().nth(SHOWN) {
        Some((at, _)) => format!("{}… ({} characters)", &key[..at], key.chars().count()),
        None => key.to_owned(),
    }
}

fn condition(etag: &Option<Etag>) -> IfMatchCondition {
    match etag {
        Some(etag) => IfMatchCondition::Etag(etag.clone()),
        None => IfMatchCondition::Any,
    }
}

#[cfg(test)]
mod tests {
    use azure_core::error::ErrorKind;
    use azure_core::StatusCode;

    use super::*;

    fn answered(status: StatusCode, code: &str) -> azure_core::Error {
        azure_core::Error::message(
            ErrorKind::HttpResponse {
                status,
                error_code: Some(code.to_owned()),
            },
            "answered",
        )
    }

    #[test]
    fn refusals_of_one_record_are_its_outcome() {
        for (status, code) in [
            (StatusCode::BadRequest, "KeyValueTooLarge"),
            (StatusCode::BadRequest, "PropertyValueTooLarge"),
            (StatusCode::BadRequest, "InvalidInput"),
            (StatusCode::PayloadTooLarge, "RequestBodyTooLarge"),
        ] {
            let outcome = outcome_of(&answered(status, code), "9:2F28|r1|email");
            let Some(Outcome::Refused(reason)) = outcome else {
                panic!("{code}: {outcome:?}");
            };
            assert_eq!(
                reason,
                format!(
                    "the state table refused ledger record 9:2F28|r1|email: HTTP {} {code}",
                    u16::from(status)
                )
            );
        }
    }

    #[test]
    fn known_answers_keep_their_meaning_and_the_rest_fail_the_run() {
        let outcome = |status, code| outcome_of(&answered(status, code), "k");
        assert_eq!(
            outcome(StatusCode::Conflict, "EntityAlreadyExists"),
            Some(Outcome::Conflict)
        );
        assert_eq!(
            outcome(
                StatusCode::PreconditionFailed,
                "UpdateConditionNotSatisfied"
            ),
            Some(Outcome::Stale)
        );
        assert_eq!(
            outcome(StatusCode::NotFound, "ResourceNotFound"),
            Some(Outcome::Missing)
        );
        for (status, code) in [
            (StatusCode::NotFound, "TableNotFound"),
            (StatusCode::Forbidden, "AuthorizationFailure"),
            (StatusCode::Unauthorized, "InvalidAuthenticationInfo"),
            (StatusCode::TooManyRequests, "TooManyRequests"),
            (StatusCode::ServiceUnavailable, "ServerBusy"),
            (StatusCode::InternalServerError, "InternalError"),
            // About the request, not the record: every record would fail alike.
            (StatusCode::BadRequest, "InvalidHeaderValue"),
            (StatusCode::BadRequest, "InvalidUri"),
            (StatusCode::BadRequest, ""),
        ] {
            assert_eq!(outcome(status, code), None, "{code}");
        }
        let io = azure_core::Error::message(ErrorKind::Io, "connection reset");
        assert_eq!(outcome_of(&io, "k"), None);
    }

    #[test]
    fn a_long_key_is_shortened_in_the_reason() {
        let key = "~C3~A9".repeat(300);
        let Some(Outcome::Refused(reason)) =
            outcome_of(&answered(StatusCode::BadRequest, "InvalidInput"), &key)
        else {
            panic!("not refused");
        };
        assert!(
            reason.contains(&format!("{}… (1800 characters)", &key[..100])),
            "{reason}"
        );
        assert!(reason.len() < 200, "{reason}");
    }
}
