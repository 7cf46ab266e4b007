//! The request and answer bodies of the endpoints used, as HubSpot's CRM
//! reference documents them, and what this product writes into them: the
//! contact's properties and the note.

use std::collections::BTreeMap;

use maud::html;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::lead::Lead;
use crate::text::{self, Limits};

/// What a contact is read with: the properties this product fills (read
/// to know which are empty; `email` identifies the contact), and its
/// secondary addresses (`;`-separated), by which HubSpot finds it as well.
pub const CONTACT_READ: [&str; 9] = [
    "email",
    "firstname",
    "lastname",
    "company",
    "jobtitle",
    "phone",
    "country",
    "lifecyclestage",
    "hs_additional_emails",
];

/// HubSpot's documented limit of `hs_note_body`, in characters.
pub const MAX_NOTE_CHARS: usize = 65_536;

/// Association type of a note to a contact (HubSpot defined).
pub const NOTE_TO_CONTACT: u32 = 202;

/// `{"inputs": [...]}` and, for reads, what to read.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchRead<'a> {
    /// `None`: the inputs are record ids.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_property: Option<&'static str>,
    pub properties: &'a [&'static str],
    pub inputs: Vec<Id>,
}

/// A record named by id; `after` continues a paged association read.
#[derive(Debug, Serialize)]
pub struct Id {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Inputs<T> {
    pub inputs: Vec<T>,
}

/// One contact of a batch upsert by email.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Upsert {
    pub id: String,
    pub id_property: &'static str,
    pub properties: BTreeMap<&'static str, String>,
}

/// One note of a batch create, associated to its contact.
#[derive(Debug, Serialize)]
pub struct NoteInput {
    pub properties: BTreeMap<&'static str, String>,
    pub associations: Vec<Value>,
}

/// A batch answer (200, 201 or 207): the records, and on 207 the errors.
#[derive(Debug, Default, Deserialize)]
pub struct BatchAnswer {
    #[serde(default)]
    pub results: Vec<Record>,
    #[serde(default)]
    pub errors: Vec<Value>,
}

/// One CRM record as answered.
#[derive(Debug, Default, Deserialize)]
pub struct Record {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub properties: BTreeMap<String, Option<String>>,
}

impl Record {
    /// A contact's addresses, lowercase: the primary one first, then the
    /// secondary ones.
    pub fn addresses(&self) -> Vec<String> {
        let secondary = self.value("hs_additional_emails").unwrap_or_default();
        self.value("email")
            .into_iter()
            .chain(secondary.split(';'))
            .map(|a| a.trim().to_lowercase())
            .filter(|a| !a.is_empty())
            .collect()
    }

    /// A property's value, `None` when missing or blank.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.properties
            .get(name)
            .and_then(|v| v.as_deref())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    }
}

/// An associations batch read answer: per contact, the notes on it.
#[derive(Debug, Default, Deserialize)]
pub struct Associations {
    #[serde(default)]
    pub results: Vec<Associated>,
}

#[derive(Debug, Deserialize)]
pub struct Associated {
    pub from: From,
    #[serde(default)]
    pub to: Vec<To>,
    #[serde(default)]
    pub paging: Option<Paging>,
}

#[derive(Debug, Deserialize)]
pub struct From {
    pub id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct To {
    /// A number in HubSpot's reference; read either way.
    pub to_object_id: IdText,
}

/// An id HubSpot may write as a number or as text.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum IdText {
    Number(u64),
    Text(String),
}

impl std::fmt::Display for IdText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IdText::Number(n) => write!(f, "{n}"),
            IdText::Text(t) => f.write_str(t),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct Paging {
    pub next: Option<Next>,
}

#[derive(Debug, Deserialize)]
pub struct Next {
    pub after: String,
}

/// The contact properties a lead gives, sanitised and capped: every one it
/// has, and lifecycle stage `lead`.
pub fn contact_properties(lead: &Lead) -> BTreeMap<&'static str, String> {
    let c = &lead.customer;
    let mut properties = BTreeMap::new();
    for (name, value) in [
        ("firstname", &c.first_name),
        ("lastname", &c.last_name),
        ("company", &c.company),
        ("jobtitle", &c.title),
        ("phone", &c.phone),
        ("country", &c.country),
    ] {
        let value = value.as_deref().map(text::one_line).unwrap_or_default();
        if !value.is_empty() {
            properties.insert(name, text::truncate(&value, 255));
        }
    }
    properties.insert("lifecyclestage", "lead".to_owned());
    properties
}

