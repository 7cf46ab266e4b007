//! What one run did, for logs, the invocation's answer and `poll --json`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::destination::DestinationId;
use crate::lead::SkipReason;

/// Problem lines kept in a summary; the rest are counted.
const MAX_PROBLEMS: usize = 20;

/// One run's outcome. Leads appear only by their keys.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub rows_scanned: u64,
    /// Scanned leads that were not yet handled on every channel.
    pub leads_new: u64,
    /// Alerts delivered by this run, per channel (every configured channel listed).
    pub delivered: BTreeMap<DestinationId, u64>,
    /// Leads newly recorded as not alerted, per reason.
    pub skipped: BTreeMap<SkipReason, u64>,
    /// Alerts given up for good by this run.
    pub failed: u64,
    /// Alerts owed but not delivered; a later run retries them.
    pub pending: u64,
    /// Alerts claimed by another run that is still sending them.
    pub busy: u64,
    pub storage_requests: u64,
    pub duration_ms: u64,
    /// The stored watermark after the run (RFC 3339), if any.
    pub watermark: Option<String>,
    /// Why alerts were not delivered, per channel; no personal data.
    pub problems: Vec<String>,
}

impl RunSummary {
    pub fn new(run_id: String, channels: impl IntoIterator<Item = DestinationId>) -> RunSummary {
        RunSummary {
            run_id,
            delivered: channels.into_iter().map(|c| (c, 0)).collect(),
            ..RunSummary::default()
        }
    }

    /// True when nothing owed was left undelivered or given up.
    pub fn all_delivered(&self) -> bool {
        self.pending == 0 && self.failed == 0
    }

    pub fn delivered_total(&self) -> u64 {
        self.delivered.values().sum()
    }

    /// Adds a problem line, keeping the list short.
    pub fn problem(&mut self, line: String) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(line);
        } else if self.problems.len() == MAX_PROBLEMS {
            self.problems.push("further problems omitted".to_owned());
        }
    }

    /// The summary in words, one fact a line.
    pub fn log_lines(&self) -> Vec<String> {
        let delivered = if self.delivered.is_empty() {
            "none".to_owned()
        } else {
            self.delivered
                .iter()
                .map(|(channel, n)| format!("{channel} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut lines = vec![
            format!(
                "run {}: scanned {} row(s), {} new lead(s)",
                self.run_id, self.rows_scanned, self.leads_new
            ),
            format!("delivered: {delivered}"),
        ];
        if !self.skipped.is_empty() {
            let skipped = self
                .skipped
                .iter()
                .map(|(reason, n)| format!("{n} {}", reason.describe()))
                .collect::<Vec<_>>()
                .join(", ");
            lines.push(format!("not alerted: {skipped}"));
        }
        if self.pending + self.failed + self.busy > 0 {
            lines.push(format!(
                "undelivered: {} to retry, {} given up, {} being sent by another run",
                self.pending, self.failed, self.busy
            ));
        }
        lines.extend(self.problems.iter().map(|p| format!("problem: {p}")));
        lines.push(format!(
            "watermark {}, {} storage request(s), {} ms",
            self.watermark.as_deref().unwrap_or("not set"),
            self.storage_requests,
            self.duration_ms
        ));
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_or_failed_alerts_are_not_all_delivered() {
        let mut summary =
            RunSummary::new("r1".into(), [DestinationId::EMAIL, DestinationId::TEAMS]);
        assert!(summary.all_delivered());
        summary.pending = 1;
        assert!(!summary.all_delivered());
        summary.pending = 0;
        summary.failed = 2;
        assert!(!summary.all_delivered());
    }

    #[test]
    fn log_lines_name_channels_problems_and_costs() {
        let mut summary = RunSummary::new("r1".into(), [DestinationId::EMAIL]);
        summary.rows_scanned = 3;
        summary.delivered.insert(DestinationId::EMAIL, 2);
        summary.skipped.insert(SkipReason::TestLead, 1);
        summary.pending = 1;
        summary.storage_requests = 7;
        summary.problem("teams: 1 alert(s) to retry: HTTP 503".into());
        let text = summary.log_lines().join("\n");
        assert!(text.contains("scanned 3 row(s)"), "{text}");
        assert!(text.contains("email 2"), "{text}");
        assert!(text.contains("1 Partner Center test lead"), "{text}");
        assert!(text.contains("1 to retry"), "{text}");
        assert!(
            text.contains("problem: teams: 1 alert(s) to retry: HTTP 503"),
            "{text}"
        );
        assert!(text.contains("7 storage request(s)"), "{text}");
    }

    #[test]
    fn problems_are_capped() {
        let mut summary = RunSummary::default();
        for i in 0..50 {
            summary.problem(format!("p{i}"));
        }
        assert_eq!(summary.problems.len(), MAX_PROBLEMS + 1);
        assert_eq!(
            summary.problems.last().map(String::as_str),
            Some("further problems omitted")
        );
    }
}
