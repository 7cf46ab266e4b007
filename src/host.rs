//! The Azure Functions custom handler: the HTTP server the Functions host
//! starts and invokes (platform facts §2).
//!
//! The host treats any answer to `GET /` as "ready" and gives up on slow
//! starts, so the server binds first and builds nothing that does I/O until
//! the first invocation. Each timer invocation is `POST /LeadNotifier`; a run
//! that leaves an owed alert undelivered answers 500 with the reason on
//! stderr, because the host discards `Logs` of failed invocations.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::net::TcpListener;
use tokio::sync::OnceCell;
use tower_http::timeout::RequestBodyTimeoutLayer;

use crate::config::{ConfigError, Settings};
use crate::pipeline::{Pipeline, RunSummary};

/// The host's invocation bodies are small; anything bigger is not the host.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// The timer function's folder name, which is also its invocation path.
pub const TIMER_FUNCTION: &str = "LeadNotifier";
/// The real-time HTTP function's folder name.
pub const WEBHOOK_FUNCTION: &str = "LeadWebhook";

/// What every invocation shares.
pub struct App {
    settings: Result<Arc<Settings>, ConfigError>,
    pipeline: OnceCell<Pipeline>,
}

impl App {
    pub fn new(settings: Result<Settings, ConfigError>) -> Arc<App> {
        Arc::new(App {
            settings: settings.map(Arc::new),
            pipeline: OnceCell::new(),
        })
    }

    /// The pipeline, built on first use so that start-up stays instant.
    pub async fn pipeline(&self) -> Result<&Pipeline, String> {
        let settings = self
            .settings
            .as_ref()
            .map_err(|e| format!("invalid settings: {e}"))?;
        self.pipeline
            .get_or_try_init(|| async {
                let http = crate::tls::http_client();
                crate::notify::from_settings(settings, http)
                    .map(|notifiers| Pipeline::new(settings.clone(), notifiers))
            })
            .await
            .map_err(|e| format!("cannot set up the alert channels: {e}"))
    }
}

/// The handler's routes, for `serve` and for tests.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(ready))
        .route(&format!("/{TIMER_FUNCTION}"), post(timer))
        .route(&format!("/{WEBHOOK_FUNCTION}"), post(webhook))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(RequestBodyTimeoutLayer::new(BODY_TIMEOUT))
        .with_state(app)
}

/// Binds `127.0.0.1:port` (the host dials IPv4 loopback) and serves until
/// SIGTERM or Ctrl-C, letting running invocations finish.
pub async fn serve(port: u16, settings: Result<Settings, ConfigError>) -> anyhow::Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!("cannot listen on {addr} (FUNCTIONS_CUSTOMHANDLER_PORT): {e}")
    })?;
    if let Err(e) = &settings {
        // Keep serving: every invocation then fails with this reason, which is
        // easier to find than a host that gave up restarting us.
        eprintln!("lead-notifier: {e}");
    }
    tracing::info!(%addr, "custom handler listening");
    axum::serve(listener, router(App::new(settings)))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    tracing::info!("custom handler stopped");
    Ok(())
}

/// Resolves on SIGTERM (what the host and containers send) or Ctrl-C. The
/// SIGTERM handler is installed when this is called, not when first polled,
/// so a signal that arrives mid-run is kept for the caller to see after it.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        let term = async {
            #[cfg(unix)]
            if let Some(mut term) = term {
                term.recv().await;
                return;
            }
            std::future::pending::<()>().await
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term => {},
        }
    }
}

async fn ready() -> &'static str {
    "lead-notifier is ready"
}

async fn not_found() -> (StatusCode, &'static str) {
    (StatusCode::NOT_FOUND, "no such function")
}

/// The body the host expects back from every invocation.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InvocationResponse<T: Serialize> {
    pub outputs: Map<String, Value>,
    pub logs: Vec<String>,
    pub return_value: T,
}

/// Parses an invocation body: a JSON object whose `Data` (when present) is an
/// object. Nothing else in it is needed, so nothing else is checked.
pub fn parse_invocation(body: &[u8]) -> Result<Map<String, Value>, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("invocation body is not JSON: {e}"))?;
    let Value::Object(object) = value else {
        return Err("invocation body must be a JSON object".into());
    };
    match object.get("Data") {
        None | Some(Value::Object(_)) => Ok(object),
        Some(_) => Err("invocation body's Data must be a JSON object".into()),
    }
}

async fn timer(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
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

async fn webhook(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let invocation = match parse_invocation(&body) {
        Ok(invocation) => invocation,
        Err(reason) => return (StatusCode::BAD_REQUEST, reason).into_response(),
    };
    let outputs = crate::webhook::handle(&app, &invocation).await;
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

/// How long a client may take to send its body; a slow sender must not hold
/// an invocation slot forever.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);
