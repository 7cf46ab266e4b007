//! Microsoft Teams through a Workflows webhook: an Adaptive Card 1.4 per
//! lead, one card per digest.
//!
//! Lead text only ever goes into `TextRun`s: `TextBlock` and `FactSet` text
//! is Markdown in Teams, so a first name like `[click](http://evil)` would
//! become a link. The only `url`s are the "Reply to the customer" button's
//! (`mailto:` and the percent-encoded address, nothing else) and the "I'll
//! take it" button's (`PUBLIC_URL` and a base64url token: no lead text).

use serde_json::{json, Value};

use super::http::{error_code, Service, Target};
use super::{Alert, DestinationId, Notifier, NotifyError, SendFuture};
use crate::config::TeamsSettings;
use crate::lead::Lead;
use crate::text::{self, Limits};

/// Teams refuses posts above about 28 KB; stay clear of it.
pub const MAX_PAYLOAD_BYTES: usize = 26 * 1024;

pub struct TeamsNotifier {
    id: DestinationId,
    target: Target,
}

impl TeamsNotifier {
    /// `http` is shared with the rest of the process; every post gets its own timeout.
    pub fn new(
        settings: &TeamsSettings,
        http: reqwest::Client,
    ) -> Result<TeamsNotifier, NotifyError> {
        let target = Target::new(
            http,
            &settings.webhook_url,
            "TEAMS_WEBHOOK_URL".to_owned(),
            Service {
                name: "the Teams webhook",
                answerer: "Teams",
                redirect_fix: "set it to the workflow's URL itself, copied from the Teams workflow",
            },
        )
        .map_err(|e| {
            NotifyError::permanent(format!(
                "{}: copy it again from the Teams workflow",
                e.reason()
            ))
        })?;
        Ok(TeamsNotifier {
            id: DestinationId::TEAMS,
            target,
        })
    }

    /// The same channel as another destination (`teams:crm`).
    pub fn for_destination(mut self, id: DestinationId) -> TeamsNotifier {
        self.target.setting = format!("TEAMS_WEBHOOK_URL{}", id.setting_suffix());
        TeamsNotifier { id, ..self }
    }

