//! Routing through the handler as the Functions host runs it, against
//! Azurite and MailDev, with stand-ins for Teams, Slack and a signed-webhook
//! receiver: each lead reaches exactly the destinations its routes name,
//! once; an upgrade from the single email + Teams setup re-alerts nothing;
//! `check` refuses bad routes and uncovered leads.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use common::faults::{
    assert_handler_quiet, count, emails_per_lead, lead_rows, shown_key, walk, write_rows, Fixture,
    Teams, LEAD_PARTITION,
};
use common::handler::Handler;
use common::old_state::{email_and_teams, old_state, old_state_with, write_old_state};
use common::servers::{maildev_smtp_port, storage_connection, unique_recipient};
use lead_notifier::lead::LeadRow;
use serde_json::{json, Value};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const SLACK_SECRET: &str = "SlackPathSecret77";
const RECEIVER_KEY: &str = "ReceiverKey88";
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw5nK3YpQ8ep0=";

/// A stand-in answering `first` once (when given), then `then` to everything.
async fn stand_in(first: Option<u16>, then: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    if let Some(status) = first {
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(status))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&server)
            .await;
    }
    Mock::given(method("POST"))
        .respond_with(then)
        .mount(&server)
        .await;
    server
}

async fn posts(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.unwrap_or_default()
}

fn json_of(request: &Request) -> Value {
    serde_json::from_slice(&request.body).unwrap_or(Value::Null)
}

/// Lead keys per Slack message: the plain_text field "Lead keys: …".
fn slack_leads(requests: &[Request]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for request in requests {
        walk(&json_of(request)["blocks"], &mut |v| {
            let text = v["text"].as_str().unwrap_or("");
            for part in text.split(['\n', '·']) {
                if let Some(key) = part.trim().strip_prefix("Lead keys: ") {
                    *counts.entry(key.to_owned()).or_insert(0) += 1;
                }
            }
        });
    }
    counts
}

/// A row of [`lead_rows`] with its own lead source, country and first name.
fn row(base: &LeadRow, lead_source: &str, country: &str, first_name: &str) -> LeadRow {
    let mut info: Value =
        serde_json::from_str(base.customer_info.as_deref().unwrap_or("{}")).unwrap_or_default();
    info["Country"] = json!(country);
    info["FirstName"] = json!(first_name);
    LeadRow {
        lead_source: Some(lead_source.to_owned()),
        customer_info: Some(info.to_string()),
        ..base.clone()
    }
}

