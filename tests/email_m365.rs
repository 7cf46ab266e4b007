//! Email from Microsoft 365 without passwords: Microsoft Graph `sendMail`
//! against a Graph stand-in, and SMTP AUTH XOAUTH2 against a scripted SMTP
//! server that checks the SASL string as Exchange Online does; in process
//! with a test token source, then end to end (the binary, the credential
//! layer, crash and race) with the Entra ID stand-ins.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::faults::{
    assert_handler_quiet, assert_no_leaks, claims_in_flight, doubled_cards, invoke_until_settled,
    lead_rows, ledger, shown_key, total, write_rows, Fixture, CUSTOMER_NEEDLES,
};
use common::graph::{Bearer, Graph, GraphReply};
use common::handler::{run_cli, timer_body, Handler};
use common::identity::{EntraStandIn, TestCert, APP_CLIENT_ID, TENANT};
use common::leads::{jane, lead};
use common::servers::{free_port, storage_connection};
use common::smtp_script::{Script, ScriptedSmtp, Xoauth2};
use lead_notifier::config::{GraphSettings, SmtpAuth, SmtpSecurity, SmtpSettings, OUTLOOK_SCOPE};
use lead_notifier::identity::{AccessToken, IdentityError, TokenFuture, TokenSource};
use lead_notifier::notify::email::body::{render_html, render_text, subject};
use lead_notifier::notify::email::graph::GraphNotifier;
use lead_notifier::notify::email::{message_id, EmailNotifier};
use lead_notifier::notify::{Alert, DestinationId, Notifier};
use lead_notifier::pipeline::Pipeline;
use serde_json::json;

const FROM: &str = "Lead alerts <leads@contoso.example>";
const TO: [&str; 2] = ["sales@contoso.example", "Doe, Jane <jane@contoso.example>"];

/// A credential whose token the test sets; records every scope asked for.
struct TestTokens {
    token: Mutex<Result<String, String>>,
    scopes: Mutex<Vec<String>>,
}

impl TestTokens {
    fn new(token: &str) -> Arc<TestTokens> {
        Arc::new(TestTokens {
            token: Mutex::new(Ok(token.to_owned())),
            scopes: Mutex::new(Vec::new()),
        })
    }

    /// What the credential layer hands out from now on (a refresh).
    fn set(&self, token: Result<&str, &str>) {
        *self.token.lock().unwrap() = token.map(str::to_owned).map_err(str::to_owned);
    }

    fn scopes(&self) -> Vec<String> {
        self.scopes.lock().unwrap().clone()
    }
}

impl TokenSource for TestTokens {
    fn token<'a>(&'a self, scope: &'a str) -> TokenFuture<'a> {
        self.scopes.lock().unwrap().push(scope.to_owned());
        let answer = self.token.lock().unwrap().clone();
        Box::pin(async move {
            answer
                .map(|token| AccessToken {
                    token: token.into(),
                    expires_on: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
                })
                .map_err(|reason| IdentityError { reason })
        })
    }

    fn describe(&self) -> String {
        "test credential (client id 0000-test)".to_owned()
    }
}

fn mailboxes() -> (lettre::message::Mailbox, Vec<lettre::message::Mailbox>) {
    let to = TO
        .iter()
        .map(|a| match a.split_once(" <") {
            Some((name, addr)) => format!("\"{name}\" <{addr}").parse().unwrap(),
            None => a.parse().unwrap(),
        })
        .collect();
    (FROM.parse().unwrap(), to)
}

fn graph_notifier(graph: &Graph, tokens: Arc<TestTokens>) -> GraphNotifier {
    let (from, to) = mailboxes();
    let settings = GraphSettings {
        endpoint: graph.endpoint().parse().unwrap(),
    };
    GraphNotifier::new(from, to, &settings, reqwest::Client::new(), tokens).unwrap()
}

// ---------------------------------------------------------------- Graph

