//! Storage trouble ends a run with a sentence an operator can act on, never
//! a panic: a missing lead table, a wrong key, an endpoint nobody answers.

mod common;
#[path = "pipeline_support/mod.rs"]
mod support;

use std::sync::Arc;

use common::servers::{connection_string, free_port, storage_connection, DEV_KEY};
use lead_notifier::notify::DestinationId;
use lead_notifier::pipeline::{Pipeline, RunError};
use lead_notifier::storage::StorageError;
use support::*;

fn pipeline(settings: lead_notifier::config::Settings) -> Pipeline {
    Pipeline::new(
        Arc::new(settings),
        notifiers(&[&Recorder::new(DestinationId::OUTBOX)]),
    )
}

#[tokio::test]
async fn a_missing_lead_table_is_named_with_its_account_and_why() {
    let settings = settings(&[]);
    let table = settings.leads_table.clone();
    let pipeline = pipeline(settings);

    let error = pipeline.run_once().await.unwrap_err();
    assert!(
        matches!(
            error,
            RunError::Storage(StorageError::LeadTableMissing { .. })
        ),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(text.contains(&table), "{text}");
    assert!(text.contains("devstoreaccount1"), "{text}");
    assert!(
        text.contains("Microsoft creates the table when the first lead arrives"),
        "{text}"
    );

    let check = pipeline.storage_check().await.unwrap_err().to_string();
    assert!(check.contains(&table), "{check}");
}

#[tokio::test]
async fn storage_check_passes_on_existing_tables_without_writing() {
    let settings = settings(&[]);
    store(&settings, &[row("1:2F1:2F2026", "check")]).await;
    let state_table = settings.state_table.clone();
    let storage = storage(&settings);
    let pipeline = pipeline(settings);
    pipeline.storage_check().await.unwrap();
    // The state table is not created by a check.
    let error = storage
        .table(&state_table)
        .query()
        .into_stream::<serde_json::Value>();
    use futures::StreamExt;
    let mut error = error;
    let first = error.next().await.unwrap();
    assert!(first.is_err(), "state table exists after a check");
}

#[tokio::test]
async fn a_wrong_account_key_says_to_check_the_key() {
    let wrong_key = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ==";
    let connection = storage_connection().replace(DEV_KEY, wrong_key);
    assert_ne!(connection, storage_connection());
    let pipeline = pipeline(settings_on(&connection, &[]));

    let error = pipeline.run_once().await.unwrap_err();
    assert!(
        matches!(error, RunError::Storage(StorageError::Auth { .. })),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(text.contains("check the account name and key"), "{text}");
    assert!(
        !text.contains(wrong_key) && !text.contains(DEV_KEY),
        "key leaked: {text}"
    );
}

#[tokio::test]
async fn an_unreachable_endpoint_is_reported_not_panicked() {
    // Nothing listens on a freshly freed port.
    let pipeline = pipeline(settings_on(&connection_string(free_port()), &[]));

    let error = pipeline.run_once().await.unwrap_err();
    assert!(
        matches!(error, RunError::Storage(StorageError::Unreachable { .. })),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(text.contains("cannot reach the table endpoint"), "{text}");
    assert!(!text.contains(DEV_KEY), "key leaked: {text}");
    assert!(pipeline.storage_check().await.is_err());
}
