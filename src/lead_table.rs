//! The incremental scan of the lead table: every row whose system `Timestamp`
//! is at or after a lower bound, page by page (Azure serves at most 1,000 rows
//! a page and continues by token), never the whole table in memory. Each row
//! of a page is read on its own: one that cannot be read is skipped and named
//! by its keys, and the rest of the page and the scan go on.

use std::collections::BTreeMap;

use azure_core::Pageable;
use azure_data_tables::operations::QueryEntityResponse;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::lead::{LeadKey, LeadRow};
use crate::storage::{
    format_timestamp, is_conflict, is_entity_missing, is_table_missing, Storage, StorageError,
};

type RawEntity = Map<String, Value>;
/// An entity as the lead table answers it, kept as text and read into a row
/// on its own ([`read_entity`]): one row cannot fail a page.
type PageEntity = Box<RawValue>;

/// The OData filter for rows at or after `from` (case-sensitive names).
pub fn since_filter(from: OffsetDateTime) -> String {
    format!("Timestamp ge datetime'{}'", format_timestamp(from))
}

/// One scan in progress.
pub struct Scan<'a> {
    storage: &'a Storage,
    table: String,
    pages: Pageable<QueryEntityResponse<PageEntity>, azure_core::Error>,
    /// Rows skipped because they could not be read, as problem lines.
    unreadable: Vec<String>,
}

