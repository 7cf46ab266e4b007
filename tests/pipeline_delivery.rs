//! Delivery through the ledger against a real Azurite: skipped leads,
//! digests, failing channels, retries across runs, giving up, and the
//! watermark never passing an undelivered alert.

mod common;
#[path = "pipeline_support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use lead_notifier::config::Settings;
use lead_notifier::lead::{LeadRow, SkipReason};
use lead_notifier::ledger::{keys, Ledger, Policy, Status};
use lead_notifier::notify::DestinationId;
use lead_notifier::pipeline::Pipeline;
use lead_notifier::storage::parse_timestamp;
use support::*;

#[tokio::test]
async fn skipped_leads_are_recorded_once_and_never_sent() {
    let settings = Arc::new(settings(&[]));
    let real = row("1:2F1:2F2026", "real");
    let test = test_lead_row("1:2F1:2F2026", "msft-test");
    // A customer quoting the marker in their own words is a real lead.
    let mut quoting = row("1:2F1:2F2026", "quoting");
    quoting.description = Some("We saw MSFT_TEST_636573304831318844 in your docs".into());
    quoting.customer_info = Some(
        r#"{"FirstName":"Jane","LastName":"Doe","Email":"jane@contoso.com","Company":"MSFT_TEST Labs"}"#
            .into(),
    );
    store(&settings, &[real.clone(), test, quoting.clone()]).await;
    let email = Recorder::new(DestinationId::EMAIL);
    let teams = Recorder::new(DestinationId::TEAMS);
    let pipeline = Pipeline::new(settings.clone(), notifiers(&[&email, &teams]));

    let first = pipeline.run_once().await.unwrap();
    assert_eq!(
        first.skipped.get(&SkipReason::TestLead),
        Some(&1),
        "{first:?}"
    );
    assert_eq!(first.leads_new, 3);
    let alerted = sorted(vec![key(&quoting), key(&real)]);
    assert_eq!(sorted(email.delivered_keys()), alerted);
    assert_eq!(sorted(teams.delivered_keys()), alerted);

    let second = pipeline.run_once().await.unwrap();
    assert!(second.skipped.is_empty(), "{second:?}");
    assert_eq!(second.leads_new, 0);
    assert_eq!(email.attempts() + teams.attempts(), 4);
}

#[tokio::test]
async fn many_owed_alerts_go_out_as_digests_of_the_channel_size() {
    let settings = Arc::new(settings(&[("DIGEST_AFTER", "2")]));
    let rows = rows("dig", 5, 2);
    store(&settings, &rows).await;
    let teams = Recorder::with(DestinationId::TEAMS, Behaviour::Deliver, 2);
    let pipeline = Pipeline::new(settings.clone(), notifiers(&[&teams]));

    let summary = pipeline.run_once().await.unwrap();

    assert_eq!(summary.delivered[&DestinationId::TEAMS], 5);
    let sent = teams.sent();
    assert_eq!(
        sent.iter().map(|s| s.keys.len()).collect::<Vec<_>>(),
        vec![2, 2, 1]
    );
    assert!(sent.iter().all(|s| s.digest_total == Some(5)));
    assert_eq!(
        sorted(teams.delivered_keys()),
        sorted(rows.iter().map(key).collect())
    );
}

