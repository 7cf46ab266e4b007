//! Customer history, repeat folding and the lead report, against a real
//! Azurite (and MailDev, through the handler).

mod common;
#[path = "pipeline_support/mod.rs"]
mod support;

use futures::StreamExt;
use lead_notifier::history::{Book, CustomerId, HistoryStore};
use lead_notifier::lead::{Lead, LeadRow};
use lead_notifier::storage::Storage;
use serde_json::{Map, Value};
use support::*;
use time::macros::datetime;

fn lead(rk: &str, email: &str, action: &str) -> Lead {
    Lead::from_row(&LeadRow {
        customer_info: Some(format!(r#"{{"FirstName":"Jane","Email":"{email}"}}"#)),
        lead_source: Some(format!("SPZA-{action}|contoso.crm")),
        ..row("11:2F21:2F2026", rk)
    })
}

/// Every entity of the state table, raw.
async fn state_entities(storage: &Storage, table: &str) -> Vec<Map<String, Value>> {
    let mut pages = storage
        .table(table)
        .query()
        .into_stream::<Map<String, Value>>();
    let mut all = Vec::new();
    while let Some(page) = pages.next().await {
        all.extend(page.unwrap().entities);
    }
    all
}

/// Settings on fresh tables, with the state table created.
async fn state_table() -> (lead_notifier::config::Settings, Storage) {
    let settings = settings(&[]);
    let storage = storage(&settings);
    storage
        .create_table_if_missing(&settings.state_table)
        .await
        .unwrap();
    (settings, storage)
}

#[tokio::test]
async fn histories_are_looked_up_in_batches_and_written_in_transactions() {
    let (settings, storage) = state_table().await;
    let store = HistoryStore::new(&storage, &settings.state_table, &settings.leads_table);
    let at = datetime!(2026-11-21 10:00 UTC);
    let leads: Vec<Lead> = (0..40)
        .map(|i| {
            lead(
                &format!("r{i:02}"),
                &format!("customer{i}@contoso.example"),
                "INS",
            )
        })
        .collect();
    let ids: Vec<CustomerId> = leads.iter().map(|l| CustomerId::of(l).unwrap()).collect();

    // State from before histories existed: nobody is known.
    let before = storage.requests();
    assert!(store.lookup(&ids).await.unwrap().is_empty());
    assert_eq!(storage.requests() - before, 3, "40 customers, 14 per query");

    let mut book = Book::default();
    for (lead, id) in leads.iter().zip(&ids) {
        book.add(id, lead, at);
    }
    let before = storage.requests();
    store.save(&mut book).await.unwrap();
    assert_eq!(
        storage.requests() - before,
        1,
        "one transaction for 40 new records"
    );
    let before = storage.requests();
    store.save(&mut book).await.unwrap();
    assert_eq!(
        storage.requests(),
        before,
        "nothing changed, nothing written"
    );

    // Read back: only the customers asked for, with their lead.
    let some = &ids[5..20];
    let found = store.lookup(some).await.unwrap();
    assert_eq!(found.len(), 15);
    let mut fresh = Book::new(found);
    let again = lead("r99", "CUSTOMER7@contoso.example ", "PLT");
    let id = CustomerId::of(&again).unwrap();
    assert_eq!(id, ids[7], "case and spaces do not matter");
    let history = fresh.history(&id, &again, at + std::time::Duration::from_secs(60));
    assert_eq!(history.earlier.len(), 1);
    assert_eq!(history.earlier[0].key.row_key, "r07");

    // Updating records known to this book replaces them under their ETags.
    fresh.add(&id, &again, at + std::time::Duration::from_secs(60));
    store.save(&mut fresh).await.unwrap();
    let found = store.lookup(std::slice::from_ref(&id)).await.unwrap();
    assert_eq!(found[&id].total, 2);

    // Keys are hashes: no address, no name in the state table.
    for entity in state_entities(&storage, &settings.state_table).await {
        let text = serde_json::to_string(&entity).unwrap().to_lowercase();
        assert!(
            !text.contains("contoso.example") && !text.contains("jane"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn two_runs_writing_one_customer_keep_both_leads() {
    let (settings, storage) = state_table().await;
    let store = HistoryStore::new(&storage, &settings.state_table, &settings.leads_table);
    let at = datetime!(2026-11-21 10:00 UTC);
    let first = lead("a", "jane@contoso.example", "INS");
    let id = CustomerId::of(&first).unwrap();
    let mut seed = Book::default();
    seed.add(&id, &first, at);
    store.save(&mut seed).await.unwrap();

    // Two runs read the same record, then each adds its own lead.
    let mut one = Book::new(store.lookup(std::slice::from_ref(&id)).await.unwrap());
    let mut two = Book::new(store.lookup(std::slice::from_ref(&id)).await.unwrap());
    let other = lead("x", "john@contoso.example", "INS");
    let other_id = CustomerId::of(&other).unwrap();
    one.add(&id, &lead("b", "jane@contoso.example", "PLT"), at);
    one.add(&other_id, &other, at);
    two.add(&id, &lead("c", "jane@contoso.example", "Create"), at);
    store.save(&mut one).await.unwrap();
    store.save(&mut two).await.unwrap();

    let found = store.lookup(&[id, other_id]).await.unwrap();
    let mut keys: Vec<&str> = found[&id]
        .leads
        .iter()
        .map(|p| p.key.row_key.as_str())
        .collect();
    keys.sort();
    assert_eq!(keys, ["a", "b", "c"]);
    assert_eq!(found[&id].total, 3);
    assert_eq!(found[&other_id].leads.len(), 1, "customers never mix");
}

/// Runs the built binary with only `settings` in its environment.
fn lead_notifier(settings: &std::collections::HashMap<String, String>, args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_lead-notifier"))
        .args(args)
        .env_clear()
        .envs(settings)
        .output()
        .expect("run lead-notifier");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{args:?}: {stderr}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn report_on_seeded_leads_counts_per_offer_and_action_in_every_format() {
    let outbox = tempfile::tempdir().expect("outbox");
    let s = std::collections::HashMap::from([
        (
            "LEADS_STORAGE_CONNECTION".to_owned(),
            common::servers::storage_connection(),
        ),
        (
            "LEADS_TABLE".to_owned(),
            common::servers::unique_table("rleads"),
        ),
        (
            "LEADS_STATE_TABLE".to_owned(),
            common::servers::unique_table("rstate"),
        ),
        ("LEADS_START_FROM".to_owned(), "beginning".to_owned()),
        ("OUTBOX_DIR".to_owned(), outbox.path().display().to_string()),
    ]);
    lead_notifier(&s, &["seed", "--count", "12"]);
    lead_notifier(&s, &["poll"]);
    let settings = lead_notifier::config::Settings::from_map(&s).unwrap();
    let storage = storage(&settings);
    let state_before = state_entities(&storage, &settings.state_table).await;

    // The seed: a test, a .edu and a do-not-contact lead, then customers who
    // take a first step and come back with a later one.
    let csv = lead_notifier(&s, &["report", "--since", "1h", "--format", "csv"]);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some(
            "offer_id,offer,action,leads,alerted,skipped,customers,taken,take_median_s,take_p90_s"
        )
    );
    let rows: Vec<&str> = lines.collect();
    let expected = [
        "contoso.analytics-hub,Contoso Analytics Hub,Azure portal purchase,1,1,0,1,0,,",
        "contoso.analytics-hub,Contoso Analytics Hub,Get it now,3,2,1,3,0,,",
        "contoso.backup-vault,Contoso Backup Vault,Do not contact,1,0,1,1,0,,",
        "contoso.backup-vault,Contoso Backup Vault,Contact me,1,1,0,1,0,,",
        "contoso.backup-vault,Contoso Backup Vault,Test drive started,1,1,0,1,0,,",
        "contoso.crm-suite,Contoso CRM Suite,Get it now,2,2,0,2,0,,",
        "contoso.crm-suite,Contoso CRM Suite,Contact me,2,2,0,2,0,,",
    ];
    for line in expected {
        assert!(rows.contains(&line), "{line} missing from\n{csv}");
    }
    // Partner Center's test lead names its offer by display name only.
    assert!(
        rows.iter().any(
            |r| r.starts_with("Contoso CRM Suite,Contoso CRM Suite,MSFT_TEST_")
                && r.ends_with(",1,0,1,1,0,,")
        ),
        "{csv}"
    );
    assert_eq!(rows.len(), expected.len() + 1, "{csv}");

    let json: Value = serde_json::from_str(&lead_notifier(
        &s,
        &["report", "--since", "1h", "--format", "json"],
    ))
    .unwrap();
    let total = &json["total"];
    assert_eq!(
        (total["leads"].as_u64(), total["alerted"].as_u64()),
        (Some(12), Some(9)),
        "{json}"
    );
    assert_eq!(
        total["skipped"],
        serde_json::json!({"do_not_contact": 1, "edu": 1, "test_lead": 1})
    );
    assert_eq!(total["customers"], 8, "{json}");
    let moves = json["moves"].as_array().unwrap();
    assert_eq!(moves.len(), 3, "{json}");
    assert_eq!(moves[0]["offer_id"], "contoso.crm-suite");
    assert_eq!(
        (moves[0]["from"].as_str(), moves[0]["to"].as_str()),
        (Some("Get it now"), Some("Contact me"))
    );
    assert_eq!(moves[0]["customers"], 2);

    let table = lead_notifier(&s, &["report", "--since", "1h"]);
    let total_line = table
        .lines()
        .find(|l| l.starts_with("all offers"))
        .unwrap_or_default();
    let numbers: Vec<&str> = total_line.split_whitespace().rev().take(7).collect();
    assert_eq!(numbers, ["-", "-", "0", "8", "3", "9", "12"], "{table}");
    assert!(
        table.contains("2  Contoso CRM Suite: Get it now → Contact me"),
        "{table}"
    );
    assert!(
        table.contains("1  customer asked not to be contacted"),
        "{table}"
    );

    // Nothing personal in any format, and nothing written.
    for output in [&csv, &table, &json.to_string()] {
        let lower = output.to_lowercase();
        for personal in ["@", "jane", "doe", "stanford", "pat", "kenji", "+1 425"] {
            assert!(!lower.contains(personal), "{personal} in\n{output}");
        }
    }
    let state_after = state_entities(&storage, &settings.state_table).await;
    assert_eq!(state_before, state_after, "report wrote to the state table");
}

/// A lead row for the handler proof: `email` may be empty (no address).
fn customer_row(rk: &str, first: &str, email: &str, action: &str) -> LeadRow {
    let info = if email.is_empty() {
        format!(r#"{{"FirstName":"{first}","Company":"Fabrikam"}}"#)
    } else {
        format!(
            r#"{{"FirstName":"{first}","LastName":"Doe","Email":"{email}","Company":"Fabrikam"}}"#
        )
    };
    LeadRow {
        customer_info: Some(info),
        action_code: Some(action.into()),
        lead_source: Some(format!("SPZA-{action}|contoso.crm")),
        ..row("11:2F21:2F2026", rk)
    }
}

/// The text part of the one message whose subject names `first`.
fn text_naming(messages: &[Value], first: &str) -> Vec<String> {
    messages
        .iter()
        .filter(|m| m["subject"].as_str().is_some_and(|s| s.contains(first)))
        .map(|m| m["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn one_customer_over_three_runs_gets_two_alerts_and_a_folded_repeat() {
    use common::faults::count;
    use common::handler::Handler;
    use common::servers::{maildev_messages, maildev_smtp_port, unique_recipient};

    let recipient = unique_recipient("history");
    let settings = support::settings(&[]);
    let s = std::collections::HashMap::from([
        (
            "LEADS_STORAGE_CONNECTION".to_owned(),
            common::servers::storage_connection(),
        ),
        ("LEADS_TABLE".to_owned(), settings.leads_table.clone()),
        ("LEADS_STATE_TABLE".to_owned(), settings.state_table.clone()),
        ("LEADS_START_FROM".to_owned(), "beginning".to_owned()),
        ("SMTP_HOST".to_owned(), "127.0.0.1".to_owned()),
        ("SMTP_PORT".to_owned(), maildev_smtp_port().to_string()),
        ("SMTP_SECURITY".to_owned(), "none".to_owned()),
        ("EMAIL_FROM".to_owned(), "leads@contoso.example".to_owned()),
        ("EMAIL_TO".to_owned(), recipient.clone()),
    ]);
    let handler = Handler::start(&s).await;

    // Run 1: Jane clicks "Get it now"; another customer and a lead without
    // an address arrive too.
    store(
        &settings,
        &[
            customer_row("r1", "Jane", "jane.doe@fabrikam.example", "INS"),
            customer_row("r2", "Oskar", "oskar@northwind.example", "INS"),
            customer_row("r3", "Nomail", "", "INS"),
        ],
    )
    .await;
    let (status, body) = handler.invoke_timer().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(count(&body, "delivered", "email"), 3, "{body}");
    // Run 2: Jane, address in other case, asks to be contacted.
    store(
        &settings,
        &[customer_row(
            "r4",
            "Jane",
            " JANE.Doe@Fabrikam.EXAMPLE",
            "PLT",
        )],
    )
    .await;
    let (_, body) = handler.invoke_timer().await;
    assert_eq!(count(&body, "delivered", "email"), 1, "{body}");
    // Run 3: she clicks "Contact me" again: a repeat, folded.
    store(
        &settings,
        &[customer_row(
            "r5",
            "Jane",
            "jane.doe@fabrikam.example",
            "PLT",
        )],
    )
    .await;
    let (_, body) = handler.invoke_timer().await;
    assert_eq!(count(&body, "delivered", "email"), 0, "{body}");
    assert_eq!(count(&body, "skipped", "repeat"), 1, "{body}");
    // Nothing new: still three storage requests.
    let (_, idle) = handler.invoke_timer().await;
    assert_eq!(idle["ReturnValue"]["storage_requests"], 3, "{idle}");

    let messages = maildev_messages(&recipient).await;
    assert_eq!(messages.len(), 4, "three in run 1, one in run 2");
    let jane = text_naming(&messages, "Jane");
    assert_eq!(jane.len(), 2, "two alerts for Jane");
    let (first, second) = if jane[0].contains("Returning") {
        (&jane[1], &jane[0])
    } else {
        (&jane[0], &jane[1])
    };
    assert!(first.contains("New customer"), "{first}");
    assert!(
        second.contains("Returning customer: 1 earlier lead\n"),
        "{second}"
    );
    assert!(
        second.contains("  - Get it now — Contoso CRM — "),
        "{second}"
    );
    let oskar = text_naming(&messages, "Oskar");
    assert!(
        oskar[0].contains("New customer"),
        "customers never mix: {}",
        oskar[0]
    );
    let nomail = text_naming(&messages, "Nomail");
    assert!(
        !nomail[0].contains("customer:") && nomail[0].contains("Get it now"),
        "a lead without an address is alerted as before: {}",
        nomail[0]
    );

    // No address or name in the logs or the state table's keys.
    let printed = format!("{}{}", handler.stdout(), handler.stderr()).to_lowercase();
    let storage = storage(&settings);
    let keys: Vec<String> = state_entities(&storage, &settings.state_table)
        .await
        .iter()
        .map(|e| format!("{} {}", e["PartitionKey"], e["RowKey"]).to_lowercase())
        .collect();
    assert!(keys.iter().any(|k| k.starts_with("\"history-")), "{keys:?}");
    for text in keys.iter().chain([&printed]) {
        for personal in ["jane", "oskar", "fabrikam.example", "northwind", "@"] {
            assert!(!text.contains(personal), "{personal} in {text}");
        }
    }
}

#[tokio::test]
async fn a_retried_lead_is_not_its_own_repeat() {
    use lead_notifier::notify::DestinationId;
    use lead_notifier::pipeline::Pipeline;
    use std::sync::Arc;

    let settings = Arc::new(support::settings(&[]));
    store(&settings, &[row("11:2F21:2F2026", "once")]).await;
    let outbox = Recorder::with(DestinationId::OUTBOX, Behaviour::Retryable, usize::MAX);
    let pipeline = Pipeline::new(settings.clone(), notifiers(&[&outbox]));
    let first = pipeline.run_once().await.unwrap();
    assert_eq!(first.pending, 1, "{first:?}");

    // The history now holds the lead; the retry still alerts it.
    outbox.set(Behaviour::Deliver);
    let second = pipeline.run_once().await.unwrap();
    assert_eq!(second.delivered[&DestinationId::OUTBOX], 1, "{second:?}");
    assert!(second.skipped.is_empty(), "{second:?}");
}

#[tokio::test]
async fn state_from_before_histories_re_alerts_nothing_and_starts_an_empty_history() {
    use lead_notifier::notify::DestinationId;
    use lead_notifier::pipeline::Pipeline;
    use std::sync::Arc;

    let settings = Arc::new(support::settings(&[]));
    let email = |action: &str, rk: &str| LeadRow {
        lead_source: Some(format!("SPZA-{action}|contoso.crm")),
        customer_info: Some(r#"{"Email":"jane@contoso.example"}"#.into()),
        ..row("11:2F21:2F2026", rk)
    };
    store(&settings, &[email("INS", "old")]).await;
    let outbox = Recorder::new(DestinationId::OUTBOX);
    let pipeline = Pipeline::new(settings.clone(), notifiers(&[&outbox]));
    pipeline.run_once().await.unwrap();
    // What the previous version left: watermark and ledger, no histories.
    let storage = storage(&settings);
    let client = storage.table(&settings.state_table);
    for entity in state_entities(&storage, &settings.state_table).await {
        let (pk, rk) = (
            entity["PartitionKey"].as_str().unwrap(),
            entity["RowKey"].as_str().unwrap(),
        );
        if pk.starts_with("history-") {
            client
                .partition_key_client(pk)
                .entity_client(rk)
                .delete()
                .await
                .unwrap();
        }
    }

    // The same customer, the same step, within the window: unknown to the
    // empty history, so alerted; the old lead is not alerted again.
    store(&settings, &[email("INS", "new")]).await;
    let upgraded = pipeline.run_once().await.unwrap();
    assert_eq!(
        upgraded.delivered[&DestinationId::OUTBOX],
        1,
        "{upgraded:?}"
    );
    assert_eq!(outbox.delivered_keys().len(), 2);
    assert_eq!(outbox.delivered_keys()[1].row_key, "new");
    // From now on the history fills: a third click is a repeat.
    store(&settings, &[email("INS", "third")]).await;
    let third = pipeline.run_once().await.unwrap();
    assert_eq!(third.skipped.values().sum::<u64>(), 1, "{third:?}");
}

#[tokio::test]
async fn digests_carry_histories_and_repeats_fold_within_one_page() {
    use lead_notifier::notify::DestinationId;
    use lead_notifier::pipeline::Pipeline;
    use std::sync::Arc;

    let settings = Arc::new(support::settings(&[("DIGEST_AFTER", "2")]));
    store(
        &settings,
        &[
            customer_row("r1", "Jane", "jane@fabrikam.example", "INS"),
            customer_row("r2", "Jane", "Jane@Fabrikam.example", "PLT"),
            customer_row("r3", "Jane", "jane@fabrikam.example", "PLT"),
            customer_row("r4", "Oskar", "oskar@northwind.example", "INS"),
            customer_row("r5", "Nomail", "", "INS"),
        ],
    )
    .await;
    let outbox = Recorder::new(DestinationId::OUTBOX);
    let pipeline = Pipeline::new(settings.clone(), notifiers(&[&outbox]));
    let summary = pipeline.run_once().await.unwrap();
    assert_eq!(
        summary.skipped.values().sum::<u64>(),
        1,
        "r3 repeats r2: {summary:?}"
    );

    let sent = outbox.sent();
    assert!(
        sent.iter().all(|s| s.digest_total.is_some()),
        "digests: {sent:?}"
    );
    let mut earlier: Vec<(String, Option<usize>)> = sent
        .iter()
        .flat_map(|s| {
            s.keys
                .iter()
                .map(|k| k.row_key.clone())
                .zip(s.earlier.clone())
        })
        .collect();
    earlier.sort();
    assert_eq!(
        earlier,
        [
            ("r1".to_owned(), Some(0)),
            ("r2".to_owned(), Some(1)),
            ("r4".to_owned(), Some(0)),
            ("r5".to_owned(), None),
        ]
    );
}
