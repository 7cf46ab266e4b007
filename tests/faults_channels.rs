//! Fault injection on the alert channels: a Teams webhook that fails before
//! it accepts, an SMTP server that refuses for a while or for good. Each
//! scenario counts exactly what every channel received, per lead.

mod common;

use std::time::Duration;

use common::faults::{
    assert_handler_quiet, count, emails_per_lead, lead_rows, ledger, shown_key, write_rows,
    Fixture, Teams, TeamsReply, CUSTOMER_NEEDLES,
};
use common::handler::Handler;
use common::servers::{maildev_smtp_port, storage_connection, unique_recipient};
use common::smtp_script::{Script, ScriptedSmtp};

const AUTH_OK: &str = "235 2.7.0 Authentication successful";

#[tokio::test]
async fn teams_500_then_429_then_202_gives_one_card_and_one_email() {
    let teams = Teams::start(
        &[
            TeamsReply::status(500),
            TeamsReply {
                status: 429,
                retry_after: Some("2"),
            },
        ],
        Duration::ZERO,
    )
    .await;
    let recipient = unique_recipient("fteams");
    let mut f = Fixture::new(&storage_connection());
    f.teams(&teams)
        .smtp(maildev_smtp_port(), &recipient)
        .set("RETRY_BUDGET", "10s");
    let rows = lead_rows("teamsflaky", 1);
    write_rows(&f, &rows).await;
    let handler = Handler::start(&f.settings).await;

    let (status, body) = handler.invoke_timer().await;
    assert_eq!(status, 200, "retried within the run: {body}");
    for channel in ["teams", "email", "outbox"] {
        assert_eq!(count(&body, "delivered", channel), 1, "{channel}: {body}");
    }
    let posts = teams.posts();
    let statuses: Vec<u16> = posts.iter().map(|p| p.status).collect();
    assert_eq!(statuses, [500, 429, 202], "three tries, the last accepted");
    let key = shown_key(&rows[0]);
    for post in &posts {
        assert_eq!(
            common::faults::card_lead_keys(&post.body),
            std::slice::from_ref(&key),
            "each try is the same card"
        );
    }
    assert!(
        posts[2].at.duration_since(posts[1].at) >= Duration::from_secs(2),
        "Retry-After: 2 honoured; waited {:?}",
        posts[2].at.duration_since(posts[1].at)
    );
    assert_eq!(teams.cards_per_lead().get(&key), Some(&1));
    assert_eq!(emails_per_lead(&recipient).await.get(&key), Some(&1));

    let (status, again) = handler.invoke_timer().await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(teams.posts().len(), 3, "nothing re-sent");
    assert_eq!(emails_per_lead(&recipient).await.get(&key), Some(&1));
    assert_handler_quiet(&handler, &f, &[&body, &again], &CUSTOMER_NEEDLES);
}

#[tokio::test]
async fn smtp_4xx_for_a_whole_run_fails_it_and_the_next_run_sends_the_email_once() {
    let smtp = ScriptedSmtp::start(Script {
        auth: Some(AUTH_OK.into()),
        mail: "451 4.7.1 Greylisted, please try again later".into(),
        ..Script::default()
    })
    .await;
    let teams = Teams::start(&[], Duration::ZERO).await;
    let mut f = Fixture::new(&storage_connection());
    f.teams(&teams)
        .smtp(smtp.port, "sales@contoso.example")
        .smtp_login()
        .set("RETRY_BUDGET", "1s");
    let rows = lead_rows("greylist", 3);
    write_rows(&f, &rows).await;
    let handler = Handler::start(&f.settings).await;

    let (status, first) = handler.invoke_timer().await;
    assert_eq!(status, 500, "an owed email was not delivered: {first}");
    let stderr = handler.stderr();
    assert!(
        stderr.contains("not delivered") && stderr.contains("temporar"),
        "stderr says why: {stderr}"
    );
    assert_eq!(count(&first, "delivered", "teams"), 3, "{first}");
    assert_eq!(count(&first, "delivered", "email"), 0, "{first}");
    assert!(smtp.accepted().is_empty());
    assert!(
        smtp.commands().iter().any(|c| c == "AUTH"),
        "logged in with the password"
    );
    let cards = teams.cards_per_lead();
    for row in &rows {
        assert_eq!(
            cards.get(&shown_key(row)),
            Some(&1),
            "card sent despite SMTP"
        );
    }
    let owed: Vec<_> = ledger(&f)
        .await
        .into_iter()
        .filter(|r| r.channel == "email")
        .collect();
    assert_eq!(owed.len(), 3);
    // After the first refusal the channel counts as down: the others are
    // handed back untried.
    assert!(owed.iter().all(|r| r.status == "retry"), "{owed:?}");
    assert!(
        owed.iter().any(|r| r.last_error.contains("451")),
        "{owed:?}"
    );

    smtp.set_script(Script {
        auth: Some(AUTH_OK.into()),
        ..Script::default()
    });
    let (status, second) = handler.invoke_timer().await;
    assert_eq!(status, 200, "the server recovered: {second}");
    assert_eq!(count(&second, "delivered", "email"), 3, "{second}");
    assert_eq!(count(&second, "delivered", "teams"), 0, "{second}");
    assert_eq!(smtp.accepted().len(), 3, "one email per lead");
    assert_eq!(teams.posts().len(), 3, "no card re-sent");
    for row in &rows {
        let in_one = smtp
            .accepted()
            .iter()
            .filter(|m| m.contains(&row.row_key))
            .count();
        assert!(in_one <= 1, "{} in {in_one} emails", row.row_key);
    }

    let (status, third) = handler.invoke_timer().await;
    assert_eq!(status, 200, "{third}");
    assert_eq!(smtp.accepted().len(), 3);
    assert_eq!(teams.posts().len(), 3);
    assert_handler_quiet(&handler, &f, &[&first, &second, &third], &CUSTOMER_NEEDLES);
}