impl<'a> Scan<'a> {
    /// Rows of `table` written at or after `from` (the whole table for `None`).
    /// No I/O until the first page is asked for.
    pub fn new(storage: &'a Storage, table: &str, from: Option<OffsetDateTime>) -> Scan<'a> {
        let mut query = storage.table(table).query();
        if let Some(from) = from {
            query = query.filter(since_filter(from));
        }
        Scan {
            storage,
            table: table.to_owned(),
            pages: query.into_stream::<PageEntity>(),
            unreadable: Vec::new(),
        }
    }

    /// The next page, or `None` when the scan is complete. A page may be
    /// empty while more follow (Azure does that on long scans).
    pub async fn next_page(&mut self) -> Result<Option<Vec<LeadRow>>, StorageError> {
        match self.pages.next().await {
            None => Ok(None),
            Some(Ok(page)) => {
                let mut rows = Vec::with_capacity(page.entities.len());
                for entity in page.entities {
                    match read_entity(&entity) {
                        Ok(row) => rows.push(row),
                        Err(problem) => self.unreadable.push(problem),
                    }
                }
                Ok(Some(rows))
            }
            Some(Err(e)) if is_table_missing(&e) => Err(StorageError::LeadTableMissing {
                table: self.table.clone(),
                account: self.storage.account().to_owned(),
            }),
            Some(Err(e)) => Err(self.storage.error(
                e,
                &self.table,
                format!("reading lead table {}", self.table),
            )),
        }
    }

    /// The rows skipped so far because they could not be read, one problem
    /// line each (keys and reason, no content); taken, so each is told once.
    pub fn take_unreadable(&mut self) -> Vec<String> {
        std::mem::take(&mut self.unreadable)
    }
}

/// Reaches the lead table with the smallest possible read (one row).
pub async fn probe(storage: &Storage, table: &str) -> Result<(), StorageError> {
    let mut pages = storage
        .table(table)
        .query()
        .top(1u32)
        .into_stream::<PageEntity>();
    match pages.next().await {
        None | Some(Ok(_)) => Ok(()),
        Some(Err(e)) if is_table_missing(&e) => Err(StorageError::LeadTableMissing {
            table: table.to_owned(),
            account: storage.account().to_owned(),
        }),
        Some(Err(e)) => Err(storage.error(e, table, format!("reading lead table {table}"))),
    }
}

/// The row with `row`'s keys as the lead table holds it (`None` also when
/// the table does not exist yet): one point read.
pub async fn stored_row(
    storage: &Storage,
    table: &str,
    row: &LeadRow,
) -> Result<Option<LeadRow>, StorageError> {
    let entity = storage
        .table(table)
        .partition_key_client(&row.partition_key)
        .entity_client(row.row_key.clone());
    match entity.get::<RawEntity>().await {
        Ok(found) => Ok(Some(lead_row(found.entity))),
        Err(e) if is_entity_missing(&e) || is_table_missing(&e) => Ok(None),
        Err(e) => Err(storage.error(e, table, format!("reading lead table {table}"))),
    }
}

/// Writes rows in Microsoft's format, creating the table when missing, in
/// entity group transactions per partition. Rows already stored are left
/// as they are. Returns how many rows were new.
pub async fn store_rows(
    storage: &Storage,
    table: &str,
    rows: &[LeadRow],
) -> Result<usize, StorageError> {
    let client = storage.table(table);
    let action = || format!("writing to lead table {table}");
    let mut by_partition: BTreeMap<&str, Vec<&LeadRow>> = BTreeMap::new();
    for row in rows {
        by_partition
            .entry(&row.partition_key)
            .or_default()
            .push(row);
    }
    let mut created = false;
    let mut stored = 0;
    for (partition, rows) in by_partition {
        for group in rows.chunks(100) {
            let mut transaction = client.partition_key_client(partition).transaction();
            for row in group {
                transaction = transaction
                    .insert(row)
                    .map_err(|e| storage.error(e, table, action()))?;
            }
            let answer = transaction.await;
            let whole = match &answer {
                Ok(done) => {
                    done.operation_responses.len() == group.len()
                        && done
                            .operation_responses
                            .iter()
                            .all(|a| a.status_code.is_success())
                }
                Err(_) => false,
            };
            if whole {
                stored += group.len();
                continue;
            }
            // One by one, so rows already there do not block the others.
            for row in group {
                loop {
                    let insert = client
                        .insert::<_, Value>(row)
                        .map_err(|e| storage.error(e, table, action()))?;
                    match insert.await {
                        Ok(_) => stored += 1,
                        Err(e) if is_conflict(&e) => {}
                        Err(e) if is_table_missing(&e) && !created => {
                            created = true;
                            storage.create_table_if_missing(table).await?;
                            continue;
                        }
                        Err(e) => return Err(storage.error(e, table, action())),
                    }
                    break;
                }
            }
        }
    }
    Ok(stored)
}

/// Reads one entity of a page, or says which row could not be read and why.
///
/// Half an emoji in a row (a lone UTF-16 surrogate, `\ud83d` with no low
/// half, as a system that counts in UTF-16 leaves when it cuts text) reads
/// as U+FFFD: the page itself is read with each entity kept as text, which
/// serde_json takes with lone surrogates in it, so the repair is made here,
/// where every row a scan reads passes. Nowhere else needs it: the state
/// table holds only what this program wrote from Rust strings, which cannot
/// hold one, and so do the rows [`stored_row`] reads back (posted leads).
/// The reason given for a row that still cannot be read is serde_json's,
/// which names a position, never content.
fn read_entity(entity: &RawValue) -> Result<LeadRow, String> {
    let text = crate::json_text::repair(entity.get());
    let error = match serde_json::from_str::<RawEntity>(&text) {
        Ok(entity) => return Ok(lead_row(entity)),
        Err(e) => e,
    };
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Keys {
        partition_key: String,
        row_key: String,
    }
    Err(match serde_json::from_str::<Keys>(&text) {
        Ok(keys) => {
            let key = LeadKey {
                partition_key: keys.partition_key,
                row_key: keys.row_key,
            };
            format!("lead row {key} skipped: it could not be read ({error})")
        }
        Err(_) => format!("a lead row whose keys could not be read was skipped ({error})"),
    })
}

/// Builds a row leniently: Microsoft writes strings, but a column of another
/// type must not make a whole page unreadable.
fn lead_row(mut entity: RawEntity) -> LeadRow {
    let mut take = |name: &str| -> Option<String> {
        match entity.remove(name)? {
            Value::Null => None,
            Value::String(s) => Some(s),
            other => Some(other.to_string()),
        }
    };
    LeadRow {
        partition_key: take("PartitionKey").unwrap_or_default(),
        row_key: take("RowKey").unwrap_or_default(),
        timestamp: take("Timestamp"),
        action_code: take("ActionCode"),
        created_time: take("CreatedTime"),
        customer_info: take("CustomerInfo"),
        description: take("Description"),
        lead_source: take("LeadSource"),
        offer_display_name: take("OfferDisplayName"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::parse_timestamp;
    use time::macros::datetime;

    #[test]
    fn timestamps_have_seven_fraction_digits_in_utc() {
        let t = datetime!(2026-11-21 11:00:00.123456789 +01:00);
        assert_eq!(format_timestamp(t), "2026-11-21T10:00:00.1234567Z");
        assert_eq!(
            since_filter(datetime!(2026-11-21 10:00 UTC)),
            "Timestamp ge datetime'2026-11-21T10:00:00.0000000Z'"
        );
    }

    #[test]
    fn formatted_timestamps_sort_as_text() {
        let a = format_timestamp(datetime!(2026-01-02 03:04:05.9 UTC));
        let b = format_timestamp(datetime!(2026-01-02 03:04:06 UTC));
        assert!(a < b);
        assert_eq!(
            parse_timestamp(&a),
            Some(datetime!(2026-01-02 03:04:05.9 UTC))
        );
    }

    #[test]
    fn one_entity_costs_itself_not_the_page() {
        let page = r#"[
            {"PartitionKey": "p", "RowKey": "half", "Description": "a\ud83d b\ude00 \ud83d\ude00"},
            {"PartitionKey": "p", "RowKey": "huge", "Description": "Ada", "Odd": 1e400},
            {"PartitionKey": 7, "RowKey": "bad keys", "Odd": 1e400},
            {"PartitionKey": "p", "RowKey": "fine"}
        ]"#;
        let entities: Vec<PageEntity> = serde_json::from_str(page).expect("the page reads");
        let read: Vec<Result<LeadRow, String>> = entities.iter().map(|e| read_entity(e)).collect();
        let half = read[0].as_ref().expect("half an emoji is read");
        assert_eq!(half.description.as_deref(), Some("a\u{FFFD} b\u{FFFD} 😀"));
        let huge = read[1].as_ref().expect_err("a number beyond f64");
        assert!(
            huge.starts_with("lead row p/huge skipped: it could not be read ("),
            "{huge}"
        );
        assert!(!huge.contains("Ada"), "{huge}");
        let bad = read[2].as_ref().expect_err("neither row nor keys");
        assert!(
            bad.starts_with("a lead row whose keys could not be read"),
            "{bad}"
        );
        assert_eq!(read[3].as_ref().map(|r| r.row_key.as_str()), Ok("fine"));
    }

    #[test]
    fn rows_are_read_leniently() {
        let entity: RawEntity = serde_json::from_value(serde_json::json!({
            "odata.etag": "W/\"x\"", "PartitionKey": "9:2F28:2F2018", "RowKey": "r1",
            "Timestamp": "2026-01-01T00:00:00.0000000Z", "ActionCode": 7, "Description": null
        }))
        .unwrap();
        let row = lead_row(entity);
        assert_eq!(row.partition_key, "9:2F28:2F2018");
        assert_eq!(row.action_code.as_deref(), Some("7"));
        assert_eq!(row.description, None);
        assert_eq!(
            row.timestamp.as_deref(),
            Some("2026-01-01T00:00:00.0000000Z")
        );
    }
}
