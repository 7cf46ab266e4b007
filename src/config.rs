//! Settings, read once from environment variables (the Functions host passes
//! local.settings.json `Values` and Azure app settings that way). Every invalid
//! value is an error naming the setting and what it accepts. Secrets are
//! `SecretString`s: they never reach `Debug`, errors or logs.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use time::OffsetDateTime;

use crate::lead::Filters;

mod connection;
mod summary;
mod values;

use values::invalid;

/// All settings of one process.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `LEADS_STORAGE_CONNECTION`, else `AzureWebJobsStorage`.
    pub storage: StorageConnection,
    /// `LEADS_TABLE`, default `MarketplaceLeads`.
    pub leads_table: String,
    /// `LEADS_STATE_TABLE`, default `LeadNotifierState`.
    pub state_table: String,
    /// `LEADS_START_FROM`, default `24h`.
    pub start_from: StartFrom,
    /// `LEADS_POLL_SCHEDULE`, default `0 */5 * * * *`.
    pub poll_schedule: String,
    /// On when `SMTP_HOST` is set.
    pub email: Option<EmailSettings>,
    /// On when `TEAMS_WEBHOOK_URL` is set.
    pub teams: Option<TeamsSettings>,
    /// `OUTBOX_DIR`.
    pub outbox_dir: Option<PathBuf>,
    /// `DIGEST_AFTER`, default 20.
    pub digest_after: usize,
    /// `SKIP_TEST_LEADS`, `SKIP_EDU`, `SKIP_DO_NOT_CONTACT`, all default true.
    pub filters: Filters,
    /// `ALERT_MAX_ATTEMPTS`, default 20: runs that may try one alert before it
    /// is marked failed for good.
    pub max_attempts: u32,
    /// `CLAIM_LEASE`, default `10m`: how long a claim blocks other runs before
    /// it counts as abandoned by a crashed run.
    pub claim_lease: Duration,
    /// `SCAN_OVERLAP`, default `5m`: how far behind the watermark each scan
    /// starts, because rows commit slightly out of timestamp order.
    pub scan_overlap: Duration,
    /// `RETRY_BUDGET`, default `30s`: the most one run spends waiting between
    /// retries of one channel.
    pub retry_budget: Duration,
    /// `SSL_CERT_FILE`: certificates every TLS client trusts in addition to
    /// the built-in roots (read from the environment by [`crate::tls`]).
    pub ssl_cert_file: Option<PathBuf>,
}

/// Where the lead and state tables live.
#[derive(Debug, Clone)]
pub enum StorageConnection {
    /// `UseDevelopmentStorage=true`: Azurite on its default ports.
    Emulator,
    /// A full connection string.
    Account {
        account: String,
        key: SecretString,
        /// `TableEndpoint=` when given, else
        /// `https://{account}.table.{EndpointSuffix}`.
        table_endpoint: url::Url,
    },
    /// Keyless: a Microsoft Entra identity holding a role on the account
    /// (`<prefix>__tableServiceUri` or `__accountName`, `__credential`…).
    Identity {
        account: String,
        /// Always https: a bearer token travels to it.
        table_endpoint: url::Url,
        credential: crate::identity::Credential,
    },
}

impl StorageConnection {
    /// Account name for messages.
    pub fn account(&self) -> &str {
        match self {
            StorageConnection::Emulator => "devstoreaccount1",
            StorageConnection::Account { account, .. }
            | StorageConnection::Identity { account, .. } => account,
        }
    }

    /// The identity of a keyless connection.
    pub fn credential(&self) -> Option<&crate::identity::Credential> {
        match self {
            StorageConnection::Identity { credential, .. } => Some(credential),
            _ => None,
        }
    }
}

/// `LEADS_START_FROM`.
#[derive(Debug, Clone, PartialEq)]
pub enum StartFrom {
    Beginning,
    At(OffsetDateTime),
    LookBack(Duration),
}

