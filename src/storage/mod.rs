//! The Azure Table storage connection: one client per run that counts every
//! HTTP request it makes (retries included), and storage errors turned into
//! sentences an operator can act on.

mod timestamp;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use azure_core::error::ErrorKind;
use azure_core::{
    ClientOptions, Context, ExponentialRetryOptions, Policy, PolicyResult, Request, RetryOptions,
    TransportOptions,
};
use azure_data_tables::clients::TableServiceClientBuilder;
use azure_data_tables::prelude::{TableClient, TableServiceClient};
use azure_storage::{CloudLocation, StorageCredentials};
use secrecy::ExposeSecret;

pub use timestamp::{format_timestamp, parse_timestamp};

use crate::config::StorageConnection;
use crate::identity::{Credential, IdentityError, StorageTokenCredential};
use crate::text::error_chain;

/// A storage failure, worded for the operator. Never holds a key or a lead's
/// personal data.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(
        "lead table {table} does not exist in storage account {account}: Microsoft creates \
         the table when the first lead arrives, so either no lead has arrived yet or LEADS_TABLE \
         names the wrong table"
    )]
    LeadTableMissing { table: String, account: String },
    #[error("table {table} does not exist in storage account {account} ({action})")]
    TableMissing {
        table: String,
        account: String,
        action: String,
    },
    #[error(
        "storage account {account} rejected the request ({action}): HTTP {status} {code}; \
         check the account name and key in the storage connection string"
    )]
    Auth {
        account: String,
        action: String,
        status: u16,
        code: String,
    },
    #[error(
        "storage account {account} denied the {identity} ({action}): HTTP 403 \
         AuthorizationPermissionMismatch; assign the role \"Storage Table Data Contributor\" to \
         that identity on that account (az role assignment create --role \"Storage Table Data \
         Contributor\" --assignee <its client or principal id> --scope <the storage account's \
         resource id>); a new assignment takes a few minutes to apply"
    )]
    RoleMissing {
        account: String,
        action: String,
        identity: String,
    },
    #[error(
        "storage account {account} did not accept the token of the {identity} ({action}): HTTP \
         {status} {code}{detail}; the token must be issued for https://storage.azure.com by the \
         account's tenant and still be valid"
    )]
    TokenRefused {
        account: String,
        action: String,
        identity: String,
        status: u16,
        code: String,
        /// The service's reason, when it gives one (`: Invalid token audience.`).
        detail: String,
    },
    #[error("no token for storage account {account} ({action}): {reason}")]
    Token {
        account: String,
        action: String,
        reason: String,
    },
    #[error("cannot reach the table endpoint of storage account {account} ({action}): {reason}")]
    Unreachable {
        account: String,
        action: String,
        reason: String,
    },
    #[error("storage account {account} answered HTTP {status} {code} ({action})")]
    Http {
        account: String,
        action: String,
        status: u16,
        code: String,
    },
    #[error("unexpected answer from storage account {account} ({action}): {reason}")]
    Other {
        account: String,
        action: String,
        reason: String,
    },
}

/// HTTP status and storage error code of a failed request, if it got an answer.
pub fn http_status(error: &azure_core::Error) -> Option<(u16, Option<&str>)> {
    match error.kind() {
        ErrorKind::HttpResponse { status, error_code } => {
            Some((u16::from(*status), error_code.as_deref()))
        }
        _ => None,
    }
}

/// 409: the entity (or table) exists already.
pub fn is_conflict(error: &azure_core::Error) -> bool {
    matches!(http_status(error), Some((409, _)))
}

/// 412: the entity changed since its ETag was read.
pub fn is_precondition_failed(error: &azure_core::Error) -> bool {
    matches!(http_status(error), Some((412, _)))
}

/// 404 on an entity (as opposed to its table).
pub fn is_entity_missing(error: &azure_core::Error) -> bool {
    matches!(http_status(error), Some((404, code)) if code != Some("TableNotFound"))
}

/// 404 because the table itself does not exist.
pub fn is_table_missing(error: &azure_core::Error) -> bool {
    matches!(http_status(error), Some((404, Some("TableNotFound"))))
}

