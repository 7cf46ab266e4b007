//! The Slack and signed-webhook notifiers against stand-in servers, the
//! signatures against the independent Python `standardwebhooks` library, and
//! the destination and route settings.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::faults::walk;
use common::leads::{jane, lead, returning_jane};
use lead_notifier::config::{ConfigError, Settings, SlackSettings, WebhookSettings};
use lead_notifier::lead::Lead;
use lead_notifier::notify::slack::{self, SlackNotifier};
use lead_notifier::notify::webhook::signed::{webhook_id, SignedWebhookNotifier};
use lead_notifier::notify::{Alert, DestinationId, Kind, Notifier, NotifyError};
use serde_json::{json, Value};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const SLACK_PATH: &str = "/services/T000/B000/SlackSecretPath123";
/// 32 random bytes, base64.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw5nK3YpQ8ep0=";

fn hostile() -> Lead {
    lead(
        "evil1",
        json!({"FirstName": "<!channel>", "LastName": "<https://evil.example|click>",
               "Company": "A & B <@U123>", "Email": "x@evil.example", "Country": "DE"}),
        "<!here> Contoso",
    )
}

async fn server(status: u16, body: &str, retry_after: Option<&str>) -> MockServer {
    let server = MockServer::start().await;
    let mut reply = ResponseTemplate::new(status).set_body_string(body);
    if let Some(after) = retry_after {
        reply = reply.insert_header("Retry-After", after);
    }
    Mock::given(method("POST"))
        .respond_with(reply)
        .mount(&server)
        .await;
    server
}

fn slack(server: &MockServer, name: Option<&str>) -> SlackNotifier {
    let id = match name {
        Some(name) => DestinationId::named(Kind::Slack, name).unwrap(),
        None => DestinationId::SLACK,
    };
    let settings = SlackSettings {
        id,
        webhook_url: format!("{}{SLACK_PATH}", server.uri()).into(),
    };
    SlackNotifier::new(&settings, reqwest::Client::new()).unwrap()
}

fn receiver(server: &MockServer) -> SignedWebhookNotifier {
    let settings = WebhookSettings {
        id: DestinationId::named(Kind::Webhook, "crm").unwrap(),
        url: format!("{}/hooks/leads?code=ReceiverKey42", server.uri()).into(),
        secret: SECRET.to_owned().into(),
    };
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    SignedWebhookNotifier::new(&settings, http).unwrap()
}

async fn requests(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.unwrap_or_default()
}

/// Every string Slack would parse as mrkdwn: the top-level `text` and any
/// text object not marked `plain_text`.
fn mrkdwn_texts(payload: &Value) -> Vec<String> {
    let mut texts = vec![payload["text"].as_str().unwrap_or("").to_owned()];
    walk(&payload["blocks"], &mut |v| {
        if v.get("text").is_some_and(Value::is_string) && v["type"] != "plain_text" {
            texts.push(v["text"].as_str().unwrap_or("").to_owned());
        }
    });
    texts
}

/// Checks Slack's Block Kit limits on a payload.
fn assert_within_slack_limits(payload: &Value) {
    let blocks = payload["blocks"].as_array().expect("blocks");
    assert!(blocks.len() <= slack::MAX_BLOCKS, "{} blocks", blocks.len());
    for block in blocks {
        let chars = |v: &Value| v["text"].as_str().map_or(0, |t| t.chars().count());
        match block["type"].as_str() {
            Some("header") => assert!(chars(&block["text"]) <= slack::MAX_HEADER_TEXT),
            Some("section") => {
                assert!(chars(&block["text"]) <= slack::MAX_SECTION_TEXT);
                let fields = block["fields"].as_array().map_or(&[][..], Vec::as_slice);
                assert!(fields.len() <= slack::MAX_FIELDS, "{} fields", fields.len());
                assert!(fields.iter().all(|f| chars(f) <= slack::MAX_FIELD_TEXT));
            }
            Some("context") => {}
            other => panic!("unexpected block type {other:?}"),
        }
    }
}

#[tokio::test]
async fn slack_message_shows_lead_text_inert_and_within_limits() {
    let server = server(200, "ok", None).await;
    let mut lead = hostile();
    lead.description = Some("x".repeat(10_000));
    slack(&server, None).send(Alert::Lead(&lead)).await.unwrap();

    let posted = requests(&server).await;
    assert_eq!(posted.len(), 1);
    let payload: Value = serde_json::from_slice(&posted[0].body).unwrap();
    assert_within_slack_limits(&payload);
    for text in mrkdwn_texts(&payload) {
        assert!(
            !text.contains('<') && !text.contains('>'),
            "unescaped: {text}"
        );
    }
    assert!(
        payload["text"]
            .as_str()
            .unwrap()
            .contains("&lt;!channel&gt;"),
        "the fallback shows the name, escaped: {payload}"
    );
    let all = payload["blocks"].to_string();
    assert!(
        all.contains("<!channel>") && all.contains("<https://evil.example|click>"),
        "shown as written in plain_text"
    );
    assert!(all.contains("Lead keys: 11:2F21:2F2026 / evil1"), "{all}");
    assert!(!all.contains("\"url\""), "no element carries a URL");
}

