//! Alert channels. One [`Notifier`] per integration; each answers delivered,
//! retryable or permanent. Retries, backoff and de-duplication belong to the
//! pipeline and the ledger, never to a notifier.

pub mod email;
pub mod outbox;
pub mod teams;
pub mod text;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::lead::Lead;

/// A channel's stable name, used as part of ledger keys: never rename.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelId {
    Email,
    Teams,
    Outbox,
}

impl ChannelId {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelId::Email => "email",
            ChannelId::Teams => "teams",
            ChannelId::Outbox => "outbox",
        }
    }
}

impl std::fmt::Display for ChannelId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one notification carries.
#[derive(Debug, Clone, Copy)]
pub enum Alert<'a> {
    Lead(&'a Lead),
    /// Many leads in one message. `total` is the run's whole count on this
    /// channel (a digest email may carry only part of it).
    Digest { leads: &'a [Lead], total: usize },
}

/// Why a send failed. Reasons hold no personal data and no secrets: they are
/// logged and stored in the ledger.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NotifyError {
    /// Worth trying again later (network trouble, throttling, 4xx SMTP, 5xx HTTP).
    #[error("{reason} (will retry)")]
    Retryable {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Trying again cannot help (rejected recipient, 4xx HTTP, bad configuration).
    #[error("{reason}")]
    Permanent { reason: String },
}

impl NotifyError {
    pub fn retryable(reason: impl Into<String>) -> Self {
        NotifyError::Retryable {
            reason: reason.into(),
            retry_after: None,
        }
    }
    pub fn permanent(reason: impl Into<String>) -> Self {
        NotifyError::Permanent {
            reason: reason.into(),
        }
    }
    pub fn is_retryable(&self) -> bool {
        matches!(self, NotifyError::Retryable { .. })
    }
    pub fn reason(&self) -> &str {
        match self {
            NotifyError::Retryable { reason, .. } | NotifyError::Permanent { reason } => reason,
        }
    }
}

pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<(), NotifyError>> + Send + 'a>>;

/// One integration.
pub trait Notifier: Send + Sync {
    fn channel(&self) -> ChannelId;
    /// Sends one alert once. Must not retry on its own.
    fn send<'a>(&'a self, alert: Alert<'a>) -> SendFuture<'a>;
    /// Digest size limit: how many leads one digest message may carry.
    fn max_digest_leads(&self) -> usize {
        usize::MAX
    }
    /// Reaches the service without sending anything (`lead-notifier check`).
    fn check(&self) -> SendFuture<'_> {
        Box::pin(async { Ok(()) })
    }
}
