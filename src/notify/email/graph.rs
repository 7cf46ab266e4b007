//! Email through Microsoft Graph `sendMail` (`EMAIL_VIA=graph`): the very
//! message SMTP would send (same subject, both parts, Message-ID, digests),
//! posted as base64 MIME from the `EMAIL_FROM` mailbox with an app-only
//! token from the credential layer.
//!
//! Graph's MIME form has no `saveToSentItems` switch: Exchange keeps a copy
//! in the sending mailbox's Sent Items. The JSON form could turn that off,
//! but it carries one body part and no Message-ID of ours, so the same
//! email on both transports wins.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use lettre::message::Mailbox;
use reqwest::StatusCode;
use secrecy::ExposeSecret;

use super::{render_message, token_error, MAX_DIGEST_LEADS};
use crate::config::GraphSettings;
use crate::identity::TokenSource;
use crate::notify::http::redirected;
use crate::notify::http::{error_code, Answer};
use crate::notify::{Alert, DestinationId, Notifier, NotifyError, SendFuture};

const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// Graph refuses requests over 4 MB ("The maximum request length supported
/// is 4MB"); the MIME message travels base64-encoded, a third larger. A
/// 500-lead digest is about 1.5 MB of MIME, but long descriptions can make
/// it larger: such digests are split to fit.
const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;
const CONNECT_CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// What to do about a 401 or 403: the two ways to give an identity
/// `Mail.Send`, and the mailbox scoping that can also refuse.
const PERMISSION_FIX: &str = "grant Microsoft Graph's Mail.Send as an application permission \
     with admin consent (app registration), or assign the Mail.Send app role to the managed \
     identity; if the app is restricted to chosen mailboxes (RBAC for Applications), include \
     the EMAIL_FROM mailbox";

