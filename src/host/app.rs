//! What every invocation shares: the settings read at start-up and the
//! pipeline built from them on first use.

use std::sync::Arc;

use tokio::sync::OnceCell;

use crate::config::{ConfigError, Settings};
use crate::pipeline::Pipeline;

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
