//! One bad value costs one field, never the table or the lead: rows and
//! posts holding half an emoji (a lone UTF-16 surrogate), a row no reader
//! can take, and posted fields longer than Table storage holds.

mod common;

use std::time::Duration;

use common::faults::{
    assert_handler_quiet, count, lead_rows, write_entity_text, write_rows, Fixture, Teams,
    LEAD_PARTITION,
};
use common::handler::{http_invocation, res_status, Handler};
use common::proxy::FaultProxy;
use common::servers::{storage_connection, Azurite};
use lead_notifier::lead::LeadRow;
use lead_notifier::lead_table::Scan;
use lead_notifier::storage::parse_timestamp;
use serde_json::{json, Value};

/// The longest string property Azurite stores, in UTF-16 units: its
/// `checkProperties` refuses a JavaScript `length` over `32 * 1024`.
const AZURITE_STRING_MAX: usize = 32 * 1024;

/// Every row of the fixture's lead table, as the notifier reads it.
async fn stored_rows(f: &Fixture) -> Vec<LeadRow> {
    let storage = f.storage();
    let mut scan = Scan::new(&storage, f.leads_table(), None);
    let mut rows = Vec::new();
    while let Some(page) = scan.next_page().await.expect("lead table readable") {
        rows.extend(page);
    }
    rows
}

/// The accepted Teams cards as text, one a card.
fn cards(teams: &Teams) -> Vec<String> {
    teams
        .posts()
        .iter()
        .filter(|p| p.accepted())
        .map(|p| p.body.to_string())
        .collect()
}

/// The one card that names `row_key`.
fn card_for(teams: &Teams, row_key: &str) -> String {
    let mut found: Vec<String> = cards(teams)
        .into_iter()
        .filter(|c| c.contains(row_key))
        .collect();
    assert_eq!(found.len(), 1, "one card for {row_key}: {found:?}");
    found.remove(0)
}

fn eml_files(f: &Fixture) -> usize {
    std::fs::read_dir(f.outbox.path())
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
                .count()
        })
        .unwrap_or(0)
}

/// The run's watermark is at or after every row's Timestamp.
fn assert_watermark_past(run: &Value, rows: &[LeadRow]) {
    let watermark = run["ReturnValue"]["watermark"]
        .as_str()
        .and_then(parse_timestamp)
        .unwrap_or_else(|| panic!("no watermark: {run}"));
    for row in rows {
        let at = row.timestamp.as_deref().and_then(parse_timestamp);
        let at = at.unwrap_or_else(|| panic!("{} has no Timestamp", row.row_key));
        assert!(
            watermark >= at,
            "watermark {watermark} before {}",
            row.row_key
        );
    }
}

/// Partner Center's HTTPS-endpoint JSON with the given description.
fn posted_lead(description: &str) -> Value {
    json!({
        "UserDetails": {"FirstName": "Grace", "LastName": "Hopper", "Email": "grace@lone.example",
                        "Phone": "+1 555 0100", "Country": "US", "Company": "Navy", "Title": "RADM"},
        "LeadSource": "AzureMarketplace", "ActionCode": "PLT",
        "OfferTitle": "Contoso CRM Suite", "Description": description
    })
}

