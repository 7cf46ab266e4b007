//! The measurements, in the order they run: cold start on empty tables, a
//! 10,000-lead backlog followed by idle runs on the same warm process, the
//! scan against its raw-HTTP floor, and the sizes.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use super::cpu;
use super::handler::{Handler, Invocation};
use super::report::{at_most, below, median, Report, Unit};
use super::sink::WebhookSink;
use super::table::{Metadata, ScanStats, TableClient};
use super::{file_size, run_quietly, Binary, Options};
use crate::servers::{Azurite, MailDev};
use crate::{say, target_dir};

const LEAD_TABLE: &str = "BenchLeads";
/// `lead-notifier seed` makes its first three rows a test, a `.edu` and a
/// do-not-contact lead: never alerted.
const SKIPPED_BY_SEED: usize = 3;
/// SCAN_OVERLAP of the backlog and idle runs: its minimum.
const OVERLAP: &str = "1s";
/// Leads per digest email (`notify::email::MAX_DIGEST_LEADS`).
const DIGEST_EMAIL_LEADS: usize = 500;
/// Matches every row, in the shape the product's scans use.
const ALL_ROWS: &str = "Timestamp ge datetime'2000-01-01T00:00:00.0000000Z'";
const MAILDEV_WAIT: Duration = Duration::from_secs(10);

