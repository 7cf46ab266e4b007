//! Lead-flow health. Partner Center keeps its own copy of the lead
//! account's connection string: rotate the key, delete the table or break
//! the offer's lead configuration and Microsoft stops writing leads without
//! a word, and leads it could not write are never sent again. An empty table
//! looks like a quiet week, so a silence longer than `LEAD_SILENCE_AFTER`
//! after a month with leads is reported.

use std::time::Duration;

use time::OffsetDateTime;

use crate::config::Settings;
use crate::lead_table::Scan;
use crate::notify::Notice;
use crate::storage::{parse_timestamp, Storage, StorageError};
use crate::text::format_time;

/// How far before the silence a lead must have come for the silence to
/// count: a table that has been empty for months is not news.
pub const ACTIVE_BEFORE: Duration = Duration::from_secs(28 * 24 * 3600);

/// What the lead table's recent rows say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flow {
    /// The latest lead row written (validation leads count), among those
    /// looked at: the silence and the 28 days before it.
    pub last_lead: Option<OffsetDateTime>,
    /// `LEAD_SILENCE_AFTER`; `None` when the check is off.
    pub silence_after: Option<Duration>,
    /// When this was judged.
    pub now: Option<OffsetDateTime>,
}

impl Flow {
    /// Reads the rows written in the silence window and the 28 days before.
    pub async fn read(
        settings: &Settings,
        storage: &Storage,
        now: OffsetDateTime,
    ) -> Result<Flow, StorageError> {
        let silence_after = settings.summary.silence_after;
        let from = now - silence_after.unwrap_or_default() - ACTIVE_BEFORE;
        let mut last_lead = None;
        let mut scan = Scan::new(storage, &settings.leads_table, Some(from));
        while let Some(rows) = scan.next_page().await? {
            for at in rows
                .iter()
                .filter_map(|r| r.timestamp.as_deref().and_then(parse_timestamp))
                // Rows "from the future" only exist when a test moves now.
                .filter(|at| *at <= now)
            {
                last_lead = Some(last_lead.map_or(at, |l: OffsetDateTime| l.max(at)));
            }
        }
        Ok(Flow {
            last_lead,
            silence_after,
            now: Some(now),
        })
    }

    /// The flow as a run that stands at a lead written at `at` or later
    /// knows it, without reading the table again.
    pub fn alive_at(settings: &Settings, at: OffsetDateTime, now: OffsetDateTime) -> Flow {
        Flow {
            last_lead: Some(at),
            silence_after: settings.summary.silence_after,
            now: Some(now),
        }
    }

    /// The last lead's time when no lead was written for `LEAD_SILENCE_AFTER`
    /// although one came in the 28 days before: the silence episode's key.
    pub fn silent_since(&self) -> Option<OffsetDateTime> {
        let (last, after, now) = (self.last_lead?, self.silence_after?, self.now?);
        (now - last >= after).then_some(last)
    }

    /// The warning for `check` and the run summary's problems.
    pub fn problem(&self, table: &str) -> Option<String> {
        let last = self.silent_since()?;
        Some(format!(
            "lead flow: no lead written to table {table} since {} ({} or more); {}",
            format_time(last),
            crate::text::duration_words(self.silence_after.unwrap_or_default()),
            what_to_check(table)
        ))
    }
}

/// What stops Microsoft writing leads, in the order to check.
pub fn what_to_check(table: &str) -> String {
    format!(
        "check in Partner Center → your offer → Customer leads that the lead destination is still set; \
         that the lead account's key has not been rotated since Partner Center was given its connection string \
         (if it was, paste the new connection string there); and that table {table} still exists under that name"
    )
}

/// A lead-flow note for `HEALTH_TO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthNote {
    /// No lead since `last`.
    Silent {
        last: OffsetDateTime,
        silence_after: Duration,
    },
    /// Leads are written again after the silence that began at `last`.
    Resumed {
        last: OffsetDateTime,
        again: OffsetDateTime,
    },
}

impl HealthNote {
    /// The ledger's name of the note's kind: never change (ledger keys).
    pub fn kind(&self) -> &'static str {
        match self {
            HealthNote::Silent { .. } => SILENT,
            HealthNote::Resumed { .. } => RESUMED,
        }
    }

    /// The silence episode: the last lead before it.
    pub fn episode(&self) -> OffsetDateTime {
        match self {
            HealthNote::Silent { last, .. } | HealthNote::Resumed { last, .. } => *last,
        }
    }

    pub fn notice(&self, table: &str) -> Notice {
        super::render::health(self, table)
    }
}

/// Ledger kinds of the health notes.
pub const SILENT: &str = "lead-flow-silent";
pub const RESUMED: &str = "lead-flow-resumed";

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn silence_counts_only_after_the_setting() {
        let now = datetime!(2026-12-10 08:00 UTC);
        let flow = |last| Flow {
            last_lead: last,
            silence_after: Some(Duration::from_secs(7 * 86_400)),
            now: Some(now),
        };
        let last = datetime!(2026-12-03 08:00 UTC);
        assert_eq!(flow(Some(last)).silent_since(), Some(last));
        assert_eq!(
            flow(Some(last + Duration::from_secs(1))).silent_since(),
            None
        );
        assert_eq!(flow(None).silent_since(), None);
        let off = Flow {
            silence_after: None,
            ..flow(Some(last))
        };
        assert_eq!(off.silent_since(), None);
        let problem = flow(Some(last)).problem("MarketplaceLeads").unwrap();
        assert!(
            problem.contains("since 2026-12-03 08:00:00 UTC"),
            "{problem}"
        );
        assert!(problem.contains("Customer leads"), "{problem}");
        assert!(problem.contains("table MarketplaceLeads"), "{problem}");
    }
}
