//! Destination ids: a channel kind plus an optional name (`email`,
//! `email:emea`, `teams:crm`, `slack`, `webhook:crm`). The id is part of every
//! ledger key, so the unnamed ids are exactly today's channel names and the
//! text form never changes.

use std::fmt;
use std::sync::Arc;

/// The integrations there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Email,
    Teams,
    Slack,
    Webhook,
    Outbox,
    HubSpot,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Email,
        Kind::Teams,
        Kind::Slack,
        Kind::Webhook,
        Kind::Outbox,
        Kind::HubSpot,
    ];

    /// The settings that turn the unnamed destination of this kind on, as
    /// error messages and `check` name them.
    pub fn turned_on_by(self) -> &'static str {
        match self {
            Kind::Email => "SMTP_HOST or EMAIL_VIA=graph (with EMAIL_FROM and EMAIL_TO)",
            Kind::Teams => "TEAMS_WEBHOOK_URL",
            Kind::Slack => "SLACK_WEBHOOK_URL",
            Kind::Webhook => "WEBHOOK_URL (with WEBHOOK_SECRET)",
            Kind::Outbox => "OUTBOX_DIR",
            Kind::HubSpot => "HUBSPOT_TOKEN",
        }
    }

    /// Every kind's `turned_on_by`, as a list ending in "or".
    pub fn all_settings() -> String {
        let settings: Vec<&str> = Kind::ALL.iter().map(|k| k.turned_on_by()).collect();
        match settings.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => settings.concat(),
        }
    }

    /// Whether the kind reads messages for people (a summary, a health
    /// note); machines that take one record per lead do not.
    pub fn takes_notices(self) -> bool {
        !matches!(self, Kind::Webhook | Kind::HubSpot)
    }

    /// The `ROUTE_` settings' spelling of the kind (`TEAMS`).
    pub fn setting_part(self) -> String {
        self.as_str().to_ascii_uppercase()
    }

    /// The id's first part, lowercase: never rename (ledger keys).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Email => "email",
            Kind::Teams => "teams",
            Kind::Slack => "slack",
            Kind::Webhook => "webhook",
            Kind::Outbox => "outbox",
            Kind::HubSpot => "hubspot",
        }
    }
}

/// One destination's stable id. Cheap to clone; compares by its text form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DestinationId {
    kind: Kind,
    /// Lowercase letters and digits; `None` for the unsuffixed setting.
    name: Option<Arc<str>>,
}

/// A destination name that is not letters and digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a destination name must be letters and digits, not {0:?}")]
pub struct BadName(pub String);

impl DestinationId {
    pub const EMAIL: DestinationId = DestinationId::unnamed(Kind::Email);
    pub const TEAMS: DestinationId = DestinationId::unnamed(Kind::Teams);
    pub const SLACK: DestinationId = DestinationId::unnamed(Kind::Slack);
    pub const WEBHOOK: DestinationId = DestinationId::unnamed(Kind::Webhook);
    pub const OUTBOX: DestinationId = DestinationId::unnamed(Kind::Outbox);
    pub const HUBSPOT: DestinationId = DestinationId::unnamed(Kind::HubSpot);

    pub const fn unnamed(kind: Kind) -> DestinationId {
        DestinationId { kind, name: None }
    }

    /// `name` as written in a setting suffix (`EMEA`); stored lowercased.
    pub fn named(kind: Kind, name: &str) -> Result<DestinationId, BadName> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(BadName(name.to_owned()));
        }
        Ok(DestinationId {
            kind,
            name: Some(name.to_ascii_lowercase().into()),
        })
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The lowercase name, `None` for the unsuffixed destination.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// `_EMEA` for `email:emea`, empty when unnamed: the suffix of its settings.
    pub fn setting_suffix(&self) -> String {
        self.name
            .as_deref()
            .map(|n| format!("_{}", n.to_ascii_uppercase()))
            .unwrap_or_default()
    }
}

impl fmt::Display for DestinationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.as_str())?;
        if let Some(name) = &self.name {
            write!(f, ":{name}")?;
        }
        Ok(())
    }
}

impl serde::Serialize for DestinationId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unnamed_ids_are_todays_channel_names() {
        // These strings are in every ledger key written so far.
        assert_eq!(DestinationId::EMAIL.to_string(), "email");
        assert_eq!(DestinationId::TEAMS.to_string(), "teams");
        assert_eq!(DestinationId::OUTBOX.to_string(), "outbox");
        assert_eq!(DestinationId::SLACK.to_string(), "slack");
        assert_eq!(DestinationId::WEBHOOK.to_string(), "webhook");
        assert_eq!(DestinationId::HUBSPOT.to_string(), "hubspot");
    }

    #[test]
    fn names_are_lowercased_and_checked() {
        let id = DestinationId::named(Kind::Email, "EMEA").unwrap();
        assert_eq!(id.to_string(), "email:emea");
        assert_eq!(id.setting_suffix(), "_EMEA");
        assert_eq!(
            DestinationId::named(Kind::Teams, "Crm2")
                .unwrap()
                .to_string(),
            "teams:crm2"
        );
        assert!(DestinationId::named(Kind::Teams, "a_b").is_err());
        assert!(DestinationId::named(Kind::Teams, "").is_err());
        assert!(DestinationId::named(Kind::Teams, "é").is_err());
        assert_ne!(
            DestinationId::named(Kind::Slack, "x").unwrap(),
            DestinationId::named(Kind::Webhook, "x").unwrap()
        );
    }

    #[test]
    fn serialises_as_text() {
        let id = DestinationId::named(Kind::Webhook, "CRM").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"webhook:crm\"");
    }
}
