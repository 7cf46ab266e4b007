//! `lead-notifier report`: what the leads of a period came to, per offer and
//! action: how many, how many alerted or skipped (and why), how many distinct
//! customers, and how many customers moved on from one action to another.
//!
//! Reads the lead table and the delivery ledger; writes nothing. Counts are
//! of leads, not of alerts per channel. Nothing personal is printed:
//! customers are counted by the hash of their address ([`CustomerId`]).

mod format;
mod html;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

pub use format::Format;

use crate::config::Settings;
use crate::history::CustomerId;
use crate::lead::{is_test_lead, Lead, LeadKey};
use crate::lead_table::Scan;
use crate::ledger::{Ledger, Policy, Status};
use crate::storage::{format_timestamp, parse_timestamp};
use crate::storage::{Storage, StorageError};
use crate::take::store::TakeStore;
use crate::text::one_line;

/// One offer and action.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Row {
    /// `publisherid.offerid` from `LeadSource`; empty when missing.
    pub offer_id: String,
    /// The offer's display name (else its id).
    pub offer: String,
    /// The action in words, e.g. "Get it now".
    pub action: String,
    /// The action code as Microsoft writes it, e.g. `INS`.
    pub action_code: String,
    pub leads: u64,
    /// Leads alerted on at least one channel.
    pub alerted: u64,
    /// Leads not alerted on purpose, per reason (`test_lead`, `repeat`, …).
    pub skipped: BTreeMap<String, u64>,
    /// Leads given up on for good, on every channel that had them.
    pub failed: u64,
    /// Leads with an alert still owed (or not yet seen by a run).
    pub pending: u64,
    /// Distinct customers (by email address; leads without one not counted).
    pub customers: u64,
    /// Leads someone took with the "I'll take it" link.
    pub taken: u64,
    /// Seconds from a taken lead's first delivered alert to its take: the
    /// median and the 90th percentile (nearest rank); `None` without takes.
    pub take_median_s: Option<u64>,
    pub take_p90_s: Option<u64>,
}

impl Row {
    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }
}

/// Customers who sent one action and later another, on one offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Move {
    pub offer_id: String,
    pub offer: String,
    pub from: String,
    pub to: String,
    pub customers: u64,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// RFC 3339.
    pub since: String,
    pub until: String,
    pub rows: Vec<Row>,
    pub moves: Vec<Move>,
    /// The same counts over every offer and action.
    pub total: Row,
    /// When Partner Center's validation leads (`MSFT_TEST_…`) were written:
    /// each one proves that Microsoft could write to the lead table then.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validations: Vec<String>,
}

/// What the report keeps of one lead.
struct Seen {
    key: LeadKey,
    at: OffsetDateTime,
    /// No `Timestamp` (counted as written `now`).
    undated: bool,
    offer_id: String,
    offer: String,
    action: String,
    action_code: String,
    customer: Option<CustomerId>,
    validation: bool,
}

/// How a lead ended, from its ledger records.
#[derive(Debug, Default)]
struct Outcome {
    delivered: bool,
    /// When its first alert was delivered (the record's last write).
    first_alert: Option<OffsetDateTime>,
    /// When someone took it.
    taken: Option<OffsetDateTime>,
    skipped: Option<String>,
    failed: bool,
    open: bool,
}

/// Reads the leads written since `since` before `now`, and their ledger records.
pub async fn build(
    settings: &Settings,
    storage: &Storage,
    since: Duration,
    now: OffsetDateTime,
) -> Result<Report, StorageError> {
    between(settings, storage, now - since, now).await
}

/// The report of the leads written at or after `from` and before `until`
/// (the summary's period; `report` ends it now).
pub async fn between(
    settings: &Settings,
    storage: &Storage,
    from: OffsetDateTime,
    until: OffsetDateTime,
) -> Result<Report, StorageError> {
    let mut leads = Vec::new();
    let mut scan = Scan::new(storage, &settings.leads_table, Some(from));
    while let Some(rows) = scan.next_page().await? {
        leads.extend(
            rows.iter()
                .map(|row| seen(&Lead::from_row(row), until))
                .filter(|lead| lead.at < until || lead.at == until && lead.undated),
        );
    }
    let mut outcomes = outcomes(settings, storage, from).await?;
    let takes = TakeStore::new(storage, &settings.state_table, &settings.leads_table)
        .since(from)
        .await?;
    for (lead, take) in takes {
        outcomes.entry(lead).or_default().taken = Some(take.at);
    }
    Ok(tally(leads, &outcomes, from, until))
}