pub struct Bench<'a> {
    pub binary: PathBuf,
    pub options: &'a Options,
    pub azurite: &'a Azurite,
    pub maildev: &'a MailDev,
    pub sink: &'a WebhookSink,
    pub table: TableClient,
    pub report: Report,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Bench<'_> {
    /// Every channel on, against the local servers. `overlap` is
    /// SCAN_OVERLAP.
    fn settings(
        &self,
        state_table: &str,
        overlap: &str,
        lead_table: &str,
    ) -> Vec<(String, String)> {
        [
            ("LEADS_STORAGE_CONNECTION", self.azurite.connection_string()),
            ("LEADS_TABLE", lead_table.to_owned()),
            ("LEADS_STATE_TABLE", state_table.to_owned()),
            ("LEADS_START_FROM", "beginning".to_owned()),
            ("SCAN_OVERLAP", overlap.to_owned()),
            ("SMTP_HOST", "127.0.0.1".to_owned()),
            ("SMTP_PORT", self.maildev.smtp_port.to_string()),
            ("SMTP_SECURITY", "none".to_owned()),
            (
                "EMAIL_FROM",
                "Lead alerts <leads@bench.example.com>".to_owned(),
            ),
            ("EMAIL_TO", "sales@bench.example.com".to_owned()),
            ("TEAMS_WEBHOOK_URL", self.sink.url()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Process start → first answer to `GET /`, and → first timer run
    /// answered, on a fresh empty lead table each time.
    pub fn cold_start(&mut self) -> Result<()> {
        say(format!("cold start × {}", self.options.runs));
        let (mut ready, mut first, mut requests) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..self.options.runs {
            let lead_table = format!("ColdLeads{i}");
            self.table.create_table(&lead_table)?;
            let settings = self.settings(&format!("ColdState{i}"), "5m", &lead_table);
            let mut handler = Handler::spawn(&self.binary, "bench-handler-cold", &settings)?;
            ready.push(ms(handler.wait_ready()?));
            let run = handler.invoke_timer()?;
            first.push(ms(handler.started.elapsed()));
            requests.push(run.summary.storage_requests as f64);
            if i == 0 {
                say(format!(
                    "handler memory after a first run on an empty table: {}",
                    handler.memory_line()
                ));
            }
            handler.stop();
        }
        let r = &mut self.report;
        r.section("Cold start");
        r.add(
            "process start → first answer to `GET /`",
            Unit::Ms,
            ready,
            below(20.0),
        );
        r.add(
            "process start → first timer run answered (empty table)",
            Unit::Ms,
            first,
            None,
        );
        r.add(
            "storage requests of that first run",
            Unit::Count,
            requests,
            None,
        );
        Ok(())
    }

    fn seed_command(&self, count: usize) -> Command {
        let mut seed = Command::new(&self.binary);
        seed.args(["seed", "--count", &count.to_string()])
            .env_clear()
            .envs(self.settings("BenchSeedState", OVERLAP, LEAD_TABLE));
        seed
    }

    /// Seeds the lead table once; each backlog run then starts from a fresh
    /// state table, so all leads are new to it, on a fresh process.
    pub fn backlog_and_idle(&mut self) -> Result<()> {
        let leads = self.options.leads;
        say(format!("seeding {leads} leads"));
        let seeded = Instant::now();
        run_quietly("lead-notifier seed", &mut self.seed_command(leads))?;
        let seed_time = seeded.elapsed();
        // One more row (a test lead, never alerted) written after more than
        // SCAN_OVERLAP: idle runs scan from it, so the backlog's rows are
        // history to them, as in a real table.
        std::thread::sleep(Duration::from_millis(1_200));
        run_quietly("lead-notifier seed", &mut self.seed_command(1))?;

        let expected = (leads - SKIPPED_BY_SEED) as u64;
        let (mut wall, mut rate, mut inside, mut requests, mut rss) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut idle, mut idle_requests, mut idle_inside) = (Vec::new(), Vec::new(), Vec::new());
        let mut emails_seen = Vec::new();
        let mut cards_seen = Vec::new();
        let (mut idle_floor, mut idle_floor_requests) = (Vec::new(), Vec::new());
        let servers = [
            cpu::find(&["--tablePort", &self.azurite.port.to_string()]),
            cpu::find(&["--smtp", &self.maildev.smtp_port.to_string()]),
        ];
        let mut busy: [Vec<f64>; 3] = Default::default();
        for i in 0..self.options.backlog_runs {
            say(format!(
                "backlog run {} of {}",
                i + 1,
                self.options.backlog_runs
            ));
            self.maildev.clear()?;
            let (cards_before, _) = self.sink.counts();
            let settings = self.settings(&format!("BenchState{i}"), OVERLAP, LEAD_TABLE);
            let mut handler = Handler::spawn(&self.binary, "bench-handler-backlog", &settings)?;
            handler.wait_ready()?;
            say(format!(
                "handler memory after start: {}",
                handler.memory_line()
            ));
            let pids = [Some(handler.pid()), servers[0], servers[1]];
            let before = pids.map(|pid| pid.and_then(cpu::seconds));
            let run = handler.invoke_timer()?;
            for ((pid, before), busy) in pids.iter().zip(before).zip(busy.iter_mut()) {
                if let (Some(after), Some(before)) = (pid.and_then(cpu::seconds), before) {
                    busy.push(after - before);
                }
            }
            rss.push(handler.peak_rss()? as f64 / 1e6);
            say(format!(
                "handler memory after the backlog: {}",
                handler.memory_line()
            ));
            check_backlog(&run, expected)?;
            wall.push(run.latency.as_secs_f64());
            rate.push(leads as f64 / run.latency.as_secs_f64());
            inside.push(run.summary.duration_ms as f64 / 1000.0);
            requests.push(run.summary.storage_requests as f64);
            emails_seen.push(maildev_count(
                self.maildev,
                expected.div_ceil(DIGEST_EMAIL_LEADS as u64),
            )?);
            cards_seen.push(self.sink.counts().0 - cards_before);

            for _ in 0..self.options.runs {
                let run = handler.invoke_timer()?;
                if run.summary.delivered("email") + run.summary.delivered("teams") != 0 {
                    bail!("an idle run delivered alerts: {}", run.raw);
                }
                idle.push(ms(run.latency));
                idle_requests.push(run.summary.storage_requests as f64);
                idle_inside.push(run.summary.duration_ms as f64);
                let Some(watermark) = &run.summary.watermark else {
                    bail!("an idle run reported no watermark: {}", run.raw);
                };
                let floor = self.idle_floor(&format!("BenchState{i}"), watermark)?;
                idle_floor.push(ms(floor.0));
                idle_floor_requests.push(floor.1 as f64);
            }
            say(format!(
                "handler memory after idle runs: {}",
                handler.memory_line()
            ));
            handler.stop();
        }
        let r = &mut self.report;
        r.section(&format!("Idle run ({leads} historical rows, nothing new)"));
        r.add("invocation latency", Unit::Ms, idle, below(50.0));
        r.add(
            "run time reported by the handler",
            Unit::Ms,
            idle_inside,
            None,
        );
        r.add("storage requests", Unit::Count, idle_requests, at_most(3.0));
        r.add(
            "floor: the same requests as plain GETs",
            Unit::Ms,
            idle_floor,
            None,
        );
        r.add("floor: requests", Unit::Count, idle_floor_requests, None);
        r.section(&format!("Backlog ({leads} new leads, email and Teams)"));
        r.add(
            "invocation → every alert delivered",
            Unit::Seconds,
            wall,
            below(10.0),
        );
        r.add("leads per second", Unit::PerSecond, rate, None);
        r.add(
            "run time reported by the handler",
            Unit::Seconds,
            inside,
            None,
        );
        r.add("storage requests", Unit::Count, requests, None);
        r.add(
            "digest emails received by MailDev",
            Unit::Count,
            emails_seen.iter().map(|&n| n as f64).collect(),
            None,
        );
        r.add(
            "Teams cards received",
            Unit::Count,
            cards_seen.iter().map(|&n| n as f64).collect(),
            None,
        );
        r.add(
            "peak RSS of the handler (VmHWM)",
            Unit::MB,
            rss,
            below(20.0),
        );
        let [handler_cpu, azurite_cpu, maildev_cpu] = busy;
        r.add("CPU time: handler", Unit::Seconds, handler_cpu, None);
        r.add("CPU time: Azurite", Unit::Seconds, azurite_cpu, None);
        r.add("CPU time: MailDev", Unit::Seconds, maildev_cpu, None);
        r.note(format!(
            "Setup, not a figure: `lead-notifier seed --count {leads}` took {:.1} s.",
            seed_time.as_secs_f64()
        ));
        Ok(())
    }

    /// The product re-reading every row it has handled (SCAN_OVERLAP 24h:
    /// all rows and their ledger records are read, nothing is sent) against
    /// plain signed GETs of the same rows. Interleaved so drift in Azurite's
    /// speed hits both alike.
    pub fn scan(&mut self) -> Result<()> {
        // The backlog and the row written after it.
        let leads = self.options.leads as u64 + 1;
        let last_state = format!("BenchState{}", self.options.backlog_runs - 1);
        let ledger_filter = format!(
            "PartitionKey eq 'ledger-{}' and LeadTimestamp ge '2000-01-01T00:00:00.0000000Z'",
            LEAD_TABLE.to_ascii_lowercase()
        );
        let settings = self.settings(&last_state, "24h", LEAD_TABLE);
        let mut handler = Handler::spawn(&self.binary, "bench-handler-scan", &settings)?;
        handler.wait_ready()?;
        // Warm-up: the first run builds the pipeline and opens connections.
        handler.invoke_timer()?;
        self.floor(LEAD_TABLE, ALL_ROWS, Metadata::Full, leads)?;
        say(format!("scan vs floor × {}", self.options.runs));
        let (mut product, mut product_requests) = (Vec::new(), Vec::new());
        let (mut rows, mut ledger, mut rows_lean) = (Vec::new(), Vec::new(), Vec::new());
        let mut floor_requests = Vec::new();
        for _ in 0..self.options.runs {
            let run = handler.invoke_timer()?;
            if run.summary.rows_scanned != leads {
                bail!(
                    "the scan run read {} rows, not {leads}",
                    run.summary.rows_scanned
                );
            }
            product.push(ms(run.latency));
            product_requests.push(run.summary.storage_requests as f64);
            let lead_rows = self.floor(LEAD_TABLE, ALL_ROWS, Metadata::Full, leads)?;
            let records = self.floor(&last_state, &ledger_filter, Metadata::Full, 2 * leads)?;
            rows.push(ms(lead_rows.elapsed));
            ledger.push(ms(records.elapsed));
            floor_requests.push((lead_rows.requests + records.requests) as f64);
            rows_lean.push(ms(self
                .floor(LEAD_TABLE, ALL_ROWS, Metadata::None, leads)?
                .elapsed));
        }
        handler.stop();
        let sums: Vec<f64> = rows.iter().zip(&ledger).map(|(a, b)| a + b).collect();
        let ratio = median(&product) / median(&sums);
        let r = &mut self.report;
        r.section(&format!(
            "Scan of {leads} handled rows vs the raw-HTTP floor"
        ));
        r.add(
            "product: invocation re-reading all rows and their ledger records",
            Unit::Ms,
            product,
            None,
        );
        r.add(
            "product: storage requests",
            Unit::Count,
            product_requests,
            None,
        );
        r.add(
            "floor: lead rows, plain GETs, full metadata",
            Unit::Ms,
            rows,
            None,
        );
        r.add(
            "floor: ledger records, plain GETs, full metadata",
            Unit::Ms,
            ledger,
            None,
        );
        r.add("floor: lead rows + ledger records", Unit::Ms, sums, None);
        r.add("floor: storage requests", Unit::Count, floor_requests, None);
        r.add(
            "floor: lead rows, plain GETs, no metadata",
            Unit::Ms,
            rows_lean,
            None,
        );
        r.add(
            "product ÷ floor (medians)",
            Unit::Ratio,
            vec![ratio],
            at_most(1.3),
        );
        Ok(())
    }

    /// What an idle run asks storage for, as plain requests: the watermark
    /// (a point read), the lead rows from it and their ledger records.
    fn idle_floor(&mut self, state_table: &str, watermark: &str) -> Result<(Duration, u64)> {
        let table_id = LEAD_TABLE.to_ascii_lowercase();
        let started = Instant::now();
        let status = self.table.get_entity(state_table, "watermark", &table_id)?;
        if status != 200 {
            bail!("reading the watermark of {state_table}: HTTP {status}");
        }
        let rows = self.table.scan(
            LEAD_TABLE,
            &format!("Timestamp ge datetime'{watermark}'"),
            Metadata::Full,
        )?;
        let records = self.table.scan(
            state_table,
            &format!("PartitionKey eq 'ledger-{table_id}' and LeadTimestamp ge '{watermark}'"),
            Metadata::Full,
        )?;
        Ok((started.elapsed(), 1 + rows.requests + records.requests))
    }

    fn floor(
        &mut self,
        table: &str,
        filter: &str,
        metadata: Metadata,
        rows: u64,
    ) -> Result<ScanStats> {
        let stats = self.table.scan(table, filter, metadata)?;
        if stats.rows != rows {
            bail!(
                "the raw scan of {table} read {} rows, not {rows}",
                stats.rows
            );
        }
        Ok(stats)
    }
}

/// The binaries measured and the zip (`cargo xtask package` output, built
/// when missing).
/// The take page's requests a bench makes: views, then one take per lead.
const TAKE_VIEWS: usize = 200;
/// PUBLIC_URL of the take phase: loopback, as for local use.
const TAKE_PUBLIC_URL: &str = "http://127.0.0.1:7071";

impl Bench<'_> {
    /// The `LeadTake` page on a warm process: a GET (token check, one point
    /// read of the lead row, one of its take) and a POST that takes the
    /// lead (one insert), with take links on and leads alerted by email.
    pub fn take_page(&mut self) -> Result<()> {
        say("take page");
        let lead_table = "TakeLeads";
        let mut settings = self.settings("TakeState", "5m", lead_table);
        settings.push(("PUBLIC_URL".to_owned(), TAKE_PUBLIC_URL.to_owned()));
        settings.push((
            "TAKE_LINK_SECRET".to_owned(),
            // 32 bytes, base64: a fixed bench key.
            "YmVuY2gtb25seS10YWtlLWxpbmstc2VjcmV0LTMyYnk=".to_owned(),
        ));
        let mut seed = Command::new(&self.binary);
        seed.args(["seed", "--count", "20"])
            .env_clear()
            .envs(settings.iter().map(|(k, v)| (k, v)));
        run_quietly("lead-notifier seed", &mut seed)?;
        self.maildev.clear()?;
        let mut handler = Handler::spawn(&self.binary, "bench-handler-take", &settings)?;
        handler.wait_ready()?;
        handler.invoke_timer()?;
        let marker = "/api/LeadTake?t=";
        let mut tokens: Vec<String> = self
            .maildev
            .html_bodies()?
            .iter()
            .filter_map(|html| {
                let at = html.find(marker)? + marker.len();
                Some(html[at..].chars().take_while(|c| *c != '"').collect())
            })
            .collect();
        tokens.sort();
        tokens.dedup();
        if tokens.is_empty() {
            bail!("no take link in the alerts of the take phase");
        }
        let invocation = |method: &str, token: &str, form: Option<String>| {
            serde_json::json!({
                "Data": {"req": {
                    "Url": format!("{TAKE_PUBLIC_URL}/api/LeadTake?t={token}"),
                    "Method": method,
                    "Query": {"t": token},
                    "Headers": {"Accept": ["text/html"], "Content-Type": ["application/x-www-form-urlencoded"]},
                    "Params": {},
                    "Body": form,
                    "Identities": [],
                }},
                "Metadata": {"sys": {"MethodName": "LeadTake"}},
            })
        };
        let status = |answer: &serde_json::Value| answer["Outputs"]["res"]["statusCode"].as_u64();
        let mut views = Vec::new();
        for i in 0..TAKE_VIEWS {
            let token = &tokens[i % tokens.len()];
            let (latency, answer) = handler.invoke("LeadTake", &invocation("GET", token, None))?;
            if status(&answer) != Some(200) {
                bail!("the take page answered {:?}", status(&answer));
            }
            views.push(ms(latency));
        }
        let mut takes = Vec::new();
        for token in &tokens {
            let form = Some("name=Bench+Taker".to_owned());
            let (latency, answer) = handler.invoke("LeadTake", &invocation("POST", token, form))?;
            if status(&answer) != Some(200) {
                bail!("taking a lead answered {:?}", status(&answer));
            }
            takes.push(ms(latency));
        }
        let peak = handler.peak_rss()? as f64 / 1e6;
        handler.stop();
        let r = &mut self.report;
        r.section("The take page (`LeadTake`, warm process)");
        r.add("GET: the page of a lead", Unit::Ms, views, None);
        r.add("POST: take an open lead", Unit::Ms, takes, None);
        r.add(
            "peak RSS of the handler after them",
            Unit::MB,
            vec![peak],
            None,
        );
        Ok(())
    }
}

