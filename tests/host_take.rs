//! `LeadTake` end to end, through the real binary as the Functions host runs
//! it: the link from an email MailDev received opens the lead's page, GET
//! changes nothing, POST takes the lead once for the first taker, and a
//! link that is damaged, forged or expired shows nothing of the lead.

mod common;

use common::faults::Teams;
use common::handler::Handler;
use common::servers::{maildev_messages, unique_recipient};
use common::take::{
    get, lead_row, post, request, settings_for, store, take_invocation, PUBLIC_URL,
};
use lead_notifier::config::{Settings, TakeSecret};
use lead_notifier::lead::{LeadKey, LeadRow};
use lead_notifier::lead_table::store_rows;
use lead_notifier::ledger::{Ledger, Policy, Status};
use lead_notifier::storage::{format_timestamp, parse_timestamp, Storage};
use lead_notifier::take::store::TakeStore;
use lead_notifier::take::token;
use serde_json::{json, Value};
use time::OffsetDateTime;

/// What the lead's page shows and a refusal must not.
const LEAD_DATA: [&str; 4] = ["Contoso CRM Suite", "Brno Cloud", "Petra", "Novák"];

/// The take link in a received email's HTML part, checked against its text
/// part.
fn link_in(message: &Value) -> String {
    let html = message["html"].as_str().unwrap_or_default();
    let start = html
        .find(&format!("{PUBLIC_URL}/api/LeadTake?t="))
        .unwrap_or_else(|| panic!("no take link in the email: {html}"));
    let link: String = html[start..].chars().take_while(|c| *c != '"').collect();
    let text = message["text"].as_str().unwrap_or_default();
    assert!(
        text.contains(&format!("I'll take it: {link}")),
        "the text part has the same link: {text}"
    );
    assert!(html.contains("Reply to the customer"), "{html}");
    link
}

async fn take_record(config: &Settings, key: &LeadKey) -> Option<String> {
    let storage = Storage::new(&config.storage, reqwest::Client::new());
    TakeStore::new(&storage, &config.state_table, &config.leads_table)
        .get(key)
        .await
        .unwrap()
        .map(|take| take.by)
}

fn assert_safe_headers(headers: &Value) {
    assert_eq!(
        headers["Content-Security-Policy"],
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"
    );
    assert_eq!(headers["X-Frame-Options"], "DENY");
    assert_eq!(headers["Referrer-Policy"], "no-referrer");
    assert_eq!(headers["Cache-Control"], "no-store");
    assert_eq!(headers["Content-Type"], "text/html; charset=utf-8");
}

/// A handler on fresh tables holding one lead, and the lead's take link.
struct Setup {
    config: Settings,
    row: LeadRow,
    handler: Handler,
    link: String,
}

async fn setup(tag: &str) -> Setup {
    let settings = settings_for(tag, &unique_recipient(tag));
    let row = lead_row(&format!("take-{tag}"));
    let config = store(&settings, &row).await;
    let handler = Handler::start(&settings).await;
    let link = token::link(
        config.take.as_ref().unwrap(),
        &row.key(),
        OffsetDateTime::now_utc(),
    );
    Setup {
        config,
        row,
        handler,
        link,
    }
}

