//! Stand-ins for Microsoft Entra ID (platform facts §7): the App Service
//! managed identity endpoint (loopback http, as Azure provides it) and the
//! client-secret token endpoint (HTTPS, with a certificate made at test
//! time). Both issue JWT-shaped tokens that Azurite's `--oauth basic`
//! accepts: issuer `https://sts.windows.net/<tenant>/`, audience
//! `https://storage.azure.com`, `nbf`/`iat`/`exp`. Each runs on its own
//! thread, like a server outside the process under test.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::json;
use tokio_rustls::rustls;

/// The tenant the stand-ins issue tokens for.
pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
/// The app registration the token endpoint knows.
pub const APP_CLIENT_ID: &str = "8a4b2c3d-0000-4000-8000-00000000c1d0";
/// A user-assigned identity the identity endpoint knows.
pub const USER_ASSIGNED_CLIENT_ID: &str = "5e6f7a8b-0000-4000-8000-0000000000a5";

/// A self-signed certificate for `127.0.0.1` and `localhost`, written as
/// PEM files (the bundle doubles as `SSL_CERT_FILE`).
pub struct TestCert {
    _dir: tempfile::TempDir,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    cert_pem: String,
    key_pem: String,
}

impl TestCert {
    pub fn new() -> TestCert {
        let names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
        let certified = rcgen::generate_simple_self_signed(names).expect("self-signed certificate");
        let cert_pem = certified.cert.pem();
        let key_pem = certified.signing_key.serialize_pem();
        let dir = tempfile::tempdir().expect("temp dir");
        let cert_path = dir.path().join("cert.pem");
        let key_path = dir.path().join("key.pem");
        std::fs::write(&cert_path, &cert_pem).expect("write cert");
        std::fs::write(&key_path, &key_pem).expect("write key");
        TestCert {
            _dir: dir,
            cert_path,
            key_path,
            cert_pem,
            key_pem,
        }
    }

    fn server_config(&self) -> rustls::ServerConfig {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("certificate PEM");
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).expect("key PEM");
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config")
    }
}

impl Default for TestCert {
    fn default() -> Self {
        TestCert::new()
    }
}

/// One token request as the stand-in saw it.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// `identity` (managed identity endpoint) or `entra` (token endpoint).
    pub endpoint: &'static str,
    /// `resource` or `scope`.
    pub resource: String,
    /// `client_id` of a user-assigned identity or of the app registration.
    pub client_id: Option<String>,
}

struct Shared {
    identity_header: String,
    client_secret: String,
    lifetime_secs: Mutex<i64>,
    /// Per resource, overriding `lifetime_secs`.
    lifetimes: Mutex<HashMap<String, i64>>,
    /// Per resource, lifetimes of the next tokens, before those above.
    next_lifetimes: Mutex<HashMap<String, Vec<i64>>>,
    audience: Mutex<Option<String>>,
    requests: Mutex<Vec<TokenRequest>>,
    issued: Mutex<Vec<String>>,
}

