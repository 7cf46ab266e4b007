//! Storage connection strings. Errors never echo the string or any part of
//! it: it holds the account key.

use secrecy::SecretString;

use super::{ConfigError, StorageConnection};

const ACCEPTS: &str = "UseDevelopmentStorage=true or an account connection string \
     (AccountName=…;AccountKey=…, optional TableEndpoint=, DefaultEndpointsProtocol=, EndpointSuffix=)";

/// Parses `text`, the value of `setting`.
pub(super) fn parse(setting: &'static str, text: &str) -> Result<StorageConnection, ConfigError> {
    let invalid = |problem: &str| ConfigError::Invalid {
        setting,
        problem: problem.to_owned(),
        accepts: ACCEPTS,
    };
    let mut pairs: Vec<(String, &str)> = Vec::new();
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        // Split at the first `=` only: base64 keys end in `=`.
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| invalid("a connection string with a part that has no '='"))?;
        pairs.push((key.trim().to_ascii_lowercase(), value.trim()));
    }
    let get = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| *v)
            .filter(|v| !v.is_empty())
    };

    if get("usedevelopmentstorage").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Ok(StorageConnection::Emulator);
    }
    if get("sharedaccesssignature").is_some() {
        return Err(invalid(
            "a shared access signature (SAS) connection string, which is not supported: use an account key",
        ));
    }
    let account =
        get("accountname").ok_or_else(|| invalid("a connection string without AccountName"))?;
    let key = get("accountkey").ok_or_else(|| invalid("a connection string without AccountKey"))?;
    if !is_base64(key) {
        return Err(invalid(
            "a connection string whose AccountKey is not valid base64",
        ));
    }
    let table_endpoint = match get("tableendpoint") {
        Some(endpoint) => url::Url::parse(endpoint)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                invalid("a connection string whose TableEndpoint is not an http(s) URL")
            })?,
        None => {
            let protocol = get("defaultendpointsprotocol")
                .unwrap_or("https")
                .to_ascii_lowercase();
            if protocol != "http" && protocol != "https" {
                return Err(invalid(
                    "a connection string whose DefaultEndpointsProtocol is neither http nor https",
                ));
            }
            let suffix = get("endpointsuffix").unwrap_or("core.windows.net");
            url::Url::parse(&format!("{protocol}://{account}.table.{suffix}"))
                .ok()
                .filter(|u| u.host().is_some())
                .ok_or_else(|| invalid("a connection string whose AccountName and EndpointSuffix do not make a URL"))?
        }
    };
    Ok(StorageConnection::Account {
        account: account.to_owned(),
        key: SecretString::from(key.to_owned()),
        table_endpoint,
    })
}

/// Standard base64 with padding, as Azure account keys are.
fn is_base64(text: &str) -> bool {
    let body = text.trim_end_matches('=');
    let padding = text.len() - body.len();
    !body.is_empty()
        && text.len().is_multiple_of(4)
        && padding <= 2
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}
