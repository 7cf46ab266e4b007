//! Fault injection on storage: Azurite down when a run starts, Azurite gone
//! in the middle of a run, and throttling answers from a proxy in front of it.

mod common;

use std::time::Duration;

use common::faults::{
    assert_handler_quiet, count, doubled_cards, invoke_until_settled, lead_rows, shown_key,
    teams_claims_in_flight, total, write_rows, Fixture, Teams, CUSTOMER_NEEDLES,
};
use common::handler::Handler;
use common::proxy::{FaultProxy, Throttle};
use common::servers::Azurite;

#[tokio::test]
async fn storage_unreachable_at_the_start_fails_cleanly_and_the_next_run_recovers() {
    let data = tempfile::tempdir().expect("azurite dir");
    let mut azurite = Azurite::spawn_persistent(data.path());
    let teams = Teams::start(&[], Duration::ZERO).await;
    let mut f = Fixture::new(&azurite.connection_string());
    f.teams(&teams);
    let rows = lead_rows("down", 5);
    write_rows(&f, &rows).await;
    azurite.stop_gracefully();
    let handler = Handler::start(&f.settings).await;

    let (status, down) = handler.invoke_timer().await;
    assert_eq!(status, 500, "{down}");
    let stderr = handler.stderr();
    assert!(
        stderr.contains("cannot reach") || stderr.contains("storage"),
        "stderr names the storage problem: {stderr}"
    );
    assert!(teams.posts().is_empty(), "nothing sent without the ledger");

    azurite.restart();
    let answers = invoke_until_settled(&handler, 3).await;
    assert_eq!(total(&answers, "delivered", "teams"), 5, "{answers:?}");
    assert_eq!(total(&answers, "delivered", "outbox"), 5, "{answers:?}");
    let cards = teams.cards_per_lead();
    for row in &rows {
        assert_eq!(cards.get(&shown_key(row)), Some(&1), "{}", row.row_key);
    }
    let mut bodies = vec![&down];
    bodies.extend(answers.iter().map(|(_, b)| b));
    assert_handler_quiet(&handler, &f, &bodies, &CUSTOMER_NEEDLES);
}

#[tokio::test]
async fn storage_lost_mid_run_loses_nothing_and_doubles_only_alerts_in_flight() {
    let data = tempfile::tempdir().expect("azurite dir");
    let mut azurite = Azurite::spawn_persistent(data.path());
    // Slow enough that the run is still sending when storage goes.
    let teams = Teams::start(&[], Duration::from_millis(10)).await;
    let mut f = Fixture::new(&azurite.connection_string());
    f.teams(&teams)
        .without("OUTBOX_DIR")
        .set("CLAIM_LEASE", "2s");
    let rows = lead_rows("midrun", 300);
    write_rows(&f, &rows).await;
    let handler = Handler::start(&f.settings).await;

    let run = handler.invoke_timer();
    let outage = async {
        while teams.posts().len() < 60 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        azurite.stop_gracefully();
    };
    let ((status, during), ()) = tokio::join!(run, outage);
    let sent_before = teams.posts().len();
    assert!(
        sent_before < rows.len(),
        "storage went away mid-run ({sent_before} cards)"
    );
    assert_eq!(status, 500, "the run could not finish: {during}");

    azurite.restart();
    // Alerts claimed but not recorded as delivered: the ones that may have
    // been sent when storage went away.
    let in_flight = teams_claims_in_flight(&f).await;
    let answers = invoke_until_settled(&handler, 10).await;

    let cards = teams.cards_per_lead();
    let doubled = doubled_cards(&rows, &cards, &in_flight);
    // The run stops at the first delivery it cannot record, and a channel
    // sends one alert at a time: at most one card goes out twice.
    assert!(doubled <= 1, "{doubled} cards doubled by one outage");
    eprintln!(
        "storage outage: {sent_before} cards before, {} claims in flight, {doubled} doubled",
        in_flight.len()
    );
    let mut bodies = vec![&during];
    bodies.extend(answers.iter().map(|(_, b)| b));
    assert_handler_quiet(&handler, &f, &bodies, &CUSTOMER_NEEDLES);
}

#[tokio::test]
async fn throttling_answers_from_storage_are_retried() {
    let azurite = Azurite::spawn();
    let proxy = FaultProxy::start(
        azurite.port,
        &[
            Throttle {
                status: 503,
                retry_after: 1,
            },
            Throttle {
                status: 429,
                retry_after: 1,
            },
        ],
        Some(7),
    )
    .await;
    let teams = Teams::start(&[], Duration::ZERO).await;
    // Rows go straight to Azurite; the handler goes through the proxy.
    let direct = Fixture::new(&azurite.connection_string());
    let mut f = direct.through(&proxy.connection_string());
    f.teams(&teams);
    let rows = lead_rows("throttled", 30);
    write_rows(&direct, &rows).await;
    let handler = Handler::start(&f.settings).await;

    let (status, body) = handler.invoke_timer().await;
    assert_eq!(status, 200, "throttling retried within the run: {body}");
    assert_eq!(count(&body, "delivered", "teams"), 30, "{body}");
    assert_eq!(count(&body, "delivered", "outbox"), 30, "{body}");
    // The two scripted refusals, and at least one mid-run.
    assert!(
        proxy.refused() >= 3,
        "faults were injected: {}",
        proxy.refused()
    );
    assert_eq!(
        body["ReturnValue"]["storage_requests"].as_u64(),
        Some(proxy.seen() as u64),
        "every request, retries included, is counted: {body}"
    );
    let cards = teams.cards_per_lead();
    for row in &rows {
        assert_eq!(cards.get(&shown_key(row)), Some(&1), "{}", row.row_key);
    }

    let (status, again) = handler.invoke_timer().await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(count(&again, "delivered", "teams"), 0, "{again}");
    assert_eq!(teams.posts().len(), 30);
    assert_handler_quiet(&handler, &f, &[&body, &again], &CUSTOMER_NEEDLES);
}