    async fn post(&self, payload: &Value) -> Result<(), NotifyError> {
        let body = serde_json::to_vec(payload)
            .map_err(|e| NotifyError::permanent(format!("could not encode the card: {e}")))?;
        let Some(answer) = self.target.post(body, Default::default()).await? else {
            return Ok(());
        };
        let code = error_code(&answer.body);
        let reason = |text: String| self.target.reason(&answer, code.as_deref(), &text);
        let setting = &self.target.setting;
        Err(match answer.status.as_u16() {
            408 | 429 | 500..=599 => NotifyError::Retryable {
                reason: reason("the Teams webhook is busy or unavailable".to_owned()),
                retry_after: answer.retry_after,
            },
            401 | 403 | 404 => NotifyError::permanent(reason(format!(
                "the Teams webhook refused the post: {setting} is wrong, or the workflow was deleted or its URL signature changed; copy the URL again from the workflow",
            ))),
            // A digest goes again as two halves; a single lead fails alone.
            413 => NotifyError::TooLarge {
                reason: reason("Teams refused the card as too large".to_owned()),
            },
            400..=499 => NotifyError::permanent(reason(
                "Teams refused the card: check that the workflow is a \"Post to a channel when a webhook request is received\" flow".to_owned(),
            )),
            _ => NotifyError::permanent(reason("unexpected answer from the Teams webhook".to_owned())),
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

    fn digest_fits(&self, leads: &[&Lead], total: usize) -> usize {
        digest_card(leads, total).1
    }

    /// Opens a TCP connection to the webhook's host: posting anything would
    /// show up in the channel.
    fn check(&self) -> SendFuture<'_> {
        Box::pin(self.target.check())
    }
}

/// The webhook body for an alert, under [`MAX_PAYLOAD_BYTES`] serialised.
pub fn render_payload(alert: Alert<'_>) -> Value {
    let card = match alert {
        Alert::Lead(lead) => lead_card(lead),
        Alert::Digest { leads, total } => digest_card(leads, total).0,
        Alert::Notice(notice) => notice.teams_card.clone(),
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

/// An Adaptive Card 1.4 (what Workflows posts render) of `body`.
pub fn card(body: Vec<Value>) -> Value {
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
        let reply = text::mailto(lead).map(|link| ("Reply to the customer", link));
        let take = lead.take_url.clone().map(|link| (TAKE_TITLE, link));
        let actions: Vec<Value> = reply.into_iter().chain(take).map(open_url).collect();
        if !actions.is_empty() {
            card_value["actions"] = Value::Array(actions);
        }
        if size(&wrap(card_value.clone())) <= MAX_PAYLOAD_BYTES {
            break;
        }
    }
    card_value
}

/// The take link's button, on a lead's card and each digest entry.
const TAKE_TITLE: &str = "I'll take it";

fn open_url((title, url): (&str, String)) -> Value {
    json!({"type": "Action.OpenUrl", "title": title, "url": url})
}

fn lead_body(lead: &Lead, limits: Limits) -> Vec<Value> {
    let mut body = vec![
        title(&text::truncate(
            &format!("New lead: {}", text::offer(lead)),
            limits.field,
        )),
        rich(vec![run(&summary(lead, limits.field * 2))]),
    ];
    history(&mut body, lead, text::HISTORY_SHOWN, limits.field);
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

/// "New customer" or "Returning customer" and the earlier leads.
fn history(body: &mut Vec<Value>, lead: &Lead, shown: usize, max: usize) {
    let Some(history) = text::history(lead, shown) else {
        return;
    };
    body.push(rich(vec![bold(&history.status)]));
    for line in &history.earlier {
        body.push(rich_tight(vec![run(&format!(
            "• {}",
            text::truncate(line, max)
        ))]));
    }
    if let Some(more) = &history.more {
        body.push(rich_tight(vec![run(more)]));
    }
}

const DIGEST_COUNT_LINES: usize = 15;
/// Bytes kept in a digest card for the line saying how many leads follow.
const DIGEST_TAIL: usize = 200;

/// The card for `Alert::Digest { leads, total }` and how many of `leads`
/// it lists, in order: as many as fit under [`MAX_PAYLOAD_BYTES`], at least
/// one. Its head counts all of `leads` by offer and action; a card that
/// cannot list them all says how many follow.
fn digest_card(leads: &[&Lead], total: usize) -> (Value, usize) {
    let total = total.max(leads.len());
    let mut tally = Vec::new();
    counts(&mut tally, "By offer", &text::by_offer(leads));
    counts(&mut tally, "By action", &text::by_action(leads));
    let head = |listed: usize| {
        let mut head = vec![title(&text::digest_title(listed, total))];
        head.extend(tally.iter().cloned());
        head
    };

    // Measured with the longest title the card can have, and room for the
    // line saying how many follow.
    let head_size = size(&wrap(card(head(leads.len())))) + DIGEST_TAIL;
    let budget = MAX_PAYLOAD_BYTES.saturating_sub(head_size);
    let items = text::digest_fitting(leads, usize::MAX, budget, |n, lead| {
        let item = digest_item(n, lead);
        let cost = size(&item) + 1;
        (item, cost)
    });
    let shown = items.len();
    // A card listing part of what it was handed counts all of it.
    let mut body = head(if shown < leads.len() { total } else { shown });
    body.extend(items);
    if shown < leads.len() {
        body.push(json!({
            "type": "RichTextBlock",
            "separator": true,
            "inlines": [{"type": "TextRun", "text": text::digest_more(leads.len() - shown), "italic": true}],
        }));
    }
    (card(body), shown)
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

/// One lead of a digest: offer, who and what they did, then a compact
/// line each for contact details, history and description, then where the
/// lead is in the table.
fn digest_item(n: usize, lead: &Lead) -> Value {
    let entry = text::digest_entry(lead);
    let mut items = vec![rich(vec![
        bold(&format!("{n}. {}", entry.offer)),
        run(&format!(" — {}", entry.about)),
    ])];
    items.extend(entry.lines.iter().map(|line| rich_tight(vec![run(line)])));
    let subtle = |text: &str| json!({"type": "TextRun", "text": text, "isSubtle": true});
    let mut place = Vec::new();
    if let Some(received) = &entry.received {
        place.push(subtle(&format!("Received: {received} · ")));
    }
    place.extend([subtle("Lead keys: "), subtle(&entry.keys)]);
    items.push(rich_tight(place));
    if let Some(link) = &lead.take_url {
        items.push(json!({"type": "ActionSet", "actions": [open_url((TAKE_TITLE, link.clone()))]}));
    }
    json!({"type": "Container", "separator": true, "spacing": "Medium", "items": items})
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `n` leads of different customers.
    pub(crate) fn leads(n: usize) -> Vec<Lead> {
        (0..n)
            .map(|i| {
                let mut lead = crate::notify::sample_lead();
                lead.key.row_key = format!("r{i:03}");
                lead.customer.email = Some(format!("buyer{i:03}@customer.example"));
                lead
            })
            .collect()
    }

    #[test]
    fn digest_cards_list_what_digest_fits_counts_each_lead_once_under_the_limit() {
        let leads = leads(120);
        let refs: Vec<&Lead> = leads.iter().collect();
        let (mut rest, mut cards) = (&refs[..], 0);
        while !rest.is_empty() {
            let fits = digest_card(rest, refs.len()).1;
            assert!(fits >= 1 && fits <= rest.len());
            // The first card is handed every lead, later ones what they list.
            let handed = if cards == 0 { rest } else { &rest[..fits] };
            let (card, shown) = digest_card(handed, refs.len());
            assert_eq!(shown, fits);
            let payload = serde_json::to_string(&wrap(card)).unwrap();
            assert!(payload.len() <= MAX_PAYLOAD_BYTES, "{}", payload.len());
            for (i, lead) in rest.iter().enumerate() {
                let email = lead.customer.email.as_deref().unwrap();
                assert_eq!(payload.contains(email), i < fits, "{email}");
            }
            let more = format!("…and {} more", rest.len() - fits);
            assert_eq!(payload.contains(&more), cards == 0 && fits < rest.len());
            let title = if cards == 0 {
                "\"120 new leads\"".to_owned()
            } else {
                format!("\"120 new leads ({fits} in this message)\"")
            };
            assert!(payload.contains(&title), "{payload}");
            assert!(payload.contains("By offer"));
            (rest, cards) = (&rest[fits..], cards + 1);
        }
        assert!(cards > 1, "120 leads need several cards");
    }
}
