//! The handler under test, started and invoked as the Functions host does it.
//!
//! Started directly, not under proc.rs's `sh` wrapper: the wrapper's own start
//! would be counted in the cold start, and the peak RSS must be read from the
//! handler's own pid. It stays in xtask's process group, so a Ctrl-C in the
//! terminal reaches it too; the guard stops it on every other exit.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::host::{self, RunSummary};
use crate::servers::{free_port, log_path};
const START_TIMEOUT: Duration = Duration::from_secs(30);
const GRACE: Duration = Duration::from_secs(5);

pub struct Handler {
    child: Child,
    pub port: u16,
    pub started: Instant,
    name: String,
    http: ureq::Agent,
}

/// One timer invocation as the host saw it.
pub struct Invocation {
    /// Request sent → answer read, measured here.
    pub latency: Duration,
    /// The handler's `ReturnValue` (its run summary).
    pub summary: RunSummary,
    /// The same as the handler wrote it, for messages.
    pub raw: serde_json::Value,
}

impl Handler {
    /// `lead-notifier serve` with exactly `settings` (the environment is
    /// cleared so a developer's real SMTP or Teams settings cannot leak in).
    pub fn spawn(binary: &Path, name: &str, settings: &[(String, String)]) -> Result<Handler> {
        let port = free_port()?;
        let log = log_path(name);
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let out = std::fs::File::create(&log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let err = out.try_clone()?;
        let mut cmd = Command::new(binary);
        cmd.arg("serve")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            // Passed on for profiling (`RUST_LOG=debug cargo xtask bench`).
            .envs(std::env::var_os("RUST_LOG").map(|v| ("RUST_LOG", v)))
            .envs(settings.iter().map(|(k, v)| (k, v)))
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let started = Instant::now();
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        Ok(Handler {
            child,
            port,
            started,
            name: name.to_owned(),
            http: crate::http(),
        })
    }

    /// Polls `GET /` every half millisecond until the first answer; returns
    /// the time since the process was started. Much finer than the host's
    /// 25 ms, so the start itself is measured rather than a poll period;
    /// not a busy loop, which would take a core from the starting process.
    pub fn wait_ready(&mut self) -> Result<Duration> {
        loop {
            if host::ready(&self.http, self.port) {
                return Ok(self.started.elapsed());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                bail!("{} exited ({status}) before it answered GET /", self.name);
            }
            if self.started.elapsed() > START_TIMEOUT {
                bail!(
                    "{} did not answer GET / within {START_TIMEOUT:?}",
                    self.name
                );
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    }

    /// One timer invocation with the body captured from Azure. A non-2xx
    /// answer is an error: the bench only measures runs that succeeded.
    pub fn invoke_timer(&self) -> Result<Invocation> {
        let answer = host::invoke_timer(&self.http, self.port, &host::invocation_id())
            .with_context(|| format!("invoking {}", self.name))?;
        Ok(Invocation {
            latency: answer.latency,
            summary: answer.summary()?,
            raw: answer.return_value,
        })
    }

    /// One HTTP-triggered invocation of `function` with `body` as the host
    /// sends it: latency and the handler's answer.
    pub fn invoke(
        &self,
        function: &str,
        body: &serde_json::Value,
    ) -> Result<(Duration, serde_json::Value)> {
        let sent = Instant::now();
        let mut response = self
            .http
            .post(format!("http://127.0.0.1:{}/{function}", self.port))
            .header("X-Azure-Functions-InvocationId", host::invocation_id())
            .header("Content-Type", "application/json")
            .send(body.to_string())
            .with_context(|| format!("invoking {function} on {}", self.name))?;
        let text = response
            .body_mut()
            .read_to_string()
            .context("cannot read the handler's answer")?;
        let latency = sent.elapsed();
        Ok((
            latency,
            serde_json::from_str(&text).context("the handler's answer is not JSON")?,
        ))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process's peak resident set so far (`VmHWM`), in bytes.
    pub fn peak_rss(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .context("cannot read the handler's /proc status")?;
        let kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .context("no VmHWM in the handler's /proc status")?;
        Ok(kib * 1024)
    }

    /// The process's memory and CPU as `/proc` tells them, for the bench's
    /// log: what the resident set is made of (file-backed pages of the
    /// binary vs anonymous heap and stacks), how many threads hold stacks,
    /// and user vs system time with the page faults behind the latter.
    pub fn memory_line(&self) -> String {
        let pid = self.child.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_owned())
                .unwrap_or_else(|| "?".to_owned())
        };
        let cpu = super::cpu::usage(pid).map_or_else(
            || "?".to_owned(),
            |u| {
                format!(
                    "user {:.2} s, system {:.2} s, {} minor faults",
                    u.user, u.system, u.minor_faults
                )
            },
        );
        format!(
            "VmRSS {} (anon {}, file {}), VmHWM {}, threads {}; CPU {cpu}",
            field("VmRSS:"),
            field("RssAnon:"),
            field("RssFile:"),
            field("VmHWM:"),
            field("Threads:")
        )
    }

    /// SIGTERM (as the host sends), SIGKILL if it lingers.
    pub fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let asked = Instant::now();
        while asked.elapsed() < GRACE {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Handler {
    fn drop(&mut self) {
        self.stop();
    }
}
