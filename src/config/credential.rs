//! Reading an Entra ID credential from settings, the way Azure Functions
//! names them for identity-based connections:
//!
//! - `<prefix>__credential=managedidentity`, optional `<prefix>__clientId`
//!   (a user-assigned identity);
//! - `<prefix>__tenantId`, `<prefix>__clientId`, `<prefix>__clientSecret`
//!   (an app registration, for local development);
//! - otherwise the product-wide default: the managed identity when the App
//!   Service identity endpoint is there (`IDENTITY_ENDPOINT`,
//!   `IDENTITY_HEADER`), else `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`,
//!   `AZURE_CLIENT_SECRET`. `AZURE_AUTHORITY_HOST` picks another cloud.

use secrecy::SecretString;

use super::ConfigError;
use crate::identity::{Credential, CredentialKind, DEFAULT_AUTHORITY_HOST};

impl Credential {
    /// The credential of the connection `prefix` (`<prefix>__credential`,
    /// `__clientId`, `__tenantId`, `__clientSecret`), else the product-wide
    /// default ([`Credential::product_default`]).
    pub fn for_connection<'a>(
        prefix: &str,
        get: &impl Fn(&str) -> Option<&'a str>,
    ) -> Result<Credential, ConfigError> {
        match Credential::from_connection(prefix, get)? {
            Some(credential) => Ok(credential),
            None => Credential::product_default(get).map_err(|problem| ConfigError::Setting {
                setting: format!("{prefix}__credential"),
                problem: format!(
                    "is not set and there is no default credential: {problem}; or set \
                     {prefix}__credential=managedidentity (optionally {prefix}__clientId), or \
                     {prefix}__tenantId, {prefix}__clientId and {prefix}__clientSecret"
                ),
            }),
        }
    }

    /// The credential the connection `prefix` names itself, or `None` when
    /// none of its credential settings is set.
    pub fn from_connection<'a>(
        prefix: &str,
        get: &impl Fn(&str) -> Option<&'a str>,
    ) -> Result<Option<Credential>, ConfigError> {
        let name = |suffix: &str| format!("{prefix}__{suffix}");
        let value = |suffix: &str| get(&name(suffix));
        let error = |suffix: &str, problem: String| ConfigError::Setting {
            setting: name(suffix),
            problem,
        };
        let credential = value("credential");
        let client_id = value("clientId");
        let tenant_id = value("tenantId");
        let secret = value("clientSecret");
        if value("managedIdentityResourceId").is_some() {
            return Err(error(
                "managedIdentityResourceId",
                format!(
                    "is not supported (the App Service identity endpoint client cannot use it): \
                     name the user-assigned identity by {} instead",
                    name("clientId")
                ),
            ));
        }
        if let Some(credential) = credential {
            if !credential.eq_ignore_ascii_case("managedidentity") {
                return Err(error(
                    "credential",
                    format!("is {credential:?}; it accepts managedidentity"),
                ));
            }
            for suffix in ["tenantId", "clientSecret"] {
                if value(suffix).is_some() {
                    return Err(error(
                        suffix,
                        format!(
                            "is set together with {}=managedidentity: a managed identity needs \
                             no tenant or secret; remove {}",
                            name("credential"),
                            name(suffix)
                        ),
                    ));
                }
            }
            let client_id = client_id
                .map(|id| identifier(&name("clientId"), id))
                .transpose()?;
            let mut settings = name("credential");
            if client_id.is_some() {
                settings.push_str(&format!(" and {}", name("clientId")));
            }
            return Ok(Some(Credential::new(
                CredentialKind::ManagedIdentity { client_id },
                settings,
            )));
        }
        match (tenant_id, client_id, secret) {
            (None, None, None) => Ok(None),
            (Some(tenant_id), Some(client_id), Some(secret)) => Ok(Some(Credential::new(
                CredentialKind::ClientSecret {
                    tenant_id: identifier(&name("tenantId"), tenant_id)?,
                    client_id: identifier(&name("clientId"), client_id)?,
                    secret: SecretString::from(secret.to_owned()),
                    authority_host: authority_host(get)?,
                },
                format!(
                    "{}, {} and {}",
                    name("tenantId"),
                    name("clientId"),
                    name("clientSecret")
                ),
            ))),
            (None, Some(_), None) => Err(error(
                "clientId",
                format!(
                    "is set without {}=managedidentity (for a user-assigned identity) or {} and \
                     {} (for an app registration)",
                    name("credential"),
                    name("tenantId"),
                    name("clientSecret")
                ),
            )),
            (tenant_id, client_id, secret) => {
                let missing: Vec<String> = [
                    ("tenantId", tenant_id.is_none()),
                    ("clientId", client_id.is_none()),
                    ("clientSecret", secret.is_none()),
                ]
                .into_iter()
                .filter(|(_, missing)| *missing)
                .map(|(suffix, _)| name(suffix))
                .collect();
                Err(ConfigError::Setting {
                    setting: missing.join(" and "),
                    problem: format!(
                        "must be set too: an app registration needs {}, {} and {}",
                        name("tenantId"),
                        name("clientId"),
                        name("clientSecret")
                    ),
                })
            }
        }
    }

    /// The product-wide default: the managed identity when
    /// `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` are set (user-assigned when
    /// `AZURE_CLIENT_ID` is set without a secret, as the Azure SDKs do), else
    /// the app registration `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`,
    /// `AZURE_CLIENT_SECRET`. The error says what is missing, without the
    /// connection's own settings (the caller adds those).
    pub fn product_default<'a>(
        get: &impl Fn(&str) -> Option<&'a str>,
    ) -> Result<Credential, String> {
        let tenant_id = get("AZURE_TENANT_ID");
        let client_id = get("AZURE_CLIENT_ID");
        let secret = get("AZURE_CLIENT_SECRET");
        let problem = |e: ConfigError| e.to_string();
        if get("IDENTITY_ENDPOINT").is_some() && get("IDENTITY_HEADER").is_some() {
            let client_id = match (client_id, secret) {
                (Some(id), None) => Some(identifier("AZURE_CLIENT_ID", id).map_err(problem)?),
                _ => None,
            };
            let settings = if client_id.is_some() {
                "IDENTITY_ENDPOINT, IDENTITY_HEADER and AZURE_CLIENT_ID"
            } else {
                "IDENTITY_ENDPOINT and IDENTITY_HEADER"
            };
            return Ok(Credential::new(
                CredentialKind::ManagedIdentity { client_id },
                settings.to_owned(),
            ));
        }
        match (tenant_id, client_id, secret) {
            (Some(tenant_id), Some(client_id), Some(secret)) => Ok(Credential::new(
                CredentialKind::ClientSecret {
                    tenant_id: identifier("AZURE_TENANT_ID", tenant_id).map_err(problem)?,
                    client_id: identifier("AZURE_CLIENT_ID", client_id).map_err(problem)?,
                    secret: SecretString::from(secret.to_owned()),
                    authority_host: authority_host(get).map_err(problem)?,
                },
                "AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET".to_owned(),
            )),
            (None, None, None) => Err(
                "no managed identity (IDENTITY_ENDPOINT and IDENTITY_HEADER are not set) and no \
                 app registration (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET are not set)"
                    .to_owned(),
            ),
            (tenant_id, client_id, secret) => {
                let missing: Vec<&str> = [
                    ("AZURE_TENANT_ID", tenant_id.is_none()),
                    ("AZURE_CLIENT_ID", client_id.is_none()),
                    ("AZURE_CLIENT_SECRET", secret.is_none()),
                ]
                .into_iter()
                .filter(|(_, missing)| *missing)
                .map(|(name, _)| name)
                .collect();
                Err(format!(
                    "no managed identity (IDENTITY_ENDPOINT and IDENTITY_HEADER are not set) and \
                     an incomplete app registration ({} not set)",
                    missing.join(" and ")
                ))
            }
        }
    }
}

