//! Email over SMTP with lettre: one message per lead (or per digest) to every
//! `EMAIL_TO` recipient, over one pooled connection per notifier. The login
//! is a password (PLAIN/LOGIN) or an OAuth 2.0 token (XOAUTH2).

use std::error::Error as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::AsyncSmtpTransportBuilder;
use lettre::transport::smtp::Error as SmtpError;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use super::email_body::{render_html, render_text, subject};
use super::email_encode::body;
use super::text::one_line;
use super::{Alert, DestinationId, Notifier, NotifyError, SendFuture};
use crate::config::{SmtpAuth, SmtpSettings, OUTLOOK_SCOPE};
use crate::identity::{IdentityError, TokenSource};

/// Leads per digest email: enough to be useful, small enough that the
/// message stays well under common 10–25 MB size limits.
pub const MAX_DIGEST_LEADS: usize = 500;

const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

const AUTO_SUBMITTED: HeaderName = HeaderName::new_from_ascii_str("Auto-Submitted");
/// Keeps Exchange from sending out-of-office and similar replies to the sender.
const AUTO_RESPONSE_SUPPRESS: HeaderName =
    HeaderName::new_from_ascii_str("X-Auto-Response-Suppress");

pub struct EmailNotifier {
    id: DestinationId,
    /// Host, port and TLS; credentials are added per login kind.
    builder: AsyncSmtpTransportBuilder,
    login: Login,
    from: Mailbox,
    to: Vec<Mailbox>,
    /// `host:port`, for error messages.
    server: String,
}

enum Login {
    /// No login, or a password: one transport for the notifier's life.
    Fixed(AsyncSmtpTransport<Tokio1Executor>),
    /// XOAUTH2: the transport is rebuilt whenever the credential layer hands
    /// out a new token, so no pooled connection outlives its token.
    OAuth2 {
        username: String,
        tokens: Arc<dyn TokenSource>,
        current: Mutex<Option<(TokenFingerprint, AsyncSmtpTransport<Tokio1Executor>)>>,
    },
}

/// Which token a transport was built with, without keeping a second copy of it.
type TokenFingerprint = [u8; 32];

impl EmailNotifier {
    /// Builds the transport once; connections are opened lazily and pooled.
    /// `tokens` is required for `SMTP_AUTH=oauth2`.
    pub fn new(
        from: Mailbox,
        to: Vec<Mailbox>,
        settings: &SmtpSettings,
        tokens: Option<Arc<dyn TokenSource>>,
    ) -> Result<EmailNotifier, NotifyError> {
        let host = settings.host.as_str();
        let builder = crate::tls::smtp_transport(host, settings.security).map_err(|e| {
            NotifyError::permanent(format!("SMTP_HOST {host:?} cannot be used for TLS: {e}"))
        })?;
        let builder = builder.port(settings.port).timeout(Some(SMTP_TIMEOUT));
        let login = match &settings.auth {
            SmtpAuth::None => Login::Fixed(builder.clone().build()),
            SmtpAuth::Password { username, password } => Login::Fixed(
                builder
                    .clone()
                    .credentials(Credentials::new(
                        username.clone(),
                        password.expose_secret().to_string(),
                    ))
                    .authentication(vec![Mechanism::Plain, Mechanism::Login])
                    .build(),
            ),
            SmtpAuth::OAuth2 { username } => Login::OAuth2 {
                username: username.clone(),
                tokens: tokens.ok_or_else(|| {
                    NotifyError::permanent(
                        "SMTP_AUTH=oauth2 needs a credential: set the managed identity or app registration settings",
                    )
                })?,
                current: Mutex::new(None),
            },
        };
        if to.is_empty() {
            return Err(NotifyError::permanent(
                "EMAIL_TO has no recipient: set at least one address",
            ));
        }
        Ok(EmailNotifier {
            id: DestinationId::EMAIL,
            builder,
            login,
            from,
            to,
            server: format!("{host}:{}", settings.port),
        })
    }

