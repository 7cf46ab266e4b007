//! Settings: defaults, every setting's error message, and secrets kept out of
//! errors, Debug output and the `check` summary.

use std::collections::HashMap;
use std::time::Duration;

use lead_notifier::config::{
    read_settings_file, ConfigError, EmailTransport, GraphSettings, Settings, SmtpAuth,
    SmtpSecurity, SmtpSettings, StartFrom, StorageConnection, OUTLOOK_SCOPE,
};
use secrecy::ExposeSecret;
use time::macros::datetime;

const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const WEBHOOK: &str =
    "https://prod-12.westeurope.logic.azure.com/workflows/abc/triggers/manual/paths/invoke?api-version=2016-06-01&sig=TOPSECRETSIG";

fn base() -> HashMap<String, String> {
    [
        ("AzureWebJobsStorage", "UseDevelopmentStorage=true"),
        ("OUTBOX_DIR", "/tmp/outbox"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn with(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let mut vars = base();
    for (k, v) in pairs {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    Settings::from_map(&vars)
}

/// The error for `pairs`, asserting it names `setting`.
fn error_naming(setting: &str, pairs: &[(&str, &str)]) -> String {
    let err = with(pairs).expect_err(&format!("{pairs:?} should fail"));
    let message = err.to_string();
    assert!(
        message.contains(setting),
        "{message:?} should name {setting}"
    );
    message
}

fn smtp<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut pairs = vec![
        ("SMTP_HOST", "smtp.example.com"),
        ("EMAIL_FROM", "Lead bot <leads@example.com>"),
        (
            "EMAIL_TO",
            "sales@example.com, \"Doe, Jane\" <jane@example.com>",
        ),
    ];
    pairs.extend_from_slice(extra);
    pairs
}

#[test]
fn defaults() {
    let s = with(&[]).unwrap();
    assert!(matches!(s.storage, StorageConnection::Emulator));
    assert_eq!(s.leads_table, "MarketplaceLeads");
    assert_eq!(s.state_table, "LeadNotifierState");
    assert_eq!(
        s.start_from,
        StartFrom::LookBack(Duration::from_secs(24 * 3600))
    );
    assert_eq!(s.poll_schedule, "0 */5 * * * *");
    assert!(s.email.is_none() && s.teams.is_none());
    assert_eq!(
        s.outbox_dir.as_deref(),
        Some(std::path::Path::new("/tmp/outbox"))
    );
    assert_eq!(s.digest_after, 20);
    assert!(s.filters.skip_test_leads && s.filters.skip_edu && s.filters.skip_do_not_contact);
    assert_eq!(s.max_attempts, 20);
    assert_eq!(s.claim_lease, Duration::from_secs(600));
    assert_eq!(s.scan_overlap, Duration::from_secs(300));
    assert_eq!(s.retry_budget, Duration::from_secs(30));
}

#[test]
fn full_connection_string_with_table_endpoint() {
    let conn = format!(
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={DEV_KEY};TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"
    );
    let s = with(&[("LEADS_STORAGE_CONNECTION", &conn)]).unwrap();
    let StorageConnection::Account {
        account,
        key,
        table_endpoint,
    } = &s.storage
    else {
        panic!("expected an account");
    };
    assert_eq!(account, "devstoreaccount1");
    assert_eq!(key.expose_secret(), DEV_KEY);
    assert_eq!(
        table_endpoint.as_str(),
        "http://127.0.0.1:10002/devstoreaccount1"
    );
    assert_eq!(s.storage.account(), "devstoreaccount1");
}

#[test]
fn connection_string_without_endpoint_builds_the_public_one() {
    let conn = format!("accountname=contoso;ACCOUNTKEY={DEV_KEY}");
    let s = with(&[("LEADS_STORAGE_CONNECTION", &conn)]).unwrap();
    let StorageConnection::Account { table_endpoint, .. } = &s.storage else {
        panic!()
    };
    assert_eq!(
        table_endpoint.as_str(),
        "https://contoso.table.core.windows.net/"
    );

    let conn = format!("DefaultEndpointsProtocol=http;AccountName=contoso;AccountKey={DEV_KEY};EndpointSuffix=core.chinacloudapi.cn");
    let s = with(&[("LEADS_STORAGE_CONNECTION", &conn)]).unwrap();
    let StorageConnection::Account { table_endpoint, .. } = &s.storage else {
        panic!()
    };
    assert_eq!(
        table_endpoint.as_str(),
        "http://contoso.table.core.chinacloudapi.cn/"
    );
}

#[test]
fn leads_storage_connection_wins_over_azure_web_jobs_storage() {
    let conn = format!("AccountName=leads;AccountKey={DEV_KEY}");
    let s = with(&[("LEADS_STORAGE_CONNECTION", &conn)]).unwrap();
    assert_eq!(s.storage.account(), "leads");
}

#[test]
fn storage_connection_errors_name_the_setting_and_never_echo_the_key() {
    let bad_key = "AccountName=contoso;AccountKey=not*base64!SECRETPART";
    for (conn, expect) in [
        (bad_key, "base64"),
        ("AccountName=contoso", "AccountKey"),
        (&format!("AccountKey={DEV_KEY}") as &str, "AccountName"),
        ("garbage SECRETPART", "'='"),
        ("BlobEndpoint=https://x.blob.core.windows.net;SharedAccessSignature=sv=2020&sig=SECRETPART", "use an account key"),
        (&format!("AccountName=c;AccountKey={DEV_KEY};TableEndpoint=ftp://SECRETPART"), "TableEndpoint"),
        (&format!("AccountName=c;AccountKey={DEV_KEY};DefaultEndpointsProtocol=gopher"), "DefaultEndpointsProtocol"),
    ] {
        let message = error_naming("LEADS_STORAGE_CONNECTION", &[("LEADS_STORAGE_CONNECTION", conn)]);
        assert!(message.contains(expect), "{message:?} should mention {expect}");
        assert!(!message.contains("SECRETPART") && !message.contains(DEV_KEY), "{message:?}");
    }
    // The fallback's own name is used when it is the one in use.
    let mut vars = HashMap::new();
    vars.insert("AzureWebJobsStorage".to_owned(), "AccountName=x".to_owned());
    vars.insert("OUTBOX_DIR".to_owned(), "/tmp/o".to_owned());
    let message = Settings::from_map(&vars).unwrap_err().to_string();
    assert!(message.starts_with("AzureWebJobsStorage"), "{message}");
}

#[test]
fn missing_storage_connection() {
    let err = Settings::from_pairs([("OUTBOX_DIR", "/tmp/o")]).unwrap_err();
    assert!(matches!(
        err,
        ConfigError::Missing {
            setting: "LEADS_STORAGE_CONNECTION",
            ..
        }
    ));
    assert!(err.to_string().contains("AzureWebJobsStorage"));
    // Blank counts as unset.
    let err = Settings::from_pairs([("OUTBOX_DIR", "/tmp/o"), ("AzureWebJobsStorage", "  ")])
        .unwrap_err();
    assert!(matches!(err, ConfigError::Missing { .. }));
}

#[test]
fn no_channel() {
    let err =
        Settings::from_pairs([("AzureWebJobsStorage", "UseDevelopmentStorage=true")]).unwrap_err();
    assert_eq!(err, ConfigError::NoChannel);
    for name in [
        "SMTP_HOST",
        "EMAIL_VIA=graph",
        "TEAMS_WEBHOOK_URL",
        "OUTBOX_DIR",
    ] {
        assert!(err.to_string().contains(name));
    }
}

#[test]
fn table_names() {
    let s = with(&[
        ("LEADS_TABLE", "marketplaceleads"),
        ("LEADS_STATE_TABLE", "State2"),
    ])
    .unwrap();
    assert_eq!(
        (s.leads_table.as_str(), s.state_table.as_str()),
        ("marketplaceleads", "State2")
    );
    for bad in ["ab", "1Leads", "lead-table", "tables", &"x".repeat(64)] {
        error_naming("LEADS_TABLE", &[("LEADS_TABLE", bad)]);
        error_naming("LEADS_STATE_TABLE", &[("LEADS_STATE_TABLE", bad)]);
    }
    error_naming(
        "LEADS_STATE_TABLE",
        &[("LEADS_STATE_TABLE", "MARKETPLACELEADS")],
    );
}

#[test]
fn start_from_forms() {
    let at = |v: &str| with(&[("LEADS_START_FROM", v)]).unwrap().start_from;
    assert_eq!(at("beginning"), StartFrom::Beginning);
    assert_eq!(at("Beginning"), StartFrom::Beginning);
    assert_eq!(
        at("7d"),
        StartFrom::LookBack(Duration::from_secs(7 * 86400))
    );
    assert_eq!(
        at("2024-05-01T00:00:00+02:00"),
        StartFrom::At(datetime!(2024-05-01 00:00 +02:00))
    );
    let message = error_naming("LEADS_START_FROM", &[("LEADS_START_FROM", "yesterday")]);
    assert!(message.contains("beginning"));
    let now = datetime!(2024-05-02 00:00 UTC);
    assert_eq!(
        at("24h").resolve(now),
        Some(datetime!(2024-05-01 00:00 UTC))
    );
    assert_eq!(at("beginning").resolve(now), None);
}

#[test]
fn poll_schedule() {
    let s = with(&[("LEADS_POLL_SCHEDULE", " 0  0 * * * * ")]).unwrap();
    assert_eq!(s.poll_schedule, "0 0 * * * *");
    for bad in [
        "*/5 * * * *",
        "%LEADS_POLL_SCHEDULE%",
        "0 */5 * * * * *",
        "0 */5 * * * $",
    ] {
        let message = error_naming("LEADS_POLL_SCHEDULE", &[("LEADS_POLL_SCHEDULE", bad)]);
        assert!(message.contains("six-field"), "{message}");
    }
}

/// The SMTP transport of settings that have one.
fn smtp_of(s: Settings) -> SmtpSettings {
    match s.email.expect("email on").transport {
        EmailTransport::Smtp(smtp) => smtp,
        other => panic!("not SMTP: {other:?}"),
    }
}

#[test]
fn email_settings_and_port_defaults() {
    let s = with(&smtp(&[])).unwrap();
    let e = s.email.clone().unwrap();
    assert_eq!(e.from.email.to_string(), "leads@example.com");
    assert_eq!(e.from.name.as_deref(), Some("Lead bot"));
    let to: Vec<String> = e.to.iter().map(|m| m.email.to_string()).collect();
    assert_eq!(to, ["sales@example.com", "jane@example.com"]);
    let t = smtp_of(s);
    assert_eq!(
        (t.host.as_str(), t.port, t.security),
        ("smtp.example.com", 587, SmtpSecurity::StartTls)
    );
    assert!(matches!(t.auth, SmtpAuth::None));

    let port = |security: &str| smtp_of(with(&smtp(&[("SMTP_SECURITY", security)])).unwrap()).port;
    assert_eq!(
        (port("TLS"), port("none"), port("StartTLS")),
        (465, 25, 587)
    );
    let t = smtp_of(
        with(&smtp(&[
            ("SMTP_PORT", "2525"),
            ("SMTP_USERNAME", "apikey"),
            ("SMTP_PASSWORD", "pw"),
        ]))
        .unwrap(),
    );
    assert_eq!(t.port, 2525);
    let SmtpAuth::Password { username, password } = t.auth else {
        panic!("password login expected: {:?}", t.auth);
    };
    assert_eq!(
        (username.as_str(), password.expose_secret()),
        ("apikey", "pw")
    );
    for ip in ["127.0.0.1", "::1"] {
        assert_eq!(smtp_of(with(&smtp(&[("SMTP_HOST", ip)])).unwrap()).host, ip);
    }
    let e = with(&smtp(&[("EMAIL_TO", "a@example.com; b@example.com,")]))
        .unwrap()
        .email
        .unwrap();
    assert_eq!(e.to.len(), 2);
}

/// The app registration tokens come from in these tests.
const APP: [(&str, &str); 3] = [
    ("AZURE_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47"),
    ("AZURE_CLIENT_ID", "8a4b2c3d-0000-4000-8000-00000000c1d0"),
    ("AZURE_CLIENT_SECRET", "app-secret-hunter2"),
];

fn graph<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut pairs = APP.to_vec();
    pairs.extend([
        ("EMAIL_VIA", "graph"),
        ("EMAIL_FROM", "Lead bot <leads@example.com>"),
        ("EMAIL_TO", "sales@example.com"),
    ]);
    pairs.extend_from_slice(extra);
    pairs
}

fn graph_of(s: Settings) -> GraphSettings {
    match s.email.expect("email on").transport {
        EmailTransport::Graph(graph) => graph,
        other => panic!("not Graph: {other:?}"),
    }
}

#[test]
fn email_via_graph_and_its_cloud() {
    let g = graph_of(with(&graph(&[])).unwrap());
    assert_eq!(g.endpoint.as_str(), "https://graph.microsoft.com/");
    assert_eq!(g.scope(), "https://graph.microsoft.com/.default");
    for (endpoint, scope) in [
        (
            "https://graph.microsoft.us/",
            "https://graph.microsoft.us/.default",
        ),
        (
            "https://microsoftgraph.chinacloudapi.cn",
            "https://microsoftgraph.chinacloudapi.cn/.default",
        ),
        ("http://127.0.0.1:8089", "http://127.0.0.1:8089/.default"),
    ] {
        let g = graph_of(with(&graph(&[("GRAPH_ENDPOINT", endpoint)])).unwrap());
        assert_eq!(g.scope(), scope);
    }
    // EMAIL_VIA=smtp is what SMTP_HOST alone means.
    let explicit = smtp_of(with(&smtp(&[("EMAIL_VIA", "SMTP")])).unwrap());
    assert_eq!(explicit.host, "smtp.example.com");
}

#[test]
fn a_password_is_never_sent_without_tls_to_another_machine() {
    let login = [
        ("SMTP_USERNAME", "leads@contoso.example"),
        ("SMTP_PASSWORD", "hunter2"),
        ("SMTP_SECURITY", "none"),
    ];
    let m = error_naming("SMTP_SECURITY", &smtp(&login));
    assert!(
        m.contains("smtp.example.com") && m.contains("unencrypted") && !m.contains("hunter2"),
        "{m}"
    );
    for local in ["127.0.0.1", "localhost", "::1"] {
        let mut pairs = smtp(&login);
        pairs.push(("SMTP_HOST", local));
        assert!(with(&pairs).is_ok(), "{local}");
    }
    // Without a login, plain SMTP to a relay stays allowed.
    assert!(with(&smtp(&[("SMTP_SECURITY", "none")])).is_ok());
}

#[test]
fn smtp_auth_oauth2_and_the_password_default() {
    let oauth = |extra: &[(&str, &str)]| {
        let mut pairs = APP.to_vec();
        pairs.extend([
            ("SMTP_HOST", "smtp.office365.com"),
            ("SMTP_AUTH", "oauth2"),
            ("SMTP_USERNAME", "leads@contoso.example"),
        ]);
        pairs.extend_from_slice(extra);
        with(&smtp(&pairs))
    };
    let t = smtp_of(oauth(&[]).unwrap());
    let SmtpAuth::OAuth2 { username } = &t.auth else {
        panic!("oauth2 expected: {:?}", t.auth);
    };
    assert_eq!(username, "leads@contoso.example");
    assert_eq!((t.port, t.security), (587, SmtpSecurity::StartTls));
    assert_eq!(OUTLOOK_SCOPE, "https://outlook.office365.com/.default");
    // Plain SMTP to this machine is fine for a local test server.
    let local = oauth(&[("SMTP_HOST", "127.0.0.1"), ("SMTP_SECURITY", "none")]);
    assert!(local.is_ok(), "{local:?}");

    for extra in [[("SMTP_AUTH", "password")], [("SMTP_AUTH", "Password")]] {
        let mut pairs = vec![("SMTP_USERNAME", "u"), ("SMTP_PASSWORD", "p")];
        pairs.extend_from_slice(&extra);
        let t = smtp_of(with(&smtp(&pairs)).unwrap());
        assert!(matches!(t.auth, SmtpAuth::Password { .. }), "{:?}", t.auth);
    }

    let m = error_naming("SMTP_USERNAME", &smtp(&[("SMTP_AUTH", "oauth2")]));
    assert!(m.contains("SMTP_AUTH is oauth2"), "{m}");
    let m = error_naming(
        "SMTP_PASSWORD",
        &smtp(&[
            ("SMTP_AUTH", "oauth2"),
            ("SMTP_USERNAME", "leads@contoso.example"),
            ("SMTP_PASSWORD", "hunter2"),
        ]),
    );
    assert!(
        m.contains("SMTP_AUTH=oauth2") && !m.contains("hunter2"),
        "{m}"
    );
    error_naming(
        "SMTP_USERNAME",
        &smtp(&[("SMTP_AUTH", "oauth2"), ("SMTP_USERNAME", "Lead bot")]),
    );
    let m = error_naming(
        "SMTP_SECURITY",
        &smtp(&[
            ("SMTP_AUTH", "oauth2"),
            ("SMTP_USERNAME", "leads@contoso.example"),
            ("SMTP_SECURITY", "none"),
        ]),
    );
    assert!(m.contains("unencrypted"), "{m}");
    let m = error_naming("SMTP_AUTH", &smtp(&[("SMTP_AUTH", "basic")]));
    assert!(m.contains("password or oauth2"), "{m}");
    error_naming(
        "SMTP_USERNAME and SMTP_PASSWORD",
        &smtp(&[("SMTP_AUTH", "password")]),
    );
}

#[test]
fn email_transport_combinations_that_cannot_work_name_the_settings() {
    let m = error_naming("EMAIL_VIA", &graph(&[("EMAIL_VIA", "sendgrid")]));
    assert!(m.contains("smtp or graph"), "{m}");
    let m = error_naming(
        "SMTP_HOST",
        &[
            ("EMAIL_VIA", "smtp"),
            ("EMAIL_FROM", "a@example.com"),
            ("EMAIL_TO", "b@example.com"),
        ],
    );
    assert!(m.contains("EMAIL_VIA is smtp"), "{m}");
    let m = error_naming(
        "EMAIL_FROM",
        &[("EMAIL_VIA", "graph"), ("EMAIL_TO", "b@example.com")],
    );
    assert!(m.contains("EMAIL_VIA is graph"), "{m}");
    error_naming(
        "EMAIL_TO",
        &[("EMAIL_VIA", "graph"), ("EMAIL_FROM", "a@example.com")],
    );
    for setting in ["SMTP_HOST", "SMTP_AUTH", "SMTP_USERNAME", "SMTP_PASSWORD"] {
        let m = error_naming(setting, &graph(&[(setting, "x")]));
        assert!(m.contains("EMAIL_VIA=graph"), "{m}");
    }
    let m = error_naming(
        "GRAPH_ENDPOINT",
        &[("GRAPH_ENDPOINT", "https://graph.microsoft.us")],
    );
    assert!(m.contains("EMAIL_VIA=graph"), "{m}");
    error_naming(
        "GRAPH_ENDPOINT",
        &smtp(&[("GRAPH_ENDPOINT", "https://graph.microsoft.us")]),
    );
    for bad in [
        "http://graph.microsoft.com",
        "graph.microsoft.com",
        "https://graph.microsoft.com/v1.0",
        "https://graph.microsoft.com/?x=1",
        "ftp://graph.microsoft.com",
    ] {
        let m = error_naming("GRAPH_ENDPOINT", &graph(&[("GRAPH_ENDPOINT", bad)]));
        assert!(m.contains("https://"), "{m}");
    }
}

#[test]
fn email_transports_in_the_summary() {
    let s = with(&graph(&[("GRAPH_ENDPOINT", "https://graph.microsoft.us")])).unwrap();
    let summary = s.summary_lines().join("\n");
    assert!(
        summary.contains(
            "email: Microsoft Graph sendMail at https://graph.microsoft.us, from leads@example.com, 1 recipient, \
             token from app registration (client id 8a4b2c3d-0000-4000-8000-00000000c1d0"
        ),
        "{summary}"
    );
    let debug = format!("{s:?}");
    for text in [&summary, &debug] {
        assert!(!text.contains("app-secret-hunter2"), "{text}");
    }
    let mut pairs = APP.to_vec();
    pairs.extend([
        ("SMTP_AUTH", "oauth2"),
        ("SMTP_USERNAME", "leads@contoso.example"),
    ]);
    let summary = with(&smtp(&pairs)).unwrap().summary_lines().join("\n");
    assert!(
        summary.contains("as user leads@contoso.example with OAuth 2.0 (XOAUTH2)"),
        "{summary}"
    );
    assert!(summary.contains("token from app registration"), "{summary}");
    assert!(!summary.contains("app-secret-hunter2"), "{summary}");
}

#[test]
fn email_tokens_need_a_credential() {
    let no_credential = [
        ("EMAIL_VIA", "graph"),
        ("EMAIL_FROM", "leads@example.com"),
        ("EMAIL_TO", "sales@example.com"),
    ];
    let m = error_naming("EMAIL_VIA=graph", &no_credential);
    assert!(
        m.contains("IDENTITY_ENDPOINT") && m.contains("AZURE_CLIENT_SECRET"),
        "{m}"
    );
    let m = error_naming(
        "SMTP_AUTH=oauth2",
        &smtp(&[
            ("SMTP_AUTH", "oauth2"),
            ("SMTP_USERNAME", "leads@contoso.example"),
            ("AZURE_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47"),
        ]),
    );
    assert!(m.contains("AZURE_CLIENT_ID"), "{m}");
    // A managed identity is enough on its own.
    let mut managed = no_credential.to_vec();
    managed.extend([
        ("IDENTITY_ENDPOINT", "http://127.0.0.1:41741/msi/token"),
        ("IDENTITY_HEADER", "header-secret"),
    ]);
    let s = with(&managed).unwrap();
    let summary = s.summary_lines().join("\n");
    assert!(
        summary.contains("token from managed identity (system-assigned)"),
        "{summary}"
    );
    assert!(!summary.contains("header-secret"));
}

#[test]
fn email_setting_errors_name_the_setting() {
    error_naming("SMTP_SECURITY", &smtp(&[("SMTP_SECURITY", "ssl3")]));
    error_naming("SMTP_PORT", &smtp(&[("SMTP_PORT", "0")]));
    error_naming("SMTP_PORT", &smtp(&[("SMTP_PORT", "70000")]));
    error_naming("SMTP_PORT", &smtp(&[("SMTP_PORT", "smtp")]));
    error_naming(
        "SMTP_HOST",
        &smtp(&[("SMTP_HOST", "smtp://mail.example.com:25")]),
    );
    error_naming("SMTP_PASSWORD", &smtp(&[("SMTP_USERNAME", "user")]));
    let message = error_naming("SMTP_USERNAME", &smtp(&[("SMTP_PASSWORD", "hunter2")]));
    assert!(!message.contains("hunter2"));
    error_naming("EMAIL_FROM", &smtp(&[("EMAIL_FROM", "not an address")]));
    error_naming("EMAIL_TO", &smtp(&[("EMAIL_TO", "good@example.com, bad")]));
    error_naming("EMAIL_TO", &smtp(&[("EMAIL_TO", " , ")]));
    error_naming(
        "EMAIL_FROM",
        &[
            ("SMTP_HOST", "smtp.example.com"),
            ("EMAIL_TO", "a@example.com"),
        ],
    );
    error_naming(
        "EMAIL_TO",
        &[
            ("SMTP_HOST", "smtp.example.com"),
            ("EMAIL_FROM", "a@example.com"),
        ],
    );
}

#[test]
fn teams_webhook_url() {
    let s = with(&[("TEAMS_WEBHOOK_URL", WEBHOOK)]).unwrap();
    assert_eq!(s.teams.unwrap().webhook_url.expose_secret(), WEBHOOK);
    for local in [
        "http://127.0.0.1:8080/hook?sig=x",
        "http://127.1.2.3/h",
        "http://localhost:1/h",
        "http://[::1]:9/h",
    ] {
        assert!(with(&[("TEAMS_WEBHOOK_URL", local)]).is_ok(), "{local}");
    }
    for bad in [
        "http://example.com/hook?sig=TOPSECRETSIG",
        "ftp://host/TOPSECRETSIG",
        "TOPSECRETSIG",
        "http://10.0.0.1/TOPSECRETSIG",
    ] {
        let message = error_naming("TEAMS_WEBHOOK_URL", &[("TEAMS_WEBHOOK_URL", bad)]);
        assert!(!message.contains("TOPSECRETSIG"), "{message}");
    }
}

#[test]
fn the_sample_settings_file_is_valid() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("local.settings.sample.json");
    let s = Settings::from_map(&read_settings_file(&path).unwrap()).unwrap();
    assert!(s.outbox_dir.is_some());
}

#[test]
fn email_settings_without_smtp_host_leave_email_off() {
    let s = with(&[("EMAIL_TO", "a@example.com"), ("SMTP_SECURITY", "starttls")]).unwrap();
    assert!(s.email.is_none());
}

#[test]
fn teams_or_email_alone_is_a_channel() {
    let vars = [
        ("AzureWebJobsStorage", "UseDevelopmentStorage=true"),
        ("TEAMS_WEBHOOK_URL", WEBHOOK),
    ];
    assert!(Settings::from_pairs(vars).is_ok());
    let mut vars = smtp(&[]);
    vars.push(("AzureWebJobsStorage", "UseDevelopmentStorage=true"));
    assert!(Settings::from_pairs(vars).unwrap().email.is_some());
}

#[test]
fn numbers_and_switches() {
    let s = with(&[
        ("DIGEST_AFTER", "5"),
        ("SKIP_TEST_LEADS", "FALSE"),
        ("SKIP_EDU", "no"),
        ("SKIP_DO_NOT_CONTACT", "1"),
        ("ALERT_MAX_ATTEMPTS", "3"),
        ("CLAIM_LEASE", "2m 30s"),
        ("SCAN_OVERLAP", "1s"),
        ("RETRY_BUDGET", "1s"),
    ])
    .unwrap();
    assert_eq!(s.digest_after, 5);
    assert!(!s.filters.skip_test_leads && !s.filters.skip_edu && s.filters.skip_do_not_contact);
    assert_eq!(s.max_attempts, 3);
    assert_eq!(s.claim_lease, Duration::from_secs(150));
    assert_eq!(s.scan_overlap, Duration::from_secs(1));
    assert_eq!(s.retry_budget, Duration::from_secs(1));
    for (yes, no) in [("true", "false"), ("YES", "No"), ("1", "0")] {
        assert!(with(&[("SKIP_EDU", yes)]).unwrap().filters.skip_edu);
        assert!(!with(&[("SKIP_EDU", no)]).unwrap().filters.skip_edu);
    }
}

#[test]
fn number_and_switch_errors_name_the_setting() {
    for name in ["SKIP_TEST_LEADS", "SKIP_EDU", "SKIP_DO_NOT_CONTACT"] {
        let message = error_naming(name, &[(name, "maybe")]);
        assert!(message.contains("true or false"));
    }
    error_naming("DIGEST_AFTER", &[("DIGEST_AFTER", "-1")]);
    error_naming("DIGEST_AFTER", &[("DIGEST_AFTER", "many")]);
    error_naming("ALERT_MAX_ATTEMPTS", &[("ALERT_MAX_ATTEMPTS", "0")]);
    error_naming("CLAIM_LEASE", &[("CLAIM_LEASE", "0s")]);
    error_naming("CLAIM_LEASE", &[("CLAIM_LEASE", "ten minutes")]);
    error_naming("SCAN_OVERLAP", &[("SCAN_OVERLAP", "5")]);
    // Rows that commit slightly out of order would be missed for good.
    for short in ["0s", "0", "500ms"] {
        let message = error_naming("SCAN_OVERLAP", &[("SCAN_OVERLAP", short)]);
        assert!(message.contains("at least 1s"), "{message}");
    }
    error_naming("RETRY_BUDGET", &[("RETRY_BUDGET", "-3s")]);
    // Would overflow date arithmetic in every run.
    error_naming("SCAN_OVERLAP", &[("SCAN_OVERLAP", "20000years")]);
    error_naming("LEADS_START_FROM", &[("LEADS_START_FROM", "20000years")]);
}

#[test]
fn secrets_stay_out_of_debug_and_summary() {
    let conn = format!("AccountName=contoso;AccountKey={DEV_KEY};TableEndpoint=https://contoso.table.core.windows.net");
    let s = with(&smtp(&[
        ("LEADS_STORAGE_CONNECTION", &conn),
        ("SMTP_USERNAME", "apikey"),
        ("SMTP_PASSWORD", "hunter2-smtp-password"),
        ("TEAMS_WEBHOOK_URL", WEBHOOK),
    ]))
    .unwrap();
    let debug = format!("{s:?}");
    let summary = s.summary_lines().join("\n");
    for text in [&debug, &summary] {
        for secret in [
            DEV_KEY,
            "hunter2-smtp-password",
            "TOPSECRETSIG",
            "workflows/abc",
        ] {
            assert!(!text.contains(secret), "{secret} leaked into {text}");
        }
    }
    assert!(
        summary.contains("email: smtp.example.com:587 starttls as user apikey"),
        "{summary}"
    );
    assert!(summary.contains("2 recipients"), "{summary}");
    assert!(summary
        .contains("teams: webhook on host prod-12.westeurope.logic.azure.com (signature hidden)"));
    assert!(summary.contains("account contoso"));
    assert!(summary.contains("outbox: /tmp/outbox"));
    assert!(summary.contains("skipping: test leads, .edu leads, do-not-contact leads"));
}

#[test]
fn summary_of_the_defaults() {
    let summary = with(&[]).unwrap().summary_lines().join("\n");
    assert!(summary.contains("local emulator"), "{summary}");
    assert!(summary.contains("email: off"));
    assert!(summary.contains("teams: off"));
    assert!(summary.contains("1day ago"), "{summary}");
    assert!(summary.contains("MarketplaceLeads"));
}

#[test]
fn settings_file_values_become_text() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("local.settings.json");
    std::fs::write(
        &path,
        r#"{"IsEncrypted":false,"Values":{"FUNCTIONS_WORKER_RUNTIME":"custom","AzureWebJobsStorage":"UseDevelopmentStorage=true",
            "OUTBOX_DIR":"out","DIGEST_AFTER":7,"SKIP_EDU":false,"SMTP_HOST":null}}"#,
    )
    .unwrap();
    let vars = read_settings_file(&path).unwrap();
    assert_eq!(vars["DIGEST_AFTER"], "7");
    assert_eq!(vars["SKIP_EDU"], "false");
    assert!(!vars.contains_key("SMTP_HOST"));
    let s = Settings::from_map(&vars).unwrap();
    assert_eq!((s.digest_after, s.filters.skip_edu), (7, false));
}

