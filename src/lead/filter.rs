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
    /// A destination that files leads by email address (HubSpot) got one
    /// without an address; the other destinations still alert it.
    NoEmail,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::TestLead => "test_lead",
            SkipReason::Edu => "edu",
            SkipReason::DoNotContact => "do_not_contact",
            SkipReason::Repeat => "repeat",
            SkipReason::NoEmail => "no_email",
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
            SkipReason::NoEmail => {
                "lead without an email address, not written to HubSpot (alerted elsewhere)"
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
            SkipReason::NoEmail,
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

/// Partner Center's validation lead (platform facts: "Test leads"): it
/// fills the customer's fields with one marker, `MSFT_TEST_<digits>`, and
/// the lead source with `MSFT_TEST_<digits>-MSFT_TEST_<digits>|<offer>`.
/// Only those fields count, and only when one *is* the marker: a customer
/// writing "we saw MSFT_TEST in your docs" in a description or a company
/// name is a real lead.
pub fn is_test_lead(lead: &Lead) -> bool {
    let c = &lead.customer;
    let name = [&c.first_name, &c.last_name]
        .into_iter()
        .flatten()
        .any(|n| is_test_marker(n));
    let email = c
        .email
        .as_deref()
        .and_then(|e| e.rsplit_once('@'))
        .is_some_and(|(local, _)| is_test_marker(local));
    // The source is what comes before the action (`-`) and the offer (`|`).
    let source = lead
        .lead_source_raw
        .as_deref()
        .and_then(|s| s.split(['-', '|']).next())
        .is_some_and(is_test_marker);
    name || email || source
}

/// `MSFT_TEST_` (any letter case) and digits only, e.g. `MSFT_TEST_636573304831318844`.
fn is_test_marker(text: &str) -> bool {
    const PREFIX: &str = "MSFT_TEST_";
    let text = text.trim();
    let digits = text
        .get(..PREFIX.len())
        .filter(|head| head.eq_ignore_ascii_case(PREFIX))
        .map(|_| &text[PREFIX.len()..]);
    digits.is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
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
