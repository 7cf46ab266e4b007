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

    let found = store.lookup(&[id.clone(), other_id.clone()]).await.unwrap();
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
        Some("offer_id,offer,action,leads,alerted,skipped,customers")
    );
    let rows: Vec<&str> = lines.collect();
    let expected = [
        "contoso.analytics-hub,Contoso Analytics Hub,Azure portal purchase,1,1,0,1",
        "contoso.analytics-hub,Contoso Analytics Hub,Get it now,3,2,1,3",
        "contoso.backup-vault,Contoso Backup Vault,Do not contact,1,0,1,1",
        "contoso.backup-vault,Contoso Backup Vault,Contact me,1,1,0,1",
        "contoso.backup-vault,Contoso Backup Vault,Test drive started,1,1,0,1",
        "contoso.crm-suite,Contoso CRM Suite,Get it now,2,2,0,2",
        "contoso.crm-suite,Contoso CRM Suite,Contact me,2,2,0,2",
    ];
    for line in expected {
        assert!(rows.contains(&line), "{line} missing from\n{csv}");
    }
    // Partner Center's test lead names its offer by display name only.
    assert!(
        rows.iter().any(
            |r| r.starts_with("Contoso CRM Suite,Contoso CRM Suite,MSFT_TEST_")
                && r.ends_with(",1,0,1,1")
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
    let numbers: Vec<&str> = total_line.split_whitespace().rev().take(4).collect();
    assert_eq!(numbers, ["8", "3", "9", "12"], "{table}");
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
