//! Named destinations and their routes: `EMAIL_TO_<NAME>`,
//! `TEAMS_WEBHOOK_URL_<NAME>`, `SLACK_WEBHOOK_URL[_<NAME>]`,
//! `WEBHOOK_URL[_<NAME>]` with `WEBHOOK_SECRET[_<NAME>]`,
//! `HUBSPOT_TOKEN[_<NAME>]` (with `HUBSPOT_ENDPOINT`), and
//! `ROUTE_<KIND>[_<NAME>]`. The unsuffixed email and Teams settings are read
//! where they always were; this adds everything else and the router over all.

use std::collections::{BTreeMap, HashMap};

use lettre::message::Mailbox;
use secrecy::SecretString;

use super::hubspot::{self, HubSpotSettings};
use super::{values, ConfigError};
use crate::destination::{DestinationId, Kind};
use crate::routing::{self, Route, Router};

/// A Slack incoming webhook.
#[derive(Debug, Clone)]
pub struct SlackSettings {
    pub id: DestinationId,
    /// The whole URL is the credential.
    pub webhook_url: SecretString,
}

/// A Standard Webhooks receiver.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub id: DestinationId,
    pub url: SecretString,
    /// `whsec_` and base64: the HMAC key shared with the receiver.
    pub secret: SecretString,
}

/// Destinations beyond the unsuffixed email and Teams settings, and the
/// routes of all destinations.
#[derive(Debug, Clone, Default)]
pub struct Destinations {
    /// `EMAIL_TO_<NAME>`: other recipients over the same mail transport.
    pub email_to: Vec<(DestinationId, Vec<Mailbox>)>,
    /// `TEAMS_WEBHOOK_URL_<NAME>`.
    pub teams: Vec<(DestinationId, SecretString)>,
    pub slack: Vec<SlackSettings>,
    pub webhooks: Vec<WebhookSettings>,
    /// `HUBSPOT_TOKEN[_<NAME>]`.
    pub hubspot: Vec<HubSpotSettings>,
    pub router: Router,
}

impl Destinations {
    /// Every destination id these add (not the unsuffixed email, Teams, outbox).
    pub fn ids(&self) -> impl Iterator<Item = &DestinationId> {
        self.email_to
            .iter()
            .map(|(id, _)| id)
            .chain(self.teams.iter().map(|(id, _)| id))
            .chain(self.slack.iter().map(|s| &s.id))
            .chain(self.webhooks.iter().map(|w| &w.id))
            .chain(self.hubspot.iter().map(|h| &h.id))
    }

    pub fn is_empty(&self) -> bool {
        self.ids().next().is_none()
    }
}

/// A setting whose name is built from a destination name.
fn named_error(setting: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Setting {
        setting: setting.to_owned(),
        problem: problem.into(),
    }
}

/// Re-labels a value parser's error with the dynamic setting name.
fn relabel(setting: &str, error: ConfigError) -> ConfigError {
    match error {
        ConfigError::Invalid {
            problem, accepts, ..
        } => named_error(setting, format!("is {problem}; it accepts {accepts}")),
        other => other,
    }
}

/// The destination a setting `PREFIX[_NAME]` names, or `None` when the
/// setting is not of that family.
fn suffixed(
    setting: &str,
    prefix: &str,
    kind: Kind,
    unsuffixed_too: bool,
) -> Option<Result<DestinationId, ConfigError>> {
    let rest = setting.strip_prefix(prefix)?;
    if rest.is_empty() {
        return unsuffixed_too.then(|| Ok(DestinationId::unnamed(kind)));
    }
    let name = rest.strip_prefix('_')?;
    Some(DestinationId::named(kind, name).map_err(|_| {
        named_error(
            setting,
            format!("has a destination name that is not letters and digits: write {prefix}_<NAME>, e.g. {prefix}_EMEA"),
        )
    }))
}

