//! Microsoft's "HTTPS endpoint" lead destination posts JSON instead of writing
//! a table row. It is turned into the row Microsoft would have written so that
//! both destinations share one path from the lead table on.

use std::borrow::Cow;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

use super::customer::{get_ci, value_text, KEYS};
use super::fit::{fit_members, fit_text, MAX_PROPERTY_UTF16};
use super::{LeadJsonError, LeadRow};
use crate::json_text;

impl LeadRow {
    /// Builds the row for a posted lead. The RowKey is a hash of the content,
    /// so a lead posted twice (Microsoft retries) lands on the same RowKey.
    pub fn from_endpoint_json(
        body: &str,
        received_at: OffsetDateTime,
    ) -> Result<LeadRow, LeadJsonError> {
        // The error's own text names only line and column, never content.
        // Half an emoji (a lone surrogate escape) reads as U+FFFD.
        let value: Value = serde_json::from_str(&json_text::repair(body))
            .map_err(|e| LeadJsonError::Syntax(e.to_string()))?;
        let object = value.as_object().ok_or(LeadJsonError::NotAnObject)?;
        let field = |key: &str| get_ci(object, key);
        if ["UserDetails", "LeadSource", "ActionCode", "OfferTitle"]
            .iter()
            .all(|key| field(key).is_none())
        {
            return Err(LeadJsonError::NotALead);
        }

        let details = field("UserDetails");
        let mut members = match details {
            Some(Value::Object(details)) => Some(customer_members(details)),
            _ => None,
        };
        let customer_info = match &members {
            Some(members) => members_json(members),
            // Kept as text: the lead is still alerted, with a parse warning.
            None => details.and_then(value_text),
        };
        let text = |key: &str| field(key).and_then(value_text);
        let action_code = text("ActionCode");
        let offer_title = text("OfferTitle");
        let lead_source = match (text("LeadSource"), &action_code) {
            (Some(source), Some(action)) if !source.contains(['-', '|']) => {
                Some(match &offer_title {
                    Some(offer) => format!("{source}-{action}|{offer}"),
                    None => format!("{source}-{action}"),
                })
            }
            (source, _) => source,
        };
        let description = text("Description");

        let content = serde_json::json!([
            customer_info,
            lead_source,
            action_code,
            offer_title,
            description
        ]);
        let row_key = hex::encode(Sha256::digest(content.to_string().as_bytes()));
        let received_utc = received_at.to_offset(UtcOffset::UTC);
        // Keyed by the whole content above; stored with each field within
        // what a Table storage property holds, so the row is always stored.
        let fit = |text: Option<String>| {
            text.map(|t| match fit_text(&t, MAX_PROPERTY_UTF16) {
                Cow::Borrowed(_) => t,
                Cow::Owned(cut) => cut,
            })
        };
        let customer_info = match members.as_mut() {
            Some(members) => {
                fit_members(members, MAX_PROPERTY_UTF16);
                members_json(members)
            }
            None => fit(customer_info),
        };
        Ok(LeadRow {
            partition_key: partition_key(received_utc),
            row_key,
            timestamp: None,
            action_code: fit(action_code),
            created_time: received_utc.format(&Rfc3339).ok(),
            customer_info,
            description: fit(description),
            lead_source: fit(lead_source),
            offer_display_name: fit(offer_title),
        })
    }

    /// This posted lead as a post received one day earlier stored it: the
    /// place to look for it when a post may be Partner Center's retry from
    /// before midnight UTC (the partition is the day a post is received).
    pub fn posted_day_before(&self, received_at: OffsetDateTime) -> LeadRow {
        let day_before = received_at.to_offset(UtcOffset::UTC) - time::Duration::DAY;
        LeadRow {
            partition_key: partition_key(day_before),
            ..self.clone()
        }
    }
}

/// The details that are set, with Microsoft's key names, in its order.
fn customer_members(details: &Map<String, Value>) -> Vec<(&'static str, String)> {
    KEYS.iter()
        .filter_map(|key| Some((*key, get_ci(details, key).and_then(value_text)?)))
        .collect()
}

/// The details as compact JSON; `None` when no detail is set.
fn members_json(members: &[(&str, String)]) -> Option<String> {
    let entries: Vec<String> = members
        .iter()
        .map(|(key, value)| format!("{}:{}", Value::from(*key), Value::from(value.as_str())))
        .collect();
    (!entries.is_empty()).then(|| format!("{{{}}}", entries.join(",")))
}

/// Microsoft's PartitionKey form: `M/d/yyyy` with `/` written as `:2F`.
fn partition_key(at: OffsetDateTime) -> String {
    format!("{}:2F{}:2F{}", u8::from(at.month()), at.day(), at.year())
}
