//! Keyless access: the credential layer against local stand-ins
//! for the App Service identity endpoint and Entra ID's token endpoint
//! (HTTPS, trusted through SSL_CERT_FILE), and the handler as the host runs
//! it against a real Azurite that checks bearer tokens (`--oauth basic`,
//! HTTPS), with no account key in its settings.

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::sync::OnceLock;

use common::faults::count;
use common::handler::Handler;
use common::identity::{
    EntraStandIn, TestCert, TlsSmtp, APP_CLIENT_ID, TENANT, USER_ASSIGNED_CLIENT_ID,
};
use common::servers::{unique_table, Azurite, DEV_KEY};
use lead_notifier::identity::Credential;
use secrecy::ExposeSecret;

/// One stand-in for the in-process tests. The SDK's managed identity reads
/// IDENTITY_ENDPOINT and IDENTITY_HEADER from the process environment, as
/// the product reads SSL_CERT_FILE: set once, before any test reads them.
struct World {
    _cert: TestCert,
    entra: EntraStandIn,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let cert = TestCert::new();
        let entra = EntraStandIn::start(&cert);
        std::env::set_var("SSL_CERT_FILE", &cert.cert_path);
        std::env::set_var("IDENTITY_ENDPOINT", &entra.identity_endpoint);
        std::env::set_var("IDENTITY_HEADER", &entra.identity_header);
        World { _cert: cert, entra }
    })
}

fn credential(pairs: &[(&str, &str)]) -> Credential {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Credential::for_connection("LEADS_STORAGE_CONNECTION", &|name: &str| {
        map.get(name).map(String::as_str)
    })
    .expect("valid credential settings")
}

/// A resource no other test asks for, so request counts are this test's.
fn resource(tag: &str) -> String {
    format!("https://{tag}-{:08x}.example", fastrand::u32(..))
}

/// The claims of a JWT-shaped token.
fn claims(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

#[tokio::test]
async fn managed_identity_asks_once_per_resource_and_clones_share_the_cache() {
    let world = world();
    let credential = credential(&[("LEADS_STORAGE_CONNECTION__credential", "managedidentity")]);
    assert_eq!(credential.describe(), "managed identity (system-assigned)");
    let (one, two) = (resource("one"), resource("two"));
    let source = credential.token_source();
    let first = source
        .token(&format!("{one}/.default"))
        .await
        .expect("token");
    let again = source
        .token(&format!("{one}/.default"))
        .await
        .expect("token");
    let from_clone = credential
        .clone()
        .token_source()
        .token(&format!("{one}/.default"))
        .await
        .expect("token");
    assert_eq!(first.token.expose_secret(), again.token.expose_secret());
    assert_eq!(
        first.token.expose_secret(),
        from_clone.token.expose_secret()
    );
    assert_eq!(
        world.entra.requests_for(&one),
        1,
        "cached after the first request"
    );
    assert_eq!(claims(first.token.expose_secret())["aud"], one.as_str());
    assert!(first.expires_on > time::OffsetDateTime::now_utc() + time::Duration::minutes(55));

    source
        .token(&format!("{two}/.default"))
        .await
        .expect("token");
    assert_eq!(
        world.entra.requests_for(&two),
        1,
        "another resource, another token"
    );
    assert_eq!(world.entra.requests_for(&one), 1);
}

#[tokio::test]
async fn user_assigned_identity_is_asked_for_by_client_id() {
    let world = world();
    let assigned = credential(&[
        ("LEADS_STORAGE_CONNECTION__credential", "managedidentity"),
        (
            "LEADS_STORAGE_CONNECTION__clientId",
            USER_ASSIGNED_CLIENT_ID,
        ),
    ]);
    let r = resource("user");
    assigned
        .token_source()
        .token(&format!("{r}/.default"))
        .await
        .expect("token");
    let seen: Vec<_> = world
        .entra
        .requests()
        .into_iter()
        .filter(|q| q.resource == r)
        .collect();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].client_id.as_deref(), Some(USER_ASSIGNED_CLIENT_ID));

    // An identity not assigned to the app: the reason names it and its settings.
    let stranger = credential(&[
        ("LEADS_STORAGE_CONNECTION__credential", "managedidentity"),
        (
            "LEADS_STORAGE_CONNECTION__clientId",
            "00000000-dead-beef-0000-000000000000",
        ),
    ]);
    let error = stranger
        .token_source()
        .token(&format!("{}/.default", resource("stranger")))
        .await
        .expect_err("not assigned");
    for part in [
        "managed identity (user-assigned, client id 00000000-dead-beef-0000-000000000000)",
        "LEADS_STORAGE_CONNECTION__clientId",
    ] {
        assert!(error.reason.contains(part), "{part:?} in {}", error.reason);
    }
}

