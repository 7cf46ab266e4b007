//! The "I'll take it" link in every kind of alert: email (beside "Reply to
//! the customer", and in the text part), the Teams card (`Action.OpenUrl`),
//! Slack (a `button` with its `url`), each entry of a digest, and the
//! signed webhook's `take_url`; nothing of it without the link.

mod common;

use common::leads::jane;
use lead_notifier::lead::Lead;
use lead_notifier::notify::email::body::{render_html, render_text};
use lead_notifier::notify::webhook::lead_event::Event;
use lead_notifier::notify::{slack, teams, Alert};
use serde_json::Value;
use time::OffsetDateTime;

const LINK: &str = "https://contoso-leads.azurewebsites.net/api/LeadTake?t=AQAAAABn_x-1";

fn with_link(mut lead: Lead, link: &str) -> Lead {
    lead.take_url = Some(link.to_owned());
    lead
}

/// Every `url` of every `Action.OpenUrl` or Slack button in `value`.
fn urls(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            let kind = map.get("type").and_then(Value::as_str);
            if matches!(kind, Some("Action.OpenUrl" | "button")) {
                if let Some(url) = map.get("url").and_then(Value::as_str) {
                    out.push(url.to_owned());
                }
            }
            map.values().for_each(|v| urls(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| urls(v, out)),
        _ => {}
    }
}

fn links_in(value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    urls(value, &mut out);
    out
}

#[test]
fn a_single_alert_carries_the_link_on_every_channel() {
    let lead = with_link(jane(), LINK);
    let alert = Alert::Lead(&lead);

    let html = render_html(alert);
    let reply = html.find("Reply to the customer").expect("reply button");
    let take = html.find("I'll take it").expect("take button");
    assert!(reply < take, "the take button follows the reply button");
    assert!(html.contains(&format!("href=\"{LINK}\"")), "{html}");
    assert!(render_text(alert).contains(&format!("I'll take it: {LINK}")));

    let card = teams::render_payload(alert);
    let actions = &card["attachments"][0]["content"]["actions"];
    assert_eq!(actions[0]["title"], "Reply to the customer", "{actions}");
    assert_eq!(actions[1]["type"], "Action.OpenUrl");
    assert_eq!(actions[1]["title"], "I'll take it");
    assert_eq!(actions[1]["url"], LINK);

    let message = slack::render_payload(alert);
    let buttons: Vec<&Value> = message["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "actions")
        .flat_map(|b| b["elements"].as_array().unwrap())
        .collect();
    assert_eq!(buttons.len(), 1, "{message}");
    assert_eq!(buttons[0]["type"], "button");
    assert_eq!(buttons[0]["text"]["text"], "I'll take it");
    assert_eq!(buttons[0]["url"], LINK);

    let event =
        serde_json::to_value(Event::lead_created(&lead, OffsetDateTime::now_utc())).unwrap();
    assert_eq!(event["data"]["take_url"], LINK);
    assert_eq!(event["data"]["schema_version"], 1);
}

#[test]
fn each_digest_entry_carries_its_own_link() {
    let leads: Vec<Lead> = (0..3)
        .map(|i| {
            let mut lead = with_link(jane(), &format!("{LINK}{i}"));
            lead.key.row_key = format!("digest-{i}");
            lead
        })
        .collect();
    let refs: Vec<&Lead> = leads.iter().collect();
    let alert = Alert::Digest {
        leads: &refs,
        total: 3,
    };
    let expected: Vec<String> = (0..3).map(|i| format!("{LINK}{i}")).collect();

    let html = render_html(alert);
    let text = render_text(alert);
    for link in &expected {
        assert!(html.contains(&format!("href=\"{link}\"")), "{link}");
        assert!(text.contains(&format!("I'll take it: {link}")), "{link}");
    }
    let card_links = links_in(&teams::render_payload(alert));
    assert_eq!(card_links, expected);
    let slack_links = links_in(&slack::render_payload(alert));
    assert_eq!(slack_links, expected);
}

#[test]
fn without_a_link_nothing_is_added() {
    let lead = jane();
    let alert = Alert::Lead(&lead);
    assert!(!render_html(alert).contains("take it"));
    assert!(!render_text(alert).contains("take it"));
    let card = teams::render_payload(alert);
    assert_eq!(
        links_in(&card),
        vec![lead_notifier::text::mailto(&lead).unwrap()]
    );
    assert!(links_in(&slack::render_payload(alert)).is_empty());
    let event =
        serde_json::to_value(Event::lead_created(&lead, OffsetDateTime::now_utc())).unwrap();
    let data = event["data"].as_object().unwrap();
    assert_eq!(data.get("take_url"), Some(&Value::Null), "always present");
}
