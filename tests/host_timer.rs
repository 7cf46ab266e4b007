//! The custom handler played the way the Azure Functions host plays it:
//! the built binary, real Azurite, real SMTP (MailDev), a mock Teams webhook.

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use common::faults::count;
use common::handler::Handler;
use common::servers::{
    maildev_messages, maildev_smtp_port, storage_connection, unique_recipient, unique_table,
};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

struct Setup {
    settings: HashMap<String, String>,
    recipient: String,
    outbox: tempfile::TempDir,
}

fn setup(teams: Option<&MockServer>) -> Setup {
    let recipient = unique_recipient("host");
    let outbox = tempfile::tempdir().expect("outbox dir");
    let mut settings = HashMap::from([
        ("LEADS_STORAGE_CONNECTION".to_owned(), storage_connection()),
        ("LEADS_TABLE".to_owned(), unique_table("leads")),
        ("LEADS_STATE_TABLE".to_owned(), unique_table("state")),
        ("LEADS_START_FROM".to_owned(), "beginning".to_owned()),
        ("SMTP_HOST".to_owned(), "127.0.0.1".to_owned()),
        ("SMTP_PORT".to_owned(), maildev_smtp_port().to_string()),
        ("SMTP_SECURITY".to_owned(), "none".to_owned()),
        (
            "EMAIL_FROM".to_owned(),
            "Lead alerts <leads@contoso.example>".to_owned(),
        ),
        ("EMAIL_TO".to_owned(), recipient.clone()),
        ("OUTBOX_DIR".to_owned(), outbox.path().display().to_string()),
    ]);
    if let Some(teams) = teams {
        settings.insert(
            "TEAMS_WEBHOOK_URL".to_owned(),
            format!(
                "{}/workflows/abc/triggers/manual/paths/invoke?sig=SECRETSIG",
                teams.uri()
            ),
        );
    }
    Setup {
        settings,
        recipient,
        outbox,
    }
}

/// `lead-notifier seed` with the same settings, as a user would run it.
fn seed(settings: &HashMap<String, String>, count: usize) {
    let status = Command::new(env!("CARGO_BIN_EXE_lead-notifier"))
        .args(["seed", "--count", &count.to_string()])
        .env_clear()
        .envs(settings)
        .status()
        .expect("run seed");
    assert!(status.success(), "seed failed");
}

#[tokio::test]
async fn timer_invocation_alerts_new_leads_once_per_channel() {
    let teams = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(202))
        .mount(&teams)
        .await;
    let s = setup(Some(&teams));
    seed(&s.settings, 12);
    let handler = Handler::start(&s.settings).await;

    let (status, body) = handler.invoke_timer().await;
    assert_eq!(status, 200, "first run: {body}");
    assert!(body["Outputs"].is_object(), "Outputs present: {body}");
    assert!(
        body["Logs"].as_array().is_some_and(|l| !l.is_empty()),
        "Logs: {body}"
    );
    assert_eq!(body["ReturnValue"]["rows_scanned"], 12, "{body}");
    // The seed's first three leads are a test lead, a .edu lead and a DNC lead.
    assert_eq!(count(&body, "skipped", "test_lead"), 1, "{body}");
    assert_eq!(count(&body, "skipped", "edu"), 1, "{body}");
    assert_eq!(count(&body, "skipped", "do_not_contact"), 1, "{body}");
    for channel in ["email", "teams", "outbox"] {
        assert_eq!(count(&body, "delivered", channel), 9, "{channel}: {body}");
    }
    assert!(
        body["ReturnValue"]["storage_requests"]
            .as_u64()
            .unwrap_or(0)
            > 0
    );
    assert_eq!(maildev_messages(&s.recipient).await.len(), 9);
    assert_eq!(teams.received_requests().await.unwrap_or_default().len(), 9);
    let eml = std::fs::read_dir(s.outbox.path())
        .expect("outbox exists")
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
        .count();
    assert_eq!(eml, 9, "one .eml per alerted lead");

    // The next run finds nothing new and sends nothing again.
    let (status, body) = handler.invoke_timer().await;
    assert_eq!(status, 200, "second run: {body}");
    for channel in ["email", "teams", "outbox"] {
        assert_eq!(count(&body, "delivered", channel), 0, "{channel}: {body}");
    }
    assert_eq!(maildev_messages(&s.recipient).await.len(), 9);
    assert_eq!(teams.received_requests().await.unwrap_or_default().len(), 9);

    // Nothing personal and no secret in what the handler printed.
    let printed = format!("{}{}", handler.stdout(), handler.stderr());
    for needle in [
        "Dvořák",
        "jane.doe@example.com",
        "555 0100",
        "SECRETSIG",
        "Eby8vdM02x",
    ] {
        assert!(
            !printed.contains(needle),
            "handler output contains {needle:?}"
        );
    }
}

