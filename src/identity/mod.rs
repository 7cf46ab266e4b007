//! Microsoft Entra ID tokens: one credential layer for the whole product
//! (storage, Microsoft Graph mail, SMTP OAuth 2.0).
//!
//! Consumers ask a [`TokenSource`] for a token per scope; implementations
//! cache tokens and refresh them shortly before they expire, so a process
//! makes one token request per scope per token lifetime.

mod bridge;
mod credential;
mod entra;
mod transport;

use std::future::Future;
use std::pin::Pin;

pub use bridge::StorageTokenCredential;
pub use credential::{Credential, CredentialKind, DEFAULT_AUTHORITY_HOST};

use secrecy::SecretString;
use time::OffsetDateTime;

/// A bearer token and the moment it stops being valid. The token is a
/// secret: it is never logged or printed.
#[derive(Clone)]
pub struct AccessToken {
    pub token: SecretString,
    pub expires_on: OffsetDateTime,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"<redacted>")
            .field("expires_on", &self.expires_on)
            .finish()
    }
}

/// Why no token could be had. The reason names the credential and the
/// settings to check; it never holds a secret or a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct IdentityError {
    pub reason: String,
}

pub type TokenFuture<'a> =
    Pin<Box<dyn Future<Output = Result<AccessToken, IdentityError>> + Send + 'a>>;

/// Where bearer tokens come from.
pub trait TokenSource: Send + Sync {
    /// A token for `scope` (for example `https://graph.microsoft.com/.default`),
    /// served from the cache until shortly before it expires.
    fn token<'a>(&'a self, scope: &'a str) -> TokenFuture<'a>;
    /// Which credential kind and identity (client id), for `check` and
    /// error messages. Never a secret.
    fn describe(&self) -> String;
}

/// `lead-notifier check`: which identity, and whether it gets a token for
/// `scope`, in one line. Shows the token's expiry, never the token.
pub async fn check(credential: &Credential, scope: &str) -> Result<String, IdentityError> {
    let resource = resource_of(scope);
    let token = credential.token_source().token(scope).await?;
    let until = token
        .expires_on
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    Ok(format!(
        "identity: {} (from {}) got a token for {resource}, valid until {until}",
        credential.describe(),
        credential.settings(),
    ))
}

/// The scope of Azure Storage tokens (resource `https://storage.azure.com`).
pub const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";

/// The resource a scope names (`https://storage.azure.com/.default` →
/// `https://storage.azure.com`), for messages.
pub fn resource_of(scope: &str) -> &str {
    scope.strip_suffix("/.default").unwrap_or(scope)
}