/// Both stand-ins, counting every token request.
pub struct EntraStandIn {
    /// `IDENTITY_ENDPOINT`: `http://127.0.0.1:<port>/msi/token`.
    pub identity_endpoint: String,
    /// `IDENTITY_HEADER`.
    pub identity_header: String,
    /// `AZURE_AUTHORITY_HOST`: `https://127.0.0.1:<port>`.
    pub authority_host: String,
    /// The app registration's secret.
    pub client_secret: String,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl EntraStandIn {
    /// Starts both on free loopback ports; tokens live an hour.
    pub fn start(cert: &TestCert) -> EntraStandIn {
        let shared = Arc::new(Shared {
            identity_header: format!("identity-header-{:016x}", fastrand::u64(..)),
            client_secret: format!("client-secret-{:016x}", fastrand::u64(..)),
            lifetime_secs: Mutex::new(3600),
            lifetimes: Mutex::new(HashMap::new()),
            next_lifetimes: Mutex::new(HashMap::new()),
            audience: Mutex::new(None),
            requests: Mutex::new(Vec::new()),
            issued: Mutex::new(Vec::new()),
        });
        let plain = std::net::TcpListener::bind("127.0.0.1:0").expect("bind identity endpoint");
        let secure = std::net::TcpListener::bind("127.0.0.1:0").expect("bind token endpoint");
        plain.set_nonblocking(true).expect("nonblocking");
        secure.set_nonblocking(true).expect("nonblocking");
        let identity_port = plain.local_addr().expect("addr").port();
        let entra_port = secure.local_addr().expect("addr").port();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cert.server_config()));
        let app = Router::new()
            .route("/msi/token", get(identity_token))
            .route("/{tenant}/oauth2/v2.0/token", post(entra_token))
            .with_state(shared.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("stand-in runtime");
            runtime.block_on(async move {
                let plain = tokio::net::TcpListener::from_std(plain).expect("listener");
                let secure = tokio::net::TcpListener::from_std(secure).expect("listener");
                let http = std::future::IntoFuture::into_future(axum::serve(plain, app.clone()));
                let https = std::future::IntoFuture::into_future(axum::serve(
                    TlsListener {
                        tcp: secure,
                        acceptor,
                    },
                    app,
                ));
                tokio::select! {
                    _ = http => {},
                    _ = https => {},
                    _ = stopped => {},
                }
            });
        });
        EntraStandIn {
            identity_endpoint: format!("http://127.0.0.1:{identity_port}/msi/token"),
            identity_header: shared.identity_header.clone(),
            authority_host: format!("https://127.0.0.1:{entra_port}"),
            client_secret: shared.client_secret.clone(),
            shared,
            stop: Some(stop),
        }
    }

    /// How long the next tokens live, in seconds (Azure: about an hour to a day).
    pub fn set_lifetime_secs(&self, secs: i64) {
        *self.shared.lifetime_secs.lock().expect("lock") = secs;
    }

    /// How long the next tokens for `resource` (no `/.default`) live.
    pub fn set_lifetime_for(&self, resource: &str, secs: i64) {
        self.shared
            .lifetimes
            .lock()
            .expect("lock")
            .insert(resource.to_owned(), secs);
    }

    /// The next tokens for `resource` live this long, in order.
    pub fn set_next_lifetimes(&self, resource: &str, secs: &[i64]) {
        self.shared
            .next_lifetimes
            .lock()
            .expect("lock")
            .insert(resource.to_owned(), secs.to_vec());
    }

    /// Token requests for `resource` (`/.default` scopes count too).
    pub fn requests_for(&self, resource: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.resource.strip_suffix("/.default").unwrap_or(&r.resource) == resource)
            .count()
    }

    /// Issue the next tokens for this audience instead of the one asked for.
    pub fn set_audience(&self, audience: &str) {
        *self.shared.audience.lock().expect("lock") = Some(audience.to_owned());
    }

    pub fn requests(&self) -> Vec<TokenRequest> {
        self.shared.requests.lock().expect("lock").clone()
    }

    /// Every token issued so far (to check none leaks into output).
    pub fn issued_tokens(&self) -> Vec<String> {
        self.shared.issued.lock().expect("lock").clone()
    }
}

impl Drop for EntraStandIn {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A JWT-shaped token (not signed: Azurite's basic check does not verify
/// signatures) for `audience`, valid from a minute ago for `lifetime` seconds.
fn issue(shared: &Shared, audience: &str, client_id: &str) -> (String, i64) {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let next = {
        let mut queues = shared.next_lifetimes.lock().expect("lock");
        queues
            .get_mut(audience)
            .filter(|q| !q.is_empty())
            .map(|q| q.remove(0))
    };
    let lifetime = next.unwrap_or_else(|| {
        shared
            .lifetimes
            .lock()
            .expect("lock")
            .get(audience)
            .copied()
            .unwrap_or(*shared.lifetime_secs.lock().expect("lock"))
    });
    let audience = shared
        .audience
        .lock()
        .expect("lock")
        .clone()
        .unwrap_or_else(|| audience.to_owned());
    let header = json!({"typ": "JWT", "alg": "RS256", "kid": "stand-in"});
    let claims = json!({
        "aud": audience,
        "iss": format!("https://sts.windows.net/{TENANT}/"),
        "iat": now - 60,
        "nbf": now - 60,
        "exp": now + lifetime,
        "appid": client_id,
        "oid": "0c8e1d2f-0000-4000-8000-000000000001",
        "sub": "0c8e1d2f-0000-4000-8000-000000000001",
        "tid": TENANT,
        "ver": "1.0",
        "uti": format!("{:016x}", fastrand::u64(..)),
    });
    let part = |v: &serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let token = format!(
        "{}.{}.{}",
        part(&header),
        part(&claims),
        URL_SAFE_NO_PAD.encode(fastrand::u64(..).to_be_bytes())
    );
    shared.issued.lock().expect("lock").push(token.clone());
    (token, now + lifetime)
}

/// `GET $IDENTITY_ENDPOINT?resource=…&api-version=2019-08-01[&client_id=…]`
/// with `X-IDENTITY-HEADER`.
async fn identity_token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let query = form(uri.query().unwrap_or("").as_bytes());
    let header_ok = headers
        .get("x-identity-header")
        .and_then(|v| v.to_str().ok())
        == Some(shared.identity_header.as_str());
    if !header_ok {
        return (
            StatusCode::UNAUTHORIZED,
            "missing or wrong X-IDENTITY-HEADER",
        )
            .into_response();
    }
    if query.get("api-version").map(String::as_str) != Some("2019-08-01") {
        return (StatusCode::BAD_REQUEST, "api-version must be 2019-08-01").into_response();
    }
    let Some(resource) = query.get("resource").cloned() else {
        return (StatusCode::BAD_REQUEST, "resource is required").into_response();
    };
    let client_id = query.get("client_id").cloned();
    if client_id
        .as_deref()
        .is_some_and(|id| id != USER_ASSIGNED_CLIENT_ID)
    {
        // What App Service answers for an identity not assigned to the app.
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"statusCode": 400, "message": "No User Assigned or Delegated Managed Identity found for specified ClientId/ResourceId/PrincipalId."})),
        )
            .into_response();
    }
    shared.requests.lock().expect("lock").push(TokenRequest {
        endpoint: "identity",
        resource: resource.clone(),
        client_id: client_id.clone(),
    });
    let identity = client_id.unwrap_or_else(|| "system-assigned".to_owned());
    let (token, expires_on) = issue(&shared, &resource, &identity);
    Json(json!({
        "access_token": token,
        "expires_on": expires_on.to_string(),
        "resource": resource,
        "token_type": "Bearer",
        "client_id": identity,
    }))
    .into_response()
}