#[tokio::test]
async fn slack_message_says_whether_the_customer_is_returning() {
    let server = server(200, "ok", None).await;
    slack(&server, None)
        .send(Alert::Lead(&returning_jane()))
        .await
        .unwrap();
    let payload: Value = serde_json::from_slice(&requests(&server).await[0].body).unwrap();
    let history = payload["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|b| {
            b["text"]["text"]
                .as_str()
                .filter(|t| t.starts_with("Returning customer"))
        })
        .unwrap_or_else(|| panic!("no history in {payload}"));
    assert_eq!(
        history.lines().filter(|l| l.starts_with("• ")).count(),
        2,
        "{history}"
    );
    assert!(history.contains("Contoso Analytics Hub"), "{history}");
}

#[tokio::test]
async fn slack_digest_counts_every_lead_within_50_blocks() {
    let server = server(200, "ok", None).await;
    let leads: Vec<Lead> = (0..120)
        .map(|i| {
            lead(
                &format!("d{i}"),
                json!({"FirstName": "<!channel>"}),
                "Contoso",
            )
        })
        .collect();
    let refs: Vec<&Lead> = leads.iter().collect();
    slack(&server, Some("MARKETING"))
        .send(Alert::Digest {
            leads: &refs,
            total: 130,
        })
        .await
        .unwrap();
    let payload: Value = serde_json::from_slice(&requests(&server).await[0].body).unwrap();
    assert_within_slack_limits(&payload);
    let blocks = payload["blocks"].to_string();
    assert!(blocks.contains("130 new leads"), "{blocks}");
    let shown = blocks.matches(" — <!channel>").count();
    assert!(
        blocks.contains(&format!(
            "…and {} more in the messages that follow.",
            120 - shown
        )),
        "{blocks}"
    );
    for text in mrkdwn_texts(&payload) {
        assert!(!text.contains('<'), "unescaped: {text}");
    }
}

#[tokio::test]
async fn slack_answers_are_classified_with_the_fix() {
    let lead = jane();
    let cases: [(u16, &str, Option<&str>, bool, &str); 8] = [
        (429, "rate_limited", Some("3"), true, "busy"),
        (500, "", None, true, "unavailable"),
        (503, "", None, true, "unavailable"),
        (400, "invalid_blocks", None, false, "report it"),
        (
            403,
            "action_prohibited",
            None,
            false,
            "SLACK_WEBHOOK_URL_SALES",
        ),
        (
            404,
            "channel_not_found",
            None,
            false,
            "add a new incoming webhook",
        ),
        (404, "no_service", None, false, "no longer exists"),
        (410, "channel_is_archived", None, false, "unarchive"),
    ];
    for (status, body, retry_after, retryable, fix) in cases {
        let server = server(status, body, retry_after).await;
        let err = slack(&server, Some("Sales"))
            .send(Alert::Lead(&lead))
            .await
            .unwrap_err();
        assert_eq!(err.is_retryable(), retryable, "{status}: {err}");
        let text = err.to_string();
        assert!(
            text.contains(fix) && text.contains(body),
            "{status}: {text}"
        );
        assert!(!text.contains("SlackSecretPath123"), "URL leaked: {text}");
        if let NotifyError::Retryable {
            retry_after: Some(after),
            ..
        } = err
        {
            assert_eq!(after, Duration::from_secs(3));
        } else {
            assert!(retry_after.is_none(), "{status}: Retry-After lost");
        }
    }
    // Nothing listens: a network error, retryable.
    let settings = SlackSettings {
        id: DestinationId::SLACK,
        webhook_url: format!(
            "http://127.0.0.1:{}{SLACK_PATH}",
            common::servers::free_port()
        )
        .into(),
    };
    let err = SlackNotifier::new(&settings, reqwest::Client::new())
        .unwrap()
        .send(Alert::Lead(&lead))
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(
        !err.to_string().contains("SlackSecretPath123"),
        "URL leaked: {err}"
    );
}

fn verify_with_python(request: &Request) -> Value {
    common::standard_webhooks::verify_with_python(request, SECRET)
}

