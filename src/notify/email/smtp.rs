//! SMTP one step at a time with lettre's client: connect (greeting and
//! EHLO), TLS, AUTH, MAIL FROM, RCPT TO, DATA. lettre's transport makes the
//! same exchange in one call, and its errors do not say which step failed:
//! a relay refusing the AUTH line reads like a refused message. Here every
//! error carries its [`Step`], so `email::classify` can name the setting
//! that fits. Connections are kept for reuse, as lettre's pool does.

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::Error as SmtpError;

/// A step of the SMTP exchange, named as the protocol names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// TCP, the server's greeting and EHLO (and the TLS handshake on 465).
    Connect,
    /// STARTTLS or the implicit TLS handshake.
    Tls,
    /// The login.
    Auth,
    MailFrom,
    RcptTo,
    /// The DATA command, the message and the server's answer to it.
    Data,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Connect => "connect",
            Step::Tls => "TLS",
            Step::Auth => "AUTH",
            Step::MailFrom => "MAIL FROM",
            Step::RcptTo => "RCPT TO",
            Step::Data => "DATA",
        })
    }
}

/// What went wrong in a step.
#[derive(Debug)]
pub enum Cause {
    /// The server's answer, the network or TLS, as lettre reports it.
    Smtp(SmtpError),
    /// The server lacks an extension the message needs (checked before
    /// sending, as lettre does).
    Unsupported(&'static str),
}

#[derive(Debug)]
pub struct StepError {
    pub step: Step,
    pub cause: Cause,
}

impl StepError {
    fn smtp(step: Step, err: SmtpError) -> StepError {
        StepError {
            step,
            cause: Cause::Smtp(err),
        }
    }
}

/// How to reach the server.
pub enum Security {
    None,
    StartTls(TlsParameters),
    /// Implicit TLS (465).
    Wrapper(TlsParameters),
}

/// A login for one connection: mechanisms, credentials, and what tells
/// connections made with different tokens apart (`None` for a password).
pub struct Login {
    pub mechanisms: Vec<Mechanism>,
    pub credentials: Credentials,
    pub token: Option<[u8; 32]>,
}

/// Connections kept between sends, at most this many.
const MAX_IDLE: usize = 10;
/// An idle connection older than this is closed rather than reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

struct Parked {
    connection: AsyncSmtpConnection,
    since: Instant,
    token: Option<[u8; 32]>,
}

/// One mail server and the connections kept for it.
pub struct SmtpClient {
    host: String,
    port: u16,
    timeout: Duration,
    hello: ClientId,
    security: Security,
    idle: Mutex<Vec<Parked>>,
}

impl SmtpClient {
    pub fn new(host: &str, port: u16, security: Security, timeout: Duration) -> SmtpClient {
        SmtpClient {
            host: host.to_owned(),
            port,
            timeout,
            hello: ClientId::default(),
            security,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Sends `raw` to the envelope's recipients on a kept connection made
    /// with the same login, else on a new one.
    pub async fn send(
        &self,
        login: Option<&Login>,
        envelope: &Envelope,
        raw: &[u8],
    ) -> Result<(), StepError> {
        let mut connection = self.connection(login).await?;
        match transaction(&mut connection, envelope, raw).await {
            Ok(()) => {
                self.park(connection, login);
                Ok(())
            }
            Err(e) => {
                connection.abort().await;
                Err(e)
            }
        }
    }

    /// Connects and logs in, then asks the server for a NOOP; `false` when
    /// it does not answer it.
    pub async fn check(&self, login: Option<&Login>) -> Result<bool, StepError> {
        let mut connection = self.connection(login).await?;
        let answered = connection.test_connected().await;
        if answered {
            self.park(connection, login);
        } else {
            connection.abort().await;
        }
        Ok(answered)
    }

    async fn connection(&self, login: Option<&Login>) -> Result<AsyncSmtpConnection, StepError> {
        let token = login.and_then(|l| l.token);
        while let Some(parked) = self.take_idle() {
            let mut connection = parked.connection;
            // A connection made with an older token, or left too long, is
            // closed; a live one answers NOOP (what lettre's pool checks).
            if parked.token == token
                && parked.since.elapsed() < IDLE_TIMEOUT
                && connection.test_connected().await
            {
                return Ok(connection);
            }
            connection.abort().await;
        }
        self.open(login).await
    }

    fn take_idle(&self) -> Option<Parked> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    fn park(&self, connection: AsyncSmtpConnection, login: Option<&Login>) {
        if connection.has_broken() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(Parked {
                connection,
                since: Instant::now(),
                token: login.and_then(|l| l.token),
            });
        }
    }

    /// A new connection: connect, TLS, AUTH, each its own step.
    async fn open(&self, login: Option<&Login>) -> Result<AsyncSmtpConnection, StepError> {
        let implicit = match &self.security {
            Security::Wrapper(tls) => Some(tls.clone()),
            _ => None,
        };
        let wrapped = implicit.is_some();
        let mut connection = AsyncSmtpConnection::connect_tokio1(
            (self.host.as_str(), self.port),
            Some(self.timeout),
            &self.hello,
            implicit,
            None,
        )
        .await
        .map_err(|e| {
            // On 465 the handshake is part of connecting.
            let step = if wrapped && looks_like_tls(&e) {
                Step::Tls
            } else {
                Step::Connect
            };
            StepError::smtp(step, e)
        })?;
        if let Security::StartTls(tls) = &self.security {
            if let Err(e) = connection.starttls(tls.clone(), &self.hello).await {
                connection.abort().await;
                return Err(StepError::smtp(Step::Tls, e));
            }
        }
        if let Some(login) = login {
            if let Err(e) = connection.auth(&login.mechanisms, &login.credentials).await {
                connection.abort().await;
                return Err(StepError::smtp(Step::Auth, e));
            }
        }
        Ok(connection)
    }
}

/// Whether a connection error is the TLS handshake's.
pub fn looks_like_tls(err: &SmtpError) -> bool {
    let text = super::error_chain(err).to_ascii_lowercase();
    err.is_tls()
        || ["tls", "certificate", "handshake", "corrupt message"]
            .iter()
            .any(|word| text.contains(word))
}

/// MAIL FROM, RCPT TO for each recipient, DATA: what lettre's
/// `AsyncSmtpConnection::send` does, with the step of any failure.
async fn transaction(
    connection: &mut AsyncSmtpConnection,
    envelope: &Envelope,
    raw: &[u8],
) -> Result<(), StepError> {
    let mut options = Vec::new();
    let non_ascii = envelope
        .from()
        .into_iter()
        .chain(envelope.to())
        .any(|a| !AsRef::<str>::as_ref(a).is_ascii());
    if non_ascii {
        if !connection
            .server_info()
            .supports_feature(Extension::SmtpUtfEight)
        {
            return Err(StepError {
                step: Step::MailFrom,
                cause: Cause::Unsupported(
                    "an address in EMAIL_FROM or EMAIL_TO is not ASCII, and the mail server does not offer SMTPUTF8",
                ),
            });
        }
        options.push(MailParameter::SmtpUtfEight);
    }
    if !raw.is_ascii() {
        if !connection
            .server_info()
            .supports_feature(Extension::EightBitMime)
        {
            return Err(StepError {
                step: Step::MailFrom,
                cause: Cause::Unsupported(
                    "the message has 8-bit text, and the mail server does not offer 8BITMIME",
                ),
            });
        }
        options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    connection
        .command(Mail::new(envelope.from().cloned(), options))
        .await
        .map_err(|e| StepError::smtp(Step::MailFrom, e))?;
    for to in envelope.to() {
        connection
            .command(Rcpt::new(to.clone(), Vec::new()))
            .await
            .map_err(|e| StepError::smtp(Step::RcptTo, e))?;
    }
    connection
        .command(Data)
        .await
        .map_err(|e| StepError::smtp(Step::Data, e))?;
    connection
        .message(raw)
        .await
        .map_err(|e| StepError::smtp(Step::Data, e))?;
    Ok(())
}
