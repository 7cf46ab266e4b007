//! `lead.taken`: when someone takes a lead through its link, every signed
//! webhook whose route takes the lead gets one Standard Webhooks event, so
//! a CRM can assign the owner. Only signed webhooks: no other channel is
//! ever handed one.
//!
//! Exactly once per take and destination through the ledger, in a
//! partition of its own (the lead table's name with `/taken`, escaped: no
//! lead table has that name), keyed by the lead's keys. The `LeadTake`
//! function that wins a take tries once at once ([`Pipeline::announce_take`],
//! in the background after its answer); every timer run sends what is
//! still owed: take records of the last [`OWED_FOR`] without a settled
//! record on a destination that takes the lead (the receiver was down, or
//! the process ended before it tried).
//!
//! An idle run costs one query of the take records (only with take links
//! on and a signed webhook configured): the process remembers which recent
//! takes it saw settled everywhere and how far back it must look again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use super::deliver::{send_message_once, Limits};
use super::summary::RunSummary;
use super::{Pipeline, RunError};
use crate::config::Settings;
use crate::lead::{Lead, LeadKey, LeadRow};
use crate::lead_table::stored_row;
use crate::ledger::{keys, AlertKey, Entry, Ledger, Policy, Verdict};
use crate::notify::webhook::lead_event::{TakenEvent, TAKEN_TYPE};
use crate::notify::{Alert, Kind, Notice, Notifier};
use crate::storage::{format_timestamp, parse_timestamp, Storage, StorageError};
use crate::take::store::{Take, TakeStore};

/// How long after a take its event is still owed.
const OWED_FOR: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// How much earlier than its record's arrival a take's time may be (the
/// insert's own time, clocks of other instances): a run looks back this
/// much before the time up to which it saw everything settled.
const MARGIN: Duration = Duration::from_secs(5 * 60);

/// How long the `LeadTake` function's own try may take in the background.
const AT_ONCE: Duration = Duration::from_secs(10);

/// What this process found settled, so idle runs read little.
#[derive(Debug, Default)]
pub(super) struct Memo {
    /// Every take recorded before this (less [`MARGIN`]) is settled.
    through: Option<OffsetDateTime>,
    /// Takes since then settled on every destination, with their times.
    settled: HashMap<LeadKey, OffsetDateTime>,
}

/// The signed webhooks among the channels.
fn webhooks(notifiers: &[Arc<dyn Notifier>]) -> Vec<Arc<dyn Notifier>> {
    notifiers
        .iter()
        .filter(|n| n.channel().kind() == Kind::Webhook)
        .cloned()
        .collect()
}

fn ledger<'a>(settings: &'a Settings, storage: &'a Storage, run_id: &'a str) -> Ledger<'a> {
    Ledger::new(
        storage,
        &settings.state_table,
        &format!("{}/taken", settings.leads_table),
        run_id,
        Policy {
            claim_lease: settings.claim_lease,
            max_attempts: settings.max_attempts.max(1),
        },
    )
}

/// Sends one take's event to the webhooks that take the lead and have no
/// settled record of it.
struct Sender<'a> {
    settings: &'a Settings,
    ledger: Ledger<'a>,
    webhooks: Vec<Arc<dyn Notifier>>,
    limits: Limits,
    problems: Vec<String>,
}

impl Sender<'_> {
    fn key(lead: &LeadKey, take: &Take, to: &Arc<dyn Notifier>) -> AlertKey {
        AlertKey {
            lead: lead.clone(),
            channel: to.channel(),
            // The take's time: what the partition's records are ordered by.
            lead_timestamp: take.at,
        }
    }

    /// Whether every webhook has a settled record of this take.
    fn all_done(&self, lead: &LeadKey, take: &Take, records: &HashMap<String, Entry>) -> bool {
        self.webhooks.iter().all(|to| {
            let prior = records.get(&Self::key(lead, take, to).row_key());
            matches!(self.ledger.judge(prior), Verdict::Done(_))
        })
    }

    /// Sends what is owed of `take` of `lead` (its link attached here);
    /// `records` holds what the ledger had (a record missing from it is
    /// claimed by insert, which finds one written meanwhile anyway). True
    /// when nothing is left for a later run.
    async fn send(
        &mut self,
        lead: &mut Lead,
        take: &Take,
        records: &HashMap<String, Entry>,
    ) -> Result<bool, StorageError> {
        crate::take::attach(self.settings.take.as_ref(), lead, take.at);
        // To the record's precision (100 ns): the same event whether it is
        // sent at once or by the timer from the record.
        let at = parse_timestamp(&format_timestamp(take.at)).unwrap_or(take.at);
        let event = TakenEvent::lead_taken(lead, &take.by, at);
        let event = serde_json::to_value(&event).unwrap_or_default();
        let notice = Notice::machine_event(
            format!("{TAKEN_TYPE}|{}", keys::lead_row(&lead.key)),
            format!("Lead {} taken", lead.key),
            event,
        );
        let mut settled = true;
        for to in self.webhooks.clone() {
            let id = to.channel();
            if !self.settings.destinations.router.takes(&id, lead) {
                continue;
            }
            let key = Self::key(&lead.key, take, &to);
            let prior = records.get(&key.row_key()).cloned();
            let message = Alert::Notice(&notice);
            let once = send_message_once(
                to,
                &self.ledger,
                self.limits,
                key,
                prior,
                message,
                TAKEN_TYPE,
            )
            .await?;
            self.problems.extend(once.problems);
            settled &= !once.unsettled;
        }
        Ok(settled)
    }
}

