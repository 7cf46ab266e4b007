//! `cargo xtask demo`: one timer run end to end, on local storage, with the
//! handler started and invoked exactly as the Azure Functions host does it
//! (platform facts §2), alerts written only to an outbox folder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::host::{self, RunSummary, TIMER_FUNCTION};
use crate::proc::Background;
use crate::servers::{ensure_node_modules, free_port, log_path, wait_until, Azurite};
use crate::{cargo, http, say, step, target_dir};

const SEED_COUNT: &str = "12";

/// Settings a developer may have exported for real use. The demo must never
/// send real email or Teams messages, or touch a real account, so these are
/// removed from the handler's environment.
const SETTING_PREFIXES: &[&str] = &[
    "LEADS_",
    "SMTP_",
    "EMAIL_",
    "TEAMS_",
    "OUTBOX_",
    "DIGEST_",
    "SKIP_",
    "ALERT_",
    "CLAIM_",
    "SCAN_",
    "RETRY_",
    "REPEAT_",
    "ROUTE_",
    "SLACK_",
    "WEBHOOK_",
    "GRAPH_",
    "AZURE_",
    "AzureWebJobs",
    "FUNCTIONS_",
];

pub fn run() -> Result<ExitCode> {
    ensure_node_modules()?;
    if !step(
        "cargo build --bin lead-notifier",
        cargo().args(["build", "--bin", "lead-notifier"]),
    )?
    .success()
    {
        bail!("the build failed");
    }
    let binary = target_dir().join("debug").join("lead-notifier");
    let azurite = Azurite::start("demo-azurite")?;
    let outbox = target_dir().join("demo-outbox");
    if outbox.exists() {
        std::fs::remove_dir_all(&outbox)
            .with_context(|| format!("cannot clear {}", outbox.display()))?;
    }
    std::fs::create_dir_all(&outbox)?;
    let settings = vec![
        (
            "LEADS_STORAGE_CONNECTION".to_string(),
            azurite.connection_string(),
        ),
        ("LEADS_TABLE".into(), "MarketplaceLeads".into()),
        ("LEADS_STATE_TABLE".into(), "LeadNotifierState".into()),
        ("LEADS_START_FROM".into(), "beginning".into()),
        ("OUTBOX_DIR".into(), outbox.display().to_string()),
    ];
    let unset: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| SETTING_PREFIXES.iter().any(|p| k.starts_with(p)))
        .collect();

    let mut seed = Command::new(&binary);
    seed.args(["seed", "--count", SEED_COUNT])
        .envs(settings.iter().cloned());
    for name in &unset {
        seed.env_remove(name);
    }
    if !step(
        &format!("lead-notifier seed --count {SEED_COUNT}"),
        &mut seed,
    )?
    .success()
    {
        bail!("seeding sample leads failed");
    }

    let port = free_port()?;
    let mut host_env = settings.clone();
    host_env.push(("FUNCTIONS_CUSTOMHANDLER_PORT".into(), port.to_string()));
    let handler_log = log_path("demo-handler");
    let mut handler = Background::spawn(
        "lead-notifier serve",
        &binary,
        &["serve".to_string()],
        &host_env,
        &unset,
        &handler_log,
    )?;
    say(format!(
        "started `lead-notifier serve` on 127.0.0.1:{port}, as the Functions host does"
    ));
    let client = http();
    wait_until(&mut handler, "answer GET /", || host::ready(&client, port))?;

    let outcome = invoke_timer(port);
    if outcome.is_err() {
        eprintln!("{}", handler.log_tail());
    }
    say("stopping the handler (SIGTERM) and Azurite");
    drop(handler);
    drop(azurite);
    outcome?;
    list_outbox(&outbox)?;
    say(format!("handler output: {}", handler_log.display()));
    Ok(ExitCode::SUCCESS)
}

/// One timer invocation, as captured from Azure; prints what the host would log.
fn invoke_timer(port: u16) -> Result<()> {
    let invocation_id = host::invocation_id();
    say(format!(
        "POST /{TIMER_FUNCTION} (timer invocation {invocation_id})"
    ));
    let answer = host::invoke_timer(&http(), port, &invocation_id)?;
    say(format!(
        "the handler answered {}; its invocation log:",
        answer.status
    ));
    for line in &answer.logs {
        println!("    {line}");
    }
    say("run summary:");
    match answer.summary() {
        Ok(summary) => print_summary(&summary),
        // A changed summary still shows, field by field.
        Err(_) => match &answer.return_value {
            Value::Object(fields) => {
                for (name, value) in fields {
                    println!("    {name}: {value}");
                }
            }
            other => println!("    {other}"),
        },
    }
    Ok(())
}

/// The run summary in a few lines.
fn print_summary(summary: &RunSummary) {
    let per = |counts: &BTreeMap<String, u64>| {
        if counts.is_empty() {
            return "none".to_owned();
        }
        let parts: Vec<String> = counts.iter().map(|(k, n)| format!("{k} {n}")).collect();
        parts.join(", ")
    };
    println!(
        "    rows scanned:  {} ({} new leads)",
        summary.rows_scanned, summary.leads_new
    );
    println!(
        "    alerted:       {}  (per channel)",
        per(&summary.delivered)
    );
    println!("    skipped:       {}  (per reason)", per(&summary.skipped));
    let undelivered = summary.failed + summary.pending + summary.busy;
    println!("    not delivered: {undelivered}");
    for problem in &summary.problems {
        println!("      {problem}");
    }
}

fn list_outbox(outbox: &Path) -> Result<()> {
    let mut files = Vec::new();
    collect_files(outbox, &mut files)?;
    files.sort();
    say(format!(
        "{} alert file(s) in {}:",
        files.len(),
        outbox.display()
    ));
    for file in &files {
        let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
        let shown = file.strip_prefix(outbox).unwrap_or(file);
        println!("    {:<60} {size:>7} bytes", shown.display());
    }
    if files
        .iter()
        .any(|f| f.extension().is_some_and(|e| e == "eml"))
    {
        say("open an .eml file in your mail program to see what sales would get");
    }
    Ok(())
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect_files(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}