#[tokio::test]
async fn app_registration_gets_tokens_over_https_trusted_through_ssl_cert_file() {
    let world = world();
    let app = credential(&[
        ("LEADS_STORAGE_CONNECTION__tenantId", TENANT),
        ("LEADS_STORAGE_CONNECTION__clientId", APP_CLIENT_ID),
        (
            "LEADS_STORAGE_CONNECTION__clientSecret",
            &world.entra.client_secret,
        ),
        ("AZURE_AUTHORITY_HOST", &world.entra.authority_host),
    ]);
    assert!(app.describe().contains(APP_CLIENT_ID));
    assert!(!format!("{} {app:?}", app.describe()).contains(&world.entra.client_secret));
    let r = resource("app");
    let source = app.token_source();
    let token = source.token(&format!("{r}/.default")).await.expect("token");
    source.token(&format!("{r}/.default")).await.expect("token");
    assert_eq!(world.entra.requests_for(&r), 1, "cached");
    let claims = claims(token.token.expose_secret());
    assert_eq!(claims["aud"], r.as_str());
    assert_eq!(claims["iss"], format!("https://sts.windows.net/{TENANT}/"));
}

#[tokio::test]
async fn a_wrong_secret_is_named_without_showing_it() {
    let world = world();
    let wrong_secret = "not-the-secret-0123456789";
    let app = credential(&[
        ("AZURE_TENANT_ID", TENANT),
        ("AZURE_CLIENT_ID", APP_CLIENT_ID),
        ("AZURE_CLIENT_SECRET", wrong_secret),
        ("AZURE_AUTHORITY_HOST", &world.entra.authority_host),
    ]);
    let error = app
        .token_source()
        .token(&format!("{}/.default", resource("wrong")))
        .await
        .expect_err("refused");
    for part in [
        "app registration (client id",
        "AADSTS7000215",
        "AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET",
    ] {
        assert!(error.reason.contains(part), "{part:?} in {}", error.reason);
    }
    assert!(!error.reason.contains(wrong_secret), "{}", error.reason);
}

const STORAGE: &str = "https://storage.azure.com";

/// A private HTTPS Azurite checking tokens, the Entra ID stand-ins, and a
/// lead table Partner Center filled with its connection string.
struct Stand {
    cert: TestCert,
    entra: EntraStandIn,
    azurite: Azurite,
    leads_table: String,
    state_table: String,
    outbox: tempfile::TempDir,
}

impl Stand {
    fn new() -> Stand {
        let cert = TestCert::new();
        let entra = EntraStandIn::start(&cert);
        let azurite = Azurite::spawn_oauth(&cert.cert_path, &cert.key_path);
        Stand {
            cert,
            entra,
            azurite,
            leads_table: unique_table("leads"),
            state_table: unique_table("state"),
            outbox: tempfile::tempdir().expect("outbox dir"),
        }
    }

    /// Partner Center's side: `lead-notifier seed` with the account key.
    /// The first three sample leads are skipped (test, .edu, do not contact).
    fn seed(&self, count: usize) {
        let output = Command::new(env!("CARGO_BIN_EXE_lead-notifier"))
            .args(["seed", "--count", &count.to_string()])
            .env_clear()
            .env("LEADS_STORAGE_CONNECTION", self.azurite.connection_string())
            .env("LEADS_TABLE", &self.leads_table)
            .env("LEADS_STATE_TABLE", &self.state_table)
            .env("OUTBOX_DIR", self.outbox.path())
            .env("SSL_CERT_FILE", &self.cert.cert_path)
            .output()
            .expect("run seed");
        assert!(output.status.success(), "seed: {output:?}");
    }

