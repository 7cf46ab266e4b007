//! The HTML report, the Monday summary and lead-flow health, through the
//! real binary against Azurite (and MailDev where email is sent).
//!
//! "Now" for the summary schedule, the health check and `report` is moved
//! with `LEAD_NOTIFIER_TEST_NOW`, which only debug builds (this binary)
//! read; lead rows get Azurite's own `Timestamp`, so tests stand "now" where
//! they need it relative to the rows they wrote.

mod common;
#[path = "pipeline_support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};

use common::servers::{storage_connection, unique_table};
use serde_json::Value;

fn lead_notifier(settings: &HashMap<String, String>, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lead-notifier"))
        .args(args)
        .env_clear()
        .envs(settings)
        .output()
        .expect("run lead-notifier")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn settings(outbox: &Path) -> HashMap<String, String> {
    HashMap::from([
        ("LEADS_STORAGE_CONNECTION".to_owned(), storage_connection()),
        ("LEADS_TABLE".to_owned(), unique_table("sumleads")),
        ("LEADS_STATE_TABLE".to_owned(), unique_table("sumstate")),
        ("LEADS_START_FROM".to_owned(), "beginning".to_owned()),
        ("OUTBOX_DIR".to_owned(), outbox.display().to_string()),
    ])
}

/// What maud makes of text.
fn escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Every offer's name and its figures, as `report --format json` has them,
/// are in `html` as one table row each.
fn assert_every_offer_and_figure(html: &str, json: &Value) {
    let rows = json["rows"].as_array().expect("rows");
    assert!(!rows.is_empty(), "{json}");
    for row in rows {
        let skipped: u64 = row["skipped"]
            .as_object()
            .map(|m| m.values().filter_map(Value::as_u64).sum())
            .unwrap_or(0);
        let cells = format!(
            "<td>{}</td><td class=\"id\">{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>",
            escaped(row["offer"].as_str().unwrap()),
            escaped(row["offer_id"].as_str().unwrap()),
            escaped(row["action"].as_str().unwrap()),
            row["leads"],
            row["alerted"],
            skipped,
            row["customers"],
        );
        assert!(html.contains(&cells), "{cells} missing from\n{html}");
    }
    let total = &json["total"];
    assert!(
        html.contains(&format!(
            "{} lead(s), {} alerted",
            total["leads"], total["alerted"]
        )),
        "{html}"
    );
}

/// A page that loads nothing from anywhere and runs nothing.
fn assert_self_contained(html: &str) {
    for forbidden in [
        "<script", "http://", "https://", "<img", "<link", "url(", "<iframe",
    ] {
        assert!(!html.contains(forbidden), "{forbidden} in\n{html}");
    }
    assert_nothing_personal(html);
}

/// No customer name, address or phone: no `x@y` and none of the seed's
/// customers.
fn assert_nothing_personal(text: &str) {
    let lower = text.to_lowercase();
    let bytes = lower.as_bytes();
    let address = bytes
        .windows(3)
        .any(|w| w[1] == b'@' && w[0].is_ascii_alphanumeric() && w[2].is_ascii_alphanumeric());
    assert!(!address, "an email address in\n{text}");
    // The seed's customers as written (a lowercase "doe" is in "does").
    for personal in [
        "Jane", "Doe", "Stanford", "Kenji", "Acme", "Tailspin", "+1 425",
    ] {
        assert!(!text.contains(personal), "{personal} in\n{text}");
    }
}

#[test]
fn report_html_is_one_self_contained_page_with_every_offer_and_figure() {
    let outbox = tempfile::tempdir().expect("outbox");
    let s = settings(outbox.path());
    assert!(lead_notifier(&s, &["seed", "--count", "12"])
        .status
        .success());
    lead_notifier(&s, &["poll"]);

    let json_out = lead_notifier(&s, &["report", "--since", "1h", "--format", "json"]);
    let json: Value = serde_json::from_slice(&json_out.stdout).expect("json report");
    let dir = tempfile::tempdir().expect("dir");
    let page = dir.path().join("report.html");
    let out = lead_notifier(
        &s,
        &[
            "report",
            "--since",
            "1h",
            "--format",
            "html",
            "--output",
            page.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        out.stdout.is_empty(),
        "--output prints nothing: {}",
        text(&out)
    );
    let html = std::fs::read_to_string(&page).expect("the page was written");
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(html.contains("<svg"), "{html}");
    assert!(
        html.contains("Partner Center connection validated on"),
        "{html}"
    );
    assert_every_offer_and_figure(&html, &json);
    assert_self_contained(&html);

    // --output works for every format: the file holds what stdout would.
    let csv_file = dir.path().join("report.csv");
    let csv_out = lead_notifier(
        &s,
        &[
            "report",
            "--since",
            "1h",
            "--format",
            "csv",
            "--output",
            csv_file.to_str().unwrap(),
        ],
    );
    assert!(csv_out.status.success(), "{}", text(&csv_out));
    let printed = lead_notifier(&s, &["report", "--since", "1h", "--format", "csv"]);
    assert_eq!(
        std::fs::read_to_string(&csv_file).unwrap(),
        String::from_utf8_lossy(&printed.stdout)
    );
    screenshot(&page, "report");
}

/// Renders `page` in headless Chromium at a phone's width into
/// target/screenshots/<name>.png, and checks the picture is not blank.
fn screenshot(page: &Path, name: &str) {
    let dir = common::servers::repo_root().join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = dir.join(format!("{name}.png"));
    let _ = std::fs::remove_file(&png);
    let profile = tempfile::tempdir().expect("profile");
    let chromium = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok())
        .expect("chromium is installed (cargo xtask test / .ci/run install it: apt-get install chromium)");
    let out = Command::new(chromium)
        .args(common::chromium::CHROMIUM_FLAGS)
        .arg("--hide-scrollbars")
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg("--window-size=375,1400")
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 10_000,
        "{} is {size} bytes: {}",
        png.display(),
        text(&out)
    );
}

