//! What the webhook-style notifiers (Teams, Slack, signed webhook) share: a URL that
//! is a secret, one POST with a timeout, the answer's status, `Retry-After`
//! and a short error code, and a reachability check that posts nothing.
//! Graph shares the wording of a redirect ([`redirected`]).

use std::time::Duration;

use reqwest::header::{HeaderMap, CONTENT_TYPE, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::NotifyError;
use crate::text;

const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// A URL to post to. The whole URL is treated as a secret: Slack's path and
/// many receivers' query strings are the credential.
pub struct Target {
    http: reqwest::Client,
    url: SecretString,
    /// The setting it came from, e.g. `SLACK_WEBHOOK_URL_MARKETING`.
    pub setting: String,
    pub service: Service,
}

/// Who answers at a [`Target`], for messages.
pub struct Service {
    /// "the Slack webhook".
    pub name: &'static str,
    /// "Slack", as in "Slack answered 404".
    pub answerer: &'static str,
    /// What to set the URL setting to when it answers a redirect, e.g. "set
    /// it to the workflow's URL itself".
    pub redirect_fix: &'static str,
}

/// A 3xx answer, which no client of the product follows: following would
/// post the lead (or a token) again to wherever `Location` points, or turn
/// the post into an empty GET whose 200 would count as delivered. A
/// permanent failure: the setting names a URL that is not the service's
/// own, and only changing it helps. `Location` is never quoted (it may hold
/// a secret, like the URL itself).
pub fn redirected(setting: &str, status: reqwest::StatusCode, fix: &str) -> NotifyError {
    NotifyError::permanent(format!(
        "{setting} answered {} (a redirect, which is not followed): {fix}",
        status.as_u16()
    ))
}

/// A non-success answer.
pub struct Answer {
    pub status: reqwest::StatusCode,
    pub retry_after: Option<Duration>,
    /// Never quoted whole: it could echo what was posted. Each notifier
    /// picks out its service's error code.
    pub body: String,
}

impl Answer {
    /// A refusal as the service answered it: status, `Retry-After`, and
    /// only the start of the body (the rest is dropped unread).
    pub async fn read(response: reqwest::Response) -> Answer {
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, time::OffsetDateTime::now_utc()));
        let body = crate::tls::read_prefix(response, crate::tls::MAX_ANSWER_BYTES)
            .await
            .map(|prefix| prefix.text())
            .unwrap_or_default();
        Answer {
            status,
            retry_after,
            body,
        }
    }

    /// The body when it is one short plain token, as Slack answers errors
    /// (`channel_not_found`).
    pub fn plain_code(&self) -> Option<String> {
        plain_code(&self.body)
    }
}

impl Target {
    pub fn new(
        http: reqwest::Client,
        url: &SecretString,
        setting: String,
        service: Service,
    ) -> Result<Target, NotifyError> {
        let parsed = url::Url::parse(url.expose_secret())
            .map_err(|_| NotifyError::permanent(format!("{setting} is not a valid URL")))?;
        if !matches!(parsed.scheme(), "https" | "http") || parsed.host_str().is_none() {
            return Err(NotifyError::permanent(format!(
                "{setting} must be an https:// URL"
            )));
        }
        Ok(Target {
            http,
            url: url.clone(),
            setting,
            service,
        })
    }

    /// Belt and braces: whatever a library put in an error, the URL, its
    /// path and its query never leave this module.
    pub fn scrub(&self, reason: String) -> String {
        let url = self.url.expose_secret();
        let mut reason = reason.replace(url, &format!("<{}>", self.setting));
        if let Ok(parsed) = url::Url::parse(url) {
            let secret_parts = [parsed.query().unwrap_or(""), parsed.path()];
            for part in secret_parts.into_iter().filter(|p| p.len() > 1) {
                reason = reason.replace(part, "<redacted>");
            }
        }
        reason
    }