#[tokio::test]
async fn the_link_from_the_email_opens_the_page_and_the_first_taker_wins() {
    let recipient = unique_recipient("take");
    let teams = Teams::start(&[], std::time::Duration::ZERO).await;
    let mut settings = settings_for("take", &recipient);
    settings.insert(
        "TEAMS_WEBHOOK_URL".to_owned(),
        format!("{}/hook?sig=HOOKSECRET", teams.server.uri()),
    );
    let row = lead_row("take-email");
    let config = store(&settings, &row).await;
    let handler = Handler::start(&settings).await;
    let (status, timer) = handler.invoke_timer().await;
    assert_eq!(status, 200, "{timer}");
    let messages = maildev_messages(&recipient).await;
    assert_eq!(messages.len(), 1);
    let link = link_in(&messages[0]);
    // One lead, one link, whatever the destination.
    let posts = teams.posts();
    assert_eq!(posts.len(), 1);
    let actions = &posts[0].body["attachments"][0]["content"]["actions"];
    assert_eq!(actions[1]["url"].as_str(), Some(link.as_str()), "{actions}");

    // Opening the link (twice, as a mail scanner and then a person would)
    // shows the lead and changes nothing.
    let (status, first, headers) = get(&handler, &link).await;
    assert_eq!(status, 200, "{first}");
    assert_safe_headers(&headers);
    for shown in LEAD_DATA
        .iter()
        .chain(&["I'll take it</button>", "Open", "<label for=\"name\">"])
    {
        assert!(first.contains(shown), "{shown} on the page: {first}");
    }
    assert!(first.contains("<html lang=\"en\">") && first.contains("name=\"viewport\""));
    let (_, second, _) = get(&handler, &link).await;
    assert_eq!(first, second);
    assert_eq!(
        take_record(&config, &row.key()).await,
        None,
        "GET took nothing"
    );

    // The first POST takes it; the same person again is fine; anyone else
    // hears who took it.
    let (status, taken) = post(&handler, &link, "  Alice Admin ").await;
    assert_eq!(status, 200, "{taken}");
    assert!(
        taken.contains("Taken by <strong>Alice Admin</strong>"),
        "{taken}"
    );
    assert_eq!(
        take_record(&config, &row.key()).await.as_deref(),
        Some("Alice Admin")
    );
    let (status, again) = post(&handler, &link, "Alice Admin").await;
    assert_eq!(status, 200, "{again}");
    let (status, late) = post(&handler, &link, "Bob <script>").await;
    assert_eq!(status, 409, "{late}");
    assert!(
        late.contains("Already taken by <strong>Alice Admin</strong>"),
        "{late}"
    );
    assert!(
        !late.contains("<script>"),
        "nothing posted is echoed unescaped"
    );
    let (status, shown, _) = get(&handler, &link).await;
    assert_eq!(status, 200);
    assert!(
        shown.contains("Taken by <strong>Alice Admin</strong>"),
        "{shown}"
    );
    assert!(
        !shown.contains("<form"),
        "a taken lead has no form: {shown}"
    );

    // An empty name takes nothing.
    let other = lead_row("take-empty");
    store(&settings, &other).await;
    let other_link = token::link(
        config.take.as_ref().unwrap(),
        &other.key(),
        OffsetDateTime::now_utc(),
    );
    let (status, page) = post(&handler, &other_link, "   ").await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("Please enter your name"), "{page}");
    assert_eq!(take_record(&config, &other.key()).await, None);

    let printed = format!("{}{}", handler.stdout(), handler.stderr());
    let token = link.split_once("?t=").unwrap().1;
    for needle in ["Alice", "Bob", "Petra", token] {
        assert!(
            !printed.contains(needle),
            "handler output contains {needle:?}"
        );
    }
}

#[tokio::test]
async fn of_twenty_people_taking_at_once_exactly_one_wins() {
    let Setup {
        config,
        row,
        handler,
        link,
    } = setup("race").await;

    let names: Vec<String> = (0..20).map(|i| format!("Taker {i:02}")).collect();
    let answers =
        futures::future::join_all(names.iter().map(|name| post(&handler, &link, name))).await;
    let winners: Vec<&String> = names
        .iter()
        .zip(&answers)
        .filter(|(_, (status, _))| *status == 200)
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "{:?}",
        answers.iter().map(|a| a.0).collect::<Vec<_>>()
    );
    let winner = winners[0];
    for (status, page) in &answers {
        assert!(*status == 200 || *status == 409, "{status}: {page}");
        assert!(
            page.contains(&format!("<strong>{winner}</strong>")),
            "{page}"
        );
    }
    assert_eq!(
        take_record(&config, &row.key()).await.as_ref(),
        Some(winner)
    );
}