// ---------------------------------------------------------------------------
// The scheduled summary and lead-flow health, through the handler as the
// Functions host runs it.

use common::handler::Handler;
use common::servers::{maildev_messages, maildev_smtp_port, unique_recipient};
use time::{Duration as Span, OffsetDateTime, Weekday};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use lead_notifier::notify::DestinationId;
use lead_notifier::pipeline::Pipeline;
use std::sync::Arc;
use support::{notifiers, Behaviour, Recorder};

const TEST_NOW: &str = "LEAD_NOTIFIER_TEST_NOW";

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// `2026-12-07 07:00:00 UTC`, as the messages write times.
fn words(t: OffsetDateTime) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    t.format(format).unwrap()
}

/// The first Monday 07:00 UTC after `t`: the default schedule's next
/// occurrence, whose period holds `t`.
fn next_monday_seven(t: OffsetDateTime) -> OffsetDateTime {
    let mut day = t.date();
    loop {
        let at = day.with_hms(7, 0, 0).unwrap().assume_utc();
        if day.weekday() == Weekday::Monday && at > t {
            return at;
        }
        day = day.next_day().unwrap();
    }
}

/// Email to MailDev and the outbox; `extra` on top.
fn host_settings(outbox: &Path, extra: &[(&str, &str)]) -> (HashMap<String, String>, String) {
    let recipient = unique_recipient("summary");
    let mut s = settings(outbox);
    for (k, v) in [
        ("SMTP_HOST", "127.0.0.1".to_owned()),
        ("SMTP_PORT", maildev_smtp_port().to_string()),
        ("SMTP_SECURITY", "none".to_owned()),
        (
            "EMAIL_FROM",
            "Lead alerts <leads@contoso.example>".to_owned(),
        ),
        ("EMAIL_TO", recipient.clone()),
    ] {
        s.insert(k.to_owned(), v);
    }
    for (k, v) in extra {
        s.insert((*k).to_owned(), (*v).to_owned());
    }
    (s, recipient)
}

