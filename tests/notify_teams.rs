//! The Teams channel against a mock Workflows webhook.

mod common;

use std::time::Duration;

use common::leads::{jane, lead, new_customer, returning_jane};
use common::servers::free_port;
use lead_notifier::config::TeamsSettings;
use lead_notifier::lead::Lead;
use lead_notifier::notify::teams::{render_payload, TeamsNotifier};
use lead_notifier::notify::{Alert, Notifier, NotifyError};
use serde_json::{json, Value};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Teams refuses bigger posts.
const TEAMS_LIMIT: usize = 28 * 1024;
const SIG: &str = "s3cr3tSignatureValue";

fn webhook_url(base: &str) -> String {
    format!("{base}/workflows/abc123/triggers/manual/paths/invoke?api-version=1&sig={SIG}")
}

fn notifier(url: &str) -> TeamsNotifier {
    let settings = TeamsSettings {
        webhook_url: url.to_string().into(),
    };
    TeamsNotifier::new(&settings, reqwest::Client::new()).unwrap()
}

async fn server_answering(response: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/workflows/abc123/triggers/manual/paths/invoke"))
        .and(query_param("sig", SIG))
        .respond_with(response)
        .mount(&server)
        .await;
    server
}

/// Sends `alert` to a webhook answering `status`; returns the result and the posted bodies.
async fn post(
    alert: Alert<'_>,
    response: ResponseTemplate,
) -> (Result<(), NotifyError>, Vec<Vec<u8>>) {
    let server = server_answering(response).await;
    let url = webhook_url(&server.uri());
    let result = notifier(&url).send(alert).await;
    if let Err(err) = &result {
        let text = format!("{err} {err:?}");
        assert!(
            !text.contains(SIG) && !text.contains(&url),
            "webhook URL leaked: {text}"
        );
    }
    let bodies = server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.body)
        .collect();
    (result, bodies)
}

/// Every object in a JSON tree.
fn objects(value: &Value) -> Vec<&serde_json::Map<String, Value>> {
    let mut out = Vec::new();
    match value {
        Value::Object(map) => {
            out.push(map);
            map.values().for_each(|v| out.extend(objects(v)));
        }
        Value::Array(items) => items.iter().for_each(|v| out.extend(objects(v))),
        _ => {}
    }
    out
}

#[tokio::test]
async fn posts_an_adaptive_card_1_4_and_accepts_200_and_202() {
    for status in [200, 202] {
        let lead = jane();
        let (result, bodies) = post(Alert::Lead(&lead), ResponseTemplate::new(status)).await;
        result.unwrap();
        assert_eq!(bodies.len(), 1);
        let body: Value = serde_json::from_slice(&bodies[0]).unwrap();
        assert_eq!(body["type"], "message");
        let attachment = &body["attachments"][0];
        assert_eq!(
            attachment["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        assert_eq!(attachment["content"]["type"], "AdaptiveCard");
        assert_eq!(attachment["content"]["version"], "1.4");
        let text = bodies[0].iter().map(|&b| b as char).collect::<String>();
        assert!(text.contains("jane.doe@acme.example"));
        assert_eq!(body, render_payload(Alert::Lead(&lead)));
    }
}

#[tokio::test]
async fn a_huge_description_still_posts_under_28_kb() {
    let mut lead = jane();
    lead.description = Some("ä\"".repeat(500_000));
    lead.customer.company = Some("C".repeat(100_000));
    let (result, bodies) = post(Alert::Lead(&lead), ResponseTemplate::new(202)).await;
    result.unwrap();
    assert!(bodies[0].len() < TEAMS_LIMIT, "{} bytes", bodies[0].len());
    let body: Value = serde_json::from_slice(&bodies[0]).unwrap();
    assert!(body.to_string().contains("Description"));
}

#[tokio::test]
async fn markdown_in_lead_text_never_reaches_a_text_block_or_url() {
    let lead = lead(
        "md",
        json!({"FirstName": "[click](http://evil.example)", "LastName": "**Doe**",
               "Company": "![img](http://evil.example/x.png)", "Email": "x@evil.example"}),
        "Contoso",
    );
    let (result, bodies) = post(Alert::Lead(&lead), ResponseTemplate::new(202)).await;
    result.unwrap();
    let body: Value = serde_json::from_slice(&bodies[0]).unwrap();
    assert!(
        body.to_string().contains("[click](http://evil.example)"),
        "the name is shown as text"
    );
    for object in objects(&body) {
        if object.get("type") == Some(&json!("TextBlock"))
            || object.get("type") == Some(&json!("FactSet"))
        {
            let text = Value::Object(object.clone()).to_string();
            assert!(
                !text.contains("evil"),
                "lead text in Markdown element: {text}"
            );
        }
        for (key, value) in object {
            if key.eq_ignore_ascii_case("url") || key.eq_ignore_ascii_case("selectAction") {
                // The address, under mailto: only, is the one lead text allowed.
                assert_eq!(value, &json!("mailto:x@evil.example"), "lead text in {key}");
            }
        }
    }
}

#[tokio::test]
async fn control_and_bidi_characters_are_stripped() {
    let lead = lead(
        "ctl",
        json!({"FirstName": "Ja\u{202E}ne\u{200B}\u{0007}", "Company": "Acme\r\nGmbH"}),
        "Contoso",
    );
    let payload = render_payload(Alert::Lead(&lead)).to_string();
    assert!(payload.contains("Jane, Acme GmbH"), "{payload}");
    assert!(
        !payload.contains('\u{202E}')
            && !payload.contains('\u{200B}')
            && !payload.contains("\\u0007")
    );
}

#[tokio::test]
async fn throttling_and_server_errors_are_retryable_with_retry_after() {
    let lead = jane();
    let (result, _) = post(
        Alert::Lead(&lead),
        ResponseTemplate::new(429).insert_header("Retry-After", "1"),
    )
    .await;
    match result {
        Err(NotifyError::Retryable { retry_after, .. }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(1)))
        }
        other => panic!("expected retryable, got {other:?}"),
    }
    let (result, _) = post(Alert::Lead(&lead), ResponseTemplate::new(500)).await;
    assert!(result.unwrap_err().is_retryable());
}

