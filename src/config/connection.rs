//! The storage connection: a connection string (errors never echo it or
//! any part of it: it holds the account key), or keyless settings following
//! the Functions convention for identity-based connections:
//! `<prefix>__tableServiceUri` (alias `__serviceUri`) or `__accountName`,
//! with the identity in `__credential`, `__clientId`, `__tenantId`,
//! `__clientSecret` (see [`Credential`]). The prefix is
//! `LEADS_STORAGE_CONNECTION`, else `AzureWebJobsStorage`.

use std::collections::HashMap;

use secrecy::SecretString;

use super::{ConfigError, StorageConnection};
use crate::identity::Credential;

/// Where the connection is read from, in order.
const PREFIXES: [&str; 2] = ["LEADS_STORAGE_CONNECTION", "AzureWebJobsStorage"];
/// `<prefix>__…` settings lead-notifier reads.
const KEYLESS: [&str; 8] = [
    "tableServiceUri",
    "serviceUri",
    "accountName",
    "credential",
    "clientId",
    "tenantId",
    "clientSecret",
    "managedIdentityResourceId",
];
/// The Functions host's own `AzureWebJobsStorage__…` settings for its blobs
/// and queues: allowed, not read.
const HOST_ONLY: [&str; 2] = ["blobServiceUri", "queueServiceUri"];

/// The storage connection from `LEADS_STORAGE_CONNECTION…`, else
/// `AzureWebJobsStorage…` (`vars` holds every setting's name).
pub(super) fn from_settings<'a>(
    vars: &HashMap<String, String>,
    get: &impl Fn(&str) -> Option<&'a str>,
) -> Result<StorageConnection, ConfigError> {
    for prefix in PREFIXES {
        let start = format!("{prefix}__");
        let mut keyless = Vec::new();
        let mut any_prefixed = false;
        for name in vars
            .keys()
            .filter(|n| n.starts_with(&start) && get(n).is_some())
        {
            let suffix = &name[start.len()..];
            if KEYLESS.contains(&suffix) {
                keyless.push(name.as_str());
            } else if !HOST_ONLY.contains(&suffix) {
                return Err(ConfigError::Setting {
                    setting: name.clone(),
                    problem: format!(
                        "is not a setting lead-notifier knows (names are case-sensitive); a \
                         keyless connection takes {prefix}__tableServiceUri (or __serviceUri) or \
                         __accountName, and __credential, __clientId, __tenantId, __clientSecret"
                    ),
                });
            }
            any_prefixed = true;
        }
        keyless.sort_unstable();
        match get(prefix) {
            Some(text) => {
                if let Some(name) = keyless.first() {
                    return Err(ConfigError::Setting {
                        setting: (*name).to_owned(),
                        problem: format!(
                            "is set together with the connection string {prefix}: remove one \
                             (the connection string holds an account key; {prefix}__… settings \
                             are for keyless access)"
                        ),
                    });
                }
                return parse(prefix, text);
            }
            None if any_prefixed => return keyless_connection(prefix, get),
            None => {}
        }
    }
    Err(ConfigError::Missing {
        setting: "LEADS_STORAGE_CONNECTION",
        because: "AzureWebJobsStorage is not set either (for keyless access, set \
                  LEADS_STORAGE_CONNECTION__tableServiceUri or __accountName)",
    })
}

/// `<prefix>__tableServiceUri` / `__serviceUri` / `__accountName` and the
/// identity.
fn keyless_connection<'a>(
    prefix: &'static str,
    get: &impl Fn(&str) -> Option<&'a str>,
) -> Result<StorageConnection, ConfigError> {
    let name = |suffix: &str| format!("{prefix}__{suffix}");
    let error = |suffix: &str, problem: String| ConfigError::Setting {
        setting: name(suffix),
        problem,
    };
    let named_account = get(&name("accountName"))
        .map(|a| account_name(a).ok_or_else(|| error("accountName", ACCOUNT_RULE.to_owned())))
        .transpose()?;
    let uri = ["tableServiceUri", "serviceUri"]
        .into_iter()
        .find_map(|suffix| get(&name(suffix)).map(|text| (suffix, text)));
    let (table_endpoint, account) = match (uri, named_account) {
        (Some((suffix, text)), named_account) => {
            let url = url::Url::parse(text)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                .ok_or_else(|| {
                    error(
                        suffix,
                        "is not a URL; it accepts the table service URL, such as \
                         https://contoso.table.core.windows.net"
                            .to_owned(),
                    )
                })?;
            if url.scheme() != "https" {
                return Err(error(
                    suffix,
                    "is an http:// URL, but keyless access sends a bearer token, which only \
                     travels over HTTPS: use https:// (Azurite serves HTTPS when started with \
                     --cert and --key)"
                        .to_owned(),
                ));
            }
            let account = match named_account.or_else(|| account_from_uri(&url)) {
                Some(account) => account,
                None => {
                    return Err(error(
                        suffix,
                        format!(
                            "does not show the storage account name: set {} too",
                            name("accountName")
                        ),
                    ))
                }
            };
            (url, account)
        }
        (None, Some(account)) => {
            let url = url::Url::parse(&format!("https://{account}.table.core.windows.net"))
                .map_err(|_| error("accountName", ACCOUNT_RULE.to_owned()))?;
            (url, account)
        }
        (None, None) => {
            return Err(error(
                "tableServiceUri",
                format!(
                    "or {} is required for keyless access: it names the storage account \
                     (the other {prefix}__… settings say which identity)",
                    name("accountName")
                ),
            ))
        }
    };
    Ok(StorageConnection::Identity {
        account,
        table_endpoint,
        credential: Credential::for_connection(prefix, get)?,
    })
}

