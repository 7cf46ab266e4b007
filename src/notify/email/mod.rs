//! Email over SMTP with lettre: one message per lead (or per digest) to every
//! `EMAIL_TO` recipient, over connections kept for reuse. The login is a
//! password (PLAIN/LOGIN) or an OAuth 2.0 token (XOAUTH2). The exchange runs
//! step by step (`smtp.rs`) so a failure names its step and the fix for it.

pub mod body;
pub mod encode;
pub mod graph;
pub mod smtp;

use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::Error as SmtpError;
use lettre::Message;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use self::body::{render_html, render_text, subject};
use self::encode::body;
use self::smtp::{Cause, Security, SmtpClient, Step, StepError};
use crate::config::{SmtpAuth, SmtpSecurity, SmtpSettings, OUTLOOK_SCOPE};
use crate::identity::{IdentityError, TokenSource};
use crate::notify::{Alert, DestinationId, Notifier, NotifyError, SendFuture};
use crate::text::one_line;

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
    /// Host, port, TLS and the connections kept for reuse.
    client: SmtpClient,
    login: Login,
    from: Mailbox,
    to: Vec<Mailbox>,
    /// `host:port`, for error messages.
    server: String,
}

enum Login {
    None,
    Password(Credentials),
    /// XOAUTH2 with the credential layer's current token: connections made
    /// with an older token are not reused.
    OAuth2 {
        username: String,
        tokens: Arc<dyn TokenSource>,
    },
}

impl EmailNotifier {
    /// Connections are opened lazily and kept. `tokens` is required for
    /// `SMTP_AUTH=oauth2`.
    pub fn new(
        from: Mailbox,
        to: Vec<Mailbox>,
        settings: &SmtpSettings,
        tokens: Option<Arc<dyn TokenSource>>,
    ) -> Result<EmailNotifier, NotifyError> {
        let host = settings.host.as_str();
        let tls = || {
            crate::tls::smtp_tls_parameters(host).map_err(|e| {
                NotifyError::permanent(format!("SMTP_HOST {host:?} cannot be used for TLS: {e}"))
            })
        };
        let security = match settings.security {
            SmtpSecurity::StartTls => Security::StartTls(tls()?),
            SmtpSecurity::Tls => Security::Wrapper(tls()?),
            SmtpSecurity::None => Security::None,
        };
        let login = match &settings.auth {
            SmtpAuth::None => Login::None,
            SmtpAuth::Password { username, password } => Login::Password(Credentials::new(
                username.clone(),
                password.expose_secret().to_string(),
            )),
            SmtpAuth::OAuth2 { username } => Login::OAuth2 {
                username: username.clone(),
                tokens: tokens.ok_or_else(|| {
                    NotifyError::permanent(
                        "SMTP_AUTH=oauth2 needs a credential: set the managed identity or app registration settings",
                    )
                })?,
            },
        };
        if to.is_empty() {
            return Err(NotifyError::permanent(
                "EMAIL_TO has no recipient: set at least one address",
            ));
        }
        Ok(EmailNotifier {
            id: DestinationId::EMAIL,
            client: SmtpClient::new(host, settings.port, security, SMTP_TIMEOUT),
            login,
            from,
            to,
            server: format!("{host}:{}", settings.port),
        })
    }

    /// The login for the next connection: for XOAUTH2, with the current
    /// token (the credential layer caches and refreshes it).
    async fn login(&self) -> Result<Option<smtp::Login>, NotifyError> {
        Ok(match &self.login {
            Login::None => None,
            Login::Password(credentials) => Some(smtp::Login {
                mechanisms: vec![Mechanism::Plain, Mechanism::Login],
                credentials: credentials.clone(),
                token: None,
            }),
            Login::OAuth2 { username, tokens } => {
                let token = tokens
                    .token(OUTLOOK_SCOPE)
                    .await
                    .map_err(|e| token_error(&e, OUTLOOK_SCOPE, tokens.as_ref()))?;
                let secret = token.token.expose_secret();
                Some(smtp::Login {
                    mechanisms: vec![Mechanism::Xoauth2],
                    credentials: Credentials::new(username.clone(), secret.to_string()),
                    token: Some(Sha256::digest(secret).into()),
                })
            }
        })
    }

