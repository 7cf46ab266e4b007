//! State-table keys that always fit, through the handler as the Functions
//! host runs it, against Azurite: a lead key too long to escape is alerted
//! once like any other; a write the state table refuses fails that alert,
//! not the run; a skipped row written again does not hold the watermark;
//! and the ledger the previous version wrote keeps working after an upgrade.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::faults::{
    assert_handler_quiet, count, emails_per_lead, lead_rows, ledger, rewrite_row, row_timestamp,
    shown_key, write_rows, Fixture, Teams, CUSTOMER_NEEDLES, LEAD_PARTITION,
};
use common::handler::Handler;
use common::old_state::{email_and_teams, old_ledger_row, old_state_with, write_old_state};
use common::proxy::FaultProxy;
use common::servers::{storage_connection, Azurite};
use lead_notifier::lead::{LeadKey, LeadRow};
use lead_notifier::ledger::{AlertKey, Claim, Ledger, Policy, Settlement, Status};
use lead_notifier::notify::DestinationId;
use lead_notifier::storage::parse_timestamp;
use serde_json::{json, Value};
use time::OffsetDateTime;

const TEST_MARK: &str = "MSFT_TEST_636573304831318844";

fn counts(pairs: &[(&LeadRow, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(r, n)| (shown_key(r), *n)).collect()
}

/// Partner Center's validation lead: skipped, never alerted.
fn test_lead(row: &LeadRow) -> LeadRow {
    LeadRow {
        description: Some(TEST_MARK.to_owned()),
        lead_source: Some(format!("{TEST_MARK}-{TEST_MARK}|Contoso CRM Suite")),
        ..row.clone()
    }
}

/// The watermark a run's answer reports.
fn watermark(body: &Value) -> OffsetDateTime {
    body["ReturnValue"]["watermark"]
        .as_str()
        .and_then(parse_timestamp)
        .unwrap_or_else(|| panic!("no watermark: {body}"))
}

fn problems(body: &Value) -> String {
    body["ReturnValue"]["problems"].to_string()
}

#[tokio::test]
async fn a_lead_key_too_long_to_escape_is_alerted_once_beside_a_normal_one() {
    let teams = Teams::start(&[], Duration::ZERO).await;
    let mut f = Fixture::new(&storage_connection());
    f.teams(&teams);
    let mut rows = lead_rows("longkey", 2);
    // 600 bytes: the lead table takes it, its escaped form (1,800
    // characters) is far over the state table's key limit.
    rows[0].row_key = "é".repeat(300);
    write_rows(&f, &rows).await;
    let handler = Handler::start(&f.settings).await;

    let (status, body) = handler.invoke_timer().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(count(&body, "delivered", "teams"), 2, "{body}");
    assert_eq!(count(&body, "delivered", "outbox"), 2, "{body}");
    // A card shows a key this long cut short.
    let cards = teams.cards_per_lead();
    let long_card = format!("{LEAD_PARTITION} / {}", "é".repeat(100));
    let once = BTreeMap::from([(true, 1), (false, 1)]);
    let per_kind = |cards: &BTreeMap<String, usize>| -> BTreeMap<bool, usize> {
        let mut kinds = BTreeMap::new();
        for (key, n) in cards {
            *kinds.entry(key.starts_with(&long_card)).or_insert(0) += n;
        }
        kinds
    };
    assert_eq!(per_kind(&cards), once, "{cards:?}");
    assert_eq!(cards.get(&shown_key(&rows[1])), Some(&1), "{cards:?}");

    let (status, again) = handler.invoke_timer().await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(count(&again, "delivered", "teams"), 0, "{again}");
    assert_eq!(count(&again, "delivered", "outbox"), 0, "{again}");
    assert_eq!(per_kind(&teams.cards_per_lead()), once);

    // Its records hold a hashed key and the lead's keys as they are.
    let records = ledger(&f).await;
    let long: Vec<_> = records
        .iter()
        .filter(|r| r.lead == shown_key(&rows[0]))
        .collect();
    assert_eq!(long.len(), 2, "{records:?}");
    for record in long {
        assert_eq!(record.status, "delivered", "{record:?}");
        assert!(record.row_key.starts_with('!'), "{record:?}");
        assert_eq!(record.row_key.len(), 65, "{record:?}");
    }
    let normal = records
        .iter()
        .find(|r| r.lead == shown_key(&rows[1]) && r.channel == "teams")
        .expect("normal lead's Teams record");
    assert_eq!(
        normal.row_key,
        format!("{LEAD_PARTITION}|{}|teams", rows[1].row_key)
    );
    assert_handler_quiet(&handler, &f, &[&body, &again], &CUSTOMER_NEEDLES);
}

/// A skipped row written again after its record left the scan's window
/// comes back into every scan; the record there is read and found
/// finished, so the watermark moves on past the row.
#[tokio::test]
async fn a_rewritten_skipped_row_does_not_hold_the_watermark() {
    let teams = Teams::start(&[], Duration::ZERO).await;
    let mut f = Fixture::new(&storage_connection());
    f.teams(&teams).set("SCAN_OVERLAP", "1s");
    let rows = lead_rows("reskip", 3);
    let skipped = test_lead(&rows[0]);
    write_rows(&f, std::slice::from_ref(&skipped)).await;
    let handler = Handler::start(&f.settings).await;
    let (status, first) = handler.invoke_timer().await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["ReturnValue"]["skipped"]["test_lead"], 1, "{first}");

    // A later lead moves the watermark more than the overlap past the
    // skipped one, so its record falls out of the scan's window.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    write_rows(&f, &rows[1..2]).await;
    let (status, second) = handler.invoke_timer().await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(count(&second, "delivered", "teams"), 1, "{second}");

    // Microsoft writes the skipped row again; then another lead arrives.
    rewrite_row(&f, &title_changed(&skipped)).await;
    let rewritten = row_timestamp(&f, &skipped).await;
    assert!(rewritten > watermark(&second) - Duration::from_secs(1));
    tokio::time::sleep(Duration::from_millis(50)).await;
    write_rows(&f, &rows[2..]).await;
    let last = row_timestamp(&f, &rows[2]).await;
    assert!(last > rewritten);

    let mut answers = vec![first, second];
    for _ in 0..2 {
        let (status, body) = handler.invoke_timer().await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(watermark(&body), last, "{body}");
        assert_eq!(
            body["ReturnValue"]["skipped"],
            json!({}),
            "already on record: {body}"
        );
        answers.push(body);
    }
    assert_eq!(count(&answers[2], "delivered", "teams"), 1);
    assert_eq!(
        teams.cards_per_lead(),
        counts(&[(&rows[1], 1), (&rows[2], 1)])
    );
    let records = ledger(&f).await;
    let of_skipped: Vec<_> = records
        .iter()
        .filter(|r| r.lead == shown_key(&skipped))
        .map(|r| r.status.as_str())
        .collect();
    assert_eq!(of_skipped, ["skipped", "skipped"], "{records:?}");
    let bodies: Vec<&Value> = answers.iter().collect();
    assert_handler_quiet(&handler, &f, &bodies, &CUSTOMER_NEEDLES);
}

