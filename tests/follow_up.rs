//! Chasing untaken leads (`FOLLOW_UP_WITHIN`, `FOLLOW_UP_TO`) through the
//! real binary as the Functions host runs it, against Azurite, MailDev and a
//! Teams stand-in. "Now" is moved past the deadline with
//! `LEAD_NOTIFIER_TEST_NOW` (debug builds only) in a second handler process:
//! deliveries are recorded at the real time, the reminder step looks at the
//! moved one.

mod common;

use std::time::Duration;

use common::faults::{lead_rows, write_rows, Fixture, Teams};
use common::handler::Handler;
use common::old_state::{email_and_teams, old_state, write_old_state};
use common::servers::{maildev_messages, maildev_smtp_port, storage_connection, unique_recipient};
use common::take::{PUBLIC_URL, SECRET};
use lead_notifier::config::TakeSecret;
use lead_notifier::lead::{LeadKey, LeadRow};
use lead_notifier::take::token;
use serde_json::Value;
use time::OffsetDateTime;

const LINK_START: &str = "https://contoso-leads.azurewebsites.net/api/LeadTake?t=";
const TEST_NOW: &str = "LEAD_NOTIFIER_TEST_NOW";

fn chasing(f: &mut Fixture, within: &str) {
    f.set("PUBLIC_URL", PUBLIC_URL)
        .set("TAKE_LINK_SECRET", SECRET)
        .set("FOLLOW_UP_WITHIN", within);
}

/// The fixture's settings with "now" at `later` from now.
fn later(f: &Fixture, later: Duration) -> std::collections::HashMap<String, String> {
    let at = OffsetDateTime::now_utc() + later;
    let mut settings = f.settings.clone();
    settings.insert(
        TEST_NOW.to_owned(),
        at.format(&time::format_description::well_known::Rfc3339)
            .unwrap(),
    );
    settings
}

const HOURS: fn(u64) -> Duration = |h| Duration::from_secs(h * 3600);

/// Runs the timer once; answers its run summary.
async fn run(handler: &Handler) -> Value {
    let (status, body) = handler.invoke_timer().await;
    assert_eq!(status, 200, "{body}");
    body["ReturnValue"].clone()
}