impl StartFrom {
    /// The first run's lower bound, or `None` for the whole table.
    pub fn resolve(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        match self {
            StartFrom::Beginning => None,
            StartFrom::At(t) => Some(*t),
            StartFrom::LookBack(d) => Some(now - *d),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    StartTls,
    Tls,
    None,
}

#[derive(Debug, Clone)]
pub struct EmailSettings {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    /// `SMTP_USERNAME` and `SMTP_PASSWORD`, both or neither.
    pub credentials: Option<(String, SecretString)>,
    /// `EMAIL_FROM`; `Name <addr>` allowed.
    pub from: lettre::message::Mailbox,
    /// `EMAIL_TO`, comma-separated, at least one.
    pub to: Vec<lettre::message::Mailbox>,
}

#[derive(Debug, Clone)]
pub struct TeamsSettings {
    /// The whole URL is a secret: its `sig=` parameter is the credential.
    pub webhook_url: SecretString,
}

/// A setting that is invalid, named with what it accepts.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{setting} is {problem}; it accepts {accepts}")]
    Invalid {
        setting: &'static str,
        problem: String,
        accepts: &'static str,
    },
    #[error("{setting} is required when {because}")]
    Missing {
        setting: &'static str,
        because: &'static str,
    },
    /// A setting whose name is made from a connection prefix
    /// (`<prefix>__clientId`); `problem` says what is wrong and the fix.
    #[error("{setting} {problem}")]
    Setting { setting: String, problem: String },
    #[error("no alert channel is configured: set SMTP_HOST (with EMAIL_FROM and EMAIL_TO), TEAMS_WEBHOOK_URL or OUTBOX_DIR")]
    NoChannel,
    #[error("could not read settings file {path}: {reason}")]
    SettingsFile { path: String, reason: String },
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Settings, ConfigError> {
        let vars: HashMap<String, String> = std::env::vars().collect();
        Settings::from_map(&vars)
    }

    /// Reads settings from name/value pairs (handy in tests).
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Settings, ConfigError> {
        let vars = pairs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Settings::from_map(&vars)
    }

    /// Reads settings from a name → value map (the environment, or a test's).
    /// Empty values count as unset.
    pub fn from_map(vars: &HashMap<String, String>) -> Result<Settings, ConfigError> {
        let get = |name: &str| vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
        let storage = connection::from_settings(vars, &get)?;
        let leads_table = values::table_name(
            "LEADS_TABLE",
            get("LEADS_TABLE").unwrap_or("MarketplaceLeads"),
        )?;
        let state_table = values::table_name(
            "LEADS_STATE_TABLE",
            get("LEADS_STATE_TABLE").unwrap_or("LeadNotifierState"),
        )?;
        // Table names are case-insensitive in Azure.
        if leads_table.eq_ignore_ascii_case(&state_table) {
            return Err(invalid(
                "LEADS_STATE_TABLE",
                "the same table as LEADS_TABLE",
                "a table name other than the lead table's",
            ));
        }
        let email = email_settings(&get)?;
        let teams = get("TEAMS_WEBHOOK_URL")
            .map(|url| values::webhook_url("TEAMS_WEBHOOK_URL", url))
            .transpose()?
            .map(|webhook_url| TeamsSettings { webhook_url });
        let outbox_dir = get("OUTBOX_DIR").map(PathBuf::from);
        if email.is_none() && teams.is_none() && outbox_dir.is_none() {
            return Err(ConfigError::NoChannel);
        }
        let ssl_cert_file = get(crate::tls::SSL_CERT_FILE)
            .map(|path| {
                crate::tls::read_bundle(std::path::Path::new(path))
                    .map(|_| PathBuf::from(path))
                    .map_err(|problem| {
                        invalid(
                            crate::tls::SSL_CERT_FILE,
                            format!("{path}, which {problem}"),
                            "the path of a PEM file of certificates to trust in addition to the built-in roots",
                        )
                    })
            })
            .transpose()?;
        let flag = |name: &'static str| get(name).map_or(Ok(true), |v| values::boolean(name, v));
        let duration = |name: &'static str, default: &str, nonzero: bool| {
            values::duration(name, get(name).unwrap_or(default), nonzero)
        };
        Ok(Settings {
            storage,
            leads_table,
            state_table,
            start_from: values::start_from(
                "LEADS_START_FROM",
                get("LEADS_START_FROM").unwrap_or("24h"),
            )?,
            poll_schedule: values::schedule(
                "LEADS_POLL_SCHEDULE",
                get("LEADS_POLL_SCHEDULE").unwrap_or("0 */5 * * * *"),
            )?,
            email,
            teams,
            outbox_dir,
            digest_after: values::integer(
                "DIGEST_AFTER",
                get("DIGEST_AFTER").unwrap_or("20"),
                0,
                "a whole number of alerts, 0 or more",
            )?,
            filters: Filters {
                skip_test_leads: flag("SKIP_TEST_LEADS")?,
                skip_edu: flag("SKIP_EDU")?,
                skip_do_not_contact: flag("SKIP_DO_NOT_CONTACT")?,
            },
            max_attempts: values::integer(
                "ALERT_MAX_ATTEMPTS",
                get("ALERT_MAX_ATTEMPTS").unwrap_or("20"),
                1,
                "a whole number of attempts, 1 or more",
            )?,
            claim_lease: duration("CLAIM_LEASE", "10m", true)?,
            scan_overlap: duration("SCAN_OVERLAP", "5m", false)?,
            retry_budget: duration("RETRY_BUDGET", "30s", false)?,
            ssl_cert_file,
        })
    }
}

