//! Leads that are not alerted: Partner Center's test leads, `.edu` leads
//! (Microsoft shares no usable details for them) and do-not-contact leads.

use super::{Action, Lead};

/// Which leads are not alerted. All on by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filters {
    pub skip_test_leads: bool,
    pub skip_edu: bool,
    pub skip_do_not_contact: bool,
}

impl Default for Filters {
    fn default() -> Self {
        Filters {
            skip_test_leads: true,
            skip_edu: true,
            skip_do_not_contact: true,
        }
    }
}

impl Filters {
    /// Nothing is skipped.
    pub fn none() -> Self {
        Filters {
            skip_test_leads: false,
            skip_edu: false,
            skip_do_not_contact: false,
        }
    }

    /// Why `lead` is not alerted, or `None` to alert it. A test lead is
    /// reported as such even when it also looks like another kind.
    pub fn skip_reason(&self, lead: &Lead) -> Option<SkipReason> {
        if self.skip_test_leads && is_test_lead(lead) {
            Some(SkipReason::TestLead)
        } else if self.skip_edu && is_edu(lead) {
            Some(SkipReason::Edu)
        } else if self.skip_do_not_contact && lead.action == Action::DoNotContact {
            Some(SkipReason::DoNotContact)
        } else {
            None
        }
    }
}

/// Why a lead is not alerted. `as_str` values are stored in the ledger: never rename.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    TestLead,
    Edu,
    DoNotContact,
    /// The same customer, offer and action as a lead within `REPEAT_WINDOW`.
    Repeat,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::TestLead => "test_lead",
            SkipReason::Edu => "edu",
            SkipReason::DoNotContact => "do_not_contact",
            SkipReason::Repeat => "repeat",
        }
    }

    /// Words for people, e.g. in `lead-notifier` output.
    pub fn describe(self) -> &'static str {
        match self {
            SkipReason::TestLead => "Partner Center test lead",
            SkipReason::Edu => "customer from a .edu domain (Microsoft shares no contact details)",
            SkipReason::DoNotContact => "customer asked not to be contacted",
            SkipReason::Repeat => {
                "repeat of the same customer's lead for the same offer and action (REPEAT_WINDOW)"
            }
        }
    }

    /// Reads a stored `as_str` value back.
    pub fn from_code(code: &str) -> Option<SkipReason> {
        [
            SkipReason::TestLead,
            SkipReason::Edu,
            SkipReason::DoNotContact,
            SkipReason::Repeat,
        ]
        .into_iter()
        .find(|r| r.as_str() == code)
    }
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

const TEST_MARKER: &str = "msft_test";

/// Partner Center's validation lead: `MSFT_TEST` anywhere in it.
pub fn is_test_lead(lead: &Lead) -> bool {
    let marked = |text: &str| text.to_ascii_lowercase().contains(TEST_MARKER);
    lead.customer.fields().any(|(_, value)| marked(value))
        || [
            &lead.customer_raw,
            &lead.lead_source_raw,
            &lead.description,
            &lead.offer_name,
        ]
        .into_iter()
        .flatten()
        .any(|text| marked(text))
}

/// `x@stanford.edu`, `x@cs.mit.edu`, and `edu` under a country code:
/// `x@ntu.edu.tw`. Not `x@education.org`, `x@edu.example.com`, `x@myedu.com`.
pub fn is_edu_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.trim().trim_end_matches('.').split('.').collect();
    let is_edu = |label: &&str| label.eq_ignore_ascii_case("edu");
    match labels.as_slice() {
        [.., last] if is_edu(last) => true,
        [.., second, last] => {
            is_edu(second) && last.len() == 2 && last.chars().all(|c| c.is_ascii_alphabetic())
        }
        _ => false,
    }
}

fn is_edu(lead: &Lead) -> bool {
    lead.customer.email_domain().is_some_and(is_edu_domain)
}
