//! Microsoft's "HTTPS endpoint" lead destination posts JSON instead of writing
//! a table row. It is turned into the row Microsoft would have written so that
//! both destinations share one path from the lead table on.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

use super::customer::{get_ci, value_text, KEYS};
use super::{LeadJsonError, LeadRow};

impl LeadRow {
    /// Builds the row for a posted lead. The RowKey is a hash of the content,
    /// so a lead posted twice (Microsoft retries) lands on the same RowKey.
    pub fn from_endpoint_json(
        body: &str,
        received_at: OffsetDateTime,
    ) -> Result<LeadRow, LeadJsonError> {
        // The error's own text names only line and column, never content.
        let value: Value =
            serde_json::from_str(body).map_err(|e| LeadJsonError::Syntax(e.to_string()))?;
        let object = value.as_object().ok_or(LeadJsonError::NotAnObject)?;
        let field = |key: &str| get_ci(object, key);
        if ["UserDetails", "LeadSource", "ActionCode", "OfferTitle"]
            .iter()
            .all(|key| field(key).is_none())
        {
            return Err(LeadJsonError::NotALead);
        }

        let customer_info = field("UserDetails").and_then(|details| match details {
            Value::Object(details) => customer_info_json(details),
            // Kept as text: the lead is still alerted, with a parse warning.
            other => value_text(other),
        });
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
        Ok(LeadRow {
            partition_key: partition_key(received_utc),
            row_key,
            timestamp: None,
            action_code,
            created_time: received_utc.format(&Rfc3339).ok(),
            customer_info,
            description,
            lead_source,
            offer_display_name: offer_title,
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

/// The details as compact JSON with Microsoft's key names and order; `None`
/// when no detail is set.
fn customer_info_json(details: &Map<String, Value>) -> Option<String> {
    let entries: Vec<String> = KEYS
        .iter()
        .filter_map(|key| {
            let value = get_ci(details, key).and_then(value_text)?;
            Some(format!("{}:{}", Value::from(*key), Value::from(value)))
        })
        .collect();
    (!entries.is_empty()).then(|| format!("{{{}}}", entries.join(",")))
}

/// Microsoft's PartitionKey form: `M/d/yyyy` with `/` written as `:2F`.
fn partition_key(at: OffsetDateTime) -> String {
    format!("{}:2F{}:2F{}", u8::from(at.month()), at.day(), at.year())
}
