//! The "I'll take it" link settings: `PUBLIC_URL`, `TAKE_LINK_SECRET` and
//! `TAKE_LINK_TTL`. Links are on only when the first two are set; one
//! without the other is an error, so a half-done setup is not silent.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;

use super::values::{self, invalid};
use super::ConfigError;

/// The fewest secret bytes `TAKE_LINK_SECRET` may hold: HMAC-SHA256's own
/// output length, below which the key is the weak part.
pub const MIN_SECRET_BYTES: usize = 32;

/// Where take links point and how they are signed.
#[derive(Debug, Clone)]
pub struct TakeSettings {
    /// `PUBLIC_URL`: the function app's base URL, without a trailing `/`.
    pub public_url: url::Url,
    /// `TAKE_LINK_SECRET`, decoded.
    pub secret: TakeSecret,
    /// `TAKE_LINK_TTL`, default `30d`.
    pub ttl: Duration,
}

impl TakeSettings {
    /// `{PUBLIC_URL}/api/LeadTake?t={token}`.
    pub fn link(&self, token: &str) -> String {
        let base = self.public_url.as_str().trim_end_matches('/');
        format!("{base}/api/LeadTake?t={token}")
    }
}

/// The signing key: never shown by `Debug`, never compared but through HMAC.
#[derive(Clone)]
pub struct TakeSecret(Arc<[u8]>);

impl TakeSecret {
    pub fn from_bytes(bytes: &[u8]) -> TakeSecret {
        TakeSecret(Arc::from(bytes))
    }

    /// The key itself, for the HMAC only.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for TakeSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TakeSecret([redacted])")
    }
}

const URL_ACCEPTS: &str = "the function app's https:// base URL such as \
     https://contoso-leads.azurewebsites.net (http:// only to localhost)";
const SECRET_ACCEPTS: &str = "base64 of at least 32 random bytes, such as the \
     output of `openssl rand -base64 32`";
const TTL_ACCEPTS: &str = "a duration of at least 1m such as 7d or 30d";

/// Reads the three settings; `None` when neither `PUBLIC_URL` nor
/// `TAKE_LINK_SECRET` is set.
pub(super) fn parse<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
) -> Result<Option<TakeSettings>, ConfigError> {
    let (url, secret) = match (get("PUBLIC_URL"), get("TAKE_LINK_SECRET")) {
        (None, None) => return Ok(None),
        (Some(_), None) => {
            return Err(ConfigError::Missing {
                setting: "TAKE_LINK_SECRET",
                because: "PUBLIC_URL is set (take links are signed with it)",
            })
        }
        (None, Some(_)) => {
            return Err(ConfigError::Missing {
                setting: "PUBLIC_URL",
                because: "TAKE_LINK_SECRET is set (take links point to it)",
            })
        }
        (Some(url), Some(secret)) => (url, secret),
    };
    Ok(Some(TakeSettings {
        public_url: public_url(url)?,
        secret: secret_bytes(secret)?,
        ttl: values::duration(
            "TAKE_LINK_TTL",
            get("TAKE_LINK_TTL").unwrap_or("30d"),
            Duration::from_secs(60),
            TTL_ACCEPTS,
        )?,
    }))
}

fn public_url(text: &str) -> Result<url::Url, ConfigError> {
    let url = url::Url::parse(text)
        .map_err(|_| invalid("PUBLIC_URL", format!("{text:?}, not a URL"), URL_ACCEPTS))?;
    values::secure_url(&url)
        .map_err(|problem| invalid("PUBLIC_URL", format!("{text:?} ({problem})"), URL_ACCEPTS))?;
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(invalid(
            "PUBLIC_URL",
            format!("{text:?} with a query, fragment or user name"),
            URL_ACCEPTS,
        ));
    }
    Ok(url)
}

/// The secret is never quoted back, not even in part.
fn secret_bytes(text: &str) -> Result<TakeSecret, ConfigError> {
    let engines = [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::URL_SAFE,
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    let bytes = engines
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .ok_or_else(|| invalid("TAKE_LINK_SECRET", "not base64", SECRET_ACCEPTS))?;
    if bytes.len() < MIN_SECRET_BYTES {
        return Err(invalid(
            "TAKE_LINK_SECRET",
            format!("only {} bytes long", bytes.len()),
            SECRET_ACCEPTS,
        ));
    }
    Ok(TakeSecret::from_bytes(&bytes))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const SECRET: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

    fn read(pairs: &[(&str, &str)]) -> Result<Option<TakeSettings>, ConfigError> {
        let map: HashMap<&str, &str> = pairs.iter().copied().collect();
        parse(&|name: &str| map.get(name).copied())
    }

    #[test]
    fn off_without_both() {
        assert!(read(&[]).unwrap().is_none());
        let e = read(&[("PUBLIC_URL", "https://a.example")]).unwrap_err();
        assert!(e.to_string().contains("TAKE_LINK_SECRET"), "{e}");
        let e = read(&[("TAKE_LINK_SECRET", SECRET)]).unwrap_err();
        assert!(e.to_string().contains("PUBLIC_URL"), "{e}");
    }

    #[test]
    fn reads_url_secret_and_ttl() {
        let take = read(&[
            ("PUBLIC_URL", "https://contoso-leads.azurewebsites.net/"),
            ("TAKE_LINK_SECRET", SECRET),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(take.ttl, Duration::from_secs(30 * 86_400));
        assert_eq!(take.secret.expose(), b"0123456789abcdef0123456789abcdef");
        assert_eq!(
            take.link("abc"),
            "https://contoso-leads.azurewebsites.net/api/LeadTake?t=abc"
        );
        assert!(!format!("{take:?}").contains("0123456789"));
        let local = read(&[
            ("PUBLIC_URL", "http://127.0.0.1:7071"),
            ("TAKE_LINK_SECRET", SECRET),
            ("TAKE_LINK_TTL", "2d"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(local.ttl, Duration::from_secs(2 * 86_400));
    }

    #[test]
    fn errors_name_the_setting_and_keep_the_secret() {
        let with = |url: &str, secret: &str, ttl: &str| {
            read(&[
                ("PUBLIC_URL", url),
                ("TAKE_LINK_SECRET", secret),
                ("TAKE_LINK_TTL", ttl),
            ])
            .unwrap_err()
            .to_string()
        };
        let e = with("http://contoso.example", SECRET, "30d");
        assert!(e.starts_with("PUBLIC_URL"), "{e}");
        let e = with("https://a.example/?x=1", SECRET, "30d");
        assert!(e.starts_with("PUBLIC_URL"), "{e}");
        let e = with("https://a.example", "c2hvcnQ=", "30d");
        assert!(
            e.starts_with("TAKE_LINK_SECRET") && e.contains("5 bytes"),
            "{e}"
        );
        assert!(!e.contains("c2hvcnQ"), "{e}");
        let e = with("https://a.example", "not base64!!", "30d");
        assert!(e.starts_with("TAKE_LINK_SECRET"), "{e}");
        let e = with("https://a.example", SECRET, "soon");
        assert!(e.starts_with("TAKE_LINK_TTL"), "{e}");
    }
}
