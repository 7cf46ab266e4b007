//! Slack through an incoming webhook: a Block Kit message per lead, one per
//! digest, with a plain-text fallback `text` for notifications.
//!
//! Lead text only ever goes into `plain_text` objects, which Slack shows as
//! written: no mentions, no links. The fallback `text` is mrkdwn (Slack
//! offers no other), so there lead text is escaped (`&`, `<`, `>`): a lead
//! named `<!channel>` cannot notify a channel. No element carries a URL.

use serde_json::{json, Value};

use super::http::{Answer, Service, Target};
use super::{Alert, DestinationId, Notifier, NotifyError, SendFuture};
use crate::config::SlackSettings;
use crate::lead::Lead;
use crate::text::{self, Limits};

/// Slack's Block Kit limits.
pub const MAX_BLOCKS: usize = 50;
pub const MAX_SECTION_TEXT: usize = 3_000;
pub const MAX_FIELDS: usize = 10;
pub const MAX_FIELD_TEXT: usize = 2_000;
pub const MAX_HEADER_TEXT: usize = 150;
/// Slack also refuses a message whose blocks hold too much text in all
/// (`msg_blocks_too_long`, reported from about 12,000 characters, not
/// documented): a digest message stays well under that.
pub const MAX_MESSAGE_TEXT: usize = 10_000;

pub struct SlackNotifier {
    id: DestinationId,
    target: Target,
}

impl SlackNotifier {
    pub fn new(
        settings: &SlackSettings,
        http: reqwest::Client,
    ) -> Result<SlackNotifier, NotifyError> {
        let setting = format!("SLACK_WEBHOOK_URL{}", settings.id.setting_suffix());
        Ok(SlackNotifier {
            id: settings.id.clone(),
            target: Target::new(
                http,
                &settings.webhook_url,
                setting,
                Service {
                    name: "the Slack webhook",
                    answerer: "Slack",
                    redirect_fix: "set it to the incoming webhook's URL itself (https://hooks.slack.com/services/…)",
                },
            )?,
        })
    }

    fn classify(&self, answer: &Answer) -> NotifyError {
        let setting = &self.target.setting;
        let code = answer.plain_code();
        let reason = |text: String| self.target.reason(answer, code.as_deref(), &text);
        match answer.status.as_u16() {
            408 | 429 | 500..=599 => NotifyError::Retryable {
                reason: reason("Slack is busy or unavailable".to_owned()),
                retry_after: answer.retry_after,
            },
            // A digest goes again as two halves; a single lead fails alone.
            400 if matches!(
                code.as_deref(),
                Some("msg_too_long" | "msg_blocks_too_long" | "too_many_blocks")
            ) =>
            {
                NotifyError::TooLarge {
                    reason: reason("Slack refused the message as too long".to_owned()),
                }
            }
            400 => NotifyError::permanent(reason(
                "Slack refused the message as malformed; this is a lead-notifier bug: please report it with the run's log".to_owned(),
            )),
            403 => NotifyError::permanent(reason(format!(
                "Slack does not let this webhook post (its app was removed or a workspace admin restricted it): \
                 add a new incoming webhook and put its URL in {setting}"
            ))),
            404 => NotifyError::permanent(reason(format!(
                "the Slack webhook or its channel no longer exists: add a new incoming webhook and put its URL in {setting}"
            ))),
            410 => NotifyError::permanent(reason(format!(
                "the Slack channel is archived: unarchive it, or add an incoming webhook for another channel and put its URL in {setting}"
            ))),
            _ => NotifyError::permanent(reason(format!(
                "Slack refused the message: check {setting}"
            ))),
        }
    }
}

impl Notifier for SlackNotifier {
    fn channel(&self) -> DestinationId {
        self.id.clone()
    }

    fn send<'a>(&'a self, alert: Alert<'a>) -> SendFuture<'a> {
        Box::pin(async move {
            let body = serde_json::to_vec(&render_payload(alert)).map_err(|e| {
                NotifyError::permanent(format!("could not encode the Slack message: {e}"))
            })?;
            match self.target.post(body, Default::default()).await? {
                None => Ok(()),
                Some(answer) => Err(self.classify(&answer)),
            }
        })
    }

    fn digest_fits(&self, leads: &[&Lead], total: usize) -> usize {
        digest_blocks(leads, total).1
    }

    fn check(&self) -> SendFuture<'_> {
        Box::pin(self.target.check())
    }
}

