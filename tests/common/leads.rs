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