/// The row as Microsoft might write it again: one column changed.
fn title_changed(row: &LeadRow) -> LeadRow {
    LeadRow {
        offer_display_name: Some("Contoso CRM Suite (renamed)".to_owned()),
        ..row.clone()
    }
}

/// Table storage refuses a record of one lead (and the skip record of
/// another): those alerts fail, with the reason in the summary; the other
/// lead is alerted, and nothing is alerted twice on the next run.
#[tokio::test]
async fn a_refused_ledger_write_fails_that_alert_and_the_run_goes_on() {
    let azurite = Azurite::spawn();
    let teams = Teams::start(&[], Duration::ZERO).await;
    let direct = Fixture::new(&azurite.connection_string());
    let mut rows = lead_rows("refused", 3);
    rows[2] = test_lead(&rows[2]);
    let needles: Vec<String> = [&rows[0], &rows[2]]
        .iter()
        .map(|r| format!("\"LeadRowKey\":\"{}\"", r.row_key))
        .collect();
    let proxy = FaultProxy::refusing(azurite.port, &needles).await;
    let mut f = Fixture::new(&proxy.connection_string());
    f.teams(&teams)
        .set("LEADS_TABLE", direct.leads_table())
        .set("LEADS_STATE_TABLE", direct.state_table());
    write_rows(&direct, &rows).await;
    let handler = Handler::start(&f.settings).await;

    let (status, body) = handler.invoke_timer().await;
    // Failed alerts fail the invocation; the run itself finished.
    assert_eq!(status, 500, "{body}");
    assert_eq!(count(&body, "delivered", "teams"), 1, "{body}");
    assert_eq!(count(&body, "delivered", "outbox"), 1, "{body}");
    // Two channels each for the refused lead and the refused skip.
    assert_eq!(body["ReturnValue"]["failed"], 4, "{body}");
    let text = problems(&body);
    for row in [&rows[0], &rows[2]] {
        for channel in ["teams", "outbox"] {
            assert!(
                text.contains(&format!(
                    "{channel}: lead {LEAD_PARTITION}/{} failed",
                    row.row_key
                )),
                "{channel} {}: {text}",
                row.row_key
            );
        }
    }
    assert!(
        text.contains("the state table refused ledger record")
            && text.contains("HTTP 400 PropertyValueTooLarge"),
        "{text}"
    );
    assert!(!text.contains(&rows[1].row_key), "{text}");
    assert_eq!(teams.cards_per_lead(), counts(&[(&rows[1], 1)]));
    assert!(proxy.refused() >= 4, "{}", proxy.refused());

    let (status, again) = handler.invoke_timer().await;
    assert_eq!(status, 500, "{again}");
    assert_eq!(count(&again, "delivered", "teams"), 0, "{again}");
    assert_eq!(teams.cards_per_lead(), counts(&[(&rows[1], 1)]));
    let records = ledger(&direct).await;
    assert!(
        records.iter().all(|r| r.lead == shown_key(&rows[1])),
        "only the accepted lead is on record: {records:?}"
    );
    assert_handler_quiet(&handler, &f, &[&body, &again], &CUSTOMER_NEEDLES);
}