#[tokio::test]
async fn graph_gets_the_same_email_smtp_would_send_one_request_per_alert() {
    let graph = Graph::start("graph-token-1", &[]).await;
    let tokens = TestTokens::new("graph-token-1");
    let notifier = graph_notifier(&graph, tokens.clone());
    assert_eq!(notifier.channel(), DestinationId::EMAIL, "same ledger keys");
    let mut hostile = lead(
        "m365-1",
        json!({"FirstName": "Zoë", "LastName": "Łukasiewicz-王", "Email": "zoe@acme.example",
               "Company": "<script>alert(1)</script> & Söhne\r\nBcc: victim@example.com"}),
        "Contoso CRM Suite",
    );
    hostile.description = Some("<b>bold?</b>\nsecond line".into());
    let alert = Alert::Lead(&hostile);

    notifier.send(alert).await.unwrap();

    let posts = graph.posts();
    assert_eq!(posts.len(), 1, "one request per alert");
    let post = &posts[0];
    assert_eq!(post.path, "/v1.0/users/leads@contoso.example/sendMail");
    assert_eq!(post.authorization.as_deref(), Some("Bearer graph-token-1"));
    assert_eq!(post.content_type.as_deref(), Some("text/plain"));
    assert_eq!(
        tokens.scopes(),
        [format!("{}/.default", graph.endpoint())],
        "token for {{GRAPH_ENDPOINT}}/.default"
    );
    let message = post.parsed();
    assert_eq!(message.subject(), Some(subject(alert).as_str()));
    let expected_id = message_id(alert, &DestinationId::EMAIL);
    assert_eq!(
        message.message_id().map(|id| format!("<{id}>")),
        Some(expected_id),
        "the SMTP transport's Message-ID"
    );
    let text = message.body_text(0).unwrap();
    assert_eq!(
        text.replace("\r\n", "\n"),
        render_text(alert).replace("\r\n", "\n")
    );
    let html = message.body_html(0).unwrap();
    assert_eq!(
        html.replace("\r\n", "\n"),
        render_html(alert).replace("\r\n", "\n")
    );
    assert!(html.contains("&lt;script&gt;"), "escaped: {html}");
    let to: Vec<&str> = message
        .to()
        .unwrap()
        .iter()
        .filter_map(|a| a.address())
        .collect();
    assert_eq!(to, ["sales@contoso.example", "jane@contoso.example"]);
    assert!(message.bcc().is_none(), "no header injected");
    assert_eq!(
        message.header_raw("Auto-Submitted").map(str::trim),
        Some("auto-generated")
    );

    // A digest is one request too, with every lead and its own Message-ID.
    let leads = [jane(), hostile.clone()];
    let refs: Vec<_> = leads.iter().collect();
    let digest = Alert::Digest {
        leads: &refs,
        total: 2,
    };
    notifier.send(digest).await.unwrap();
    let posts = graph.posts();
    assert_eq!(posts.len(), 2, "one request per digest");
    let keys = posts[1].lead_keys();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_eq!(
        posts[1].parsed().message_id().map(|id| format!("<{id}>")),
        Some(message_id(digest, &DestinationId::EMAIL))
    );
    assert_eq!(notifier.max_digest_leads(), 500);
}

#[tokio::test]
async fn graph_refusals_are_classified_with_the_fix() {
    let cases: [(GraphReply, bool, &str); 6] = [
        (GraphReply::error(429, "TooManyRequests"), true, "429"),
        (GraphReply::error(503, "ServiceNotAvailable"), true, "503"),
        (GraphReply::error(504, "GatewayTimeout"), true, "504"),
        (
            GraphReply::error(403, "ErrorAccessDenied"),
            false,
            "Mail.Send",
        ),
        (
            GraphReply::error(404, "ErrorInvalidUser"),
            false,
            "EMAIL_FROM mailbox does not exist",
        ),
        (
            GraphReply::error(400, "ErrorMimeContentInvalid"),
            false,
            "ErrorMimeContentInvalid",
        ),
    ];
    for (reply, retryable, needle) in cases {
        let graph = Graph::start("tok", &[reply]).await;
        let err = graph_notifier(&graph, TestTokens::new("tok"))
            .send(Alert::Lead(&jane()))
            .await
            .unwrap_err();
        assert_eq!(err.is_retryable(), retryable, "{reply:?}: {err}");
        assert!(err.reason().contains(needle), "{reply:?}: {err}");
        assert!(!err.reason().contains("tok"), "token in {err}");
        assert!(
            !err.reason().contains("injected"),
            "Graph's message kept: {err}"
        );
    }

    // A wrong token: Graph's own 401, permanent, with the permission fix.
    let graph = Graph::start("right-token", &[]).await;
    let err = graph_notifier(&graph, TestTokens::new("stale-token"))
        .send(Alert::Lead(&jane()))
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    assert!(err.reason().contains("InvalidAuthenticationToken"), "{err}");
    assert!(err.reason().contains("RBAC for Applications"), "{err}");
    assert!(!err.reason().contains("stale-token"), "{err}");

    // Graph unreachable: retryable, and the URL (the mailbox) not quoted.
    let gone = GraphSettings {
        endpoint: format!("http://127.0.0.1:{}", free_port()).parse().unwrap(),
    };
    let (from, to) = mailboxes();
    let notifier = GraphNotifier::new(
        from,
        to,
        &gone,
        reqwest::Client::new(),
        TestTokens::new("tok"),
    )
    .unwrap();
    let err = notifier.send(Alert::Lead(&jane())).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(!err.reason().contains("leads@contoso"), "{err}");

    // No token: retryable (the identity endpoint may be back soon), named.
    let graph = Graph::start("tok", &[]).await;
    let tokens = TestTokens::new("tok");
    tokens.set(Err("the managed identity endpoint did not answer"));
    let err = graph_notifier(&graph, tokens)
        .send(Alert::Lead(&jane()))
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(err.reason().contains("test credential"), "{err}");
    assert!(graph.posts().is_empty(), "nothing sent without a token");
}

