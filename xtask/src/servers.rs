//! Azurite and MailDev, installed from package-lock.json and started on free
//! loopback ports for the tests and the demo.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::proc::Background;
use crate::{http, repo_root, say, step, target_dir};

/// Azurite's well-known development account (public, not a secret).
pub const DEV_ACCOUNT: &str = "devstoreaccount1";
pub const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Generous: a cold node start on a busy 2-core machine takes a few seconds.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `npm ci` unless node_modules matches package-lock.json. npm writes
/// node_modules/.package-lock.json on every install, so its being older than
/// package-lock.json means the lock changed since.
pub fn ensure_node_modules() -> Result<()> {
    let root = repo_root();
    let lock = root.join("package-lock.json");
    let installed = root.join("node_modules/.package-lock.json");
    let bins_present = ["azurite-table", "maildev"]
        .iter()
        .all(|b| node_bin(b).exists());
    let up_to_date = match (modified(&installed), modified(&lock)) {
        (Some(installed), Some(lock)) => installed >= lock,
        _ => false,
    };
    if bins_present && up_to_date {
        return Ok(());
    }
    let status = step(
        "npm ci --no-audit --no-fund (Azurite and MailDev, pinned in package-lock.json)",
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&root),
    )
    .context("is Node.js 20 with npm installed and on PATH?")?;
    if !status.success() {
        bail!("npm ci failed ({status})");
    }
    Ok(())
}

fn modified(path: &std::path::Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn node_bin(name: &str) -> PathBuf {
    repo_root().join("node_modules/.bin").join(name)
}

/// A free loopback port. Another process could take it before the server
/// binds; the readiness check then fails loudly rather than silently.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot bind a loopback port")?;
    Ok(listener.local_addr()?.port())
}

pub struct Azurite {
    pub port: u16,
    _process: Background,
}

impl Azurite {
    /// In-memory Azurite table service on a free port, ready for requests.
    pub fn start(log_name: &str) -> Result<Azurite> {
        let port = free_port()?;
        let args = [
            "--tableHost",
            "127.0.0.1",
            "--tablePort",
            &port.to_string(),
            "--inMemoryPersistence",
            "--disableTelemetry",
            "--silent",
            "--skipApiVersionCheck",
        ]
        .map(String::from);
        let mut process = Background::spawn(
            "azurite-table",
            &node_bin("azurite-table"),
            &args,
            &[],
            &[],
            &log_path(log_name),
        )?;
        wait_for_port(&mut process, port)?;
        say(format!("Azurite table service on 127.0.0.1:{port}"));
        Ok(Azurite {
            port,
            _process: process,
        })
    }

    /// The full connection string, as tests/common/servers.rs builds it.
    pub fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};TableEndpoint=http://127.0.0.1:{}/{DEV_ACCOUNT};",
            self.port
        )
    }
}

pub struct MailDev {
    pub smtp_port: u16,
    pub web_port: u16,
    _process: Background,
}

impl MailDev {
    /// MailDev with SMTP and its REST API on free ports, ready for requests.
    pub fn start(log_name: &str) -> Result<MailDev> {
        let smtp_port = free_port()?;
        let web_port = free_port()?;
        let args = [
            "--smtp",
            &smtp_port.to_string(),
            "--web",
            &web_port.to_string(),
            "--ip",
            "127.0.0.1",
            "--silent",
        ]
        .map(String::from);
        let mut process = Background::spawn(
            "maildev",
            &node_bin("maildev"),
            &args,
            &[],
            &[],
            &log_path(log_name),
        )?;
        wait_for_port(&mut process, smtp_port)?;
        wait_for_port(&mut process, web_port)?;
        wait_for_api(&mut process, web_port)?;
        say(format!(
            "MailDev SMTP on 127.0.0.1:{smtp_port}, API on http://127.0.0.1:{web_port}"
        ));
        Ok(MailDev {
            smtp_port,
            web_port,
            _process: process,
        })
    }

    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.web_port)
    }

    /// Deletes every email MailDev holds.
    pub fn clear(&self) -> Result<()> {
        let response = http()
            .delete(format!("{}/email/all", self.api_url()))
            .call()
            .context("cannot clear MailDev")?;
        if response.status() != 200 {
            bail!(
                "MailDev answered HTTP {} to DELETE /email/all",
                response.status()
            );
        }
        Ok(())
    }

    /// How many emails MailDev holds.
    pub fn count(&self) -> Result<u64> {
        let mut response = http()
            .get(format!("{}/email", self.api_url()))
            .call()
            .context("cannot list MailDev's emails")?;
        if response.status() != 200 {
            bail!("MailDev answered HTTP {} to GET /email", response.status());
        }
        // Each email comes with its bodies: a backlog's digests are far
        // beyond ureq's default 10 MB limit. Only their number is needed.
        let emails: Vec<serde::de::IgnoredAny> = response
            .body_mut()
            .with_config()
            .limit(MAILDEV_LIST_LIMIT)
            .read_json()
            .context("MailDev's GET /email is not a list")?;
        Ok(emails.len() as u64)
    }
}

impl MailDev {
    /// Every email's HTML body.
    pub fn html_bodies(&self) -> Result<Vec<String>> {
        let mut response = http()
            .get(format!("{}/email", self.api_url()))
            .call()
            .context("cannot list MailDev's emails")?;
        let emails: Vec<serde_json::Value> = response
            .body_mut()
            .with_config()
            .limit(MAILDEV_LIST_LIMIT)
            .read_json()
            .context("MailDev's GET /email is not a list")?;
        Ok(emails
            .iter()
            .filter_map(|e| e["html"].as_str().map(str::to_owned))
            .collect())
    }
}

/// The most `MailDev::count` reads: far more than any backlog's digests.
const MAILDEV_LIST_LIMIT: u64 = 1 << 30;

pub fn log_path(name: &str) -> PathBuf {
    target_dir().join("xtask").join(format!("{name}.log"))
}

fn wait_for_port(process: &mut Background, port: u16) -> Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_until(
        process,
        &format!("accept connections on port {port}"),
        || TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok(),
    )
}

fn wait_for_api(process: &mut Background, port: u16) -> Result<()> {
    let client = http();
    let url = format!("http://127.0.0.1:{port}/email");
    wait_until(process, "answer GET /email", || {
        client.get(&url).call().is_ok_and(|r| r.status() == 200)
    })
}

/// Polls `ready` until it holds, the process exits or [`START_TIMEOUT`].
pub fn wait_until(
    process: &mut Background,
    what: &str,
    mut ready: impl FnMut() -> bool,
) -> Result<()> {
    let started = Instant::now();
    loop {
        if ready() {
            return Ok(());
        }
        if let Some(reason) = process.exited() {
            bail!("{reason} before it could {what}\n{}", process.log_tail());
        }
        if started.elapsed() > START_TIMEOUT {
            bail!(
                "gave up waiting {} s for the server to {what}\n{}",
                START_TIMEOUT.as_secs(),
                process.log_tail()
            );
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}
