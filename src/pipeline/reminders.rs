//! The timer run's third job: chasing leads nobody took. A lead alerted (an
//! alert delivered to at least one destination) but not taken within
//! `FOLLOW_UP_WITHIN` of its first delivery gets one reminder with its take
//! link on each `FOLLOW_UP_TO` destination (by default, where the lead went),
//! once per lead and destination through the ledger: records in a partition
//! of their own (the lead table's name with `/reminders`, escaped: no lead
//! table has that name), keyed by the lead's keys like its alerts. The leads
//! due on one destination go out together, in one message.
//!
//! Leads alerted before chasing was turned on are never chased. The first
//! run that sees `FOLLOW_UP_WITHIN` set records when it began (a "chasing
//! since" marker, kept in the state table and never moved), and only leads
//! first delivered after that are chased. A look-back window alone would
//! not do: on an upgrade, every lead of the last window would be chased at
//! once, long after anyone cared. The marker stays when the setting is
//! turned off and on again; the look-back below bounds what is chased then.
//!
//! An idle run with chasing off makes no request at all; with it on, one:
//! the deliveries of the look-back window. The process remembers the marker,
//! the reminders settled and the leads taken, so only a lead newly due costs
//! the reads of takes and reminder records.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::deliver::Channel;
use super::summary::RunSummary;
use super::Step;
use crate::config::Settings;
use crate::lead::LeadKey;
use crate::ledger::{keys, AlertKey, Entry, Ledger, Verdict};
use crate::notify::{Alert, DestinationId, Kind, Notifier};
use crate::storage::{
    format_timestamp, is_conflict, is_entity_missing, is_table_missing, parse_timestamp, Storage,
    StorageError,
};
use crate::take::store::TakeStore;

/// The marker's partition in the state table (its row: the lead table, as
/// the watermark's). Never change: users' state.
const SINCE_PARTITION: &str = "follow-up-since";

/// Leads in one reminder message at most (one claim transaction).
const MAX_PER_MESSAGE: usize = 100;

/// Leads one reminder to `id` lists, each with its link: a message settles
/// only the leads it shows, and a chat card shows fewer than an email.
fn per_message(id: &DestinationId) -> usize {
    match id.kind() {
        Kind::Teams | Kind::Slack => crate::summary::MAX_CARD_LINES,
        _ => MAX_PER_MESSAGE,
    }
}

/// What this process knows, so idle runs need not look again.
#[derive(Debug, Default)]
pub(super) struct Memo {
    /// When chasing began, as recorded in the state table.
    since: Option<OffsetDateTime>,
    /// Reminder records (row keys) found or left settled.
    settled: HashSet<String>,
    /// Leads found taken.
    taken: HashSet<LeadKey>,
}

/// A lead whose reminder is due.
struct Due {
    lead: LeadKey,
    /// The first delivery of its alert.
    alerted: OffsetDateTime,
    /// The lead row's `Timestamp` where known: its take link's expiry.
    lead_timestamp: Option<OffsetDateTime>,
    /// The destinations its alert was delivered to.
    went_to: Vec<DestinationId>,
}

/// A reminder owed: its lead, key and record as last seen.
type Owed<'d> = (&'d Due, AlertKey, Option<Entry>);