    /// The handler's settings: keyless, no account key anywhere.
    fn keyless(&self, identity: &[(&str, &str)]) -> HashMap<String, String> {
        let mut settings: HashMap<String, String> = [
            ("LEADS_TABLE", self.leads_table.as_str()),
            ("LEADS_STATE_TABLE", &self.state_table),
            ("LEADS_START_FROM", "beginning"),
            ("OUTBOX_DIR", &self.outbox.path().display().to_string()),
            ("SSL_CERT_FILE", &self.cert.cert_path.display().to_string()),
        ]
        .into_iter()
        .chain(identity.iter().copied())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        settings
            .entry("LEADS_STORAGE_CONNECTION__tableServiceUri".to_owned())
            .or_insert_with(|| self.azurite.table_endpoint());
        assert!(
            settings.values().all(|v| !v.contains(DEV_KEY)),
            "no account key in the handler's settings"
        );
        settings
    }

    fn managed_identity(&self) -> HashMap<String, String> {
        self.keyless(&[
            ("LEADS_STORAGE_CONNECTION__credential", "managedidentity"),
            ("IDENTITY_ENDPOINT", &self.entra.identity_endpoint),
            ("IDENTITY_HEADER", &self.entra.identity_header),
        ])
    }

    fn alerts_written(&self) -> usize {
        std::fs::read_dir(self.outbox.path())
            .expect("outbox")
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
            .count()
    }

    /// No token, identity header or client secret in `output`.
    fn assert_no_secret_in(&self, output: &str) {
        for token in self.entra.issued_tokens() {
            assert!(!output.contains(&token), "a token was printed: {output}");
            let signature = token.rsplit('.').next().unwrap_or_default();
            assert!(!output.contains(signature), "a token part was printed");
        }
        assert!(!output.contains(&self.entra.identity_header), "{output}");
        assert!(!output.contains(&self.entra.client_secret), "{output}");
    }
}

#[tokio::test]
async fn managed_identity_alerts_once_and_asks_for_a_token_once_per_lifetime() {
    let stand = Stand::new();
    stand.seed(5);
    // The first token expires within the SDK's five-minute refresh margin,
    // so it is replaced at its next use; the second lives an hour.
    stand.entra.set_next_lifetimes(STORAGE, &[299]);
    let handler = Handler::start(&stand.managed_identity()).await;

    let (status, first) = handler.invoke_timer().await;
    assert_eq!(status, 200, "first run: {first} {}", handler.stderr());
    assert_eq!(count(&first, "delivered", "outbox"), 2, "{first}");
    assert_eq!(stand.alerts_written(), 2);
    let storage_requests = first["ReturnValue"]["storage_requests"]
        .as_u64()
        .unwrap_or(0);
    assert!(storage_requests >= 3, "{first}");
    assert_eq!(
        stand.entra.requests_for(STORAGE),
        2,
        "one token, then one refresh of the expiring token, for {storage_requests} storage requests"
    );
    assert!(stand
        .entra
        .requests()
        .iter()
        .all(|r| r.endpoint == "identity" && r.client_id.is_none()));

    let (status, second) = handler.invoke_timer().await;
    assert_eq!(status, 200, "second run: {second}");
    assert_eq!(
        count(&second, "delivered", "outbox"),
        0,
        "alerted once: {second}"
    );
    assert_eq!(stand.alerts_written(), 2);
    assert_eq!(stand.entra.requests_for(STORAGE), 2, "cached across runs");

    let output = format!("{first}{second}{}{}", handler.stdout(), handler.stderr());
    stand.assert_no_secret_in(&output);
}