/// The ledger's own answer to a record Azurite refuses (a key over its
/// limit): that record is refused, the others in the same batch are written.
#[tokio::test]
async fn a_record_azurite_refuses_is_that_records_outcome() {
    let f = Fixture::new(&storage_connection());
    let settings = f.parsed();
    let storage = f.storage();
    storage
        .create_table_if_missing(&settings.state_table)
        .await
        .unwrap();
    let policy = Policy {
        claim_lease: Duration::from_secs(600),
        max_attempts: 5,
    };
    let ledger = Ledger::new(
        &storage,
        &settings.state_table,
        &settings.leads_table,
        "run",
        policy,
    );
    let alert = |rk: &str| AlertKey {
        lead: LeadKey {
            partition_key: LEAD_PARTITION.into(),
            row_key: rk.into(),
        },
        channel: DestinationId::TEAMS,
        lead_timestamp: OffsetDateTime::now_utc(),
    };
    let (good, bad) = (alert("kept-1"), alert("kept-2"));
    let claims = ledger
        .claim(vec![(good.clone(), None), (bad.clone(), None)])
        .await
        .unwrap();
    let [Claim::Won(good_entry), Claim::Won(bad_entry)] = &claims[..] else {
        panic!("{claims:?}");
    };
    let mut too_long = bad_entry.clone();
    too_long.record.row_key = "k".repeat(513);
    let refused = ledger
        .settle(vec![
            (good_entry.clone(), Settlement::Delivered),
            (too_long, Settlement::Delivered),
        ])
        .await
        .expect("a refused record does not fail the batch");
    assert_eq!(refused.failed, 1, "{refused:?}");
    assert_eq!(refused.problems.len(), 1, "{refused:?}");
    let line = &refused.problems[0];
    assert!(
        line.starts_with(&format!("teams: lead {LEAD_PARTITION}/kept-2 failed: ")),
        "{line}"
    );
    assert!(line.contains("HTTP 400 InvalidInput"), "{line}");
    assert!(line.contains("(513 characters)"), "{line}");
    let read = ledger.get(&good.row_key()).await.unwrap().unwrap();
    assert_eq!(read.record.status, Status::Delivered);
}