/// Sends the reminders that are due. `began` is when the run began (the
/// marker, the first time). Channels down go into the run's summary; only
/// storage errors end it.
pub(super) async fn send_due(
    step: Step<'_>,
    run: &mut RunSummary,
    memo: &Mutex<Memo>,
    began: OffsetDateTime,
) -> Result<(), StorageError> {
    let (settings, storage, notifiers) = (step.settings, step.storage, step.notifiers);
    let (Some(config), Some(take)) = (&settings.follow_up, &settings.take) else {
        return Ok(());
    };
    let now = crate::clock::now();
    let known_since = memo.lock().unwrap_or_else(|e| e.into_inner()).since;
    let since = match known_since {
        Some(since) => since,
        None => {
            let since = chasing_since(storage, settings, began).await?;
            memo.lock().unwrap_or_else(|e| e.into_inner()).since = Some(since);
            since
        }
    };
    let within = time::Duration::try_from(config.within).unwrap_or(time::Duration::MAX);
    // A reminder is still sent up to a day (or one more FOLLOW_UP_WITHIN,
    // if longer) past its time, so a channel down for a while gets it late;
    // older leads are not looked at, which bounds the query.
    let look_back = within + within.max(time::Duration::DAY);
    let from = since.max(now - look_back);
    let policy = super::policy(settings);
    let alerts = Ledger::new(
        storage,
        &settings.state_table,
        &settings.leads_table,
        step.run_id,
        policy,
    );
    let delivered = match alerts.delivered_since(from).await {
        Ok(found) => found,
        Err(StorageError::TableMissing { .. }) => return Ok(()),
        Err(e) => return Err(e),
    };
    let due = due_leads(delivered.into_values(), notifiers, now - within);
    // (lead, destination) pairs owed, less what this process knows settled.
    let mut wanted: Vec<(&Due, DestinationId, String)> = Vec::new();
    {
        let mut memo = memo.lock().unwrap_or_else(|e| e.into_inner());
        // What left the look-back window need not be remembered.
        let leads: HashSet<&LeadKey> = due.iter().map(|d| &d.lead).collect();
        memo.taken.retain(|lead| leads.contains(lead));
        let rows: HashSet<String> = due
            .iter()
            .flat_map(|d| {
                let to = config.to.as_ref().unwrap_or(&d.went_to);
                to.iter().map(|id| keys::ledger_row(&d.lead, id))
            })
            .collect();
        memo.settled.retain(|row| rows.contains(row));
        for lead in due.iter().filter(|d| !memo.taken.contains(&d.lead)) {
            let to = config.to.as_ref().unwrap_or(&lead.went_to);
            for id in to {
                let row = keys::ledger_row(&lead.lead, id);
                if !memo.settled.contains(&row) {
                    wanted.push((lead, id.clone(), row));
                }
            }
        }
    }
    if wanted.is_empty() {
        return Ok(());
    }
    // Taken meanwhile: no reminder.
    let mut leads: Vec<LeadKey> = wanted.iter().map(|(d, _, _)| d.lead.clone()).collect();
    leads.dedup();
    let taken = TakeStore::new(storage, &settings.state_table, &settings.leads_table)
        .lookup(&leads)
        .await?;
    wanted.retain(|(d, _, _)| !taken.contains_key(&d.lead));
    memo.lock()
        .unwrap_or_else(|e| e.into_inner())
        .taken
        .extend(taken.into_keys());
    if wanted.is_empty() {
        return Ok(());
    }
    let partition_table = format!("{}/reminders", settings.leads_table);
    let ledger = Ledger::new(
        storage,
        &settings.state_table,
        &partition_table,
        step.run_id,
        policy,
    );
    let rows: Vec<String> = wanted.iter().map(|(_, _, row)| row.clone()).collect();
    let records = match ledger.records(&rows).await {
        Ok(records) => records,
        Err(StorageError::TableMissing { .. }) => HashMap::new(),
        Err(e) => return Err(e),
    };
    // Per destination, the reminders still owed.
    let mut by_destination: Vec<(DestinationId, Vec<Owed>)> = Vec::new();
    for (lead, id, row) in wanted {
        let prior = records.get(&row).cloned();
        match ledger.judge(prior.as_ref()) {
            Verdict::Done(_) => {
                memo.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .settled
                    .insert(row);
                continue;
            }
            Verdict::Busy => continue,
            Verdict::Owed { .. } | Verdict::Exhausted { .. } => {}
        }
        let key = AlertKey {
            lead: lead.lead.clone(),
            channel: id.clone(),
            lead_timestamp: lead.alerted,
        };
        match by_destination.iter_mut().find(|(d, _)| *d == id) {
            Some((_, list)) => list.push((lead, key, prior)),
            None => by_destination.push((id, vec![(lead, key, prior)])),
        }
    }
    let scope = super::notices::scope(settings);
    for (id, owed) in by_destination {
        let Some(notifier) = notifiers.iter().find(|n| n.channel() == id) else {
            continue;
        };
        let mut channel = Channel::new(Arc::clone(notifier));
        for chunk in owed.chunks(per_message(&id)) {
            let since = Instant::now();
            let claims = chunk
                .iter()
                .map(|(_, key, prior)| (key.clone(), prior.clone()))
                .collect();
            let won = channel.claim_once(&ledger, claims).await?;
            if won.is_empty() {
                continue;
            }
            let listed: Vec<(OffsetDateTime, String)> = won
                .iter()
                .filter_map(|(key, _)| chunk.iter().find(|(_, k, _)| k.row_key() == key.row_key()))
                .map(|(lead, _, _)| {
                    let at = lead.lead_timestamp.unwrap_or(lead.alerted);
                    (lead.alerted, crate::take::link(take, &lead.lead, at))
                })
                .collect();
            let rows: Vec<String> = won.iter().map(|(key, _)| key.row_key()).collect();
            let notice = crate::summary::reminder(
                format!("{scope}|reminder|{}", digest(&rows)),
                config.within,
                &listed,
            );
            let before = (channel.tally.pending, channel.tally.busy);
            channel
                .send_claimed(&ledger, step.limits, won, since, Alert::Notice(&notice))
                .await?;
            if (channel.tally.pending, channel.tally.busy) == before {
                memo.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .settled
                    .extend(rows);
            }
        }
        for problem in std::mem::take(&mut channel.tally.problems) {
            run.problem(problem);
        }
        if channel.tally.pending > 0 {
            run.problem(format!(
                "{id}: {} reminder(s) not sent, to retry next run",
                channel.tally.pending
            ));
        }
        if channel.tally.delivered > 0 {
            tracing::info!(channel = %id, reminders = channel.tally.delivered, "untaken leads chased");
        }
    }
    Ok(())
}

