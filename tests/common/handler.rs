//! Plays the Azure Functions host: starts the real `lead-notifier` binary as
//! a custom handler, waits for `GET /`, and sends invocations the way the
//! host does (platform facts §2).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::servers::free_port;

/// The timer invocation body as captured from Azure.
pub fn timer_body() -> Value {
    json!({
        "Data": {"timer": {"Schedule": {"AdjustForDST": true}, "ScheduleStatus": null, "IsPastDue": false}},
        "Metadata": {"sys": {"MethodName": "LeadNotifier", "UtcNow": "2023-09-07T11:40:45.004275Z", "RandGuid": "35e6e68c-5583-436c-a277-5aec2b416ba8"}}
    })
}

/// The invocation the host sends for an HTTP trigger named `req`.
pub fn http_invocation(body: &str) -> Value {
    json!({
        "Data": {"req": {
            "Url": "https://contoso-leads.azurewebsites.net/api/LeadWebhook?code=FUNCTIONKEY",
            "Method": "POST",
            "Query": {"code": "FUNCTIONKEY"},
            "Headers": {"Content-Type": ["application/json"], "User-Agent": ["Microsoft-Partner-Center"]},
            "Params": {},
            "Body": body,
            "Identities": []
        }},
        "Metadata": {"sys": {"MethodName": "LeadWebhook", "UtcNow": "2026-11-21T10:00:00Z", "RandGuid": "5a1e0d6c-0000-4000-8000-000000000001"}}
    })
}

/// The HTTP status an HTTP-trigger invocation answered its caller (`res`).
pub fn res_status(body: &Value) -> u64 {
    body["Outputs"]["res"]["statusCode"].as_u64().unwrap_or(0)
}

/// A running handler process. Its stdout and stderr go to files so a test
/// can read everything it printed; it is killed when dropped.
pub struct Handler {
    child: Option<Child>,
    pub port: u16,
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
    _logs: tempfile::TempDir,
    http: reqwest::Client,
}

impl Handler {
    /// Starts `lead-notifier serve` (through FUNCTIONS_CUSTOMHANDLER_PORT and
    /// no subcommand, exactly as host.json's `arguments` do not matter) with
    /// only `settings` in its environment, and waits until `GET /` answers.
    pub async fn start(settings: &HashMap<String, String>) -> Handler {
        let port = free_port();
        let logs = tempfile::tempdir().expect("temp dir");
        let stdout_path = logs.path().join("stdout.log");
        let stderr_path = logs.path().join("stderr.log");
        let child = Command::new(env!("CARGO_BIN_EXE_lead-notifier"))
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
            .envs(settings)
            .stdout(std::fs::File::create(&stdout_path).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
            .stdin(Stdio::null())
            .spawn()
            .expect("start lead-notifier");
        let handler = Handler {
            child: Some(child),
            port,
            stdout_path,
            stderr_path,
            _logs: logs,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(300))
                .build()
                .expect("http client"),
        };
        handler.wait_ready(Duration::from_secs(20)).await;
        handler
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    async fn wait_ready(&self, timeout: Duration) {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if self.http.get(self.url("/")).send().await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "handler did not answer GET / within {timeout:?}; stderr: {}",
            self.stderr()
        );
    }

    /// POSTs `body` to `/{function}` like the host and returns status and JSON body.
    pub async fn invoke(&self, function: &str, body: &Value) -> (u16, Value) {
        self.invoke_text(function, body.to_string()).await
    }

    /// [`Self::invoke`] with the body as text, for JSON a `Value` cannot
    /// hold (a lone surrogate escape, as the host's UTF-16 strings allow).
    pub async fn invoke_text(&self, function: &str, body: String) -> (u16, Value) {
        let response = self
            .http
            .post(self.url(&format!("/{function}")))
            .header(
                "X-Azure-Functions-InvocationId",
                "0f3e4d5c-1111-2222-3333-444455556666",
            )
            .header("User-Agent", "Azure-Functions-Host/4.0")
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .expect("invocation answered");
        let status = response.status().as_u16();
        let text = response.text().await.expect("invocation body");
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    /// One timer invocation.
    pub async fn invoke_timer(&self) -> (u16, Value) {
        self.invoke("LeadNotifier", &timer_body()).await
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Sends SIGTERM and waits for the process to exit; returns whether it
    /// exited successfully.
    pub fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Handler {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `lead-notifier <args>` with only `settings`; exit code and all output.
pub async fn run_cli(settings: &HashMap<String, String>, args: &[&str]) -> (Option<i32>, String) {
    let settings = settings.clone();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_lead-notifier"))
            .args(&args)
            .env_clear()
            .envs(&settings)
            .output()
            .expect("run lead-notifier")
    })
    .await
    .expect("joined");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), text)
}
