//! The timer run's second job: the periodic summary and the lead-flow
//! health notes, each sent once per destination through the ledger, with
//! the same claim, send and settlement as lead alerts
//! ([`Channel::send_once`]).
//!
//! Their records live in a partition of their own (the lead table's name
//! with `/notices`, escaped: no lead table has that name), keyed by kind and
//! time: the summary by the schedule occurrence it is for, the health notes
//! by the last lead before the silence. A run late for an occurrence still
//! sends it; after an outage over several occurrences only the latest is
//! due, and it covers the time since the last summary sent.
//!
//! An idle run costs nothing more: the process remembers the occurrence it
//! saw settled everywhere and that the lead flow was healthy, and the
//! watermark (the latest lead a run saw) tells when a silence may have
//! begun. Only then, on the first run of a process and when an occurrence
//! comes due does the run read the lead table's last weeks and these records.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use time::OffsetDateTime;

use super::deliver::{send_message_once, Limits};
use super::summary::RunSummary;
use super::Step;
use crate::config::Settings;
use crate::lead::LeadKey;
use crate::ledger::{AlertKey, Entry, Ledger, Status, Verdict};
use crate::notify::{Alert, DestinationId, Notice, Notifier};
use crate::storage::{parse_timestamp, Storage, StorageError};
use crate::summary::{health, Flow, HealthNote, Summary};

/// The ledger kind of summaries: never change (ledger keys).
const SUMMARY: &str = "summary";

/// What this process found settled, so idle runs need not look again.
#[derive(Debug, Default)]
pub(super) struct Memo {
    /// The latest occurrence whose summary every destination had.
    summary_done: Option<OffsetDateTime>,
    /// The lead flow was healthy and no health note was left to send.
    health_clear: bool,
}

/// Sends what is due. Problems (a channel down, the lead flow silent) go
/// into the run's summary; only storage errors end it. `watermark` is the
/// run's, after it.
pub(super) async fn send_due(
    step: Step<'_>,
    run: &mut RunSummary,
    memo: &Mutex<Memo>,
    watermark: Option<OffsetDateTime>,
) -> Result<(), StorageError> {
    let Step {
        settings,
        storage,
        notifiers,
        run_id,
        limits,
    } = step;
    let config = &settings.summary;
    let now = crate::clock::now();
    let (summary_due, health_due, stale) = {
        let memo = memo.lock().unwrap_or_else(|e| e.into_inner());
        let due = config
            .schedule
            .latest(now)
            .filter(|due| !config.to.is_empty() && memo.summary_done != Some(*due));
        // No lead seen for the silence: maybe silent (the watermark stays
        // at the latest lead a run saw, or before it).
        let stale = match (config.silence_after, watermark) {
            (Some(after), Some(w)) => now - w >= after,
            _ => false,
        };
        let health = config.silence_after.is_some() && (stale || !memo.health_clear);
        (due, health, stale)
    };
    if summary_due.is_none() && !health_due {
        return Ok(());
    }
    let flow = match watermark {
        // The run stands at a lead written within the silence: the flow is
        // alive, and reading weeks of lead rows (a page per thousand) would
        // only say so again. The summary shows the last lead's exact time,
        // so it reads them.
        Some(at) if !stale && summary_due.is_none() => Flow::alive_at(settings, at, now),
        _ => Flow::read(settings, storage, now).await?,
    };
    if let Some(problem) = flow.problem(&settings.leads_table) {
        run.problem(problem);
    }
    let partition_table = format!("{}/notices", settings.leads_table);
    let ledger = Ledger::new(
        storage,
        &settings.state_table,
        &partition_table,
        run_id,
        super::policy(settings),
    );
    let records = match ledger.window(None).await {
        Ok(records) => records,
        // No run has written state yet: nothing was sent either.
        Err(StorageError::TableMissing { .. }) => HashMap::new(),
        Err(e) => return Err(e),
    };
    let mut sender = Sender {
        ledger,
        scope: scope(settings),
        limits,
        notifiers,
        records,
        run,
        unsettled: false,
    };
    if health_due {
        sender.health(settings, &flow).await?;
        let clear = flow.silent_since().is_none() && !sender.unsettled;
        memo.lock().unwrap_or_else(|e| e.into_inner()).health_clear = clear;
    }
    if let Some(due) = summary_due {
        sender.unsettled = false;
        sender.summary(settings, storage, flow, due).await?;
        if !sender.unsettled {
            memo.lock().unwrap_or_else(|e| e.into_inner()).summary_done = Some(due);
        }
    }
    Ok(())
}

/// The storage account and lead table, which a notice's id starts with.
pub(super) fn scope(settings: &Settings) -> String {
    format!(
        "{}/{}",
        settings.storage.account(),
        settings.leads_table.to_ascii_lowercase()
    )
}

struct Sender<'a, 'r> {
    ledger: Ledger<'a>,
    /// The storage account and lead table: a notice's id (an email's
    /// Message-ID) is made of times alone, the same in every installation,
    /// and mail services drop a message whose Message-ID they have seen.
    scope: String,
    limits: Limits,
    notifiers: &'a [Arc<dyn Notifier>],
    /// Every record of the notices partition, by row key.
    records: HashMap<String, Entry>,
    run: &'r mut RunSummary,
    /// Something was left for a later run (a channel down, another run's claim).
    unsettled: bool,
}

impl Sender<'_, '_> {
    fn key(kind: &str, at: OffsetDateTime, to: &DestinationId) -> AlertKey {
        AlertKey {
            lead: LeadKey {
                partition_key: kind.to_owned(),
                row_key: crate::storage::format_timestamp(at),
            },
            channel: to.clone(),
            lead_timestamp: at,
        }
    }