#[tokio::test]
async fn a_channel_that_is_down_is_retried_by_later_runs_then_given_up() {
    let settings = Arc::new(settings(&[("ALERT_MAX_ATTEMPTS", "2")]));
    let rows = rows("down", 3, 1);
    store(&settings, &rows).await;
    let email = Recorder::new(DestinationId::EMAIL);
    let teams = Recorder::with(DestinationId::TEAMS, Behaviour::Retryable, usize::MAX);
    let pipeline = Pipeline::new(settings.clone(), notifiers(&[&email, &teams]));

    let first = pipeline.run_once().await.unwrap();
    // Email is unaffected; Teams is tried once, then left alone this run.
    assert_eq!(first.delivered[&DestinationId::EMAIL], 3);
    assert_eq!(first.delivered[&DestinationId::TEAMS], 0);
    assert_eq!(teams.attempts(), 1, "no hammering a channel that is down");
    assert_eq!((first.pending, first.failed), (3, 0), "{first:?}");
    assert!(!first.all_delivered());
    assert!(
        first
            .problems
            .iter()
            .any(|p| p.contains("teams") && p.contains("503")),
        "{:?}",
        first.problems
    );
    // The watermark waits at the earliest undelivered lead.
    let stored = stored_rows(&settings).await;
    let earliest = stored
        .iter()
        .filter_map(|r| r.timestamp.as_deref().and_then(parse_timestamp))
        .min()
        .unwrap();
    let watermark = parse_timestamp(first.watermark.as_deref().unwrap()).unwrap();
    assert!(watermark <= earliest, "{watermark} passed {earliest}");

    let second = pipeline.run_once().await.unwrap();
    assert_eq!(teams.attempts(), 2);
    assert_eq!(
        second.delivered[&DestinationId::EMAIL],
        0,
        "email is not resent"
    );
    assert_eq!((second.pending, second.failed), (2, 1), "{second:?}");

    // One try per run while the channel is down: each alert is tried
    // ALERT_MAX_ATTEMPTS times over the runs, then given up and reported.
    let mut failed = second.failed;
    let mut runs = 2;
    let mut last = second;
    while last.pending > 0 {
        assert!(runs < 10, "never given up: {last:?}");
        last = pipeline.run_once().await.unwrap();
        failed += last.failed;
        runs += 1;
        if last.failed > 0 {
            assert!(
                last.problems.iter().any(|p| p.contains("failed for good")),
                "{:?}",
                last.problems
            );
        }
    }
    assert_eq!(failed, 3);
    assert_eq!(email.delivered_keys().len(), 3);

    // All settled: the watermark moves past them and nothing is tried again.
    let settled = pipeline.run_once().await.unwrap();
    assert!(settled.all_delivered(), "{settled:?}");
    assert!(settled.watermark > first.watermark);
    assert_eq!(
        teams.attempts(),
        6,
        "each alert tried at most ALERT_MAX_ATTEMPTS times"
    );
}

#[tokio::test]
async fn a_channel_that_recovers_delivers_what_it_owes() {
    let settings = Arc::new(settings(&[]));
    let rows = rows("recover", 4, 2);
    store(&settings, &rows).await;
    let teams = Recorder::with(DestinationId::TEAMS, Behaviour::Retryable, usize::MAX);
    let pipeline = Pipeline::new(settings.clone(), notifiers(&[&teams]));
    let down = pipeline.run_once().await.unwrap();
    assert_eq!(down.pending, 4);

    teams.set(Behaviour::Deliver);
    let up = pipeline.run_once().await.unwrap();
    assert_eq!(up.delivered[&DestinationId::TEAMS], 4, "{up:?}");
    assert!(up.all_delivered());
    assert_eq!(
        sorted(teams.delivered_keys()),
        sorted(rows.iter().map(key).collect())
    );
}

#[tokio::test]
async fn a_permanent_failure_is_given_up_at_once_and_reported_by_key() {
    let settings = Arc::new(settings(&[]));
    let lead = row("1:2F2:2F2026", "perm-1");
    store(&settings, std::slice::from_ref(&lead)).await;
    let email = Recorder::with(DestinationId::EMAIL, Behaviour::Permanent, usize::MAX);
    let pipeline = Pipeline::new(settings.clone(), notifiers(&[&email]));

    let first = pipeline.run_once().await.unwrap();
    assert_eq!((first.failed, first.pending), (1, 0), "{first:?}");
    assert!(
        first.problems.iter().any(|p| p.contains("perm-1")),
        "{:?}",
        first.problems
    );
    let text = first.log_lines().join("\n");
    assert!(
        !text.contains("Jane") && !text.contains("@contoso.com"),
        "{text}"
    );

    let second = pipeline.run_once().await.unwrap();
    assert_eq!(email.attempts(), 1, "not tried again");
    assert!(second.all_delivered(), "{second:?}");
}

#[tokio::test]
async fn a_permanent_failure_holds_the_rest_of_the_channel_for_the_next_run() {
    let settings = Arc::new(settings(&[]));
    let rows: Vec<_> = (0..3)
        .map(|i| row("1:2F2:2F2026", &format!("hold-{i}")))
        .collect();
    store(&settings, &rows).await;
    let email = Recorder::with(DestinationId::EMAIL, Behaviour::Permanent, usize::MAX);
    let outbox = Recorder::new(DestinationId::OUTBOX);
    let pipeline = Pipeline::new(settings.clone(), notifiers(&[&email, &outbox]));

    let first = pipeline.run_once().await.unwrap();
    // One alert given up; the other two not tried against a channel that
    // just refused for good; the other channel unaffected.
    assert_eq!((first.failed, first.pending), (1, 2), "{first:?}");
    assert_eq!(email.attempts(), 1);
    assert_eq!(first.delivered[&DestinationId::OUTBOX], 3);

    // The configuration is fixed: the held alerts go out, the failed one stays failed.
    email.set(Behaviour::Deliver);
    let second = pipeline.run_once().await.unwrap();
    assert_eq!(second.delivered[&DestinationId::EMAIL], 2, "{second:?}");
    assert!(second.all_delivered(), "{second:?}");
    assert_eq!(outbox.delivered_keys().len(), 3, "outbox not resent");
}