    /// The transport to send with: for XOAUTH2, one logged in with the
    /// current token (the credential layer caches and refreshes it).
    async fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, NotifyError> {
        let (username, tokens, current) = match &self.login {
            Login::Fixed(transport) => return Ok(transport.clone()),
            Login::OAuth2 {
                username,
                tokens,
                current,
            } => (username, tokens, current),
        };
        let token = tokens
            .token(OUTLOOK_SCOPE)
            .await
            .map_err(|e| token_error(&e, OUTLOOK_SCOPE, tokens.as_ref()))?;
        let fingerprint: TokenFingerprint = Sha256::digest(token.token.expose_secret()).into();
        let mut current = current.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((built_with, transport)) = current.as_ref() {
            if *built_with == fingerprint {
                return Ok(transport.clone());
            }
        }
        // Dropping the old transport closes its pooled connections once no
        // send is using them any more.
        let transport = self
            .builder
            .clone()
            .credentials(Credentials::new(
                username.clone(),
                token.token.expose_secret().to_string(),
            ))
            .authentication(vec![Mechanism::Xoauth2])
            .build();
        *current = Some((fingerprint, transport.clone()));
        Ok(transport)
    }

    /// The same mail server for other recipients (`EMAIL_TO_EMEA`, built
    /// with their addresses): one pooled transport per destination keeps
    /// them independent.
    pub fn for_destination(self, id: DestinationId) -> EmailNotifier {
        EmailNotifier { id, ..self }
    }

    fn oauth2(&self) -> bool {
        matches!(self.login, Login::OAuth2 { .. })
    }
}

/// A token the credential layer could not get. Retryable: the identity
/// endpoint or Entra ID may be briefly away, and the reason names the
/// settings when it is the configuration.
pub fn token_error(err: &IdentityError, scope: &str, tokens: &dyn TokenSource) -> NotifyError {
    NotifyError::retryable(format!(
        "could not get a token for {scope} from {}: {err}",
        tokens.describe()
    ))
}

impl Notifier for EmailNotifier {
    fn channel(&self) -> DestinationId {
        self.id.clone()
    }

    fn send<'a>(&'a self, alert: Alert<'a>) -> SendFuture<'a> {
        Box::pin(async move {
            let message = render_message(alert, &self.from, &self.to)?;
            // What lettre's `send(message)` does, but with the message's
            // encoded bodies freed before the send: the SMTP client copies
            // the formatted bytes once more (dot-stuffing), so a 500-lead
            // digest (1.5 MB) was held three times at once.
            let envelope = message.envelope().clone();
            let raw = message.formatted();
            drop(message);
            self.transport()
                .await?
                .send_raw(&envelope, &raw)
                .await
                .map(|_| ())
                .map_err(|e| classify(&e, &self.server, self.oauth2()))
        })
    }

    fn max_digest_leads(&self) -> usize {
        MAX_DIGEST_LEADS
    }

    fn check(&self) -> SendFuture<'_> {
        Box::pin(async move {
            match self.transport().await?.test_connection().await {
                Ok(true) => Ok(()),
                Ok(false) => Err(NotifyError::retryable(format!(
                    "the mail server at {} accepted the connection but did not answer NOOP",
                    self.server
                ))),
                Err(e) => Err(classify(&e, &self.server, self.oauth2())),
            }
        })
    }

    fn credential(&self) -> Option<String> {
        match &self.login {
            Login::Fixed(_) => None,
            Login::OAuth2 { tokens, .. } => Some(format!(
                "SMTP AUTH XOAUTH2, token for {OUTLOOK_SCOPE} from {}",
                tokens.describe()
            )),
        }
    }
}

