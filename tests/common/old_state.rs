//! State as the previous version wrote it, built from raw entities (never
//! with the code under test), for upgrade tests: its watermark, and ledger
//! records keyed `escape(PartitionKey)|escape(RowKey)|channel`.

use std::time::Duration;

use lead_notifier::lead::LeadRow;
use lead_notifier::storage::format_timestamp;
use serde_json::{json, Value};

use super::faults::{Fixture, Teams};
use super::servers::{maildev_smtp_port, storage_connection, unique_recipient};

/// The previous version's key escape: every byte outside
/// `A-Z a-z 0-9 . _ : -` as `~XX` (upper-case hex).
pub fn old_escape(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"._:-".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("~{b:02X}")
            }
        })
        .collect()
}

/// The previous version's ledger RowKey of a lead on a channel.
pub fn old_ledger_row(row: &LeadRow, channel: &str) -> String {
    format!(
        "{}|{}|{channel}",
        old_escape(&row.partition_key),
        old_escape(&row.row_key)
    )
}

/// The ledger and watermark entities the single email + Teams version wrote,
/// exactly as it wrote them: every lead delivered on both channels.
pub fn old_state(f: &Fixture, rows: &[LeadRow]) -> Vec<Value> {
    let records: Vec<(&LeadRow, &str)> = rows.iter().map(|row| (row, "delivered")).collect();
    old_state_with(f, &records)
}

/// The same, with each lead's records (email and Teams) in a given status.
/// A `claimed` record says it was claimed an hour ago; leases run on the
/// service's clock from when it was written, so a test lets `CLAIM_LEASE`
/// pass before it counts as abandoned.
pub fn old_state_with(f: &Fixture, records: &[(&LeadRow, &str)]) -> Vec<Value> {
    let table = f.leads_table().to_ascii_lowercase();
    let at = format_timestamp(time::OffsetDateTime::now_utc() - time::Duration::hours(1));
    let mut entities = vec![json!({
        "PartitionKey": "watermark", "RowKey": table, "LeadTable": f.leads_table(),
        "Watermark": at, "RunId": "5f0c2a9e1b7d3c48", "UpdatedAt": at,
    })];
    for (row, status) in records {
        let (attempts, claimed_by, last_error, skip_reason) = match *status {
            "retry" => (1, "5f0c2a9e1b7d3c48", "Teams answered 503 (will retry)", ""),
            "skipped" => (0, "", "", "do_not_contact"),
            _ => (1, "5f0c2a9e1b7d3c48", "", ""),
        };
        let claimed_at = if claimed_by.is_empty() {
            ""
        } else {
            at.as_str()
        };
        for channel in ["email", "teams"] {
            entities.push(json!({
                "PartitionKey": format!("ledger-{table}"),
                "RowKey": old_ledger_row(row, channel),
                "Status": status, "Attempts": attempts, "LeadTimestamp": at,
                "LeadPartitionKey": row.partition_key, "LeadRowKey": row.row_key,
                "Channel": channel, "ClaimedBy": claimed_by, "ClaimedAt": claimed_at,
                "LastError": last_error, "SkipReason": skip_reason, "UpdatedAt": at,
            }));
        }
    }
    entities
}

/// Writes `entities` into the fixture's state table, as the old version left it.
pub async fn write_old_state(f: &Fixture, entities: &[Value]) {
    let storage = f.storage();
    storage
        .create_table_if_missing(f.state_table())
        .await
        .expect("state table");
    for entity in entities {
        let insert = storage
            .table(f.state_table())
            .insert::<_, Value>(entity)
            .expect("insert");
        insert.await.expect("old entity written");
    }
}

/// The two channels the previous version had: email to MailDev for a
/// recipient of its own, and Teams at a stand-in; no outbox.
pub async fn email_and_teams(tag: &str) -> (Teams, String, Fixture) {
    let teams = Teams::start(&[], Duration::ZERO).await;
    let recipient = unique_recipient(tag);
    let mut f = Fixture::new(&storage_connection());
    f.without("OUTBOX_DIR")
        .smtp(maildev_smtp_port(), &recipient)
        .teams(&teams);
    (teams, recipient, f)
}