#[tokio::test]
async fn alerting_rows_directly_sends_once_and_the_scan_does_not_resend() {
    let settings = Arc::new(settings(&[]));
    let lead = row("1:2F3:2F2026", "hook-1");
    store(&settings, std::slice::from_ref(&lead)).await;
    let email = Recorder::new(DestinationId::EMAIL);
    let pipeline = Pipeline::new(settings.clone(), notifiers(&[&email]));

    // As the webhook does: the row as posted, without a Timestamp.
    let direct = pipeline
        .alert_rows(std::slice::from_ref(&lead))
        .await
        .unwrap();
    assert_eq!(direct.delivered[&DestinationId::EMAIL], 1, "{direct:?}");
    assert!(direct.watermark.is_none());

    let scanned = pipeline.run_once().await.unwrap();
    assert_eq!(scanned.rows_scanned, 1);
    assert_eq!(scanned.delivered[&DestinationId::EMAIL], 0, "{scanned:?}");
    let again = pipeline
        .alert_rows(std::slice::from_ref(&lead))
        .await
        .unwrap();
    assert_eq!(again.delivered[&DestinationId::EMAIL], 0);
    assert_eq!(email.delivered_keys(), vec![key(&lead)]);
}

#[tokio::test]
async fn two_runs_at_once_never_send_the_same_alert_twice() {
    let settings = Arc::new(settings(&[("DIGEST_AFTER", "1000")]));
    let rows = rows("race", 40, 4);
    store(&settings, &rows).await;
    let a = Recorder::new(DestinationId::EMAIL);
    let b = Recorder::new(DestinationId::EMAIL);
    let one = Pipeline::new(settings.clone(), notifiers(&[&a]));
    let two = Pipeline::new(settings.clone(), notifiers(&[&b]));

    let (x, y) = tokio::join!(one.run_once(), two.run_once());
    let (x, y) = (x.unwrap(), y.unwrap());

    let mut all = a.delivered_keys();
    all.extend(b.delivered_keys());
    assert_eq!(
        sorted(all),
        sorted(rows.iter().map(key).collect()),
        "each exactly once"
    );
    assert_eq!(
        x.delivered[&DestinationId::EMAIL] + y.delivered[&DestinationId::EMAIL],
        40
    );
    // A later run finds nothing owed, whatever the interleaving was.
    let after = one.run_once().await.unwrap();
    assert!(after.all_delivered() && after.busy == 0, "{after:?}");
    assert_eq!(a.delivered_keys().len() + b.delivered_keys().len(), 40);
}

#[tokio::test]
async fn a_crashed_runs_claims_hold_the_watermark_until_their_lease_ends() {
    use lead_notifier::ledger::{AlertKey, Claim, Ledger, Policy};
    use std::time::Duration;

    let settings = settings(&[]);
    let lead = row("1:2F4:2F2026", "crash-1");
    store(&settings, std::slice::from_ref(&lead)).await;
    let stamp = stored_rows(&settings).await[0]
        .timestamp
        .as_deref()
        .and_then(parse_timestamp)
        .unwrap();
    // A run claims the alert and dies before sending it.
    let storage = storage(&settings);
    storage
        .create_table_if_missing(&settings.state_table)
        .await
        .unwrap();
    let policy = Policy {
        claim_lease: settings.claim_lease,
        max_attempts: settings.max_attempts,
    };
    let crashed = Ledger::new(
        &storage,
        &settings.state_table,
        &settings.leads_table,
        "dead",
        policy,
    );
    let alert = AlertKey {
        lead: key(&lead),
        channel: DestinationId::EMAIL,
        lead_timestamp: stamp,
    };
    let claims = crashed.claim(vec![(alert, None)]).await.unwrap();
    assert!(matches!(claims[0], Claim::Won(_)), "{claims:?}");

    let email = Recorder::new(DestinationId::EMAIL);
    let within_lease = Pipeline::new(Arc::new(settings.clone()), notifiers(&[&email]));
    let blocked = within_lease.run_once().await.unwrap();
    assert_eq!((blocked.busy, email.attempts()), (1, 0), "{blocked:?}");
    let watermark = parse_timestamp(blocked.watermark.as_deref().unwrap()).unwrap();
    assert!(watermark <= stamp, "the watermark passed a claimed alert");

    let mut expired = settings.clone();
    expired.claim_lease = Duration::ZERO;
    let taking_over = Pipeline::new(Arc::new(expired), notifiers(&[&email]));
    let summary = taking_over.run_once().await.unwrap();
    assert_eq!(summary.delivered[&DestinationId::EMAIL], 1, "{summary:?}");
    assert_eq!(email.delivered_keys(), vec![key(&lead)]);
    assert!(taking_over.run_once().await.unwrap().all_delivered());
    assert_eq!(email.attempts(), 1);
}