/// The complete message for an alert. The outbox writes exactly this.
pub fn render_message(
    alert: Alert<'_>,
    from: &Mailbox,
    to: &[Mailbox],
) -> Result<Message, NotifyError> {
    let mut builder = Message::builder()
        .from(from.clone())
        .subject(subject(alert))
        .message_id(Some(message_id(alert, &DestinationId::EMAIL)))
        .date_now()
        .raw_header(HeaderValue::new(AUTO_SUBMITTED, "auto-generated".into()))
        .raw_header(HeaderValue::new(AUTO_RESPONSE_SUPPRESS, "All".into()));
    for mailbox in to {
        builder = builder.to(mailbox.clone());
    }
    builder
        .multipart(MultiPart::alternative_plain_html(
            body(render_text(alert)),
            body(render_html(alert)),
        ))
        .map_err(|e| NotifyError::permanent(format!("could not build the email: {e}")))
}

/// `<sha256(channel, lead keys)@lead-notifier>`: the same on every retry, so
/// a mail client can tell a repeated delivery from a new lead.
pub fn message_id(alert: Alert<'_>, channel: &DestinationId) -> String {
    let mut hash = Sha256::new();
    hash.update(channel.to_string().as_bytes());
    let one;
    let leads = match alert {
        Alert::Lead(lead) => {
            one = [lead];
            &one[..]
        }
        Alert::Digest { leads, total } => {
            hash.update(format!("\ndigest {total}").as_bytes());
            leads
        }
    };
    for lead in leads {
        // Lengths first so that ("a", "bc") and ("ab", "c") differ.
        for part in [&lead.key.partition_key, &lead.key.row_key] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part.as_bytes());
        }
    }
    format!("<{}@lead-notifier>", hex::encode(hash.finalize()))
}

/// The whole error chain on one line, capped: server replies are useful to
/// whoever fixes the setup, and never carry lead data (that is only in DATA).
fn detail(err: &SmtpError) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        let s = inner.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        source = inner.source();
    }
    // lettre nests its own connection errors, which reads as a stutter.
    let text = text.replace("Connection error: Connection error: ", "Connection error: ");
    super::text::truncate(&one_line(&text), 300)
}

fn io_kind(err: &SmtpError) -> Option<std::io::ErrorKind> {
    let mut source = err.source();
    while let Some(inner) = source {
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = inner.source();
    }
    None
}

/// A refusal of the message's size (which a smaller digest can pass), told
/// apart from a full mailbox or quota (which it cannot). Exchange words its
/// size limits as `5.2.3 … SendSizeLimit … message too large`.
fn is_size_refusal(lower: &str) -> bool {
    let size = lower.contains("5.3.4")
        || lower.contains("5.2.3")
        || lower.contains("too large")
        || lower.contains("too big")
        || (lower.contains("size") && lower.contains("exceed"));
    size && !lower.contains("mailbox") && !lower.contains("quota")
}

