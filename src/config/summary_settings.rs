//! The Monday summary and lead-flow health: `SUMMARY_TO`,
//! `SUMMARY_SCHEDULE`, `LEAD_SILENCE_AFTER`, `HEALTH_TO`.

use std::time::Duration;

use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use time::OffsetDateTime;

use super::values::{self, invalid};
use super::ConfigError;
use crate::destination::DestinationId;

/// The summary and health settings.
#[derive(Debug, Clone)]
pub struct SummarySettings {
    /// `SUMMARY_TO`: where the summary goes; empty means no summary.
    pub to: Vec<DestinationId>,
    /// `SUMMARY_SCHEDULE`, default `0 0 7 * * 1` (Monday 07:00 UTC).
    pub schedule: Schedule,
    /// `LEAD_SILENCE_AFTER`, default `7d`; `None` (`0`) turns the check off.
    pub silence_after: Option<Duration>,
    /// `HEALTH_TO`: default `SUMMARY_TO`, else every destination that takes
    /// notes (signed webhooks and HubSpot take one record per lead only).
    pub health_to: Vec<DestinationId>,
}

impl SummarySettings {
    /// For `check`.
    pub fn summary_lines(&self) -> Vec<String> {
        let list = |ids: &[DestinationId]| {
            ids.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let summary = if self.to.is_empty() {
            "summary: off (SUMMARY_TO not set)".to_owned()
        } else {
            format!(
                "summary: to {} at {} (UTC)",
                list(&self.to),
                self.schedule.as_str()
            )
        };
        let health = match self.silence_after {
            None => "lead-flow health: off (LEAD_SILENCE_AFTER=0)".to_owned(),
            Some(d) => format!(
                "lead-flow health: warn {} after {} without a lead",
                if self.health_to.is_empty() {
                    "nobody".to_owned()
                } else {
                    list(&self.health_to)
                },
                humantime::format_duration(d)
            ),
        };
        vec![summary, health]
    }
}

/// A six-field NCRONTAB schedule in UTC.
#[derive(Debug, Clone)]
pub struct Schedule {
    text: String,
    cron: Cron,
}

impl Schedule {
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The latest occurrence at or before `at`.
    pub fn latest(&self, at: OffsetDateTime) -> Option<OffsetDateTime> {
        let t = to_chrono(at)?;
        let found = self.cron.find_previous_occurrence(&t, true).ok()?;
        from_chrono(found)
    }

    /// The occurrence before `at` (strictly).
    pub fn before(&self, at: OffsetDateTime) -> Option<OffsetDateTime> {
        let t = to_chrono(at)?;
        let found = self.cron.find_previous_occurrence(&t, false).ok()?;
        from_chrono(found)
    }
}

fn to_chrono(t: OffsetDateTime) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(t.unix_timestamp(), t.nanosecond())
}

fn from_chrono(t: chrono::DateTime<chrono::Utc>) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(t.timestamp()).ok()
}

const SCHEDULE_ACCEPTS: &str =
    "a six-field NCRONTAB expression in UTC, seconds first, such as 0 0 7 * * 1 (Mondays 07:00)";

fn schedule(setting: &'static str, text: &str) -> Result<Schedule, ConfigError> {
    // The same light check as LEADS_POLL_SCHEDULE first (field count, no
    // %SETTING%), then the real parse: this schedule is computed here, not
    // by the Functions host.
    let text = values::schedule(setting, text)?;
    let cron = CronParser::builder()
        .seconds(Seconds::Required)
        .year(Year::Disallowed)
        .build()
        .parse(&text)
        .map_err(|e| invalid(setting, format!("{text:?} ({e})"), SCHEDULE_ACCEPTS))?;
    // Valid fields can still name no day at all (30 February): the summary
    // would silently never be sent.
    let now = to_chrono(OffsetDateTime::now_utc());
    if now.is_some_and(|now| cron.find_next_occurrence(&now, false).is_err()) {
        return Err(invalid(
            setting,
            format!("{text:?} (never occurs)"),
            SCHEDULE_ACCEPTS,
        ));
    }
    Ok(Schedule { text, cron })
}

/// Comma-separated destination ids, each one configured and able to take
/// notes (`SUMMARY_TO`, `HEALTH_TO`, `FOLLOW_UP_TO`).
pub(super) fn destinations(
    setting: &'static str,
    text: &str,
    known: &[DestinationId],
) -> Result<Vec<DestinationId>, ConfigError> {
    let names = || {
        known
            .iter()
            .filter(|id| takes_notes(id))
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut ids = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let lower = part.to_ascii_lowercase();
        let Some(id) = known.iter().find(|id| id.to_string() == lower) else {
            return Err(ConfigError::Setting {
                setting: setting.to_owned(),
                problem: format!(
                    "names {part:?}, which is not a configured destination; it takes destination ids such as email or teams:crm, of these: {}",
                    names()
                ),
            });
        };
        if !takes_notes(id) {
            return Err(ConfigError::Setting {
                setting: setting.to_owned(),
                problem: format!(
                    "names {id}, which carries one record per lead only (signed webhooks, HubSpot); it takes: {}",
                    names()
                ),
            });
        }
        if !ids.contains(id) {
            ids.push(id.clone());
        }
    }
    Ok(ids)
}

/// Destinations a summary or health note can go to.
fn takes_notes(id: &DestinationId) -> bool {
    id.kind().takes_notices()
}

