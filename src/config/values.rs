//! Parsers for single setting values. Each error names the setting and what
//! it accepts; values are quoted back only when they cannot be secret.

use std::net::IpAddr;
use std::time::Duration;

use lettre::message::Mailbox;
use secrecy::SecretString;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{ConfigError, SmtpSecurity, StartFrom};

pub(super) fn invalid(
    setting: &'static str,
    problem: impl Into<String>,
    accepts: &'static str,
) -> ConfigError {
    ConfigError::Invalid {
        setting,
        problem: problem.into(),
        accepts,
    }
}

/// Quotes a non-secret value for an error, shortened so a pasted blob stays readable.
fn quoted(text: &str) -> String {
    let short: String = text.chars().take(60).collect();
    let ellipsis = if short.len() < text.len() { "…" } else { "" };
    format!("{short:?}{ellipsis}")
}

pub(super) fn boolean(setting: &'static str, text: &str) -> Result<bool, ConfigError> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(invalid(
            setting,
            quoted(text),
            "true or false (also 1/0, yes/no)",
        )),
    }
}

/// The longest duration any setting or flag takes: a century. Longer ones
/// are typos, and would overflow date arithmetic.
const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A humantime duration (`30s`, `10m`, `7d`) of at most a century.
pub fn bounded_duration(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if d > MAX_DURATION {
        return Err("longer than 100 years".to_owned());
    }
    Ok(d)
}

/// A duration of at least `min`; `accepts` says so.
pub(super) fn duration(
    setting: &'static str,
    text: &str,
    min: Duration,
    accepts: &'static str,
) -> Result<Duration, ConfigError> {
    let d = bounded_duration(text).map_err(|_| invalid(setting, quoted(text), accepts))?;
    if d < min {
        return Err(invalid(
            setting,
            format!("{} is too short", quoted(text)),
            accepts,
        ));
    }
    Ok(d)
}

pub(super) fn integer<T: std::str::FromStr + PartialOrd>(
    setting: &'static str,
    text: &str,
    min: T,
    accepts: &'static str,
) -> Result<T, ConfigError> {
    text.parse::<T>()
        .ok()
        .filter(|n| *n >= min)
        .ok_or_else(|| invalid(setting, quoted(text), accepts))
}

/// Azure's rule: 3–63 letters and digits, starting with a letter; `tables` is reserved.
pub(super) fn table_name(setting: &'static str, text: &str) -> Result<String, ConfigError> {
    let accepts = "a table name of 3 to 63 letters and digits, starting with a letter";
    let ok = (3..=63).contains(&text.len())
        && text.chars().all(|c| c.is_ascii_alphanumeric())
        && text.starts_with(|c: char| c.is_ascii_alphabetic());
    if !ok {
        return Err(invalid(setting, quoted(text), accepts));
    }
    if text.eq_ignore_ascii_case("tables") {
        return Err(invalid(setting, "the reserved name \"tables\"", accepts));
    }
    Ok(text.to_owned())
}

pub(super) fn start_from(setting: &'static str, text: &str) -> Result<StartFrom, ConfigError> {
    if text.eq_ignore_ascii_case("beginning") {
        return Ok(StartFrom::Beginning);
    }
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(StartFrom::At(at));
    }
    bounded_duration(text)
        .map(StartFrom::LookBack)
        .map_err(|_| {
            invalid(
            setting,
            quoted(text),
            "an RFC 3339 time (2024-05-01T00:00:00Z), a look-back such as 24h or 7d, or beginning",
        )
        })
}