#[test]
fn settings_file_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("missing.json", None, ""),
        ("broken.json", Some("{\"Values\":"), "not valid JSON"),
        ("novalues.json", Some("{\"IsEncrypted\":false}"), "Values"),
        (
            "encrypted.json",
            Some("{\"IsEncrypted\":true,\"Values\":{}}"),
            "IsEncrypted",
        ),
        (
            "nested.json",
            Some("{\"Values\":{\"A\":{\"b\":1}}}"),
            "Values.A",
        ),
    ];
    for (name, content, expect) in cases {
        let path = dir.path().join(name);
        if let Some(content) = content {
            std::fs::write(&path, content).unwrap();
        }
        let err = read_settings_file(&path).unwrap_err();
        assert!(matches!(err, ConfigError::SettingsFile { .. }));
        let message = err.to_string();
        assert!(
            message.contains(name) && message.contains(expect),
            "{message}"
        );
    }
}

#[test]
fn repeat_window_defaults_to_a_day_and_zero_turns_folding_off() {
    assert_eq!(
        with(&[]).unwrap().repeat_window,
        Duration::from_secs(86_400)
    );
    assert_eq!(
        with(&[("REPEAT_WINDOW", "0")]).unwrap().repeat_window,
        Duration::ZERO
    );
    assert_eq!(
        with(&[("REPEAT_WINDOW", "2h")]).unwrap().repeat_window,
        Duration::from_secs(7_200)
    );
    error_naming("REPEAT_WINDOW", &[("REPEAT_WINDOW", "a day")]);
    let lines = with(&[("REPEAT_WINDOW", "0")])
        .unwrap()
        .summary_lines()
        .join("\n");
    assert!(lines.contains("REPEAT_WINDOW is 0"), "{lines}");
}

