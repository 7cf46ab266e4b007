//! A handler killed in the middle of a big backlog, and two handlers racing
//! on the same tables: every lead alerted, duplicates only where a crash
//! left an alert in flight, none at all from a race.

mod common;

use std::time::Duration;

use common::faults::{
    assert_handler_quiet, doubled_cards, emails_per_lead, invoke_until_settled, lead_rows,
    shown_key, teams_claims_in_flight, total, write_rows, Fixture, Teams, CUSTOMER_NEEDLES,
};
use common::handler::{timer_body, Handler};
use common::servers::{maildev_smtp_port, storage_connection, unique_recipient};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_backlog_then_restart_delivers_every_lead() {
    const LEADS: usize = 2_000;
    let teams = Teams::start(&[], Duration::from_millis(5)).await;
    let mut f = Fixture::new(&storage_connection());
    f.teams(&teams)
        .without("OUTBOX_DIR")
        .set("DIGEST_AFTER", "5000")
        .set("CLAIM_LEASE", "2s");
    let rows = lead_rows("kill", LEADS);
    write_rows(&f, &rows).await;
    let mut first = Handler::start(&f.settings).await;

    // The invocation's connection dies with the process: no answer expected.
    let run = reqwest::Client::new()
        .post(first.url("/LeadNotifier"))
        .json(&timer_body())
        .send();
    let pid = first.pid().to_string();
    let crash = async {
        while teams.posts().len() < 300 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let killed = std::process::Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .expect("kill runs");
        assert!(killed.success());
    };
    let (answer, ()) = tokio::join!(run, crash);
    assert!(answer.is_err(), "the killed run never answered: {answer:?}");
    first.kill();
    let sent_before = teams.posts().len();
    assert!(sent_before < LEADS, "killed mid-way ({sent_before} cards)");

    let in_flight = teams_claims_in_flight(&f).await;

    let second = Handler::start(&f.settings).await;
    let answers = invoke_until_settled(&second, 10).await;

    let cards = teams.cards_per_lead();
    let doubled = doubled_cards(&rows, &cards, &in_flight);
    assert_eq!(cards.len(), LEADS, "cards only for the backlog's leads");
    // A channel sends one alert at a time and records each delivery at
    // once, so a crash leaves at most one sent-but-unrecorded alert.
    assert!(doubled <= 1, "{doubled} cards doubled by one crash");
    eprintln!(
        "SIGKILL: {sent_before} cards before, {} claims in flight, {doubled} doubled",
        in_flight.len()
    );
    let bodies: Vec<_> = answers.iter().map(|(_, b)| b).collect();
    assert_handler_quiet(&first, &f, &[], &CUSTOMER_NEEDLES);
    assert_handler_quiet(&second, &f, &bodies, &CUSTOMER_NEEDLES);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handlers_invoked_at_once_alert_each_lead_exactly_once() {
    const LEADS: usize = 150;
    let teams = Teams::start(&[], Duration::from_millis(2)).await;
    let recipient = unique_recipient("race");
    let mut f = Fixture::new(&storage_connection());
    f.teams(&teams).smtp(maildev_smtp_port(), &recipient);
    let rows = lead_rows("race", LEADS);
    write_rows(&f, &rows).await;
    let a = Handler::start(&f.settings).await;
    let b = Handler::start(&f.settings).await;

    let ((status_a, body_a), (status_b, body_b)) = tokio::join!(a.invoke_timer(), b.invoke_timer());
    assert!(status_a == 200 || status_a == 500, "{body_a}");
    assert!(status_b == 200 || status_b == 500, "{body_b}");
    // Whatever one run found busy (claimed by the other) is settled by now.
    let mut answers = vec![(status_a, body_a), (status_b, body_b)];
    answers.extend(invoke_until_settled(&a, 5).await);

    for channel in ["teams", "email", "outbox"] {
        assert_eq!(
            total(&answers, "delivered", channel),
            LEADS as u64,
            "{channel}: {answers:?}"
        );
    }
    let cards = teams.cards_per_lead();
    let emails = emails_per_lead(&recipient).await;
    for row in &rows {
        let key = shown_key(row);
        assert_eq!(cards.get(&key), Some(&1), "card for {key}");
        assert_eq!(emails.get(&key), Some(&1), "email for {key}");
    }
    assert_eq!(teams.posts().len(), LEADS);
    let bodies: Vec<_> = answers.iter().map(|(_, b)| b).collect();
    assert_handler_quiet(&a, &f, &bodies, &CUSTOMER_NEEDLES);
    assert_handler_quiet(&b, &f, &[], &CUSTOMER_NEEDLES);
}
