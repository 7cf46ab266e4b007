//! Which destinations take which lead: `ROUTE_<KIND>[_<NAME>]` settings.
//!
//! A route is parsed once into a [`Route`] that cannot be malformed; the
//! [`Router`] holds every destination's route and was checked to leave no
//! lead without a destination.

mod parse;

use crate::destination::DestinationId;
use crate::lead::{Action, Lead, Source};

pub use parse::{parse, RouteError};

/// What one destination receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// No `ROUTE_` setting: every lead.
    Every,
    /// `unmatched`: the leads no destination with conditions took.
    Unmatched,
    /// Conditions that must all hold; never empty, one per field.
    When(Vec<Condition>),
}

/// One condition: any of its values may match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    Offer(Vec<OfferPattern>),
    Action(Vec<Action>),
    Source(Vec<Source>),
    /// Lowercased.
    Country(Vec<String>),
}

/// An offer id or display name, `*` matching any run of characters, any case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferPattern {
    /// Lowercased pieces between the `*`s.
    pieces: Vec<String>,
    text: String,
}

impl OfferPattern {
    pub fn new(pattern: &str) -> OfferPattern {
        OfferPattern {
            pieces: pattern
                .to_lowercase()
                .split('*')
                .map(str::to_owned)
                .collect(),
            text: pattern.to_owned(),
        }
    }

    pub fn matches(&self, text: &str) -> bool {
        let text = text.trim().to_lowercase();
        let [first, middle @ .., last] = self.pieces.as_slice() else {
            // No `*`: one piece.
            return self.pieces.first().is_some_and(|p| *p == text);
        };
        let Some(mut rest) = text.strip_prefix(first.as_str()) else {
            return false;
        };
        for piece in middle {
            match rest.find(piece.as_str()) {
                Some(at) => rest = &rest[at + piece.len()..],
                None => return false,
            }
        }
        rest.len() >= last.len() && rest.ends_with(last.as_str())
    }
}

impl Condition {
    pub fn field(&self) -> &'static str {
        match self {
            Condition::Offer(_) => "offer",
            Condition::Action(_) => "action",
            Condition::Source(_) => "source",
            Condition::Country(_) => "country",
        }
    }

    pub fn holds(&self, lead: &Lead) -> bool {
        match self {
            Condition::Offer(patterns) => patterns.iter().any(|p| {
                [&lead.offer_id, &lead.offer_name]
                    .into_iter()
                    .flatten()
                    .any(|offer| p.matches(offer))
            }),
            Condition::Action(actions) => actions.contains(&lead.action),
            Condition::Source(sources) => sources.contains(&lead.source),
            Condition::Country(countries) => lead
                .customer
                .country
                .as_deref()
                .is_some_and(|c| countries.contains(&c.trim().to_lowercase())),
        }
    }

    /// In words for `check`: `offer is contoso.crm-* or Contoso CRM`.
    fn describe(&self) -> String {
        let list = |items: Vec<&str>| items.join(" or ");
        let values = match self {
            Condition::Offer(p) => list(p.iter().map(|p| p.text.as_str()).collect()),
            Condition::Action(a) => list(a.iter().map(Action::code).collect()),
            Condition::Source(s) => list(
                s.iter()
                    .map(|s| match s {
                        Source::AppSource => "AppSource",
                        other => other.code(),
                    })
                    .collect(),
            ),
            Condition::Country(c) => list(c.iter().map(String::as_str).collect()),
        };
        format!("{} is {values}", self.field())
    }
}

impl Route {
    /// In words for `check`.
    pub fn describe(&self) -> String {
        match self {
            Route::Every => "every lead".to_owned(),
            Route::Unmatched => "leads no routed destination takes (unmatched)".to_owned(),
            Route::When(conditions) => format!(
                "leads where {}",
                conditions
                    .iter()
                    .map(Condition::describe)
                    .collect::<Vec<_>>()
                    .join(" and ")
            ),
        }
    }
}

/// Settings where some lead could reach no destination.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "every destination has a route ({routed}), so a lead that matches none would reach no one: \
     set one destination's route to unmatched (e.g. {example}=unmatched) or remove a route"
)]
pub struct Uncovered {
    routed: String,
    example: String,
}

/// `ROUTE_EMAIL_EMEA` for `email:emea`.
pub fn setting_name(destination: &DestinationId) -> String {
    format!(
        "ROUTE_{}{}",
        destination.kind().setting_part(),
        destination.setting_suffix()
    )
}

/// Every destination's route, checked to leave no lead without a destination.
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<(DestinationId, Route)>,
}

impl Router {
    /// Fails when every destination has conditions and none is `unmatched`.
    pub fn new(routes: Vec<(DestinationId, Route)>) -> Result<Router, Uncovered> {
        let covered = routes.is_empty()
            || routes
                .iter()
                .any(|(_, r)| matches!(r, Route::Every | Route::Unmatched));
        if !covered {
            let routed = routes
                .iter()
                .map(|(id, _)| id.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            let example = routes
                .last()
                .map(|(id, _)| setting_name(id))
                .unwrap_or_default();
            return Err(Uncovered { routed, example });
        }
        Ok(Router { routes })
    }

    pub fn routes(&self) -> &[(DestinationId, Route)] {
        &self.routes
    }

    /// Whether `lead` goes to `destination`. A destination the router does
    /// not know (a test's own notifier) takes every lead.
    pub fn takes(&self, destination: &DestinationId, lead: &Lead) -> bool {
        match self.routes.iter().find(|(id, _)| id == destination) {
            None | Some((_, Route::Every)) => true,
            Some((_, Route::When(conditions))) => conditions.iter().all(|c| c.holds(lead)),
            Some((_, Route::Unmatched)) => !self.routes.iter().any(|(_, route)| match route {
                Route::When(conditions) => conditions.iter().all(|c| c.holds(lead)),
                _ => false,
            }),
        }
    }
}

#[cfg(test)]
mod tests;
