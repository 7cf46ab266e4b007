//! `LeadWebhook`: Partner Center's HTTPS-endpoint destination, received
//! through the Functions host's HTTP trigger (`Data.req`).
//!
//! A posted lead is first stored in the lead table in Microsoft's own row
//! format, so the table stays the one system of record and the timer is the
//! safety net; then it is alerted at once through the same pipeline. The
//! ledger makes the timer's later pass over the same row a no-op.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use super::app::App;
use super::invocation::{parse_invocation, InvocationResponse};
use crate::lead::LeadRow;
use crate::lead_table::{store_rows, stored_row};
use crate::pipeline::Pipeline;
use crate::storage::StorageError;

/// How long alerting may hold up the answer to Partner Center (whose timeout
/// is undocumented): storing comes first, and what is not delivered within
/// this goes to the next timer run (README, "Real-time leads").
pub const ALERT_BUDGET: Duration = Duration::from_secs(2);

/// Leads are a few hundred bytes; anything this big is not one.
pub const MAX_LEAD_BYTES: usize = 64 * 1024;

/// `POST /LeadWebhook`: the caller's answer travels in the `res` output.
pub(super) async fn invoke(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let invocation = match parse_invocation(&body) {
        Ok(invocation) => invocation,
        Err(reason) => return (StatusCode::BAD_REQUEST, reason).into_response(),
    };
    let outputs = handle(&app, &invocation).await;
    let logs = outputs.logs.clone();
    let mut map = Map::new();
    map.insert("res".into(), outputs.res);
    Json(InvocationResponse {
        outputs: map,
        logs,
        return_value: Value::Null,
    })
    .into_response()
}

/// The HTTP output (`res`) for the caller and the invocation's log lines.
pub struct WebhookOutputs {
    pub res: Value,
    pub logs: Vec<String>,
}

fn answer(status: u16, body: Value, logs: Vec<String>) -> WebhookOutputs {
    WebhookOutputs {
        res: json!({
            "statusCode": status,
            "body": body.to_string(),
            "headers": {"Content-Type": "application/json"},
        }),
        logs,
    }
}

fn reject(status: u16, reason: &str) -> WebhookOutputs {
    answer(
        status,
        json!({"error": reason}),
        vec![format!("rejected: {reason}")],
    )
}

/// The request's body as the host passes it: a string, or (for a JSON
/// request, on some host versions) already parsed.
pub(super) fn request_body(req: &Map<String, Value>) -> Option<String> {
    match req.get("Body").or_else(|| req.get("body"))? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

pub async fn handle(app: &App, invocation: &Map<String, Value>) -> WebhookOutputs {
    let Some(req) = invocation
        .get("Data")
        .and_then(|d| d.get("req"))
        .and_then(Value::as_object)
    else {
        return reject(400, "the invocation carries no HTTP request (Data.req)");
    };
    let method = req.get("Method").and_then(Value::as_str).unwrap_or("POST");
    if !method.eq_ignore_ascii_case("POST") {
        return reject(405, "only POST is accepted");
    }
    let Some(body) = request_body(req) else {
        return reject(
            400,
            "the request has no body; expected a marketplace lead as JSON",
        );
    };
    if body.len() > MAX_LEAD_BYTES {
        return reject(413, "the body is larger than any marketplace lead");
    }
    let received = OffsetDateTime::now_utc();
    let row = match LeadRow::from_endpoint_json(&body, received) {
        Ok(row) => row,
        Err(e) => return reject(400, &e.to_string()),
    };
    let key = row.key().to_string();
    let pipeline = match app.pipeline().await {
        Ok(p) => p,
        Err(reason) => {
            eprintln!("lead-notifier: LeadWebhook could not store lead {key}: {reason}");
            return reject(500, "the lead could not be stored");
        }
    };
    let (row, stored) = match store_once(pipeline, row, received).await {
        Ok(done) => done,
        Err(e) => {
            eprintln!("lead-notifier: LeadWebhook could not store lead {key}: {e}");
            return reject(500, "the lead could not be stored");
        }
    };
    let key = row.key().to_string();
    let mut logs = vec![if stored {
        format!("lead {key} stored")
    } else {
        format!("lead {key} was already stored")
    }];
    // Stored is what the caller needs to hear. Alerting runs in a task of
    // its own so the answer waits at most ALERT_BUDGET: a send still under
    // way then is not cut off (that would record a retry for a message that
    // may be arriving, and alert twice) but finishes and is recorded after
    // the answer; whatever is left, the timer's next run finds and sends.
    let alerting = app.spawn({
        let pipeline = pipeline.clone();
        let rows = vec![row.clone()];
        let key = key.clone();
        async move {
            let result = pipeline.alert_rows_within(&rows, Some(ALERT_BUDGET)).await;
            if let Err(e) = &result {
                eprintln!("lead-notifier: LeadWebhook stored lead {key} but alerting failed: {e}");
            }
            result
        }
    });
    match tokio::time::timeout(ALERT_BUDGET, alerting).await {
        Ok(Ok(Ok(summary))) => logs.extend(summary.log_lines()),
        Ok(Ok(Err(e))) => logs.push(format!("alerting failed, the timer will retry: {e}")),
        Ok(Err(e)) => {
            eprintln!("lead-notifier: LeadWebhook alerting for lead {key} stopped: {e}");
            logs.push("alerting stopped, the timer will retry".to_owned());
        }
        Err(_) => logs.push(format!(
            "alerting goes on after the answer (budget {}s); the timer sends what it leaves",
            ALERT_BUDGET.as_secs()
        )),
    }
    let status = if stored { 201 } else { 200 };
    answer(
        status,
        json!({"status": if stored { "stored" } else { "duplicate" }, "partitionKey": row.partition_key, "rowKey": row.row_key}),
        logs,
    )
}

/// Stores a posted lead once. A repost (Partner Center retries) has the same
/// content-derived row key; the partition is the day a post is received, so
/// a retry after midnight UTC is looked for in the day before as well.
/// Answers the row as stored and whether this post stored it.
async fn store_once(
    pipeline: &Pipeline,
    row: LeadRow,
    received: OffsetDateTime,
) -> Result<(LeadRow, bool), StorageError> {
    let storage = pipeline.storage();
    let table = &pipeline.settings().leads_table;
    if let Some(earlier) = stored_row(&storage, table, &row.posted_day_before(received)).await? {
        return Ok((earlier, false));
    }
    let stored = store_rows(&storage, table, std::slice::from_ref(&row)).await?;
    Ok((row, stored > 0))
}
