//! The one path from lead rows to alerts, shared by the timer invocation,
//! the CLI's `poll` and the `watch` loop:
//!
//! load the watermark → scan the lead table from it (less the overlap
//! window), page by page → per page: parse, filter, judge each (lead,
//! channel) against the ledger, counting what is owed → per channel, claim,
//! send and settle: a few alerts one by one, many as digests read from a
//! second scan of the same rows → move the watermark to the earliest lead
//! with an unfinished alert, else the latest row seen.
//!
//! An idle run costs at most three storage requests: the watermark, one scan
//! page, and the ledger records of that page's window (one more with
//! `FOLLOW_UP_WITHIN` set: the recent deliveries, see `reminders`).

mod deliver;
mod digests;
mod lease;
mod notices;
mod owed;
mod reminders;
mod run;
mod summary;
mod taken;

use std::sync::Arc;
use std::time::{Duration, Instant};

use time::OffsetDateTime;

pub use summary::RunSummary;

use crate::config::Settings;
use crate::history::RunHistory;
use crate::lead::LeadRow;
use crate::lead_table::{self, Scan};
use crate::ledger::{keys, Ledger, Policy, Watermarks};
use crate::notify::Notifier;
use crate::storage::{format_timestamp, Storage, StorageError};
use deliver::{Channel, Limits};
use digests::Reread;
use run::Run;

/// Why a run could not finish. Alerts left undelivered are not errors: they
/// are in the [`RunSummary`].
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Everything a run needs; cheap to keep for the life of the process, and
/// to clone into a task.
#[derive(Clone)]
pub struct Pipeline {
    settings: Arc<Settings>,
    notifiers: Vec<Arc<dyn Notifier>>,
    /// Shared by every run's storage client, so connections are reused.
    http: reqwest::Client,
    /// What the summary and health step found settled in this process.
    notices: Arc<std::sync::Mutex<notices::Memo>>,
    /// What the `lead.taken` step found settled in this process.
    taken: Arc<std::sync::Mutex<taken::Memo>>,
    /// What the chasing step knows of untaken leads in this process.
    reminders: Arc<std::sync::Mutex<reminders::Memo>>,
}

