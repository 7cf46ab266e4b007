//! Customer history: which earlier leads a customer sent, so an alert can say
//! "returning customer" and list them, and a double click is folded as a
//! repeat instead of alerted twice.
//!
//! A customer is their email address, trimmed and lowercased; leads without
//! one are never grouped. The state table keeps one compact record per
//! customer ([`store`]), keyed by a hash of the address: neither the address
//! nor a name is ever stored or logged.

mod run;
mod store;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

pub use run::RunHistory;
pub use store::{HistoryStore, Stored};

use crate::lead::{Action, Lead, LeadKey};
pub use crate::lead::{History, Offers, PastLead};
use crate::storage::{format_timestamp, parse_timestamp};

/// Earlier leads kept per customer; older ones are only counted.
pub const KEPT: usize = 20;

/// A customer's identity: the SHA-256 of their normalised address. Kept as
/// bytes (a run's book holds one per customer), shown as hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CustomerId([u8; 32]);

impl CustomerId {
    /// `None` for a blank address: such leads are never grouped.
    pub fn from_email(email: &str) -> Option<CustomerId> {
        let normal = email.trim().to_lowercase();
        if normal.is_empty() {
            return None;
        }
        let mut hash = Sha256::new();
        // A label, so the value is not the bare SHA-256 of an address that
        // other systems may also store.
        hash.update(b"lead-notifier customer\n");
        hash.update(normal.as_bytes());
        Some(CustomerId(hash.finalize().into()))
    }

    /// The customer a lead belongs to, if it carries an address.
    pub fn of(lead: &Lead) -> Option<CustomerId> {
        lead.customer
            .email
            .as_deref()
            .and_then(CustomerId::from_email)
    }

    /// The id a record's row key spells (`None`: not one of ours).
    pub fn from_hex(text: &str) -> Option<CustomerId> {
        let mut bytes = [0; 32];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(CustomerId(bytes))
    }

    /// Hex text: safe as a table key and in logs.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// The histories of the customers a run has looked up, with the leads the
/// run has added since.
#[derive(Debug, Default)]
pub struct Book {
    customers: HashMap<CustomerId, Stored>,
    offers: Offers,
}

impl Book {
    pub fn new(found: HashMap<CustomerId, Stored>) -> Book {
        Book {
            customers: found,
            offers: Offers::default(),
        }
    }

    /// Whether `id` has been looked up (or added) already.
    pub fn knows(&self, id: &CustomerId) -> bool {
        self.customers.contains_key(id)
    }

    /// Adds looked-up records of customers not yet in the book.
    pub fn extend(&mut self, found: HashMap<CustomerId, Stored>) {
        for (id, stored) in found {
            self.customers.entry(id).or_insert(stored);
        }
    }

    /// The customer's leads before this one (never the lead itself, so a
    /// retried lead is not its own history).
    pub fn history(&self, id: &CustomerId, lead: &Lead, at: OffsetDateTime) -> History {
        let Some(stored) = self.customers.get(id) else {
            return History::default();
        };
        let mut earlier: Vec<PastLead> = stored
            .leads
            .iter()
            .filter(|p| p.key != lead.key && p.before(at, &lead.key))
            .cloned()
            .collect();
        earlier.sort_by(|a, b| b.order().cmp(&a.order()));
        // Leads dropped from the record for space are older than all kept
        // ones, so they are earlier than this lead too.
        let dropped = stored.total.saturating_sub(stored.leads.len());
        History {
            earlier,
            more: dropped,
            taken: Vec::new(),
        }
    }

    /// Whether the lead repeats an earlier one of the same customer, offer
    /// and action within `window` (zero: folding is off).
    pub fn is_repeat(
        &self,
        id: &CustomerId,
        lead: &Lead,
        at: OffsetDateTime,
        window: Duration,
    ) -> bool {
        if window.is_zero() {
            return false;
        }
        let Some(stored) = self.customers.get(id) else {
            return false;
        };
        stored.leads.iter().any(|p| {
            p.key != lead.key && p.before(at, &lead.key) && at - p.at <= window && p.same_step(lead)
        })
    }

    /// Records the lead in the customer's history (once: by key). Returns
    /// whether that changed anything.
    pub fn add(&mut self, id: &CustomerId, lead: &Lead, at: OffsetDateTime) -> bool {
        let past = PastLead::of(lead, at, &mut self.offers);
        self.customers.entry(*id).or_default().add(past)
    }

    pub fn get(&self, id: &CustomerId) -> Option<&Stored> {
        self.customers.get(id)
    }
}

/// The stored form of one earlier lead: short names keep the record small.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Compact {
    /// PartitionKey, RowKey.
    k: (String, String),
    /// Action code.
    a: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    o: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    n: Option<String>,
    t: String,
}

impl From<&PastLead> for Compact {
    fn from(p: &PastLead) -> Compact {
        Compact {
            k: (p.key.partition_key.clone(), p.key.row_key.clone()),
            a: p.action.code().to_owned(),
            o: p.offer_id.as_deref().map(str::to_owned),
            n: p.offer_name.as_deref().map(str::to_owned),
            t: format_timestamp(p.at),
        }
    }
}

impl Compact {
    fn into_past(self) -> Option<PastLead> {
        Some(PastLead {
            key: LeadKey {
                partition_key: self.k.0,
                row_key: self.k.1,
            },
            action: Action::parse(&self.a),
            offer_id: self.o.map(Arc::from),
            offer_name: self.n.map(Arc::from),
            at: parse_timestamp(&self.t)?,
        })
    }
}

/// Stored text of a customer's kept leads.
fn encode(leads: &[PastLead]) -> String {
    let compact: Vec<Compact> = leads.iter().map(Compact::from).collect();
    serde_json::to_string(&compact).unwrap_or_else(|_| "[]".to_owned())
}

