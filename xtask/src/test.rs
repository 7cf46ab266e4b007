//! `cargo xtask test`: lints, then the whole suite against real servers.

use std::io::BufRead;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;

use crate::servers::{ensure_node_modules, Azurite, MailDev};
use crate::{cargo, elapsed, say, step};

#[derive(clap::Args)]
pub struct Args {
    /// Skip `cargo fmt --check` and clippy (for quick loops)
    #[arg(long)]
    no_lint: bool,
    /// Passed to `cargo test --workspace`, e.g. `-- --test host_timer`
    #[arg(last = true, value_name = "CARGO_TEST_ARGS")]
    pub cargo_test_args: Vec<String>,
}

impl Args {
    pub fn lint(&self) -> bool {
        !self.no_lint
    }
}

pub fn run(options: &Args) -> Result<ExitCode> {
    let started = Instant::now();
    if options.lint() {
        // Lints first: they need no servers and fail fastest.
        if !step(
            "cargo fmt --all -- --check",
            cargo().args(["fmt", "--all", "--", "--check"]),
        )?
        .success()
        {
            say("formatting differs: run `cargo fmt --all`");
            return Ok(ExitCode::FAILURE);
        }
        if !step(
            "cargo clippy --workspace --all-targets -- -D warnings",
            cargo().args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]),
        )?
        .success()
        {
            return Ok(ExitCode::FAILURE);
        }
    }
    // Both mostly wait on the network: install them side by side.
    let python = std::thread::spawn(crate::python::ensure_packages);
    ensure_node_modules()?;
    let python_path = python
        .join()
        .map_err(|_| anyhow::anyhow!("installing the Python packages panicked"))??;
    let azurite = Azurite::start("test-azurite")?;
    let maildev = MailDev::start("test-maildev")?;
    let (chromium, chromedriver) = crate::browser::ensure_chromium()?;
    let label = format!(
        "cargo test --workspace {}",
        options.cargo_test_args.join(" ")
    );
    say(format!("▶ {}", label.trim_end()));
    let mut child = cargo()
        .args(["test", "--workspace"])
        .args(&options.cargo_test_args)
        .env("LEAD_NOTIFIER_TEST_STORAGE", azurite.connection_string())
        .env(
            "LEAD_NOTIFIER_TEST_SMTP_PORT",
            maildev.smtp_port.to_string(),
        )
        .env("LEAD_NOTIFIER_TEST_MAILDEV_URL", maildev.api_url())
        .env("LEAD_NOTIFIER_TEST_PYTHONPATH", &python_path)
        .env("LEAD_NOTIFIER_TEST_CHROMIUM", &chromium)
        .env("LEAD_NOTIFIER_TEST_CHROMEDRIVER", &chromedriver)
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    // Passed through line by line, and counted: the suite ends with one
    // total over every test binary instead of the last binary's own line.
    let mut totals = Totals::default();
    if let Some(out) = child.stdout.take() {
        for line in std::io::BufReader::new(out).lines() {
            let line = line?;
            println!("{line}");
            totals.add(&line);
        }
    }
    let status = child.wait()?;
    say(format!(
        "{} passed, {} failed, {} skipped",
        totals.passed, totals.failed, totals.ignored
    ));
    say("stopping the test servers");
    drop(maildev);
    drop(azurite);
    let verdict = if status.success() { "passed" } else { "FAILED" };
    say(format!(
        "tests {verdict} (total {})",
        elapsed(started.elapsed())
    ));
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::FAILURE,
    })
}

/// Sums cargo test's `test result:` lines.
#[derive(Default, Debug, PartialEq)]
struct Totals {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl Totals {
    fn add(&mut self, line: &str) {
        let Some(rest) = line.strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(what), Some(n)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(n) = n.parse::<u64>() else { continue };
            match what {
                "passed" => self.passed += n,
                "failed" => self.failed += n,
                "ignored" => self.ignored += n,
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_sum_every_binary() {
        let mut t = Totals::default();
        t.add("test result: ok. 23 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.00s");
        t.add("running 3 tests");
        t.add("test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.0s");
        assert_eq!(
            t,
            Totals {
                passed: 25,
                failed: 1,
                ignored: 1
            }
        );
    }
}