fn seen(lead: &Lead, now: OffsetDateTime) -> Seen {
    let offer_id = lead.offer_id.as_deref().map(one_line).unwrap_or_default();
    Seen {
        key: lead.key.clone(),
        at: lead.timestamp.unwrap_or(now),
        undated: lead.timestamp.is_none(),
        validation: is_test_lead(lead),
        offer: one_line(&lead.offer_label()),
        offer_id,
        action: one_line(lead.action.wording()),
        action_code: one_line(lead.action.code()),
        customer: CustomerId::of(lead),
    }
}

/// Per lead, how its alerts ended. A missing state table means no run yet.
async fn outcomes(
    settings: &Settings,
    storage: &Storage,
    from: OffsetDateTime,
) -> Result<HashMap<LeadKey, Outcome>, StorageError> {
    let policy = Policy {
        claim_lease: settings.claim_lease,
        max_attempts: settings.max_attempts,
    };
    let ledger = Ledger::new(
        storage,
        &settings.state_table,
        &settings.leads_table,
        "report",
        policy,
    );
    let records = match ledger.window(Some(from)).await {
        Ok(records) => records,
        Err(StorageError::TableMissing { .. }) => return Ok(HashMap::new()),
        Err(e) => return Err(e),
    };
    let mut outcomes: HashMap<LeadKey, Outcome> = HashMap::new();
    for entry in records.into_values() {
        let record = entry.record;
        let outcome = outcomes
            .entry(LeadKey {
                partition_key: record.lead_partition_key,
                row_key: record.lead_row_key,
            })
            .or_default();
        match record.status {
            Status::Delivered => {
                outcome.delivered = true;
                if let Some(at) = parse_timestamp(&record.updated_at) {
                    outcome.first_alert = Some(outcome.first_alert.map_or(at, |t| t.min(at)));
                }
            }
            Status::Skipped => outcome.skipped = Some(record.skip_reason),
            Status::Failed => outcome.failed = true,
            Status::Claimed | Status::Retry | Status::Unknown => outcome.open = true,
        }
    }
    Ok(outcomes)
}