#[tokio::test]
async fn a_token_for_another_audience_fails_the_invocation_with_the_reason() {
    let stand = Stand::new();
    stand.seed(4);
    stand.entra.set_audience("https://management.azure.com");
    let handler = Handler::start(&stand.managed_identity()).await;

    let (status, body) = handler.invoke_timer().await;
    assert_eq!(status, 500, "{body}");
    let stderr = handler.stderr();
    for part in [
        "did not accept the token of the managed identity (system-assigned)",
        "HTTP 403 AuthenticationFailed",
        "audience",
        "https://storage.azure.com",
    ] {
        assert!(stderr.contains(part), "{part:?} in {stderr}");
    }
    assert_eq!(stand.alerts_written(), 0);
    stand.assert_no_secret_in(&format!("{body}{}{stderr}", handler.stdout()));
}

// Multi-threaded: the SMTP server answers while this thread waits for the CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_and_poll_as_an_app_registration_through_the_fallback_settings() {
    let stand = Stand::new();
    stand.seed(4);
    // Mail over implicit TLS to a server with the test certificate: trusted
    // through SSL_CERT_FILE like storage and Entra ID.
    let smtp = TlsSmtp::start(&stand.cert).await;
    let smtp_port = smtp.port.to_string();
    let mut settings = stand.keyless(&[
        ("SMTP_HOST", "127.0.0.1"),
        ("SMTP_PORT", &smtp_port),
        ("SMTP_SECURITY", "tls"),
        ("EMAIL_FROM", "leads@contoso.example"),
        ("EMAIL_TO", "sales@contoso.example"),
        (
            "AzureWebJobsStorage__tableServiceUri",
            &stand.azurite.table_endpoint(),
        ),
        ("AZURE_TENANT_ID", TENANT),
        ("AZURE_CLIENT_ID", APP_CLIENT_ID),
        ("AZURE_CLIENT_SECRET", &stand.entra.client_secret),
        ("AZURE_AUTHORITY_HOST", &stand.entra.authority_host),
    ]);
    settings.remove("LEADS_STORAGE_CONNECTION__tableServiceUri");
    let run_with = |settings: &HashMap<String, String>, args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_lead-notifier"))
            .args(args)
            .env_clear()
            .envs(settings)
            .output()
            .expect("run lead-notifier")
    };
    let run = |args: &[&str]| run_with(&settings, args);

    // Without SSL_CERT_FILE nothing trusts the test certificate.
    let mut untrusting = settings.clone();
    untrusting.remove("SSL_CERT_FILE");
    let refused = run_with(&untrusting, &["check"]);
    let refused_out = String::from_utf8_lossy(&refused.stdout).into_owned();
    assert!(!refused.status.success(), "{refused_out}");
    for part in ["identity: FAILED", "email: FAILED", "and SSL_CERT_FILE if"] {
        assert!(refused_out.contains(part), "{part:?} in {refused_out}");
    }

    let check = run(&["check"]);
    let stdout = String::from_utf8_lossy(&check.stdout).into_owned();
    assert!(
        check.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    for part in [
        &format!("keyless as app registration (client id {APP_CLIENT_ID}, tenant {TENANT}"),
        "(from AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET) got a token for https://storage.azure.com",
        "storage: reached",
        "email: reached",
    ] {
        assert!(stdout.contains(part), "{part:?} in {stdout}");
    }

    let poll = run(&["poll", "--json"]);
    assert!(poll.status.success(), "{poll:?}");
    let summary: serde_json::Value = serde_json::from_slice(&poll.stdout).expect("JSON summary");
    assert_eq!(summary["delivered"]["outbox"], 1, "{summary}");
    assert_eq!(summary["delivered"]["email"], 1, "{summary}");
    assert_eq!(*smtp.accepted.lock().expect("lock"), 1);
    assert_eq!(
        stand.entra.requests_for(STORAGE),
        2,
        "one token per process"
    );
    let output = format!(
        "{refused_out}{stdout}{}{}{}",
        String::from_utf8_lossy(&check.stderr),
        String::from_utf8_lossy(&poll.stdout),
        String::from_utf8_lossy(&poll.stderr)
    );
    stand.assert_no_secret_in(&output);
}