/// Light check only: the Functions host is the real NCRONTAB parser.
pub(super) fn schedule(setting: &'static str, text: &str) -> Result<String, ConfigError> {
    let accepts = "a six-field NCRONTAB expression, seconds first, such as 0 */5 * * * *";
    let fields: Vec<&str> = text.split_whitespace().collect();
    if text.contains('%') {
        return Err(invalid(
            setting,
            "a %SETTING% reference, which the host does not expand twice",
            accepts,
        ));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "*/,-?".contains(c);
    if fields.len() != 6 {
        return Err(invalid(
            setting,
            format!("{} with {} fields", quoted(text), fields.len()),
            accepts,
        ));
    }
    if !fields.iter().all(|f| f.chars().all(allowed)) {
        return Err(invalid(setting, quoted(text), accepts));
    }
    Ok(fields.join(" "))
}

pub(super) fn security(setting: &'static str, text: &str) -> Result<SmtpSecurity, ConfigError> {
    match text.to_ascii_lowercase().as_str() {
        "starttls" => Ok(SmtpSecurity::StartTls),
        "tls" => Ok(SmtpSecurity::Tls),
        "none" => Ok(SmtpSecurity::None),
        _ => Err(invalid(setting, quoted(text), "starttls, tls or none")),
    }
}

pub(super) fn mailbox(setting: &'static str, text: &str) -> Result<Mailbox, ConfigError> {
    text.parse::<Mailbox>().map_err(|_| {
        invalid(
            setting,
            quoted(text),
            "an email address, optionally as Name <address>",
        )
    })
}

/// Comma-separated (semicolons also work, as Outlook copies them); commas
/// inside quoted display names do not split.
pub(super) fn mailbox_list(setting: &'static str, text: &str) -> Result<Vec<Mailbox>, ConfigError> {
    let accepts = "comma-separated email addresses, each optionally as Name <address>";
    let mut entries = Vec::new();
    let (mut start, mut in_quotes) = (0, false);
    for (i, c) in text.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            ',' | ';' if !in_quotes => {
                entries.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    entries.push(&text[start..]);
    let mut mailboxes = Vec::new();
    for entry in entries.into_iter().map(str::trim).filter(|e| !e.is_empty()) {
        let mailbox = entry.parse::<Mailbox>().map_err(|_| {
            invalid(
                setting,
                format!(
                    "{} in the list, which is not an email address",
                    quoted(entry)
                ),
                accepts,
            )
        })?;
        mailboxes.push(mailbox);
    }
    if mailboxes.is_empty() {
        return Err(invalid(setting, "a list with no address", accepts));
    }
    Ok(mailboxes)
}

/// Whether `host` (a name or an IP address, IPv6 possibly in brackets) is
/// this machine.
pub(super) fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => bare.eq_ignore_ascii_case("localhost"),
    }
}

/// Checks the scheme rule every URL that carries a secret follows: https,
/// or http to this machine (tests, local relays).
pub(super) fn secure_url(url: &url::Url) -> Result<(), &'static str> {
    let host = url.host_str().ok_or("a URL without a host")?;
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback_host(host) => Ok(()),
        "http" => Err("a plain http:// URL to a remote host"),
        _ => Err("a URL that is not https://"),
    }
}

/// https only, except http to this machine (tests, local relays). The URL is
/// a credential: no error quotes it.
pub(super) fn webhook_url(setting: &'static str, text: &str) -> Result<SecretString, ConfigError> {
    let accepts = "an https:// URL (http:// only to localhost, 127.0.0.0/8 or ::1)";
    let url = url::Url::parse(text).map_err(|_| invalid(setting, "not a URL", accepts))?;
    secure_url(&url).map_err(|problem| invalid(setting, problem, accepts))?;
    Ok(SecretString::from(text.to_owned()))
}

/// The base URL of a service that gets bearer tokens (`GRAPH_ENDPOINT`):
/// https (http only to this machine), no path, query or fragment.
pub(super) fn service_url(setting: &'static str, text: &str) -> Result<url::Url, ConfigError> {
    let accepts = "an https:// base URL such as https://graph.microsoft.com, \
         https://graph.microsoft.us or https://microsoftgraph.chinacloudapi.cn \
         (http:// only to localhost)";
    let url = url::Url::parse(text).map_err(|_| invalid(setting, quoted(text), accepts))?;
    secure_url(&url)
        .map_err(|problem| invalid(setting, format!("{} ({problem})", quoted(text)), accepts))?;
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            setting,
            format!("{} with a path or query", quoted(text)),
            accepts,
        ));
    }
    Ok(url)
}