pub fn sizes(report: &mut Report, binaries: &[Binary]) -> Result<()> {
    let zip = target_dir().join("functionapp.zip");
    if file_size(&zip).is_none() {
        say("target/functionapp.zip is missing: running `cargo xtask package`");
        if let Err(e) = crate::package::run() {
            report.note(format!(
                "`cargo xtask package` failed, so no zip size: {e:#}"
            ));
        }
    }
    report.section("Size");
    let mb = |bytes: u64| vec![bytes as f64 / 1e6];
    for binary in binaries {
        if let Some(size) = file_size(&binary.path) {
            report.add(
                &format!("binary, stripped: {}", binary.label),
                Unit::MB,
                mb(size),
                below(15.0),
            );
        }
    }
    if let Some(size) = file_size(&zip) {
        report.add("target/functionapp.zip", Unit::MB, mb(size), None);
    }
    Ok(())
}

/// Every owed alert delivered on both channels, nothing left over.
fn check_backlog(run: &Invocation, expected: u64) -> Result<()> {
    let (email, teams) = (
        run.summary.delivered("email"),
        run.summary.delivered("teams"),
    );
    let (pending, failed) = (run.summary.pending, run.summary.failed);
    if email != expected || teams != expected || pending != 0 || failed != 0 {
        bail!(
            "the backlog run did not deliver every alert (expected {expected} per channel): {}",
            run.raw
        );
    }
    Ok(())
}

/// Emails MailDev lists, waiting briefly for `expected` (it stores a message
/// just after answering 250).
fn maildev_count(maildev: &MailDev, expected: u64) -> Result<u64> {
    let started = Instant::now();
    loop {
        let listed = maildev.count()?;
        if listed >= expected || started.elapsed() > MAILDEV_WAIT {
            return Ok(listed);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