/// The leads among these ledger records whose first delivery was at or
/// before `deadline`, with the destinations (that take notes) they went to,
/// oldest first.
fn due_leads(
    delivered: impl Iterator<Item = Entry>,
    notifiers: &[Arc<dyn Notifier>],
    deadline: OffsetDateTime,
) -> Vec<Due> {
    let mut leads: HashMap<LeadKey, Due> = HashMap::new();
    for entry in delivered {
        let r = entry.record;
        let Some(at) = parse_timestamp(&r.updated_at) else {
            continue;
        };
        let lead = LeadKey {
            partition_key: r.lead_partition_key,
            row_key: r.lead_row_key,
        };
        let due = leads.entry(lead.clone()).or_insert_with(|| Due {
            lead,
            alerted: at,
            lead_timestamp: parse_timestamp(&r.lead_timestamp),
            went_to: Vec::new(),
        });
        due.alerted = due.alerted.min(at);
        let id = notifiers
            .iter()
            .map(|n| n.channel())
            .find(|id| id.to_string() == r.channel && id.kind().takes_notices());
        if let Some(id) = id {
            if !due.went_to.contains(&id) {
                due.went_to.push(id);
            }
        }
    }
    let mut due: Vec<Due> = leads
        .into_values()
        .filter(|d| d.alerted <= deadline)
        .collect();
    due.sort_by(|a, b| (a.alerted, &a.lead.row_key).cmp(&(b.alerted, &b.lead.row_key)));
    due
}

/// A short stable name for a set of reminder records (a message's id).
fn digest(rows: &[String]) -> String {
    let mut hash = Sha256::new();
    for row in rows {
        hash.update(row.as_bytes());
        hash.update(b"\n");
    }
    hex::encode(&hash.finalize()[..16])
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SinceEntity {
    partition_key: String,
    row_key: String,
    #[serde(default)]
    lead_table: String,
    #[serde(default)]
    since: String,
}

/// When chasing began for this lead table: the recorded marker, or `began`
/// recorded now (insert-only: of two first runs, the first write wins).
async fn chasing_since(
    storage: &Storage,
    settings: &Settings,
    began: OffsetDateTime,
) -> Result<OffsetDateTime, StorageError> {
    let table = &settings.state_table;
    let row = keys::watermark_row(&settings.leads_table);
    let error = |e: azure_core::Error| {
        storage.error(
            e,
            table,
            format!("reading when chasing untaken leads began in state table {table}"),
        )
    };
    let read = || async {
        let got = storage
            .table(table)
            .partition_key_client(SINCE_PARTITION)
            .entity_client(row.as_str())
            .get::<SinceEntity>()
            .await;
        match got {
            Ok(found) => Ok(Some(found.entity)),
            Err(e) if is_entity_missing(&e) || is_table_missing(&e) => Ok(None),
            Err(e) => Err(error(e)),
        }
    };
    let entity = match read().await? {
        Some(found) => found,
        None => {
            let entity = SinceEntity {
                partition_key: SINCE_PARTITION.to_owned(),
                row_key: row.clone(),
                lead_table: settings.leads_table.clone(),
                since: format_timestamp(began),
            };
            storage.create_table_if_missing(table).await?;
            let insert = storage.table(table).insert::<_, serde_json::Value>(&entity);
            let result = match insert {
                Ok(request) => request.await.map(drop),
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => entity,
                Err(e) if is_conflict(&e) => read().await?.unwrap_or(entity),
                Err(e) => return Err(error(e)),
            }
        }
    };
    parse_timestamp(&entity.since).ok_or_else(|| StorageError::Other {
        account: storage.account().to_owned(),
        action: format!("reading when chasing untaken leads began in state table {table}"),
        reason: format!("unreadable time {:?}", entity.since),
    })
}
