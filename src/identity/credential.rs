//! Which Entra ID credential to use, holding the one [`TokenSource`] built
//! from it per process (`entra.rs` builds it). Reading it from settings is
//! `config`'s work (`src/config/credential.rs`).

use std::sync::{Arc, OnceLock};

use secrecy::SecretString;

use super::TokenSource;

/// Microsoft Entra ID in Azure's public cloud.
pub const DEFAULT_AUTHORITY_HOST: &str = "https://login.microsoftonline.com";

/// The kind of credential and what identifies it. The secret is never shown.
#[derive(Clone)]
pub enum CredentialKind {
    /// System-assigned when `client_id` is `None`.
    ManagedIdentity { client_id: Option<String> },
    /// An app registration's client secret.
    ClientSecret {
        tenant_id: String,
        client_id: String,
        secret: SecretString,
        /// `AZURE_AUTHORITY_HOST`, always https.
        authority_host: url::Url,
    },
}

/// A credential read from settings. Clones share one token source, so a
/// process asks for one token per scope per token lifetime.
#[derive(Clone)]
pub struct Credential {
    kind: CredentialKind,
    /// The settings it came from, named when a token cannot be had.
    settings: String,
    /// Built on first use by [`Credential::token_source`] (`entra.rs`).
    pub(super) source: Arc<OnceLock<Arc<dyn TokenSource>>>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("kind", &self.describe())
            .field("settings", &self.settings)
            .finish()
    }
}

impl Credential {
    /// Made by the settings reader (`config`).
    pub(crate) fn new(kind: CredentialKind, settings: String) -> Credential {
        Credential {
            kind,
            settings,
            source: Arc::new(OnceLock::new()),
        }
    }

    pub fn kind(&self) -> &CredentialKind {
        &self.kind
    }

    /// The settings this credential was read from.
    pub fn settings(&self) -> &str {
        &self.settings
    }

    /// Kind and identity, never the secret: `managed identity (user-assigned,
    /// client id …)` or `app registration (client id …, tenant …)`.
    pub fn describe(&self) -> String {
        match &self.kind {
            CredentialKind::ManagedIdentity { client_id: None } => {
                "managed identity (system-assigned)".to_owned()
            }
            CredentialKind::ManagedIdentity {
                client_id: Some(id),
            } => format!("managed identity (user-assigned, client id {id})"),
            CredentialKind::ClientSecret {
                tenant_id,
                client_id,
                ..
            } => format!(
                "app registration (client id {client_id}, tenant {tenant_id}, client secret)"
            ),
        }
    }
}
