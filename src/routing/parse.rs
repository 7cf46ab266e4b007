//! Reading a `ROUTE_…` value: `field=value,value;field=value` or `unmatched`.
//! Errors name the setting and quote the part that could not be read (route
//! values are not secret).

use super::{Condition, OfferPattern, Route};
use crate::lead::{Action, Source};

/// A route value that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: could not read {part:?}: {problem}")]
pub struct RouteError {
    pub setting: String,
    /// The piece of the value that was not understood.
    pub part: String,
    pub problem: String,
}

const FIELDS: &str = "the fields are offer, action, source and country, \
     e.g. offer=contoso.crm-*;country=DE,FR";
const ACTIONS: &str = "actions are INS, PLT, DNC, Create, StartTestDrive \
     or their words (Get it now, Contact me, Do not contact, Azure portal purchase, Test drive started)";
const SOURCES: &str =
    "sources are AzureMarketplace, AppSource (or SPZA), AzurePortal and TestDrive";

/// Parses the value of `setting`. Blank values are the caller's business
/// (an empty setting counts as unset).
pub fn parse(setting: &str, text: &str) -> Result<Route, RouteError> {
    let fail = |part: &str, problem: String| RouteError {
        setting: setting.to_owned(),
        part: part.trim().to_owned(),
        problem,
    };
    if text.trim().eq_ignore_ascii_case("unmatched") {
        return Ok(Route::Unmatched);
    }
    let mut conditions: Vec<Condition> = Vec::new();
    for part in text.split(';') {
        if part.trim().is_empty() {
            // Tolerates a trailing `;`, not a value made only of separators.
            continue;
        }
        let Some((field, values)) = part.split_once('=') else {
            let problem = if part.trim().eq_ignore_ascii_case("unmatched") {
                "unmatched stands alone: it cannot be combined with conditions".to_owned()
            } else {
                format!("a condition is field=value; {FIELDS}")
            };
            return Err(fail(part, problem));
        };
        let values: Vec<&str> = values.split(',').map(str::trim).collect();
        if values.iter().any(|v| v.is_empty()) {
            return Err(fail(
                part,
                "an empty value; values are separated by single commas".to_owned(),
            ));
        }
        let condition = match field.trim().to_ascii_lowercase().as_str() {
            "offer" => Condition::Offer(values.iter().map(|v| OfferPattern::new(v)).collect()),
            "action" => Condition::Action(
                values
                    .iter()
                    .map(|v| action(v).ok_or_else(|| fail(v, format!("unknown action; {ACTIONS}"))))
                    .collect::<Result<_, _>>()?,
            ),
            "source" => Condition::Source(
                values
                    .iter()
                    .map(|v| source(v).ok_or_else(|| fail(v, format!("unknown source; {SOURCES}"))))
                    .collect::<Result<_, _>>()?,
            ),
            "country" => Condition::Country(
                values
                    .iter()
                    .map(|v| {
                        country(v).ok_or_else(|| {
                            fail(v, "a country is letters, such as DE or Germany".to_owned())
                        })
                    })
                    .collect::<Result<_, _>>()?,
            ),
            _ => return Err(fail(field, format!("unknown field; {FIELDS}"))),
        };
        if conditions.iter().any(|c| c.field() == condition.field()) {
            return Err(fail(
                part,
                format!(
                    "{} is given twice; list its values once, separated by commas",
                    condition.field()
                ),
            ));
        }
        conditions.push(condition);
    }
    if conditions.is_empty() {
        return Err(fail(
            text,
            format!("no condition; write unmatched or conditions, where {FIELDS}"),
        ));
    }
    Ok(Route::When(conditions))
}

/// A code (`PLT`) or the words alerts use (`Contact me`), any case. Codes
/// Microsoft does not document are refused: a typo would route nothing.
fn action(text: &str) -> Option<Action> {
    let known = [
        Action::Install,
        Action::ContactMe,
        Action::DoNotContact,
        Action::Create,
        Action::StartTestDrive,
    ];
    known
        .into_iter()
        .find(|a| same_words(a.code(), text) || same_words(a.wording(), text))
}

fn source(text: &str) -> Option<Source> {
    match Source::parse(text) {
        Source::Other(_) | Source::Unknown => [
            Source::AzureMarketplace,
            Source::AzurePortal,
            Source::TestDrive,
            Source::AppSource,
        ]
        .into_iter()
        .find(|s| same_words(s.wording(), text)),
        known => Some(known),
    }
}

fn country(text: &str) -> Option<String> {
    let ok = text
        .chars()
        .all(|c| c.is_alphabetic() || matches!(c, ' ' | '-' | '.' | '\''));
    ok.then(|| text.to_lowercase())
}

/// Equal ignoring case and spaces: `Get it now` = `getitnow`.
fn same_words(a: &str, b: &str) -> bool {
    let squash = |s: &str| {
        s.chars()
            .filter(|c| !c.is_whitespace())
            .flat_map(char::to_lowercase)
            .collect::<String>()
    };
    squash(a) == squash(b)
}
