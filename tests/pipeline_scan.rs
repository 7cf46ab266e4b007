//! The incremental scan against a real Azurite: complete, each row once,
//! nothing lost between or during runs, cheap when idle.

mod common;
#[path = "pipeline_support/mod.rs"]
mod support;

use std::collections::HashSet;
use std::sync::Arc;

use lead_notifier::notify::DestinationId;
use lead_notifier::pipeline::Pipeline;
use support::*;

#[tokio::test]
async fn thousands_of_rows_over_partitions_are_alerted_each_exactly_once() {
    let settings = Arc::new(settings(&[]));
    let rows = rows("bulk", 2600, 7);
    store(&settings, &rows).await;
    let outbox = Recorder::new(DestinationId::OUTBOX);
    let pipeline = Pipeline::new(settings.clone(), notifiers(&[&outbox]));

    let summary = pipeline.run_once().await.unwrap();

    assert_eq!(summary.rows_scanned, 2600, "{summary:?}");
    assert_eq!(summary.leads_new, 2600);
    assert_eq!(summary.delivered[&DestinationId::OUTBOX], 2600);
    assert!(summary.all_delivered(), "{:?}", summary.problems);
    let delivered = outbox.delivered_keys();
    let unique: HashSet<_> = delivered.iter().cloned().collect();
    assert_eq!(delivered.len(), 2600, "each lead once");
    assert_eq!(unique, rows.iter().map(key).collect::<HashSet<_>>());
    // Over DIGEST_AFTER: digests across all pages, each showing the run's
    // total; a channel without a size limit still gets digests of at most
    // 500 leads, the most a run holds in memory.
    let sent = outbox.sent();
    assert!(sent.iter().all(|s| s.digest_total == Some(2600)));
    assert_eq!(
        sent.iter().map(|s| s.keys.len()).collect::<Vec<_>>(),
        vec![500, 500, 500, 500, 500, 100]
    );

    let again = pipeline.run_once().await.unwrap();
    assert_eq!(again.delivered[&DestinationId::OUTBOX], 0, "{again:?}");
    assert_eq!(again.leads_new, 0);
    assert_eq!(outbox.delivered_keys().len(), 2600);
}

#[tokio::test]
async fn an_idle_run_makes_at_most_three_storage_requests_with_a_long_history() {
    // The shortest overlap window, and one row written after it: the 2,500
    // rows written just now are history to later runs, as in a real table.
    let settings = Arc::new(settings(&[("SCAN_OVERLAP", "1s")]));
    store(&settings, &rows("hist", 2500, 5)).await;
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    store(&settings, &rows("late", 1, 1)).await;
    let outbox = Recorder::new(DestinationId::OUTBOX);
    let pipeline = Pipeline::new(settings.clone(), notifiers(&[&outbox]));
    let first = pipeline.run_once().await.unwrap();
    assert_eq!(first.delivered[&DestinationId::OUTBOX], 2501);
    assert!(first.storage_requests > 3, "{first:?}");

    for _ in 0..2 {
        let idle = pipeline.run_once().await.unwrap();
        assert_eq!(idle.delivered[&DestinationId::OUTBOX], 0, "{idle:?}");
        assert!(idle.storage_requests <= 3, "{idle:?}");
        assert_eq!(
            idle.watermark, first.watermark,
            "idle runs leave the watermark"
        );
    }
}

#[tokio::test]
async fn an_empty_table_costs_two_requests_and_the_first_watermark() {
    let settings = Arc::new(settings(&[("LEADS_START_FROM", "1h")]));
    store(&settings, &[]).await;
    lead_notifier::storage::Storage::new(&settings.storage, reqwest::Client::new())
        .create_table_if_missing(&settings.leads_table)
        .await
        .unwrap();
    let outbox = Recorder::new(DestinationId::OUTBOX);
    let pipeline = Pipeline::new(settings.clone(), notifiers(&[&outbox]));
    let first = pipeline.run_once().await.unwrap();
    assert_eq!(first.rows_scanned, 0);
    // The first run pins its look-back start so it cannot slide past a lead.
    assert!(first.watermark.is_some(), "{first:?}");
    let idle = pipeline.run_once().await.unwrap();
    assert_eq!(idle.storage_requests, 2, "{idle:?}");
    assert_eq!(idle.watermark, first.watermark);
}

