//! Microsoft Teams through a Workflows webhook: an Adaptive Card 1.4 per
//! lead, one card per digest.
//!
//! Lead text only ever goes into `TextRun`s: `TextBlock` and `FactSet` text
//! is Markdown in Teams, so a first name like `[click](http://evil)` would
//! become a link. No element carries a `url`.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use super::text::{self, Limits};
use super::{Alert, DestinationId, Notifier, NotifyError, SendFuture};
use crate::config::TeamsSettings;
use crate::lead::Lead;

/// Teams refuses posts above about 28 KB; stay clear of it.
pub const MAX_PAYLOAD_BYTES: usize = 26 * 1024;

const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_CHECK_TIMEOUT: Duration = Duration::from_secs(10);

pub struct TeamsNotifier {
    id: DestinationId,
    http: reqwest::Client,
    url: SecretString,
}

impl TeamsNotifier {
    /// `http` is shared with the rest of the process; every post gets its own timeout.
    pub fn new(
        settings: &TeamsSettings,
        http: reqwest::Client,
    ) -> Result<TeamsNotifier, NotifyError> {
        // The URL is a secret: errors describe it without quoting it.
        let url = url::Url::parse(settings.webhook_url.expose_secret()).map_err(|_| {
            NotifyError::permanent(
                "TEAMS_WEBHOOK_URL is not a valid URL: copy it again from the Teams workflow",
            )
        })?;
        if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
            return Err(NotifyError::permanent(
                "TEAMS_WEBHOOK_URL must be an https:// URL: copy it again from the Teams workflow",
            ));
        }
        Ok(TeamsNotifier {
            id: DestinationId::TEAMS,
            http,
            url: settings.webhook_url.clone(),
        })
    }

    /// The same channel as another destination (`teams:crm`).
    pub fn for_destination(self, id: DestinationId) -> TeamsNotifier {
        TeamsNotifier { id, ..self }
    }

    /// Belt and braces: whatever a library put in an error, the URL and its
    /// signature never leave this module.
    fn scrub(&self, reason: String) -> String {
        let url = self.url.expose_secret();
        let mut reason = reason.replace(url, "<TEAMS_WEBHOOK_URL>");
        if let Ok(parsed) = url::Url::parse(url) {
            if let Some(query) = parsed.query().filter(|q| !q.is_empty()) {
                reason = reason.replace(query, "<redacted>");
            }
        }
        reason
    }

    async fn post(&self, payload: &Value) -> Result<(), NotifyError> {
        let response = self
            .http
            .post(self.url.expose_secret())
            .timeout(HTTP_TIMEOUT)
            .json(payload)
            .send()
            .await
            .map_err(|e| {
                NotifyError::retryable(self.scrub(format!(
                    "could not reach the Teams webhook: {}",
                    chain(&e.without_url())
                )))
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, time::OffsetDateTime::now_utc()));
        let code = error_code(&response.text().await.unwrap_or_default());
        let answer = match code {
            Some(code) => format!("{status}, {code}"),
            None => status.to_string(),
        };
        let reason = |text: &str| self.scrub(format!("{text} (Teams answered {answer})"));
        Err(match status.as_u16() {
            408 | 429 | 500..=599 => NotifyError::Retryable {
                reason: reason("the Teams webhook is busy or unavailable"),
                retry_after,
            },
            401 | 403 | 404 => NotifyError::permanent(reason(
                "the Teams webhook refused the post: TEAMS_WEBHOOK_URL is wrong, or the workflow was deleted or its URL signature changed; copy the URL again from the workflow",
            )),
            413 => NotifyError::permanent(reason("Teams refused the card as too large")),
            400..=499 => NotifyError::permanent(reason(
                "Teams refused the card: check that the workflow is a \"Post to a channel when a webhook request is received\" flow",
            )),
            _ => NotifyError::permanent(reason("unexpected answer from the Teams webhook")),
        })
    }
}

impl Notifier for TeamsNotifier {
    fn channel(&self) -> DestinationId {
        self.id.clone()
    }

    fn send<'a>(&'a self, alert: Alert<'a>) -> SendFuture<'a> {
        Box::pin(async move { self.post(&render_payload(alert)).await })
    }

