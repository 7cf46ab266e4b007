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

#[tokio::test]
async fn histories_are_looked_up_in_batches_and_written_in_transactions() {
    let settings = settings(&[]);
    let storage = storage(&settings);
    storage
        .create_table_if_missing(&settings.state_table)
        .await
        .unwrap();
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
    let found = store.lookup(&[id.clone()]).await.unwrap();
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
    let settings = settings(&[]);
    let storage = storage(&settings);
    storage
        .create_table_if_missing(&settings.state_table)
        .await
        .unwrap();
    let store = HistoryStore::new(&storage, &settings.state_table, &settings.leads_table);
    let at = datetime!(2026-11-21 10:00 UTC);
    let first = lead("a", "jane@contoso.example", "INS");
    let id = CustomerId::of(&first).unwrap();
    let mut seed = Book::default();
    seed.add(&id, &first, at);
    store.save(&mut seed).await.unwrap();

    // Two runs read the same record, then each adds its own lead.
    let mut one = Book::new(store.lookup(&[id.clone()]).await.unwrap());
    let mut two = Book::new(store.lookup(&[id.clone()]).await.unwrap());
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