pub struct GraphNotifier {
    id: DestinationId,
    http: reqwest::Client,
    /// `{GRAPH_ENDPOINT}/v1.0/users/{EMAIL_FROM address}/sendMail`.
    url: url::Url,
    /// `{GRAPH_ENDPOINT}/.default`.
    scope: String,
    tokens: Arc<dyn TokenSource>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl GraphNotifier {
    /// `http` is shared with the rest of the process; every post gets its own timeout.
    pub fn new(
        from: Mailbox,
        to: Vec<Mailbox>,
        settings: &GraphSettings,
        http: reqwest::Client,
        tokens: Arc<dyn TokenSource>,
    ) -> Result<GraphNotifier, NotifyError> {
        if to.is_empty() {
            return Err(NotifyError::permanent(
                "EMAIL_TO has no recipient: set at least one address",
            ));
        }
        let mut url = settings.endpoint.clone();
        url.path_segments_mut()
            .map_err(|()| NotifyError::permanent("GRAPH_ENDPOINT is not a base URL"))?
            .pop_if_empty()
            .extend(["v1.0", "users", from.email.as_ref(), "sendMail"]);
        Ok(GraphNotifier {
            id: DestinationId::EMAIL,
            http,
            url,
            scope: settings.scope(),
            tokens,
            from,
            to,
        })
    }

    /// Other recipients (`EMAIL_TO_EMEA`, built with their addresses) from
    /// the same mailbox.
    pub fn for_destination(self, id: DestinationId) -> GraphNotifier {
        GraphNotifier { id, ..self }
    }

    async fn post(&self, mime: Vec<u8>) -> Result<(), NotifyError> {
        let body = base64::engine::general_purpose::STANDARD.encode(mime);
        if body.len() > MAX_REQUEST_BYTES {
            // Graph would answer 413 after the upload.
            return Err(NotifyError::TooLarge {
                reason: format!(
                    "the email is {} MB as Graph takes it, over Graph's 4 MB a request",
                    body.len() / 1_000_000
                ),
            });
        }
        let token = self
            .tokens
            .token(&self.scope)
            .await
            .map_err(|e| token_error(&e, &self.scope, self.tokens.as_ref()))?;
        let response = self
            .http
            .post(self.url.clone())
            .timeout(HTTP_TIMEOUT)
            .bearer_auth(token.token.expose_secret())
            .header(reqwest::header::CONTENT_TYPE, "text/plain")
            .body(body)
            .send()
            .await
            // Without the URL: it holds the sending mailbox.
            .map_err(|e| {
                NotifyError::retryable(format!(
                    "could not reach Microsoft Graph: {}",
                    crate::text::error_line(&e.without_url())
                ))
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        // Only the start of the body: Graph's error documents are short,
        // and a proxy in GRAPH_ENDPOINT's place could answer anything.
        let answer = Answer::read(response).await;
        Err(classify(
            status,
            error_code(&answer.body).as_deref(),
            answer.retry_after,
        ))
    }
}

/// Sorts a Graph refusal into retryable or permanent, with the fix. Only
/// Graph's error code is kept: its messages can quote the request.
pub fn classify(
    status: StatusCode,
    code: Option<&str>,
    retry_after: Option<Duration>,
) -> NotifyError {
    let answer = match code {
        Some(code) => format!("{}, {code}", status.as_u16()),
        None => status.as_u16().to_string(),
    };
    match status.as_u16() {
        // The product's clients never follow one: the token and the email
        // would go to the `Location`.
        300..=399 => redirected(
            "GRAPH_ENDPOINT",
            status,
            "set it to the Microsoft Graph endpoint of the mailbox's cloud itself \
             (https://graph.microsoft.com, or a national cloud's)",
        ),
        408 | 429 | 500..=599 => NotifyError::Retryable {
            reason: format!(
                "Microsoft Graph is throttling or unavailable (Graph answered {answer})"
            ),
            retry_after,
        },
        401 => NotifyError::permanent(format!(
            "Microsoft Graph refused the token (Graph answered {answer}): check that the \
             credential belongs to the tenant of the EMAIL_FROM mailbox and that GRAPH_ENDPOINT \
             is its cloud; {PERMISSION_FIX}"
        )),
        403 => NotifyError::permanent(format!(
            "Microsoft Graph refused to send as EMAIL_FROM (Graph answered {answer}): \
             {PERMISSION_FIX}"
        )),
        404 => NotifyError::permanent(format!(
            "the EMAIL_FROM mailbox does not exist in this tenant (Graph answered {answer}): \
             set EMAIL_FROM to a licensed user or shared mailbox"
        )),
        413 => NotifyError::TooLarge {
            reason: format!(
                "Microsoft Graph refused the email as too large (Graph answered {answer})"
            ),
        },
        _ => NotifyError::permanent(format!(
            "Microsoft Graph refused the email (Graph answered {answer})"
        )),
    }
}

impl Notifier for GraphNotifier {
    fn channel(&self) -> DestinationId {
        // The same email destinations on another transport: ledger keys and
        // Message-IDs stay as they are when a publisher switches.
        self.id.clone()
    }

    fn send<'a>(&'a self, alert: Alert<'a>) -> SendFuture<'a> {
        Box::pin(async move {
            let message = render_message(alert, &self.from, &self.to)?;
            self.post(message.formatted()).await
        })
    }

    fn max_digest_leads(&self) -> usize {
        MAX_DIGEST_LEADS
    }

    /// Obtains a token and opens a connection to Graph; posting anything
    /// would send an email.
    fn check(&self) -> SendFuture<'_> {
        Box::pin(async move {
            self.tokens
                .token(&self.scope)
                .await
                .map_err(|e| token_error(&e, &self.scope, self.tokens.as_ref()))?;
            let host = self.url.host_str().unwrap_or_default().to_owned();
            let port = self.url.port_or_known_default().unwrap_or(443);
            let connect = tokio::net::TcpStream::connect((host.as_str(), port));
            match tokio::time::timeout(CONNECT_CHECK_TIMEOUT, connect).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(NotifyError::retryable(format!(
                    "could not connect to Microsoft Graph at {host}: {e}; check GRAPH_ENDPOINT and outbound network access"
                ))),
                Err(_) => Err(NotifyError::retryable(format!(
                    "Microsoft Graph at {host} did not answer in time; check outbound network access"
                ))),
            }
        })
    }

    fn credential(&self) -> Option<String> {
        Some(format!(
            "Microsoft Graph sendMail, token for {} from {}",
            self.scope,
            self.tokens.describe()
        ))
    }
}
