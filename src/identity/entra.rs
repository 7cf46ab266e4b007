//! [`TokenSource`] on the maintained Azure SDK (`azure_identity` 1.x): its
//! managed identity and client secret credentials, which also cache tokens
//! per scope and refresh them five minutes before they expire.

use std::sync::Arc;

use azure_core_1::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core_1::credentials::{Secret, TokenCredential};
use azure_core_1::http::{ClientOptions, ExponentialRetryOptions, RetryOptions, Transport};
use azure_core_1::time::Duration;
use azure_identity::{
    ClientSecretCredential, ClientSecretCredentialOptions, ManagedIdentityCredential,
    ManagedIdentityCredentialOptions, UserAssignedId,
};
use secrecy::{ExposeSecret, SecretString};

use super::credential::{Credential, CredentialKind};
use super::transport::{RefusedAnswer, ReqwestTransport};
use super::{resource_of, AccessToken, IdentityError, TokenFuture, TokenSource};

impl Credential {
    /// The process's token source for this credential, built on first use
    /// (no I/O) and shared by every clone.
    pub fn token_source(&self) -> Arc<dyn TokenSource> {
        self.source
            .get_or_init(|| Arc::new(EntraTokenSource::new(self)))
            .clone()
    }
}

/// The most of an SDK error quoted: enough for its reason and an error
/// code from the answer, never a whole answer.
const MAX_CAUSE_CHARS: usize = 600;

/// A credential of `azure_identity`, or why it could not be made.
pub(super) struct EntraTokenSource {
    credential: Result<Arc<dyn TokenCredential>, String>,
    description: String,
    settings: String,
    /// The setting naming where tokens are asked for.
    endpoint_setting: &'static str,
}

impl EntraTokenSource {
    /// No I/O: the first token is requested on first use.
    pub(super) fn new(credential: &Credential) -> EntraTokenSource {
        EntraTokenSource {
            credential: build(credential.kind()).map_err(|e| one_line(&e)),
            description: credential.describe(),
            settings: credential.settings().to_owned(),
            endpoint_setting: match credential.kind() {
                CredentialKind::ManagedIdentity { .. } => "IDENTITY_ENDPOINT",
                CredentialKind::ClientSecret { .. } => "AZURE_AUTHORITY_HOST",
            },
        }
    }

    /// Why `error` gave no token, on one line and short (the SDK quotes an
    /// error answer's body, which the endpoint chooses). An answer the
    /// transport refused is named after the endpoint's setting alone.
    fn get_failure(&self, scope: &str, error: &azure_core_1::Error) -> IdentityError {
        let refused =
            std::iter::successors(Some(error as &(dyn std::error::Error + 'static)), |e| {
                e.source()
            })
            .find_map(|e| e.downcast_ref::<RefusedAnswer>());
        match refused {
            Some(refused) => {
                let cause = format!("{} {refused}", self.endpoint_setting);
                self.failure(scope, &cause, true)
            }
            None => {
                let cause = crate::text::truncate(&one_line(error), MAX_CAUSE_CHARS);
                self.failure(scope, &cause, false)
            }
        }
    }

    /// `endpoint`: the cause is the endpoint's answer, so its setting is
    /// one to check.
    fn failure(&self, scope: &str, cause: &str, endpoint: bool) -> IdentityError {
        let mut check = self.settings.clone();
        if endpoint && !check.contains(self.endpoint_setting) {
            check = format!("{}, and {check}", self.endpoint_setting);
        }
        if cause.contains("certificate") {
            check
                .push_str(", and SSL_CERT_FILE if the endpoint's certificate is from a private CA");
        }
        IdentityError {
            reason: format!(
                "the {} could not get a token for {}: {cause} (check {check})",
                self.description,
                resource_of(scope),
            ),
        }
    }
}

impl TokenSource for EntraTokenSource {
    fn token<'a>(&'a self, scope: &'a str) -> TokenFuture<'a> {
        Box::pin(async move {
            let credential = self
                .credential
                .as_ref()
                .map_err(|cause| self.failure(scope, cause, false))?;
            let token = credential
                .get_token(&[scope], None)
                .await
                .map_err(|e| self.get_failure(scope, &e))?;
            Ok(AccessToken {
                token: SecretString::from(token.token.secret().to_owned()),
                expires_on: token.expires_on,
            })
        })
    }

    fn describe(&self) -> String {
        self.description.clone()
    }
}

fn build(kind: &CredentialKind) -> azure_core_1::Result<Arc<dyn TokenCredential>> {
    let mut options = ClientOptions {
        // Our HTTP client: it trusts SSL_CERT_FILE, which the SDK's own client
        // (a different reqwest major version) would not.
        transport: Some(Transport::new(Arc::new(ReqwestTransport::new()))),
        // The SDK retries for up to a minute by default; a run should fail
        // fast and leave the rest to the next timer tick.
        retry: RetryOptions::exponential(ExponentialRetryOptions {
            max_retries: 3,
            initial_delay: Duration::milliseconds(200),
            max_delay: Duration::seconds(4),
            max_total_elapsed: Duration::seconds(20),
        }),
        ..ClientOptions::default()
    };
    match kind {
        CredentialKind::ManagedIdentity { client_id } => {
            let credential =
                ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                    user_assigned_id: client_id.clone().map(UserAssignedId::ClientId),
                    client_options: options,
                }))?;
            Ok(credential)
        }
        CredentialKind::ClientSecret {
            tenant_id,
            client_id,
            secret,
            authority_host,
        } => {
            let mut cloud = CustomConfiguration::default();
            cloud.authority_host = authority_host.as_str().trim_end_matches('/').to_owned();
            options.cloud = Some(Arc::new(CloudConfiguration::from(cloud)));
            let credential = ClientSecretCredential::new(
                tenant_id,
                client_id.clone(),
                Secret::new(secret.expose_secret().to_owned()),
                Some(ClientSecretCredentialOptions {
                    client_options: options,
                }),
            )?;
            Ok(credential)
        }
    }
}

/// The error and its causes on one line: the SDK's messages span lines (a
/// troubleshooting link on its own line), the host logs one line per entry.
fn one_line(error: &(dyn std::error::Error + 'static)) -> String {
    crate::text::error_chain(error)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}