const ACCOUNT_RULE: &str =
    "is not a storage account name; it accepts 3 to 24 lowercase letters and digits";

fn account_name(text: &str) -> Option<String> {
    let ok = (3..=24).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    ok.then(|| text.to_owned())
}

/// `https://contoso.table.core.windows.net` → `contoso`; path style
/// (Azurite, `https://127.0.0.1:10002/devstoreaccount1`) → the first segment.
fn account_from_uri(url: &url::Url) -> Option<String> {
    if let Some(url::Host::Domain(host)) = url.host() {
        if let Some((account, rest)) = host.split_once('.') {
            if rest.starts_with("table.") {
                return account_name(account);
            }
        }
    }
    url.path_segments()?
        .next()
        .filter(|s| !s.is_empty())
        .and_then(account_name)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pairs: &[(&str, &str)]) -> Result<StorageConnection, ConfigError> {
        let vars: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        from_settings(&vars, &|name: &str| vars.get(name).map(String::as_str))
    }

    const MI: (&str, &str) = ("LEADS_STORAGE_CONNECTION__credential", "managedidentity");

    #[test]
    fn keyless_by_service_uri_or_account_name() {
        let azurite = read(&[
            (
                "LEADS_STORAGE_CONNECTION__tableServiceUri",
                "https://127.0.0.1:10002/devstoreaccount1",
            ),
            MI,
        ])
        .expect("valid");
        let StorageConnection::Identity {
            account,
            table_endpoint,
            credential,
        } = &azurite
        else {
            panic!("keyless")
        };
        assert_eq!(account, "devstoreaccount1");
        assert_eq!(
            table_endpoint.as_str(),
            "https://127.0.0.1:10002/devstoreaccount1"
        );
        assert_eq!(credential.describe(), "managed identity (system-assigned)");

        let by_name =
            read(&[("LEADS_STORAGE_CONNECTION__accountName", "contoso"), MI]).expect("valid");
        let StorageConnection::Identity { table_endpoint, .. } = &by_name else {
            panic!("keyless")
        };
        assert_eq!(
            table_endpoint.as_str(),
            "https://contoso.table.core.windows.net/"
        );
        let alias = read(&[
            (
                "LEADS_STORAGE_CONNECTION__serviceUri",
                "https://fabrikam.table.core.windows.net",
            ),
            MI,
        ])
        .expect("valid");
        assert_eq!(alias.account(), "fabrikam");
    }

    #[test]
    fn falls_back_to_azure_web_jobs_storage_keyless_settings() {
        let c = read(&[
            ("AzureWebJobsStorage__accountName", "contoso"),
            (
                "AzureWebJobsStorage__blobServiceUri",
                "https://contoso.blob.core.windows.net",
            ),
            ("AzureWebJobsStorage__credential", "managedidentity"),
        ])
        .expect("valid");
        assert_eq!(c.account(), "contoso");
        // LEADS_STORAGE_CONNECTION… wins over AzureWebJobsStorage.
        let c = read(&[
            ("AzureWebJobsStorage", "UseDevelopmentStorage=true"),
            ("LEADS_STORAGE_CONNECTION__accountName", "leadsaccount"),
            MI,
        ])
        .expect("valid");
        assert_eq!(c.account(), "leadsaccount");
    }

    #[test]
    fn a_token_never_goes_to_an_http_endpoint() {
        let e = read(&[
            (
                "LEADS_STORAGE_CONNECTION__tableServiceUri",
                "http://127.0.0.1:10002/devstoreaccount1",
            ),
            MI,
        ])
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("LEADS_STORAGE_CONNECTION__tableServiceUri is an http:// URL"),
            "{e}"
        );
        assert!(e.contains("HTTPS"), "{e}");
    }

    #[test]
    fn unclear_settings_are_named() {
        let both = read(&[
            ("LEADS_STORAGE_CONNECTION", "UseDevelopmentStorage=true"),
            ("LEADS_STORAGE_CONNECTION__accountName", "contoso"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            both.starts_with("LEADS_STORAGE_CONNECTION__accountName is set together"),
            "{both}"
        );
        let typo = read(&[("LEADS_STORAGE_CONNECTION__accountname", "contoso")])
            .unwrap_err()
            .to_string();
        assert!(typo.contains("case-sensitive"), "{typo}");
        let no_account = read(&[MI]).unwrap_err().to_string();
        assert!(
            no_account.starts_with("LEADS_STORAGE_CONNECTION__tableServiceUri or"),
            "{no_account}"
        );
        let bad_name = read(&[
            ("LEADS_STORAGE_CONNECTION__accountName", "Not_An_Account"),
            MI,
        ])
        .unwrap_err()
        .to_string();
        assert!(
            bad_name.contains("lowercase letters and digits"),
            "{bad_name}"
        );
        let no_identity = read(&[("LEADS_STORAGE_CONNECTION__accountName", "contoso")])
            .unwrap_err()
            .to_string();
        assert!(no_identity.contains("IDENTITY_ENDPOINT"), "{no_identity}");
    }
}