impl Pipeline {
    /// No I/O.
    pub fn new(settings: Arc<Settings>, notifiers: Vec<Arc<dyn Notifier>>) -> Pipeline {
        let http = crate::tls::http_client();
        Pipeline {
            settings,
            notifiers,
            http,
            notices: Arc::default(),
            taken: Arc::default(),
            reminders: Arc::default(),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// A storage client with its own request counter.
    pub fn storage(&self) -> Storage {
        Storage::new(&self.settings.storage, self.http.clone())
    }

    /// One poll of the lead table.
    pub async fn run_once(&self) -> Result<RunSummary, RunError> {
        let started = Instant::now();
        let began = OffsetDateTime::now_utc();
        let storage = self.storage();
        let run_id = new_run_id();
        let settings = &*self.settings;
        let watermarks = Watermarks::new(&storage, &settings.state_table, &settings.leads_table);
        let loaded = watermarks.load().await?;
        let from = match &loaded {
            Some(w) => Some(w.at - settings.scan_overlap),
            None => settings.start_from.resolve(OffsetDateTime::now_utc()),
        };
        let mut run = self.start(&storage, &run_id);
        let mut scan = Scan::new(&storage, &settings.leads_table, from);
        let mut known = None;
        while let Some(rows) = scan.next_page().await? {
            if rows.is_empty() {
                continue;
            }
            run.summary.rows_scanned += rows.len() as u64;
            // Fetched only once there is something to judge, so an empty
            // scan costs no ledger request. Its bound is a little earlier
            // because Azurite compares `Timestamp` at millisecond precision
            // (rows up to 1 ms before `from` come back) while the ledger's
            // text filter is exact.
            if known.is_none() {
                let window = from.map(|f| f - Duration::from_millis(2));
                known = Some(run.ledger.window(window).await?);
            }
            if let Some(known) = &known {
                run.judge(&rows, known).await?;
            }
        }
        for problem in scan.take_unreadable() {
            run.summary.problem(problem);
        }
        let known = known.unwrap_or_default();
        let table = &settings.leads_table;
        run.deliver(&known, || Reread::Scan(Scan::new(&storage, table, from)))
            .await?;
        // The first run pins its start, so a later first lead is not missed
        // by a look-back window that slides.
        let first_start = if loaded.is_none() { from } else { None };
        // Never past the run's own start: a row committed while a long scan
        // was paging may carry an earlier timestamp than rows already seen.
        let target = run
            .unfinished
            .or(run.latest)
            .or(first_start)
            .map(|t| t.min(began));
        let mut watermark = loaded.as_ref().map(|w| w.at);
        if let Some(target) = target {
            watermark = Some(watermarks.advance(loaded, target, &run_id).await?);
        }
        let limits = run.limits;
        let mut summary = run.summary;
        summary.watermark = watermark.map(format_timestamp);
        let step = Step {
            settings,
            storage: &storage,
            notifiers: &self.notifiers,
            run_id: &run_id,
            limits,
        };
        notices::send_due(step, &mut summary, &self.notices, watermark).await?;
        taken::send_owed(
            settings,
            &storage,
            &self.notifiers,
            &run_id,
            limits,
            &mut summary,
            &self.taken,
        )
        .await?;
        reminders::send_due(step, &mut summary, &self.reminders, began).await?;
        Ok(finish(summary, &storage, started))
    }

    /// Alerts these rows now, through the same claim, send and record steps
    /// as a run, without scanning or moving the watermark (the real-time
    /// webhook, after it stored the rows).
    pub async fn alert_rows(&self, rows: &[LeadRow]) -> Result<RunSummary, RunError> {
        self.alert_rows_within(rows, None).await
    }

    /// [`Self::alert_rows`], starting sends and retries only until `budget`
    /// has passed: what is left then is recorded for retry and the next
    /// timer run sends it, since its row is stored. A send under way is
    /// never cut off; a caller that cannot wait runs this in its own task.
    pub async fn alert_rows_within(
        &self,
        rows: &[LeadRow],
        budget: Option<Duration>,
    ) -> Result<RunSummary, RunError> {
        let started = Instant::now();
        let storage = self.storage();
        let run_id = new_run_id();
        storage
            .create_table_if_missing(&self.settings.state_table)
            .await?;
        let mut run = self.start(&storage, &run_id);
        run.limits.deadline = budget.map(|b| started + b);
        run.summary.rows_scanned = rows.len() as u64;
        // The records there are, so a skip or a claim starts from them.
        let row_keys: Vec<String> = rows
            .iter()
            .flat_map(|row| {
                let lead = row.key();
                run.channels
                    .iter()
                    .map(move |c| keys::ledger_row(&lead, &c.id()))
            })
            .collect();
        let known = run.ledger.records(&row_keys).await?;
        run.judge(rows, &known).await?;
        run.deliver(&known, || Reread::Rows(rows.to_vec())).await?;
        Ok(finish(run.summary, &storage, started))
    }

    /// Reaches storage: the lead table exists and the state table answers.
    /// Writes nothing.
    pub async fn storage_check(&self) -> Result<(), RunError> {
        let storage = self.storage();
        let settings = &*self.settings;
        lead_table::probe(&storage, &settings.leads_table).await?;
        Watermarks::new(&storage, &settings.state_table, &settings.leads_table)
            .probe()
            .await?;
        Ok(())
    }

    fn start<'a>(&'a self, storage: &'a Storage, run_id: &'a str) -> Run<'a> {
        let settings = &*self.settings;
        let policy = policy(settings);
        let channels: Vec<Channel> = self.notifiers.iter().cloned().map(Channel::new).collect();
        Run {
            ledger: Ledger::new(
                storage,
                &settings.state_table,
                &settings.leads_table,
                run_id,
                policy,
            ),
            history: {
                let history = RunHistory::new(
                    storage,
                    &settings.state_table,
                    &settings.leads_table,
                    settings.repeat_window,
                );
                match &settings.take {
                    Some(_) => {
                        history.with_takes(storage, &settings.state_table, &settings.leads_table)
                    }
                    None => history,
                }
            },
            summary: RunSummary::new(run_id.to_owned(), channels.iter().map(Channel::id)),
            channels,
            limits: Limits {
                digest_after: settings.digest_after,
                retry_budget: settings.retry_budget,
                max_attempts: policy.max_attempts,
                deadline: None,
            },
            settings,
            unfinished: None,
            latest: None,
        }
    }
}

fn finish(mut summary: RunSummary, storage: &Storage, started: Instant) -> RunSummary {
    summary.storage_requests = storage.requests();
    summary.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    tracing::info!(
        run_id = %summary.run_id,
        rows_scanned = summary.rows_scanned,
        leads_new = summary.leads_new,
        delivered = summary.delivered_total(),
        failed = summary.failed,
        pending = summary.pending,
        busy = summary.busy,
        storage_requests = summary.storage_requests,
        watermark = summary.watermark.as_deref().unwrap_or("-"),
        "run finished"
    );
    summary
}

/// What the timer run's steps after the leads (notices, reminders) share.
#[derive(Clone, Copy)]
struct Step<'a> {
    settings: &'a Settings,
    storage: &'a Storage,
    notifiers: &'a [Arc<dyn Notifier>],
    run_id: &'a str,
    limits: Limits,
}

/// How records are judged and claimed, from the settings.
fn policy(settings: &Settings) -> Policy {
    Policy {
        claim_lease: settings.claim_lease,
        max_attempts: settings.max_attempts.max(1),
    }
}

fn new_run_id() -> String {
    format!("{:016x}", fastrand::u64(..))
}

/// Keeps in `slot` the earliest of the times it is given: where the
/// watermark must stay before an unfinished lead.
fn earliest(slot: &mut Option<OffsetDateTime>, t: OffsetDateTime) {
    *slot = Some(slot.map_or(t, |u| u.min(t)));
}
