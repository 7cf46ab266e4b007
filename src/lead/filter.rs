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

/// Why a lead is not alerted. `as_str` values are stored in the ledger: never rename.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    TestLead,
    Edu,
    DoNotContact,
}