/// What Azurite takes as a key, in UTF-16 code units: 512, as Table
/// storage's "up to 1 KiB" of UTF-16. The ledger's hash threshold rests on it.
#[tokio::test]
async fn azurite_takes_keys_of_512_utf16_units_and_no_more() {
    let f = Fixture::new(&storage_connection());
    let storage = f.storage();
    let table = f.state_table();
    storage.create_table_if_missing(table).await.unwrap();
    let insert = |row_key: String| {
        let storage = storage.clone();
        async move {
            let entity = json!({"PartitionKey": "p", "RowKey": row_key});
            let insert = storage.table(table).insert::<_, Value>(&entity).unwrap();
            insert.await.map(drop).map_err(|e| {
                lead_notifier::storage::http_status(&e).map(|(s, c)| (s, c.map(str::to_owned)))
            })
        }
    };
    let refused = Err(Some((400, Some("InvalidInput".to_owned()))));
    assert_eq!(insert("a".repeat(512)).await, Ok(()));
    assert_eq!(insert("a".repeat(513)).await, refused);
    assert_eq!(insert("é".repeat(512)).await, Ok(()));
    assert_eq!(insert("é".repeat(513)).await, refused);
    assert_eq!(insert("😀".repeat(256)).await, Ok(()));
    assert_eq!(insert("😀".repeat(257)).await, refused);
}

/// Ledger records the previous version wrote, with keys that needed
/// escaping, long ones and ones right at the key limit (512 characters):
/// after the upgrade nothing finished is alerted again, and what was due a
/// retry is sent once, each under the record that was there.
#[tokio::test]
async fn an_upgrade_keeps_the_old_keys_escaped_long_and_at_the_limit() {
    let (teams, recipient, f) = email_and_teams("upkeys").await;
    let mut rows = lead_rows("upkeys", 5);
    // Characters the lead table takes in a key; `é` escapes to 6 characters.
    rows[0].row_key = "Jürgen-Øresund 'q' ~t %p |b *s".to_owned();
    rows[1].row_key = format!("long-{}", "ü".repeat(60));
    rows[2].row_key = format!("atmax{}", "é".repeat(81));
    rows[3].row_key = format!("atmay{}", "é".repeat(81));
    for row in &rows[2..4] {
        for channel in ["email", "teams"] {
            assert_eq!(old_ledger_row(row, channel).len(), 512);
        }
    }
    assert_eq!(old_ledger_row(&rows[1], "teams").len(), 386);
    write_rows(&f, &rows).await;
    let statuses = ["delivered", "skipped", "delivered", "retry", "retry"];
    let records: Vec<(&LeadRow, &str)> = rows.iter().zip(statuses).collect();
    write_old_state(&f, &old_state_with(&f, &records)).await;
    let old_keys: BTreeSet<String> = rows
        .iter()
        .flat_map(|r| ["email", "teams"].map(|c| old_ledger_row(r, c)))
        .collect();

    let handler = Handler::start(&f.settings).await;
    let (status, body) = handler.invoke_timer().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(count(&body, "delivered", "email"), 2, "{body}");
    assert_eq!(count(&body, "delivered", "teams"), 2, "{body}");
    let owed = counts(&[(&rows[3], 1), (&rows[4], 1)]);
    assert_eq!(teams.cards_per_lead(), owed);
    assert_eq!(emails_per_lead(&recipient).await, owed);

    let (status, again) = handler.invoke_timer().await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(count(&again, "delivered", "email"), 0, "{again}");
    assert_eq!(count(&again, "delivered", "teams"), 0, "{again}");
    assert_eq!(teams.cards_per_lead(), owed);

    // Every record is one the old version wrote, in the status it left or
    // delivered: none was added beside it under another key.
    let now: BTreeMap<String, String> = ledger(&f)
        .await
        .into_iter()
        .map(|r| (r.row_key, r.status))
        .collect();
    assert_eq!(now.keys().cloned().collect::<BTreeSet<_>>(), old_keys);
    for (row, before) in rows.iter().zip(statuses) {
        let after = if before == "retry" {
            "delivered"
        } else {
            before
        };
        for channel in ["email", "teams"] {
            assert_eq!(now[&old_ledger_row(row, channel)], after, "{}", row.row_key);
        }
    }
    assert_handler_quiet(&handler, &f, &[&body, &again], &CUSTOMER_NEEDLES);
}
