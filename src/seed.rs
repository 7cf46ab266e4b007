//! `lead-notifier seed`: realistic sample leads for a local lead table
//! (Azurite), shaped exactly like the rows Microsoft writes.

use serde_json::json;
use time::OffsetDateTime;

use crate::config::Settings;
use crate::lead::{format_created_time, LeadRow};

const PEOPLE: &[(&str, &str, &str, &str, &str)] = &[
    // first, last, company, title, country
    ("Jane", "Doe", "Acme GmbH", "Head of IT", "DE"),
    ("Jiří", "Dvořák", "Pražská data s.r.o.", "CTO", "CZ"),
    (
        "Árpád",
        "Győri",
        "Duna Analitika Kft.",
        "Data Engineer",
        "HU",
    ),
    ("Юлия", "Иванова", "ООО Северный ветер", "Архитектор", "RU"),
    ("小明", "王", "上海云数科技有限公司", "IT 经理", "CN"),
    ("Carlos", "Mendes", "Fabrikam Ltda.", "Procurement", "BR"),
    ("Aisha", "Khan", "Northwind Traders", "VP Engineering", "GB"),
    ("Kenji", "Sato", "Tailspin Toys KK", "Developer", "JP"),
];

const OFFERS: &[(&str, &str)] = &[
    ("contoso.crm-suite", "Contoso CRM Suite"),
    ("contoso.analytics-hub", "Contoso Analytics Hub"),
    ("contoso.backup-vault", "Contoso Backup Vault"),
];

/// A customer's first step on an offer, then a later one: never the same
/// action twice, so no sample lead is folded as a repeat.
const FIRST_STEPS: &[(&str, &str)] = &[
    ("SPZA", "INS"),
    ("AzureMarketplace", "INS"),
    ("TestDrive", "StartTestDrive"),
];
const LATER_STEPS: &[(&str, &str)] = &[
    ("SPZA", "PLT"),
    ("AzurePortal", "Create"),
    ("AzureMarketplace", "PLT"),
];

/// Microsoft's PartitionKey form: the date `M/d/yyyy` with `/` as `:2F`.
pub fn partition_key_for(date: OffsetDateTime) -> String {
    format!(
        "{}:2F{}:2F{}",
        u8::from(date.month()),
        date.day(),
        date.year()
    )
}

/// `count` sample rows. The first three are the leads that must not be
/// alerted: Partner Center's test lead, a `.edu` lead and a do-not-contact
/// lead. The rest come in pairs, one customer each: a first step on an offer
/// ("Get it now", a test drive), then a later one ("Contact me", a purchase)
/// with the address written in other letter case, as a returning customer.
pub fn sample_rows(count: usize, now: OffsetDateTime) -> Vec<LeadRow> {
    let stamp = now.unix_timestamp_nanos();
    (0..count)
        .map(|i| {
            let (customer, later) = match i.checked_sub(3) {
                Some(n) => (n / 2 + 3, n % 2 == 1),
                None => (i, false),
            };
            let (first, last, company, title, country) = PEOPLE[customer % PEOPLE.len()];
            let (offer_id, offer_name) = OFFERS[customer % OFFERS.len()];
            let steps = if later { LATER_STEPS } else { FIRST_STEPS };
            let (source, action) = steps[customer % steps.len()];
            let mut email = format!(
                "{}.{}.{customer}@example.com",
                ascii_slug(first, customer),
                ascii_slug(last, customer)
            );
            if later {
                email = email.to_uppercase();
            }
            let mut row = LeadRow {
                partition_key: partition_key_for(now),
                row_key: format!("seed-{stamp}-{i:05}"),
                timestamp: None,
                action_code: Some(action.to_owned()),
                created_time: Some(format_created_time(now)),
                customer_info: Some(customer_info(first, last, &email, company, title, country)),
                description: Some(format!(
                    "Interested in {offer_name} for about {} seats",
                    10 + i * 5
                )),
                lead_source: Some(format!("{source}-{action}|{offer_id}")),
                offer_display_name: Some(offer_name.to_owned()),
            };
            match i {
                0 => make_test_lead(&mut row, stamp),
                1 => {
                    row.customer_info = Some(customer_info(
                        "Pat",
                        "Lee",
                        "pat.lee@cs.stanford.edu",
                        "Stanford University",
                        "Student",
                        "US",
                    ))
                }
                2 => {
                    row.action_code = Some("DNC".into());
                    row.lead_source = Some(format!("AzureMarketplace-DNC|{offer_id}"));
                }
                _ => {}
            }
            row
        })
        .collect()
}

/// Partner Center's validation lead: every field `MSFT_TEST_<digits>`.
fn make_test_lead(row: &mut LeadRow, stamp: i128) {
    let t = format!(
        "MSFT_TEST_{}",
        stamp.unsigned_abs() % 1_000_000_000_000_000_000
    );
    row.customer_info = Some(customer_info(
        &t,
        &t,
        &format!("{t}@test.com"),
        &t,
        &t,
        "US",
    ));
    row.description = Some(t.clone());
    row.lead_source = Some(format!("{t}-{t}|Contoso CRM Suite"));
}

fn customer_info(
    first: &str,
    last: &str,
    email: &str,
    company: &str,
    title: &str,
    country: &str,
) -> String {
    json!({
        "FirstName": first, "LastName": last, "Email": email, "Phone": "+1 425 555 0100",
        "Country": country, "Company": company, "Title": title,
    })
    .to_string()
}

/// An ASCII local part for sample email addresses.
fn ascii_slug(name: &str, i: usize) -> String {
    let slug: String = name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_lowercase();
    if slug.is_empty() {
        format!("lead{i}")
    } else {
        slug
    }
}

/// Writes `count` sample leads into the lead table, creating it when missing.
pub async fn seed(settings: &Settings, count: usize) -> anyhow::Result<usize> {
    let rows = sample_rows(count, OffsetDateTime::now_utc());
    let storage = crate::storage::Storage::new(&settings.storage, crate::tls::http_client());
    crate::lead_table::store_rows(&storage, &settings.leads_table, &rows).await?;
    Ok(rows.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::CustomerId;
    use crate::lead::{parse_created_time, Lead};
    use std::collections::HashSet;
    use time::macros::datetime;

    #[test]
    fn customers_return_with_a_later_step_and_never_repeat() {
        let now = datetime!(2026-11-21 10:00 UTC);
        let leads: Vec<Lead> = sample_rows(40, now).iter().map(Lead::from_row).collect();
        let mut steps = HashSet::new();
        for lead in &leads[3..] {
            let id = CustomerId::of(lead).unwrap();
            let step = (id, lead.offer_id.clone(), lead.action.clone());
            assert!(steps.insert(step), "a repeat: {}", lead.key);
        }
        // Leads 3 and 4 are one customer: "Get it now", then "Contact me".
        assert_eq!(CustomerId::of(&leads[3]), CustomerId::of(&leads[4]));
        assert_ne!(leads[3].customer.email, leads[4].customer.email);
        assert_ne!(CustomerId::of(&leads[4]), CustomerId::of(&leads[5]));
        assert_eq!(leads[3].offer_id, leads[4].offer_id);
        assert_ne!(leads[3].action, leads[4].action);
        for lead in &leads {
            let created = lead.created_time.as_deref().unwrap();
            assert_eq!(parse_created_time(created), Some(now), "{created}");
        }
    }
}