fn at_time(s: &HashMap<String, String>, now: OffsetDateTime) -> HashMap<String, String> {
    let mut s = s.clone();
    s.insert(TEST_NOW.to_owned(), rfc3339(now));
    s
}

/// Messages to `recipient` whose subject starts with `prefix`.
async fn mails(recipient: &str, prefix: &str) -> Vec<Value> {
    maildev_messages(recipient)
        .await
        .into_iter()
        .filter(|m| m["subject"].as_str().is_some_and(|s| s.starts_with(prefix)))
        .collect()
}

const SUMMARY_SUBJECT: &str = "Marketplace leads ";

/// One timer invocation that must succeed; answers the run summary.
async fn timer(handler: &Handler) -> Value {
    let (status, body) = handler.invoke_timer().await;
    assert_eq!(status, 200, "{body}\n{}", handler.stderr());
    body["ReturnValue"].clone()
}

#[tokio::test]
async fn the_summary_goes_once_per_occurrence_with_the_counts_report_gives() {
    let teams = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(202))
        .mount(&teams)
        .await;
    let outbox = tempfile::tempdir().expect("outbox");
    let teams_url = format!("{}/workflows/x/invoke?sig=SECRETSIG", teams.uri());
    let (s, recipient) = host_settings(
        outbox.path(),
        &[
            ("SUMMARY_TO", "email,teams"),
            ("TEAMS_WEBHOOK_URL", &teams_url),
        ],
    );
    assert!(lead_notifier(&s, &["seed", "--count", "12"])
        .status
        .success());
    let monday = next_monday_seven(OffsetDateTime::now_utc());

    // A run a little after the occurrence, then two at once, then a
    // restarted handler: one summary in all.
    let mut handler = Handler::start(&at_time(&s, monday + Span::seconds(30))).await;
    timer(&handler).await;
    let (a, b) = tokio::join!(handler.invoke_timer(), handler.invoke_timer());
    assert_eq!((a.0, b.0), (200, 200), "{a:?} {b:?}");
    assert!(handler.terminate());
    let handler = Handler::start(&at_time(&s, monday + Span::minutes(5))).await;
    timer(&handler).await;
    // Settled once, the summary and health cost an idle run nothing.
    let idle = timer(&handler).await;
    assert!(
        matches!(idle["storage_requests"].as_u64(), Some(n) if n <= 3),
        "{idle}"
    );

    let summaries = mails(&recipient, SUMMARY_SUBJECT).await;
    assert_eq!(summaries.len(), 1, "{summaries:#?}");
    let cards: Vec<String> = teams
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .filter(|b| b.contains("Marketplace leads: the summary"))
        .collect();
    assert_eq!(cards.len(), 1, "one Teams summary");

    // The same period through `report --format json`.
    let json_out = lead_notifier(
        &at_time(&s, monday),
        &["report", "--since", "7d", "--format", "json"],
    );
    let json: Value = serde_json::from_slice(&json_out.stdout).expect("json report");
    let mail = &summaries[0];
    let text = mail["text"].as_str().unwrap_or_default();
    let html = mail["html"].as_str().unwrap_or_default();
    let total = &json["total"];
    assert!(
        text.contains(&format!(
            "From {} to {}: {} lead(s)",
            words(monday - Span::days(7)),
            words(monday),
            total["leads"]
        )),
        "{text}\n{json}"
    );
    assert!(
        text.contains(&format!("{:>6}  alerted", total["alerted"])),
        "{text}"
    );
    for (reason, words) in [
        ("test_lead", "Partner Center test lead"),
        ("edu", "customer from a .edu domain"),
    ] {
        let n = &total["skipped"][reason];
        assert!(
            text.contains(&format!("{n:>6}  not alerted: {words}")),
            "{text}"
        );
    }
    for row in json["rows"].as_array().unwrap() {
        let line = format!(
            "{:>6}  {} · {}",
            row["leads"],
            row["offer"].as_str().unwrap(),
            row["action"].as_str().unwrap()
        );
        assert!(text.contains(&line), "{line} missing from\n{text}");
        let offer = escaped(row["offer"].as_str().unwrap());
        assert!(html.contains(&offer), "{offer} missing from the HTML");
        let card = &cards[0];
        assert!(card.contains(row["offer"].as_str().unwrap()), "{card}");
    }
    for m in json["moves"].as_array().unwrap() {
        let line = format!(
            "{:>6}  {}: {} → {}",
            m["customers"],
            m["offer"].as_str().unwrap(),
            m["from"].as_str().unwrap(),
            m["to"].as_str().unwrap()
        );
        assert!(text.contains(&line), "{line} missing from\n{text}");
    }
    // The seed's Partner Center validation lead.
    assert!(
        text.contains("Partner Center connection validated on"),
        "{text}"
    );
    assert!(html.contains("Partner Center connection validated on"));
    for part in [
        text,
        html,
        mail["subject"].as_str().unwrap_or_default(),
        &cards[0],
    ] {
        assert_nothing_personal(part);
    }
    assert!(
        !html.contains("<script") && !html.contains("<img"),
        "{html}"
    );

    let page = common::servers::repo_root().join("target/screenshots/summary-email.html");
    std::fs::create_dir_all(page.parent().unwrap()).unwrap();
    std::fs::write(&page, html).unwrap();
    screenshot(&page, "summary-email");
}