/// Reads the stored text; entries that cannot be read are dropped, so a
/// damaged record costs history, never a lead.
fn decode(text: &str) -> Vec<PastLead> {
    serde_json::from_str::<Vec<serde_json::Value>>(text)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|v| serde_json::from_value::<Compact>(v).ok())
        .filter_map(Compact::into_past)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lead::LeadRow;
    use time::macros::datetime;

    fn lead(rk: &str, email: &str, action: &str, offer: &str) -> Lead {
        Lead::from_row(&LeadRow {
            partition_key: "p".into(),
            row_key: rk.into(),
            customer_info: Some(format!(r#"{{"Email":"{email}"}}"#)),
            lead_source: Some(format!("SPZA-{action}|{offer}")),
            offer_display_name: Some("Contoso CRM".into()),
            ..LeadRow::default()
        })
    }

    #[test]
    fn identity_ignores_case_and_spaces_and_hides_the_address() {
        let a = CustomerId::from_email(" Jane.Doe@Contoso.com ").unwrap();
        let b = CustomerId::from_email("jane.doe@contoso.com").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_hex().len(), 64);
        assert!(!a.to_hex().contains("jane"));
        assert_eq!(CustomerId::from_hex(&a.to_hex()), Some(a));
        assert_eq!(CustomerId::from_hex("not hex"), None);
        assert_ne!(a, CustomerId::from_email("john@contoso.com").unwrap());
        assert_eq!(CustomerId::from_email("  "), None);
        assert_eq!(CustomerId::of(&lead("r", "", "PLT", "o")), None);
    }

    #[test]
    fn history_lists_earlier_leads_newest_first_never_the_lead_itself() {
        let t0 = datetime!(2026-11-20 10:00 UTC);
        let first = lead("r1", "jane@contoso.com", "INS", "contoso.crm");
        let second = lead("r2", "JANE@contoso.com", "PLT", "contoso.crm");
        let id = CustomerId::of(&first).unwrap();
        let mut book = Book::default();
        assert!(!book.history(&id, &first, t0).is_returning());
        assert!(book.add(&id, &first, t0));
        assert!(!book.add(&id, &first, t0), "added once");
        let t1 = t0 + Duration::from_secs(3 * 86_400);
        assert!(book.add(&id, &second, t1));
        // A retry of the first lead sees neither itself nor the later one.
        assert!(!book.history(&id, &first, t0).is_returning());
        let h = book.history(&id, &second, t1);
        assert_eq!(h.earlier.len(), 1);
        assert_eq!(h.earlier[0].key.row_key, "r1");
        assert_eq!(h.earlier[0].action, Action::Install);
    }

    #[test]
    fn repeats_are_the_same_offer_and_action_within_the_window() {
        let t0 = datetime!(2026-11-20 10:00 UTC);
        let day = Duration::from_secs(86_400);
        let first = lead("r1", "jane@contoso.com", "PLT", "contoso.crm");
        let id = CustomerId::of(&first).unwrap();
        let mut book = Book::default();
        book.add(&id, &first, t0);
        let again = lead("r2", "jane@contoso.com", "PLT", "contoso.crm");
        let t1 = t0 + Duration::from_secs(60);
        assert!(book.is_repeat(&id, &again, t1, day));
        assert!(!book.is_repeat(&id, &again, t1, Duration::ZERO), "0 is off");
        assert!(!book.is_repeat(&id, &again, t0 + 2 * day, day), "outside");
        assert!(!book.is_repeat(&id, &first, t0, day), "not its own repeat");
        let progress = lead("r3", "jane@contoso.com", "INS", "contoso.crm");
        assert!(!book.is_repeat(&id, &progress, t1, day));
        let other_offer = lead("r4", "jane@contoso.com", "PLT", "contoso.erp");
        assert!(!book.is_repeat(&id, &other_offer, t1, day));
        // The later lead, recorded by a crashed run, does not make the
        // earlier one a repeat when it is retried.
        book.add(&id, &again, t1);
        assert!(!book.is_repeat(&id, &first, t0, day));
    }

    #[test]
    fn records_keep_the_newest_and_count_the_rest() {
        let t0 = datetime!(2026-11-20 10:00 UTC);
        let mut stored = Stored::default();
        for i in 0..(KEPT + 5) {
            let l = lead(&format!("r{i:03}"), "jane@contoso.com", "PLT", "o");
            let at = t0 + Duration::from_secs(i as u64);
            stored.add(PastLead::of(&l, at, &mut Offers::default()));
        }
        assert_eq!(stored.leads.len(), KEPT);
        assert_eq!(stored.total, KEPT + 5);
        let round = decode(&encode(&stored.leads));
        assert_eq!(round, stored.leads);
        assert!(stored
            .leads
            .iter()
            .all(|p| p.key.row_key.as_str() >= "r005"));
        let latest = lead("r999", "jane@contoso.com", "PLT", "o");
        let mut book = Book::default();
        let id = CustomerId::of(&latest).unwrap();
        book.customers.insert(id, stored);
        let h = book.history(&id, &latest, t0 + Duration::from_secs(3600));
        assert_eq!((h.earlier.len(), h.more), (KEPT, 5));
        assert_eq!(h.earlier[0].key.row_key, "r024");
    }

    #[test]
    fn damaged_records_lose_entries_not_runs() {
        assert!(decode("not json").is_empty());
        let text = r#"[{"k":["p","r"],"a":"PLT","t":"2026-11-20T10:00:00.0000000Z"},{"x":1},{"k":["p","s"],"a":"INS","t":"yesterday"}]"#;
        let leads = decode(text);
        assert_eq!(leads.len(), 1);
        assert_eq!(leads[0].action, Action::ContactMe);
    }
}
