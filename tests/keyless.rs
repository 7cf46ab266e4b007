//! Keyless access (issue #12): the credential layer against local stand-ins
//! for the App Service identity endpoint and Entra ID's token endpoint
//! (HTTPS, trusted through SSL_CERT_FILE).

mod common;

use std::collections::HashMap;
use std::sync::OnceLock;

use common::identity::{EntraStandIn, TestCert, APP_CLIENT_ID, TENANT, USER_ASSIGNED_CLIENT_ID};
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
