//! Slack through an incoming webhook: a Block Kit message per lead, one per
//! digest, with a plain-text fallback `text` for notifications.
//!
//! Lead text only ever goes into `plain_text` objects, which Slack shows as
//! written: no mentions, no links. The fallback `text` is mrkdwn (Slack
//! offers no other), so there lead text is escaped (`&`, `<`, `>`): a lead
//! named `<!channel>` cannot notify a channel. No element carries a URL.

use serde_json::{json, Value};

use super::http::{Answer, Service, Target};
use super::text::{self, Limits};
use super::{Alert, DestinationId, Notifier, NotifyError, SendFuture};
use crate::config::SlackSettings;
use crate::lead::Lead;

/// Slack's Block Kit limits.
pub const MAX_BLOCKS: usize = 50;
pub const MAX_SECTION_TEXT: usize = 3_000;
pub const MAX_FIELDS: usize = 10;
pub const MAX_FIELD_TEXT: usize = 2_000;
pub const MAX_HEADER_TEXT: usize = 150;

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
        Alert::Digest { leads, total } => json!({
            "text": escape(&text::digest_subject(leads, total)),
            "blocks": digest_blocks(leads, total),
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
    blocks
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

/// Fields worth a line in a digest, as in the Teams digest.
const DIGEST_FIELDS: [&str; 6] = [
    "Title",
    "Email",
    "Phone",
    "Country",
    "Received",
    "Lead keys",
];
const DIGEST_LIMITS: Limits = Limits {
    field: 120,
    long: 200,
};
const DIGEST_COUNT_LINES: usize = 15;
/// Earlier leads listed per lead in a digest, as in the Teams digest.
const DIGEST_HISTORY_SHOWN: usize = 2;

fn digest_blocks(leads: &[&Lead], total: usize) -> Vec<Value> {
    let total = total.max(leads.len());
    let mut blocks = vec![
        header(&format!("{total} new leads")),
        section(&counts("By offer", &text::by_offer(leads))),
        section(&counts("By action", &text::by_action(leads))),
    ];
    // One block stays free for the "and N more" line.
    let room = MAX_BLOCKS - blocks.len() - 1;
    let shown = leads.len().min(room);
    for (i, lead) in leads.iter().take(shown).enumerate() {
        blocks.push(section(&digest_item(i + 1, lead)));
    }
    if shown < total {
        blocks.push(json!({
            "type": "context",
            "elements": [plain(&format!("…and {} more not shown here.", total - shown), MAX_SECTION_TEXT)],
        }));
    }
    blocks
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

fn digest_item(n: usize, lead: &Lead) -> String {
    let mut lines = vec![format!(
        "{n}. {} — {}",
        text::truncate(&text::offer(lead), 80),
        text::truncate(&summary(lead), 160)
    )];
    if lead.customer_warning.is_some() {
        lines.push("The customer details could not be read; see the email.".to_owned());
    }
    lines.extend(history(lead, DIGEST_HISTORY_SHOWN));
    let details: Vec<String> = text::fields(lead, DIGEST_LIMITS)
        .into_iter()
        .filter(|f| DIGEST_FIELDS.contains(&f.label))
        .map(|f| format!("{}: {}", f.label, f.value))
        .collect();
    if !details.is_empty() {
        lines.push(details.join(" · "));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_neutralises_mentions_and_links() {
        assert_eq!(
            escape("<!channel> & <https://evil.example|click>"),
            "&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;"
        );
    }
}