#[tokio::test]
async fn client_errors_are_permanent_and_explain_the_url() {
    let lead = jane();
    let (result, _) = post(Alert::Lead(&lead), ResponseTemplate::new(400)).await;
    assert!(!result.unwrap_err().is_retryable());
    for status in [401, 404] {
        let (result, _) = post(Alert::Lead(&lead), ResponseTemplate::new(status)).await;
        let err = result.unwrap_err();
        assert!(!err.is_retryable(), "{err}");
        assert!(err.reason().contains("TEAMS_WEBHOOK_URL is wrong"), "{err}");
    }
}

#[tokio::test]
async fn unreachable_webhook_is_retryable_without_the_url() {
    let url = webhook_url(&format!("http://127.0.0.1:{}", free_port()));
    let err = notifier(&url).send(Alert::Lead(&jane())).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    let text = format!("{err} {err:?}");
    assert!(!text.contains(SIG) && !text.contains("workflows"), "{text}");
    assert!(notifier(&url).check().await.is_err());
}

#[tokio::test]
async fn a_digest_is_one_card_under_28_kb_with_counts_and_the_rest_counted() {
    let leads: Vec<Lead> = (0..300)
        .map(|i| {
            let offer = if i % 3 == 0 {
                "Fabrikam Analytics"
            } else {
                "Contoso CRM Suite"
            };
            lead(
                &format!("k{i}"),
                json!({"FirstName": format!("Person{i}"), "Email": format!("p{i}@acme.example")}),
                offer,
            )
        })
        .collect();
    let (result, bodies) = post(
        Alert::Digest {
            leads: &leads.iter().collect::<Vec<_>>(),
            total: 320,
        },
        ResponseTemplate::new(202),
    )
    .await;
    result.unwrap();
    assert_eq!(bodies.len(), 1);
    assert!(bodies[0].len() < TEAMS_LIMIT, "{} bytes", bodies[0].len());
    let text = String::from_utf8(bodies[0].clone()).unwrap();
    assert!(text.contains("320 new leads"));
    assert!(
        text.contains("200 × Contoso CRM Suite") && text.contains("100 × Fabrikam Analytics"),
        "{text}"
    );
    assert!(text.contains("300 × Contact me"));
    assert!(text.contains("p0@acme.example"));
    let shown = (0..300)
        .filter(|i| text.contains(&format!("Email: p{i}@acme.example")))
        .count();
    assert!(shown > 10, "only {shown} leads shown");
    assert!(
        text.contains(&format!(
            "…and {} more in the messages that follow.",
            300 - shown
        )),
        "{text}"
    );
}

#[test]
fn snapshot_of_a_lead_card() {
    insta::assert_json_snapshot!("lead_card", render_payload(Alert::Lead(&returning_jane())));
}

#[test]
fn snapshot_of_a_digest_card() {
    let leads = [
        returning_jane(),
        new_customer(lead(
            "k2",
            json!({"FirstName": "Ken", "LastName": "Tanaka", "Email": "ken@fabrikam.example", "Company": "Fabrikam"}),
            "Fabrikam Analytics",
        )),
    ];
    insta::assert_json_snapshot!(
        "digest_card",
        render_payload(Alert::Digest {
            leads: &leads.iter().collect::<Vec<_>>(),
            total: 2
        })
    );
}
