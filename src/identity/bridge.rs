//! `azure_data_tables` 0.21 takes `azure_core` 0.21's `TokenCredential`
//! (`StorageCredentials::token_credential`); this hands it tokens from a
//! [`TokenSource`], whose cache lives as long as the process.

use std::sync::Arc;

use azure_core::auth::{AccessToken, TokenCredential};
use azure_core::error::{Error, ErrorKind};
use secrecy::ExposeSecret;

use super::TokenSource;

pub struct StorageTokenCredential(pub Arc<dyn TokenSource>);

impl std::fmt::Debug for StorageTokenCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StorageTokenCredential({})", self.0.describe())
    }
}

#[async_trait::async_trait]
impl TokenCredential for StorageTokenCredential {
    async fn get_token(&self, scopes: &[&str]) -> azure_core::Result<AccessToken> {
        let [scope] = scopes else {
            return Err(Error::message(
                ErrorKind::Credential,
                "a token is asked for exactly one scope",
            ));
        };
        // The IdentityError stays the error's source, so storage errors can
        // quote its reason.
        let token = self
            .0
            .token(scope)
            .await
            .map_err(|e| Error::new(ErrorKind::Credential, e))?;
        Ok(AccessToken::new(
            token.token.expose_secret().to_owned(),
            token.expires_on,
        ))
    }

    async fn clear_cache(&self) -> azure_core::Result<()> {
        Ok(())
    }
}
