//! `LeadNotifier`: the timer invocation, one pipeline run. A run that leaves
//! an owed alert undelivered answers 500 with the reason on stderr, because
//! the host discards `Logs` of failed invocations.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{Map, Value};

use super::app::App;
use super::invocation::{parse_invocation, InvocationResponse};
use crate::pipeline::RunSummary;

/// `POST /LeadNotifier`.
pub(super) async fn invoke(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let invocation = match parse_invocation(&body) {
        Ok(invocation) => invocation,
        Err(reason) => return (StatusCode::BAD_REQUEST, reason).into_response(),
    };
    let invocation_id = headers
        .get("x-azure-functions-invocationid")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    let past_due = invocation
        .get("Data")
        .and_then(|d| d.pointer("/timer/IsPastDue"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    tracing::info!(invocation_id, past_due, "timer invocation");

    let pipeline = match app.pipeline().await {
        Ok(p) => p,
        Err(reason) => return failed(&invocation_id, reason, None),
    };
    match pipeline.run_once().await {
        Ok(summary) if summary.all_delivered() => {
            let logs = summary.log_lines();
            (StatusCode::OK, Json(respond(logs, summary))).into_response()
        }
        Ok(summary) => {
            let reason = format!(
                "{} alert(s) owed were not delivered: {}",
                summary.pending + summary.failed,
                summary.problems.join("; ")
            );
            failed(&invocation_id, reason, Some(summary))
        }
        Err(e) => failed(&invocation_id, format!("run failed: {e}"), None),
    }
}

fn respond<T: Serialize>(logs: Vec<String>, return_value: T) -> InvocationResponse<T> {
    InvocationResponse {
        outputs: Map::new(),
        logs,
        return_value,
    }
}

/// A failed invocation: the reason goes to stderr, which the host logs as an
/// error, because it discards `Logs` of a non-2xx answer.
fn failed(invocation_id: &str, reason: String, summary: Option<RunSummary>) -> Response {
    eprintln!("lead-notifier: invocation {invocation_id} failed: {reason}");
    let mut logs = summary
        .as_ref()
        .map(RunSummary::log_lines)
        .unwrap_or_default();
    logs.push(reason);
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(respond(logs, summary)),
    )
        .into_response()
}