#[tokio::test]
async fn webhook_event_verifies_with_python_standardwebhooks() {
    let server = server(204, "", None).await;
    let lead = jane();
    receiver(&server).send(Alert::Lead(&lead)).await.unwrap();
    let posted = requests(&server).await;
    assert_eq!(posted.len(), 1);
    let event = verify_with_python(&posted[0]);
    assert_eq!(event["type"], "lead.created");
    assert_eq!(event["timestamp"], "2026-11-21T10:45:00.1234567Z");
    let data = &event["data"];
    assert_eq!(data["schema_version"], 1);
    assert_eq!(
        data["lead_keys"],
        json!({"partition_key": "11:2F21:2F2026", "row_key": "a1b2c3"})
    );
    assert_eq!(
        data["offer"],
        json!({"id": "contoso.crm-suite", "name": "Contoso CRM Suite"})
    );
    assert_eq!(data["source"], json!({"code": "SPZA", "name": "AppSource"}));
    assert_eq!(data["action"], json!({"code": "PLT", "name": "Contact me"}));
    assert_eq!(data["customer"]["email"], "jane.doe@acme.example");
    assert_eq!(data["customer"]["country"], "DE");
    assert_eq!(
        data["description"],
        "We need a CRM for 40 people.\nPlease call after 2pm."
    );
    assert_eq!(data["customer_warning"], Value::Null);
    let id = DestinationId::named(Kind::Webhook, "crm").unwrap();
    assert_eq!(
        posted[0].headers["webhook-id"].to_str().unwrap(),
        webhook_id(&id, &lead)
    );

    // A tampered body fails the same independent check.
    let mut tampered = posted[0].clone();
    tampered.body = String::from_utf8(tampered.body)
        .unwrap()
        .replace("Jane", "Joan")
        .into_bytes();
    let refused = std::panic::catch_unwind(|| verify_with_python(&tampered));
    assert!(refused.is_err(), "a changed body must not verify");
}

#[tokio::test]
async fn webhook_resends_the_same_id_after_a_500() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let notifier = receiver(&server);
    let lead = jane();
    let first = notifier.send(Alert::Lead(&lead)).await.unwrap_err();
    assert!(first.is_retryable(), "{first}");
    notifier.send(Alert::Lead(&lead)).await.unwrap();
    let posted = requests(&server).await;
    assert_eq!(posted.len(), 2);
    assert_eq!(
        posted[0].headers["webhook-id"],
        posted[1].headers["webhook-id"]
    );
    for request in &posted {
        verify_with_python(request);
    }
}

#[tokio::test]
async fn webhook_answers_are_classified_and_digests_refused() {
    let lead = jane();
    let cases: [(u16, Option<&str>, bool, &str); 6] = [
        (429, Some("7"), true, "busy"),
        (502, None, true, "unavailable"),
        (410, None, false, "gone: set WEBHOOK_URL_CRM"),
        (302, None, false, "redirected"),
        (401, None, false, "WEBHOOK_SECRET_CRM"),
        (400, None, false, "refused"),
    ];
    for (status, retry_after, retryable, fix) in cases {
        let server = server(status, "", retry_after).await;
        let err = receiver(&server)
            .send(Alert::Lead(&lead))
            .await
            .unwrap_err();
        assert_eq!(err.is_retryable(), retryable, "{status}: {err}");
        assert!(err.to_string().contains(fix), "{status}: {err}");
        assert!(
            !err.to_string().contains("ReceiverKey42"),
            "URL leaked: {err}"
        );
        if let Some(after) = retry_after {
            assert!(
                matches!(err, NotifyError::Retryable { retry_after: Some(d), .. } if d.as_secs().to_string() == after)
            );
        }
    }
    let server = server(200, "", None).await;
    let notifier = receiver(&server);
    assert!(
        !notifier.takes_digests(),
        "the pipeline must never hand it a digest"
    );
    let refs = [&lead];
    assert!(notifier
        .send(Alert::Digest {
            leads: &refs,
            total: 1
        })
        .await
        .is_err());
    assert!(requests(&server).await.is_empty());
}

// ---------------------------------------------------------------- settings

fn base() -> HashMap<String, String> {
    HashMap::from([
        (
            "LEADS_STORAGE_CONNECTION".to_owned(),
            "UseDevelopmentStorage=true".to_owned(),
        ),
        (
            "TEAMS_WEBHOOK_URL".to_owned(),
            "https://teams.example/hook?sig=TeamsSig".to_owned(),
        ),
    ])
}

fn with(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let mut vars = base();
    vars.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Settings::from_map(&vars)
}

