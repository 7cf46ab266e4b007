//! The periodic summary and lead-flow health: what a period's leads came to
//! (counted exactly as `lead-notifier report` counts them, by
//! [`crate::report`]) against the period before, and whether Microsoft is
//! still writing leads at all. Rendered here for every kind of channel as a
//! [`Notice`]; the pipeline sends it once per occurrence and destination.
//!
//! Nothing personal: offers, counts and times only.

pub mod health;
mod render;

use std::collections::BTreeMap;

use time::OffsetDateTime;

pub use health::{Flow, HealthNote};
pub use render::{reminder, MAX_CARD_LINES};

use crate::config::Settings;
use crate::notify::Notice;
use crate::report::{self, Report};
use crate::storage::{format_timestamp, Storage, StorageError};

/// One period's summary.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Start of the period (the previous occurrence, or the last one a
    /// summary was sent for).
    pub from: OffsetDateTime,
    /// The occurrence the summary is for: the end of the period.
    pub until: OffsetDateTime,
    /// The period's report.
    pub report: Report,
    /// The report of the period of the same length just before.
    pub before: Report,
    /// The lead flow as the summary is made.
    pub flow: Flow,
    /// The lead table's name, for what to check.
    pub table: String,
    /// Whether alerts carry "I'll take it" links, so takes are counted.
    pub takes_on: bool,
}

/// Leads of one offer and action in the period and the one before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub offer: String,
    pub action: String,
    pub leads: u64,
    pub before: u64,
}

impl Line {
    /// `+3`, `−2`, `±0`, or `new` when there were none before.
    pub fn change(&self) -> String {
        match (self.leads, self.before) {
            (_, 0) if self.leads > 0 => "new".to_owned(),
            (a, b) if a > b => format!("+{}", a - b),
            (a, b) if a < b => format!("−{}", b - a),
            _ => "±0".to_owned(),
        }
    }
}

impl Summary {
    /// Reads both periods' reports and the lead flow.
    pub async fn build(
        settings: &Settings,
        storage: &Storage,
        from: OffsetDateTime,
        until: OffsetDateTime,
        flow: Flow,
    ) -> Result<Summary, StorageError> {
        let report = report::between(settings, storage, from, until).await?;
        let before = report::between(settings, storage, from - (until - from), from).await?;
        Ok(Summary {
            from,
            until,
            report,
            before,
            flow,
            table: settings.leads_table.clone(),
            takes_on: settings.take.is_some(),
        })
    }

    /// Every offer and action of either period, this period's first by
    /// leads, then those that had leads only before.
    pub fn lines(&self) -> Vec<Line> {
        let mut lines: BTreeMap<(String, String), Line> = BTreeMap::new();
        for (rows, now) in [(&self.report.rows, true), (&self.before.rows, false)] {
            for row in rows {
                let line = lines
                    .entry((row.offer_id.clone(), row.action_code.clone()))
                    .or_insert_with(|| Line {
                        offer: row.offer.clone(),
                        action: row.action.clone(),
                        leads: 0,
                        before: 0,
                    });
                if now {
                    line.leads += row.leads;
                } else {
                    line.before += row.leads;
                }
            }
        }
        let mut lines: Vec<Line> = lines.into_values().collect();
        lines.sort_by(|a, b| b.leads.cmp(&a.leads).then(b.before.cmp(&a.before)));
        lines
    }

    /// The ledger's text for the occurrence: part of the notice's id.
    pub fn occurrence(&self) -> String {
        format_timestamp(self.until)
    }

    /// The summary for every kind of channel.
    pub fn notice(&self) -> Notice {
        render::summary(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_read_as_signs() {
        let line = |leads, before| Line {
            offer: "o".into(),
            action: "a".into(),
            leads,
            before,
        };
        assert_eq!(line(5, 2).change(), "+3");
        assert_eq!(line(1, 3).change(), "−2");
        assert_eq!(line(2, 2).change(), "±0");
        assert_eq!(line(2, 0).change(), "new");
        assert_eq!(line(0, 0).change(), "±0");
    }
}