#[tokio::test]
async fn rows_written_after_a_run_are_found_by_the_next() {
    let settings = Arc::new(settings(&[]));
    let first_rows = rows("early", 3, 2);
    store(&settings, &first_rows).await;
    let teams = Recorder::new(DestinationId::TEAMS);
    let pipeline = Pipeline::new(settings.clone(), notifiers(&[&teams]));
    let first = pipeline.run_once().await.unwrap();
    assert_eq!(first.delivered[&DestinationId::TEAMS], 3);

    let later_rows = rows("later", 4, 3);
    store(&settings, &later_rows).await;
    let second = pipeline.run_once().await.unwrap();
    assert_eq!(second.delivered[&DestinationId::TEAMS], 4, "{second:?}");
    assert_eq!(second.leads_new, 4);
    let expected: Vec<_> = first_rows.iter().chain(&later_rows).map(key).collect();
    assert_eq!(sorted(teams.delivered_keys()), sorted(expected));
    assert!(second.watermark >= first.watermark);
}

#[tokio::test]
async fn rows_written_during_a_run_are_not_lost() {
    let settings = Arc::new(settings(&[]));
    store(&settings, &rows("before", 2, 1)).await;
    let during = rows("during", 3, 2);
    let email = Recorder::new(DestinationId::EMAIL);
    {
        let settings = settings.clone();
        let during = during.clone();
        email.on_first_send(Box::new(move || {
            let settings = settings.clone();
            let during = during.clone();
            Box::pin(async move { store(&settings, &during).await })
        }));
    }
    let pipeline = Pipeline::new(settings.clone(), notifiers(&[&email]));
    pipeline.run_once().await.unwrap();
    pipeline.run_once().await.unwrap();

    let delivered = email.delivered_keys();
    for row in &during {
        assert_eq!(
            delivered.iter().filter(|k| **k == key(row)).count(),
            1,
            "{} delivered once",
            key(row)
        );
    }
    assert_eq!(delivered.len(), 5);
}

#[tokio::test]
async fn a_new_process_on_the_same_tables_resends_nothing() {
    let settings = Arc::new(settings(&[]));
    store(&settings, &rows("proc", 30, 3)).await;
    let first = Recorder::new(DestinationId::EMAIL);
    let summary = Pipeline::new(settings.clone(), notifiers(&[&first]))
        .run_once()
        .await
        .unwrap();
    assert_eq!(summary.delivered[&DestinationId::EMAIL], 30);

    let second = Recorder::new(DestinationId::EMAIL);
    let restarted = Pipeline::new(settings.clone(), notifiers(&[&second]));
    let summary = restarted.run_once().await.unwrap();
    assert_eq!(summary.delivered[&DestinationId::EMAIL], 0, "{summary:?}");
    assert_eq!(second.attempts(), 0);
    // Even re-alerting the same rows directly (the webhook path) sends nothing.
    let summary = restarted.alert_rows(&rows("proc", 30, 3)).await.unwrap();
    assert_eq!(summary.delivered[&DestinationId::EMAIL], 0, "{summary:?}");
    assert_eq!(second.attempts(), 0);
}

#[tokio::test]
async fn the_first_run_starts_from_the_configured_time() {
    let settings = Arc::new(settings(&[]));
    store(&settings, &rows("old", 3, 1)).await;
    // Table timestamps have millisecond precision: start on the next one.
    let start = time::OffsetDateTime::now_utc() + time::Duration::milliseconds(2);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let new_rows = rows("new", 2, 1);
    store(&settings, &new_rows).await;

    let mut settings = (*settings).clone();
    settings.start_from = lead_notifier::config::StartFrom::At(start);
    let email = Recorder::new(DestinationId::EMAIL);
    let summary = Pipeline::new(Arc::new(settings), notifiers(&[&email]))
        .run_once()
        .await
        .unwrap();
    assert_eq!(summary.rows_scanned, 2, "{summary:?}");
    assert_eq!(
        sorted(email.delivered_keys()),
        sorted(new_rows.iter().map(key).collect())
    );
}
