//! The real servers the integration tests talk to.
//!
//! `cargo xtask test` starts one Azurite and one MailDev for the whole suite
//! and passes them in through `LEAD_NOTIFIER_TEST_*` variables. Tests that
//! need to stop or break storage start a private Azurite with [`Azurite::spawn`].

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Azurite's well-known development account key (public, not a secret).
pub const DEV_ACCOUNT: &str = "devstoreaccount1";
pub const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the integration tests with `cargo xtask test`, which starts Azurite and MailDev")
    })
}

/// Connection string of the suite's shared Azurite.
pub fn storage_connection() -> String {
    required_env("LEAD_NOTIFIER_TEST_STORAGE")
}

/// Connection string for an Azurite table endpoint on `port`.
pub fn connection_string(port: u16) -> String {
    format!(
        "DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};TableEndpoint=http://127.0.0.1:{port}/{DEV_ACCOUNT};"
    )
}

/// SMTP port of the suite's shared MailDev.
pub fn maildev_smtp_port() -> u16 {
    required_env("LEAD_NOTIFIER_TEST_SMTP_PORT")
        .parse()
        .expect("LEAD_NOTIFIER_TEST_SMTP_PORT is a port number")
}

/// Base URL of the shared MailDev's REST API (`GET /email`).
pub fn maildev_api() -> String {
    required_env("LEAD_NOTIFIER_TEST_MAILDEV_URL")
}

/// A table name no other test uses (3–63 alphanumerics, starting with a letter).
pub fn unique_table(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}{}x{n}x{nanos}", std::process::id())
}

/// A unique mailbox on MailDev, so tests sharing it can find their own mail.
pub fn unique_recipient(tag: &str) -> String {
    format!("{}@sales.example.com", unique_table(tag).to_lowercase())
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

pub fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let start = Instant::now();
    while start.elapsed() < timeout {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    false
}

fn node_bin(name: &str) -> PathBuf {
    let path = repo_root().join("node_modules/.bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask test` (it runs `npm ci`)",
        path.display()
    );
    path
}

/// A private Azurite table service, stopped when dropped.
pub struct Azurite {
    child: Option<Child>,
    pub port: u16,
    /// Where data is kept when started with [`Azurite::spawn_persistent`],
    /// so a restart keeps the tables.
    location: Option<PathBuf>,
    /// `--cert`, `--key` (HTTPS) and `--oauth basic` (bearer tokens checked).
    https: Option<(PathBuf, PathBuf)>,
}

impl Azurite {
    /// In-memory Azurite on a free port.
    pub fn spawn() -> Azurite {
        Self::start(free_port(), None)
    }

    /// Azurite that keeps its data in `dir`, so it survives [`Azurite::restart`].
    pub fn spawn_persistent(dir: &Path) -> Azurite {
        Self::start(free_port(), Some(dir.to_path_buf()))
    }

    /// In-memory Azurite over HTTPS with this certificate and key, checking
    /// bearer tokens (`--oauth basic`: format, lifetime, issuer, audience).
    pub fn spawn_oauth(cert: &Path, key: &Path) -> Azurite {
        Self::launch(
            free_port(),
            None,
            Some((cert.to_path_buf(), key.to_path_buf())),
        )
    }

    fn start(port: u16, location: Option<PathBuf>) -> Azurite {
        Self::launch(port, location, None)
    }

    fn launch(port: u16, location: Option<PathBuf>, https: Option<(PathBuf, PathBuf)>) -> Azurite {
        let mut cmd = Command::new(node_bin("azurite-table"));
        if let Some((cert, key)) = &https {
            cmd.arg("--cert")
                .arg(cert)
                .arg("--key")
                .arg(key)
                .args(["--oauth", "basic"]);
        }
        cmd.args(["--tableHost", "127.0.0.1", "--tablePort", &port.to_string()])
            .args(["--disableTelemetry", "--silent", "--skipApiVersionCheck"]);
        match &location {
            Some(dir) => cmd.arg("--location").arg(dir),
            None => cmd.arg("--inMemoryPersistence"),
        };
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start azurite-table");
        assert!(
            wait_for_port(port, Duration::from_secs(20)),
            "azurite-table did not listen on {port}"
        );
        Azurite {
            child: Some(child),
            port,
            location,
            https,
        }
    }

    /// The table endpoint, `http(s)://127.0.0.1:<port>/devstoreaccount1`.
    pub fn table_endpoint(&self) -> String {
        let scheme = if self.https.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://127.0.0.1:{}/{DEV_ACCOUNT}", self.port)
    }

    /// A connection string with the account key (what Partner Center has).
    pub fn connection_string(&self) -> String {
        match &self.https {
            None => connection_string(self.port),
            Some(_) => format!(
                "DefaultEndpointsProtocol=https;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};TableEndpoint={};",
                self.table_endpoint()
            ),
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops it the way Ctrl-C does: Azurite closes its database first, so
    /// every write it acknowledged is kept. [`Azurite::stop`] kills it, and a
    /// persistent Azurite saves only every 5 s, so a kill loses recent writes
    /// (something Azure storage never does).
    pub fn stop_gracefully(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        // Closed but held open by idle client connections: its data is saved.
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts again on the same port (and the same data, when persistent).
    pub fn restart(&mut self) {
        self.stop();
        let again = Self::launch(self.port, self.location.clone(), self.https.clone());
        *self = again;
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Every message MailDev holds for `recipient`.
pub async fn maildev_messages(recipient: &str) -> Vec<serde_json::Value> {
    let all: Vec<serde_json::Value> = reqwest::get(format!("{}/email", maildev_api()))
        .await
        .expect("maildev answers")
        .json()
        .await
        .expect("maildev JSON");
    all.into_iter()
        .filter(|m| {
            m["to"]
                .as_array()
                .is_some_and(|to| to.iter().any(|a| a["address"] == recipient))
        })
        .collect()
}
