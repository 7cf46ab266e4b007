//! `cargo xtask bench`: the handler's speed and size on this machine, against
//! the product's targets (time, CPU, memory and size limits), written into
//! BENCHMARKS.md.
//!
//! The primary figures are the packaged musl binary's (what publishers
//! deploy); the glibc release build stands beside it for
//! comparison. Each binary gets its own fresh Azurite and MailDev.
//!
//! Real servers throughout: Azurite for the tables, MailDev for SMTP and a
//! local sink for the Teams webhook. Each figure is the median of several
//! runs. Not part of `cargo xtask test`: speed is judged here, never by
//! timed tests.

mod cpu;
mod handler;
mod phases;
mod report;
mod sink;
mod table;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::servers::{ensure_node_modules, Azurite, MailDev};
use crate::{cargo, elapsed, repo_root, say, step, target_dir};
use report::Report;
use sink::WebhookSink;
use table::TableClient;

const DEFAULT_LEADS: usize = 10_000;

/// Packages the musl binary and builds the glibc release (unless --binary),
/// starts Azurite, MailDev and a webhook sink and measures both; the median
/// of N runs of each figure.
#[derive(clap::Args)]
pub struct Args {
    /// Runs per figure (median of N; the backlog runs min(N, 3) times)
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = at_least(1))]
    pub runs: usize,
    /// Leads in the backlog; BENCHMARKS.md is written only with the default
    #[arg(long, value_name = "N", default_value_t = DEFAULT_LEADS, value_parser = at_least(4))]
    pub leads: usize,
    /// Measure only this binary instead of the packaged musl and the glibc release builds
    #[arg(long, value_name = "PATH")]
    pub binary: Option<PathBuf>,
    /// Print the results without writing them into BENCHMARKS.md
    #[arg(long)]
    pub no_write: bool,
}

/// A whole number of at least `min` (4 leads: the first three the seed
/// writes are skipped leads).
fn at_least(min: usize) -> impl Fn(&str) -> Result<usize, String> + Clone {
    move |text| match text.parse::<usize>() {
        Ok(n) if n >= min => Ok(n),
        Ok(_) => Err(format!("must be at least {min}")),
        Err(_) => Err("takes a whole number".to_owned()),
    }
}

pub struct Options {
    /// Runs per figure (cold start, idle, scan, floor).
    pub runs: usize,
    /// Backlog runs: each delivers every lead, so fewer.
    pub backlog_runs: usize,
    pub leads: usize,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let options = Options {
        runs: args.runs,
        backlog_runs: args.runs.min(3),
        leads: args.leads,
    };
    // As typed, for the record in BENCHMARKS.md.
    let command = std::iter::once("cargo xtask".to_owned())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    ensure_node_modules()?;
    let binaries = match &args.binary {
        Some(path) => vec![Binary {
            label: "given (--binary)",
            path: path.clone(),
        }],
        None => built_binaries()?,
    };
    let started = Instant::now();
    let sink = WebhookSink::start()?;
    let mut reports = Vec::new();
    for binary in &binaries {
        say(format!("measuring the {} binary", binary.label));
        reports.push(measure(&binary.path, &options, &sink)?);
    }
    let mut sizes = Report::default();
    phases::sizes(&mut sizes, &binaries)?;

    let labels: Vec<&str> = binaries.iter().map(|b| b.label).collect();
    let refs: Vec<&Report> = reports.iter().collect();
    let generated = format!(
        "Measured with `{command}` ({} including server starts, builds excluded).\n\n{}\n\
         #### Machine\n\n{}",
        elapsed(started.elapsed()),
        report::side_by_side(&labels, &refs) + &sizes.markdown(),
        report::machine()
    );
    println!("\n{generated}");
    // Targets are judged on the first binary: the one users deploy.
    let mut missed = reports.first().map(Report::missed).unwrap_or_default();
    missed.extend(sizes.missed());
    for figure in &missed {
        say(format!("target missed: {}", figure.name));
    }
    if !args.no_write && options.leads == DEFAULT_LEADS {
        let path = repo_root().join("BENCHMARKS.md");
        report::write_into(&path, &generated)?;
        say(format!("results written into {}", path.display()));
    } else {
        say("BENCHMARKS.md left as it is (--no-write or a non-default --leads)");
    }
    // Missed targets are findings, not failures of the command.
    Ok(ExitCode::SUCCESS)
}

/// A binary measured, and how BENCHMARKS.md names it.
pub struct Binary {
    pub label: &'static str,
    pub path: PathBuf,
}

/// The packaged musl binary users deploy (`cargo xtask package` rebuilds it
/// when stale; cargo decides) and, for comparison, the glibc release build.
fn built_binaries() -> Result<Vec<Binary>> {
    crate::package::run().context("`cargo xtask package` failed")?;
    let mut build = cargo();
    build.args(["build", "--release", "--bin", "lead-notifier"]);
    if !step("cargo build --release --bin lead-notifier", &mut build)?.success() {
        bail!("the release build failed");
    }
    Ok(vec![
        Binary {
            label: "packaged musl",
            path: crate::package::app_binary(),
        },
        Binary {
            label: "glibc release",
            path: target_dir().join("release").join("lead-notifier"),
        },
    ])
}

/// Every timed figure for one binary, against its own fresh Azurite and
/// MailDev so that no binary finds another's tables or emails.
fn measure(binary: &Path, options: &Options, sink: &WebhookSink) -> Result<Report> {
    let azurite = Azurite::start("bench-azurite")?;
    let maildev = MailDev::start("bench-maildev")?;
    let mut bench = phases::Bench {
        binary: binary.to_path_buf(),
        options,
        azurite: &azurite,
        maildev: &maildev,
        sink,
        table: TableClient::new(azurite.port)?,
        report: Report::default(),
    };
    bench.cold_start()?;
    bench.backlog_and_idle()?;
    bench.scan()?;
    bench.take_page()?;
    Ok(bench.report)
}

/// `strip`'s verdict is not needed: the release profile strips.
pub fn file_size(path: &std::path::Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.len())
}

/// Runs `cmd` to completion, failing with its output when it fails.
pub fn run_quietly(label: &str, cmd: &mut Command) -> Result<()> {
    let output = cmd
        .output()
        .with_context(|| format!("cannot start {label}"))?;
    if !output.status.success() {
        bail!(
            "{label} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}