/// `&`, `<` and `>` as Slack's mrkdwn wants them escaped; nothing else is
/// special once they are.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The webhook body for an alert, within Slack's limits.
pub fn render_payload(alert: Alert<'_>) -> Value {
    match alert {
        Alert::Lead(lead) => json!({
            "text": escape(&text::lead_subject(lead)),
            "blocks": lead_blocks(lead),
        }),
        Alert::Digest { leads, total } => {
            let (blocks, shown) = digest_blocks(leads, total);
            json!({
                "text": escape(&text::digest_subject(&leads[..shown], total)),
                "blocks": blocks,
            })
        }
        Alert::Notice(notice) => json!({
            "text": escape(&text::one_line(&notice.subject)),
            "blocks": notice.slack_blocks,
        }),
    }
}

fn plain(text: &str, max: usize) -> Value {
    json!({"type": "plain_text", "text": text::truncate(text, max), "emoji": false})
}

fn header(text: &str) -> Value {
    json!({"type": "header", "text": plain(text, MAX_HEADER_TEXT)})
}

fn section(text: &str) -> Value {
    json!({"type": "section", "text": plain(text, MAX_SECTION_TEXT)})
}

const LEAD_LIMITS: Limits = Limits {
    field: 300,
    long: MAX_SECTION_TEXT - 20,
};

fn lead_blocks(lead: &Lead) -> Vec<Value> {
    let mut blocks = vec![
        header(&format!("New lead: {}", text::offer(lead))),
        section(&summary(lead)),
    ];
    if let Some(history) = history(lead, text::HISTORY_SHOWN) {
        blocks.push(section(&history));
    }
    if let Some((warning, raw)) = text::customer_problem(lead, LEAD_LIMITS.long) {
        blocks.push(section(&warning));
        if let Some(raw) = raw {
            blocks.push(section(&format!("Raw customer details: {raw}")));
        }
    }
    let (long, short): (Vec<_>, Vec<_>) = text::fields(lead, LEAD_LIMITS)
        .into_iter()
        .partition(|f| f.kind == text::FieldKind::Long);
    for chunk in short.chunks(MAX_FIELDS) {
        let fields: Vec<Value> = chunk
            .iter()
            .map(|f| plain(&format!("{}: {}", f.label, f.value), MAX_FIELD_TEXT))
            .collect();
        blocks.push(json!({"type": "section", "fields": fields}));
    }
    for field in long {
        blocks.push(section(&format!("{}:\n{}", field.label, field.value)));
    }
    if let Some(button) = take_button(lead) {
        blocks.push(json!({"type": "actions", "elements": [button]}));
    }
    blocks
}

/// Slack takes a button's `url` up to this many characters.
const MAX_BUTTON_URL: usize = 3_000;

/// The "I'll take it" button, when the lead has a link Slack takes.
fn take_button(lead: &Lead) -> Option<Value> {
    let url = lead
        .take_url
        .as_ref()
        .filter(|u| u.len() <= MAX_BUTTON_URL)?;
    Some(json!({"type": "button", "text": plain("I'll take it", 75), "url": url}))
}

/// "Returning customer: …" and the earlier leads, one a line, as Teams shows them.
fn history(lead: &Lead, shown: usize) -> Option<String> {
    let history = text::history(lead, shown)?;
    let mut lines = vec![history.status];
    lines.extend(history.earlier.iter().map(|line| format!("• {line}")));
    lines.extend(history.more);
    Some(lines.join("\n"))
}

fn summary(lead: &Lead) -> String {
    match text::who(lead) {
        Some(who) => format!("{who} — {}", text::activity(lead)),
        None => text::activity(lead),
    }
}

const DIGEST_COUNT_LINES: usize = 15;
/// Characters of text kept free in a digest for the line saying how many
/// leads follow.
const DIGEST_TAIL: usize = 100;