    /// Opens a TCP connection to the webhook's host: posting anything would
    /// show up in the channel.
    fn check(&self) -> SendFuture<'_> {
        Box::pin(async move {
            let parsed = url::Url::parse(self.url.expose_secret())
                .map_err(|_| NotifyError::permanent("TEAMS_WEBHOOK_URL is not a valid URL"))?;
            let host = parsed.host_str().unwrap_or_default().to_string();
            let port = parsed.port_or_known_default().unwrap_or(443);
            match tokio::time::timeout(CONNECT_CHECK_TIMEOUT, tokio::net::TcpStream::connect((host.as_str(), port))).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(NotifyError::retryable(format!(
                    "could not connect to the Teams webhook's host: {e}; check TEAMS_WEBHOOK_URL and outbound network access"
                ))),
                Err(_) => Err(NotifyError::retryable(
                    "the Teams webhook's host did not answer in time; check outbound network access",
                )),
            }
        })
    }
}

fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text::truncate(&text::one_line(&text), 300)
}

/// The `error.code` of a Workflows error body, e.g. `InvalidRequestContent`.
/// Only the code: messages can quote the posted card.
fn error_code(body: &str) -> Option<String> {
    let value: Value = serde_json::from_str(body).ok()?;
    let code = value.pointer("/error/code")?.as_str()?;
    let code = text::one_line(code);
    (code.len() <= 80
        && code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_'))
    .then_some(code)
}

/// `Retry-After` as delta-seconds or an HTTP date (RFC 9110 §10.2.3).
pub fn parse_retry_after(value: &str, now: time::OffsetDateTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let at = time::PrimitiveDateTime::parse(value, format)
        .ok()?
        .assume_utc();
    let wait = at - now;
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

/// The webhook body for an alert, under [`MAX_PAYLOAD_BYTES`] serialised.
pub fn render_payload(alert: Alert<'_>) -> Value {
    let card = match alert {
        Alert::Lead(lead) => lead_card(lead),
        Alert::Digest { leads, total } => digest_card(leads, total),
    };
    wrap(card)
}

fn wrap(card: Value) -> Value {
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "content": card,
        }]
    })
}

fn card(body: Vec<Value>) -> Value {
    json!({
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.4",
        "msteams": {"width": "Full"},
        "body": body,
    })
}

fn size(value: &Value) -> usize {
    serde_json::to_vec(value)
        .map(|v| v.len())
        .unwrap_or(usize::MAX)
}

fn run(text: &str) -> Value {
    json!({"type": "TextRun", "text": text})
}

fn bold(text: &str) -> Value {
    json!({"type": "TextRun", "text": text, "weight": "Bolder"})
}

fn rich(inlines: Vec<Value>) -> Value {
    json!({"type": "RichTextBlock", "inlines": inlines})
}

fn rich_tight(inlines: Vec<Value>) -> Value {
    json!({"type": "RichTextBlock", "inlines": inlines, "spacing": "Small"})
}

fn title(text: &str) -> Value {
    rich(vec![
        json!({"type": "TextRun", "text": text, "weight": "Bolder", "size": "Large", "color": "Accent"}),
    ])
}

fn summary(lead: &Lead, max: usize) -> String {
    let line = match text::who(lead) {
        Some(who) => format!("{who} — {}", text::activity(lead)),
        None => text::activity(lead),
    };
    text::truncate(&line, max)
}

/// Caps tried in turn until the card fits; the last one always does.
const LEAD_LIMITS: [Limits; 4] = [
    Limits {
        field: 300,
        long: 3_000,
    },
    Limits {
        field: 200,
        long: 1_000,
    },
    Limits {
        field: 100,
        long: 300,
    },
    Limits {
        field: 40,
        long: 80,
    },
];

fn lead_card(lead: &Lead) -> Value {
    let mut card_value = Value::Null;
    for limits in LEAD_LIMITS {
        card_value = card(lead_body(lead, limits));
        if size(&wrap(card_value.clone())) <= MAX_PAYLOAD_BYTES {
            break;
        }
    }
    card_value
}

