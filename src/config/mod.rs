//! Settings, read once from environment variables (the Functions host passes
//! local.settings.json `Values` and Azure app settings that way). Every invalid
//! value is an error naming the setting and what it accepts. Secrets are
//! `SecretString`s: they never reach `Debug`, errors or logs.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use time::OffsetDateTime;

use crate::destination::DestinationId;
use crate::lead::Filters;

mod connection;
mod credential;
mod destinations;
mod email;
mod follow_up;
mod hubspot;
mod summary;
mod summary_settings;
mod take;
mod values;

pub use destinations::{Destinations, SlackSettings, WebhookSettings};
pub use email::{
    EmailSettings, EmailTransport, GraphSettings, SmtpAuth, SmtpSettings, DEFAULT_GRAPH_ENDPOINT,
    OUTLOOK_SCOPE,
};
pub use follow_up::FollowUpSettings;
pub use hubspot::{HubSpotSettings, DEFAULT_HUBSPOT_ENDPOINT};

pub use summary_settings::{Schedule, SummarySettings};
pub use take::{TakeSecret, TakeSettings};
pub use values::bounded_duration;
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
    /// On when `SMTP_HOST` is set or `EMAIL_VIA=graph`.
    pub email: Option<EmailSettings>,
    /// On when `TEAMS_WEBHOOK_URL` is set.
    pub teams: Option<TeamsSettings>,
    /// `OUTBOX_DIR`.
    pub outbox_dir: Option<PathBuf>,
    /// Named email and Teams destinations, Slack, signed webhooks, and the
    /// routes of every destination.
    pub destinations: Destinations,
    /// `DIGEST_AFTER`, default 20.
    pub digest_after: usize,
    /// `SKIP_TEST_LEADS`, `SKIP_EDU`, `SKIP_DO_NOT_CONTACT`, all default true.
    pub filters: Filters,
    /// `ALERT_MAX_ATTEMPTS`, default 20: runs that may try one alert before it
    /// is marked failed for good.
    pub max_attempts: u32,
    /// `CLAIM_LEASE`, default `10m`: how long a claim blocks other runs, by
    /// the storage service's clock, before it counts as abandoned by a
    /// crashed run. A live run renews its claims before half of it passes.
    pub claim_lease: Duration,
    /// `SCAN_OVERLAP`, default `5m`: how far behind the watermark each scan
    /// starts, because rows commit slightly out of timestamp order.
    pub scan_overlap: Duration,
    /// `RETRY_BUDGET`, default `30s`: the most time one run spends on a
    /// failing channel, failed tries and the waits between them together.
    pub retry_budget: Duration,
    /// `REPEAT_WINDOW`, default `24h`: a lead with the same customer, offer
    /// and action as one this recent is folded as a repeat; zero turns it off.
    pub repeat_window: Duration,
    /// `SSL_CERT_FILE`: certificates every TLS client trusts in addition to
    /// the built-in roots (read from the environment by [`crate::tls`]).
    pub ssl_cert_file: Option<PathBuf>,
    /// "I'll take it" links: on when `PUBLIC_URL` and `TAKE_LINK_SECRET` are set.
    pub take: Option<TakeSettings>,
    /// `FOLLOW_UP_WITHIN`, `FOLLOW_UP_TO`: chasing untaken leads (needs `take`).
    pub follow_up: Option<FollowUpSettings>,
    /// `SUMMARY_TO`, `SUMMARY_SCHEDULE`, `LEAD_SILENCE_AFTER`, `HEALTH_TO`.
    pub summary: SummarySettings,
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

    /// The storage emulator (Azurite) on this machine, not a real account:
    /// `UseDevelopmentStorage=true`, or a table endpoint on a loopback host.
    pub fn is_local_emulator(&self) -> bool {
        match self {
            StorageConnection::Emulator => true,
            StorageConnection::Account { table_endpoint, .. }
            | StorageConnection::Identity { table_endpoint, .. } => table_endpoint
                .host_str()
                .is_some_and(values::is_loopback_host),
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
    /// Two settings that cannot be used together.
    #[error("{setting} cannot be used with {with}: {fix}")]
    Conflict {
        setting: &'static str,
        with: &'static str,
        fix: &'static str,
    },
    /// A setting whose name is made from a connection prefix
    /// (`<prefix>__clientId`) or carries a destination name
    /// (`EMAIL_TO_EMEA`); `problem` says what is wrong and the fix.
    #[error("{setting} {problem}")]
    Setting { setting: String, problem: String },
    #[error(
        "no alert channel is configured: set {}",
        crate::destination::Kind::all_settings()
    )]
    NoChannel,
    #[error(transparent)]
    Route(#[from] crate::routing::RouteError),
    #[error(transparent)]
    Uncovered(#[from] crate::routing::Uncovered),
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
        let email = email::parse(&get)?;
        let teams = get("TEAMS_WEBHOOK_URL")
            .map(|url| values::webhook_url("TEAMS_WEBHOOK_URL", url))
            .transpose()?
            .map(|webhook_url| TeamsSettings { webhook_url });
        let outbox_dir = get("OUTBOX_DIR").map(PathBuf::from);
        let unsuffixed = [
            email.as_ref().map(|_| DestinationId::EMAIL),
            teams.as_ref().map(|_| DestinationId::TEAMS),
            outbox_dir.as_ref().map(|_| DestinationId::OUTBOX),
        ];
        let unsuffixed: Vec<DestinationId> = unsuffixed.into_iter().flatten().collect();
        let destinations = destinations::read(vars, &unsuffixed, email.is_some())?;
        if unsuffixed.is_empty() && destinations.is_empty() {
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
        let known: Vec<DestinationId> = unsuffixed
            .iter()
            .chain(destinations.ids())
            .cloned()
            .collect();
        let summary = summary_settings::parse(&get, &known)?;
        let take = take::parse(&get)?;
        let follow_up = follow_up::parse(&get, &known, take.as_ref())?;
        let flag = |name: &'static str| get(name).map_or(Ok(true), |v| values::boolean(name, v));
        let duration = |name: &'static str, default: &str, min: u64, accepts: &'static str| {
            values::duration(
                name,
                get(name).unwrap_or(default),
                Duration::from_secs(min),
                accepts,
            )
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
            destinations,
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
            claim_lease: duration("CLAIM_LEASE", "10m", 1, AT_LEAST_A_SECOND)?,
            // Rows commit slightly out of timestamp order: without any
            // overlap, one committed late behind the watermark is never read.
            scan_overlap: duration(
                "SCAN_OVERLAP",
                "5m",
                1,
                "a duration of at least 1s (rows commit slightly out of order) such as 30s, 5m or 1h",
            )?,
            retry_budget: duration("RETRY_BUDGET", "30s", 0, ANY_DURATION)?,
            repeat_window: duration("REPEAT_WINDOW", "24h", 0, ANY_DURATION)?,
            ssl_cert_file,
            take,
            follow_up,
            summary,
        })
    }
}

const AT_LEAST_A_SECOND: &str = "a duration of at least 1s such as 30s, 10m or 1h";
const ANY_DURATION: &str = "a duration such as 0s, 30s, 10m or 1h";

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