/// Sorts an SMTP failure into retryable or permanent, with the likely fix.
///
/// SMTP has no idempotency key: only failures that clearly happened before
/// the server accepted the message are safe to retry without a duplicate.
/// A connection lost mid-exchange may have been after DATA; it is retried
/// (a duplicate beats a lost lead) and the reason says so.
pub fn classify(err: &SmtpError, server: &str, oauth2: bool) -> NotifyError {
    let detail = detail(err);
    let lower = detail.to_ascii_lowercase();
    if let Some(code) = err.status() {
        let code_text = code.to_string();
        if err.is_transient() {
            return NotifyError::retryable(format!(
                "the mail server at {server} answered with a temporary error ({detail})"
            ));
        }
        if is_size_refusal(&lower) {
            return NotifyError::TooLarge {
                reason: format!(
                    "the mail server refused the message as too large ({server}: {detail})"
                ),
            };
        }
        let fix = if lower.contains("5.7.30")
            || lower.contains("basic authentication is not supported")
        {
            "Exchange Online no longer accepts passwords for SMTP: set SMTP_AUTH=oauth2, or EMAIL_VIA=graph (README: Email from Microsoft 365)"
        } else if (matches!(code_text.as_str(), "535" | "534" | "538")
            || lower.contains("5.7.8")
            || lower.contains("5.7.3 "))
            && oauth2
        {
            "the mail server rejected the OAuth 2.0 login: the app needs the SMTP.SendAsApp application permission, its service principal registered in Exchange Online (New-ServicePrincipal) with FullAccess on the SMTP_USERNAME mailbox, and SMTP AUTH enabled for that mailbox"
        } else if matches!(code_text.as_str(), "535" | "534" | "538") || lower.contains("5.7.8") {
            "the mail server rejected the login: check SMTP_USERNAME and SMTP_PASSWORD"
        } else if code_text == "530"
            || lower.contains("5.7.57")
            || lower.contains("not authenticated")
        {
            "the mail server requires authentication: set SMTP_USERNAME and SMTP_PASSWORD"
        } else if lower.contains("sendas") || lower.contains("5.7.60") || lower.contains("sender") {
            "the mail server refused the sender: EMAIL_FROM must be allowed to send on this account"
        } else if lower.contains("recipient")
            || lower.contains("5.1.1")
            || lower.contains("user unknown")
            || lower.contains("rcpt")
        {
            "the mail server refused a recipient: check the addresses in EMAIL_TO"
        } else if code_text == "552" {
            "the mail server refused the message (552: a full mailbox or a size limit)"
        } else {
            "the mail server refused the message: check that EMAIL_FROM may send on this account and that EMAIL_TO is right"
        };
        return NotifyError::permanent(format!("{fix} ({server}: {detail})"));
    }
    if err.is_client() {
        if lower.contains("starttls") {
            // Usually the wrong SMTP_SECURITY, but also what a network that
            // strips STARTTLS looks like: a TLS failure, so retried.
            return NotifyError::retryable(format!(
                "the mail server does not offer STARTTLS: check SMTP_SECURITY and SMTP_PORT \
                 (tls for 465, starttls for 587) ({server}: {detail})"
            ));
        }
        let fix = if lower.contains("authentication mechanism") && oauth2 {
            "the mail server does not offer XOAUTH2 authentication: check SMTP_HOST (smtp.office365.com) and SMTP_SECURITY (AUTH is offered only after STARTTLS)"
        } else if lower.contains("authentication mechanism") {
            "the mail server offers neither PLAIN nor LOGIN authentication: check SMTP_SECURITY (many servers offer AUTH only after STARTTLS)"
        } else {
            "the email could not be sent"
        };
        return NotifyError::permanent(format!("{fix} ({server}: {detail})"));
    }
    let connecting = detail.starts_with("Connection error");
    let fix = if lower.contains("lookup") || lower.contains("resolve") || lower.contains("dns") {
        format!("could not resolve the mail server {server}: check SMTP_HOST")
    } else if err.is_tls()
        || lower.contains("tls")
        || lower.contains("certificate")
        || lower.contains("handshake")
        || lower.contains("corrupt message")
    {
        format!("the TLS handshake with {server} failed: check SMTP_SECURITY and SMTP_PORT (tls for 465, starttls for 587)")
    } else if io_kind(err) == Some(std::io::ErrorKind::ConnectionRefused) {
        format!("could not connect to the mail server {server} (connection refused): check SMTP_HOST and SMTP_PORT")
    } else if err.is_timeout() && connecting {
        format!("the mail server {server} did not answer in time: check SMTP_HOST, SMTP_PORT and SMTP_SECURITY (tls for 465, starttls for 587)")
    } else if err.is_timeout() {
        // Could be a silent greeting (wrong SMTP_SECURITY) or a silent
        // server after DATA; the error does not say which.
        format!(
            "the mail server {server} stopped answering: check SMTP_SECURITY and SMTP_PORT \
             (tls for 465, starttls for 587); if it stopped after the message was sent, \
             the server may have accepted it and the retry can deliver it twice"
        )
    } else if connecting {
        format!("could not connect to the mail server {server}")
    } else {
        format!(
            "the connection to the mail server {server} broke during the SMTP exchange; \
             if that was after the message was sent, the server may have accepted it and \
             the retry can deliver it twice"
        )
    };
    NotifyError::retryable(format!("{fix} ({detail})"))
}