fn counts(pairs: &[(&LeadRow, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(r, n)| (shown_key(r), *n)).collect()
}

#[tokio::test]
async fn a_mixed_batch_reaches_exactly_the_routed_destinations_once() {
    let teams = Teams::start(&[], Duration::ZERO).await;
    let slack = stand_in(None, ResponseTemplate::new(200).set_body_string("ok")).await;
    let receiver = stand_in(Some(500), ResponseTemplate::new(200)).await;
    let (everyone, emea) = (unique_recipient("rall"), unique_recipient("remea"));
    let mut f = Fixture::new(&storage_connection());
    f.without("OUTBOX_DIR")
        .smtp(maildev_smtp_port(), &everyone)
        .set("ROUTE_EMAIL", "unmatched")
        .set("EMAIL_TO_EMEA", &emea)
        .set("ROUTE_EMAIL_EMEA", "country=DE,FR")
        .set("TEAMS_WEBHOOK_URL_CRM", teams.url())
        .set("ROUTE_TEAMS_CRM", "offer=contoso.crm-*")
        .set(
            "SLACK_WEBHOOK_URL",
            format!("{}/services/T1/B1/{SLACK_SECRET}", slack.uri()),
        )
        .set("ROUTE_SLACK", "source=AppSource")
        .set(
            "WEBHOOK_URL_CRM",
            format!("{}/hooks/leads?code={RECEIVER_KEY}", receiver.uri()),
        )
        .set("WEBHOOK_SECRET_CRM", SECRET)
        .set("ROUTE_WEBHOOK_CRM", "offer=contoso.crm-*;country=DE,FR")
        // Every destination with two leads gets a digest, except the
        // webhook: one event per lead, always.
        .set("DIGEST_AFTER", "1");
    f.secrets.extend([
        teams.sig.clone(),
        SLACK_SECRET.to_owned(),
        RECEIVER_KEY.to_owned(),
        SECRET[6..20].to_owned(),
    ]);
    let base = lead_rows("routed", 4);
    let rows = [
        row(
            &base[0],
            "AzureMarketplace-PLT|contoso.crm-suite",
            "DE",
            "Adaeze",
        ),
        row(&base[1], "SPZA-INS|fabrikam.bi", "US", "Adaeze"),
        row(&base[2], "AzureMarketplace-PLT|fabrikam.bi", "US", "Adaeze"),
        row(
            &base[3],
            "SPZA-INS|contoso.crm-suite",
            "FR",
            "<!channel> <https://evil.example|click>",
        ),
    ];
    write_rows(&f, &rows).await;
    let handler = Handler::start(&f.settings).await;

    let (status, body) = handler.invoke_timer().await;
    assert_eq!(status, 200, "{body}");
    let expected = [
        ("email", 1),
        ("email:emea", 2),
        ("teams:crm", 2),
        ("slack", 2),
        ("webhook:crm", 2),
    ];
    for (destination, n) in expected {
        assert_eq!(
            count(&body, "delivered", destination),
            n,
            "{destination}: {body}"
        );
    }
    assert_eq!(
        emails_per_lead(&everyone).await,
        counts(&[(&rows[2], 1)]),
        "unmatched: only the lead no routed destination took"
    );
    assert_eq!(
        emails_per_lead(&emea).await,
        counts(&[(&rows[0], 1), (&rows[3], 1)])
    );
    assert_eq!(
        teams.cards_per_lead(),
        counts(&[(&rows[0], 1), (&rows[3], 1)])
    );
    let slack_posts = posts(&slack).await;
    assert_eq!(
        slack_leads(&slack_posts),
        counts(&[(&rows[1], 1), (&rows[3], 1)])
    );
    assert_eq!(slack_posts.len(), 1, "one digest");
    let hooks = posts(&receiver).await;
    assert_eq!(
        hooks.len(),
        3,
        "a 500, the same event again, then the other lead's"
    );
    assert_eq!(
        hooks[0].headers["webhook-id"],
        hooks[1].headers["webhook-id"]
    );
    assert_eq!(hooks[0].body, hooks[1].body, "the same event, re-signed");
    assert_ne!(
        hooks[1].headers["webhook-id"],
        hooks[2].headers["webhook-id"]
    );
    let hooked: BTreeMap<String, usize> = hooks[1..]
        .iter()
        .map(|r| {
            let keys = &json_of(r)["data"]["lead_keys"];
            let key = format!(
                "{} / {}",
                keys["partition_key"].as_str().unwrap_or(""),
                keys["row_key"].as_str().unwrap_or("")
            );
            (key, 1)
        })
        .collect();
    assert_eq!(hooked, counts(&[(&rows[0], 1), (&rows[3], 1)]));

    // The hostile lead arrived in Slack inert.
    for request in &slack_posts {
        let payload = json_of(request);
        let fallback = payload["text"].as_str().unwrap_or("");
        assert!(
            !fallback.contains('<') && !fallback.contains('>'),
            "{fallback}"
        );
        walk(&payload["blocks"], &mut |v| {
            if v.get("text").is_some_and(Value::is_string) {
                assert_eq!(v["type"], "plain_text", "lead text outside plain_text: {v}");
            }
        });
    }
    assert!(
        slack_posts[0].body.windows(10).any(|w| w == b"<!channel>"),
        "shown as written"
    );

    let (status, again) = handler.invoke_timer().await;
    assert_eq!(status, 200, "{again}");
    for (destination, _) in expected {
        assert_eq!(
            count(&again, "delivered", destination),
            0,
            "{destination}: {again}"
        );
    }
    assert_eq!(posts(&slack).await.len(), 1);
    assert_eq!(posts(&receiver).await.len(), 3);
    assert_eq!(teams.posts().len(), 1);
    assert_handler_quiet(&handler, &f, &[&body, &again], &["Okonkwo", "@customer-"]);
}

#[tokio::test]
async fn an_upgrade_from_single_email_and_teams_re_alerts_nothing() {
    let (teams, recipient, f) = email_and_teams("upgrade").await;
    let rows = lead_rows("upgrade", 4);
    assert!(rows[0].partition_key == LEAD_PARTITION);
    write_rows(&f, &rows[..3]).await;
    write_old_state(&f, &old_state(&f, &rows[..3])).await;
    let handler = Handler::start(&f.settings).await;
    let (status, body) = handler.invoke_timer().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(count(&body, "delivered", "email"), 0, "{body}");
    assert_eq!(count(&body, "delivered", "teams"), 0, "{body}");
    assert_eq!(body["ReturnValue"]["leads_new"], 0, "{body}");
    assert!(teams.posts().is_empty());
    assert!(emails_per_lead(&recipient).await.is_empty());

    // The same run alerts a lead the old version never saw, once per channel.
    write_rows(&f, &rows[3..]).await;
    let (status, body) = handler.invoke_timer().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(count(&body, "delivered", "email"), 1, "{body}");
    assert_eq!(count(&body, "delivered", "teams"), 1, "{body}");
    assert_eq!(teams.cards_per_lead(), counts(&[(&rows[3], 1)]));
}

fn check(f: &Fixture, extra: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lead-notifier"))
        .arg("check")
        .env_clear()
        .envs(&f.settings)
        .envs(extra.iter().copied())
        .output()
        .expect("run lead-notifier check");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[tokio::test]
async fn check_shows_routes_and_refuses_bad_ones() {
    let slack = stand_in(None, ResponseTemplate::new(200)).await;
    let mut f = Fixture::new(&storage_connection());
    f.set(
        "SLACK_WEBHOOK_URL_MARKETING",
        format!("{}/services/T1/B1/{SLACK_SECRET}", slack.uri()),
    )
    .set("ROUTE_SLACK_MARKETING", "source=AppSource,AzureMarketplace");
    write_rows(&f, &lead_rows("check", 1)).await;

    let (code, text) = check(&f, &[]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(
            "route: slack:marketing takes leads where source is AppSource or AzureMarketplace"
        ),
        "{text}"
    );
    assert!(text.contains("route: outbox takes every lead"), "{text}");
    assert!(text.contains("slack:marketing: reached"), "{text}");
    assert!(!text.contains(SLACK_SECRET), "{text}");
    assert!(posts(&slack).await.is_empty(), "check posts nothing");

    let (code, text) = check(
        &f,
        &[("ROUTE_SLACK_MARKETING", "source=AppSource;contry=DE")],
    );
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("ROUTE_SLACK_MARKETING: could not read \"contry\""),
        "{text}"
    );

    let (code, text) = check(&f, &[("ROUTE_OUTBOX", "country=DE")]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("unmatched"), "{text}");
    assert!(
        text.contains("outbox, slack:marketing") || text.contains("slack:marketing, outbox"),
        "{text}"
    );
}

/// What the old version still owed is sent once after the upgrade, and
/// what it finished stays finished: two leads due a retry (the same
/// customer, offer and action twice, which the new version would fold as a
/// repeat, but they were owed before folding existed), one abandoned
/// claim, one recorded skip, one delivered lead.
#[tokio::test]
async fn an_upgrade_sends_what_the_old_version_owed_once_and_nothing_else() {
    let (teams, recipient, mut f) = email_and_teams("upowed").await;
    f.set("CLAIM_LEASE", "2s");
    let mut rows = lead_rows("upowed", 5);
    rows[1].customer_info = rows[0].customer_info.clone();
    // Written one after the other: the second is the later click.
    for row in &rows {
        write_rows(&f, std::slice::from_ref(row)).await;
    }
    let statuses = ["retry", "retry", "claimed", "skipped", "delivered"];
    let records: Vec<(&LeadRow, &str)> = rows.iter().zip(statuses).collect();
    write_old_state(&f, &old_state_with(&f, &records)).await;
    // The abandoned claim's lease runs on the service's clock, from when
    // the record was written; that clock is read from answers' `Date`
    // (whole seconds), so allow a second more.
    tokio::time::sleep(std::time::Duration::from_millis(3_200)).await;

    let handler = Handler::start(&f.settings).await;
    let (status, body) = handler.invoke_timer().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(count(&body, "delivered", "email"), 3, "{body}");
    assert_eq!(count(&body, "delivered", "teams"), 3, "{body}");
    let owed = counts(&[(&rows[0], 1), (&rows[1], 1), (&rows[2], 1)]);
    assert_eq!(teams.cards_per_lead(), owed);
    assert_eq!(emails_per_lead(&recipient).await, owed);

    let (status, again) = handler.invoke_timer().await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(count(&again, "delivered", "email"), 0, "{again}");
    assert_eq!(count(&again, "delivered", "teams"), 0, "{again}");
    assert_eq!(teams.cards_per_lead(), owed);
}