fn error(pairs: &[(&str, &str)]) -> String {
    match with(pairs) {
        Ok(_) => panic!("{pairs:?} accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn named_destinations_and_routes_show_in_check_without_secrets() {
    let settings = with(&[
        ("SMTP_HOST", "smtp.example"),
        ("EMAIL_FROM", "leads@contoso.example"),
        ("EMAIL_TO", "sales@contoso.example"),
        (
            "EMAIL_TO_EMEA",
            "emea@contoso.example, dach@contoso.example",
        ),
        ("ROUTE_EMAIL_EMEA", "country=DE,FR,GB;action=PLT,INS"),
        (
            "TEAMS_WEBHOOK_URL_CRM",
            "https://teams.example/crm?sig=CrmSig",
        ),
        ("ROUTE_TEAMS_CRM", "offer=contoso.crm-*"),
        (
            "SLACK_WEBHOOK_URL",
            "https://hooks.slack.com/services/T/B/SlackSecret",
        ),
        ("ROUTE_SLACK", "source=AppSource"),
        ("WEBHOOK_URL_CRM", "https://crm.example/hooks?code=HookKey"),
        ("WEBHOOK_SECRET_CRM", SECRET),
        ("ROUTE_EMAIL", "unmatched"),
        ("ROUTE_TEAMS", "action=Contact me"),
    ])
    .unwrap();
    let lines = settings.summary_lines().join("\n");
    for expected in [
        "email:emea: 2 recipients, same mail server as email",
        "teams:crm: webhook on host teams.example",
        "slack: Slack webhook on host hooks.slack.com",
        "webhook:crm: signed lead.created events to host crm.example",
        "route: email takes leads no routed destination takes (unmatched)",
        "route: teams takes leads where action is PLT",
        "route: email:emea takes leads where country is de or fr or gb and action is PLT or INS",
        "route: teams:crm takes leads where offer is contoso.crm-*",
        "route: slack takes leads where source is AppSource",
        "route: webhook:crm takes every lead",
    ] {
        assert!(lines.contains(expected), "missing {expected:?} in\n{lines}");
    }
    for secret in ["TeamsSig", "CrmSig", "SlackSecret", "HookKey", "MfKQ9r8G"] {
        assert!(!lines.contains(secret), "{secret} shown:\n{lines}");
    }
}

/// Settings added to [`base`].
type Pairs<'a> = &'a [(&'a str, &'a str)];

#[test]
fn destination_and_route_errors_name_the_setting_and_the_fix() {
    let cases: [(Pairs, &[&str]); 9] = [
        (
            &[("ROUTE_TEAMS", "ofer=contoso.*")],
            &[
                "ROUTE_TEAMS",
                "\"ofer\"",
                "offer, action, source and country",
            ],
        ),
        (
            &[("ROUTE_TEAMS", "action=PTL")],
            &["ROUTE_TEAMS", "\"PTL\"", "INS, PLT"],
        ),
        (
            &[("ROUTE_TEAMS", "country=DE")],
            &["unmatched", "ROUTE_TEAMS=unmatched"],
        ),
        (
            &[("ROUTE_SLACK", "country=DE")],
            &["ROUTE_SLACK", "names no configured destination"],
        ),
        (
            &[("WEBHOOK_URL", "https://crm.example/h")],
            &["WEBHOOK_SECRET", "required when WEBHOOK_URL is set"],
        ),
        (
            &[
                ("WEBHOOK_URL", "https://crm.example/h"),
                ("WEBHOOK_SECRET", "hunter2"),
            ],
            &["WEBHOOK_SECRET", "whsec_"],
        ),
        (
            &[("WEBHOOK_SECRET_CRM", SECRET)],
            &["WEBHOOK_SECRET_CRM", "WEBHOOK_URL_CRM is not"],
        ),
        (
            &[("TEAMS_WEBHOOK_URL_EU_WEST", "https://t.example/x")],
            &["TEAMS_WEBHOOK_URL_EU_WEST", "letters and digits"],
        ),
        (
            &[("EMAIL_TO_EMEA", "emea@contoso.example")],
            &["EMAIL_TO_EMEA", "SMTP_HOST"],
        ),
    ];
    for (pairs, needles) in cases {
        let text = error(pairs);
        for needle in needles {
            assert!(text.contains(needle), "{pairs:?}: {needle:?} not in {text}");
        }
        assert!(
            !text.contains("whsec_MfK") && !text.contains("hunter2"),
            "secret quoted: {text}"
        );
    }
    let text = error(&[("SLACK_WEBHOOK_URL_OPS", "http://slack.example/x")]);
    assert!(
        text.starts_with("SLACK_WEBHOOK_URL_OPS is a plain http:// URL"),
        "{text}"
    );
    // Only Slack or only a webhook is a complete setup.
    let mut vars = base();
    vars.remove("TEAMS_WEBHOOK_URL");
    vars.insert(
        "SLACK_WEBHOOK_URL".into(),
        "https://hooks.slack.com/services/x".into(),
    );
    assert!(Settings::from_map(&vars).is_ok());
}