    /// The same mail server for other recipients (`EMAIL_TO_EMEA`, built
    /// with their addresses): connections of their own keep them independent.
    pub fn for_destination(self, id: DestinationId) -> EmailNotifier {
        EmailNotifier { id, ..self }
    }

    fn classify(&self, err: &StepError) -> NotifyError {
        let oauth2 = matches!(self.login, Login::OAuth2 { .. });
        let recipients = format!("EMAIL_TO{}", self.id.setting_suffix());
        classify(err, &self.server, oauth2, &recipients)
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
            // The message's encoded bodies are freed before the send: the
            // SMTP client copies the formatted bytes once more
            // (dot-stuffing), so a 500-lead digest (1.5 MB) was held three
            // times at once.
            let envelope = message.envelope().clone();
            let raw = message.formatted();
            drop(message);
            let login = self.login().await?;
            self.client
                .send(login.as_ref(), &envelope, &raw)
                .await
                .map_err(|e| self.classify(&e))
        })
    }

    fn max_digest_leads(&self) -> usize {
        MAX_DIGEST_LEADS
    }

    /// Connects, logs in and asks for a NOOP: every step but sending.
    fn check(&self) -> SendFuture<'_> {
        Box::pin(async move {
            let login = self.login().await?;
            match self.client.check(login.as_ref()).await {
                Ok(true) => Ok(()),
                Ok(false) => Err(NotifyError::retryable(format!(
                    "the mail server at {} accepted the connection but did not answer NOOP",
                    self.server
                ))),
                Err(e) => Err(self.classify(&e)),
            }
        })
    }

    fn credential(&self) -> Option<String> {
        match &self.login {
            Login::OAuth2 { tokens, .. } => Some(format!(
                "SMTP AUTH XOAUTH2, token for {OUTLOOK_SCOPE} from {}",
                tokens.describe()
            )),
            _ => None,
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
        Alert::Notice(notice) => {
            hash.update(format!("\nnotice {}", notice.id).as_bytes());
            &[]
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

/// The whole error chain of an SMTP error on one line.
pub(super) fn error_chain(err: &SmtpError) -> String {
    let text = crate::text::error_chain(err);
    text.replace("Connection error: Connection error: ", "Connection error: ")
}

/// [`error_chain`], capped: server replies are useful to whoever fixes the
/// setup, and never carry lead data (that is only in DATA's message).
fn detail(err: &SmtpError) -> String {
    crate::text::truncate(&one_line(&error_chain(err)), 300)
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

/// Exchange Online's refusal of password logins.
fn is_basic_auth_off(lower: &str) -> bool {
    lower.contains("5.7.30")
        || lower.contains("5.7.139")
        || lower.contains("basic authentication is not supported")
        || lower.contains("basic authentication is disabled")
}

/// A server that wants a login before it takes MAIL FROM or RCPT TO.
fn wants_login(code: &str, lower: &str) -> bool {
    code == "530" || lower.contains("5.7.57") || lower.contains("not authenticated")
}

const OAUTH2_FIX: &str = "check that SMTP AUTH is turned on for the SMTP_USERNAME mailbox \
    (Exchange: Set-CASMailbox -SmtpClientAuthenticationDisabled $false), that the app has \
    the SMTP.SendAsApp application permission and its service principal is registered in \
    Exchange Online (New-ServicePrincipal) with FullAccess on that mailbox, and that the \
    token is for https://outlook.office365.com (README: SMTP with OAuth 2.0)";

/// Sorts an SMTP failure into retryable or permanent, naming the step that
/// failed and the fix that fits it. `recipients` is the setting that holds
/// this destination's addresses (`EMAIL_TO`, `EMAIL_TO_EMEA`).
///
/// SMTP has no idempotency key: only failures that clearly happened before
/// the server accepted the message are safe to retry without a duplicate.
/// Only a connection lost in DATA may have been after the message was
/// taken; it is retried (a duplicate beats a lost lead) and the reason says so.
pub fn classify(err: &StepError, server: &str, oauth2: bool, recipients: &str) -> NotifyError {
    let step = err.step;
    let err = match &err.cause {
        Cause::Smtp(err) => err,
        Cause::Unsupported(what) => {
            return NotifyError::permanent(format!("SMTP {step} not attempted: {what} ({server})"))
        }
    };
    let detail = detail(err);
    let lower = detail.to_ascii_lowercase();
    let Some(code) = err.status() else {
        return unanswered(err, step, server, oauth2, &detail);
    };
    if err.is_transient() {
        return NotifyError::retryable(format!(
            "SMTP {step}: the mail server at {server} answered with a temporary error ({detail})"
        ));
    }
    let code = code.to_string();
    let fix = match step {
        Step::Connect => {
            "SMTP connect: the mail server refused the connection: check SMTP_HOST and SMTP_PORT, and that this app may connect to it".to_owned()
        }
        Step::Tls => {
            "SMTP TLS: the mail server refused STARTTLS: check SMTP_SECURITY and SMTP_PORT (tls for 465, starttls for 587)".to_owned()
        }
        Step::Auth if is_basic_auth_off(&lower) && !oauth2 => {
            "SMTP AUTH: Exchange Online no longer accepts passwords for SMTP: set SMTP_AUTH=oauth2, or EMAIL_VIA=graph (README: Email from Microsoft 365)".to_owned()
        }
        Step::Auth if matches!(code.as_str(), "500" | "501" | "504") && oauth2 => format!(
            "SMTP AUTH: the mail server refused the XOAUTH2 login command itself ({code}: a token is sent on one line of 1,000 characters or more, longer than some relays take): use smtp.office365.com as SMTP_HOST, or EMAIL_VIA=graph; then {OAUTH2_FIX}"
        ),
        Step::Auth if oauth2 => {
            format!("SMTP AUTH: the mail server refused the OAuth 2.0 login: {OAUTH2_FIX}")
        }
        Step::Auth if matches!(code.as_str(), "500" | "501" | "504") => {
            "SMTP AUTH: the mail server refused the login command: check SMTP_USERNAME and SMTP_PASSWORD, and SMTP_SECURITY (many servers take a login only after STARTTLS)".to_owned()
        }
        Step::Auth => {
            "SMTP AUTH: the mail server refused the login: check SMTP_USERNAME and SMTP_PASSWORD".to_owned()
        }
        Step::MailFrom | Step::RcptTo if wants_login(&code, &lower) => format!(
            "SMTP {step}: the mail server requires a login: set SMTP_USERNAME and SMTP_PASSWORD (or SMTP_AUTH=oauth2)"
        ),
        Step::MailFrom if is_size_refusal(&lower) => return too_large(step, server, &detail),
        Step::MailFrom => {
            "SMTP MAIL FROM: the mail server refused the sender: EMAIL_FROM must be allowed to send on this account".to_owned()
        }
        Step::RcptTo if lower.contains("relay") => format!(
            "SMTP RCPT TO: the mail server does not relay to this recipient: set SMTP_USERNAME and SMTP_PASSWORD if it relays only for a login, and check {recipients}"
        ),
        Step::RcptTo => {
            format!("SMTP RCPT TO: the mail server refused a recipient: check the addresses in {recipients}")
        }
        Step::Data if is_size_refusal(&lower) => return too_large(step, server, &detail),
        Step::Data
            if lower.contains("sendas")
                || lower.contains("5.7.60")
                || lower.contains("5.2.252")
                || lower.contains("sender") =>
        {
            "SMTP DATA: the mail server refused the sender: EMAIL_FROM must be allowed to send on this account".to_owned()
        }
        Step::Data
            if lower.contains("recipient")
                || lower.contains("5.1.1")
                || lower.contains("user unknown") =>
        {
            format!("SMTP DATA: the mail server refused a recipient: check the addresses in {recipients}")
        }
        Step::Data if code == "552" => {
            "SMTP DATA: the mail server refused the message (552: a full mailbox or a size limit)".to_owned()
        }
        Step::Data => "SMTP DATA: the mail server refused the message".to_owned(),
    };
    NotifyError::permanent(format!("{fix} ({server}: {detail})"))
}

fn too_large(step: Step, server: &str, detail: &str) -> NotifyError {
    NotifyError::TooLarge {
        reason: format!(
            "SMTP {step}: the mail server refused the message as too large ({server}: {detail})"
        ),
    }
}

/// A failure without an answer from the server: lettre refused to go on
/// (no login mechanism in common, no STARTTLS), the network, TLS, a timeout.
fn unanswered(
    err: &SmtpError,
    step: Step,
    server: &str,
    oauth2: bool,
    detail: &str,
) -> NotifyError {
    let lower = detail.to_ascii_lowercase();
    if err.is_client() {
        let fix = match step {
            // Usually the wrong SMTP_SECURITY, but also what a network that
            // strips STARTTLS looks like: a TLS failure, so retried.
            Step::Tls => {
                return NotifyError::retryable(format!(
                    "SMTP TLS: the mail server does not offer STARTTLS: check SMTP_SECURITY and \
                     SMTP_PORT (tls for 465, starttls for 587) ({server}: {detail})"
                ))
            }
            Step::Auth if oauth2 => "SMTP AUTH: the mail server does not offer XOAUTH2 authentication: check SMTP_HOST (smtp.office365.com) and SMTP_SECURITY (AUTH is offered only after STARTTLS)",
            Step::Auth => "SMTP AUTH: the mail server offers neither PLAIN nor LOGIN authentication: check SMTP_SECURITY (many servers offer AUTH only after STARTTLS)",
            _ => "the email could not be sent",
        };
        return NotifyError::permanent(format!("{fix} ({server}: {detail})"));
    }
    let fix = match step {
        Step::Connect
            if lower.contains("lookup") || lower.contains("resolve") || lower.contains("dns") =>
        {
            format!("SMTP connect: could not resolve the mail server {server}: check SMTP_HOST")
        }
        Step::Connect if io_kind(err) == Some(std::io::ErrorKind::ConnectionRefused) => format!(
            "SMTP connect: could not connect to the mail server {server} (connection refused): check SMTP_HOST and SMTP_PORT"
        ),
        // A silent greeting is also what TLS on a plain port looks like.
        Step::Connect if err.is_timeout() => format!(
            "SMTP connect: the mail server {server} did not answer in time: check SMTP_HOST, SMTP_PORT and SMTP_SECURITY (tls for 465, starttls for 587)"
        ),
        Step::Connect if smtp::looks_like_tls(err) => format!(
            "SMTP connect: the mail server {server} did not speak SMTP: check SMTP_SECURITY and SMTP_PORT (tls for 465, starttls for 587)"
        ),
        Step::Connect => format!("SMTP connect: could not connect to the mail server {server}"),
        Step::Tls => format!(
            "SMTP TLS: the TLS handshake with {server} failed: check SMTP_SECURITY and SMTP_PORT (tls for 465, starttls for 587), and SSL_CERT_FILE if the server's certificate is from a private CA"
        ),
        Step::Data => format!(
            "SMTP DATA: the connection to the mail server {server} broke while the message was sent; \
             if that was after the server took it, the server may have accepted it and \
             the retry can deliver it twice"
        ),
        // Nothing was handed over yet: a retry cannot duplicate.
        _ => format!(
            "SMTP {step}: the connection to the mail server {server} broke before the message was sent"
        ),
    };
    NotifyError::retryable(format!("{fix} ({detail})"))
}
