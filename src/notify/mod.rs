//! Alert channels. One [`Notifier`] per integration; each answers delivered,
//! retryable or permanent. Retries, backoff and de-duplication belong to the
//! pipeline and the ledger, never to a notifier.

pub mod email;
pub mod http;
pub mod hubspot;
mod notice;
pub mod outbox;
pub mod slack;
pub mod teams;
pub mod webhook;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{EmailSettings, EmailTransport, Settings, TeamsSettings};
use crate::identity::Credential;
use crate::lead::{Action, Customer, Lead, LeadKey, SkipReason, Source};

pub use crate::destination::{DestinationId, Kind};
pub use notice::Notice;

/// What one notification carries.
#[derive(Debug, Clone, Copy)]
pub enum Alert<'a> {
    Lead(&'a Lead),
    /// Many leads in one message. `total` is the run's whole count on this
    /// channel (a digest email may carry only part of it).
    Digest {
        leads: &'a [&'a Lead],
        total: usize,
    },
    /// The summary or a lead-flow health note, rendered for every channel.
    Notice(&'a Notice),
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
    /// The service refuses a message this large (Graph takes at most 4 MB a
    /// request, SMTP servers have their limits): a digest is sent again as
    /// two halves; a single lead this large fails for good.
    #[error("{reason}")]
    TooLarge { reason: String },
    /// The service refuses this lead's data while taking others' in the
    /// same run (a CRM's validation rule on one value): the lead fails for
    /// good, the channel goes on.
    #[error("{reason}")]
    Rejected { reason: String },
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
            NotifyError::Retryable { reason, .. }
            | NotifyError::Permanent { reason }
            | NotifyError::TooLarge { reason }
            | NotifyError::Rejected { reason } => reason,
        }
    }
}

pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<(), NotifyError>> + Send + 'a>>;

/// One result per lead of a batch, in the batch's order.
pub type BatchFuture<'a> = Pin<Box<dyn Future<Output = Vec<Result<(), NotifyError>>> + Send + 'a>>;

/// One lead of a batch ([`Notifier::send_batch`]).
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    pub lead: &'a Lead,
    /// No earlier run claimed this alert: nothing of it can be at the
    /// service yet. A retried alert may have arrived before its run ended
    /// (a crash, a lost answer), so a channel that can look checks first.
    pub first: bool,
}

/// One integration.
pub trait Notifier: Send + Sync {
    fn channel(&self) -> DestinationId;
    /// Sends one alert once. Must not retry on its own.
    fn send<'a>(&'a self, alert: Alert<'a>) -> SendFuture<'a>;
    /// False for a channel that wants one message per lead whatever the
    /// count (machines): the pipeline then never hands it a digest.
    fn takes_digests(&self) -> bool {
        true
    }
    /// How many leads a digest is gathered from at most (one claim, held in
    /// memory at once). One message may list fewer: [`Notifier::digest_fits`].
    fn max_digest_leads(&self) -> usize {
        usize::MAX
    }
    /// How many of `leads`, from the front, the digest message for
    /// `Alert::Digest { leads, total }` lists in full (at least one). The
    /// pipeline records only those as delivered by that message and sends
    /// the rest in further messages. A channel whose messages have no size
    /// limit lists them all.
    fn digest_fits(&self, leads: &[&Lead], total: usize) -> usize {
        let _ = total;
        leads.len()
    }
    /// Reaches the service without sending anything (`lead-notifier check`).
    fn check(&self) -> SendFuture<'_> {
        Box::pin(async { Ok(()) })
    }
    /// How the channel authenticates with a token, for `check`: transport,
    /// scope and credential. Never a secret.
    fn credential(&self) -> Option<String> {
        None
    }
    /// How many leads one [`Notifier::send_batch`] takes (1: one by one).
    fn batch_size(&self) -> usize {
        1
    }
    /// Sends each lead once, as few requests as the service allows; one
    /// result per lead, each settled on its own. Must not retry.
    fn send_batch<'a>(&'a self, batch: &'a [Attempt<'a>]) -> BatchFuture<'a> {
        Box::pin(async move {
            let mut results = Vec::with_capacity(batch.len());
            for attempt in batch {
                results.push(self.send(Alert::Lead(attempt.lead)).await);
            }
            results
        })
    }
    /// Why this channel cannot take `lead` at all (recorded as skipped for
    /// this destination only; the others still alert it).
    fn refuses(&self, lead: &Lead) -> Option<SkipReason> {
        let _ = lead;
        None
    }
}