/// Two leads of one customer, one offer and one action: the second repeats
/// the first.
fn a_lead_and_its_repeat(tag: &str) -> (LeadRow, LeadRow) {
    let first = row("1:2F5:2F2026", &format!("{tag}-1"));
    let mut again = row("1:2F5:2F2026", &format!("{tag}-2"));
    again.customer_info = first.customer_info.clone();
    (first, again)
}

fn with_folding(settings: &Settings) -> Arc<Settings> {
    Arc::new(Settings {
        repeat_window: Duration::from_secs(24 * 3600),
        ..settings.clone()
    })
}

/// An alert already owed keeps its course: a later run that would fold
/// the lead as a repeat (here folding was turned on in between) still sends
/// it, instead of dropping it while the watermark moves past.
#[tokio::test]
async fn an_owed_alert_is_sent_even_when_it_now_looks_like_a_repeat() {
    let unfolded = Arc::new(settings(&[("REPEAT_WINDOW", "0")]));
    let (first, again) = a_lead_and_its_repeat("owed");
    store(&unfolded, std::slice::from_ref(&first)).await;
    store(&unfolded, std::slice::from_ref(&again)).await;
    let teams = Recorder::with(DestinationId::TEAMS, Behaviour::Retryable, usize::MAX);
    let down = Pipeline::new(unfolded.clone(), notifiers(&[&teams]))
        .run_once()
        .await
        .unwrap();
    assert_eq!(down.pending, 2, "{down:?}");

    teams.set(Behaviour::Deliver);
    let folding = with_folding(&unfolded);
    let up = Pipeline::new(folding, notifiers(&[&teams]))
        .run_once()
        .await
        .unwrap();
    assert!(up.skipped.is_empty(), "nothing new to fold: {up:?}");
    assert_eq!(up.delivered[&DestinationId::TEAMS], 2, "{up:?}");
    assert!(up.all_delivered(), "{up:?}");
    assert_eq!(
        sorted(teams.delivered_keys()),
        sorted(vec![key(&first), key(&again)])
    );
}

/// The webhook path judges without reading the ledger first: recording a
/// skip must not overwrite a record that is already there.
#[tokio::test]
async fn a_skip_never_overwrites_a_record() {
    let unfolded = Arc::new(settings(&[("REPEAT_WINDOW", "0")]));
    let (first, again) = a_lead_and_its_repeat("kept");
    store(&unfolded, &[first.clone(), again.clone()]).await;
    let email = Recorder::new(DestinationId::EMAIL);
    let sent = Pipeline::new(unfolded.clone(), notifiers(&[&email]))
        .alert_rows(std::slice::from_ref(&again))
        .await
        .unwrap();
    assert_eq!(sent.delivered[&DestinationId::EMAIL], 1, "{sent:?}");

    // With folding on, posted again beside its twin: both look like
    // repeats now (the twin arrives after it was alerted).
    let folding = with_folding(&unfolded);
    let posted = Pipeline::new(folding.clone(), notifiers(&[&email]))
        .alert_rows(&[first.clone(), again.clone()])
        .await
        .unwrap();
    assert_eq!(posted.delivered[&DestinationId::EMAIL], 0, "{posted:?}");
    assert_eq!(
        posted.skipped.get(&SkipReason::Repeat),
        Some(&1),
        "{posted:?}"
    );

    let storage = storage(&folding);
    let policy = Policy {
        claim_lease: Duration::from_secs(600),
        max_attempts: 5,
    };
    let ledger = Ledger::new(
        &storage,
        &folding.state_table,
        &folding.leads_table,
        "check",
        policy,
    );
    let row_key = keys::ledger_row(&key(&again), &DestinationId::EMAIL);
    let record = ledger.get(&row_key).await.unwrap().expect("a record");
    assert_eq!(record.record.status, Status::Delivered);
    assert_eq!(email.delivered_keys(), vec![key(&again)]);
}