    /// Posts `body` as JSON once. `Ok(None)` is a 2xx answer; `Ok(Some)` any
    /// other but a redirect, which is a permanent error ([`redirected`]); a
    /// network failure or timeout is a retryable error. Only the start of an
    /// error body is read ([`crate::tls::MAX_ANSWER_BYTES`]).
    pub async fn post(
        &self,
        body: Vec<u8>,
        headers: HeaderMap,
    ) -> Result<Option<Answer>, NotifyError> {
        let response = self
            .http
            .post(self.url.expose_secret())
            .timeout(HTTP_TIMEOUT)
            .header(CONTENT_TYPE, "application/json")
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                NotifyError::retryable(self.scrub(format!(
                    "could not reach {}: {}",
                    self.service.name,
                    text::error_line(&e.without_url())
                )))
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(None);
        }
        if status.is_redirection() {
            return Err(redirected(&self.setting, status, self.service.redirect_fix));
        }
        Ok(Some(Answer::read(response).await))
    }

    /// `text (Slack answered 404 Not Found, channel_not_found)`, scrubbed.
    pub fn reason(&self, answer: &Answer, code: Option<&str>, text: &str) -> String {
        let answered = match code {
            Some(code) => format!("{}, {code}", answer.status),
            None => answer.status.to_string(),
        };
        self.scrub(format!(
            "{text} ({} answered {answered})",
            self.service.answerer
        ))
    }

    /// Opens a TCP connection to the URL's host: posting anything would
    /// show up in a channel or a CRM.
    pub async fn check(&self) -> Result<(), NotifyError> {
        let parsed = url::Url::parse(self.url.expose_secret())
            .map_err(|_| NotifyError::permanent(format!("{} is not a valid URL", self.setting)))?;
        let host = parsed.host_str().unwrap_or_default().to_owned();
        let port = parsed.port_or_known_default().unwrap_or(443);
        let connect = tokio::net::TcpStream::connect((host.as_str(), port));
        match tokio::time::timeout(CONNECT_CHECK_TIMEOUT, connect).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(NotifyError::retryable(format!(
                "could not connect to the host of {}: {e}; check {} and outbound network access",
                self.service.name, self.setting
            ))),
            Err(_) => Err(NotifyError::retryable(format!(
                "the host of {} did not answer in time; check outbound network access",
                self.service.name
            ))),
        }
    }
}

/// Slack answers errors as one word (`invalid_blocks`); receivers may
/// answer anything, so only a short plain token is kept.
fn plain_code(body: &str) -> Option<String> {
    let body = body.trim();
    (!body.is_empty()
        && body.len() <= 60
        && body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.'))
    .then(|| body.to_owned())
}

/// The `error.code` of a Workflows error body, e.g. `InvalidRequestContent`.
/// Only the code: messages can quote the posted card.
pub(super) fn error_code(body: &str) -> Option<String> {
    let value: Value = serde_json::from_str(body).ok()?;
    let code = value.pointer("/error/code")?.as_str()?;
    let code = text::one_line(code);
    (code.len() <= 80
        && code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_'))
    .then_some(code)
}

/// `Retry-After` as delta-seconds or an HTTP date (RFC 9110 §10.2.3).
pub fn parse_retry_after(value: &str, now: time::OffsetDateTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let at = time::PrimitiveDateTime::parse(value, format)
        .ok()?
        .assume_utc();
    let wait = at - now;
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_codes_are_kept() {
        assert_eq!(
            plain_code("channel_not_found\n").as_deref(),
            Some("channel_not_found")
        );
        assert_eq!(plain_code("Jane Doe <x>"), None);
        assert_eq!(plain_code(""), None);
    }

    #[test]
    fn scrub_hides_url_path_and_query() {
        let url = SecretString::from("https://hooks.slack.com/services/T0/B0/XyZsecret".to_owned());
        let target = Target::new(
            reqwest::Client::new(),
            &url,
            "SLACK_WEBHOOK_URL".into(),
            Service {
                name: "the Slack webhook",
                answerer: "Slack",
                redirect_fix: "",
            },
        )
        .unwrap();
        let text = target.scrub(
            "error for https://hooks.slack.com/services/T0/B0/XyZsecret and /services/T0/B0/XyZsecret".into(),
        );
        assert!(!text.contains("XyZsecret"), "{text}");
        assert!(text.contains("<SLACK_WEBHOOK_URL>"), "{text}");
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = time::macros::datetime!(2026-11-21 10:45:00 UTC);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Sat, 21 Nov 2026 10:45:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sat, 21 Nov 2026 10:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn error_code_only_takes_plain_codes() {
        assert_eq!(
            error_code(r#"{"error":{"code":"InvalidRequestContent","message":"Jane"}}"#).as_deref(),
            Some("InvalidRequestContent")
        );
        assert_eq!(error_code(r#"{"error":{"code":"Jane Doe <x>"}}"#), None);
        assert_eq!(error_code("not json"), None);
    }
}
