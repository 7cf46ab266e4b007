//! Sample leads for the rendering tests: one shape, so the snapshots show
//! the same lead everywhere.

use lead_notifier::lead::{Lead, LeadRow};
use serde_json::{json, Value};

pub fn lead(row_key: &str, customer: Value, offer: &str) -> Lead {
    Lead::from_row(&LeadRow {
        partition_key: "11:2F21:2F2026".into(),
        row_key: row_key.into(),
        timestamp: Some("2026-11-21T10:45:00.1234567Z".into()),
        action_code: None,
        created_time: Some("11/21/2026 10:44:59 AM".into()),
        customer_info: Some(customer.to_string()),
        description: Some("We need a CRM for 40 people.\nPlease call after 2pm.".into()),
        lead_source: Some("SPZA-PLT|contoso.crm-suite".into()),
        offer_display_name: Some(offer.into()),
    })
}

pub fn jane() -> Lead {
    lead(
        "a1b2c3",
        json!({"FirstName": "Jane", "LastName": "Doe", "Email": "jane.doe@acme.example",
               "Phone": "+49 30 1234567", "Country": "DE", "Company": "Acme GmbH", "Title": "CTO"}),
        "Contoso CRM Suite",
    )
}

/// Jane as a returning customer: two earlier leads listed, three more counted.
pub fn returning_jane() -> Lead {
    use lead_notifier::history::{History, PastLead};
    use lead_notifier::lead::{Action, LeadKey};
    let past = |rk: &str, action: Action, offer_id: &str, offer: &str, at| PastLead {
        key: LeadKey {
            partition_key: "11:2F18:2F2026".into(),
            row_key: rk.into(),
        },
        action,
        offer_id: Some(offer_id.into()),
        offer_name: Some(offer.into()),
        at,
    };
    let mut lead = jane();
    lead.history = Some(History {
        earlier: vec![
            past(
                "t9",
                Action::StartTestDrive,
                "contoso.crm-suite",
                "Contoso CRM Suite",
                time::macros::datetime!(2026-11-19 16:20 UTC),
            ),
            past(
                "g1",
                Action::Install,
                "contoso.analytics-hub",
                "Contoso Analytics Hub",
                time::macros::datetime!(2026-11-18 08:05 UTC),
            ),
        ],
        more: 0,
        taken: Vec::new(),
    });
    lead
}

/// `lead` as a customer seen for the first time.
pub fn new_customer(mut lead: Lead) -> Lead {
    lead.history = Some(Default::default());
    lead
}
