//! The lead model: one typed [`Lead`] from either a lead-table row or
//! Microsoft's HTTPS-endpoint JSON. Parsing never drops a lead: whatever could
//! not be read is kept as raw text with a warning.

mod created;
mod customer;
mod endpoint;
mod filter;
mod fit;
mod past;
mod source_code;

pub use created::{format_created_time, parse_created_time};
pub use customer::Customer;
pub use filter::{is_edu_domain, is_test_lead, Filters, SkipReason};
pub use fit::MAX_PROPERTY_UTF16;
pub use past::{History, Offers, PastLead};
pub use source_code::{parse_lead_source, Action, LeadSourceParts, Source};

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A lead's identity in the lead table. Opaque text: Microsoft's formats are
/// undocumented (PartitionKey looks like `9:2F28:2F2018`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LeadKey {
    pub partition_key: String,
    pub row_key: String,
}

impl std::fmt::Display for LeadKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.partition_key, self.row_key)
    }
}

/// A lead-table row exactly as Microsoft writes it. Every column may be
/// missing or empty; all are strings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LeadRow {
    pub partition_key: String,
    pub row_key: String,
    /// System timestamp; only present on rows read back from storage.
    #[serde(default, skip_serializing)]
    pub timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_info: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lead_source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer_display_name: Option<String>,
}

impl LeadRow {
    /// The row's identity in the lead table.
    pub fn key(&self) -> LeadKey {
        LeadKey {
            partition_key: self.partition_key.clone(),
            row_key: self.row_key.clone(),
        }
    }
}

/// A parsed lead. Optional text fields are `None` when missing or blank.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lead {
    pub key: LeadKey,
    /// The row's system `Timestamp` (when it was written to the table).
    #[serde(with = "time::serde::rfc3339::option")]
    pub timestamp: Option<OffsetDateTime>,
    /// `CreatedTime` as Microsoft wrote it (format undocumented).
    pub created_time: Option<String>,
    pub customer: Customer,
    /// Set when `CustomerInfo` could not be read; the raw text is in
    /// `customer_raw` and the lead is still alerted.
    pub customer_warning: Option<String>,
    pub customer_raw: Option<String>,
    pub source: Source,
    pub action: Action,
    /// `publisherid.offerid` from `LeadSource`.
    pub offer_id: Option<String>,
    /// `OfferDisplayName` (table) or `OfferTitle` (HTTPS endpoint).
    pub offer_name: Option<String>,
    pub description: Option<String>,
    /// `LeadSource` as written, kept for display and filtering.
    pub lead_source_raw: Option<String>,
    /// The customer's earlier leads, filled in by the pipeline; `None` when
    /// unknown (no email address, or not looked up).
    pub history: Option<History>,
    /// The "I'll take it" link, filled in by the pipeline when take links
    /// are on (`PUBLIC_URL`, `TAKE_LINK_SECRET`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub take_url: Option<String>,
}

/// Why an HTTPS-endpoint body is not a lead.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LeadJsonError {
    #[error("the body is not valid JSON: {0}")]
    Syntax(String),
    #[error("the body is not a JSON object")]
    NotAnObject,
    #[error("the body has none of UserDetails, LeadSource, ActionCode, OfferTitle: not a marketplace lead")]
    NotALead,
}

impl Lead {
    /// Reads a row. Never fails: unreadable parts become warnings or `None`.
    pub fn from_row(row: &LeadRow) -> Lead {
        let blank_free = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
        };
        let lead_source_raw = blank_free(&row.lead_source);
        let parts = lead_source_raw
            .as_deref()
            .map(parse_lead_source)
            .unwrap_or(LeadSourceParts {
                source: Source::Unknown,
                action: None,
                offer_id: None,
            });
        let action = parts.action.unwrap_or_else(|| {
            blank_free(&row.action_code)
                .map(|code| Action::parse(&code))
                .unwrap_or(Action::Unknown)
        });
        let customer_info = blank_free(&row.customer_info);
        let (customer, customer_warning) = match customer_info.as_deref().map(Customer::parse_info)
        {
            None => (Customer::default(), None),
            Some(Ok(customer)) => (customer, None),
            Some(Err(warning)) => (Customer::default(), Some(warning)),
        };
        Lead {
            key: row.key(),
            timestamp: row
                .timestamp
                .as_deref()
                .and_then(|t| OffsetDateTime::parse(t.trim(), &Rfc3339).ok()),
            created_time: blank_free(&row.created_time),
            customer,
            customer_raw: customer_warning.as_ref().and(customer_info),
            customer_warning,
            source: parts.source,
            action,
            offer_id: parts.offer_id,
            offer_name: blank_free(&row.offer_display_name),
            description: blank_free(&row.description),
            lead_source_raw,
            history: None,
            take_url: None,
        }
    }

    /// "Jane Doe", or whichever name part is known.
    pub fn display_name(&self) -> Option<String> {
        self.customer.full_name()
    }

    /// One line for alerts, e.g. `"Contact me" request on AppSource`.
    pub fn activity(&self) -> String {
        source_code::activity(&self.source, &self.action)
    }

    /// The offer's display name, else its id, else "unknown offer".
    pub fn offer_label(&self) -> String {
        self.offer_name
            .clone()
            .or_else(|| self.offer_id.clone())
            .unwrap_or_else(|| "unknown offer".to_owned())
    }
}