#[tokio::test]
async fn an_outage_over_three_weeks_sends_one_summary_for_the_whole_gap() {
    let outbox = tempfile::tempdir().expect("outbox");
    let (s, recipient) = host_settings(outbox.path(), &[("SUMMARY_TO", "email")]);
    assert!(lead_notifier(&s, &["seed", "--count", "3"])
        .status
        .success());
    let monday = next_monday_seven(OffsetDateTime::now_utc());
    let mut handler = Handler::start(&at_time(&s, monday + Span::minutes(1))).await;
    timer(&handler).await;
    assert!(handler.terminate());

    // Three Mondays pass without a run; the next run is late, too.
    let back = monday + Span::days(21) + Span::hours(3);
    let handler = Handler::start(&at_time(&s, back)).await;
    timer(&handler).await;
    timer(&handler).await;

    let summaries = mails(&recipient, SUMMARY_SUBJECT).await;
    let texts: Vec<&str> = summaries
        .iter()
        .map(|m| m["text"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(texts.len(), 2, "{texts:#?}");
    let gap = format!(
        "From {} to {}: 0 lead(s), 3 in the period before.",
        words(monday),
        words(monday + Span::days(21))
    );
    assert_eq!(
        texts.iter().filter(|t| t.contains(&gap)).count(),
        1,
        "{gap} in {texts:#?}"
    );
}

#[tokio::test]
async fn a_silent_lead_table_warns_once_and_says_once_when_leads_resume() {
    let outbox = tempfile::tempdir().expect("outbox");
    let (s, recipient) = host_settings(outbox.path(), &[("HEALTH_TO", "email")]);
    assert!(lead_notifier(&s, &["seed", "--count", "1"])
        .status
        .success());
    let silent = OffsetDateTime::now_utc() + Span::days(8);

    let mut handler = Handler::start(&at_time(&s, silent)).await;
    let run = timer(&handler).await;
    let problems = run["problems"].to_string();
    assert!(
        problems.contains("lead flow: no lead written to table"),
        "{run}"
    );
    timer(&handler).await;
    let check = lead_notifier(&at_time(&s, silent), &["check"]);
    assert!(
        text(&check).contains("warning: lead flow: no lead written"),
        "{}",
        text(&check)
    );
    assert!(handler.terminate());
    let mut handler = Handler::start(&at_time(&s, silent + Span::hours(1))).await;
    timer(&handler).await;
    let warnings = mails(&recipient, "No marketplace lead since").await;
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    let warning = warnings[0]["text"].as_str().unwrap_or_default();
    for what in ["Customer leads", "connection string", &s["LEADS_TABLE"]] {
        assert!(warning.contains(what), "{what} missing from\n{warning}");
    }
    assert_nothing_personal(warning);
    assert!(handler.terminate());

    // A lead comes in again; "now" is now.
    assert!(lead_notifier(&s, &["seed", "--count", "1"])
        .status
        .success());
    let handler = Handler::start(&s).await;
    let run = timer(&handler).await;
    assert!(!run["problems"].to_string().contains("lead flow"), "{run}");
    timer(&handler).await;
    let resumed = mails(&recipient, "Marketplace leads are coming in again").await;
    assert_eq!(resumed.len(), 1, "{resumed:#?}");
    assert_eq!(
        mails(&recipient, "No marketplace lead since").await.len(),
        1
    );
}

/// One process (as a host that lives for weeks keeps it): a silence that
/// outlasts the look-back (LEAD_SILENCE_AFTER and 28 days) leaves no lead in
/// the window, and the process must still say "resumed" when leads return.
/// In-process so that "now" can move between runs (the binary's tests clear
/// their children's environment; [`IN_PROCESS`] keeps the in-process ones
/// from moving it under each other).
#[tokio::test]
async fn a_long_lived_process_says_resumed_after_a_silence_longer_than_the_look_back() {
    let _clock = IN_PROCESS.lock().await;
    let settings = Arc::new(support::settings(&[
        TEAMS_URL,
        ("HEALTH_TO", "teams"),
        ("LEAD_SILENCE_AFTER", "1d"),
    ]));
    let teams = Recorder::new(DestinationId::TEAMS);
    let pipeline = Pipeline::new(Arc::clone(&settings), notifiers(&[&teams]));
    let notices = || teams.sent().iter().filter(|s| s.keys.is_empty()).count();
    let stand_at = |t: OffsetDateTime| std::env::set_var(TEST_NOW, rfc3339(t));

    support::store(
        &settings,
        &[support::row("1:2F1:2F2026", "before-the-silence")],
    )
    .await;
    let start = OffsetDateTime::now_utc();
    stand_at(start + Span::days(2));
    pipeline.run_once().await.expect("run in the silence");
    assert_eq!(notices(), 1, "the silence warning");
    stand_at(start + Span::days(40));
    pipeline.run_once().await.expect("run long after");
    assert_eq!(notices(), 1, "no second warning");

    support::store(
        &settings,
        &[support::row("1:2F1:2F2026", "after-the-silence")],
    )
    .await;
    stand_at(OffsetDateTime::now_utc() + Span::minutes(1));
    pipeline.run_once().await.expect("run with leads again");
    std::env::remove_var(TEST_NOW);
    assert_eq!(notices(), 2, "the resumed note: {:?}", teams.sent());
}

/// A Teams destination for the in-process tests' recorders.
const TEAMS_URL: (&str, &str) = (
    "TEAMS_WEBHOOK_URL",
    "https://contoso.webhook.office.com/webhookb2/summary-test",
);

/// Held by the tests that set [`TEST_NOW`] in this process.
static IN_PROCESS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// SUMMARY_SCHEDULE moved to an earlier weekday right after a summary went
/// out: the new schedule's latest occurrence lies before the summary just
/// sent, whose period covered it, so nothing more is owed until the next one.
#[tokio::test]
async fn a_schedule_moved_earlier_sends_no_summary_for_a_period_already_covered() {
    let _clock = IN_PROCESS.lock().await;
    let monday = support::settings(&[
        TEAMS_URL,
        ("SUMMARY_TO", "teams"),
        ("LEAD_SILENCE_AFTER", "0"),
        ("SUMMARY_SCHEDULE", "0 0 7 * * 1"),
    ]);
    let sunday = support::settings_on(
        &storage_connection(),
        &[
            TEAMS_URL,
            ("SUMMARY_TO", "teams"),
            ("LEAD_SILENCE_AFTER", "0"),
            ("SUMMARY_SCHEDULE", "0 0 7 * * 0"),
            ("LEADS_TABLE", &monday.leads_table),
            ("LEADS_STATE_TABLE", &monday.state_table),
        ],
    );
    support::store(&monday, &[support::row("1:2F1:2F2026", "a-lead")]).await;
    let teams = Recorder::new(DestinationId::TEAMS);
    let notices = || teams.sent().iter().filter(|s| s.keys.is_empty()).count();
    let stand_at = |t: OffsetDateTime| std::env::set_var(TEST_NOW, rfc3339(t));
    let seven = next_monday_seven(OffsetDateTime::now_utc());

    stand_at(seven + Span::minutes(30));
    Pipeline::new(Arc::new(monday), notifiers(&[&teams]))
        .run_once()
        .await
        .expect("Monday's run");
    assert_eq!(notices(), 1, "Monday's summary");
    // Restarted with the new schedule a minute later.
    stand_at(seven + Span::minutes(31));
    let run = Pipeline::new(Arc::new(sunday), notifiers(&[&teams]))
        .run_once()
        .await;
    std::env::remove_var(TEST_NOW);
    run.expect("the run after the change");
    assert_eq!(notices(), 1, "a second summary for Sunday");
}

/// Two installations (lead tables) summarising to one mailbox on the same
/// Monday: mail services drop a message whose Message-ID they have seen, so
/// the second summary must not reuse the first one's.
#[tokio::test]
async fn two_installations_summaries_never_share_a_message_id() {
    let outbox = tempfile::tempdir().expect("outbox");
    let (first, recipient) = host_settings(outbox.path(), &[("SUMMARY_TO", "email")]);
    let mut second = first.clone();
    second.insert("LEADS_TABLE".to_owned(), unique_table("sumleads"));
    second.insert("LEADS_STATE_TABLE".to_owned(), unique_table("sumstate"));
    let monday = next_monday_seven(OffsetDateTime::now_utc());
    for s in [&first, &second] {
        assert!(lead_notifier(s, &["seed", "--count", "1"]).status.success());
        let out = lead_notifier(&at_time(s, monday + Span::minutes(1)), &["poll"]);
        assert!(out.status.success(), "{}", text(&out));
    }
    let summaries = mails(&recipient, SUMMARY_SUBJECT).await;
    assert_eq!(summaries.len(), 2, "{summaries:#?}");
    let ids: Vec<&Value> = summaries
        .iter()
        .map(|m| &m["headers"]["message-id"])
        .collect();
    assert!(ids[0].is_string(), "{ids:?}");
    assert_ne!(ids[0], ids[1]);
}

/// A summary a destination refuses for now is tried again by the next run
/// and given up after ALERT_MAX_ATTEMPTS; one refused for good is not tried
/// again. Other destinations get theirs once.
#[tokio::test]
async fn a_failing_destination_is_retried_then_given_up() {
    let _clock = IN_PROCESS.lock().await;
    let settings = Arc::new(support::settings(&[
        TEAMS_URL,
        (
            "SLACK_WEBHOOK_URL",
            "https://hooks.slack.com/services/T0/B0/x",
        ),
        ("SMTP_HOST", "127.0.0.1"),
        ("EMAIL_FROM", "leads@contoso.example"),
        ("EMAIL_TO", "sales@contoso.example"),
        ("SUMMARY_TO", "teams,slack,email"),
        ("LEAD_SILENCE_AFTER", "0"),
        ("ALERT_MAX_ATTEMPTS", "2"),
    ]));
    support::store(&settings, &[support::row("1:2F1:2F2026", "a-lead")]).await;
    let teams = Recorder::with(DestinationId::TEAMS, Behaviour::Retryable, usize::MAX);
    let slack = Recorder::with(DestinationId::SLACK, Behaviour::Permanent, usize::MAX);
    let email = Recorder::new(DestinationId::EMAIL);
    let pipeline = Pipeline::new(Arc::clone(&settings), notifiers(&[&teams, &slack, &email]));
    let notices = |r: &Arc<Recorder>| r.sent().iter().filter(|s| s.keys.is_empty()).count();
    std::env::set_var(
        TEST_NOW,
        rfc3339(next_monday_seven(OffsetDateTime::now_utc()) + Span::minutes(1)),
    );
    let mut problems = Vec::new();
    for _ in 0..4 {
        match pipeline.run_once().await {
            Ok(run) => problems.push(format!("{:?}", run.problems)),
            Err(e) => problems.push(format!("run failed: {e}")),
        }
    }
    std::env::remove_var(TEST_NOW);
    assert_eq!(notices(&teams), 2, "{problems:#?}");
    assert_eq!(notices(&slack), 1, "{problems:#?}");
    assert_eq!(notices(&email), 1, "{problems:#?}");
    assert!(
        problems[0].contains("summary not sent, to retry next run"),
        "{problems:#?}"
    );
    assert!(
        problems[1].contains("gave up after 2 attempt(s)"),
        "{problems:#?}"
    );
}

/// A schedule every minute with runs every few minutes: one summary per run
/// that finds a new occurrence, none for a second run in the same minute.
#[tokio::test]
async fn an_every_minute_schedule_sends_one_summary_per_new_occurrence() {
    let _clock = IN_PROCESS.lock().await;
    let settings = Arc::new(support::settings(&[
        TEAMS_URL,
        ("SUMMARY_TO", "teams"),
        ("LEAD_SILENCE_AFTER", "0"),
        ("SUMMARY_SCHEDULE", "0 * * * * *"),
    ]));
    support::store(&settings, &[support::row("1:2F1:2F2026", "a-lead")]).await;
    let teams = Recorder::new(DestinationId::TEAMS);
    let notices = || teams.sent().iter().filter(|s| s.keys.is_empty()).count();
    let minute = next_monday_seven(OffsetDateTime::now_utc());
    let mut counts = Vec::new();
    for (i, at) in [
        Span::seconds(20),
        Span::seconds(40),
        Span::minutes(5) + Span::seconds(10),
    ]
    .into_iter()
    .enumerate()
    {
        std::env::set_var(TEST_NOW, rfc3339(minute + at));
        // A new process for the last run: the ledger, not the memo, decides.
        let pipeline = Pipeline::new(Arc::clone(&settings), notifiers(&[&teams]));
        let runs = if i == 1 { 2 } else { 1 };
        for _ in 0..runs {
            pipeline.run_once().await.expect("run");
        }
        counts.push(notices());
    }
    std::env::remove_var(TEST_NOW);
    assert_eq!(counts, [1, 1, 2]);
}

/// A new process's first run learns the lead flow is alive from the run's
/// own position in the table, not by reading the last weeks of lead rows
/// (10 pages for a 10,000-lead month).
#[tokio::test]
async fn a_new_process_reads_no_lead_page_to_know_the_flow_is_alive() {
    let outbox = tempfile::tempdir().expect("outbox");
    let mut s = settings(outbox.path());
    s.insert("SCAN_OVERLAP".to_owned(), "1s".to_owned());
    // A lead written well after the others: the scan overlap then covers it
    // alone.
    assert!(lead_notifier(&s, &["seed", "--count", "2100"])
        .status
        .success());
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(lead_notifier(&s, &["seed", "--count", "1"])
        .status
        .success());
    let mut handler = Handler::start(&s).await;
    let first = timer(&handler).await;
    assert_eq!(first["leads_new"].as_u64(), Some(2101), "{first}");
    assert_eq!(first["pending"].as_u64(), Some(0), "{first}");
    assert!(handler.terminate());

    let handler = Handler::start(&s).await;
    let idle = timer(&handler).await;
    // The watermark, one scan page, the notices' records: 3 pages of lead
    // rows more when the health check reads them.
    assert!(
        matches!(idle["storage_requests"].as_u64(), Some(n) if n <= 4),
        "{idle}"
    );
    assert!(
        idle["problems"].as_array().is_none_or(|p| p.is_empty()),
        "{idle}"
    );
}
