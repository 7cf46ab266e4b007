//! Chasing untaken leads: `FOLLOW_UP_WITHIN` and `FOLLOW_UP_TO`. A reminder
//! carries the lead's take link, so chasing needs take links on.

use std::time::Duration;

use super::summary_settings::destinations;
use super::take::TakeSettings;
use super::values;
use super::ConfigError;
use crate::destination::DestinationId;

/// When and where an untaken lead is chased.
#[derive(Debug, Clone)]
pub struct FollowUpSettings {
    /// `FOLLOW_UP_WITHIN`: how long after its first alert a lead may stay
    /// untaken before the reminder.
    pub within: Duration,
    /// `FOLLOW_UP_TO`; `None` means the destinations each lead went to.
    pub to: Option<Vec<DestinationId>>,
}

impl FollowUpSettings {
    /// For `check`.
    pub fn summary_line(&self) -> String {
        let to = match &self.to {
            None => "the destinations each lead went to".to_owned(),
            Some(ids) => ids
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        };
        format!(
            "follow-up: a lead untaken for {} is chased once, to {to}",
            crate::text::duration_words(self.within)
        )
    }
}

const WITHIN_ACCEPTS: &str = "a duration of at least 1m such as 30m, 4h or 1d";

/// Reads both settings; `None` when `FOLLOW_UP_WITHIN` is not set. `known`
/// is every configured destination, `take` the take link settings.
pub(super) fn parse<'v>(
    get: &impl Fn(&str) -> Option<&'v str>,
    known: &[DestinationId],
    take: Option<&TakeSettings>,
) -> Result<Option<FollowUpSettings>, ConfigError> {
    let Some(text) = get("FOLLOW_UP_WITHIN") else {
        if get("FOLLOW_UP_TO").is_some() {
            return Err(ConfigError::Missing {
                setting: "FOLLOW_UP_WITHIN",
                because: "FOLLOW_UP_TO is set (it says where reminders go, FOLLOW_UP_WITHIN when)",
            });
        }
        return Ok(None);
    };
    let within = values::duration(
        "FOLLOW_UP_WITHIN",
        text,
        Duration::from_secs(60),
        WITHIN_ACCEPTS,
    )?;
    if take.is_none() {
        return Err(ConfigError::Setting {
            setting: "FOLLOW_UP_WITHIN".to_owned(),
            problem: "needs take links, which a reminder carries: set PUBLIC_URL and TAKE_LINK_SECRET too".to_owned(),
        });
    }
    let to = get("FOLLOW_UP_TO")
        .map(|t| destinations("FOLLOW_UP_TO", t, known))
        .transpose()?
        .filter(|ids| !ids.is_empty());
    Ok(Some(FollowUpSettings { within, to }))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::TakeSecret;
    use crate::destination::Kind;

    fn read(pairs: &[(&str, &str)], links: bool) -> Result<Option<FollowUpSettings>, ConfigError> {
        let vars: HashMap<&str, &str> = pairs.iter().copied().collect();
        let known = [
            DestinationId::EMAIL,
            DestinationId::TEAMS,
            DestinationId::named(Kind::Teams, "managers").unwrap(),
            DestinationId::WEBHOOK,
        ];
        let settings = TakeSettings {
            public_url: url::Url::parse("https://contoso-leads.azurewebsites.net").unwrap(),
            secret: TakeSecret::from_bytes(&[1; 32]),
            ttl: Duration::from_secs(86_400),
        };
        parse(
            &|name: &str| vars.get(name).copied(),
            &known,
            links.then_some(&settings),
        )
    }

    #[test]
    fn off_unless_set_and_to_defaults_to_where_the_lead_went() {
        assert!(read(&[], true).unwrap().is_none());
        assert!(read(&[], false).unwrap().is_none());
        let s = read(&[("FOLLOW_UP_WITHIN", "4h")], true).unwrap().unwrap();
        assert_eq!(s.within, Duration::from_secs(4 * 3600));
        assert!(s.to.is_none());
        assert!(s.summary_line().contains("4 hours"), "{}", s.summary_line());
        let s = read(
            &[
                ("FOLLOW_UP_WITHIN", "30m"),
                ("FOLLOW_UP_TO", "Teams:Managers, email"),
            ],
            true,
        )
        .unwrap()
        .unwrap();
        let to: Vec<String> = s.to.unwrap().iter().map(ToString::to_string).collect();
        assert_eq!(to, ["teams:managers", "email"]);
    }

    #[test]
    fn errors_name_the_setting() {
        let err = read(&[("FOLLOW_UP_WITHIN", "soon")], true)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("FOLLOW_UP_WITHIN"), "{err}");
        let err = read(&[("FOLLOW_UP_WITHIN", "10s")], true)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("FOLLOW_UP_WITHIN") && err.contains("too short"),
            "{err}"
        );
        let err = read(&[("FOLLOW_UP_WITHIN", "4h")], false)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("FOLLOW_UP_WITHIN") && err.contains("PUBLIC_URL"),
            "{err}"
        );
        let err = read(&[("FOLLOW_UP_TO", "email")], true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("FOLLOW_UP_WITHIN"), "{err}");
        let err = read(
            &[("FOLLOW_UP_WITHIN", "4h"), ("FOLLOW_UP_TO", "teams:sales")],
            true,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("FOLLOW_UP_TO names \"teams:sales\""),
            "{err}"
        );
        let err = read(
            &[("FOLLOW_UP_WITHIN", "4h"), ("FOLLOW_UP_TO", "webhook")],
            true,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("one record per lead only"), "{err}");
    }
}
