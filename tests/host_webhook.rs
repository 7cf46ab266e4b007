//! `LeadWebhook` end to end: the host's HTTP-trigger invocation carrying
//! Partner Center's HTTPS-endpoint POST → the row in Azurite → alerts once.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::faults::Teams;
use common::handler::{http_invocation, res_status, Handler};
use common::servers::{
    maildev_messages, maildev_smtp_port, storage_connection, unique_recipient, unique_table,
};
use lead_notifier::config::Settings;
use lead_notifier::lead::LeadRow;
use lead_notifier::lead_table::store_rows;
use lead_notifier::storage::Storage;
use serde_json::{json, Value};
use time::OffsetDateTime;

fn lead_json(first: &str, email: &str) -> String {
    json!({
        "UserDetails": {"FirstName": first, "LastName": "Novák", "Email": email, "Phone": "+420 555 0199",
                        "Country": "CZ", "Company": "Brno Cloud s.r.o.", "Title": "CTO"},
        "LeadSource": "AzureMarketplace", "ActionCode": "PLT",
        "OfferTitle": "Contoso CRM Suite", "Description": "Wants a demo"
    })
    .to_string()
}

/// Settings on fresh tables with Teams at the stand-in `teams` (its URL
/// carries the secret `HOOKSECRET`).
fn settings_for(tag: &str, teams: &Teams) -> HashMap<String, String> {
    HashMap::from([
        ("LEADS_STORAGE_CONNECTION".to_owned(), storage_connection()),
        (
            "LEADS_TABLE".to_owned(),
            unique_table(&format!("{tag}leads")),
        ),
        (
            "LEADS_STATE_TABLE".to_owned(),
            unique_table(&format!("{tag}state")),
        ),
        ("LEADS_START_FROM".to_owned(), "beginning".to_owned()),
        (
            "TEAMS_WEBHOOK_URL".to_owned(),
            format!("{}/hook?sig=HOOKSECRET", teams.server.uri()),
        ),
    ])
}

/// Email alerts to `recipient` through the shared MailDev.
fn email_to_maildev(settings: &mut HashMap<String, String>, recipient: &str) {
    settings.extend([
        ("SMTP_HOST".to_owned(), "127.0.0.1".to_owned()),
        ("SMTP_PORT".to_owned(), maildev_smtp_port().to_string()),
        ("SMTP_SECURITY".to_owned(), "none".to_owned()),
        ("EMAIL_FROM".to_owned(), "leads@contoso.example".to_owned()),
        ("EMAIL_TO".to_owned(), recipient.to_owned()),
    ]);
}

