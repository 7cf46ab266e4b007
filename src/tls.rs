//! Every TLS client of the product is built here, so that `SSL_CERT_FILE`
//! (a PEM bundle trusted in addition to the built-in roots) reaches them all:
//! storage, Teams, the identity endpoints and SMTP. Private relays and
//! TLS-inspecting proxies need it, and so do tests against a local HTTPS
//! Azurite.
//!
//! Like OpenSSL and most tools, the bundle is read from the process
//! environment, once; the settings check ([`read_bundle`]) reports a bad file
//! by name before anything connects.

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::AsyncSmtpTransportBuilder;
use lettre::{AsyncSmtpTransport, Tokio1Executor};

use crate::config::SmtpSecurity;

/// The setting (environment variable) naming the extra PEM bundle.
pub const SSL_CERT_FILE: &str = "SSL_CERT_FILE";

/// Certificates trusted in addition to the built-in roots.
#[derive(Clone)]
pub struct ExtraRoots {
    pem: Vec<u8>,
    certificates: Vec<reqwest::Certificate>,
}

impl std::fmt::Debug for ExtraRoots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ExtraRoots({} certificates)", self.len())
    }
}

impl ExtraRoots {
    pub fn len(&self) -> usize {
        self.certificates.len()
    }

    pub fn is_empty(&self) -> bool {
        self.certificates.is_empty()
    }
}

/// Reads a PEM bundle; the error says what is wrong with the file (the
/// caller names the setting).
pub fn read_bundle(path: &Path) -> Result<ExtraRoots, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot be read ({e})"))?;
    let certificates = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|_| "is not a PEM file of certificates".to_owned())?;
    if certificates.is_empty() {
        return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_owned());
    }
    Ok(ExtraRoots { pem, certificates })
}

/// The process's `SSL_CERT_FILE` bundle, read on first use.
pub fn extra_roots() -> Option<&'static ExtraRoots> {
    static ROOTS: OnceLock<Option<ExtraRoots>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let path = std::env::var_os(SSL_CERT_FILE).filter(|p| !p.is_empty())?;
            match read_bundle(Path::new(&path)) {
                Ok(roots) => Some(roots),
                Err(problem) => {
                    // Settings validation reports this first; a client must
                    // still be built, so it trusts the built-in roots only.
                    tracing::error!(
                        "{SSL_CERT_FILE} {}: {problem}; trusting the built-in roots only",
                        Path::new(&path).display()
                    );
                    None
                }
            }
        })
        .as_ref()
}

/// A reqwest builder that trusts the built-in roots and `SSL_CERT_FILE`.
pub fn http_client_builder() -> reqwest::ClientBuilder {
    let mut builder = reqwest::Client::builder();
    if let Some(roots) = extra_roots() {
        for certificate in &roots.certificates {
            builder = builder.add_root_certificate(certificate.clone());
        }
    }
    builder
}

/// The HTTP client for storage and webhooks: bounded connect and request
/// times, so a dead endpoint fails a run instead of hanging it.
pub fn http_client() -> reqwest::Client {
    http_client_builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap_or_else(|e| {
            tracing::error!("cannot build the HTTP client ({e}); using the default one");
            reqwest::Client::new()
        })
}

/// TLS parameters for an SMTP server, trusting `SSL_CERT_FILE` too.
pub fn smtp_tls_parameters(host: &str) -> Result<TlsParameters, lettre::transport::smtp::Error> {
    let mut builder = TlsParameters::builder(host.to_owned());
    if let Some(roots) = extra_roots() {
        builder = builder.add_root_certificate(Certificate::from_pem(&roots.pem)?);
    }
    builder.build()
}

/// The SMTP transport builder for `security`, as lettre's `starttls_relay`
/// (587) and `relay` (465) make it, but with [`smtp_tls_parameters`].
pub fn smtp_transport(
    host: &str,
    security: SmtpSecurity,
) -> Result<AsyncSmtpTransportBuilder, lettre::transport::smtp::Error> {
    let plain = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host);
    Ok(match security {
        SmtpSecurity::StartTls => plain
            .port(587)
            .tls(Tls::Required(smtp_tls_parameters(host)?)),
        SmtpSecurity::Tls => plain
            .port(465)
            .tls(Tls::Wrapper(smtp_tls_parameters(host)?)),
        SmtpSecurity::None => plain,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_bundle_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = read_bundle(&dir.path().join("none.pem")).unwrap_err();
        assert!(missing.starts_with("cannot be read"), "{missing}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificates here\n").expect("write");
        let problem = read_bundle(&empty).unwrap_err();
        assert!(problem.contains("holds no PEM certificate"), "{problem}");
    }
}