#[tokio::test]
async fn graph_check_gets_a_token_without_sending() {
    let graph = Graph::start("tok", &[]).await;
    let tokens = TestTokens::new("tok");
    let notifier = graph_notifier(&graph, tokens.clone());
    notifier.check().await.unwrap();
    assert!(graph.posts().is_empty(), "check sent nothing");
    assert_eq!(tokens.scopes().len(), 1);
    let how = notifier.credential().unwrap();
    assert!(how.contains("Microsoft Graph"), "{how}");
    assert!(how.contains("/.default"), "{how}");
    assert!(how.contains("test credential"), "{how}");

    tokens.set(Err("AZURE_CLIENT_SECRET was refused"));
    let err = notifier.check().await.unwrap_err();
    assert!(err.reason().contains("AZURE_CLIENT_SECRET"), "{err}");
}

/// A pipeline with only the Graph email channel, on fresh tables.
fn graph_pipeline(f: &Fixture, notifier: GraphNotifier) -> Pipeline {
    Pipeline::new(Arc::new(f.parsed()), vec![Arc::new(notifier)])
}

#[tokio::test]
async fn graph_429_with_retry_after_then_202_gives_one_email() {
    let graph = Graph::start(
        "tok",
        &[GraphReply {
            status: 429,
            retry_after: Some("1"),
            code: Some("ApplicationThrottled"),
        }],
    )
    .await;
    let mut f = Fixture::new(&storage_connection());
    f.set("RETRY_BUDGET", "10s");
    let rows = lead_rows("graph429", 1);
    write_rows(&f, &rows).await;
    let pipeline = graph_pipeline(&f, graph_notifier(&graph, TestTokens::new("tok")));

    let summary = pipeline.run_once().await.unwrap();

    assert_eq!(
        summary.delivered.get(&DestinationId::EMAIL),
        Some(&1),
        "{summary:?}"
    );
    assert!(summary.all_delivered(), "{summary:?}");
    let posts = graph.posts();
    let statuses: Vec<u16> = posts.iter().map(|p| p.status).collect();
    assert_eq!(statuses, [429, 202]);
    let waited = posts[1].at.duration_since(posts[0].at);
    assert!(
        waited >= Duration::from_secs(1),
        "Retry-After honoured: {waited:?}"
    );
    let id = |i: usize| posts[i].parsed().message_id().map(str::to_owned);
    assert_eq!(id(0), id(1), "the same email retried");
    assert_eq!(
        graph.emails_per_lead().get(&shown_key(&rows[0])),
        Some(&1),
        "one email accepted"
    );
    let again = pipeline.run_once().await.unwrap();
    assert_eq!(again.delivered.get(&DestinationId::EMAIL), Some(&0));
    assert_eq!(graph.posts().len(), 2, "a later run sends nothing again");
}

#[tokio::test]
async fn graph_403_and_404_fail_for_good_with_the_hint_and_are_not_retried() {
    for (reply, hint) in [
        (GraphReply::error(403, "ErrorAccessDenied"), "Mail.Send"),
        (
            GraphReply::error(404, "ErrorInvalidUser"),
            "EMAIL_FROM mailbox does not exist",
        ),
    ] {
        let graph = Graph::start("tok", &[reply]).await;
        let f = Fixture::new(&storage_connection());
        let rows = lead_rows(&format!("graph{}", reply.status), 1);
        write_rows(&f, &rows).await;
        let pipeline = graph_pipeline(&f, graph_notifier(&graph, TestTokens::new("tok")));

        let summary = pipeline.run_once().await.unwrap();
        assert_eq!(summary.failed, 1, "{summary:?}");
        assert!(
            summary.problems.iter().any(|p| p.contains(hint)),
            "{summary:?}"
        );
        let again = pipeline.run_once().await.unwrap();
        assert_eq!(again.failed + again.pending, 0, "{again:?}");
        assert_eq!(graph.posts().len(), 1, "{}: not retried", reply.status);
        let records = ledger(&f).await;
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].status, "failed");
        assert!(records[0].last_error.contains(hint), "{:?}", records[0]);
    }
}

