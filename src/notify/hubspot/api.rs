//! HubSpot's CRM API as this product calls it: the API version (in one
//! place), the endpoints, one JSON request at a time with the token, and
//! HubSpot's answers classified as every integration's are.

use std::time::Duration;

use reqwest::header::{HeaderMap, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::notify::http::{redirected, Answer};
use crate::notify::NotifyError;
use crate::text;

/// The date-versioned CRM API this release speaks. HubSpot keeps a version
/// current for six months and supported for eighteen: moving on is a change
/// here (and the README's HubSpot section).
pub const API_VERSION: &str = "2026-09";

/// The scopes every HubSpot destination needs; notes on contacts are
/// covered by the contact scopes.
pub const SCOPES: &str = "crm.objects.contacts.read, crm.objects.contacts.write";

/// How a refusal of the data sent (a 4xx other than 401/403/429) reads.
const REFUSED_DATA: &str = "HubSpot refused the lead's data";

/// Whether HubSpot refused the data sent rather than the token: in a
/// batch, one lead's value refuses them all.
pub fn refused_data(error: &NotifyError) -> bool {
    matches!(error, NotifyError::Permanent { reason } if reason.contains(REFUSED_DATA))
}

const TIMEOUT: Duration = Duration::from_secs(30);

/// How long HubSpot holds a 423's lock.
const LOCK: Duration = Duration::from_secs(2);

/// The most of a successful answer read: a batch of 100 contacts or notes
/// with their properties is tens of KB; this is far above that.
const MAX_OK_BYTES: usize = 4 * 1024 * 1024;

/// Which of the CRM APIs a path is of; both are versioned by [`API_VERSION`].
#[derive(Debug, Clone, Copy)]
pub enum Crm {
    /// `/crm/objects/<version>/…`: contacts, notes.
    Objects,
    /// `/crm/associations/<version>/…`: which notes a contact has.
    Associations,
}

/// One HubSpot account.
pub struct Api {
    http: reqwest::Client,
    base: url::Url,
    token: SecretString,
    /// `HUBSPOT_TOKEN_EMEA`, for messages.
    pub setting: String,
}

impl Api {
    pub fn new(http: reqwest::Client, base: url::Url, token: SecretString, setting: String) -> Api {
        Api {
            http,
            base,
            token,
            setting,
        }
    }

    /// `/crm/<api>/<version>/<path>` on the endpoint.
    fn url(&self, api: Crm, path: &str) -> String {
        let base = self.base.as_str().trim_end_matches('/');
        let api = match api {
            Crm::Objects => "objects",
            Crm::Associations => "associations",
        };
        format!("{base}/crm/{api}/{API_VERSION}/{path}")
    }

    /// POSTs `body` to the path; the answer's JSON on 2xx (207 included: a
    /// batch's partial result lists its errors).
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        api: Crm,
        path: &str,
        body: &B,
    ) -> Result<T, NotifyError> {
        let body = serde_json::to_vec(body).map_err(|e| {
            NotifyError::permanent(format!("could not encode a HubSpot request: {e}"))
        })?;
        self.call(Method::POST, api, path, Some(body)).await
    }

    /// GETs an object path (`contacts?limit=1`).
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, NotifyError> {
        self.call(Method::GET, Crm::Objects, path, None).await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        api: Crm,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, NotifyError> {
        let mut request = self
            .http
            .request(method, self.url(api, path))
            .timeout(TIMEOUT)
            .header(
                AUTHORIZATION,
                format!("Bearer {}", self.token.expose_secret()),
            );
        if let Some(body) = body {
            request = request.header(CONTENT_TYPE, "application/json").body(body);
        }
        let response = request.send().await.map_err(|e| {
            NotifyError::retryable(format!(
                "could not reach HubSpot: {}",
                text::error_line(&e.without_url())
            ))
        })?;
        let status = response.status();
        if status.is_redirection() {
            return Err(redirected(
                "HUBSPOT_ENDPOINT",
                status,
                "set it to HubSpot's API base URL, https://api.hubapi.com",
            ));
        }
        if !status.is_success() {
            let limits = RateLimit::of(response.headers());
            let answer = Answer::read(response).await;
            return Err(self.classify(&answer, limits));
        }
        let prefix = crate::tls::read_prefix(response, MAX_OK_BYTES)
            .await
            .map_err(|e| {
                NotifyError::retryable(format!(
                    "HubSpot's answer was cut off: {}",
                    text::error_line(&e.without_url())
                ))
            })?;
        if !prefix.complete {
            return Err(NotifyError::permanent(
                "HubSpot answered more than 4 MB, which is not a CRM API answer: check HUBSPOT_ENDPOINT",
            ));
        }
        serde_json::from_slice(&prefix.bytes).map_err(|e| {
            NotifyError::retryable(format!(
                "HubSpot answered {status} with JSON this version cannot read (line {}, column {})",
                e.line(),
                e.column()
            ))
        })
    }

    /// What HubSpot's refusal means. Never quotes a message: HubSpot's
    /// validation messages repeat the values sent (customer data).
    pub fn classify(&self, answer: &Answer, limits: RateLimit) -> NotifyError {
        let status = answer.status;
        let details = Details::of(&answer.body);
        let answered = match &details.category {
            Some(category) => format!("HubSpot answered {status}, {category}"),
            None => format!("HubSpot answered {status}"),
        };
        let setting = &self.setting;
        match status.as_u16() {
            429 => NotifyError::Retryable {
                reason: format!("{answered}: rate limit reached"),
                retry_after: answer.retry_after.or(limits.wait()),
            },
            // A record locked by a burst of writes: HubSpot's locks last
            // 2 s.
            423 => NotifyError::Retryable {
                reason: format!("{answered}: records locked by a burst of writes"),
                retry_after: Some(answer.retry_after.unwrap_or(LOCK)),
            },
            // The account is moving between data centres; Retry-After says
            // for how long (up to a day).
            477 => NotifyError::Retryable {
                reason: format!("{answered}: the account is being moved between data centres"),
                retry_after: answer.retry_after,
            },
            500..=599 | 408 => NotifyError::Retryable {
                reason: format!("{answered}: HubSpot is unavailable"),
                retry_after: answer.retry_after,
            },
            401 => NotifyError::permanent(format!(
                "{answered}: the token in {setting} is not valid (expired, revoked or mistyped); \
                 create a token with the scopes {SCOPES} and set {setting} to it"
            )),
            403 => NotifyError::permanent(format!(
                "{answered}: the token in {setting} lacks a scope; it needs {SCOPES}"
            )),
            404 | 405 | 410 => NotifyError::permanent(format!(
                "{answered}: no CRM API version {API_VERSION} there; check HUBSPOT_ENDPOINT \
                 (https://api.hubapi.com), or update lead-notifier if HubSpot retired that version"
            )),
            _ => {
                let properties = if details.properties.is_empty() {
                    String::new()
                } else {
                    format!(" (property {})", details.properties.join(", "))
                };
                NotifyError::permanent(format!(
                    "{answered}{properties}: {REFUSED_DATA}; \
                     check the account's validation rules for these properties"
                ))
            }
        }
    }
}

/// `X-HubSpot-RateLimit-*`: what is left of the current window and how
/// long the window is.
#[derive(Debug, Default, Clone, Copy)]
pub struct RateLimit {
    remaining: Option<u64>,
    interval: Option<Duration>,
}

impl RateLimit {
    pub fn of(headers: &HeaderMap) -> RateLimit {
        let number = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        RateLimit {
            remaining: number("x-hubspot-ratelimit-remaining"),
            interval: number("x-hubspot-ratelimit-interval-milliseconds")
                .map(Duration::from_millis),
        }
    }

    /// Without `Retry-After`: a spent window ends within its interval.
    fn wait(self) -> Option<Duration> {
        match (self.remaining, self.interval) {
            (Some(0) | None, Some(interval)) => Some(interval),
            _ => None,
        }
    }
}

/// The parts of an error body that may be shown: `category` and the names
/// of the properties it concerns, each only when a plain identifier.
#[derive(Debug, Default, PartialEq)]
struct Details {
    category: Option<String>,
    properties: Vec<String>,
}

impl Details {
    fn of(body: &str) -> Details {
        let Ok(value) = serde_json::from_str::<Value>(body) else {
            return Details::default();
        };
        let category = value["category"].as_str().and_then(identifier);
        let mut names: Vec<&Value> = Vec::new();
        let errors = value["errors"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        for error in errors {
            match &error["context"]["propertyName"] {
                Value::Array(list) => names.extend(list),
                other => names.push(other),
            }
        }
        // HubSpot's usual validation answer names the properties only in
        // its message, a JSON list after a colon: `{"name": "phone", …}`.
        let listed: Vec<Value> = value["message"]
            .as_str()
            .and_then(|m| m.find('[').map(|at| &m[at..]))
            .and_then(|list| serde_json::from_str(list).ok())
            .unwrap_or_default();
        names.extend(listed.iter().map(|item| &item["name"]));
        let mut properties: Vec<String> = Vec::new();
        for name in names
            .into_iter()
            .filter_map(|n| n.as_str())
            .filter_map(identifier)
        {
            if !properties.contains(&name) && properties.len() < 10 {
                properties.push(name);
            }
        }
        Details {
            category,
            properties,
        }
    }
}

/// A HubSpot identifier (`VALIDATION_ERROR`, `phone`): letters, digits,
/// `_`, `.` and `-`, short. Anything else may be data and is dropped.
fn identifier(text: &str) -> Option<String> {
    (!text.is_empty()
        && text.len() <= 100
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)))
    .then(|| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api() -> Api {
        Api::new(
            reqwest::Client::new(),
            url::Url::parse("https://api.hubapi.com").unwrap(),
            SecretString::from("pat-na1-x".to_owned()),
            "HUBSPOT_TOKEN".to_owned(),
        )
    }

    #[test]
    fn validation_errors_show_category_and_property_names_only() {
        let body = r#"{"status":"error","message":"Property values were not valid: jane@x phone +49 30","category":"VALIDATION_ERROR",
            "errors":[{"message":"+49 30 is not valid","context":{"propertyName":["phone"]}},
                      {"message":"x","context":{"propertyName":["Jane Doe <x>"]}}]}"#;
        let details = Details::of(body);
        assert_eq!(details.category.as_deref(), Some("VALIDATION_ERROR"));
        assert_eq!(details.properties, vec!["phone".to_owned()]);
    }

    #[test]
    fn property_names_are_read_from_the_message_hubspot_usually_sends() {
        // HubSpot's usual 400: the names only inside the message's JSON,
        // next to the values.
        let body = r#"{"status":"error","message":"Property values were not valid: [{\"isValid\":false,\"message\":\"+1 555 is not a valid phone number\",\"error\":\"INVALID_PHONE\",\"name\":\"phone\"},{\"isValid\":false,\"message\":\"x\",\"error\":\"INVALID_OPTION\",\"name\":\"Jane <j@x>\"}]","correlationId":"5f3e","category":"VALIDATION_ERROR"}"#;
        let details = Details::of(body);
        assert_eq!(details.category.as_deref(), Some("VALIDATION_ERROR"));
        assert_eq!(details.properties, vec!["phone".to_owned()]);
        let api = api();
        let answer = Answer {
            status: reqwest::StatusCode::BAD_REQUEST,
            body: body.to_owned(),
            retry_after: None,
        };
        let reason = api
            .classify(&answer, RateLimit::default())
            .reason()
            .to_owned();
        assert!(
            reason.contains("VALIDATION_ERROR (property phone)"),
            "{reason}"
        );
        assert!(
            !reason.contains("555") && !reason.contains("Jane"),
            "{reason}"
        );
    }

    #[test]
    fn locked_and_migrating_accounts_are_waited_for() {
        let api = api();
        let answer = |status: u16, retry_after: Option<Duration>| Answer {
            status: reqwest::StatusCode::from_u16(status).unwrap(),
            body: r#"{"status":"error","message":"locked","category":"LOCKED"}"#.to_owned(),
            retry_after,
        };
        // HubSpot: a 423 lock lasts 2 s; a 477 (the account moving between
        // data centres) says how long in Retry-After, up to a day.
        let locked = api.classify(&answer(423, None), RateLimit::default());
        assert!(
            matches!(&locked, NotifyError::Retryable { retry_after: Some(wait), .. } if *wait >= Duration::from_secs(2)),
            "{locked:?}"
        );
        let day = Duration::from_secs(86_400);
        let moving = api.classify(&answer(477, Some(day)), RateLimit::default());
        assert!(
            matches!(&moving, NotifyError::Retryable { retry_after: Some(wait), .. } if *wait == day),
            "{moving:?}"
        );
        assert!(!refused_data(&locked) && !refused_data(&moving));
    }

    #[test]
    fn a_spent_window_waits_its_interval() {
        let mut headers = HeaderMap::new();
        headers.insert("X-HubSpot-RateLimit-Remaining", "0".parse().unwrap());
        headers.insert(
            "X-HubSpot-RateLimit-Interval-Milliseconds",
            "10000".parse().unwrap(),
        );
        assert_eq!(
            RateLimit::of(&headers).wait(),
            Some(Duration::from_secs(10))
        );
        headers.insert("X-HubSpot-RateLimit-Remaining", "5".parse().unwrap());
        assert_eq!(RateLimit::of(&headers).wait(), None);
    }
}