/// Tenant and client ids are GUIDs or domain names: letters, digits, `-`, `.`.
fn identifier(setting: &str, text: &str) -> Result<String, ConfigError> {
    let ok = !text.is_empty()
        && text.len() <= 256
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if ok {
        Ok(text.to_owned())
    } else {
        Err(ConfigError::Setting {
            setting: setting.to_owned(),
            problem: "is not an id; it accepts a GUID (or, for a tenant, its domain name)"
                .to_owned(),
        })
    }
}

/// `AZURE_AUTHORITY_HOST`, https only: the client secret travels to it.
fn authority_host<'a>(get: &impl Fn(&str) -> Option<&'a str>) -> Result<url::Url, ConfigError> {
    let text = get("AZURE_AUTHORITY_HOST").unwrap_or(DEFAULT_AUTHORITY_HOST);
    url::Url::parse(text)
        .ok()
        .filter(|u| u.scheme() == "https" && u.host().is_some())
        .ok_or_else(|| ConfigError::Invalid {
            setting: "AZURE_AUTHORITY_HOST",
            problem: "not an https:// URL".to_owned(),
            accepts: "the https:// URL of a Microsoft Entra ID authority, such as \
                      https://login.microsoftonline.us",
        })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn read(pairs: &[(&str, &str)], prefix: &str) -> Result<Credential, ConfigError> {
        let map: HashMap<&str, &str> = pairs.iter().copied().collect();
        Credential::for_connection(prefix, &|name: &str| map.get(name).copied())
    }

    #[test]
    fn managed_identity_by_setting_system_or_user_assigned() {
        let system = read(&[("P__credential", "managedidentity")], "P").expect("valid");
        assert_eq!(system.describe(), "managed identity (system-assigned)");
        let user = read(
            &[
                ("P__credential", "ManagedIdentity"),
                ("P__clientId", "1111-aaaa"),
            ],
            "P",
        )
        .expect("valid");
        assert_eq!(
            user.describe(),
            "managed identity (user-assigned, client id 1111-aaaa)"
        );
        assert_eq!(user.settings(), "P__credential and P__clientId");
    }

    #[test]
    fn app_registration_by_setting_never_shows_the_secret() {
        let c = read(
            &[
                ("P__tenantId", "contoso.onmicrosoft.com"),
                ("P__clientId", "2222"),
                ("P__clientSecret", "s3cr3t-value"),
            ],
            "P",
        )
        .expect("valid");
        let shown = format!("{} {:?}", c.describe(), c);
        assert!(shown.contains("client id 2222"), "{shown}");
        assert!(!shown.contains("s3cr3t-value"), "{shown}");
        let CredentialKind::ClientSecret { authority_host, .. } = c.kind() else {
            panic!("an app registration")
        };
        assert_eq!(
            authority_host.as_str(),
            "https://login.microsoftonline.com/"
        );
    }

    #[test]
    fn default_prefers_the_app_service_managed_identity() {
        let both = [
            ("IDENTITY_ENDPOINT", "http://127.0.0.1:41000/msi/token"),
            ("IDENTITY_HEADER", "h"),
            ("AZURE_TENANT_ID", "t"),
            ("AZURE_CLIENT_ID", "c"),
            ("AZURE_CLIENT_SECRET", "s"),
        ];
        let c = read(&both, "P").expect("valid");
        assert_eq!(c.describe(), "managed identity (system-assigned)");
        let c = read(&both[2..], "P").expect("valid");
        assert!(c.describe().starts_with("app registration (client id c"));
        assert_eq!(
            c.settings(),
            "AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET"
        );
    }

    #[test]
    fn errors_name_the_settings_to_set() {
        let none = read(&[], "LEADS_STORAGE_CONNECTION")
            .unwrap_err()
            .to_string();
        for name in [
            "LEADS_STORAGE_CONNECTION__credential",
            "IDENTITY_ENDPOINT",
            "AZURE_TENANT_ID",
            "AZURE_CLIENT_SECRET",
        ] {
            assert!(none.contains(name), "{name} in {none}");
        }
        let partial = read(&[("P__tenantId", "t"), ("P__clientId", "c")], "P")
            .unwrap_err()
            .to_string();
        assert!(
            partial.starts_with("P__clientSecret must be set"),
            "{partial}"
        );
        let lonely = read(&[("P__clientId", "c")], "P").unwrap_err().to_string();
        assert!(lonely.contains("P__credential=managedidentity"), "{lonely}");
        let wrong = read(&[("P__credential", "secret")], "P")
            .unwrap_err()
            .to_string();
        assert!(wrong.contains("accepts managedidentity"), "{wrong}");
        let http = read(
            &[
                ("AZURE_TENANT_ID", "t"),
                ("AZURE_CLIENT_ID", "c"),
                ("AZURE_CLIENT_SECRET", "s"),
                ("AZURE_AUTHORITY_HOST", "http://login.example"),
            ],
            "P",
        )
        .unwrap_err()
        .to_string();
        assert!(http.contains("AZURE_AUTHORITY_HOST"), "{http}");
        assert!(!http.contains("\"s\""), "{http}");
    }
}