// ---------------------------------------------------------------- XOAUTH2

fn oauth2_smtp(port: u16) -> SmtpSettings {
    SmtpSettings {
        host: "127.0.0.1".into(),
        port,
        security: SmtpSecurity::None,
        auth: SmtpAuth::OAuth2 {
            username: "leads@contoso.example".into(),
        },
    }
}

fn xoauth2_server_script(token: &str) -> Script {
    Script {
        xoauth2: Some(Xoauth2 {
            user: "leads@contoso.example".into(),
            token: Bearer::Exact(token.into()),
        }),
        ..Script::default()
    }
}

/// lettre parks a used connection back in its pool on a spawned task: give
/// it the moment, so the next send could reuse it.
async fn pooled() {
    tokio::time::sleep(Duration::from_millis(200)).await;
}

fn oauth2_notifier(port: u16, tokens: Arc<TestTokens>) -> EmailNotifier {
    let (from, to) = mailboxes();
    EmailNotifier::new(from, to, &oauth2_smtp(port), Some(tokens)).unwrap()
}

#[tokio::test]
async fn xoauth2_sends_the_sasl_string_with_the_credential_token() {
    let server = ScriptedSmtp::start(xoauth2_server_script("smtp-token-A")).await;
    let tokens = TestTokens::new("smtp-token-A");
    let notifier = oauth2_notifier(server.port, tokens.clone());

    notifier.send(Alert::Lead(&jane())).await.unwrap();
    pooled().await;
    notifier.send(Alert::Lead(&jane())).await.unwrap();

    assert_eq!(
        server.sasl(),
        ["user=leads@contoso.example\x01auth=Bearer smtp-token-A\x01\x01"],
        "one login, on one pooled connection"
    );
    assert_eq!(server.connections(), 1);
    assert_eq!(server.accepted().len(), 2);
    assert!(tokens.scopes().iter().all(|s| s == OUTLOOK_SCOPE));
    assert_eq!(OUTLOOK_SCOPE, "https://outlook.office365.com/.default");
}

#[tokio::test]
async fn xoauth2_with_a_wrong_token_is_refused_with_the_exchange_fix() {
    let server = ScriptedSmtp::start(xoauth2_server_script("right-token")).await;
    let err = oauth2_notifier(server.port, TestTokens::new("wrong-token"))
        .send(Alert::Lead(&jane()))
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    assert!(err.reason().contains("SMTP.SendAsApp"), "{err}");
    assert!(err.reason().contains("535"), "{err}");
    assert!(!err.reason().contains("wrong-token"), "token in {err}");
    assert!(server.accepted().is_empty());
    assert_eq!(
        server.sasl(),
        ["user=leads@contoso.example\x01auth=Bearer wrong-token\x01\x01"]
    );
}

/// An OAuth 2.0 login refusal names the AUTH step and the mailbox's and
/// app's settings, never the sender or recipients.
fn assert_oauth2_login_problem(reason: &str) {
    assert!(reason.contains("SMTP AUTH: "), "{reason}");
    assert!(
        reason.contains("SMTP AUTH is turned on for the SMTP_USERNAME mailbox"),
        "{reason}"
    );
    assert!(reason.contains("SMTP.SendAsApp"), "{reason}");
    assert!(
        !reason.contains("EMAIL_FROM") && !reason.contains("EMAIL_TO"),
        "{reason}"
    );
}

#[tokio::test]
async fn xoauth2_refused_by_a_relay_with_a_short_command_limit_is_a_login_problem() {
    let token = "t".repeat(1_200);
    let server = ScriptedSmtp::start(Script {
        max_line: Some(512),
        ..xoauth2_server_script(&token)
    })
    .await;
    let notifier = oauth2_notifier(server.port, TestTokens::new(&token));
    for err in [
        notifier.send(Alert::Lead(&jane())).await.unwrap_err(),
        notifier.check().await.unwrap_err(),
    ] {
        assert!(!err.is_retryable(), "{err}");
        assert_oauth2_login_problem(err.reason());
        assert!(err.reason().contains("Command line too long"), "{err}");
        assert!(
            err.reason().contains("XOAUTH2 login command itself"),
            "{err}"
        );
        assert!(!err.reason().contains("tttttttt"), "token in {err}");
    }
    assert!(server.accepted().is_empty());
    assert!(!server.commands().iter().any(|c| c.starts_with("MAIL")));

    // Exchange's 535 for a token it does not take: the same step and fix.
    let server = ScriptedSmtp::start(xoauth2_server_script("right-token")).await;
    let err = oauth2_notifier(server.port, TestTokens::new("wrong-token"))
        .check()
        .await
        .unwrap_err();
    assert_oauth2_login_problem(err.reason());
    assert!(err.reason().contains("535"), "{err}");
}

