//! Plays the Azure Functions host towards a running handler (platform facts
//! §2): readiness on `GET /` and the timer invocation as captured from Azure.
//! Shared by `demo` and `bench`, which must invoke the handler alike.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::{json, Value};

/// The timer function's folder name, which is also its invocation path.
pub const TIMER_FUNCTION: &str = "LeadNotifier";

/// The handler's answer to a timer invocation.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Answer {
    #[serde(default)]
    pub logs: Vec<String>,
    /// The run summary; kept as JSON so that a changed shape still shows.
    #[serde(default)]
    pub return_value: Value,
    /// Measured here, not part of the body.
    #[serde(skip)]
    pub status: u16,
    /// Request sent → answer read.
    #[serde(skip)]
    pub latency: Duration,
}

/// The fields of the handler's run summary (`pipeline::RunSummary`) that the
/// demo prints and the bench measures. Channels and reasons are map keys,
/// printed in the handler's (sorted) order.
#[derive(Debug, Deserialize)]
pub struct RunSummary {
    pub rows_scanned: u64,
    pub leads_new: u64,
    pub delivered: BTreeMap<String, u64>,
    pub skipped: BTreeMap<String, u64>,
    pub failed: u64,
    pub pending: u64,
    pub busy: u64,
    pub storage_requests: u64,
    pub duration_ms: u64,
    pub watermark: Option<String>,
    pub problems: Vec<String>,
}

impl Answer {
    pub fn summary(&self) -> Result<RunSummary> {
        RunSummary::deserialize(&self.return_value).with_context(|| {
            format!(
                "the handler's run summary has an unexpected shape: {}",
                self.return_value
            )
        })
    }
}

impl RunSummary {
    /// Alerts delivered on `channel` by this run.
    pub fn delivered(&self, channel: &str) -> u64 {
        self.delivered.get(channel).copied().unwrap_or(0)
    }
}

/// Whether the handler answers `GET /` at all (the host's readiness check).
pub fn ready(http: &ureq::Agent, port: u16) -> bool {
    http.get(format!("http://127.0.0.1:{port}/")).call().is_ok()
}

/// A new invocation id; the host's are GUIDs.
pub fn invocation_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// One timer invocation with the body and headers the host sends. A non-2xx
/// answer is an error (the host marks the invocation Failed).
pub fn invoke_timer(http: &ureq::Agent, port: u16, invocation_id: &str) -> Result<Answer> {
    let body = json!({
        "Data": {"timer": {
            "Schedule": {"AdjustForDST": true},
            "ScheduleStatus": null,
            "IsPastDue": false,
        }},
        "Metadata": {"sys": {
            "MethodName": TIMER_FUNCTION,
            // RFC 3339 with microseconds and `Z`, as the host writes it.
            "UtcNow": humantime::format_rfc3339_micros(SystemTime::now()).to_string(),
            "RandGuid": uuid::Uuid::new_v4().to_string(),
        }},
    });
    let sent = Instant::now();
    let mut response = http
        .post(format!("http://127.0.0.1:{port}/{TIMER_FUNCTION}"))
        .header("X-Azure-Functions-InvocationId", invocation_id)
        .header("User-Agent", "Azure-Functions-Host/4.0")
        .header("Content-Type", "application/json")
        .send(body.to_string())
        .context("the timer invocation failed")?;
    let text = response
        .body_mut()
        .read_to_string()
        .context("cannot read the handler's answer")?;
    let latency = sent.elapsed();
    let status = response.status();
    if !status.is_success() {
        bail!(
            "the handler answered {} (the host marks the invocation Failed): {text}",
            status.as_u16()
        );
    }
    let mut answer: Answer =
        serde_json::from_str(&text).context("the handler's answer is not JSON")?;
    answer.status = status.as_u16();
    answer.latency = latency;
    Ok(answer)
}
