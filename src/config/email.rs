//! Email settings: who sends, who receives, and the transport (SMTP with a
//! password or OAuth 2.0, or Microsoft Graph `sendMail`).
//!
//! Email is on when `SMTP_HOST` is set (`EMAIL_VIA` defaults to `smtp`) or
//! when `EMAIL_VIA=graph`. Settings that belong to the other transport are
//! errors rather than silently ignored: someone who sets `SMTP_AUTH=oauth2`
//! next to `EMAIL_VIA=graph` should learn which one is in force.

use lettre::message::Mailbox;
use secrecy::SecretString;

use super::values::{self, invalid};
use super::{ConfigError, SmtpSecurity};
use crate::identity::Credential;

/// Microsoft Graph in the global cloud.
pub const DEFAULT_GRAPH_ENDPOINT: &str = "https://graph.microsoft.com";
/// The token audience Exchange Online's SMTP AUTH XOAUTH2 accepts.
pub const OUTLOOK_SCOPE: &str = "https://outlook.office365.com/.default";

#[derive(Debug, Clone)]
pub struct EmailSettings {
    /// `EMAIL_FROM`; `Name <addr>` allowed. With Graph, the mailbox that sends.
    pub from: Mailbox,
    /// `EMAIL_TO`, comma-separated, at least one.
    pub to: Vec<Mailbox>,
    /// `EMAIL_VIA` and the transport's own settings.
    pub transport: EmailTransport,
    /// Where tokens come from, for Graph and `SMTP_AUTH=oauth2`: the
    /// product-wide credential (managed identity, else the app registration
    /// in `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`).
    pub credential: Option<Credential>,
}

#[derive(Debug, Clone)]
pub enum EmailTransport {
    /// `EMAIL_VIA=smtp` (the default when `SMTP_HOST` is set).
    Smtp(SmtpSettings),
    /// `EMAIL_VIA=graph`.
    Graph(GraphSettings),
}

#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub auth: SmtpAuth,
}

/// `SMTP_AUTH` with `SMTP_USERNAME` / `SMTP_PASSWORD`.
#[derive(Debug, Clone)]
pub enum SmtpAuth {
    /// No login (neither `SMTP_USERNAME` nor `SMTP_PASSWORD` set).
    None,
    /// `SMTP_AUTH=password`, the default when `SMTP_PASSWORD` is set: PLAIN/LOGIN.
    Password {
        username: String,
        password: SecretString,
    },
    /// `SMTP_AUTH=oauth2`: SASL XOAUTH2 as `username` (the mailbox), with a
    /// token for [`OUTLOOK_SCOPE`] from the credential layer.
    OAuth2 { username: String },
}

#[derive(Debug, Clone)]
pub struct GraphSettings {
    /// `GRAPH_ENDPOINT` without a trailing slash, default [`DEFAULT_GRAPH_ENDPOINT`].
    pub endpoint: url::Url,
}

impl GraphSettings {
    /// The token scope for this Graph cloud: `{GRAPH_ENDPOINT}/.default`.
    pub fn scope(&self) -> String {
        format!("{}/.default", self.endpoint.as_str().trim_end_matches('/'))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Smtp,
    Graph,
}

/// Email settings, or `None` when email is off.
pub(super) fn parse<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
) -> Result<Option<EmailSettings>, ConfigError> {
    let via = match get("EMAIL_VIA") {
        None if get("SMTP_HOST").is_some() => Via::Smtp,
        None => {
            // EMAIL_FROM and friends without SMTP_HOST are fine: the sample
            // settings ship them that way, and the outbox may use them.
            // GRAPH_ENDPOINT alone most likely means EMAIL_VIA was forgotten.
            if get("GRAPH_ENDPOINT").is_some() {
                return Err(ConfigError::Conflict {
                    setting: "GRAPH_ENDPOINT",
                    with: "EMAIL_VIA unset",
                    fix: "set EMAIL_VIA=graph to send email through Microsoft Graph",
                });
            }
            return Ok(None);
        }
        Some(text) => match text.to_ascii_lowercase().as_str() {
            "smtp" => Via::Smtp,
            "graph" => Via::Graph,
            _ => return Err(invalid("EMAIL_VIA", format!("{text:?}"), "smtp or graph")),
        },
    };
    let because = match via {
        Via::Smtp => "email is on (SMTP_HOST is set)",
        Via::Graph => "EMAIL_VIA is graph",
    };
    let from = get("EMAIL_FROM").ok_or(ConfigError::Missing {
        setting: "EMAIL_FROM",
        because,
    })?;
    let from = values::mailbox("EMAIL_FROM", from)?;
    let to = recipients(get, because)?;
    let transport = match via {
        Via::Smtp => EmailTransport::Smtp(smtp(get)?),
        Via::Graph => EmailTransport::Graph(graph(get)?),
    };
    let needs_token = match &transport {
        EmailTransport::Graph(_) => Some("EMAIL_VIA=graph"),
        EmailTransport::Smtp(SmtpSettings {
            auth: SmtpAuth::OAuth2 { .. },
            ..
        }) => Some("SMTP_AUTH=oauth2"),
        EmailTransport::Smtp(_) => None,
    };
    let credential = needs_token
        .map(|setting| {
            Credential::product_default(get).map_err(|problem| ConfigError::Setting {
                setting: setting.to_owned(),
                problem: format!(
                    "needs a credential for its token, but there is {problem}: run with a \
                     managed identity, or set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET"
                ),
            })
        })
        .transpose()?;
    Ok(Some(EmailSettings {
        from,
        to,
        transport,
        credential,
    }))
}

