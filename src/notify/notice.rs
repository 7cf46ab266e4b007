//! A message that is not a lead alert: the periodic summary and the
//! lead-flow health notes, which whoever makes one renders for every kind
//! of channel (the notifiers only send what they are handed) with nothing
//! personal in it, offers, counts and times only; and a machine event about
//! a lead (`lead.taken`), which only signed webhooks are handed.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// Stable for one notice on every retry and in every process (the
    /// ledger key's text): the email's Message-ID and the outbox file name
    /// come from it.
    pub id: String,
    pub subject: String,
    /// The plain-text email part.
    pub text: String,
    /// The HTML email part: tables only, for Outlook and Gmail.
    pub html: String,
    /// An Adaptive Card (version 1.4) for Teams, within its 28 KB.
    pub teams_card: Value,
    /// Slack blocks, within Slack's limits.
    pub slack_blocks: Value,
    /// A Standard Webhooks event for machines (`lead.taken`), which only
    /// signed webhooks are handed and send as it is; `None` for notices
    /// meant for people, which signed webhooks refuse.
    pub event: Option<Value>,
}

impl Notice {
    /// A notice that is only a machine event: `id` is stable per event
    /// (the receiver's `webhook-id` comes from it).
    pub fn machine_event(id: String, subject: String, event: Value) -> Notice {
        Notice {
            id,
            subject,
            text: String::new(),
            html: String::new(),
            teams_card: Value::Null,
            slack_blocks: Value::Null,
            event: Some(event),
        }
    }
}
