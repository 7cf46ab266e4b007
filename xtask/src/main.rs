//! Project commands: `cargo xtask test | package | demo | bench`.
//!
//! Few, small dependencies (no async runtime, no HTTP or JSON crates): these
//! commands must build quickly on a fresh clone, before anything else of the
//! project has been compiled.

mod bench;
mod demo;
mod http;
mod json;
mod package;
mod proc;
mod python;
mod servers;
mod test;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{bail, Context, Result};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  test [--no-lint] [-- <cargo test args>]
              install the test servers (npm ci) when missing, start Azurite and
              MailDev on free ports, check formatting and lints, run every test,
              stop the servers
  package     build the static musl binary and assemble target/functionapp/
              and target/functionapp.zip
  demo        start Azurite, write sample leads, start the handler as the
              Functions host does, trigger one timer run, print what happened
  bench [--runs N] [--leads N] [--binary PATH] [--no-write]
              measure cold start, idle run, 10,000-lead backlog, memory, sizes
              and the raw-HTTP scan floor; write them into BENCHMARKS.md
";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let command = args.next();
    let rest: Vec<String> = args.collect();
    let result = match command.as_deref() {
        Some("test") => test::run(&rest),
        Some("package") => no_args(&rest).and_then(|()| package::run()),
        Some("demo") => no_args(&rest).and_then(|()| demo::run()),
        Some("bench") => bench::run(&rest),
        Some("help" | "-h" | "--help") => {
            print!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        Some(other) => Err(anyhow::anyhow!("unknown command `{other}`\n\n{USAGE}")),
        None => Err(anyhow::anyhow!("a command is required\n\n{USAGE}")),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn no_args(rest: &[String]) -> Result<()> {
    match rest.first() {
        None => Ok(()),
        Some(arg) => bail!("unexpected argument `{arg}`\n\n{USAGE}"),
    }
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

pub fn elapsed(d: std::time::Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1} s")
    } else {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}
