//! The Azure Functions custom handler: the HTTP server the Functions host
//! starts and invokes (platform facts §2).
//!
//! The host treats any answer to `GET /` as "ready" and gives up on slow
//! starts, so the server binds first and builds nothing that does I/O until
//! the first invocation. Each timer invocation is `POST /LeadNotifier`
//! ([`timer`]); each real-time lead is `POST /LeadWebhook` ([`webhook`]).
//!
//! Layout, so that nothing imports back what imports it: this file routes
//! and serves; `timer.rs` and `webhook.rs` are the two functions; both take
//! what they share from `app.rs` (settings, the lazily built pipeline) and
//! `invocation.rs` (the host's request and response bodies).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tower_http::timeout::RequestBodyTimeoutLayer;

use crate::config::{ConfigError, Settings};

mod app;
mod invocation;
pub mod timer;
pub mod webhook;

pub use app::App;
pub use invocation::{parse_invocation, InvocationResponse};

/// The host's invocation bodies are small; anything bigger is not the host.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// The timer function's folder name, which is also its invocation path.
pub const TIMER_FUNCTION: &str = "LeadNotifier";
/// The real-time HTTP function's folder name.
pub const WEBHOOK_FUNCTION: &str = "LeadWebhook";

/// The handler's routes, for `serve` and for tests.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(ready))
        .route(&format!("/{TIMER_FUNCTION}"), post(timer::invoke))
        .route(&format!("/{WEBHOOK_FUNCTION}"), post(webhook::invoke))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(RequestBodyTimeoutLayer::new(BODY_TIMEOUT))
        .with_state(app)
}

/// Binds `127.0.0.1:port` (the host dials IPv4 loopback) and serves until
/// SIGTERM or Ctrl-C, letting running invocations and the alerts they left
/// under way finish.
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
    let app = App::new(settings);
    axum::serve(listener, router(app.clone()))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    app.wind_down().await;
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

/// How long a client may take to send its body; a slow sender must not hold
/// an invocation slot forever.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);