#[tokio::test]
async fn damaged_forged_and_expired_links_show_nothing_of_the_lead() {
    let Setup {
        config,
        row,
        handler,
        ..
    } = setup("badtok").await;
    let take = config.take.as_ref().unwrap();
    let good = token::sign(
        &take.secret,
        &row.key(),
        OffsetDateTime::now_utc() + time::Duration::DAY,
    );
    let (status, page, _) = get(&handler, &good).await;
    assert_eq!(status, 200, "the good token works: {page}");

    let mut tampered: Vec<char> = good.chars().collect();
    let middle = tampered.len() / 2;
    tampered[middle] = if tampered[middle] == 'A' { 'B' } else { 'A' };
    let tampered: String = tampered.into_iter().collect();
    let expired = token::sign(
        &take.secret,
        &row.key(),
        OffsetDateTime::now_utc() - time::Duration::SECOND,
    );
    let foreign = token::sign(
        &TakeSecret::from_bytes(&[7; 32]),
        &row.key(),
        OffsetDateTime::now_utc() + time::Duration::DAY,
    );
    let cases = [
        ("tampered", tampered, 403),
        ("truncated", good[..good.len() - 5].to_owned(), 0),
        ("cut short", good[..10].to_owned(), 0),
        ("expired", expired, 410),
        ("foreign secret", foreign, 403),
        ("empty", String::new(), 400),
        ("not base64", "%%%".to_owned(), 400),
    ];
    for (what, bad, expected) in &cases {
        for method in ["GET", "POST"] {
            let form = (method == "POST").then_some("name=Mallory");
            let (status, page, headers) =
                request(&handler, &take_invocation(method, bad, form, json!({}))).await;
            // 0: any refusal (a cut token may no longer be base64).
            if *expected == 0 {
                assert!((400..500).contains(&status), "{what} ({method}): {status}");
            } else {
                assert_eq!(status, *expected, "{what} ({method}): {page}");
            }
            assert_safe_headers(&headers);
            for data in LEAD_DATA {
                assert!(
                    !page.contains(data),
                    "{what} ({method}) shows {data}: {page}"
                );
            }
            assert!(!page.contains("<form"), "{what}: {page}");
        }
    }
    assert_eq!(take_record(&config, &row.key()).await, None);
}

#[tokio::test]
async fn a_signed_in_user_takes_under_their_own_name() {
    let Setup {
        config,
        row,
        handler,
        link,
    } = setup("easyauth").await;
    let signed_in = json!({"X-MS-CLIENT-PRINCIPAL-NAME": ["carol@contoso.example"]});

    let (status, page, _) = request(
        &handler,
        &take_invocation("GET", &link, None, signed_in.clone()),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("signed in as <strong>carol@contoso.example</strong>"),
        "{page}"
    );
    assert!(!page.contains("name=\"name\""), "no name to type: {page}");

    let (status, page, _) = request(
        &handler,
        &take_invocation("POST", &link, Some("name=Mallory"), signed_in),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        take_record(&config, &row.key()).await.as_deref(),
        Some("carol@contoso.example")
    );
}

/// Without PUBLIC_URL and TAKE_LINK_SECRET the alert has no link and the
/// function takes nothing.
#[tokio::test]
async fn without_the_settings_there_is_no_link() {
    let recipient = unique_recipient("notake");
    let mut settings = settings_for("notake", &recipient);
    settings.remove("PUBLIC_URL");
    settings.remove("TAKE_LINK_SECRET");
    store(&settings, &lead_row("no-take")).await;
    let handler = Handler::start(&settings).await;
    handler.invoke_timer().await;
    let messages = maildev_messages(&recipient).await;
    assert_eq!(messages.len(), 1);
    assert!(!messages[0]["html"]
        .as_str()
        .unwrap_or_default()
        .contains("LeadTake"));
    assert!(!messages[0]["html"]
        .as_str()
        .unwrap_or_default()
        .contains("take it"));
    let (status, _, _) = get(&handler, "anything").await;
    assert_eq!(status, 404);
}

