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
        Self::on_free_port(None, None)
    }

    /// Azurite that keeps its data in `dir`, so it survives [`Azurite::restart`].
    pub fn spawn_persistent(dir: &Path) -> Azurite {
        Self::on_free_port(Some(dir.to_path_buf()), None)
    }

    /// In-memory Azurite over HTTPS with this certificate and key, checking
    /// bearer tokens (`--oauth basic`: format, lifetime, issuer, audience).
    pub fn spawn_oauth(cert: &Path, key: &Path) -> Azurite {
        Self::on_free_port(None, Some((cert.to_path_buf(), key.to_path_buf())))
    }

    /// A free port can be taken by another test's server between
    /// [`free_port`] and Azurite's bind (Node takes half a second to get
    /// there); Azurite then exits and the test would talk to the wrong
    /// server. So: try again on another port.
    fn on_free_port(location: Option<PathBuf>, https: Option<(PathBuf, PathBuf)>) -> Azurite {
        let mut last = String::new();
        for _ in 0..5 {
            match Self::launch(free_port(), location.clone(), https.clone()) {
                Ok(azurite) => return azurite,
                Err(e) => last = e,
            }
        }
        panic!("azurite-table did not start: {last}");
    }

    /// Starts Azurite on `port` and waits until that very process listens
    /// there (not merely anyone).
    fn launch(
        port: u16,
        location: Option<PathBuf>,
        https: Option<(PathBuf, PathBuf)>,
    ) -> Result<Azurite, String> {
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
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start azurite-table");
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("it exited ({status}) on port {port}"));
            }
            if listens(child.id(), port) {
                break;
            }
            if start.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("it did not listen on {port} within 20 s"));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        Ok(Azurite {
            child: Some(child),
            port,
            location,
            https,
        })
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
        let again = Self::launch(self.port, self.location.clone(), self.https.clone())
            .unwrap_or_else(|e| panic!("azurite-table did not restart: {e}"));
        *self = again;
    }
}

/// Whether process `pid` holds a socket listening on 127.0.0.1:`port`
/// (Linux: the listener's inode in /proc/net/tcp among the process's fds).
fn listens(pid: u32, port: u16) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    let local = format!("0100007F:{port:04X}");
    let inodes: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // st 0A is LISTEN
            (cols.len() > 9 && cols[1] == local && cols[3] == "0A")
                .then(|| format!("socket:[{}]", cols[9]))
        })
        .collect();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .is_ok_and(|target| inodes.iter().any(|i| target.as_os_str() == i.as_str()))
    })
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
