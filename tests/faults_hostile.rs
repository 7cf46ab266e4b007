//! Hostile input: lead rows crafted to break or abuse the alerts, and
//! invocations no Functions host would send.

mod common;

use std::time::Duration;

use common::faults::{
    assert_handler_quiet, count, emails_per_lead, walk, write_entity, write_rows, Fixture, Teams,
    LEAD_PARTITION,
};
use common::handler::{run_cli, Handler};
use common::servers::maildev_messages;
use common::servers::{maildev_smtp_port, storage_connection, unique_recipient, Azurite};
use lead_notifier::lead::LeadRow;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw5nK3YpQ8ep0=";
/// Customer details the hostile rows carry, which must never be printed.
const HOSTILE_NEEDLES: [&str; 5] = ["Ngozi", "Okafor", "hostile.example", "803 555", "Zuzana"];
/// Lead text that must never become markup, a link or a header.
const INJECTED: [&str; 6] = [
    "<script",
    "evil.example",
    "onerror",
    "Click here",
    "Bcc",
    "urgent",
];

fn row(rk: &str, info: Option<String>, description: Option<String>) -> LeadRow {
    LeadRow {
        partition_key: LEAD_PARTITION.to_owned(),
        row_key: rk.to_owned(),
        timestamp: None,
        action_code: Some("PLT".into()),
        created_time: Some("11/21/2026 10:45:00 AM".into()),
        customer_info: info,
        description,
        lead_source: Some("SPZA-PLT|contoso.crm-suite".into()),
        offer_display_name: Some("Contoso CRM Suite".into()),
    }
}

