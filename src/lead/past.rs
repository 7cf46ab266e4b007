//! What an alert says about a customer's earlier leads: the data a [`Lead`]
//! carries. Finding and storing them is `history`'s work.

use std::collections::HashSet;
use std::sync::Arc;

use serde::Serialize;
use time::OffsetDateTime;

use super::{Action, Lead, LeadKey};

/// Offer names longer than this are cut in the stored record.
const OFFER_NAME_MAX: usize = 100;

/// One earlier lead of a customer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PastLead {
    pub key: LeadKey,
    pub action: Action,
    /// Shared: a publisher has a handful of offers and a run thousands of
    /// leads (see [`Offers`]).
    pub offer_id: Option<Arc<str>>,
    pub offer_name: Option<Arc<str>>,
    /// When the lead was written (its row's `Timestamp`).
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

impl PastLead {
    pub fn of(lead: &Lead, at: OffsetDateTime, offers: &mut Offers) -> PastLead {
        PastLead {
            key: lead.key.clone(),
            action: lead.action.clone(),
            offer_id: lead.offer_id.as_deref().map(|id| offers.share(id)),
            offer_name: lead.offer_name.as_deref().map(|name| {
                let end = name
                    .char_indices()
                    .nth(OFFER_NAME_MAX)
                    .map_or(name.len(), |(i, _)| i);
                offers.share(&name[..end])
            }),
            at,
        }
    }

    /// Same offer (by id, else by name) and the same action.
    pub(crate) fn same_step(&self, lead: &Lead) -> bool {
        let offer = match (&self.offer_id, &lead.offer_id) {
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
            (None, None) => self.offer_name.as_deref() == lead.offer_name.as_deref(),
            _ => false,
        };
        offer && self.action == lead.action
    }

    /// Before `other` in time; leads written in the same instant go by key,
    /// so every run orders them the same way.
    pub(crate) fn before(&self, at: OffsetDateTime, key: &LeadKey) -> bool {
        (self.at, &self.key) < (at, key)
    }

    /// The order the leads happened in.
    pub(crate) fn order(&self) -> (OffsetDateTime, &LeadKey) {
        (self.at, &self.key)
    }
}

/// What an alert says about the customer: no earlier lead (new customer) or
/// the earlier ones, newest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct History {
    /// Newest first, at most `history::KEPT`.
    pub earlier: Vec<PastLead>,
    /// Earlier leads beyond `earlier`, only counted.
    pub more: usize,
    /// Who took which of `earlier` with the "I'll take it" link, when
    /// take links are on.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub taken: Vec<(LeadKey, String)>,
}

impl History {
    pub fn is_returning(&self) -> bool {
        !self.earlier.is_empty() || self.more > 0
    }

    pub fn total(&self) -> usize {
        self.earlier.len() + self.more
    }

    /// Who took the earlier lead `key`, if anyone.
    pub fn taken_by(&self, key: &LeadKey) -> Option<&str> {
        self.taken
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, by)| by.as_str())
    }
}

/// Offer ids and names, each held once however many leads name it.
#[derive(Debug, Default)]
pub struct Offers(HashSet<Arc<str>>);

impl Offers {
    pub fn share(&mut self, text: &str) -> Arc<str> {
        if let Some(shared) = self.0.get(text) {
            return Arc::clone(shared);
        }
        let shared: Arc<str> = Arc::from(text);
        self.0.insert(Arc::clone(&shared));
        shared
    }
}
