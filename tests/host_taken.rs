//! `lead.taken` for signed webhooks, through the real binary as the
//! Functions host runs it: a take through `LeadTake` sends one signed event
//! (checked with the Python `standardwebhooks` package) to each webhook
//! whose route takes the lead, and to nothing else; a receiver down at take
//! time gets it on the next timer run, once; a take whose event was never
//! tried is sent by the timer.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::handler::Handler;
use common::servers::{maildev_messages, unique_recipient};
use common::standard_webhooks::verify_with_python;
use common::take::{lead_row, post, settings_for, store};
use lead_notifier::config::Settings;
use lead_notifier::ledger::{Ledger, Policy, Status};
use lead_notifier::storage::Storage;
use lead_notifier::take::store::TakeStore;
use lead_notifier::take::token;
use serde_json::Value;
use time::OffsetDateTime;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// 32 random bytes, base64.
const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw5nK3YpQ8ep0=";

async fn receiver(status: u16) -> MockServer {
    let server = MockServer::start().await;
    answer(&server, status).await;
    server
}

async fn answer(server: &MockServer, status: u16) {
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(status))
        .mount(server)
        .await;
}

/// Adds the signed webhook `name` posting to `server`, routed by `route`.
fn webhook(settings: &mut HashMap<String, String>, name: &str, server: &MockServer, route: &str) {
    let suffix = name.to_ascii_uppercase();
    settings.insert(
        format!("WEBHOOK_URL_{suffix}"),
        format!("{}/hooks/{name}", server.uri()),
    );
    settings.insert(format!("WEBHOOK_SECRET_{suffix}"), WHSEC.to_owned());
    settings.insert(format!("ROUTE_WEBHOOK_{suffix}"), route.to_owned());
}

/// The requests `server` received with events of type `kind`.
async fn events(server: &MockServer, kind: &str) -> Vec<Request> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| serde_json::from_slice::<Value>(&r.body).is_ok_and(|e| e["type"] == kind))
        .collect()
}