/// Reads the named destinations and every route. `existing` are the
/// destinations configured elsewhere (unsuffixed email and Teams, outbox).
pub(super) fn read(
    vars: &HashMap<String, String>,
    existing: &[DestinationId],
    email_configured: bool,
) -> Result<Destinations, ConfigError> {
    // Sorted, so errors and `check` come out the same on every run.
    let vars: BTreeMap<&str, &str> = vars
        .iter()
        .map(|(k, v)| (k.as_str(), v.trim()))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let mut found = Destinations::default();
    let mut secrets: BTreeMap<DestinationId, (&str, &str)> = BTreeMap::new();
    let any_hubspot = vars
        .keys()
        .any(|k| suffixed(k, "HUBSPOT_TOKEN", Kind::HubSpot, true).is_some());
    let hubspot_endpoint = hubspot::endpoint(vars.get("HUBSPOT_ENDPOINT").copied(), any_hubspot)?;
    for (&setting, &value) in &vars {
        if let Some(id) = suffixed(setting, "EMAIL_TO", Kind::Email, false) {
            let id = id?;
            if !email_configured {
                return Err(named_error(
                    setting,
                    "is set but email is not configured: set SMTP_HOST (or EMAIL_VIA=graph), EMAIL_FROM and EMAIL_TO; every EMAIL_TO_<NAME> uses the same mail transport and sender",
                ));
            }
            let to =
                values::mailbox_list("EMAIL_TO_<NAME>", value).map_err(|e| relabel(setting, e))?;
            found.email_to.push((id, to));
        } else if let Some(id) = suffixed(setting, "TEAMS_WEBHOOK_URL", Kind::Teams, false) {
            let url = values::webhook_url("TEAMS_WEBHOOK_URL_<NAME>", value)
                .map_err(|e| relabel(setting, e))?;
            found.teams.push((id?, url));
        } else if let Some(id) = suffixed(setting, "SLACK_WEBHOOK_URL", Kind::Slack, true) {
            let webhook_url =
                values::webhook_url("SLACK_WEBHOOK_URL", value).map_err(|e| relabel(setting, e))?;
            found.slack.push(SlackSettings {
                id: id?,
                webhook_url,
            });
        } else if let Some(id) = suffixed(setting, "WEBHOOK_SECRET", Kind::Webhook, true) {
            secrets.insert(id?, (setting, value));
        } else if let Some(id) = suffixed(setting, "HUBSPOT_TOKEN", Kind::HubSpot, true) {
            found.hubspot.push(HubSpotSettings {
                id: id?,
                setting: setting.to_owned(),
                token: hubspot::token(setting, value)?,
                endpoint: hubspot_endpoint.clone(),
            });
        }
    }

    for (&setting, &value) in &vars {
        let Some(id) = suffixed(setting, "WEBHOOK_URL", Kind::Webhook, true) else {
            continue;
        };
        let id = id?;
        let url = values::webhook_url("WEBHOOK_URL", value).map_err(|e| relabel(setting, e))?;
        let secret_setting = format!("WEBHOOK_SECRET{}", id.setting_suffix());
        let (_, secret) = secrets.remove(&id).ok_or_else(|| {
            named_error(
                &secret_setting,
                format!("is required when {setting} is set: the receiver's signing secret, whsec_ followed by base64"),
            )
        })?;
        found.webhooks.push(WebhookSettings {
            id,
            url,
            secret: webhook_secret(&secret_setting, secret)?,
        });
    }
    if let Some((_, (setting, _))) = secrets.into_iter().next() {
        let url_setting = setting.replacen("WEBHOOK_SECRET", "WEBHOOK_URL", 1);
        return Err(named_error(
            setting,
            format!("is set but {url_setting} is not"),
        ));
    }
    let all: Vec<DestinationId> = existing.iter().chain(found.ids()).cloned().collect();
    for (i, id) in all.iter().enumerate() {
        if all[..i].contains(id) {
            return Err(named_error(
                &routing::setting_name(id).replacen("ROUTE_", "", 1),
                format!(
                    "names destination {id} twice (names are not case-sensitive): keep one setting"
                ),
            ));
        }
    }
    found.router = router(&vars, all)?;
    Ok(found)
}

/// `whsec_` and base64 of 24 to 64 bytes, as the specification has it. The
/// value is never quoted.
fn webhook_secret(setting: &str, text: &str) -> Result<SecretString, ConfigError> {
    use base64::Engine;
    let key = text
        .strip_prefix("whsec_")
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok());
    match key {
        Some(key) if (24..=64).contains(&key.len()) => Ok(SecretString::from(text.to_owned())),
        _ => Err(named_error(
            setting,
            "is not a Standard Webhooks secret: it must be whsec_ followed by base64 of 24 to 64 random bytes",
        )),
    }
}

/// Every destination's route: `ROUTE_<KIND>[_<NAME>]`, else every lead.
fn router(vars: &BTreeMap<&str, &str>, all: Vec<DestinationId>) -> Result<Router, ConfigError> {
    for &setting in vars.keys().filter(|k| k.starts_with("ROUTE_")) {
        if !all.iter().any(|id| routing::setting_name(id) == setting) {
            let kinds: Vec<String> = Kind::ALL.iter().map(|k| k.setting_part()).collect();
            return Err(named_error(
                setting,
                format!(
                    "names no configured destination: ROUTE_<KIND>[_<NAME>] needs the destination's own \
                     setting, e.g. ROUTE_TEAMS_CRM for TEAMS_WEBHOOK_URL_CRM; kinds are {}",
                    kinds.join(", ")
                ),
            ));
        }
    }
    let mut routes = Vec::with_capacity(all.len());
    for id in all {
        let setting = routing::setting_name(&id);
        let route = match vars.get(setting.as_str()) {
            Some(text) => routing::parse(&setting, text)?,
            None => Route::Every,
        };
        routes.push((id, route));
    }
    Ok(Router::new(routes)?)
}

/// The host of a secret URL, for `check`: nothing else of it is shown.
fn host_of(url: &SecretString) -> String {
    use secrecy::ExposeSecret;
    url::Url::parse(url.expose_secret())
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default()
}

impl Destinations {
    /// `check`'s lines: each destination added here, then which destination
    /// takes what. Secrets (URLs, signing secrets) are never shown.
    pub fn summary_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for (id, to) in &self.email_to {
            let n = to.len();
            let plural = if n == 1 { "" } else { "s" };
            lines.push(format!(
                "{id}: {n} recipient{plural}, same mail server as email"
            ));
        }
        for (id, url) in &self.teams {
            lines.push(format!(
                "{id}: webhook on host {} (signature hidden)",
                host_of(url)
            ));
        }
        for slack in &self.slack {
            lines.push(format!(
                "{}: Slack webhook on host {} (URL hidden)",
                slack.id,
                host_of(&slack.webhook_url)
            ));
        }
        for webhook in &self.webhooks {
            lines.push(format!(
                "{}: signed lead.created events to host {} (URL and secret hidden)",
                webhook.id,
                host_of(&webhook.url)
            ));
        }
        for account in &self.hubspot {
            lines.push(format!(
                "{}: HubSpot account at {} (token hidden)",
                account.id,
                account.endpoint.host_str().unwrap_or_default()
            ));
        }
        for (id, route) in self.router.routes() {
            lines.push(format!("route: {id} takes {}", route.describe()));
        }
        lines
    }
}
