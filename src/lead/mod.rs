//! The lead model: one typed [`Lead`] from either a lead-table row or
//! Microsoft's HTTPS-endpoint JSON. Parsing never drops a lead: whatever could
//! not be read is kept as raw text with a warning.

mod customer;
mod filter;
mod source_code;

pub use customer::Customer;
pub use filter::{Filters, SkipReason};
pub use source_code::{Action, Source};

use serde::{Deserialize, Serialize};
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
