//! Claims and budgets under slow services: a send starts only under a live
//! claim, leases run on the storage service's clock, and a channel that does
//! not answer holds a run no longer than its retry budget.

mod common;

use std::time::{Duration, Instant};

use common::faults::{
    assert_handler_quiet, lead_rows, ledger, shown_key, total, write_rows, Fixture, Teams,
    CUSTOMER_NEEDLES,
};
use common::handler::Handler;
use common::servers::storage_connection;
use lead_notifier::ledger::keys;
use lead_notifier::notify::DestinationId;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_runs_with_a_slow_channel_and_a_short_lease_send_each_lead_once() {
    const LEADS: usize = 8;
    // Each post takes 600 ms: the first run's batch of 8 takes about 5 s to
    // send, more than twice the lease.
    let teams = Teams::start(&[], Duration::from_millis(600)).await;
    let mut f = Fixture::new(&storage_connection());
    f.teams(&teams)
        .without("OUTBOX_DIR")
        .set("CLAIM_LEASE", "2s");
    let rows = lead_rows("lease", LEADS);
    write_rows(&f, &rows).await;
    let a = Handler::start(&f.settings).await;
    let b = Handler::start(&f.settings).await;

    let first = a.invoke_timer();
    let second = async {
        // Past the lease of the first run's claims as first written.
        tokio::time::sleep(Duration::from_millis(2_300)).await;
        b.invoke_timer().await
    };
    let ((status_a, body_a), (status_b, body_b)) = tokio::join!(first, second);
    assert_eq!(status_a, 200, "{body_a}");
    assert!(status_b == 200 || status_b == 500, "{body_b}");
    let mut answers = vec![(status_a, body_a), (status_b, body_b)];
    // Whatever the second run found busy is the first run's: settled by now.
    let (status, body) = b.invoke_timer().await;
    assert_eq!(status, 200, "{body}");
    answers.push((status, body));

    let cards = teams.cards_per_lead();
    for row in &rows {
        let key = shown_key(row);
        assert_eq!(cards.get(&key), Some(&1), "cards for {key}: {cards:?}");
    }
    assert_eq!(teams.posts().len(), LEADS, "{answers:?}");
    assert_eq!(total(&answers, "delivered", "teams"), LEADS as u64);
    let records = ledger(&f).await;
    assert!(
        records.iter().all(|r| r.status == "delivered"),
        "{records:?}"
    );
    let bodies: Vec<_> = answers.iter().map(|(_, b)| b).collect();
    assert_handler_quiet(&a, &f, &bodies, &CUSTOMER_NEEDLES);
    assert_handler_quiet(&b, &f, &[], &CUSTOMER_NEEDLES);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_is_judged_by_the_storage_clock_not_the_claimers() {
    let teams = Teams::start(&[], Duration::ZERO).await;
    let mut f = Fixture::new(&storage_connection());
    f.teams(&teams)
        .without("OUTBOX_DIR")
        .set("CLAIM_LEASE", "10m");
    let rows = lead_rows("skew", 1);
    write_rows(&f, &rows).await;
    let lead = lead_notifier::lead::Lead::from_row(&rows[0]).key;

    // Another run claimed it a moment ago on a machine whose clock is an
    // hour slow: its own `ClaimedAt` says an hour ago, the service's
    // `Timestamp` says now.
    let hour_ago = lead_notifier::storage::format_timestamp(
        time::OffsetDateTime::now_utc() - Duration::from_secs(3600),
    );
    let claim = json!({
        "PartitionKey": keys::ledger_partition(f.leads_table()),
        "RowKey": keys::ledger_row(&lead, &DestinationId::TEAMS),
        "Status": "claimed",
        "Attempts": 1,
        "LeadTimestamp": hour_ago,
        "LeadPartitionKey": lead.partition_key,
        "LeadRowKey": lead.row_key,
        "Channel": "teams",
        "ClaimedBy": "slow-clock",
        "ClaimedAt": hour_ago,
        "LastError": "",
        "SkipReason": "",
        "UpdatedAt": hour_ago,
    });
    insert_state(&f, &claim).await;

    let handler = Handler::start(&f.settings).await;
    let (status, body) = handler.invoke_timer().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        teams.posts().len(),
        0,
        "a live claim was taken over: {body}"
    );
    assert_eq!(body["ReturnValue"]["busy"].as_u64(), Some(1), "{body}");
    let records = ledger(&f).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].status, "claimed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_that_never_answers_holds_the_run_no_longer_than_its_retry_budget() {
    // Far longer than the client's own 30 s timeout.
    let teams = Teams::start(&[], Duration::from_secs(600)).await;
    let mut f = Fixture::new(&storage_connection());
    f.teams(&teams)
        .without("OUTBOX_DIR")
        .set("RETRY_BUDGET", "2s");
    let rows = lead_rows("hang", 3);
    write_rows(&f, &rows).await;
    let handler = Handler::start(&f.settings).await;

    let started = Instant::now();
    let (status, body) = handler.invoke_timer().await;
    let took = started.elapsed();
    // Before, three tries of 30 s each: 91 s.
    assert!(took < Duration::from_secs(15), "run took {took:?}: {body}");
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["ReturnValue"]["pending"].as_u64(), Some(3), "{body}");
    assert!(
        body.to_string().contains("RETRY_BUDGET"),
        "the reason names the budget: {body}"
    );
    // Owed to the next run, not given up.
    let records = ledger(&f).await;
    assert!(!records.iter().any(|r| r.status == "failed"), "{records:?}");
    assert!(
        !records.iter().any(|r| r.status == "claimed"),
        "{records:?}"
    );
}

/// Inserts one entity into the fixture's state table, as an earlier run
/// (or another machine) wrote it.
async fn insert_state(f: &Fixture, entity: &Value) {
    let storage = f.storage();
    storage
        .create_table_if_missing(f.state_table())
        .await
        .expect("state table");
    storage
        .table(f.state_table())
        .insert::<_, Value>(entity)
        .expect("insert")
        .await
        .expect("state entity inserted");
}
