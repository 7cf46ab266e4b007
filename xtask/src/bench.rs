//! `cargo xtask bench`: the handler's speed and size on this machine, against
//! the targets of issue 7, written into BENCHMARKS.md.
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

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::servers::{ensure_node_modules, Azurite, MailDev};
use crate::{cargo, elapsed, repo_root, say, step, target_dir};
use report::Report;
use sink::WebhookSink;
use table::TableClient;

pub const USAGE: &str = "\
  bench [--runs N] [--leads N] [--binary PATH] [--no-write]
              build release, start Azurite, MailDev and a webhook sink, measure
              cold start, idle run, backlog, memory, sizes and the raw-HTTP scan
              floor (median of N runs, default 5; 3 for the backlog); write the
              results into BENCHMARKS.md (only with the default --leads 10000)
";

const DEFAULT_LEADS: usize = 10_000;

pub struct Options {
    /// Runs per figure (cold start, idle, scan, floor).
    pub runs: usize,
    /// Backlog runs: each delivers every lead, so fewer.
    pub backlog_runs: usize,
    pub leads: usize,
    binary: Option<PathBuf>,
    write: bool,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options> {
        let mut options = Options {
            runs: 5,
            backlog_runs: 3,
            leads: DEFAULT_LEADS,
            binary: None,
            write: true,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| {
                args.next()
                    .cloned()
                    .with_context(|| format!("{name} needs a value"))
            };
            match arg.as_str() {
                "--runs" => {
                    let runs: usize = value("--runs")?.parse().context("--runs takes a number")?;
                    if runs == 0 {
                        bail!("--runs must be at least 1");
                    }
                    options.runs = runs;
                    options.backlog_runs = runs.min(3);
                }
                "--leads" => {
                    options.leads = value("--leads")?
                        .parse()
                        .context("--leads takes a number")?;
                    if options.leads < 4 {
                        bail!("--leads must be at least 4 (the first three are skipped leads)");
                    }
                }
                "--binary" => options.binary = Some(PathBuf::from(value("--binary")?)),
                "--no-write" => options.write = false,
                other => bail!("unexpected argument `{other}`\n\n{USAGE}"),
            }
        }
        Ok(options)
    }
}

pub fn run(args: &[String]) -> Result<ExitCode> {
    let options = Options::parse(args)?;
    let command = std::iter::once("cargo xtask bench".to_owned())
        .chain(args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    ensure_node_modules()?;
    let binary = match &options.binary {
        Some(path) => path.clone(),
        None => {
            let mut build = cargo();
            build.args(["build", "--release", "--bin", "lead-notifier"]);
            if !step("cargo build --release --bin lead-notifier", &mut build)?.success() {
                bail!("the release build failed");
            }
            target_dir().join("release").join("lead-notifier")
        }
    };
    let started = Instant::now();
    let azurite = Azurite::start("bench-azurite")?;
    let maildev = MailDev::start("bench-maildev")?;
    let sink = WebhookSink::start()?;
    let mut bench = phases::Bench {
        binary,
        options: &options,
        azurite: &azurite,
        maildev: &maildev,
        sink: &sink,
        table: TableClient::new(azurite.port)?,
        report: Report::default(),
    };
    bench.cold_start()?;
    bench.backlog_and_idle()?;
    bench.scan()?;
    bench.sizes()?;
    let report = bench.report;
    drop(azurite);
    drop(maildev);

    let generated = format!(
        "Measured with `{command}` ({} including server starts, builds excluded).\n\n{}\n\
         #### Machine\n\n{}",
        elapsed(started.elapsed()),
        report.markdown(),
        report::machine()
    );
    println!("\n{generated}");
    let missed = report.missed();
    for figure in &missed {
        say(format!("target missed: {}", figure.name));
    }
    if options.write && options.leads == DEFAULT_LEADS {
        let path = repo_root().join("BENCHMARKS.md");
        report::write_into(&path, &generated)?;
        say(format!("results written into {}", path.display()));
    } else {
        say("BENCHMARKS.md left as it is (--no-write or a non-default --leads)");
    }
    // Missed targets are findings, not failures of the command.
    Ok(ExitCode::SUCCESS)
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