/// Waits (bounded) until `server` has received `n` events of type `kind`.
async fn wait_for(server: &MockServer, kind: &str, n: usize) -> Vec<Request> {
    for _ in 0..200 {
        let got = events(server, kind).await;
        if got.len() >= n {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no {n} {kind} event(s) arrived")
}

fn link(config: &Settings, row: &lead_notifier::lead::LeadRow) -> String {
    token::link(
        config.take.as_ref().unwrap(),
        &row.key(),
        OffsetDateTime::now_utc(),
    )
}

fn taken_ledger<'a>(storage: &'a Storage, config: &'a Settings) -> Ledger<'a> {
    Ledger::new(
        storage,
        &config.state_table,
        &format!("{}/taken", config.leads_table),
        "test",
        Policy {
            claim_lease: config.claim_lease,
            max_attempts: config.max_attempts,
        },
    )
}

#[tokio::test]
async fn a_take_sends_one_signed_lead_taken_to_the_webhooks_its_route_takes() {
    let recipient = unique_recipient("taken");
    let crm = receiver(204).await;
    let other = receiver(204).await;
    let mut settings = settings_for("taken", &recipient);
    webhook(&mut settings, "crm", &crm, "offer=contoso.crm-*");
    webhook(&mut settings, "other", &other, "offer=fabrikam.*");
    let row = lead_row("taken-once");
    let config = store(&settings, &row).await;
    let handler = Handler::start(&settings).await;
    let (status, timer) = handler.invoke_timer().await;
    assert_eq!(status, 200, "{timer}");
    let created = events(&crm, "lead.created").await;
    assert_eq!(created.len(), 1);

    let link = link(&config, &row);
    let (status, page) = post(&handler, &link, "Alice Admin").await;
    assert_eq!(status, 200, "{page}");
    let taken = wait_for(&crm, "lead.taken", 1).await;
    let event = verify_with_python(&taken[0], WHSEC);
    assert_eq!(event["type"], "lead.taken", "{event}");
    let data = &event["data"];
    assert_eq!(data["schema_version"], 1, "{event}");
    assert_eq!(data["lead_keys"]["partition_key"], row.partition_key);
    assert_eq!(data["lead_keys"]["row_key"], row.row_key);
    assert_eq!(data["taken_by"], "Alice Admin");
    assert_eq!(data["taken_at"], event["timestamp"]);
    assert_eq!(data["offer"]["id"], "contoso.crm-suite");
    assert_eq!(data["offer"]["name"], "Contoso CRM Suite");
    assert_eq!(data["action"]["name"], "Contact me");
    assert_eq!(data["source"]["name"], "AppSource");
    assert_eq!(data["take_url"], created_take_url(&created[0]), "{event}");
    // Another event than the lead's: the receiver must not drop it as a repeat.
    assert_ne!(
        taken[0].headers.get("webhook-id"),
        created[0].headers.get("webhook-id")
    );

    // Nobody else takes it again, the same person's repeat sends nothing,
    // and a timer run finds nothing owed.
    let (status, page) = post(&handler, &link, "Bob").await;
    assert_eq!(status, 409, "{page}");
    let (status, page) = post(&handler, &link, "Alice Admin").await;
    assert_eq!(status, 200, "{page}");
    let (status, timer) = handler.invoke_timer().await;
    assert_eq!(status, 200, "{timer}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(events(&crm, "lead.taken").await.len(), 1);

    // Not routed there: the other webhook heard nothing; email is never
    // handed the event.
    assert!(other
        .received_requests()
        .await
        .unwrap_or_default()
        .is_empty());
    assert_eq!(maildev_messages(&recipient).await.len(), 1);
}

fn created_take_url(request: &Request) -> Value {
    let event: Value = serde_json::from_slice(&request.body).unwrap();
    event["data"]["take_url"].clone()
}

#[tokio::test]
async fn a_receiver_down_at_take_time_gets_it_on_the_next_timer_run_once() {
    let crm = receiver(503).await;
    let mut settings = settings_for("takendown", &unique_recipient("takendown"));
    webhook(&mut settings, "crm", &crm, "offer=contoso.crm-*");
    let row = lead_row("taken-down");
    let config = store(&settings, &row).await;
    let handler = Handler::start(&settings).await;

    let (status, page) = post(&handler, &link(&config, &row), "Alice Admin").await;
    assert_eq!(status, 200, "{page}");
    wait_for(&crm, "lead.taken", 1).await;
    // Its try is recorded as to be retried before the receiver comes back.
    let storage = Storage::new(&config.storage, reqwest::Client::new());
    let ledger = taken_ledger(&storage, &config);
    let mut status = None;
    for _ in 0..100 {
        status = ledger
            .window(None)
            .await
            .unwrap()
            .values()
            .next()
            .map(|e| e.record.status);
        if status == Some(Status::Retry) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, Some(Status::Retry));

    crm.reset().await;
    answer(&crm, 204).await;
    let (code, timer) = handler.invoke_timer().await;
    assert_eq!(code, 200, "{timer}");
    let taken = events(&crm, "lead.taken").await;
    assert_eq!(taken.len(), 1, "{timer}");
    let event = verify_with_python(&taken[0], WHSEC);
    assert_eq!(event["data"]["taken_by"], "Alice Admin");
    let (code, timer) = handler.invoke_timer().await;
    assert_eq!(code, 200, "{timer}");
    assert_eq!(events(&crm, "lead.taken").await.len(), 1, "{timer}");
}

/// A take recorded by a process that ended before it sent anything.
#[tokio::test]
async fn a_take_never_announced_is_sent_by_the_timer_once() {
    let crm = receiver(204).await;
    let mut settings = settings_for("takenlate", &unique_recipient("takenlate"));
    webhook(&mut settings, "crm", &crm, "offer=contoso.crm-*");
    let row = lead_row("taken-late");
    let config = store(&settings, &row).await;
    let storage = Storage::new(&config.storage, reqwest::Client::new());
    TakeStore::new(&storage, &config.state_table, &config.leads_table)
        .take(&row.key(), "Carol", None)
        .await
        .unwrap();
    let handler = Handler::start(&settings).await;

    let (status, timer) = handler.invoke_timer().await;
    assert_eq!(status, 200, "{timer}");
    let taken = events(&crm, "lead.taken").await;
    assert_eq!(taken.len(), 1, "{timer}");
    let event = verify_with_python(&taken[0], WHSEC);
    assert_eq!(event["data"]["taken_by"], "Carol");

    // Settled: an idle run sends nothing and reads one query more than
    // an idle run without takes (at most three).
    let (status, idle) = handler.invoke_timer().await;
    assert_eq!(status, 200, "{idle}");
    assert_eq!(events(&crm, "lead.taken").await.len(), 1, "{idle}");
    let requests = idle["ReturnValue"]["storage_requests"].as_u64();
    assert!(matches!(requests, Some(n) if n <= 4), "{idle}");
}