const CUSTOMER: [&str; 4] = [
    "Hopper",
    "grace@lone.example",
    "Lovelace",
    "ada@lone.example",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_with_half_an_emoji_is_alerted_and_the_rows_after_it_too() {
    let teams = Teams::start(&[], Duration::ZERO).await;
    let mut f = Fixture::new(&storage_connection());
    f.teams(&teams);
    // As Table storage's JSON carries them: in Description a lone high
    // surrogate, a lone low one and a whole pair; in CustomerInfo (JSON
    // text itself) a lone escape one level down.
    let info =
        json!({"FirstName": "AdaINNER", "LastName": "Lovelace", "Email": "ada@lone.example"});
    let entity = json!({
        "PartitionKey": LEAD_PARTITION, "RowKey": "lone-surrogate",
        "ActionCode": "PLT", "LeadSource": "SPZA-PLT|contoso.crm-suite",
        "OfferDisplayName": "Contoso CRM Suite", "CustomerInfo": info.to_string(),
        "Description": "half HIGH and LOW but whole PAIR",
    })
    .to_string()
    .replace("HIGH", r"\ud83d")
    .replace("LOW", r"\ude00")
    .replace("PAIR", r"\ud83d\ude00")
    .replace("INNER", r"\\ud83d");
    write_entity_text(&f, &entity)
        .await
        .expect("Azurite keeps lone surrogates");
    // A normal lead written after it.
    write_rows(&f, &lead_rows("after", 1)).await;
    let handler = Handler::start(&f.settings).await;

    let (status, run) = handler.invoke_timer().await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["ReturnValue"]["rows_scanned"], 2, "{run}");
    assert_eq!(count(&run, "delivered", "teams"), 2, "{run}");
    assert_eq!(count(&run, "delivered", "outbox"), 2, "{run}");
    assert_eq!(eml_files(&f), 2);
    card_for(&teams, "after-00000");
    let card = card_for(&teams, "lone-surrogate");
    assert!(
        card.contains("half \u{FFFD} and \u{FFFD} but whole 😀"),
        "{card}"
    );
    assert!(card.contains("Ada\u{FFFD} Lovelace"), "{card}");
    assert!(!card.contains("could not be read"), "{card}");
    assert_watermark_past(&run, &stored_rows(&f).await);

    let (status, again) = handler.invoke_timer().await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(teams.posts().len(), 2, "nothing sent twice");
    assert_handler_quiet(&handler, &f, &[&run, &again], &CUSTOMER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_that_cannot_be_read_is_named_by_its_keys_and_the_scan_goes_on() {
    // A row valid as JSON that no reader here takes (a number beyond any
    // float): Azurite never answers one, so a proxy puts it in its answers.
    let azurite = Azurite::spawn();
    let proxy = FaultProxy::rewriting(azurite.port, &[("\"ODD\"", "1e400")]).await;
    let teams = Teams::start(&[], Duration::ZERO).await;
    let direct = Fixture::new(&azurite.connection_string());
    let mut f = direct.through(&proxy.connection_string());
    f.teams(&teams);
    let entity = json!({
        "PartitionKey": LEAD_PARTITION, "RowKey": "unreadable",
        "Description": "Ada Lovelace wants a demo", "Odd": "ODD",
    });
    write_entity_text(&direct, &entity.to_string())
        .await
        .expect("entity stored");
    write_rows(&direct, &lead_rows("readable", 1)).await;
    let handler = Handler::start(&f.settings).await;

    let (status, run) = handler.invoke_timer().await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(count(&run, "delivered", "teams"), 1, "{run}");
    card_for(&teams, "readable-00000");
    let problems = run["ReturnValue"]["problems"].to_string();
    assert!(
        problems.contains(&format!("lead row {LEAD_PARTITION}/unreadable skipped")),
        "{run}"
    );
    assert_watermark_past(&run, &stored_rows(&direct).await);
    assert_handler_quiet(&handler, &f, &[&run], &CUSTOMER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_posted_lead_with_half_an_emoji_is_stored_and_alerted() {
    let teams = Teams::start(&[], Duration::ZERO).await;
    let mut f = Fixture::new(&storage_connection());
    // One customer posts each lead: each is alerted, none folded as a repeat.
    f.teams(&teams).set("REPEAT_WINDOW", "0");
    let handler = Handler::start(&f.settings).await;
    let mut answers = Vec::new();

    // In Partner Center's text: the escape is in the posted JSON.
    let posted = posted_lead("posted LONE")
        .to_string()
        .replace("LONE", r"\ud83d");
    let (status, body) = handler
        .invoke("LeadWebhook", &http_invocation(&posted))
        .await;
    assert_eq!((status, res_status(&body)), (200, 201), "{body}");
    assert!(card_for(&teams, "posted \u{FFFD}").contains("Grace Hopper"));
    answers.push(body);

    // In the host's invocation body: the host's own JSON carries the lone
    // surrogate, in the body as text and in a body it passed parsed.
    let text = http_invocation(&posted_lead("in text LONE").to_string())
        .to_string()
        .replace("LONE", r"\ud83d");
    let mut parsed = http_invocation("");
    parsed["Data"]["req"]["Body"] = posted_lead("parsed LONE");
    let parsed = parsed.to_string().replace("LONE", r"\udc00");
    for (invocation, shown) in [(text, "in text \u{FFFD}"), (parsed, "parsed \u{FFFD}")] {
        let (status, body) = handler.invoke_text("LeadWebhook", invocation).await;
        assert_eq!((status, res_status(&body)), (200, 201), "{body}");
        card_for(&teams, shown);
        answers.push(body);
    }

    let rows = stored_rows(&f).await;
    let mut descriptions: Vec<&str> = rows
        .iter()
        .filter_map(|r| r.description.as_deref())
        .collect();
    descriptions.sort_unstable();
    assert_eq!(
        descriptions,
        ["in text \u{FFFD}", "parsed \u{FFFD}", "posted \u{FFFD}"]
    );
    let answers: Vec<&Value> = answers.iter().collect();
    assert_handler_quiet(&handler, &f, &answers, &CUSTOMER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azurite_stores_strings_up_to_32k_units_and_the_notifier_caps_to_that() {
    assert_eq!(lead_notifier::lead::MAX_PROPERTY_UTF16, AZURITE_STRING_MAX);
    let f = Fixture::new(&storage_connection());
    let entity = |key: &str, text: String| {
        json!({"PartitionKey": "limit", "RowKey": key, "Description": text}).to_string()
    };
    // ASCII, one unit a character: Azurite reads a request body chunk by
    // chunk and turns each into text on its own, so a long body of other
    // characters can come out longer than it was sent (a character split
    // between chunks becomes two U+FFFD), which would blur the limit. The
    // units of other characters are counted in src/lead/fit.rs's tests.
    let at = "x".repeat(AZURITE_STRING_MAX);
    write_entity_text(&f, &entity("at", at.clone()))
        .await
        .expect("32,768 units are stored");
    let refused = write_entity_text(&f, &entity("over", format!("{at}x")))
        .await
        .expect_err("one unit more is refused");
    let text = format!("{refused:?}");
    assert!(text.contains("PropertyValueTooLarge"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_posted_lead_with_a_field_too_long_for_table_storage_is_stored_cut_and_alerted() {
    let teams = Teams::start(&[], Duration::ZERO).await;
    let mut f = Fixture::new(&storage_connection());
    // One customer posts each lead: each is alerted, none folded as a repeat.
    f.teams(&teams).set("REPEAT_WINDOW", "0");
    let handler = Handler::start(&f.settings).await;

    // 40,000 characters: under the 64 KiB body limit, over a property's.
    let description: String = "Please call me back. "
        .chars()
        .cycle()
        .take(40_000)
        .collect();
    let (status, body) = handler
        .invoke(
            "LeadWebhook",
            &http_invocation(&posted_lead(&description).to_string()),
        )
        .await;
    assert_eq!((status, res_status(&body)), (200, 201), "{body}");

    // Customer details over the limit together: each member is cut, the
    // JSON stays whole.
    let mut lead = posted_lead("Long company");
    lead["UserDetails"]["Company"] = json!("Northwind ".repeat(2_000));
    lead["UserDetails"]["Title"] = json!("Chief ".repeat(3_000));
    assert!(lead.to_string().len() < 64 * 1024);
    let (status, long_details) = handler
        .invoke("LeadWebhook", &http_invocation(&lead.to_string()))
        .await;
    assert_eq!(
        (status, res_status(&long_details)),
        (200, 201),
        "{long_details}"
    );

    let rows = stored_rows(&f).await;
    assert_eq!(rows.len(), 2, "both stored");
    let units = |s: &str| s.encode_utf16().count();
    let cut = rows
        .iter()
        .find_map(|r| r.description.as_deref().filter(|d| d.len() > 1_000))
        .expect("the long description is stored");
    assert!(units(cut) <= AZURITE_STRING_MAX, "{} units", units(cut));
    assert!(
        cut.starts_with("[cut: the last ") && cut.contains("Please call me back."),
        "{}",
        cut.chars().take(200).collect::<String>()
    );
    let info = rows
        .iter()
        .find(|r| r.description.as_deref() == Some("Long company"))
        .and_then(|r| r.customer_info.clone())
        .expect("customer details stored");
    assert!(units(&info) <= AZURITE_STRING_MAX, "{} units", units(&info));
    let details: Value = serde_json::from_str(&info).expect("CustomerInfo is whole JSON");
    for member in ["Company", "Title"] {
        let text = details[member].as_str().unwrap_or_default();
        let start: String = text.chars().take(80).collect();
        assert!(text.starts_with("[cut: the last "), "{member}: {start}");
    }
    assert_eq!(details["Email"], "grace@lone.example");
    assert_eq!(details["LastName"], "Hopper");

    // The alerts say so.
    assert_eq!(cards(&teams).len(), 2, "both alerted");
    let card = card_for(&teams, "Please call me back.");
    assert!(card.contains("[cut: the last "), "{card}");
    let card = card_for(&teams, "Long company");
    assert!(card.contains("[cut: the last "), "{card}");
    assert_handler_quiet(&handler, &f, &[&body, &long_details], &CUSTOMER);
}