/// The timer run's part: sends every `lead.taken` still owed. Problems go
/// into the run's summary; only storage errors end it.
pub(super) async fn send_owed(
    settings: &Settings,
    storage: &Storage,
    notifiers: &[Arc<dyn Notifier>],
    run_id: &str,
    limits: Limits,
    run: &mut RunSummary,
    memo: &Mutex<Memo>,
) -> Result<(), StorageError> {
    let webhooks = webhooks(notifiers);
    if settings.take.is_none() || webhooks.is_empty() {
        return Ok(());
    }
    let now = OffsetDateTime::now_utc();
    let floor = now - OWED_FOR;
    let from = {
        let memo = memo.lock().unwrap_or_else(|e| e.into_inner());
        memo.through.map_or(floor, |t| (t - MARGIN).max(floor))
    };
    let takes = TakeStore::new(storage, &settings.state_table, &settings.leads_table)
        .since(from)
        .await?;
    let mut open: Vec<(LeadKey, Take)> = {
        let memo = memo.lock().unwrap_or_else(|e| e.into_inner());
        takes
            .into_iter()
            .filter(|(lead, _)| !memo.settled.contains_key(lead))
            .collect()
    };
    open.sort_by_key(|(_, take)| take.at);
    let mut sender = Sender {
        settings,
        ledger: ledger(settings, storage, run_id),
        webhooks,
        limits,
        problems: Vec::new(),
    };
    let records = if open.is_empty() {
        HashMap::new()
    } else {
        let rows: Vec<String> = open
            .iter()
            .flat_map(|(lead, take)| {
                sender
                    .webhooks
                    .iter()
                    .map(|to| Sender::key(lead, take, to).row_key())
            })
            .collect();
        sender.ledger.records(&rows).await?
    };
    let mut settled = Vec::new();
    let mut unsettled: Option<OffsetDateTime> = None;
    for (key, take) in open {
        let done = if sender.all_done(&key, &take, &records) {
            true
        } else {
            let probe = LeadRow {
                partition_key: key.partition_key.clone(),
                row_key: key.row_key.clone(),
                ..LeadRow::default()
            };
            match stored_row(storage, &settings.leads_table, &probe).await? {
                // Gone from the lead table: nothing left to describe.
                None => {
                    tracing::warn!(lead = %key, "a taken lead is no longer in the lead table: no {TAKEN_TYPE} event");
                    true
                }
                Some(row) => {
                    sender
                        .send(&mut Lead::from_row(&row), &take, &records)
                        .await?
                }
            }
        };
        if done {
            settled.push((key, take.at));
        } else {
            unsettled = Some(unsettled.map_or(take.at, |u| u.min(take.at)));
        }
    }
    for problem in sender.problems {
        run.problem(problem);
    }
    let mut memo = memo.lock().unwrap_or_else(|e| e.into_inner());
    let through = unsettled.unwrap_or(now);
    memo.through = Some(through);
    memo.settled.extend(settled);
    // Older ones are not read again.
    memo.settled.retain(|_, at| *at >= through - MARGIN);
    Ok(())
}

impl Pipeline {
    /// Sends `lead.taken` for a take just won to every signed webhook whose
    /// route takes `lead`: one try each, within a few seconds; what is not
    /// delivered stays owed for the timer runs. The `LeadTake` function
    /// runs this in the background, after its answer.
    pub async fn announce_take(&self, mut lead: Lead, take: Take) -> Result<(), RunError> {
        let settings = &*self.settings;
        let webhooks = webhooks(&self.notifiers);
        if settings.take.is_none() || webhooks.is_empty() {
            return Ok(());
        }
        let storage = self.storage();
        let run_id = super::new_run_id();
        let mut sender = Sender {
            settings,
            ledger: ledger(settings, &storage, &run_id),
            webhooks,
            limits: Limits {
                digest_after: settings.digest_after,
                // One try: the timer retries.
                retry_budget: Duration::ZERO,
                max_attempts: settings.max_attempts.max(1),
                deadline: Some(Instant::now() + AT_ONCE),
            },
            problems: Vec::new(),
        };
        sender.send(&mut lead, &take, &HashMap::new()).await?;
        for problem in sender.problems {
            tracing::warn!("{problem}");
        }
        Ok(())
    }
}