/// The lead's email address as HubSpot keys contacts (lowercase), when it
/// looks like one.
pub fn email_of(lead: &Lead) -> Option<String> {
    let email = text::one_line(lead.customer.email.as_deref()?);
    text::looks_like_email(&email).then(|| email.to_lowercase())
}

/// The note: a heading, every field of the lead, the customer's earlier
/// leads, and the marker that finds it again. HTML, all lead text escaped.
pub fn note_body(lead: &Lead, marker: &str, test: bool) -> String {
    let limits = Limits {
        field: 500,
        long: 8_000,
    };
    let fields = text::fields(lead, limits);
    let history = text::history(lead, text::HISTORY_SHOWN);
    let heading = if test {
        "TEST from lead-notifier test-alert: not a real lead".to_owned()
    } else {
        format!(
            "Marketplace lead: {}",
            text::truncate(&text::activity(lead), 200)
        )
    };
    let body = html! {
        p { strong { (heading) } }
        ul {
            @for field in &fields {
                li { (field.label) ": " (field.value) }
            }
        }
        @if let Some(history) = &history {
            p { (history.status) }
            @if !history.earlier.is_empty() {
                ul {
                    @for line in &history.earlier { li { (line) } }
                    @if let Some(more) = &history.more { li { (more) } }
                }
            }
        }
    }
    .into_string();
    // The marker ends the note whatever its length: cutting it would make
    // a retry miss the note and write a second one.
    let tail = html! { p { "lead-notifier ref " (marker) } }.into_string();
    let room = MAX_NOTE_CHARS.saturating_sub(tail.chars().count());
    let mut note = text::truncate(&body, room);
    note.push_str(&tail);
    note
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::sample_lead;

    #[test]
    fn note_escapes_lead_text_and_carries_the_marker() {
        let mut lead = sample_lead();
        lead.description = Some("<script>alert(1)</script>".into());
        let body = note_body(&lead, "leadnotifier0123", false);
        assert!(!body.contains("<script>"), "{body}");
        assert!(body.contains("&lt;script&gt;"), "{body}");
        assert!(
            body.contains("lead-notifier ref leadnotifier0123"),
            "{body}"
        );
        assert!(body.chars().count() <= MAX_NOTE_CHARS);
    }

    #[test]
    fn the_longest_note_keeps_its_marker() {
        // Every field at its cap, of a character HTML escapes five times
        // over: the note is cut, never the marker its retry looks for.
        let mut lead = sample_lead();
        let long = |n: usize| Some("&".repeat(n));
        lead.description = long(20_000);
        lead.customer.first_name = long(600);
        lead.customer.last_name = long(600);
        lead.customer.company = long(600);
        lead.customer.title = long(600);
        lead.customer.phone = long(600);
        lead.customer.country = long(600);
        lead.offer_name = long(600);
        lead.offer_id = long(599);
        lead.customer.email = long(600);
        lead.key.row_key = "&".repeat(600);
        lead.lead_source_raw = long(600);
        lead.created_time = long(600);
        let marker = "leadnotifier0123456789abcdef0123456789abcdef";
        let body = note_body(&lead, marker, false);
        assert!(body.chars().count() <= MAX_NOTE_CHARS);
        assert!(
            body.contains(&format!("lead-notifier ref {marker}")),
            "{}",
            &body[body.len() - 200..]
        );
    }

    #[test]
    fn contacts_get_what_the_lead_has_and_stage_lead() {
        let mut lead = sample_lead();
        lead.customer.phone = Some("  ".into());
        let properties = contact_properties(&lead);
        assert_eq!(properties["lifecyclestage"], "lead");
        assert_eq!(properties["firstname"], "Sample");
        assert!(!properties.contains_key("phone"));
        assert_eq!(email_of(&lead).as_deref(), Some("sample.lead@example.com"));
        lead.customer.email = Some("not an address".into());
        assert_eq!(email_of(&lead), None);
    }
}