fn email_settings<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
) -> Result<Option<EmailSettings>, ConfigError> {
    // EMAIL_FROM and friends without SMTP_HOST are fine: the sample settings
    // ship them that way, and the outbox may use them.
    let Some(host) = get("SMTP_HOST") else {
        return Ok(None);
    };
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
    let credentials = match (get("SMTP_USERNAME"), get("SMTP_PASSWORD")) {
        (Some(user), Some(password)) => {
            Some((user.to_owned(), SecretString::from(password.to_owned())))
        }
        (None, None) => None,
        (Some(_), None) => {
            return Err(ConfigError::Missing {
                setting: "SMTP_PASSWORD",
                because: "SMTP_USERNAME is set",
            })
        }
        (None, Some(_)) => {
            return Err(ConfigError::Missing {
                setting: "SMTP_USERNAME",
                because: "SMTP_PASSWORD is set",
            })
        }
    };
    let from = get("EMAIL_FROM").ok_or(ConfigError::Missing {
        setting: "EMAIL_FROM",
        because: "SMTP_HOST is set",
    })?;
    let to = get("EMAIL_TO").ok_or(ConfigError::Missing {
        setting: "EMAIL_TO",
        because: "SMTP_HOST is set",
    })?;
    Ok(Some(EmailSettings {
        host: host.to_owned(),
        port,
        security,
        credentials,
        from: values::mailbox("EMAIL_FROM", from)?,
        to: values::mailbox_list("EMAIL_TO", to)?,
    }))
}

/// Reads a `local.settings.json` file's `Values` (for `--settings FILE`).
/// Numbers and booleans become text, as the Functions host passes them.
pub fn read_settings_file(path: &std::path::Path) -> Result<HashMap<String, String>, ConfigError> {
    let fail = |reason: String| ConfigError::SettingsFile {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    // serde_json's syntax errors name only line and column, never content.
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| fail(format!("not valid JSON ({e})")))?;
    if json.get("IsEncrypted").and_then(|v| v.as_bool()) == Some(true) {
        return Err(fail(
            "IsEncrypted is true; decrypt it first (func settings decrypt)".to_owned(),
        ));
    }
    let values = json
        .get("Values")
        .and_then(|v| v.as_object())
        .ok_or_else(|| fail("it has no \"Values\" object".to_owned()))?;
    let mut map = HashMap::new();
    for (name, value) in values {
        let text = match value {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            serde_json::Value::Null => continue,
            _ => {
                return Err(fail(format!(
                    "Values.{name} is not a string, number or boolean"
                )))
            }
        };
        map.insert(name.clone(), text);
    }
    Ok(map)
}