/// `report` counts taken leads and the time from each one's first delivered
/// alert to its take: takes recorded 1, 2 and 10 minutes after the alerts
/// give a median of 120 s and a 90th percentile of 600 s.
#[tokio::test]
async fn the_report_shows_how_fast_leads_were_taken() {
    let mut settings = settings_for("takerep", &unique_recipient("takerep"));
    settings.insert("REPEAT_WINDOW".to_owned(), "0".to_owned());
    let rows: Vec<LeadRow> = (0..4).map(|i| lead_row(&format!("report-{i}"))).collect();
    let config = store(&settings, &rows[0]).await;
    let storage = Storage::new(&config.storage, reqwest::Client::new());
    store_rows(&storage, &config.leads_table, &rows[1..])
        .await
        .unwrap();
    let handler = Handler::start(&settings).await;
    let (_, timer) = handler.invoke_timer().await;
    assert_eq!(timer["ReturnValue"]["delivered"]["email"], 4, "{timer}");

    let ledger = Ledger::new(
        &storage,
        &config.state_table,
        &config.leads_table,
        "test",
        Policy {
            claim_lease: config.claim_lease,
            max_attempts: config.max_attempts,
        },
    );
    let records = ledger.window(None).await.unwrap();
    for (row, minutes) in rows.iter().zip([1, 2, 10]) {
        let alerted = records
            .values()
            .find(|e| e.record.lead_row_key == row.row_key && e.record.status == Status::Delivered)
            .and_then(|e| parse_timestamp(&e.record.updated_at))
            .expect("a delivered alert");
        let take = json!({
            "PartitionKey": lead_notifier::take::store::partition(&config.leads_table),
            "RowKey": lead_notifier::ledger::keys::lead_row(&row.key()),
            "LeadPartitionKey": row.partition_key,
            "LeadRowKey": row.row_key,
            "TakenBy": "Alice",
            "TakenAt": format_timestamp(alerted + time::Duration::minutes(minutes)),
        });
        storage
            .table(&config.state_table)
            .insert::<_, Value>(&take)
            .unwrap()
            .await
            .unwrap();
    }

    let report = |format: &str| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_lead-notifier"))
            .args(["report", "--since", "1h", "--format", format])
            .env_clear()
            .envs(&settings)
            .output()
            .expect("run lead-notifier report");
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let csv = report("csv");
    assert!(
        csv.lines()
            .any(|l| l == "contoso.crm-suite,Contoso CRM Suite,Contact me,4,4,0,1,3,120,600"),
        "{csv}"
    );
    let json: Value = serde_json::from_str(&report("json")).unwrap();
    let total = &json["total"];
    assert_eq!(
        (
            &total["taken"],
            &total["take_median_s"],
            &total["take_p90_s"]
        ),
        (&json!(3), &json!(120), &json!(600)),
        "{json}"
    );
    let table = report("table");
    assert!(
        table.contains("2m 00s") && table.contains("10m 00s"),
        "{table}"
    );
    assert!(!table.contains("Alice") && !csv.contains("Alice"));
}

/// A returning customer's alert says who took their earlier lead.
#[tokio::test]
async fn a_returning_customers_alert_says_who_took_the_earlier_lead() {
    let recipient = unique_recipient("takeback");
    let mut settings = settings_for("takeback", &recipient);
    settings.insert("REPEAT_WINDOW".to_owned(), "0".to_owned());
    let first = lead_row("first-visit");
    store(&settings, &first).await;
    let handler = Handler::start(&settings).await;
    handler.invoke_timer().await;
    let link = link_in(&maildev_messages(&recipient).await[0]);
    let (status, _) = post(&handler, &link, "Alice Admin").await;
    assert_eq!(status, 200);

    let mut again = lead_row("second-visit");
    again.lead_source = Some("SPZA-INS|contoso.crm-suite".into());
    store(&settings, &again).await;
    let (_, timer) = handler.invoke_timer().await;
    assert_eq!(timer["ReturnValue"]["delivered"]["email"], 1, "{timer}");
    let messages = maildev_messages(&recipient).await;
    assert_eq!(messages.len(), 2);
    let second = messages
        .iter()
        .find(|m| {
            m["subject"]
                .as_str()
                .is_some_and(|s| s.contains("Get it now"))
        })
        .expect("the second lead's email");
    let text = second["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("Returning customer: 1 earlier lead"),
        "{text}"
    );
    assert!(text.contains("— taken by Alice Admin"), "{text}");
    let html = second["html"].as_str().unwrap_or_default();
    assert!(html.contains("taken by Alice Admin"), "{html}");
}