/// `POST {authority}/{tenant}/oauth2/v2.0/token`, client credentials.
async fn entra_token(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    body: Bytes,
) -> Response {
    let form = form(&body);
    let field = |name: &str| form.get(name).map(String::as_str);
    let refuse = |status: StatusCode, code: &str, codes: u32, description: &str| {
        (
            status,
            Json(json!({"error": code, "error_description": description, "error_codes": [codes]})),
        )
            .into_response()
    };
    if tenant != TENANT {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            "AADSTS90002: Tenant not found.",
        );
    }
    if field("grant_type") != Some("client_credentials")
        || field("client_id") != Some(APP_CLIENT_ID)
    {
        return refuse(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            "AADSTS700016: Application not found in the directory.",
        );
    }
    if field("client_secret") != Some(shared.client_secret.as_str()) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            "AADSTS7000215: Invalid client secret provided.",
        );
    }
    let Some(scope) = field("scope").map(str::to_owned) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "AADSTS900144: The request body must contain the following parameter: 'scope'.",
        );
    };
    shared.requests.lock().expect("lock").push(TokenRequest {
        endpoint: "entra",
        resource: scope.clone(),
        client_id: Some(APP_CLIENT_ID.to_owned()),
    });
    let audience = scope.strip_suffix("/.default").unwrap_or(&scope).to_owned();
    let (token, expires_on) = issue(&shared, &audience, APP_CLIENT_ID);
    let expires_in = expires_on - time::OffsetDateTime::now_utc().unix_timestamp();
    Json(json!({
        "token_type": "Bearer",
        "expires_in": expires_in,
        "ext_expires_in": expires_in,
        "access_token": token,
    }))
    .into_response()
}

fn form(bytes: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(bytes).into_owned().collect()
}

/// axum over TLS: a connection is handed on once its handshake succeeded.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// An SMTP server with implicit TLS (`SMTP_SECURITY=tls`) presenting the
/// test certificate: enough SMTP for lettre's NOOP check and one message,
/// to show SSL_CERT_FILE reaches the mail client too.
pub struct TlsSmtp {
    pub port: u16,
    /// Messages accepted after DATA.
    pub accepted: Arc<Mutex<usize>>,
}

impl TlsSmtp {
    pub async fn start(cert: &TestCert) -> TlsSmtp {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind smtp");
        let port = listener.local_addr().expect("addr").port();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cert.server_config()));
        let accepted = Arc::new(Mutex::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let (read, mut write) = tokio::io::split(tls);
                    let mut lines = BufReader::new(read).lines();
                    let _ = write.write_all(b"220 localhost ESMTP\r\n").await;
                    let mut in_data = false;
                    while let Ok(Some(line)) = lines.next_line().await {
                        let reply: &[u8] = if in_data {
                            if line != "." {
                                continue;
                            }
                            in_data = false;
                            *counter.lock().expect("lock") += 1;
                            b"250 2.0.0 queued\r\n"
                        } else {
                            match line.get(..4).map(str::to_ascii_uppercase).as_deref() {
                                Some("EHLO") => b"250-localhost\r\n250 8BITMIME\r\n",
                                Some("DATA") => {
                                    in_data = true;
                                    b"354 go ahead\r\n"
                                }
                                Some("QUIT") => {
                                    let _ = write.write_all(b"221 bye\r\n").await;
                                    return;
                                }
                                _ => b"250 OK\r\n",
                            }
                        };
                        if write.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        TlsSmtp { port, accepted }
    }
}