#[tokio::test]
async fn smtp_5xx_is_recorded_as_failed_reported_and_not_retried() {
    let smtp = ScriptedSmtp::start(Script {
        auth: Some(AUTH_OK.into()),
        rcpt: "550 5.1.1 <sales@contoso.example>: Recipient address rejected: User unknown".into(),
        ..Script::default()
    })
    .await;
    let teams = Teams::start(&[], Duration::ZERO).await;
    let mut f = Fixture::new(&storage_connection());
    f.teams(&teams)
        .smtp(smtp.port, "sales@contoso.example")
        .smtp_login();
    let rows = lead_rows("rejected", 2);
    write_rows(&f, &rows).await;
    let handler = Handler::start(&f.settings).await;

    let rcpts = |smtp: &ScriptedSmtp| {
        smtp.commands()
            .iter()
            .filter(|c| c.starts_with("RCPT"))
            .count()
    };

    // A refusal for good gives that alert up and holds the channel's others
    // for the next run (it is likely a setting, fixable meanwhile).
    let (status, first) = handler.invoke_timer().await;
    assert_eq!(status, 500, "the failure is reported: {first}");
    assert_eq!(
        count(&first, "delivered", "teams"),
        2,
        "other channel unaffected: {first}"
    );
    assert_eq!(first["ReturnValue"]["failed"], 1, "{first}");
    assert_eq!(first["ReturnValue"]["pending"], 1, "{first}");
    let problems = first["ReturnValue"]["problems"].to_string();
    assert!(
        problems.contains("recipient"),
        "reason reported: {problems}"
    );
    assert!(
        handler.stderr().contains("recipient"),
        "reason on stderr: {}",
        handler.stderr()
    );
    assert_eq!(rcpts(&smtp), 1, "the held alert was not tried");

    let (status, second) = handler.invoke_timer().await;
    assert_eq!(status, 500, "the held alert fails too: {second}");
    assert_eq!(second["ReturnValue"]["failed"], 1, "{second}");
    assert_eq!(rcpts(&smtp), 2, "one try per lead");
    let records: Vec<_> = ledger(&f)
        .await
        .into_iter()
        .filter(|r| r.channel == "email")
        .collect();
    assert_eq!(records.len(), 2);
    for record in &records {
        assert_eq!(record.status, "failed", "{record:?}");
        assert!(record.last_error.contains("recipient"), "{record:?}");
        assert_eq!(record.attempts, 1, "tried once: {record:?}");
    }

    let (status, third) = handler.invoke_timer().await;
    assert_eq!(status, 200, "given up, not owed any more: {third}");
    assert_eq!(rcpts(&smtp), 2, "not retried by a later run");
    assert_eq!(teams.posts().len(), 2, "no card re-sent");
    assert!(smtp.accepted().is_empty());
    assert_handler_quiet(&handler, &f, &[&first, &second, &third], &CUSTOMER_NEEDLES);
}

#[tokio::test]
async fn smtp_4xx_forever_is_given_up_after_max_attempts() {
    let smtp = ScriptedSmtp::start(Script {
        rcpt: "452 4.2.2 Mailbox full".into(),
        ..Script::default()
    })
    .await;
    let mut f = Fixture::new(&storage_connection());
    f.smtp(smtp.port, "sales@contoso.example")
        .set("ALERT_MAX_ATTEMPTS", "2")
        .set("RETRY_BUDGET", "0s");
    write_rows(&f, &lead_rows("mailboxfull", 1)).await;
    let handler = Handler::start(&f.settings).await;

    let rcpts = || {
        smtp.commands()
            .iter()
            .filter(|c| c.starts_with("RCPT"))
            .count()
    };
    let mut answers = Vec::new();
    let mut tries = Vec::new();
    for _ in 0..4 {
        let (status, body) = handler.invoke_timer().await;
        answers.push((status, body));
        tries.push(rcpts());
    }
    assert!(
        tries[0] >= 1 && tries[1] > tries[0],
        "two runs tried: {tries:?}"
    );
    assert_eq!(tries[3], tries[1], "no run after the 2nd tried: {tries:?}");
    assert_eq!(answers[0].0, 500, "{:?}", answers[0]);
    assert_eq!(
        answers[3].0, 200,
        "given up, nothing owed: {:?}",
        answers[3]
    );
    let record = ledger(&f)
        .await
        .into_iter()
        .find(|r| r.channel == "email")
        .expect("email record");
    assert_eq!(record.status, "failed", "{record:?}");
    assert!(
        record.last_error.contains("452") || record.last_error.contains("full"),
        "{record:?}"
    );
    let answers: Vec<_> = answers.into_iter().map(|(_, body)| body).collect();
    let refs: Vec<_> = answers.iter().collect();
    assert_handler_quiet(&handler, &f, &refs, &CUSTOMER_NEEDLES);
}
