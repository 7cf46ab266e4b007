//! Project commands: `cargo xtask test | package | demo | bench | deploy`.
//!
//! Built on crates the product already compiles (clap, serde_json) plus the
//! small ureq client, so a fresh clone builds xtask in seconds.

mod bench;
mod browser;
mod demo;
mod deploy;
mod host;
mod package;
mod proc;
mod python;
mod servers;
mod test;

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// Project commands for lead-notifier.
#[derive(Parser)]
#[command(name = "xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install the test servers (npm ci) when missing, start Azurite and
    /// MailDev on free ports, check formatting and lints, run every test,
    /// stop the servers.
    Test(test::Args),
    /// Build the static musl binary and assemble target/functionapp/ and
    /// target/functionapp.zip.
    Package,
    /// Start Azurite, write sample leads, start the handler as the Functions
    /// host does, trigger one timer run, print what happened.
    Demo,
    /// Measure the packaged musl binary beside the glibc build: cold start,
    /// idle run, backlog, memory, sizes and the raw-HTTP scan floor; write
    /// them into BENCHMARKS.md.
    Bench(bench::Args),
    /// Provision infra/main.bicep (Flex Consumption) into a resource group
    /// with the Azure CLI and deploy the package; re-running updates in place.
    Deploy(deploy::Args),
}

fn main() -> ExitCode {
    let cli = match cli().try_get_matches() {
        Ok(matches) => Cli::from_arg_matches(&matches),
        Err(e) => Err(e),
    };
    let cli = match cli {
        Ok(cli) => cli,
        // Help and usage errors, printed and coded the way clap does.
        Err(e) => e.exit(),
    };
    let result = match cli.command {
        Task::Test(args) => test::run(&args),
        Task::Package => package::run(),
        Task::Demo => demo::run(),
        Task::Bench(args) => bench::run(&args),
        Task::Deploy(args) => deploy::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The command line, whose top-level help lists every command with its
/// flags (clap's own lists only the commands).
fn cli() -> clap::Command {
    let cli = Cli::command();
    let mut listing = String::from("Commands and their flags:\n");
    for task in cli.get_subcommands() {
        let flags: Vec<(String, String)> = task
            .get_arguments()
            .filter_map(|arg| {
                let help = arg.get_help()?.to_string();
                let value = arg.get_value_names().and_then(|names| names.first());
                let takes_value = arg.get_action().takes_values();
                let name = match (arg.get_long(), value) {
                    (Some(long), Some(value)) if takes_value => format!("--{long} <{value}>"),
                    (Some(long), _) => format!("--{long}"),
                    (None, Some(value)) => format!("-- <{value}>..."),
                    (None, None) => format!("<{}>", arg.get_id()),
                };
                Some((name, help))
            })
            .collect();
        let mut usage = format!("cargo xtask {}", task.get_name());
        for (name, _) in &flags {
            let _ = write!(usage, " [{name}]");
        }
        let _ = writeln!(listing, "\n  {usage}");
        for (name, help) in &flags {
            let _ = writeln!(listing, "      {name:<24} {help}");
        }
    }
    cli.after_help(listing)
}

/// The workspace root (xtask lives one level below it).
pub fn repo_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// Cargo's target directory, honouring `CARGO_TARGET_DIR`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => repo_root().join(dir),
        _ => repo_root().join("target"),
    }
}

/// The cargo that runs us, so nested builds use the same toolchain.
pub fn cargo() -> Command {
    let program = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut cmd = Command::new(program);
    cmd.current_dir(repo_root());
    cmd
}

pub fn say(message: impl std::fmt::Display) {
    println!("xtask: {message}");
}

/// The client for local servers (MailDev, the handler): plain HTTP on
/// loopback, every status returned as a value for the caller to judge, and
/// time enough for one timer run over a large backlog.
pub fn http() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(300)))
        .build()
        .into()
}

/// Runs `cmd` in the foreground, announcing it and how long it took.
/// Returns whether it succeeded, so callers decide what a failure means.
pub fn step(label: &str, cmd: &mut Command) -> Result<std::process::ExitStatus> {
    say(format!("▶ {label}"));
    let started = Instant::now();
    let status = cmd
        .status()
        .with_context(|| format!("cannot start `{label}`"))?;
    let verdict = if status.success() { "ok" } else { "FAILED" };
    say(format!(
        "{verdict}: {label} ({})",
        elapsed(started.elapsed())
    ));
    Ok(status)
}

pub fn elapsed(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1} s")
    } else {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let matches =
            cli().try_get_matches_from(std::iter::once("xtask").chain(args.iter().copied()))?;
        Cli::from_arg_matches(&matches)
    }

    #[test]
    fn the_command_line_is_consistent() {
        cli().debug_assert();
    }

    #[test]
    fn help_lists_every_command_with_its_flags() {
        let help = cli().render_help().to_string();
        for expected in [
            "cargo xtask test [--no-lint] [-- <CARGO_TEST_ARGS>...]",
            "cargo xtask package",
            "cargo xtask demo",
            "cargo xtask bench [--runs <N>] [--leads <N>] [--binary <PATH>] [--no-write]",
            "--runs <N>",
            "--leads <N>",
            "--binary <PATH>",
            "--no-write",
            "cargo xtask deploy [--resource-group <GROUP>] [--location <REGION>] [--parameters <FILE>] [--zip <ZIP>]",
        ] {
            assert!(help.contains(expected), "no {expected:?} in:\n{help}");
        }
    }

    #[test]
    fn test_passes_everything_after_the_separator_to_cargo_test() {
        let Task::Test(args) = parse(&[
            "test",
            "--no-lint",
            "--",
            "--test",
            "x",
            "--",
            "--nocapture",
        ])
        .unwrap()
        .command
        else {
            panic!("not the test command");
        };
        assert!(!args.lint());
        assert_eq!(args.cargo_test_args, ["--test", "x", "--", "--nocapture"]);
    }

    #[test]
    fn test_lints_by_default_and_unknown_flags_are_refused() {
        let Task::Test(args) = parse(&["test"]).unwrap().command else {
            panic!("not the test command");
        };
        assert!(args.lint());
        assert!(parse(&["test", "--nolint"]).is_err());
        assert!(parse(&["demo", "extra"]).is_err());
        assert!(parse(&["package", "--leads", "3"]).is_err());
        assert!(parse(&[]).is_err());
        // Where to deploy is never guessed.
        assert!(parse(&["deploy", "--location", "westeurope"]).is_err());
        assert!(parse(&["deploy", "--resource-group", "rg"]).is_err());
        assert!(parse(&[
            "deploy",
            "--resource-group",
            "rg",
            "--location",
            "westeurope"
        ])
        .is_ok());
    }

    #[test]
    fn bench_flags_keep_their_defaults_and_limits() {
        let Task::Bench(args) = parse(&["bench"]).unwrap().command else {
            panic!("not the bench command");
        };
        assert_eq!((args.runs, args.leads, args.no_write), (5, 10_000, false));
        let Task::Bench(args) = parse(&[
            "bench",
            "--leads",
            "300",
            "--runs",
            "1",
            "--no-write",
            "--binary",
            "/x",
        ])
        .unwrap()
        .command
        else {
            panic!("not the bench command");
        };
        assert_eq!((args.runs, args.leads, args.no_write), (1, 300, true));
        assert_eq!(args.binary, Some(PathBuf::from("/x")));
        assert!(parse(&["bench", "--runs", "0"]).is_err());
        assert!(parse(&["bench", "--leads", "3"]).is_err());
        assert!(parse(&["bench", "--leads", "many"]).is_err());
    }
}