/// The README's lists of destination kinds come from the same list as the
/// code's: a kind added in `src/destination.rs` fails here until the README's
/// ROUTE_ row and its "at least one destination" sentence name it.
#[test]
fn readme_names_every_destination_kind() {
    use lead_notifier::destination::Kind;
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let route_row = readme
        .lines()
        .find(|l| l.starts_with("| `ROUTE_<KIND>`"))
        .expect("the README's ROUTE_ settings row");
    let at_least_one = readme
        .split("At least one destination")
        .nth(1)
        .and_then(|rest| rest.split("must be set").next())
        .expect("the README's \"At least one destination … must be set\" sentence");
    for kind in Kind::ALL {
        let part = format!("`{}`", kind.setting_part());
        assert!(route_row.contains(&part), "ROUTE_ row lacks {part}");
        let setting = kind.turned_on_by().split(' ').next().unwrap_or_default();
        assert!(
            at_least_one.contains(setting),
            "\"At least one destination\" lacks {setting}"
        );
    }
}

#[test]
fn hubspot_tokens_are_destinations_with_a_secret_token_and_a_tls_endpoint() {
    const TOKEN: &str = "pat-eu1-TopSecretHubSpotToken";
    let s = with(&[
        ("HUBSPOT_TOKEN", TOKEN),
        ("HUBSPOT_TOKEN_EMEA", "pat-eu1-Other"),
        ("ROUTE_HUBSPOT", "action=PLT"),
    ])
    .expect("valid");
    let ids: Vec<String> = s.destinations.ids().map(|id| id.to_string()).collect();
    assert_eq!(ids, ["hubspot", "hubspot:emea"]);
    let account = &s.destinations.hubspot[0];
    assert_eq!(account.endpoint.as_str(), "https://api.hubapi.com/");
    assert_eq!(account.setting, "HUBSPOT_TOKEN");
    assert_eq!(account.token.expose_secret(), TOKEN);
    let shown = format!("{s:?}\n{}", s.destinations.summary_lines().join("\n"));
    assert!(!shown.contains(TOKEN), "{shown}");
    assert!(
        shown.contains("hubspot: HubSpot account at api.hubapi.com (token hidden)"),
        "{shown}"
    );
    assert!(shown.contains("route: hubspot takes"), "{shown}");

    let local = with(&[
        ("HUBSPOT_TOKEN", TOKEN),
        ("HUBSPOT_ENDPOINT", "http://127.0.0.1:9"),
    ])
    .expect("loopback may be plain http");
    assert_eq!(
        local.destinations.hubspot[0].endpoint.as_str(),
        "http://127.0.0.1:9/"
    );
    error_naming(
        "HUBSPOT_ENDPOINT",
        &[
            ("HUBSPOT_TOKEN", TOKEN),
            ("HUBSPOT_ENDPOINT", "http://api.hubapi.com"),
        ],
    );
    error_naming(
        "HUBSPOT_ENDPOINT",
        &[("HUBSPOT_ENDPOINT", "https://api.hubapi.com")],
    );
    let message = error_naming(
        "HUBSPOT_TOKEN_EMEA",
        &[("HUBSPOT_TOKEN_EMEA", "pat eu1 secret")],
    );
    assert!(!message.contains("secret"), "{message}");
    error_naming("HUBSPOT_TOKEN_E_1", &[("HUBSPOT_TOKEN_E_1", TOKEN)]);
    // HubSpot alone is a destination.
    let mut vars = base();
    vars.remove("OUTBOX_DIR");
    vars.insert("HUBSPOT_TOKEN".into(), TOKEN.into());
    assert!(Settings::from_map(&vars).is_ok());
}