/// `EMAIL_TO`. Kept apart so named recipient lists can join it.
fn recipients<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
    because: &'static str,
) -> Result<Vec<Mailbox>, ConfigError> {
    let to = get("EMAIL_TO").ok_or(ConfigError::Missing {
        setting: "EMAIL_TO",
        because,
    })?;
    values::mailbox_list("EMAIL_TO", to)
}

fn graph<'a>(get: &impl Fn(&str) -> Option<&'a str>) -> Result<GraphSettings, ConfigError> {
    for setting in ["SMTP_HOST", "SMTP_AUTH", "SMTP_USERNAME", "SMTP_PASSWORD"] {
        if get(setting).is_some() {
            return Err(ConfigError::Conflict {
                setting,
                with: "EMAIL_VIA=graph",
                fix: "Graph sends as EMAIL_FROM with a token from the credential settings; remove the SMTP_* settings, or set EMAIL_VIA=smtp",
            });
        }
    }
    let text = get("GRAPH_ENDPOINT").unwrap_or(DEFAULT_GRAPH_ENDPOINT);
    Ok(GraphSettings {
        endpoint: values::service_url("GRAPH_ENDPOINT", text)?,
    })
}

fn smtp<'a>(get: &impl Fn(&str) -> Option<&'a str>) -> Result<SmtpSettings, ConfigError> {
    if get("GRAPH_ENDPOINT").is_some() {
        return Err(ConfigError::Conflict {
            setting: "GRAPH_ENDPOINT",
            with: "EMAIL_VIA=smtp",
            fix: "set EMAIL_VIA=graph to send through Microsoft Graph, or remove GRAPH_ENDPOINT",
        });
    }
    let host = get("SMTP_HOST").ok_or(ConfigError::Missing {
        setting: "SMTP_HOST",
        because: "EMAIL_VIA is smtp",
    })?;
    let is_ip = host.parse::<std::net::IpAddr>().is_ok();
    if !is_ip && host.contains(|c: char| c.is_whitespace() || c == '/' || c == ':') {
        return Err(invalid(
            "SMTP_HOST",
            format!("{host:?}"),
            "a host name or IP address, without scheme or port (set SMTP_PORT)",
        ));
    }
    let security = get("SMTP_SECURITY").map_or(Ok(SmtpSecurity::StartTls), |v| {
        values::security("SMTP_SECURITY", v)
    })?;
    let default_port = match security {
        SmtpSecurity::StartTls => 587,
        SmtpSecurity::Tls => 465,
        SmtpSecurity::None => 25,
    };
    let port = get("SMTP_PORT").map_or(Ok(default_port), |v| {
        values::integer("SMTP_PORT", v, 1u16, "a TCP port number from 1 to 65535")
    })?;
    let auth = smtp_auth(get)?;
    // A login (password or bearer token) travels only encrypted, except to
    // this machine.
    if !matches!(auth, SmtpAuth::None)
        && security == SmtpSecurity::None
        && !values::is_loopback_host(host)
    {
        return Err(values::invalid(
            "SMTP_SECURITY",
            format!(
                "none, which would send the SMTP login (SMTP_PASSWORD or the OAuth token) \
                 unencrypted to {host}"
            ),
            "starttls (port 587) or tls (port 465) for a login; none only for a server on this \
             machine (localhost, 127.0.0.1, ::1) or without a login",
        ));
    }
    Ok(SmtpSettings {
        host: host.to_owned(),
        port,
        security,
        auth,
    })
}

fn smtp_auth<'a>(get: &impl Fn(&str) -> Option<&'a str>) -> Result<SmtpAuth, ConfigError> {
    let user = get("SMTP_USERNAME");
    let password = get("SMTP_PASSWORD");
    let oauth2 = match get("SMTP_AUTH") {
        None => false,
        Some(text) => match text.to_ascii_lowercase().as_str() {
            "password" => false,
            "oauth2" => true,
            _ => {
                return Err(invalid(
                    "SMTP_AUTH",
                    format!("{text:?}"),
                    "password or oauth2",
                ))
            }
        },
    };
    if oauth2 {
        if password.is_some() {
            return Err(ConfigError::Conflict {
                setting: "SMTP_PASSWORD",
                with: "SMTP_AUTH=oauth2",
                fix: "OAuth 2.0 logs in with a token from the credential settings; remove SMTP_PASSWORD",
            });
        }
        let user = user.ok_or(ConfigError::Missing {
            setting: "SMTP_USERNAME",
            because: "SMTP_AUTH is oauth2 (the mailbox that sends)",
        })?;
        // Exchange wants the mailbox's address here: catch a display name or
        // an app id early.
        if user.parse::<lettre::Address>().is_err() {
            return Err(invalid(
                "SMTP_USERNAME",
                format!("{user:?}"),
                "the sending mailbox's email address when SMTP_AUTH is oauth2",
            ));
        }
        return Ok(SmtpAuth::OAuth2 {
            username: user.to_owned(),
        });
    }
    match (user, password) {
        (Some(user), Some(password)) => Ok(SmtpAuth::Password {
            username: user.to_owned(),
            password: SecretString::from(password.to_owned()),
        }),
        (None, None) if get("SMTP_AUTH").is_some() => Err(ConfigError::Missing {
            setting: "SMTP_USERNAME and SMTP_PASSWORD",
            because: "SMTP_AUTH is password",
        }),
        (None, None) => Ok(SmtpAuth::None),
        (Some(_), None) => Err(ConfigError::Missing {
            setting: "SMTP_PASSWORD",
            because: "SMTP_USERNAME is set (or set SMTP_AUTH=oauth2 to log in with a token)",
        }),
        (None, Some(_)) => Err(ConfigError::Missing {
            setting: "SMTP_USERNAME",
            because: "SMTP_PASSWORD is set",
        }),
    }
}