fn tally(
    mut leads: Vec<Seen>,
    outcomes: &HashMap<LeadKey, Outcome>,
    from: OffsetDateTime,
    now: OffsetDateTime,
) -> Report {
    leads.sort_by(|a, b| (a.at, &a.key).cmp(&(b.at, &b.key)));
    type RowKey = (String, String);
    let mut rows: BTreeMap<RowKey, (Row, HashSet<CustomerId>, Vec<u64>)> = BTreeMap::new();
    let mut total = Row::default();
    let mut all_takes = Vec::new();
    let mut everyone = HashSet::new();
    // Per offer and customer, the actions in the order they came.
    let mut paths: BTreeMap<String, HashMap<CustomerId, Vec<&Seen>>> = BTreeMap::new();
    for lead in &leads {
        let (row, customers, takes) = rows
            .entry((lead.offer_id.clone(), lead.action_code.clone()))
            .or_insert_with(|| {
                let row = Row {
                    offer_id: lead.offer_id.clone(),
                    offer: lead.offer.clone(),
                    action: lead.action.clone(),
                    action_code: lead.action_code.clone(),
                    ..Row::default()
                };
                (row, HashSet::new(), Vec::new())
            });
        let outcome = outcomes.get(&lead.key);
        if let Some(taken) = outcome.and_then(|o| o.taken) {
            row.taken += 1;
            total.taken += 1;
            if let Some(alerted) = outcome.and_then(|o| o.first_alert) {
                let seconds = (taken - alerted).whole_seconds().max(0) as u64;
                takes.push(seconds);
                all_takes.push(seconds);
            }
        }
        for row in [&mut *row, &mut total] {
            row.leads += 1;
            // A skip of one destination's own (HubSpot without an email
            // address) does not hide how the others ended.
            match outcome {
                Some(o) if o.delivered => row.alerted += 1,
                Some(o) if o.open => row.pending += 1,
                Some(o) if o.failed => row.failed += 1,
                Some(Outcome {
                    skipped: Some(reason),
                    ..
                }) => *row.skipped.entry(reason.clone()).or_default() += 1,
                _ => row.pending += 1,
            }
        }
        if let Some(id) = &lead.customer {
            customers.insert(*id);
            everyone.insert(*id);
            paths
                .entry(lead.offer_id.clone())
                .or_default()
                .entry(*id)
                .or_default()
                .push(lead);
        }
    }
    let rows: Vec<Row> = rows
        .into_values()
        .map(|(mut row, customers, mut takes)| {
            row.customers = customers.len() as u64;
            (row.take_median_s, row.take_p90_s) = spread(&mut takes);
            row
        })
        .collect();
    (total.take_median_s, total.take_p90_s) = spread(&mut all_takes);
    total.offer_id.clear();
    total.offer = "all offers".to_owned();
    total.action = "all actions".to_owned();
    total.customers = everyone.len() as u64;
    let validations = leads
        .iter()
        .filter(|l| l.validation)
        .map(|l| format_timestamp(l.at))
        .collect();
    Report {
        since: format_timestamp(from),
        until: format_timestamp(now),
        rows,
        moves: moves(&paths),
        total,
        validations,
    }
}

/// The median and 90th percentile of `seconds`, by nearest rank.
fn spread(seconds: &mut [u64]) -> (Option<u64>, Option<u64>) {
    seconds.sort_unstable();
    let rank = |p: f64| {
        let n = seconds.len();
        let at = ((p * n as f64).ceil() as usize).clamp(1, n.max(1)) - 1;
        seconds.get(at).copied()
    };
    (rank(0.5), rank(0.9))
}