/// The leads whose take links a text holds, each checked as a valid token.
fn linked_leads(text: &str) -> Vec<LeadKey> {
    let secret = TakeSecret::from_bytes(b"0123456789abcdef0123456789abcdef");
    text.match_indices(LINK_START)
        .map(|(at, _)| {
            let token: String = text[at + LINK_START.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect();
            token::verify(&secret, &token, OffsetDateTime::now_utc())
                .expect("a valid take link")
                .lead
        })
        .collect()
}

/// Reminder emails to `recipient`.
async fn reminder_mails(recipient: &str) -> Vec<Value> {
    maildev_messages(recipient)
        .await
        .into_iter()
        .filter(|m| {
            m["subject"]
                .as_str()
                .is_some_and(|s| s.starts_with("Untaken for"))
        })
        .collect()
}

/// Teams cards that are reminders.
fn reminder_cards(teams: &Teams) -> Vec<Value> {
    teams
        .posts()
        .into_iter()
        .filter(|p| p.accepted() && p.body.to_string().contains("Untaken for"))
        .map(|p| p.body)
        .collect()
}

/// Takes `row` for `name` with a POST to `LeadTake`, as the host sends it.
async fn take(handler: &Handler, f: &Fixture, row: &LeadRow, name: &str) {
    let take = f.parsed().take.expect("take links on");
    let link = token::link(&take, &row.key(), OffsetDateTime::now_utc());
    let (status, page) = common::take::post(handler, &link, name).await;
    assert_eq!(status, 200, "taken: {page}");
}

#[tokio::test]
async fn an_untaken_lead_is_chased_once_and_a_taken_one_never() {
    let recipient = unique_recipient("chase");
    let mut f = Fixture::new(&storage_connection());
    f.without("OUTBOX_DIR")
        .smtp(maildev_smtp_port(), &recipient);
    chasing(&mut f, "4h");
    let rows = lead_rows("chase", 2);
    write_rows(&f, &rows).await;

    let handler = Handler::start(&f.settings).await;
    let first = run(&handler).await;
    assert_eq!(first["delivered"]["email"], 2, "{first}");
    take(&handler, &f, &rows[1], "Dana").await;
    // Within the four hours: nothing is due.
    run(&handler).await;
    assert!(reminder_mails(&recipient).await.is_empty());

    // Five hours on, two runs in one process and one in another: one
    // reminder, for the lead nobody took.
    let five = Handler::start(&later(&f, HOURS(5))).await;
    let due = run(&five).await;
    let again = run(&five).await;
    let mails = reminder_mails(&recipient).await;
    assert_eq!(mails.len(), 1, "{due} {again}");
    let mail = &mails[0];
    assert_eq!(mail["subject"], "Untaken for 4 hours: 1 lead");
    let text = mail["text"].as_str().unwrap_or_default();
    assert_eq!(linked_leads(text), [rows[0].key()], "{text}");
    assert_eq!(
        linked_leads(mail["html"].as_str().unwrap_or_default()),
        [rows[0].key()]
    );
    // With this process's memo, a run with nothing due costs one request
    // more than the lead scan alone: the recent deliveries.
    let requests = again["storage_requests"].as_u64().unwrap_or(u64::MAX);
    assert!(requests <= 4, "{again}");
    assert!(
        due["storage_requests"].as_u64().unwrap_or(0) > requests,
        "{due} {again}"
    );
    let six = Handler::start(&later(&f, HOURS(6))).await;
    run(&six).await;
    assert_eq!(reminder_mails(&recipient).await.len(), 1);
    // Two alerts and one reminder in all.
    assert_eq!(maildev_messages(&recipient).await.len(), 3);
}

#[tokio::test]
async fn an_upgrade_chases_no_lead_alerted_before_it() {
    let (teams, recipient, mut f) = email_and_teams("chaseup").await;
    chasing(&mut f, "4h");
    let rows = lead_rows("chaseup", 3);
    // Two leads the previous version alerted an hour ago and nobody took.
    write_rows(&f, &rows[..2]).await;
    write_old_state(&f, &old_state(&f, &rows[..2])).await;
    write_rows(&f, &rows[2..]).await;

    // The first run with chasing on stands five hours on: the old leads
    // are long past the deadline, and so is the new lead it alerts now.
    let handler = Handler::start(&later(&f, HOURS(5))).await;
    let summary = run(&handler).await;
    assert_eq!(summary["delivered"]["email"], 1, "{summary}");
    run(&handler).await;
    let mails = reminder_mails(&recipient).await;
    assert_eq!(mails.len(), 1, "{summary}");
    let text = mails[0]["text"].as_str().unwrap_or_default();
    assert_eq!(linked_leads(text), [rows[2].key()], "{text}");
    let cards = reminder_cards(&teams);
    assert_eq!(cards.len(), 1);
    assert_eq!(linked_leads(&cards[0].to_string()), [rows[2].key()]);
}

#[tokio::test]
async fn follow_up_to_routes_reminders_and_a_card_lists_every_lead_it_settles() {
    let (teams, recipient, mut f) = email_and_teams("chaseto").await;
    chasing(&mut f, "30m");
    f.set("FOLLOW_UP_TO", "teams");
    let rows = lead_rows("chaseto", 20);
    write_rows(&f, &rows).await;
    let handler = Handler::start(&f.settings).await;
    let first = run(&handler).await;
    assert_eq!(first["delivered"]["email"], 20, "{first}");
    assert_eq!(first["delivered"]["teams"], 20, "{first}");

    let hour = Handler::start(&later(&f, HOURS(1))).await;
    run(&hour).await;
    run(&hour).await;
    // Teams only; no reminder by email. A card lists 15 links, so twenty
    // leads take two cards, each lead linked in exactly one of them.
    assert!(reminder_mails(&recipient).await.is_empty());
    let cards = reminder_cards(&teams);
    assert_eq!(cards.len(), 2);
    let mut linked: Vec<LeadKey> = cards
        .iter()
        .flat_map(|card| linked_leads(&card.to_string()))
        .collect();
    linked.sort_by(|a, b| a.row_key.cmp(&b.row_key));
    let mut want: Vec<LeadKey> = rows.iter().map(LeadRow::key).collect();
    want.sort_by(|a, b| a.row_key.cmp(&b.row_key));
    assert_eq!(linked, want);
    assert!(cards[0].to_string().contains("Untaken for 30 minutes"));
}
