//! A message about the lead flow rather than one lead: the periodic summary
//! and the lead-flow health notes. Whoever makes one renders it for every
//! kind of channel (the notifiers only send what they are handed), and puts
//! nothing personal in it: offers, counts and times only.

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
}
