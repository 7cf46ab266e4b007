//! The Azure Functions custom handler: the HTTP server the Functions host
//! starts and invokes (platform facts §2).
//!
//! The host treats any answer to `GET /` as "ready" and gives up on slow
//! starts, so the server binds first and builds nothing that does I/O until
//! the first invocation. Each timer invocation is `POST /LeadNotifier`
//! ([`timer`]); each real-time lead is `POST /LeadWebhook` ([`webhook`]).
//!
//! Only the host should call, but anything on the machine can connect: the
//! server reads headers within [`HEADER_READ_TIMEOUT`], a whole body within
//! [`BODY_TIMEOUT`] and at most [`MAX_BODY_BYTES`] of it, and holds at most
//! [`MAX_CONNECTIONS`] connections; more wait to be accepted (never refused)
//! until one closes.
//!
//! Layout, so that nothing imports back what imports it: this file routes
//! and serves; `timer.rs` and `webhook.rs` are the two functions; both take
//! what they share from `app.rs` (settings, the lazily built pipeline) and
//! `invocation.rs` (the host's request and response bodies).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::{ConfigError, Settings};

mod app;
mod invocation;
pub mod take;
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
/// The "I'll take it" page's function folder name.
pub const TAKE_FUNCTION: &str = "LeadTake";

/// The handler's routes, for `serve` and for tests.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(ready))
        .route(&format!("/{TIMER_FUNCTION}"), post(timer::invoke))
        .route(&format!("/{WEBHOOK_FUNCTION}"), post(webhook::invoke))
        .route(&format!("/{TAKE_FUNCTION}"), post(take::invoke))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(whole_body))
        .with_state(app)
}

/// Reads the request's whole body before any handler runs: at most
/// [`MAX_BODY_BYTES`], all of it within [`BODY_TIMEOUT`] however it is
/// trickled (a timeout per read would restart with every byte).
async fn whole_body(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let read = Limited::new(body, MAX_BODY_BYTES).collect();
    let refusal = match tokio::time::timeout(BODY_TIMEOUT, read).await {
        Ok(Ok(collected)) => {
            let body = Body::from(collected.to_bytes());
            return next.run(Request::from_parts(parts, body)).await;
        }
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "the body is larger than an invocation's",
        ),
        Ok(Err(_)) => (StatusCode::BAD_REQUEST, "the body could not be read"),
        Err(_) => (
            StatusCode::REQUEST_TIMEOUT,
            "the body did not arrive in time",
        ),
    };
    // The rest of the body is not read: the connection cannot be reused.
    let mut response = refusal.into_response();
    response.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    response
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
    serve_connections(listener, router(app.clone()), shutdown_signal()).await;
    app.wind_down().await;
    tracing::info!("custom handler stopped");
    Ok(())
}

/// Accepts connections while fewer than [`MAX_CONNECTIONS`] are open (the
/// next waits in the listen queue until one closes) and serves each with
/// hyper's header-read timeout; on `shutdown` stops accepting, lets running
/// requests finish and closes idle connections.
async fn serve_connections(
    listener: TcpListener,
    routes: Router,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let open = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let service = TowerToHyperService::new(routes);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = open.clone().acquire_owned() => slot,
            () = &mut shutdown => break,
        };
        let Ok(slot) = slot else { break };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait, then go on.
                    tracing::warn!(error = %e, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let connection = http.serve_connection(TokioIo::new(stream), service.clone());
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
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

/// How long a client may take to send its whole body, counted from the end
/// of its headers; a slow sender must not hold a connection forever. The
/// host sends a body of at most a few KB over loopback at once.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a client may take to send a request's headers, counted from
/// when the server waits for them: also how long an idle connection stays
/// open between requests.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once. The host keeps a few open; far more than it
/// ever uses, far fewer than the file descriptors a process may hold.
pub const MAX_CONNECTIONS: usize = 256;