#[tokio::test]
async fn undelivered_alerts_fail_the_invocation_with_the_reason_on_stderr() {
    let mut s = setup(None);
    // Nothing listens on this port: the mail server is down.
    let dead = common::servers::free_port();
    s.settings.insert("SMTP_PORT".into(), dead.to_string());
    s.settings.insert("RETRY_BUDGET".into(), "1s".into());
    seed(&s.settings, 4);
    let handler = Handler::start(&s.settings).await;

    let (status, body) = handler.invoke_timer().await;
    assert_eq!(status, 500, "{body}");
    let stderr = handler.stderr();
    assert!(
        stderr.contains("not delivered"),
        "stderr says why: {stderr}"
    );
    // The outbox is its own channel and still got its alert.
    assert_eq!(count(&body, "delivered", "outbox"), 1, "{body}");
}

#[tokio::test]
async fn hostile_invocations_get_4xx_and_the_handler_keeps_serving() {
    let s = setup(None);
    let mut handler = Handler::start(&s.settings).await;
    let http = reqwest::Client::new();

    let unknown = http
        .post(handler.url("/NoSuchFunction"))
        .body("{}")
        .send()
        .await
        .expect("answer");
    assert_eq!(unknown.status().as_u16(), 404);

    let garbage = http
        .post(handler.url("/LeadNotifier"))
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("answer");
    assert_eq!(garbage.status().as_u16(), 400);

    let wrong_shape = http
        .post(handler.url("/LeadNotifier"))
        .body("[1,2,3]")
        .send()
        .await
        .expect("answer");
    assert_eq!(wrong_shape.status().as_u16(), 400);

    let huge = vec![b'x'; 2 * 1024 * 1024];
    match http
        .post(handler.url("/LeadNotifier"))
        .body(huge)
        .send()
        .await
    {
        Ok(r) => assert_eq!(r.status().as_u16(), 413),
        Err(e) => assert!(
            e.is_request() || e.is_body(),
            "closed connection is fine: {e}"
        ),
    }

    // A fresh connection: the server may have closed the one the big body used.
    let ready = reqwest::Client::new()
        .get(handler.url("/"))
        .send()
        .await
        .expect("still serving");
    assert_eq!(ready.status().as_u16(), 200);
    assert!(handler.is_running());
    assert!(
        listens_on_loopback_only(handler.port),
        "bound to 127.0.0.1 only"
    );
    assert!(handler.terminate(), "SIGTERM ends the handler cleanly");
}

/// Reads the kernel's socket table: the handler's listening socket must be
/// bound to 127.0.0.1, not to every interface.
fn listens_on_loopback_only(port: u16) -> bool {
    let port_hex = format!(":{port:04X}");
    let mut found = false;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // local_address is column 1, state 0A is LISTEN.
            if cols.len() > 3 && cols[1].ends_with(&port_hex) && cols[3] == "0A" {
                if cols[1] != format!("0100007F{port_hex}") {
                    return false;
                }
                found = true;
            }
        }
    }
    found
}

#[tokio::test]
async fn no_subcommand_with_the_port_set_serves() {
    let port = common::servers::free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_lead-notifier"))
        .env_clear()
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env("OUTBOX_DIR", "/tmp")
        .env("LEADS_STORAGE_CONNECTION", "UseDevelopmentStorage=true")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start");
    let up = common::servers::wait_for_port(port, Duration::from_secs(20));
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        up,
        "listening on FUNCTIONS_CUSTOMHANDLER_PORT without a subcommand"
    );
}