/// Each customer counted once per (offer, from, to) step they took.
fn moves(paths: &BTreeMap<String, HashMap<CustomerId, Vec<&Seen>>>) -> Vec<Move> {
    let mut counts: BTreeMap<(String, String, String), (String, u64)> = BTreeMap::new();
    for (offer_id, customers) in paths {
        for path in customers.values() {
            let mut taken = HashSet::new();
            for pair in path.windows(2) {
                let (a, b) = (pair[0], pair[1]);
                if a.action_code != b.action_code
                    && taken.insert((a.action.clone(), b.action.clone()))
                {
                    let key = (offer_id.clone(), a.action.clone(), b.action.clone());
                    counts.entry(key).or_insert_with(|| (b.offer.clone(), 0)).1 += 1;
                }
            }
        }
    }
    let mut moves: Vec<Move> = counts
        .into_iter()
        .map(|((offer_id, from, to), (offer, customers))| Move {
            offer_id,
            offer,
            from,
            to,
            customers,
        })
        .collect();
    moves.sort_by_key(|m| std::cmp::Reverse(m.customers));
    moves
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lead::LeadRow;
    use time::macros::datetime;

    fn lead(rk: &str, email: &str, action: &str, offer: &str, minute: u8) -> Seen {
        let mut lead = Lead::from_row(&LeadRow {
            partition_key: "p".into(),
            row_key: rk.into(),
            customer_info: Some(format!(r#"{{"Email":"{email}"}}"#)),
            lead_source: Some(format!("SPZA-{action}|{offer}")),
            offer_display_name: Some(format!("Offer {offer}")),
            ..LeadRow::default()
        });
        lead.timestamp =
            Some(datetime!(2026-11-21 10:00 UTC) + Duration::from_secs(60 * minute as u64));
        seen(&lead, datetime!(2026-11-22 10:00 UTC))
    }

    fn key(rk: &str) -> LeadKey {
        LeadKey {
            partition_key: "p".into(),
            row_key: rk.into(),
        }
    }

    fn outcome(delivered: bool, skipped: Option<&str>) -> Outcome {
        Outcome {
            delivered,
            skipped: skipped.map(str::to_owned),
            ..Outcome::default()
        }
    }

    #[test]
    fn take_times_are_summed_up_by_nearest_rank() {
        assert_eq!(spread(&mut []), (None, None));
        assert_eq!(spread(&mut [42]), (Some(42), Some(42)));
        let mut ten: Vec<u64> = (1..=10).rev().map(|m| m * 60).collect();
        assert_eq!(spread(&mut ten), (Some(300), Some(540)));
        assert_eq!(spread(&mut [600, 60, 120]), (Some(120), Some(600)));
    }

    #[test]
    fn a_lead_skipped_by_one_destination_only_counts_as_the_others_ended() {
        // No email address: skipped for HubSpot, and the email alert failed
        // for good (lead 1) or is still to be sent (lead 2).
        let leads = vec![
            lead("1", "", "INS", "c.crm", 1),
            lead("2", "", "INS", "c.crm", 2),
            lead("3", "", "INS", "c.crm", 3),
        ];
        let failed = Outcome {
            failed: true,
            ..outcome(false, Some("no_email"))
        };
        let open = Outcome {
            open: true,
            ..outcome(false, Some("no_email"))
        };
        let outcomes = HashMap::from([
            (key("1"), failed),
            (key("2"), open),
            (key("3"), outcome(false, Some("edu"))),
        ]);
        let now = datetime!(2026-11-22 10:00 UTC);
        let report = tally(leads, &outcomes, now - Duration::from_secs(86_400), now);
        assert_eq!(report.total.failed, 1, "{:?}", report.total);
        assert_eq!(report.total.pending, 1, "{:?}", report.total);
        assert_eq!(report.total.skipped_total(), 1, "{:?}", report.total);
    }

    #[test]
    fn leads_are_counted_per_offer_and_action_with_customers_and_moves() {
        let leads = vec![
            lead("1", "jane@a.example", "INS", "c.crm", 1),
            lead("2", "JANE@a.example", "PLT", "c.crm", 2),
            lead("3", "jane@a.example", "PLT", "c.crm", 3),
            lead("4", "john@a.example", "INS", "c.crm", 4),
            lead("5", "", "INS", "c.crm", 5),
            lead("6", "john@a.example", "PLT", "c.erp", 6),
        ];
        let outcomes = HashMap::from([
            (key("1"), outcome(true, None)),
            (key("2"), outcome(true, None)),
            (key("3"), outcome(false, Some("repeat"))),
            (key("4"), outcome(true, None)),
            (key("6"), outcome(false, Some("do_not_contact"))),
        ]);
        let now = datetime!(2026-11-22 10:00 UTC);
        let report = tally(leads, &outcomes, now - Duration::from_secs(86_400), now);
        let row = |offer: &str, code: &str| {
            report
                .rows
                .iter()
                .find(|r| r.offer_id == offer && r.action_code == code)
                .unwrap()
        };
        let ins = row("c.crm", "INS");
        assert_eq!(
            (ins.leads, ins.alerted, ins.pending, ins.customers),
            (3, 2, 1, 2)
        );
        let plt = row("c.crm", "PLT");
        assert_eq!((plt.leads, plt.alerted, plt.customers), (2, 1, 1));
        assert_eq!(plt.skipped["repeat"], 1);
        assert_eq!(row("c.erp", "PLT").skipped["do_not_contact"], 1);
        assert_eq!(report.total.leads, 6);
        assert_eq!(report.total.alerted, 3);
        assert_eq!(report.total.skipped_total(), 2);
        assert_eq!(report.total.customers, 2);
        // Jane went from "Get it now" to "Contact me"; John changed offers.
        assert_eq!(
            report.moves,
            [Move {
                offer_id: "c.crm".into(),
                offer: "Offer c.crm".into(),
                from: "Get it now".into(),
                to: "Contact me".into(),
                customers: 1,
            }]
        );
    }
}
