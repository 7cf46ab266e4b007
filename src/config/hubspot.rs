//! HubSpot destinations: `HUBSPOT_TOKEN` and `HUBSPOT_TOKEN_<NAME>` (each a
//! HubSpot account's access token, a secret), and `HUBSPOT_ENDPOINT`, the
//! API's base URL they all use.

use secrecy::SecretString;

use super::{values, ConfigError};
use crate::destination::DestinationId;

/// HubSpot's public API.
pub const DEFAULT_HUBSPOT_ENDPOINT: &str = "https://api.hubapi.com";

const ENDPOINT: &str = "HUBSPOT_ENDPOINT";

/// One HubSpot account to write leads into.
#[derive(Debug, Clone)]
pub struct HubSpotSettings {
    pub id: DestinationId,
    /// The setting it came from (`HUBSPOT_TOKEN_EMEA`), for messages.
    pub setting: String,
    /// Sent as `Authorization: Bearer …`; never printed.
    pub token: SecretString,
    /// `HUBSPOT_ENDPOINT`: https (http only to this machine, for tests),
    /// no path.
    pub endpoint: url::Url,
}

/// A token as HubSpot issues them: one word of visible ASCII (it goes into
/// a header). The value is never quoted.
pub(super) fn token(setting: &str, text: &str) -> Result<SecretString, ConfigError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ConfigError::Setting {
            setting: setting.to_owned(),
            problem: "is not an access token: paste the token of a HubSpot private app or \
                      service key, one word without spaces"
                .to_owned(),
        });
    }
    Ok(SecretString::from(text.to_owned()))
}

/// `HUBSPOT_ENDPOINT`, or HubSpot's public API. A token travels to it, so
/// it must be https (http only to this machine).
pub(super) fn endpoint(text: Option<&str>, any_token: bool) -> Result<url::Url, ConfigError> {
    let accepts = "an https:// base URL such as https://api.hubapi.com (http:// only to localhost)";
    let Some(text) = text else {
        return url::Url::parse(DEFAULT_HUBSPOT_ENDPOINT)
            .map_err(|_| values::invalid(ENDPOINT, "unreadable", accepts));
    };
    if !any_token {
        return Err(ConfigError::Setting {
            setting: ENDPOINT.to_owned(),
            problem: "is set but no HUBSPOT_TOKEN or HUBSPOT_TOKEN_<NAME> is: set the token, or \
                      remove HUBSPOT_ENDPOINT"
                .to_owned(),
        });
    }
    let url = url::Url::parse(text).map_err(|_| values::invalid(ENDPOINT, "not a URL", accepts))?;
    values::secure_url(&url).map_err(|problem| values::invalid(ENDPOINT, problem, accepts))?;
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(values::invalid(
            ENDPOINT,
            "a URL with a path or query",
            accepts,
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_carry_tokens_only_over_tls_or_to_this_machine() {
        assert_eq!(
            endpoint(None, true).unwrap().as_str(),
            "https://api.hubapi.com/"
        );
        assert!(endpoint(Some("https://api.hubapi.eu"), true).is_ok());
        assert!(endpoint(Some("http://127.0.0.1:8080"), true).is_ok());
        assert!(endpoint(Some("http://api.hubapi.com"), true).is_err());
        assert!(endpoint(Some("https://api.hubapi.com/crm"), true).is_err());
        assert!(endpoint(Some("https://api.hubapi.com"), false).is_err());
    }

    #[test]
    fn tokens_are_one_word_and_never_quoted() {
        assert!(token("HUBSPOT_TOKEN", "pat-eu1-0000").is_ok());
        let error = token("HUBSPOT_TOKEN_EMEA", "pat secret").unwrap_err();
        let text = error.to_string();
        assert!(text.starts_with("HUBSPOT_TOKEN_EMEA"), "{text}");
        assert!(!text.contains("secret"), "{text}");
    }
}