#[tokio::test]
async fn xoauth2_logs_in_again_when_the_token_is_refreshed() {
    let server = ScriptedSmtp::start(xoauth2_server_script("token-1")).await;
    let tokens = TestTokens::new("token-1");
    let notifier = oauth2_notifier(server.port, tokens.clone());
    notifier.send(Alert::Lead(&jane())).await.unwrap();
    pooled().await;

    // The credential layer refreshed; the server now takes only the new one.
    tokens.set(Ok("token-2"));
    server.set_script(xoauth2_server_script("token-2"));
    notifier.send(Alert::Lead(&jane())).await.unwrap();

    assert_eq!(
        server.sasl(),
        [
            "user=leads@contoso.example\x01auth=Bearer token-1\x01\x01",
            "user=leads@contoso.example\x01auth=Bearer token-2\x01\x01",
        ]
    );
    assert_eq!(
        server.connections(),
        2,
        "the connection logged in with the old token was not reused"
    );
    assert_eq!(server.accepted().len(), 2);

    let how = notifier.credential().unwrap();
    assert!(
        how.contains("XOAUTH2") && how.contains(OUTLOOK_SCOPE),
        "{how}"
    );
    notifier.check().await.unwrap();
}

#[tokio::test]
async fn basic_auth_turned_off_by_exchange_points_to_oauth2_and_graph() {
    let server = ScriptedSmtp::start(Script {
        auth: Some(
            "535 5.7.139 Authentication unsuccessful, basic authentication is disabled".into(),
        ),
        ..Script::default()
    })
    .await;
    let err = oauth2_notifier(server.port, TestTokens::new("t"))
        .send(Alert::Lead(&jane()))
        .await
        .unwrap_err();
    // The server offers no XOAUTH2: the hint names it rather than a password.
    assert!(err.reason().contains("XOAUTH2"), "{err}");

    let server = ScriptedSmtp::start(Script {
        auth: Some("550 5.7.30 Basic authentication is not supported for Client Submission".into()),
        ..Script::default()
    })
    .await;
    let password = SmtpSettings {
        auth: SmtpAuth::Password {
            username: "leads@contoso.example".into(),
            password: "pw-secret".to_string().into(),
        },
        ..oauth2_smtp(server.port)
    };
    let (from, to) = mailboxes();
    let err = EmailNotifier::new(from, to, &password, None)
        .unwrap()
        .send(Alert::Lead(&jane()))
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    assert!(
        err.reason().contains("SMTP_AUTH=oauth2") && err.reason().contains("EMAIL_VIA=graph"),
        "{err}"
    );
}

// ---------------------------------------------------------------- end to end
//
// The real binary, with tokens from the credential layer: the App Service
// managed identity endpoint or an app registration at Entra ID's token
// endpoint, both played by the stand-ins of tests/common/identity.rs.

/// Settings for the binary: fresh tables, email only, through this Graph
/// with the App Service managed identity.
fn graph_fixture(graph: &Graph, entra: &EntraStandIn) -> Fixture {
    let mut f = Fixture::new(&storage_connection());
    f.without("OUTBOX_DIR")
        .set("EMAIL_VIA", "graph")
        .set("GRAPH_ENDPOINT", graph.endpoint())
        .set("EMAIL_FROM", FROM)
        .set("EMAIL_TO", TO[0])
        .set("IDENTITY_ENDPOINT", &entra.identity_endpoint)
        .set("IDENTITY_HEADER", &entra.identity_header);
    f.secrets.push(entra.identity_header.clone());
    f
}