/// One run's connection to the storage account.
#[derive(Debug, Clone)]
pub struct Storage {
    service: TableServiceClient,
    account: String,
    /// The identity of a keyless connection, for error messages.
    identity: Option<String>,
    requests: Arc<AtomicU64>,
}

impl Storage {
    /// No I/O. `http` is shared between runs so connections are reused; the
    /// request counter is this `Storage`'s own.
    pub fn new(connection: &StorageConnection, http: reqwest::Client) -> Storage {
        let requests = Arc::new(AtomicU64::new(0));
        let mut options = ClientOptions::new(TransportOptions::new(Arc::new(http)))
            // The default policy retries for up to a minute; a run that cannot
            // reach storage should say so quickly and leave the rest to the
            // next timer tick.
            .retry(RetryOptions::exponential(
                ExponentialRetryOptions::default()
                    .max_retries(3u32)
                    .initial_delay(Duration::from_millis(200))
                    .max_delay(Duration::from_secs(4))
                    .max_total_elapsed(Duration::from_secs(20)),
            ));
        options
            .per_retry_policies_mut()
            .push(Arc::new(CountRequests(requests.clone())));
        let builder = match connection {
            StorageConnection::Emulator => TableServiceClientBuilder::emulator(),
            StorageConnection::Account {
                account,
                key,
                table_endpoint,
            } => {
                // A trailing slash would put an empty segment before `Tables`.
                let uri = table_endpoint.as_str().trim_end_matches('/').to_owned();
                TableServiceClientBuilder::with_location(
                    CloudLocation::Custom {
                        account: account.clone(),
                        uri,
                    },
                    StorageCredentials::access_key(account.clone(), key.expose_secret().to_owned()),
                )
            }
            StorageConnection::Identity {
                account,
                table_endpoint,
                credential,
            } => TableServiceClientBuilder::with_location(
                CloudLocation::Custom {
                    account: account.clone(),
                    uri: table_endpoint.as_str().trim_end_matches('/').to_owned(),
                },
                // The process's token source: one token request per token
                // lifetime, however many runs and requests use it.
                StorageCredentials::token_credential(Arc::new(StorageTokenCredential(
                    credential.token_source(),
                ))),
            ),
        };
        Storage {
            service: builder.client_options(options).build(),
            account: connection.account().to_owned(),
            identity: connection.credential().map(Credential::describe),
            requests,
        }
    }

    pub fn table(&self, name: &str) -> TableClient {
        self.service.table_client(name)
    }

    pub fn account(&self) -> &str {
        &self.account
    }

    /// HTTP requests sent so far, each retry counted.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Creates `table` unless it exists.
    pub async fn create_table_if_missing(&self, table: &str) -> Result<(), StorageError> {
        match self.table(table).create().await {
            Ok(_) => Ok(()),
            Err(e) if is_conflict(&e) => Ok(()),
            Err(e) => Err(self.error(e, table, format!("creating table {table}"))),
        }
    }

    /// Words a failed request on `table` while doing `action`.
    pub fn error(
        &self,
        error: azure_core::Error,
        table: &str,
        action: impl Into<String>,
    ) -> StorageError {
        let account = self.account.clone();
        let action = action.into();
        match error.kind() {
            ErrorKind::HttpResponse { status, error_code } => {
                let status = u16::from(*status);
                let code = error_code
                    .clone()
                    .unwrap_or_else(|| "(no error code)".into());
                match (status, code.as_str(), self.identity.clone()) {
                    (404, "TableNotFound", _) => StorageError::TableMissing {
                        table: table.to_owned(),
                        account,
                        action,
                    },
                    (403, "AuthorizationPermissionMismatch", Some(identity)) => {
                        StorageError::RoleMissing {
                            account,
                            action,
                            identity,
                        }
                    }
                    (401 | 403, _, Some(identity)) => StorageError::TokenRefused {
                        account,
                        action,
                        identity,
                        status,
                        detail: authentication_detail(&error)
                            .map(|d| format!(": {d}"))
                            .unwrap_or_default(),
                        code,
                    },
                    (401 | 403, _, None) => StorageError::Auth {
                        account,
                        action,
                        status,
                        code,
                    },
                    _ => StorageError::Http {
                        account,
                        action,
                        status,
                        code,
                    },
                }
            }
            ErrorKind::Credential => StorageError::Token {
                account,
                action,
                reason: identity_reason(&error).unwrap_or_else(|| error_chain(&error)),
            },
            ErrorKind::Io => StorageError::Unreachable {
                account,
                action,
                reason: error_chain(&error),
            },
            _ => StorageError::Other {
                account,
                action,
                reason: error_chain(&error),
            },
        }
    }
}

