//! `azure_identity` 1.x sends its token requests through an
//! `azure_core` 1.x `HttpClient`. Its built-in one is reqwest 0.13 with its
//! own trust store; this one is the product's reqwest client from
//! [`crate::tls`], so the identity endpoints trust `SSL_CERT_FILE` like
//! every other client, and no second HTTP stack is compiled in.

use std::collections::HashMap;

use azure_core_1::error::{Error, ErrorKind};
use azure_core_1::http::headers::{HeaderName, HeaderValue, Headers};
use azure_core_1::http::{AsyncRawResponse, Body, HttpClient, Method, Request};

#[derive(Debug)]
pub(super) struct ReqwestTransport(reqwest::Client);

impl ReqwestTransport {
    pub(super) fn new() -> ReqwestTransport {
        // Redirects are never followed (see `http_client_builder`): a client
        // secret or the identity header would travel to the `Location`.
        ReqwestTransport(crate::tls::build_client(
            crate::tls::http_client_builder()
                .connect_timeout(std::time::Duration::from_secs(10))
                .timeout(std::time::Duration::from_secs(30)),
            "identity HTTP client",
        ))
    }
}

/// An answer the transport does not hand to the SDK. Not retried by the
/// SDK (it is no transport error); [`super::entra`] names the endpoint's
/// setting.
#[derive(Debug, thiserror::Error)]
pub(super) enum RefusedAnswer {
    #[error(
        "answered {0} (a redirect, which is not followed: the token request carries a secret)"
    )]
    Redirect(u16),
    #[error("answered {0} with more than {kib} KiB, which is no token answer", kib = crate::tls::MAX_ANSWER_BYTES / 1024)]
    TooLarge(u16),
}

#[async_trait::async_trait]
impl HttpClient for ReqwestTransport {
    async fn execute_request(&self, request: &Request) -> azure_core_1::Result<AsyncRawResponse> {
        let method = match request.method() {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Delete => reqwest::Method::DELETE,
            Method::Patch => reqwest::Method::PATCH,
            Method::Head => reqwest::Method::HEAD,
            other => {
                return Err(Error::with_message(
                    ErrorKind::Other,
                    format!("HTTP method {other:?} is not used for tokens"),
                ))
            }
        };
        let body = match request.body() {
            Body::Bytes(bytes) => bytes.clone(),
            #[allow(unreachable_patterns)]
            _ => {
                return Err(Error::with_message(
                    ErrorKind::Other,
                    "streamed request bodies are not used for tokens",
                ))
            }
        };
        let mut builder = self.0.request(method, request.url().as_str());
        for (name, value) in request.headers().iter() {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let response = builder.body(body).send().await.map_err(|e| {
            // The SDK retries Io and Connection errors for seconds; an
            // untrusted certificate stays untrusted, so it fails at once.
            // rustls's reason is only reachable as text through hyper's and
            // std::io's wrappers.
            let kind = if crate::text::error_chain(&e).contains("certificate") {
                ErrorKind::Other
            } else if e.is_connect() {
                ErrorKind::Connection
            } else {
                ErrorKind::Io
            };
            Error::with_error(kind, e, "the token request failed")
        })?;
        let status = response.status().as_u16();
        if response.status().is_redirection() {
            return Err(Error::with_error(
                ErrorKind::Other,
                RefusedAnswer::Redirect(status),
                "the token request was redirected",
            ));
        }
        let headers: HashMap<HeaderName, HeaderValue> = response
            .headers()
            .iter()
            .filter_map(|(name, value)| {
                let value = value.to_str().ok()?;
                Some((
                    HeaderName::from(name.as_str().to_owned()),
                    HeaderValue::from(value.to_owned()),
                ))
            })
            .collect();
        let body = crate::tls::read_prefix(response, crate::tls::MAX_ANSWER_BYTES)
            .await
            .map_err(|e| {
                Error::with_error(ErrorKind::Io, e, "reading the token response failed")
            })?;
        // An error answer's start is enough for the SDK's message; a token
        // answer cut short would only fail to parse, so it is refused here.
        if !body.complete && (200..300).contains(&status) {
            return Err(Error::with_error(
                ErrorKind::Other,
                RefusedAnswer::TooLarge(status),
                "the token answer is too large",
            ));
        }
        let bytes = bytes::Bytes::from(body.bytes);
        Ok(AsyncRawResponse::from_bytes(
            status.into(),
            Headers::from(headers),
            bytes,
        ))
    }
}