/// Reads the four settings; `known` is every configured destination.
pub(super) fn parse<'v>(
    get: &impl Fn(&str) -> Option<&'v str>,
    known: &[DestinationId],
) -> Result<SummarySettings, ConfigError> {
    let to = get("SUMMARY_TO")
        .map(|t| destinations("SUMMARY_TO", t, known))
        .transpose()?
        .unwrap_or_default();
    let schedule = schedule(
        "SUMMARY_SCHEDULE",
        get("SUMMARY_SCHEDULE").unwrap_or("0 0 7 * * 1"),
    )?;
    let silence = values::duration(
        "LEAD_SILENCE_AFTER",
        get("LEAD_SILENCE_AFTER").unwrap_or("7d"),
        Duration::ZERO,
        "a duration such as 3d, 7d or 36h, or 0 to turn the check off",
    )?;
    let health_to = match get("HEALTH_TO") {
        Some(text) => destinations("HEALTH_TO", text, known)?,
        None if !to.is_empty() => to.clone(),
        None => known.iter().filter(|id| takes_notes(id)).cloned().collect(),
    };
    Ok(SummarySettings {
        to,
        schedule,
        silence_after: (!silence.is_zero()).then_some(silence),
        health_to,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destination::Kind;
    use std::collections::HashMap;
    use time::macros::datetime;

    fn read(pairs: &[(&str, &str)]) -> Result<SummarySettings, ConfigError> {
        let vars: HashMap<&str, &str> = pairs.iter().copied().collect();
        let known = [
            DestinationId::EMAIL,
            DestinationId::TEAMS,
            DestinationId::named(Kind::Email, "sales").unwrap(),
            DestinationId::WEBHOOK,
            DestinationId::HUBSPOT,
        ];
        parse(&|name: &str| vars.get(name).copied(), &known)
    }

    #[test]
    fn defaults_are_off_monday_seven_and_a_week() {
        let s = read(&[]).unwrap();
        assert!(s.to.is_empty());
        assert_eq!(s.schedule.as_str(), "0 0 7 * * 1");
        assert_eq!(s.silence_after, Some(Duration::from_secs(7 * 86_400)));
        // Every destination but the machines (signed webhook, HubSpot).
        let health: Vec<String> = s.health_to.iter().map(ToString::to_string).collect();
        assert_eq!(health, ["email", "teams", "email:sales"]);
    }

    #[test]
    fn destination_ids_are_checked_and_health_follows_the_summary() {
        let s = read(&[("SUMMARY_TO", " Email:Sales , teams,teams")]).unwrap();
        let to: Vec<String> = s.to.iter().map(ToString::to_string).collect();
        assert_eq!(to, ["email:sales", "teams"]);
        assert_eq!(s.health_to, s.to);
        let s = read(&[("SUMMARY_TO", "teams"), ("HEALTH_TO", "email")]).unwrap();
        assert_eq!(s.health_to, [DestinationId::EMAIL]);

        let err = read(&[("SUMMARY_TO", "email:sales-leads")])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("SUMMARY_TO names \"email:sales-leads\""),
            "{err}"
        );
        assert!(err.contains("email, teams, email:sales"), "{err}");
        let err = read(&[("HEALTH_TO", "slack")]).unwrap_err().to_string();
        assert!(err.starts_with("HEALTH_TO"), "{err}");
        let err = read(&[("SUMMARY_TO", "webhook")]).unwrap_err().to_string();
        assert!(err.contains("one record per lead only"), "{err}");
        let err = read(&[("SUMMARY_TO", "hubspot")]).unwrap_err().to_string();
        assert!(err.contains("one record per lead only"), "{err}");
    }

    #[test]
    fn schedule_and_silence_are_validated() {
        let err = read(&[("SUMMARY_SCHEDULE", "0 7 * * 1")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("SUMMARY_SCHEDULE") && err.contains("5 fields"),
            "{err}"
        );
        let err = read(&[("SUMMARY_SCHEDULE", "0 0 25 * * 1")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("SUMMARY_SCHEDULE"), "{err}");
        // Valid fields, but no such day: the summary would never be sent.
        let err = read(&[("SUMMARY_SCHEDULE", "0 0 0 31 2 *")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("never occurs"), "{err}");
        let err = read(&[("LEAD_SILENCE_AFTER", "a week")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("LEAD_SILENCE_AFTER"), "{err}");
        assert_eq!(
            read(&[("LEAD_SILENCE_AFTER", "0")]).unwrap().silence_after,
            None
        );
    }

    #[test]
    fn occurrences_are_mondays_at_seven_utc() {
        let s = read(&[]).unwrap().schedule;
        // Saturday evening: the last Monday.
        let sat = datetime!(2026-12-05 20:00 UTC);
        assert_eq!(s.latest(sat), Some(datetime!(2026-11-30 07:00 UTC)));
        let monday = datetime!(2026-12-07 07:00 UTC);
        assert_eq!(s.latest(monday), Some(monday));
        assert_eq!(s.before(monday), Some(datetime!(2026-11-30 07:00 UTC)));
        // Sunday is 0 or 7, as in NCRONTAB.
        let sunday = read(&[("SUMMARY_SCHEDULE", "0 30 6 * * 0")])
            .unwrap()
            .schedule;
        assert_eq!(sunday.latest(sat), Some(datetime!(2026-11-29 06:30 UTC)));
        let seven = read(&[("SUMMARY_SCHEDULE", "0 30 6 * * 7")])
            .unwrap()
            .schedule;
        assert_eq!(seven.latest(sat), Some(datetime!(2026-11-29 06:30 UTC)));
    }
}
