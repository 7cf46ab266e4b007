//! Every TLS client of the product is built here, so that `SSL_CERT_FILE`
//! (a PEM bundle trusted in addition to the built-in roots) reaches them all:
//! storage, Teams, the identity endpoints and SMTP. Private relays and
//! TLS-inspecting proxies need it, and so do tests against a local HTTPS
//! Azurite.
//!
//! Like OpenSSL and most tools, the bundle is read from the process
//! environment, once; the settings check ([`read_bundle`]) reports a bad file
//! by name before anything connects.
//!
//! The HTTP clients never follow redirects ([`http_client_builder`]), and
//! answers from services the product does not control are read only as far
//! as [`MAX_ANSWER_BYTES`] ([`read_prefix`]).

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use lettre::transport::smtp::client::{Certificate, TlsParameters};

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

/// A reqwest builder that trusts the built-in roots and `SSL_CERT_FILE` and
/// never follows a redirect: a followed 307 or 308 would post the lead, a
/// client secret or a bearer token again to wherever `Location` points, and
/// a followed 301 or 302 turns the post into an empty GET whose 200 would
/// count as delivered. A 3xx reaches the caller as the answer it is.
pub fn http_client_builder() -> reqwest::ClientBuilder {
    let mut builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
    if let Some(roots) = extra_roots() {
        for certificate in &roots.certificates {
            builder = builder.add_root_certificate(certificate.clone());
        }
    }
    builder
}

/// Builds `builder`; should that fail (an unusable `SSL_CERT_FILE`
/// certificate), a client on the built-in roots, still without redirects.
/// `what` names the client in the log.
pub fn build_client(builder: reqwest::ClientBuilder, what: &str) -> reqwest::Client {
    builder.build().unwrap_or_else(|e| {
        tracing::error!("cannot build the {what} ({e}); trusting the built-in roots only");
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            // What reqwest::Client::new() does when TLS cannot be set up at all.
            .expect("reqwest builds a client on the built-in roots")
    })
}

/// The HTTP client for storage and webhooks: bounded connect and request
/// times, so a dead endpoint fails a run instead of hanging it.
pub fn http_client() -> reqwest::Client {
    build_client(
        http_client_builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60)),
        "HTTP client",
    )
}

/// The most of an answer's body the product reads from a service it does
/// not control. The largest body it needs whole is a token answer (a JWT of
/// a few KB in a little JSON); of error bodies only a short code near the
/// start is kept (Slack's one word, `error.code` of a JSON document of a few
/// hundred bytes). 64 KiB is ten times the largest of those, and small
/// enough that dozens of channels reading one at once hold a few MB.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The start of a response body, read as it streams in.
#[derive(Debug, Default)]
pub struct BodyPrefix {
    pub bytes: Vec<u8>,
    /// False when the body went on past the limit (the rest was not read).
    pub complete: bool,
}

impl BodyPrefix {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// Reads at most `limit` bytes of `response`'s body and drops the rest
/// unread (the connection is closed rather than drained), so a receiver
/// answering hundreds of MB costs `limit` bytes. The request's timeout
/// still bounds the time it takes.
pub async fn read_prefix(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<BodyPrefix, reqwest::Error> {
    let capacity = response
        .content_length()
        .map_or(8 * 1024, |n| usize::try_from(n).unwrap_or(limit))
        .min(limit);
    let mut bytes = Vec::with_capacity(capacity);
    while let Some(chunk) = response.chunk().await? {
        let room = limit - bytes.len();
        if chunk.len() > room {
            bytes.extend_from_slice(&chunk[..room]);
            return Ok(BodyPrefix {
                bytes,
                complete: false,
            });
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(BodyPrefix {
        bytes,
        complete: true,
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