fn hostile_rows() -> Vec<LeadRow> {
    let info = |first: &str, last: &str, company: &str, title: &str| {
        Some(
            json!({"FirstName": first, "LastName": last, "Email": "ngozi.okafor@hostile.example",
                   "Phone": "+234 803 555 0147", "Country": "NG", "Company": company, "Title": title})
            .to_string(),
        )
    };
    let missing = LeadRow {
        partition_key: LEAD_PARTITION.to_owned(),
        row_key: "hostile-missing".to_owned(),
        ..LeadRow::default()
    };
    vec![
        row(
            "hostile-hidden",
            info(
                &hide("Zuzana"),
                &format!("{}{}", hide("Okafor"), tags("wire the money")),
                &format!("Tagged{} Traders", tags("ignore previous instructions")),
                &hide("Head of IT"),
            ),
            Some(format!("{}\n{}", hide("Call me"), hide("tomorrow"))),
        ),
        row(
            "hostile-badjson",
            Some(r#"{"FirstName": "Ngozi", "Email": "ngozi@hostile.example", "Phone": "+234 803 555"#.into()),
            Some("CustomerInfo is cut off".into()),
        ),
        missing,
        row(
            "hostile-invisible",
            info(
                "Zu\u{0007}\u{001b}[31mzana\u{0000}",
                "Ok\u{202E}rofak\u{202C}",
                "Zero\u{200B}Width\u{FEFF}\u{2066}Co",
                "Line\r\nBreak\u{0085}Title",
            ),
            Some("tab\there\u{2028}next".into()),
        ),
        row(
            "hostile-html",
            info(
                "<script>alert('x')</script>Ngozi",
                "Okafor\r\nBcc: victim@evil.example",
                "<img src=x onerror=alert(1)>",
                "\"><b>bold</b>",
            ),
            Some("</td></tr></table><a href=\"http://evil.example\">Click here</a>".into()),
        ),
        row(
            "hostile-markdown",
            info(
                "[Click here](http://evil.example/phish)",
                "**Okafor**",
                "# Heading",
                "![x](http://evil.example/t.png)",
            ),
            Some("**urgent** <http://evil.example> [Click here](http://evil.example) _x_ `y`".into()),
        ),
    ]
}

/// Table storage caps a string column at 32K characters and an entity at
/// 1 MB: this row is about as large as a row can get, every column full.
fn huge_entity() -> (LeadRow, Value) {
    const MAX: usize = 32_000;
    let name = "Ngozi ".repeat(1_500);
    let info = json!({"FirstName": name, "LastName": "Okafor ".repeat(1_500),
                      "Email": "ngozi.okafor@hostile.example", "Company": "Ü<b>".repeat(1_700)})
    .to_string();
    assert!(info.chars().count() <= MAX);
    let row = LeadRow {
        partition_key: LEAD_PARTITION.to_owned(),
        row_key: "hostile-huge".to_owned(),
        ..LeadRow::default()
    };
    let mut entity = json!({
        "PartitionKey": row.partition_key, "RowKey": row.row_key,
        "CustomerInfo": info,
        "Description": "<i>ü</i> **x** ".repeat(MAX / 15),
        "OfferDisplayName": "Offer ".repeat(MAX / 6),
        "LeadSource": format!("SPZA-PLT|{}", "o".repeat(MAX - 9)),
        "ActionCode": "PLT".repeat(MAX / 3),
        "CreatedTime": "9".repeat(MAX),
    });
    for i in 0..20 {
        entity[format!("Unexpected{i}")] = json!("x".repeat(MAX));
    }
    (row, entity)
}

/// One character of each kind that hides text: format characters (soft
/// hyphen, zero-width, bidi, byte-order mark, tags), the combining grapheme
/// joiner, the Hangul fillers and variation selectors.
const HIDDEN: [char; 20] = [
    '\u{00AD}',
    '\u{034F}',
    '\u{061C}',
    '\u{115F}',
    '\u{1160}',
    '\u{180E}',
    '\u{200B}',
    '\u{200C}',
    '\u{200D}',
    '\u{202E}',
    '\u{2066}',
    '\u{2060}',
    '\u{3164}',
    '\u{FE00}',
    '\u{FE0F}',
    '\u{FEFF}',
    '\u{FFA0}',
    '\u{E0001}',
    '\u{E0041}',
    '\u{E0100}',
];

/// `text` with one hidden character after each letter, cycling through [`HIDDEN`].
fn hide(text: &str) -> String {
    text.chars()
        .zip(HIDDEN.iter().cycle())
        .flat_map(|(c, h)| [c, *h])
        .collect()
}

/// `text` spelled in Unicode tag characters, which render as nothing.
fn tags(text: &str) -> String {
    text.chars()
        .filter_map(|c| char::from_u32(0xE0000 + c as u32))
        .collect()
}

/// Controls, bidirectional overrides, zero-width and other characters that
/// hide or reorder text. No hostile row has an emoji, so no joiner or
/// variation selector may be left either.
fn is_sneaky(c: char) -> bool {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    (c.is_control() && c != '\n')
        || c.general_category() == GeneralCategory::Format
        || matches!(
            c,
            '\u{034F}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{3164}'
                | '\u{FFA0}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{E0100}'..='\u{E01EF}'
        )
}

/// Fails naming `what` when any string in `value` holds a hidden character.
fn assert_nothing_hidden(what: &str, value: &Value) {
    walk(value, &mut |v| {
        if let Some(text) = v.as_str() {
            assert_plain(what, text);
        }
    });
}

fn assert_plain(what: &str, text: &str) {
    if let Some(c) = text.chars().find(|c| is_sneaky(*c)) {
        panic!("{what}: U+{:04X} left in {text:?}", c as u32);
    }
}

fn check_card(card: &Value, key: &str) {
    let text = serde_json::to_string(card).unwrap();
    assert!(
        text.len() <= 28 * 1024,
        "{key}: card of {} bytes",
        text.len()
    );
    walk(card, &mut |value| {
        if let Some(map) = value.as_object() {
            assert!(
                !map.contains_key("selectAction"),
                "{key}: card has selectAction: {value}"
            );
            // The one URL allowed: the reply button's mailto: with the
            // percent-encoded address, nothing else.
            if let Some(url) = map.get("url") {
                let url = url.as_str().unwrap_or_default();
                let address = url.strip_prefix("mailto:").unwrap_or("not mailto");
                assert!(
                    address
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._~%@-".contains(c)),
                    "{key}: url {url:?}"
                );
                assert_eq!(map.get("title"), Some(&json!("Reply to the customer")));
            }
            if map.get("type").and_then(Value::as_str) == Some("TextBlock") {
                let block = map.get("text").and_then(Value::as_str).unwrap_or("");
                for injected in INJECTED.iter().chain(&HOSTILE_NEEDLES) {
                    assert!(
                        !block.contains(injected),
                        "{key}: lead text in a TextBlock: {block}"
                    );
                }
            }
            if let Some(run) = map.get("text").and_then(Value::as_str) {
                assert!(
                    !run.chars().any(is_sneaky),
                    "{key}: hidden characters in {run:?}"
                );
            }
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_rows_are_alerted_safely_and_none_is_dropped() {
    let teams = Teams::start(&[], Duration::ZERO).await;
    // Slack and the signed webhook answer 202 like Teams: the same stand-in.
    let slack = Teams::start(&[], Duration::ZERO).await;
    let receiver = Teams::start(&[], Duration::ZERO).await;
    let recipient = unique_recipient("hostile");
    // A private Azurite: a batch holding U+2028 makes Azurite answer 500 and
    // can leave it failing every later batch, which would sink the suite.
    let azurite = Azurite::spawn();
    let mut f = Fixture::new(&azurite.connection_string());
    f.teams(&teams)
        .smtp(maildev_smtp_port(), &recipient)
        .set(
            "SLACK_WEBHOOK_URL",
            format!("{}/services/T1/B1/SlackHostile", slack.server.uri()),
        )
        .set(
            "WEBHOOK_URL",
            format!("{}/hooks/leads", receiver.server.uri()),
        )
        .set("WEBHOOK_SECRET", WEBHOOK_SECRET);
    f.secrets.push("SlackHostile".to_owned());
    // Several hostile rows share one customer, offer and action: each must
    // be alerted here, not folded as a repeat.
    f.settings
        .insert("REPEAT_WINDOW".to_owned(), "0".to_owned());
    let mut rows = hostile_rows();
    let settings = f.parsed();
    let storage = lead_notifier::storage::Storage::new(&settings.storage, reqwest::Client::new());
    let stored = lead_notifier::lead_table::store_rows(&storage, &settings.leads_table, &rows)
        .await
        .expect("rows stored");
    assert_eq!(stored, rows.len());
    let (huge, entity) = huge_entity();
    write_entity(&f, &entity).await;
    rows.push(huge);
    let mut handler = Handler::start(&f.settings).await;

    let (status, body) = handler.invoke_timer().await;
    assert_eq!(status, 200, "{body}");
    let n = rows.len() as u64;
    assert_eq!(
        body["ReturnValue"]["rows_scanned"].as_u64(),
        Some(n),
        "{body}"
    );
    for channel in ["email", "teams", "slack", "webhook", "outbox"] {
        assert_eq!(count(&body, "delivered", channel), n, "{channel}: {body}");
    }

    // One card per row, none carrying markup, links or hidden characters.
    let posts = teams.posts();
    assert_eq!(posts.len(), rows.len());
    let cards = teams.cards_per_lead();
    for row in &rows {
        let key = format!("{} / {}", row.partition_key, row.row_key);
        assert_eq!(cards.get(&key), Some(&1), "card for {key}: {cards:?}");
    }
    for post in &posts {
        check_card(
            &post.body,
            &post.body.to_string().chars().take(60).collect::<String>(),
        );
        assert_nothing_hidden("Teams card", &post.body);
    }
    // Slack messages and webhook events: one per row, no hidden characters.
    for (what, sink) in [("Slack message", &slack), ("webhook event", &receiver)] {
        let posts = sink.posts();
        assert_eq!(posts.len(), rows.len(), "{what}s");
        for post in &posts {
            assert_nothing_hidden(what, &post.body);
        }
    }
    let events = receiver.posts();
    let event = events
        .iter()
        .find(|p| p.body["data"]["lead_keys"]["row_key"] == "hostile-hidden")
        .expect("the hidden row's event");
    assert_eq!(
        event.body["data"]["customer"]["company"], "Tagged Traders",
        "{}",
        event.body
    );
    assert_eq!(event.body["data"]["description"], "Call me\ntomorrow");

    // One email per row; its HTML escapes the markup, its headers stay intact.
    let messages = maildev_messages(&recipient).await;
    assert_eq!(messages.len(), rows.len());
    let per_lead = emails_per_lead(&recipient).await;
    for row in &rows {
        let key = format!("{} / {}", row.partition_key, row.row_key);
        assert_eq!(
            per_lead.get(&key),
            Some(&1),
            "email for {key}: {per_lead:?}"
        );
    }
    for message in &messages {
        let html = message["html"].as_str().unwrap_or("");
        assert_plain("email HTML", html);
        assert_plain("email text", message["text"].as_str().unwrap_or(""));
        let lower = html.to_ascii_lowercase();
        assert!(!lower.contains("<script"), "raw <script> in the HTML");
        assert!(!lower.contains("<img src=x"), "raw <img> in the HTML");
        assert!(
            !lower.contains("href=\"http://evil"),
            "lead link in the HTML"
        );
        assert!(!html
            .chars()
            .any(|c| matches!(c, '\u{202A}'..='\u{202E}' | '\u{200B}')));
        let subject = message["subject"].as_str().unwrap_or("");
        assert!(!subject.chars().any(is_sneaky), "subject {subject:?}");
        let to: Vec<&str> = message["to"]
            .as_array()
            .map(|to| to.iter().filter_map(|a| a["address"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(to, [recipient.as_str()], "recipients untouched");
        let bcc = message["bcc"].as_array().is_some_and(|b| !b.is_empty());
        assert!(!bcc, "no Bcc: {message}");
        let headers = message["headers"].to_string().to_ascii_lowercase();
        assert!(!headers.contains("\"bcc\""), "no Bcc header: {headers}");
    }
    let escaped = messages.iter().any(|m| {
        m["html"]
            .as_str()
            .is_some_and(|h| h.contains("&lt;script&gt;"))
    });
    assert!(escaped, "the <script> name is shown escaped");
    let shown = messages.iter().any(|m| {
        m["text"]
            .as_str()
            .is_some_and(|t| t.contains("Zuzana Okafor, Tagged Traders"))
    });
    assert!(
        shown,
        "the hidden row is alerted, its text without what was hidden"
    );
    assert_outbox_plain(f.outbox.path(), rows.len());
    let (code, report) = run_cli(&f.settings, &["report", "--format", "json"]).await;
    assert_eq!(code, Some(0), "{report}");
    let report: Value = serde_json::from_str(&report).expect("report JSON");
    assert_nothing_hidden("report", &report);

    let (status, again) = handler.invoke_timer().await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(teams.posts().len(), rows.len(), "nothing re-sent");
    assert!(handler.is_running());
    assert_handler_quiet(&handler, &f, &[&body, &again], &HOSTILE_NEEDLES);
}

/// The outbox's `.eml` (decoded) and `.json` files: one pair per lead, no
/// hidden characters in either.
fn assert_outbox_plain(dir: &std::path::Path, leads: usize) {
    let mut eml = 0;
    for entry in std::fs::read_dir(dir).expect("outbox") {
        let path = entry.expect("outbox entry").path();
        let bytes = std::fs::read(&path).expect("outbox file");
        let what = path.display().to_string();
        match path.extension().and_then(|e| e.to_str()) {
            Some("eml") => {
                eml += 1;
                let message = mail_parser::MessageParser::default()
                    .parse(&bytes)
                    .expect("an email");
                assert_plain(&what, message.subject().unwrap_or(""));
                for part in 0..2 {
                    let text = message.body_text(part).unwrap_or_default();
                    let html = message.body_html(part).unwrap_or_default();
                    // Lines end in CRLF in a message; that is not lead text.
                    assert_plain(&what, &text.replace("\r\n", "\n"));
                    assert_plain(&what, &html.replace("\r\n", "\n"));
                }
            }
            Some("json") => {
                assert_nothing_hidden(&what, &serde_json::from_slice(&bytes).expect("JSON"))
            }
            _ => {}
        }
    }
    assert_eq!(eml, leads, "one .eml per lead");
}

/// Sends `request` on a fresh connection and returns the status line, or
/// `None` when the handler closed the connection without answering.
async fn raw_exchange(port: u16, request: &[u8]) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let _ = stream.write_all(request).await;
    let _ = stream.shutdown().await;
    status_line(&mut stream).await
}

async fn status_line(stream: &mut TcpStream) -> Option<String> {
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(40), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the handler neither answered nor closed");
    let text = String::from_utf8_lossy(&answer);
    text.lines()
        .next()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
}

fn is_4xx(line: &Option<String>) -> bool {
    match line {
        None => true,
        Some(line) => line
            .split_whitespace()
            .nth(1)
            .is_some_and(|s| s.starts_with('4')),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_invocations_get_4xx_or_a_closed_connection_and_the_handler_keeps_serving() {
    let f = Fixture::new(&storage_connection());
    write_rows(&f, &common::faults::lead_rows("invocations", 1)).await;
    let mut handler = Handler::start(&f.settings).await;
    let http = reqwest::Client::new();
    let post = |path: &str, body: Vec<u8>| {
        http.post(handler.url(path))
            .header("Content-Type", "application/json")
            .body(body)
            .send()
    };

    // A client trickling its body holds no slot that others need.
    let mut slow = TcpStream::connect(("127.0.0.1", handler.port))
        .await
        .unwrap();
    slow.write_all(
        b"POST /LeadNotifier HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"Data\":",
    )
    .await
    .unwrap();
    let mut idle = Vec::new();
    for _ in 0..20 {
        let mut c = TcpStream::connect(("127.0.0.1", handler.port))
            .await
            .unwrap();
        c.write_all(b"POST /LeadNotifier HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{")
            .await
            .unwrap();
        idle.push(c);
    }

    for path in [
        "/NoSuchFunction",
        "/api/LeadNotifier",
        "/LeadNotifier/extra",
        "/%2e%2e/etc/passwd",
    ] {
        let answer = post(path, b"{}".to_vec()).await.expect("answered");
        assert_eq!(answer.status().as_u16(), 404, "{path}");
        slow.write_all(b" ").await.unwrap();
    }
    let bodies: [&[u8]; 12] = [
        b"{not json",
        b"",
        b"\x00\x01\x02",
        b"\xff\xfe{\"Data\":{}}",
        b"[1,2,3]",
        b"\"LeadNotifier\"",
        b"null",
        b"42",
        b"{\"Data\": 5}",
        b"{\"Data\": []}",
        b"{\"Data\": \"timer\"}",
        b"{\"Data\": {\"timer\": 1}, \"Metadata\": [",
    ];
    for body in bodies {
        let answer = post("/LeadNotifier", body.to_vec())
            .await
            .expect("answered");
        let status = answer.status().as_u16();
        assert!(
            (400..500).contains(&status),
            "{:?} answered {status}",
            String::from_utf8_lossy(body)
        );
        slow.write_all(b" ").await.unwrap();
    }
    let huge = vec![b' '; 12 * 1024 * 1024];
    match post("/LeadNotifier", huge).await {
        Ok(answer) => assert_eq!(answer.status().as_u16(), 413),
        Err(e) => assert!(e.is_request() || e.is_body(), "closed is fine: {e}"),
    }
    let not_http = raw_exchange(
        handler.port,
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n",
    )
    .await;
    assert!(is_4xx(&not_http), "not HTTP: {not_http:?}");
    let smuggled = raw_exchange(
        handler.port,
        b"POST /LeadNotifier HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    )
    .await;
    assert!(
        is_4xx(&smuggled),
        "Content-Length with chunked: {smuggled:?}"
    );

    // Meanwhile the handler serves the host: ready check and a real run.
    let ready = http
        .get(handler.url("/"))
        .send()
        .await
        .expect("ready check");
    assert_eq!(ready.status().as_u16(), 200);
    let (status, run) = handler.invoke_timer().await;
    assert_eq!(status, 200, "a real invocation still runs: {run}");
    assert_eq!(count(&run, "delivered", "outbox"), 1, "{run}");

    // The trickling client gives up: its request ends in 4xx or a close.
    slow.shutdown().await.unwrap();
    let ended = status_line(&mut slow).await;
    assert!(is_4xx(&ended), "a cut-off body: {ended:?}");
    drop(idle);

    assert!(handler.is_running());
    let ready = http
        .get(handler.url("/"))
        .send()
        .await
        .expect("still serving");
    assert_eq!(ready.status().as_u16(), 200);
    assert_handler_quiet(&handler, &f, &[&run], &common::faults::CUSTOMER_NEEDLES);
}