/// Every configured destination: email when SMTP or Graph is set up (and
/// each `EMAIL_TO_<NAME>`), Teams when a webhook URL is set (and each named one),
/// Slack, signed webhooks, the outbox when OUTBOX_DIR is set. The outbox's `.eml` uses
/// the email settings' sender and recipients when there are any.
pub fn from_settings(
    settings: &Settings,
    http: reqwest::Client,
) -> Result<Vec<Arc<dyn Notifier>>, NotifyError> {
    let mut notifiers: Vec<Arc<dyn Notifier>> = Vec::new();
    if let Some(email) = &settings.email {
        notifiers.push(email_notifier(
            email,
            &http,
            DestinationId::EMAIL,
            &email.to,
        )?);
    }
    if let Some(teams) = &settings.teams {
        notifiers.push(Arc::new(teams::TeamsNotifier::new(teams, http.clone())?));
    }
    let named = &settings.destinations;
    if let Some(email) = &settings.email {
        for (id, to) in &named.email_to {
            notifiers.push(email_notifier(email, &http, id.clone(), to)?);
        }
    }
    for (id, url) in &named.teams {
        let teams = TeamsSettings {
            webhook_url: url.clone(),
        };
        let notifier = teams::TeamsNotifier::new(&teams, http.clone())?.for_destination(id.clone());
        notifiers.push(Arc::new(notifier));
    }
    for slack in &named.slack {
        notifiers.push(Arc::new(slack::SlackNotifier::new(slack, http.clone())?));
    }
    for webhook in &named.webhooks {
        let notifier = webhook::signed::SignedWebhookNotifier::new(webhook, http.clone())?;
        notifiers.push(Arc::new(notifier));
    }
    for account in &named.hubspot {
        notifiers.push(Arc::new(hubspot::HubSpotNotifier::new(
            account,
            http.clone(),
        )));
    }
    if let Some(dir) = &settings.outbox_dir {
        let (from, to) = match &settings.email {
            Some(email) => (email.from.clone(), email.to.clone()),
            None => (outbox::default_from(), outbox::default_to()),
        };
        notifiers.push(Arc::new(outbox::OutboxNotifier::new(dir, from, to)));
    }
    Ok(notifiers)
}

/// The email destination `id` to `to`, over the configured transport (SMTP
/// or Microsoft Graph), with tokens from the one credential where needed.
fn email_notifier(
    email: &EmailSettings,
    http: &reqwest::Client,
    id: DestinationId,
    to: &[lettre::message::Mailbox],
) -> Result<Arc<dyn Notifier>, NotifyError> {
    let from = email.from.clone();
    let tokens = email.credential.as_ref().map(Credential::token_source);
    Ok(match &email.transport {
        EmailTransport::Smtp(smtp) => Arc::new(
            email::EmailNotifier::new(from, to.to_vec(), smtp, tokens)?.for_destination(id),
        ),
        EmailTransport::Graph(graph) => {
            let tokens = tokens.ok_or_else(|| {
                NotifyError::permanent("EMAIL_VIA=graph needs a credential for its token")
            })?;
            Arc::new(
                email::graph::GraphNotifier::new(from, to.to_vec(), graph, http.clone(), tokens)?
                    .for_destination(id),
            )
        }
    })
}

/// The lead `test-alert` sends: clearly a sample, yet not shaped like
/// Microsoft's `MSFT_TEST` leads, so no filter drops it. Its row key carries
/// the time so each test alert is a new message (mail services drop repeated
/// Message-IDs).
pub fn sample_lead() -> Lead {
    let now = time::OffsetDateTime::now_utc();
    Lead {
        key: LeadKey {
            partition_key: "lead-notifier-sample".into(),
            row_key: format!("test-alert-{}", outbox::compact_time(now)),
        },
        timestamp: Some(now),
        created_time: Some(crate::text::format_time(now)),
        customer: Customer {
            first_name: Some("Sample".into()),
            last_name: Some("Lead".into()),
            email: Some("sample.lead@example.com".into()),
            phone: Some("+1 555 0100".into()),
            country: Some("US".into()),
            company: Some("Sample lead from lead-notifier".into()),
            title: Some("Not a real customer".into()),
        },
        customer_warning: None,
        customer_raw: None,
        source: Source::AppSource,
        action: Action::ContactMe,
        offer_id: Some("lead-notifier.sample-offer".into()),
        offer_name: Some("lead-notifier sample offer".into()),
        description: Some(
            "This is a test alert sent by `lead-notifier test-alert` to check the alert channels. \
             No customer asked for anything."
                .into(),
        ),
        lead_source_raw: Some("SPZA-PLT|lead-notifier.sample-offer".into()),
        history: None,
        take_url: None,
    }
}

/// Sends [`sample_lead`] once through every channel and reports each result.
/// Errors already name the setting to fix.
pub async fn test_alert(
    notifiers: &[Arc<dyn Notifier>],
) -> Vec<(DestinationId, Result<(), NotifyError>)> {
    let lead = sample_lead();
    let mut results = Vec::with_capacity(notifiers.len());
    for notifier in notifiers {
        results.push((notifier.channel(), notifier.send(Alert::Lead(&lead)).await));
    }
    results
}