#[tokio::test]
async fn a_posted_lead_is_stored_and_alerted_once() {
    let teams = Teams::start(&[], Duration::ZERO).await;
    let recipient = unique_recipient("hook");
    let mut settings = settings_for("hook", &teams);
    email_to_maildev(&mut settings, &recipient);
    let handler = Handler::start(&settings).await;

    // The lead table does not exist yet: the first POST creates it.
    let (status, body) = handler
        .invoke(
            "LeadWebhook",
            &http_invocation(&lead_json("Petra", "petra@brno.example")),
        )
        .await;
    assert_eq!(status, 200, "the handler answered the host: {body}");
    assert_eq!(res_status(&body), 201, "stored: {body}");
    assert!(body["Outputs"]["res"]["body"]
        .as_str()
        .is_some_and(|b| b.contains("stored")));
    assert_eq!(maildev_messages(&recipient).await.len(), 1);
    assert_eq!(teams.posts().len(), 1);

    // Partner Center retries: the same lead again is stored once, alerted once.
    let (_, again) = handler
        .invoke(
            "LeadWebhook",
            &http_invocation(&lead_json("Petra", "petra@brno.example")),
        )
        .await;
    assert_eq!(res_status(&again), 200, "duplicate acknowledged: {again}");

    // The timer's safety-net pass finds the row and sends nothing more.
    let (status, timer) = handler.invoke_timer().await;
    assert_eq!(status, 200, "{timer}");
    assert_eq!(
        timer["ReturnValue"]["rows_scanned"], 1,
        "the row is in the table: {timer}"
    );
    assert_eq!(maildev_messages(&recipient).await.len(), 1);
    assert_eq!(teams.posts().len(), 1);

    // Partner Center's validation lead is stored (so validation succeeds) and not alerted.
    let t = "MSFT_TEST_636573304831318844";
    let validation = json!({
        "UserDetails": {"FirstName": t, "LastName": t, "Email": format!("{t}@test.com"), "Phone": "1234567890",
                        "Country": "US", "Company": t, "Title": t},
        "LeadSource": format!("{t}-{t}"), "ActionCode": "INS", "OfferTitle": "Contoso CRM Suite", "Description": t
    })
    .to_string();
    let (_, body) = handler
        .invoke("LeadWebhook", &http_invocation(&validation))
        .await;
    assert_eq!(res_status(&body), 201, "validation lead stored: {body}");
    assert_eq!(maildev_messages(&recipient).await.len(), 1);
    assert_eq!(teams.posts().len(), 1);

    // Not a lead: 400 with a reason, and nothing stored.
    for bad in ["{nope", "[1,2]", "{\"hello\":\"world\"}"] {
        let (status, body) = handler.invoke("LeadWebhook", &http_invocation(bad)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(res_status(&body), 400, "{bad}: {body}");
    }
    let (_, timer) = handler.invoke_timer().await;
    assert_eq!(
        timer["ReturnValue"]["rows_scanned"], 2,
        "lead + validation lead only: {timer}"
    );

    let printed = format!("{}{}", handler.stdout(), handler.stderr());
    for needle in ["Petra", "petra@brno.example", "HOOKSECRET", "555 0199"] {
        assert!(
            !printed.contains(needle),
            "handler output contains {needle:?}"
        );
    }
}

/// Teams is slow: the webhook still answers promptly with the lead stored
/// and email sent; the Teams send is not cut off but finishes after the
/// answer and is recorded, so neither a timer run meanwhile nor one after
/// sends the card again.
#[tokio::test]
async fn a_slow_channel_does_not_hold_up_the_answer_and_is_not_sent_twice() {
    let teams = Teams::start(&[], Duration::from_secs(10)).await;
    let recipient = unique_recipient("hookslow");
    let mut settings = settings_for("slow", &teams);
    email_to_maildev(&mut settings, &recipient);
    let handler = Handler::start(&settings).await;

    let asked = std::time::Instant::now();
    let (status, body) = handler
        .invoke(
            "LeadWebhook",
            &http_invocation(&lead_json("Jana", "jana@brno.example")),
        )
        .await;
    // Functional, not a timing figure: answered while Teams had not.
    assert!(
        asked.elapsed() < Duration::from_secs(9),
        "answered after {:?}",
        asked.elapsed()
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(res_status(&body), 201, "stored: {body}");
    assert_eq!(maildev_messages(&recipient).await.len(), 1);
    assert_eq!(teams.posts().len(), 1);

    // The card is still on its way: a timer run now finds it claimed.
    let (status, timer) = handler.invoke_timer().await;
    assert_eq!(status, 200, "{timer}");
    assert_eq!(timer["ReturnValue"]["busy"], 1, "{timer}");

    // Once Teams answers, the delivery is recorded; later runs send nothing.
    let mut settled = Value::Null;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (_, timer) = handler.invoke_timer().await;
        if timer["ReturnValue"]["busy"] == 0 {
            settled = timer;
            break;
        }
    }
    assert_eq!(settled["ReturnValue"]["busy"], 0, "never settled");
    assert_eq!(settled["ReturnValue"]["pending"], 0, "{settled}");
    assert_eq!(teams.posts().len(), 1);
    assert_eq!(maildev_messages(&recipient).await.len(), 1);
}

/// Shutdown (the host's SIGTERM) right after the answer waits for the send
/// still under way and records it: the next handler finds it delivered
/// instead of a claim to take over and send again.
#[tokio::test]
async fn shutdown_finishes_a_send_still_under_way() {
    let teams = Teams::start(&[], Duration::from_secs(5)).await;
    let settings = settings_for("stop", &teams);
    let mut handler = Handler::start(&settings).await;
    let (_, body) = handler
        .invoke(
            "LeadWebhook",
            &http_invocation(&lead_json("Ota", "ota@brno.example")),
        )
        .await;
    assert_eq!(res_status(&body), 201, "stored: {body}");
    assert_eq!(teams.posts().len(), 1);

    assert!(handler.terminate(), "clean exit: {}", handler.stderr());

    let next = Handler::start(&settings).await;
    let (_, timer) = next.invoke_timer().await;
    assert_eq!(timer["ReturnValue"]["busy"], 0, "left claimed: {timer}");
    assert_eq!(timer["ReturnValue"]["pending"], 0, "{timer}");
    assert_eq!(teams.posts().len(), 1);
}

/// Partner Center retries a post after midnight UTC: the retry finds the
/// lead stored the day before (its row key comes from its content) and
/// stores no second row, so it is alerted once, with folding off too.
#[tokio::test]
async fn a_retry_after_midnight_finds_the_lead_stored_the_day_before() {
    let teams = Teams::start(&[], Duration::ZERO).await;
    let mut settings = settings_for("mid", &teams);
    settings.insert("REPEAT_WINDOW".to_owned(), "0".to_owned());
    let lead = lead_json("Eva", "eva@brno.example");
    let yesterday = OffsetDateTime::now_utc() - time::Duration::DAY;
    let first = LeadRow::from_endpoint_json(&lead, yesterday).unwrap();
    let config = Settings::from_map(&settings).unwrap();
    let storage = Storage::new(&config.storage, reqwest::Client::new());
    store_rows(&storage, &config.leads_table, std::slice::from_ref(&first))
        .await
        .unwrap();
    let handler = Handler::start(&settings).await;

    let (_, posted) = handler.invoke("LeadWebhook", &http_invocation(&lead)).await;
    assert_eq!(res_status(&posted), 200, "a duplicate: {posted}");
    let answer: Value =
        serde_json::from_str(posted["Outputs"]["res"]["body"].as_str().unwrap_or("")).unwrap();
    assert_eq!(answer["partitionKey"], first.partition_key.as_str());

    let (_, timer) = handler.invoke_timer().await;
    assert_eq!(timer["ReturnValue"]["rows_scanned"], 1, "one row: {timer}");
    assert_eq!(teams.posts().len(), 1);
}
