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
}

impl StorageConnection {
    /// Account name for messages.
    pub fn account(&self) -> &str {
        match self {
            StorageConnection::Emulator => "devstoreaccount1",
            StorageConnection::Account { account, .. } => account,
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

    /// Reads settings from a name → value map (the environment, or a test's).
    /// Empty values count as unset.
    pub fn from_map(vars: &HashMap<String, String>) -> Result<Settings, ConfigError> {
        todo_settings(vars)
    }
}

/// Reads a `local.settings.json` file's `Values` (for `--settings FILE`).
pub fn read_settings_file(path: &std::path::Path) -> Result<HashMap<String, String>, ConfigError> {
    let _ = path;
    unimplemented!("config helper")
}

fn todo_settings(_vars: &HashMap<String, String>) -> Result<Settings, ConfigError> {
    unimplemented!("config helper")
}