/// The blocks for `Alert::Digest { leads, total }` and how many of `leads`
/// they list, in order: as many as fit within [`MAX_BLOCKS`] and
/// [`MAX_MESSAGE_TEXT`], at least one. As in Teams, the head counts all of
/// `leads` and a message that cannot list them all says how many follow.
fn digest_blocks(leads: &[&Lead], total: usize) -> (Vec<Value>, usize) {
    let total = total.max(leads.len());
    let tally = [
        section(&counts("By offer", &text::by_offer(leads))),
        section(&counts("By action", &text::by_action(leads))),
    ];
    let head = |listed: usize| {
        let mut head = vec![header(&text::digest_title(listed, total))];
        head.extend(tally.iter().cloned());
        head
    };
    // Measured with the longest title the message can have, and one block
    // and some text kept for the line saying how many follow.
    let measured = head(leads.len());
    let room = MAX_BLOCKS - measured.len() - 1;
    let head_text = measured.iter().map(text_chars).sum::<usize>() + DIGEST_TAIL;
    let budget = MAX_MESSAGE_TEXT.saturating_sub(head_text);
    let items = text::digest_fitting(leads, room, budget, |n, lead| {
        let mut item = section(&digest_item(n, lead));
        if let Some(button) = take_button(lead) {
            item["accessory"] = button;
        }
        let cost = text_chars(&item);
        (item, cost)
    });
    let shown = items.len();
    // A message listing part of what it was handed counts all of it.
    let mut blocks = head(if shown < leads.len() { total } else { shown });
    blocks.extend(items);
    if shown < leads.len() {
        let more = text::digest_more(leads.len() - shown);
        blocks.push(json!({"type": "context", "elements": [plain(&more, MAX_SECTION_TEXT)]}));
    }
    (blocks, shown)
}

/// Characters of text in a block, as Slack counts them towards
/// [`MAX_MESSAGE_TEXT`]: every `text` string in it.
fn text_chars(block: &Value) -> usize {
    match block {
        Value::Object(map) => map
            .iter()
            .map(|(key, value)| match value {
                Value::String(s) if key == "text" => s.chars().count(),
                other => text_chars(other),
            })
            .sum(),
        Value::Array(items) => items.iter().map(text_chars).sum(),
        _ => 0,
    }
}

fn counts(heading: &str, counts: &[(String, usize)]) -> String {
    let mut lines = vec![format!("{heading}:")];
    for (name, n) in counts.iter().take(DIGEST_COUNT_LINES) {
        lines.push(format!("{n} × {}", text::truncate(name, 80)));
    }
    if counts.len() > DIGEST_COUNT_LINES {
        lines.push(format!("and {} more", counts.len() - DIGEST_COUNT_LINES));
    }
    lines.join("\n")
}

/// One lead of a digest, in lines: offer, who and what they did, contact
/// details, history, description, where the lead is in the table.
fn digest_item(n: usize, lead: &Lead) -> String {
    let entry = text::digest_entry(lead);
    let mut lines = vec![format!("{n}. {} — {}", entry.offer, entry.about)];
    lines.extend(entry.lines);
    lines.push(match entry.received {
        Some(received) => format!("Received: {received} · Lead keys: {}", entry.keys),
        None => format!("Lead keys: {}", entry.keys),
    });
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_messages_list_what_digest_fits_counts_each_lead_once_within_limits() {
        let leads = crate::notify::teams::tests::leads(120);
        let refs: Vec<&Lead> = leads.iter().collect();
        let (mut rest, mut messages) = (&refs[..], 0);
        while !rest.is_empty() {
            let fits = digest_blocks(rest, refs.len()).1;
            assert!(fits >= 1 && fits <= rest.len());
            let handed = if messages == 0 { rest } else { &rest[..fits] };
            let payload = render_payload(Alert::Digest {
                leads: handed,
                total: refs.len(),
            });
            let blocks = payload["blocks"].as_array().unwrap();
            assert!(blocks.len() <= MAX_BLOCKS);
            assert!(blocks.iter().map(text_chars).sum::<usize>() <= MAX_MESSAGE_TEXT);
            for block in blocks {
                let text = block["text"]["text"].as_str().unwrap_or("");
                assert!(text.chars().count() <= MAX_SECTION_TEXT);
            }
            let fallback = payload["text"].as_str().unwrap();
            assert!(fallback.starts_with(&format!("120 new leads ({fits} in this message)")));
            let text = payload.to_string();
            for (i, lead) in rest.iter().enumerate() {
                let email = lead.customer.email.as_deref().unwrap();
                assert_eq!(text.contains(email), i < fits, "{email}");
            }
            assert_eq!(
                text.contains("more in the messages that follow"),
                messages == 0
            );
            let title = blocks[0]["text"]["text"].as_str().unwrap();
            if messages == 0 {
                assert_eq!(title, "120 new leads");
            } else {
                assert_eq!(title, format!("120 new leads ({fits} in this message)"));
            }
            (rest, messages) = (&rest[fits..], messages + 1);
        }
        assert!(messages > 1, "120 leads need several messages");
    }

    #[test]
    fn escape_neutralises_mentions_and_links() {
        assert_eq!(
            escape("<!channel> & <https://evil.example|click>"),
            "&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;"
        );
    }
}
