//! What every invocation shares: the settings read at start-up and the
//! pipeline built from them on first use.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::OnceCell;
use tokio_util::task::TaskTracker;

use crate::config::{ConfigError, Settings};
use crate::pipeline::Pipeline;

/// What every invocation shares.
pub struct App {
    settings: Result<Arc<Settings>, ConfigError>,
    pipeline: OnceCell<Pipeline>,
    /// Work that goes on after its invocation was answered (a webhook send
    /// past the alerting budget): shutdown waits for it, because a send cut
    /// off before it is recorded is sent again once its claim expires.
    background: TaskTracker,
}

/// The longest shutdown waits for background work: every send has its own
/// timeout (60 s at most), then its record is written.
const WIND_DOWN: Duration = Duration::from_secs(75);

impl App {
    pub fn new(settings: Result<Settings, ConfigError>) -> Arc<App> {
        Arc::new(App {
            settings: settings.map(Arc::new),
            pipeline: OnceCell::new(),
            background: TaskTracker::new(),
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

    /// Runs `work` in the background, to be finished before shutdown.
    pub fn spawn<F>(&self, work: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.background.spawn(work)
    }

    /// Waits (bounded) for background work once nothing new can start.
    pub async fn wind_down(&self) {
        self.background.close();
        if self.background.is_empty() {
            return;
        }
        tracing::info!(tasks = self.background.len(), "finishing alerts under way");
        if tokio::time::timeout(WIND_DOWN, self.background.wait())
            .await
            .is_err()
        {
            eprintln!(
                "lead-notifier: stopped with alerts still under way; \
                 the timer retries them once their claims expire (CLAIM_LEASE)"
            );
        }
    }
}