/// The reason of the [`IdentityError`] under a storage error: it names the
/// credential and its settings.
fn identity_reason(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut source = Some(error);
    while let Some(e) = source {
        if let Some(identity) = e.downcast_ref::<IdentityError>() {
            return Some(identity.reason.clone());
        }
        source = e.source();
    }
    None
}

/// Why the service refused a token, when it says: Azure Storage and Azurite
/// put it in `AuthenticationErrorDetail` (a JSON field or an XML element) of
/// the error body, which the 0.21 error only shows in its text. Kept short
/// and to one line; it never holds the token.
fn authentication_detail(error: &azure_core::Error) -> Option<String> {
    const FIELD: &str = "AuthenticationErrorDetail";
    let text = error_chain(error);
    let after = &text[text.find(FIELD)? + FIELD.len()..];
    let start = after.find(|c: char| c.is_alphanumeric())?;
    let detail: String = after[start..]
        .chars()
        .take_while(|c| !matches!(c, '"' | '<' | '\\' | '\n'))
        .take(200)
        .collect();
    let detail = detail.trim().trim_end_matches('.');
    (!detail.is_empty()).then(|| detail.to_owned())
}

/// Counts each HTTP attempt: it sits after the retry policy.
#[derive(Debug)]
struct CountRequests(Arc<AtomicU64>);

impl Policy for CountRequests {
    fn send<'s, 'c, 'r, 'n, 'f>(
        &'s self,
        ctx: &'c Context,
        request: &'r mut Request,
        next: &'n [Arc<dyn Policy>],
    ) -> Pin<Box<dyn Future<Output = PolicyResult> + Send + 'f>>
    where
        's: 'f,
        'c: 'f,
        'r: 'f,
        'n: 'f,
        Self: 'f,
    {
        self.0.fetch_add(1, Ordering::Relaxed);
        Box::pin(async move {
            match next.split_first() {
                Some((first, rest)) => first.send(ctx, request, rest).await,
                None => Err(azure_core::Error::message(
                    ErrorKind::Other,
                    "storage client pipeline has no transport",
                )),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use azure_core::StatusCode;

    use super::*;
    use crate::identity::Credential;

    fn keyless() -> Storage {
        let get = |name: &str| match name {
            "P__credential" => Some("managedidentity"),
            "P__clientId" => Some("1234-abcd"),
            _ => None,
        };
        let credential = Credential::for_connection("P", &get).expect("valid");
        let connection = StorageConnection::Identity {
            account: "contoso".into(),
            table_endpoint: url::Url::parse("https://contoso.table.core.windows.net").expect("url"),
            credential,
        };
        Storage::new(&connection, reqwest::Client::new())
    }

    fn refused(status: StatusCode, code: &str) -> azure_core::Error {
        azure_core::Error::message(
            ErrorKind::HttpResponse {
                status,
                error_code: Some(code.to_owned()),
            },
            "refused",
        )
    }

    #[test]
    fn a_missing_role_names_the_role_the_identity_and_the_account() {
        let error = keyless()
            .error(
                refused(StatusCode::Forbidden, "AuthorizationPermissionMismatch"),
                "t",
                "reading table t",
            )
            .to_string();
        for part in [
            "storage account contoso denied the managed identity (user-assigned, client id 1234-abcd)",
            "assign the role \"Storage Table Data Contributor\" to that identity on that account",
            "az role assignment create",
        ] {
            assert!(error.contains(part), "{part:?} in {error}");
        }
    }

    #[test]
    fn a_refused_token_is_not_blamed_on_an_account_key() {
        let error = keyless()
            .error(
                refused(StatusCode::Unauthorized, "InvalidAuthenticationInfo"),
                "t",
                "reading table t",
            )
            .to_string();
        assert!(
            error.contains("did not accept the token of the managed identity"),
            "{error}"
        );
        assert!(!error.contains("key"), "{error}");
    }
}