    /// The records of one kind: (destination, time, status).
    fn of_kind<'s>(
        &'s self,
        kind: &'s str,
    ) -> impl Iterator<Item = (&'s str, OffsetDateTime, Status)> + 's {
        self.records.values().filter_map(move |e| {
            let r = &e.record;
            (r.lead_partition_key == kind)
                .then(|| {
                    Some((
                        r.channel.as_str(),
                        parse_timestamp(&r.lead_row_key)?,
                        r.status,
                    ))
                })
                .flatten()
        })
    }

    /// Sends `notice` once to `to`, unless its record says it is done.
    async fn send(
        &mut self,
        kind: &str,
        at: OffsetDateTime,
        to: &DestinationId,
        notice: &Notice,
    ) -> Result<(), StorageError> {
        let Some(notifier) = self.notifiers.iter().find(|n| n.channel() == *to) else {
            return Ok(());
        };
        let key = Self::key(kind, at, to);
        let prior = self.records.get(&key.row_key()).cloned();
        let notice = Notice {
            id: format!("{}|{}", self.scope, notice.id),
            ..notice.clone()
        };
        let notifier = Arc::clone(notifier);
        let message = Alert::Notice(&notice);
        let once = send_message_once(
            notifier,
            &self.ledger,
            self.limits,
            key,
            prior,
            message,
            kind,
        )
        .await?;
        for problem in once.problems {
            self.run.problem(problem);
        }
        self.unsettled |= once.unsettled;
        Ok(())
    }

    /// One warning per silence episode, one note when leads come back.
    async fn health(&mut self, settings: &Settings, flow: &Flow) -> Result<(), StorageError> {
        let to = settings.summary.health_to.clone();
        let table = &settings.leads_table;
        if let Some(last) = flow.silent_since() {
            let note = HealthNote::Silent {
                last,
                silence_after: settings.summary.silence_after.unwrap_or_default(),
            };
            let notice = note.notice(table);
            for id in &to {
                self.send(health::SILENT, last, id, &notice).await?;
            }
            return Ok(());
        }
        let Some(again) = flow.last_lead else {
            // A silence longer than the look-back leaves no lead to see, but
            // a warning was sent and its "resumed" is still owed: this
            // process must keep looking until leads come back.
            if self.warned_without_resumed(&to) {
                self.unsettled = true;
            }
            return Ok(());
        };
        // Warnings delivered for a silence that has ended since.
        let mut ended: Vec<(String, OffsetDateTime)> = self
            .of_kind(health::SILENT)
            .filter(|&(_, last, status)| status == Status::Delivered && last < again)
            .map(|(channel, last, _)| (channel.to_owned(), last))
            .collect();
        ended.sort();
        for (channel, last) in ended {
            let Some(id) = to.iter().find(|id| id.to_string() == channel).cloned() else {
                continue;
            };
            let notice = HealthNote::Resumed { last, again }.notice(table);
            self.send(health::RESUMED, last, &id, &notice).await?;
        }
        Ok(())
    }

    /// A silence warning delivered to one of `to` with no "resumed" note
    /// recorded for its episode.
    fn warned_without_resumed(&self, to: &[DestinationId]) -> bool {
        let resumed: Vec<(&str, OffsetDateTime)> = self
            .of_kind(health::RESUMED)
            .map(|(channel, last, _)| (channel, last))
            .collect();
        self.of_kind(health::SILENT).any(|(channel, last, status)| {
            status == Status::Delivered
                && to.iter().any(|id| id.to_string() == channel)
                && !resumed.contains(&(channel, last))
        })
    }

    /// The summary for the latest occurrence, to every destination that has
    /// not had it, covering the time since the last one it had.
    async fn summary(
        &mut self,
        settings: &Settings,
        storage: &Storage,
        flow: Flow,
        due: OffsetDateTime,
    ) -> Result<(), StorageError> {
        let schedule = &settings.summary.schedule;
        let Some(previous) = schedule.before(due) else {
            return Ok(());
        };
        // Destinations by the start of their period.
        let mut periods: Vec<(OffsetDateTime, Vec<DestinationId>)> = Vec::new();
        for id in &settings.summary.to {
            let key = Self::key(SUMMARY, due, id);
            let prior = self.records.get(&key.row_key());
            match self.ledger.judge(prior) {
                Verdict::Done(_) => continue,
                Verdict::Busy => {
                    self.unsettled = true;
                    continue;
                }
                Verdict::Owed { .. } | Verdict::Exhausted { .. } => {}
            }
            let channel = id.to_string();
            let sent: Vec<OffsetDateTime> = self
                .of_kind(SUMMARY)
                .filter(|&(c, _, status)| c == channel && status == Status::Delivered)
                .map(|(_, at, _)| at)
                .collect();
            // One for a later occurrence (SUMMARY_SCHEDULE moved earlier)
            // covered this period already.
            if sent.iter().any(|&at| at > due) {
                continue;
            }
            let last_sent = sent.into_iter().filter(|&at| at < due).max();
            let from = last_sent.map_or(previous, |sent| sent.min(previous));
            match periods.iter_mut().find(|(f, _)| *f == from) {
                Some((_, ids)) => ids.push(id.clone()),
                None => periods.push((from, vec![id.clone()])),
            }
        }
        for (from, ids) in periods {
            let summary = Summary::build(settings, storage, from, due, flow).await?;
            let notice = summary.notice();
            for id in &ids {
                self.send(SUMMARY, due, id, &notice).await?;
            }
        }
        Ok(())
    }
}