fn lead_body(lead: &Lead, limits: Limits) -> Vec<Value> {
    let mut body = vec![
        title(&text::truncate(
            &format!("New lead: {}", text::offer(lead)),
            limits.field,
        )),
        rich(vec![run(&summary(lead, limits.field * 2))]),
    ];
    if let Some((warning, raw)) = text::customer_problem(lead, limits.long) {
        body.push(rich(vec![
            json!({"type": "TextRun", "text": warning, "color": "Warning", "weight": "Bolder"}),
        ]));
        if let Some(raw) = raw {
            body.push(rich_tight(vec![bold("Raw customer details: "), run(&raw)]));
        }
    }
    for field in text::fields(lead, limits) {
        if field.kind == text::FieldKind::Long {
            body.push(rich(vec![bold(&format!("{}:", field.label))]));
            body.push(rich_tight(vec![run(&field.value)]));
        } else {
            body.push(rich_tight(vec![
                bold(&format!("{}: ", field.label)),
                run(&field.value),
            ]));
        }
    }
    body
}

/// Fields worth a line in a digest; the rest are in each lead's email.
const DIGEST_FIELDS: [&str; 7] = [
    "Title",
    "Email",
    "Phone",
    "Country",
    "Description",
    "Received",
    "Lead keys",
];
const DIGEST_LIMITS: Limits = Limits {
    field: 120,
    long: 200,
};
const DIGEST_COUNT_LINES: usize = 15;

fn digest_card(leads: &[&Lead], total: usize) -> Value {
    let total = total.max(leads.len());
    let mut head = vec![title(&format!("{total} new leads"))];
    counts(&mut head, "By offer", &text::by_offer(leads));
    counts(&mut head, "By action", &text::by_action(leads));

    // Room for the head, the envelope and the "and N more" line.
    let reserve = size(&wrap(card(head.clone()))) + 200;
    let mut used = reserve;
    let mut body = head;
    let mut shown = 0;
    for (i, lead) in leads.iter().enumerate() {
        let item = digest_item(i + 1, lead);
        let item_size = size(&item) + 1;
        if used + item_size > MAX_PAYLOAD_BYTES {
            break;
        }
        used += item_size;
        body.push(item);
        shown += 1;
    }
    if shown < total {
        body.push(json!({
            "type": "RichTextBlock",
            "separator": true,
            "inlines": [{"type": "TextRun", "text": format!("…and {} more not shown here.", total - shown), "italic": true}],
        }));
    }
    card(body)
}

fn counts(body: &mut Vec<Value>, heading: &str, counts: &[(String, usize)]) {
    body.push(rich(vec![bold(heading)]));
    for (name, n) in counts.iter().take(DIGEST_COUNT_LINES) {
        body.push(rich_tight(vec![run(&format!(
            "{n} × {}",
            text::truncate(name, 80)
        ))]));
    }
    if counts.len() > DIGEST_COUNT_LINES {
        body.push(rich_tight(vec![run(&format!(
            "and {} more",
            counts.len() - DIGEST_COUNT_LINES
        ))]));
    }
}

fn digest_item(n: usize, lead: &Lead) -> Value {
    let mut items = vec![rich(vec![
        bold(&format!("{n}. {}", text::truncate(&text::offer(lead), 80))),
        run(&format!(" — {}", summary(lead, 160))),
    ])];
    if lead.customer_warning.is_some() {
        items.push(rich_tight(vec![json!({"type": "TextRun", "text": "The customer details could not be read; see the email.", "color": "Warning"})]));
    }
    for field in text::fields(lead, DIGEST_LIMITS) {
        if DIGEST_FIELDS.contains(&field.label) {
            items.push(rich_tight(vec![
                bold(&format!("{}: ", field.label)),
                run(&field.value),
            ]));
        }
    }
    json!({"type": "Container", "separator": true, "spacing": "Medium", "items": items})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = time::macros::datetime!(2026-11-21 10:45:00 UTC);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Sat, 21 Nov 2026 10:45:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sat, 21 Nov 2026 10:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn error_code_only_takes_plain_codes() {
        assert_eq!(
            error_code(r#"{"error":{"code":"InvalidRequestContent","message":"Jane"}}"#).as_deref(),
            Some("InvalidRequestContent")
        );
        assert_eq!(error_code(r#"{"error":{"code":"Jane Doe <x>"}}"#), None);
        assert_eq!(error_code("not json"), None);
    }
}