/// Every secret and token the run could have printed.
fn needles(f: &Fixture, entra: &EntraStandIn) -> Vec<String> {
    let mut needles = f.secrets.clone();
    needles.push(entra.client_secret.clone());
    needles.extend(entra.issued_tokens());
    needles
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_check_gets_a_managed_identity_token_and_test_alert_sends_one_email() {
    let cert = TestCert::new();
    let entra = EntraStandIn::start(&cert);
    let graph = Graph::start_for_entra(&[]).await;
    let mut f = graph_fixture(&graph, &entra);
    f.set("EMAIL_TO_EMEA", "emea@contoso.example");
    write_rows(&f, &lead_rows("m365check", 1)).await;

    let (code, out) = run_cli(&f.settings, &["check"]).await;
    assert_eq!(code, Some(0), "{out}");
    let endpoint = graph.endpoint();
    assert!(
        out.contains(&format!("email: Microsoft Graph sendMail at {endpoint}, from leads@contoso.example, 1 recipient, token from managed identity (system-assigned)")),
        "{out}"
    );
    assert!(
        out.contains(&format!("email: reached; Microsoft Graph sendMail, token for {endpoint}/.default from managed identity (system-assigned): token obtained")),
        "{out}"
    );
    assert!(
        out.contains("email:emea: reached; Microsoft Graph"),
        "{out}"
    );
    assert!(graph.posts().is_empty(), "check sends nothing");
    assert_eq!(
        entra.requests_for(&endpoint),
        1,
        "one token for Graph, shared by both destinations"
    );

    let (code, out) = run_cli(&f.settings, &["test-alert"]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("email: sample lead sent"), "{out}");
    assert!(out.contains("email:emea: sample lead sent"), "{out}");
    let posts = graph.posts();
    assert_eq!(posts.len(), 2, "one real email per destination");
    assert!(
        posts.iter().all(|p| p.accepted()),
        "the identity's token was accepted"
    );
    let mut recipients: Vec<String> = posts
        .iter()
        .flat_map(|p| {
            let message = p.parsed();
            let to: Vec<String> = message
                .to()
                .into_iter()
                .flat_map(|a| a.iter())
                .filter_map(|a| a.address().map(str::to_owned))
                .collect();
            to
        })
        .collect();
    recipients.sort();
    assert_eq!(
        recipients,
        ["emea@contoso.example", "sales@contoso.example"]
    );
    assert_eq!(posts[0].path, "/v1.0/users/leads@contoso.example/sendMail");
    let subject = posts[0].parsed().subject().map(str::to_owned);
    assert!(
        subject
            .as_deref()
            .is_some_and(|s| s.contains("Sample Lead")),
        "{subject:?}"
    );
    assert_no_leaks("lead-notifier output", &out, &needles(&f, &entra));
}

/// Settings for the binary: fresh tables, email only, over SMTP on
/// 127.0.0.1:`port` with XOAUTH2 and an app registration's tokens.
fn xoauth2_app_fixture(port: u16, entra: &EntraStandIn, cert: &TestCert) -> Fixture {
    let mut f = Fixture::new(&storage_connection());
    f.without("OUTBOX_DIR")
        .smtp(port, TO[0])
        .set("SMTP_AUTH", "oauth2")
        .set("SMTP_USERNAME", "leads@contoso.example")
        .set("AZURE_TENANT_ID", TENANT)
        .set("AZURE_CLIENT_ID", APP_CLIENT_ID)
        .set("AZURE_CLIENT_SECRET", &entra.client_secret)
        .set("AZURE_AUTHORITY_HOST", &entra.authority_host)
        .set("SSL_CERT_FILE", cert.cert_path.display().to_string());
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xoauth2_with_an_app_registration_end_to_end() {
    let cert = TestCert::new();
    let entra = EntraStandIn::start(&cert);
    let server = ScriptedSmtp::start(Script {
        xoauth2: Some(Xoauth2 {
            user: "leads@contoso.example".into(),
            token: Bearer::Audience("https://outlook.office365.com".into()),
        }),
        ..Script::default()
    })
    .await;
    let f = xoauth2_app_fixture(server.port, &entra, &cert);
    write_rows(&f, &lead_rows("m365smtp", 1)).await;

    let (code, out) = run_cli(&f.settings, &["check"]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!(
            "email: reached; SMTP AUTH XOAUTH2, token for {OUTLOOK_SCOPE} from app registration (client id {APP_CLIENT_ID}"
        )),
        "{out}"
    );
    assert!(server.accepted().is_empty(), "check sends nothing");

    let (code, out) = run_cli(&f.settings, &["test-alert"]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("email: sample lead sent"), "{out}");
    assert_eq!(server.accepted().len(), 1);
    let sasl = server.sasl();
    assert_eq!(sasl.len(), 2, "one login by check, one by test-alert");
    let token = sasl[1]
        .strip_prefix("user=leads@contoso.example\x01auth=Bearer ")
        .and_then(|rest| rest.strip_suffix("\x01\x01"))
        .expect("the XOAUTH2 SASL string");
    assert!(entra.issued_tokens().iter().any(|t| t == token));
    let requests = entra.requests();
    assert!(
        requests
            .iter()
            .all(|r| r.endpoint == "entra" && r.client_id.as_deref() == Some(APP_CLIENT_ID)),
        "{requests:?}"
    );
    assert_no_leaks("lead-notifier output", &out, &needles(&f, &entra));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_and_test_alert_report_a_refused_smtp_login_as_the_auth_step() {
    // XOAUTH2 with an app registration's token, through a relay whose
    // command limit is shorter than the AUTH line.
    let cert = TestCert::new();
    let entra = EntraStandIn::start(&cert);
    let relay = ScriptedSmtp::start(Script {
        max_line: Some(200),
        ..xoauth2_server_script("never-reached")
    })
    .await;
    let f = xoauth2_app_fixture(relay.port, &entra, &cert);
    // A password refused with 535.
    let refusing = ScriptedSmtp::start(Script {
        auth: Some("535 5.7.8 Authentication credentials invalid".into()),
        ..Script::default()
    })
    .await;
    let mut p = Fixture::new(&storage_connection());
    p.without("OUTBOX_DIR")
        .smtp(refusing.port, TO[0])
        .smtp_login();

    for (settings, needles) in [
        (&f.settings, needles(&f, &entra)),
        (&p.settings, p.secrets.clone()),
    ] {
        for command in ["check", "test-alert"] {
            let (code, out) = run_cli(settings, &[command]).await;
            assert_ne!(code, Some(0), "{command}: {out}");
            let line = out
                .lines()
                .find(|l| l.contains("email: FAILED") || l.contains("email:") && l.contains("SMTP"))
                .unwrap_or_else(|| panic!("{command}: no email line in {out}"));
            assert!(line.contains("SMTP AUTH: "), "{command}: {line}");
            assert!(
                !line.contains("EMAIL_FROM") && !line.contains("EMAIL_TO"),
                "{command}: {line}"
            );
            assert_no_leaks("lead-notifier output", &out, &needles);
        }
    }
    let (_, out) = run_cli(&f.settings, &["check"]).await;
    assert_oauth2_login_problem(&out);
    assert!(out.contains("Command line too long"), "{out}");
    let (_, out) = run_cli(&p.settings, &["test-alert"]).await;
    assert!(
        out.contains("check SMTP_USERNAME and SMTP_PASSWORD"),
        "{out}"
    );
    assert!(out.contains("535"), "{out}");
    assert!(relay.accepted().is_empty() && refusing.accepted().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_sigkill_mid_backlog_then_restart_delivers_every_lead() {
    const LEADS: usize = 300;
    let cert = TestCert::new();
    let entra = EntraStandIn::start(&cert);
    let graph = Graph::start_for_entra(&[]).await;
    let mut f = graph_fixture(&graph, &entra);
    f.set("DIGEST_AFTER", "5000").set("CLAIM_LEASE", "2s");
    let rows = lead_rows("m365kill", LEADS);
    write_rows(&f, &rows).await;
    let mut first = Handler::start(&f.settings).await;

    let run = reqwest::Client::new()
        .post(first.url("/LeadNotifier"))
        .json(&timer_body())
        .send();
    let pid = first.pid().to_string();
    let crash = async {
        while graph.posts().len() < 60 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let killed = std::process::Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .expect("kill runs");
        assert!(killed.success());
    };
    let (answer, ()) = tokio::join!(run, crash);
    assert!(answer.is_err(), "the killed run never answered: {answer:?}");
    first.kill();
    let sent_before = graph.posts().len();
    assert!(sent_before < LEADS, "killed mid-way ({sent_before} emails)");
    let in_flight = claims_in_flight(&f, "email").await;

    let second = Handler::start(&f.settings).await;
    let answers = invoke_until_settled(&second, 10).await;

    let emails = graph.emails_per_lead();
    let doubled = doubled_cards(&rows, &emails, &in_flight);
    assert_eq!(emails.len(), LEADS, "emails only for the backlog's leads");
    assert!(doubled <= 1, "{doubled} emails doubled by one crash");
    eprintln!(
        "Graph SIGKILL: {sent_before} emails before, {} claims in flight, {doubled} doubled",
        in_flight.len()
    );
    let bodies: Vec<_> = answers.iter().map(|(_, b)| b).collect();
    let mut secrets = f.secrets.clone();
    secrets.extend(entra.issued_tokens());
    assert_no_leaks("first handler", &first.stderr(), &secrets);
    assert_handler_quiet(&second, &f, &bodies, &CUSTOMER_NEEDLES);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_two_handlers_invoked_at_once_send_each_lead_exactly_once() {
    const LEADS: usize = 60;
    let cert = TestCert::new();
    let entra = EntraStandIn::start(&cert);
    let graph = Graph::start_for_entra(&[]).await;
    let f = graph_fixture(&graph, &entra);
    let rows = lead_rows("m365race", LEADS);
    write_rows(&f, &rows).await;
    let a = Handler::start(&f.settings).await;
    let b = Handler::start(&f.settings).await;

    let ((status_a, body_a), (status_b, body_b)) = tokio::join!(a.invoke_timer(), b.invoke_timer());
    assert!(status_a == 200 || status_a == 500, "{body_a}");
    assert!(status_b == 200 || status_b == 500, "{body_b}");
    let mut answers = vec![(status_a, body_a), (status_b, body_b)];
    answers.extend(invoke_until_settled(&a, 5).await);

    assert_eq!(
        total(&answers, "delivered", "email"),
        LEADS as u64,
        "{answers:?}"
    );
    let emails = graph.emails_per_lead();
    for row in &rows {
        assert_eq!(emails.get(&shown_key(row)), Some(&1), "{}", shown_key(row));
    }
    assert_eq!(graph.posts().len(), LEADS, "no request repeated");
    // A process that sent asked its identity endpoint once and cached the
    // token (one that found every lead busy asked for none).
    let asked = entra.requests_for(&graph.endpoint());
    assert!((1..=2).contains(&asked), "{asked} token requests");
    let bodies: Vec<_> = answers.iter().map(|(_, b)| b).collect();
    let mut f_secrets = f.secrets.clone();
    f_secrets.extend(entra.issued_tokens());
    for handler in [&a, &b] {
        assert_no_leaks("handler stdout", &handler.stdout(), &f_secrets);
        assert_no_leaks("handler stderr", &handler.stderr(), &f_secrets);
    }
    assert_handler_quiet(&a, &f, &bodies, &CUSTOMER_NEEDLES);
}

/// One digest run of `n` fresh leads through Graph answering `replies`
/// first; every alert delivered. Answers the stand-in and the rows.
async fn graph_digest_run(
    rows: Vec<lead_notifier::lead::LeadRow>,
    replies: &[GraphReply],
) -> (Graph, Vec<lead_notifier::lead::LeadRow>) {
    let graph = Graph::start("tok", replies).await;
    let mut f = Fixture::new(&storage_connection());
    f.set("DIGEST_AFTER", "2");
    write_rows(&f, &rows).await;
    let pipeline = graph_pipeline(&f, graph_notifier(&graph, TestTokens::new("tok")));
    let summary = pipeline.run_once().await.unwrap();
    assert!(summary.all_delivered(), "{summary:?}");
    (graph, rows)
}

/// Graph takes at most 4 MB a request. A 500-lead digest of leads with
/// long descriptions is larger than that as Graph takes it, so it goes as
/// halves; a 413 from Graph splits a digest the same way. Every lead is
/// emailed exactly once either way.
#[tokio::test]
async fn graph_digests_too_large_for_one_request_go_as_halves() {
    let (graph, rows) = graph_digest_run(
        lead_rows("graphbig", 12),
        &[GraphReply::error(413, "RequestBodyTooLarge")],
    )
    .await;
    let statuses: Vec<u16> = graph.posts().iter().map(|p| p.status).collect();
    assert_eq!(
        statuses,
        [413, 202, 202],
        "the refused digest, then its halves"
    );
    let counts = graph.emails_per_lead();
    for row in &rows {
        assert_eq!(counts.get(&shown_key(row)), Some(&1), "{counts:?}");
    }

    let mut rows = lead_rows("graphhuge", 600);
    for row in &mut rows {
        // About 8 KB a lead, twice in the message (text and HTML).
        row.description = Some("Forty seats, single sign-on, a pilot in Q1.\n".repeat(180));
    }
    let (graph, _) = graph_digest_run(rows, &[]).await;
    let posts = graph.posts();
    assert!(posts.len() >= 3, "500 leads did not fit one request");
    for post in &posts {
        assert!(post.accepted());
        // What Graph received: the base64 of the MIME message.
        assert!(post.mime.len().div_ceil(3) * 4 <= 4 * 1024 * 1024);
    }
    let counts = graph.emails_per_lead();
    assert_eq!(counts.len(), 600);
    assert!(counts.values().all(|&n| n == 1), "each lead once");
}
