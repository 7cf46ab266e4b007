//! The `lead.created` and `lead.taken` events the signed webhook posts: a documented,
//! versioned schema for machines (CRMs, Power Automate, Zapier, n8n).
//!
//! Version 1 (README, "Signed webhook"): every key is always present, `null`
//! when unknown; texts are as Microsoft wrote them, sanitised like every
//! channel's (`text::one_line`; descriptions keep their line breaks), cut at
//! [`MAX_TEXT`] characters (descriptions at [`MAX_DESCRIPTION`]) so an event
//! stays well under 20 KB. Lead keys are never changed: they name the row. New keys may be added within a version; renaming
//! or removing one makes a new `schema_version`.

use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::lead::Lead;
use crate::text::{multi_line, one_line, truncate};

pub const EVENT_TYPE: &str = "lead.created";
/// Someone took the lead through its "I'll take it" link.
pub const TAKEN_TYPE: &str = "lead.taken";
pub const SCHEMA_VERSION: u32 = 1;
pub const MAX_TEXT: usize = 500;
pub const MAX_DESCRIPTION: usize = 8_000;

#[derive(Debug, Serialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// When the lead was written to the lead table (RFC 3339); for a lead
    /// alerted as it is posted (no table timestamp yet), when this attempt
    /// was made. Receivers deduplicate by `webhook-id`, which never changes.
    pub timestamp: String,
    pub data: LeadData,
}

#[derive(Debug, Serialize)]
pub struct LeadData {
    pub schema_version: u32,
    /// The lead's row in the lead table: its identity.
    pub lead_keys: LeadKeys,
    pub offer: Offer,
    pub source: Coded,
    pub action: Coded,
    /// `LeadSource` as written, e.g. `SPZA-PLT|contoso.crm`.
    pub lead_source: Option<String>,
    pub customer: Customer,
    /// Set when `CustomerInfo` could not be read; `customer_raw` is its text.
    pub customer_warning: Option<String>,
    pub customer_raw: Option<String>,
    pub description: Option<String>,
    /// `CreatedTime` as Microsoft wrote it (format undocumented).
    pub created_time: Option<String>,
    /// The row's `Timestamp` (RFC 3339); `null` for leads posted in real time.
    pub received_at: Option<String>,
    /// The lead's "I'll take it" link (the same in every alert of it);
    /// `null` when take links are off. Added within version 1.
    pub take_url: Option<String>,
}

/// `lead.taken`: who took which lead, and the lead's offer and action so a
/// CRM can assign the owner without looking the lead up. Same version
/// rules as `lead.created`.
#[derive(Debug, Serialize)]
pub struct TakenEvent {
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// When the lead was taken (RFC 3339).
    pub timestamp: String,
    pub data: TakenData,
}

#[derive(Debug, Serialize)]
pub struct TakenData {
    pub schema_version: u32,
    pub lead_keys: LeadKeys,
    pub offer: Offer,
    pub source: Coded,
    pub action: Coded,
    /// The name the taker gave, or their sign-in name.
    pub taken_by: String,
    pub taken_at: String,
    pub take_url: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct LeadKeys {
    pub partition_key: String,
    pub row_key: String,
}

#[derive(Debug, Serialize)]
pub struct Offer {
    /// `publisherid.offerid`.
    pub id: Option<String>,
    pub name: Option<String>,
}

/// A code as Microsoft writes it (`SPZA`, `PLT`) and its words (`AppSource`,
/// `Contact me`); `code` is `null` when unknown.
#[derive(Debug, Serialize)]
pub struct Coded {
    pub code: Option<String>,
    pub name: String,
}

#[derive(Debug, Serialize)]
pub struct Customer {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub country: Option<String>,
    pub company: Option<String>,
    pub title: Option<String>,
}

/// Lead text sanitised by `clean`, `None` when nothing is left, capped.
fn capped(value: &Option<String>, max: usize, clean: fn(&str) -> String) -> Option<String> {
    value
        .as_deref()
        .map(clean)
        .filter(|v| !v.is_empty())
        .map(|v| truncate(&v, max))
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn text(v: &Option<String>) -> Option<String> {
    capped(v, MAX_TEXT, one_line)
}

/// The keys, offer, source and action every lead event carries.
fn identity(lead: &Lead) -> (LeadKeys, Offer, Coded, Coded) {
    let code = |c: &str| capped(&Some(c.to_owned()), MAX_TEXT, one_line);
    let name = |n: &str| truncate(&one_line(n), MAX_TEXT);
    (
        LeadKeys {
            partition_key: lead.key.partition_key.clone(),
            row_key: lead.key.row_key.clone(),
        },
        Offer {
            id: text(&lead.offer_id),
            name: text(&lead.offer_name),
        },
        Coded {
            code: code(lead.source.code()),
            name: name(lead.source.wording()),
        },
        Coded {
            code: code(lead.action.code()),
            name: name(lead.action.wording()),
        },
    )
}

impl TakenEvent {
    /// `lead` taken by `by` at `at`.
    pub fn lead_taken(lead: &Lead, by: &str, at: OffsetDateTime) -> TakenEvent {
        let (lead_keys, offer, source, action) = identity(lead);
        TakenEvent {
            kind: TAKEN_TYPE,
            timestamp: rfc3339(at),
            data: TakenData {
                schema_version: SCHEMA_VERSION,
                lead_keys,
                offer,
                source,
                action,
                taken_by: truncate(&one_line(by), MAX_TEXT),
                taken_at: rfc3339(at),
                take_url: lead.take_url.clone(),
            },
        }
    }
}

impl Event {
    /// The event for `lead`; `now` stands in for leads without a table timestamp.
    pub fn lead_created(lead: &Lead, now: OffsetDateTime) -> Event {
        let long = |v: &Option<String>| capped(v, MAX_DESCRIPTION, multi_line);
        let c = &lead.customer;
        let (lead_keys, offer, source, action) = identity(lead);
        Event {
            kind: EVENT_TYPE,
            timestamp: rfc3339(lead.timestamp.unwrap_or(now)),
            data: LeadData {
                schema_version: SCHEMA_VERSION,
                lead_keys,
                offer,
                source,
                action,
                lead_source: text(&lead.lead_source_raw),
                customer: Customer {
                    first_name: text(&c.first_name),
                    last_name: text(&c.last_name),
                    email: text(&c.email),
                    phone: text(&c.phone),
                    country: text(&c.country),
                    company: text(&c.company),
                    title: text(&c.title),
                },
                customer_warning: text(&lead.customer_warning),
                customer_raw: long(&lead.customer_raw),
                description: long(&lead.description),
                created_time: text(&lead.created_time),
                received_at: lead.timestamp.map(rfc3339),
                take_url: lead.take_url.clone(),
            },
        }
    }
}
