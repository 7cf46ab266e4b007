//! Shared pieces of the fault-injection suite (tests/faults_*.rs): a
//! scriptable Teams webhook that records every post, lead rows written fast,
//! a look into the delivery ledger, per-lead counting of what each channel
//! received, and the leak check every scenario ends with.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use lead_notifier::config::Settings;
use lead_notifier::lead::LeadRow;
use lead_notifier::storage::Storage;
use serde_json::{json, Value};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use super::handler::Handler;
use super::servers::{maildev_messages, unique_table, DEV_KEY};

/// Microsoft's PartitionKey form for the day the suite's rows claim.
pub const LEAD_PARTITION: &str = "11:2F21:2F2026";
/// Text that is in every row [`lead_rows`] writes and must never be printed.
pub const CUSTOMER_NEEDLES: [&str; 4] = ["Okonkwo", "Adaeze", "@customer-", "7946 0"];

// ---------------------------------------------------------------- Teams

/// One answer of the scripted webhook.
#[derive(Debug, Clone, Copy)]
pub struct TeamsReply {
    pub status: u16,
    pub retry_after: Option<&'static str>,
}

impl TeamsReply {
    pub const fn status(status: u16) -> TeamsReply {
        TeamsReply {
            status,
            retry_after: None,
        }
    }
}

/// One post the webhook received and how it answered.
#[derive(Debug, Clone)]
pub struct Post {
    pub at: Instant,
    pub status: u16,
    pub body: Value,
    /// The body's size as posted.
    pub bytes: usize,
}

impl Post {
    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

struct Script {
    replies: Mutex<VecDeque<TeamsReply>>,
    delay: Duration,
    posts: Arc<Mutex<Vec<Post>>>,
}

impl Respond for Script {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let reply = self
            .replies
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(TeamsReply::status(202));
        let body = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        self.posts.lock().unwrap().push(Post {
            at: Instant::now(),
            status: reply.status,
            body,
            bytes: request.body.len(),
        });
        let mut template = ResponseTemplate::new(reply.status).set_delay(self.delay);
        if let Some(after) = reply.retry_after {
            template = template.insert_header("Retry-After", after);
        }
        if reply.status >= 400 {
            template = template
                .set_body_json(json!({"error": {"code": "TestFault", "message": "injected"}}));
        }
        template
    }
}

/// A Teams Workflows webhook stand-in: answers `replies` in order, then 202
/// to everything, each after `delay`, and keeps every post.
pub struct Teams {
    pub server: MockServer,
    posts: Arc<Mutex<Vec<Post>>>,
    /// The URL's credential, so tests can check it is never printed.
    pub sig: String,
}

impl Teams {
    pub async fn start(replies: &[TeamsReply], delay: Duration) -> Teams {
        let server = MockServer::start().await;
        let posts = Arc::new(Mutex::new(Vec::new()));
        Mock::given(method("POST"))
            .respond_with(Script {
                replies: Mutex::new(replies.iter().copied().collect()),
                delay,
                posts: posts.clone(),
            })
            .mount(&server)
            .await;
        let sig = format!("SIG{}", unique_table("teams"));
        Teams { server, posts, sig }
    }

    pub fn url(&self) -> String {
        format!(
            "{}/workflows/0a1b/triggers/manual/paths/invoke?api-version=1&sig={}",
            self.server.uri(),
            self.sig
        )
    }

    pub fn posts(&self) -> Vec<Post> {
        self.posts.lock().unwrap().clone()
    }

    /// Cards Teams accepted, per lead ("PartitionKey / RowKey").
    pub fn cards_per_lead(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for post in self.posts().iter().filter(|p| p.accepted()) {
            for key in card_lead_keys(&post.body) {
                *counts.entry(key).or_insert(0) += 1;
            }
        }
        counts
    }
}

/// The "Lead keys" values in a card: the TextRun after the one labelled so.
pub fn card_lead_keys(card: &Value) -> Vec<String> {
    let mut keys = Vec::new();
    walk(card, &mut |value| {
        if let Some(inlines) = value.get("inlines").and_then(Value::as_array) {
            for pair in inlines.windows(2) {
                let label = pair[0]["text"].as_str().unwrap_or("");
                if label.trim_end().trim_end_matches(':') == "Lead keys" {
                    if let Some(key) = pair[1]["text"].as_str() {
                        keys.push(key.trim().to_owned());
                    }
                }
            }
        }
    });
    keys
}

/// Calls `visit` on every JSON value inside `value`, itself included.
pub fn walk(value: &Value, visit: &mut dyn FnMut(&Value)) {
    visit(value);
    match value {
        Value::Array(items) => items.iter().for_each(|v| walk(v, visit)),
        Value::Object(map) => map.values().for_each(|v| walk(v, visit)),
        _ => {}
    }
}

/// The key text alerts show for a row: `PartitionKey / RowKey`.
pub fn shown_key(row: &LeadRow) -> String {
    format!("{} / {}", row.partition_key, row.row_key)
}

// ---------------------------------------------------------------- Slack

/// A Slack incoming webhook stand-in: answers every post `200 ok`.
pub struct Slack {
    pub server: MockServer,
    /// The URL's secret path part, so tests can check it is never printed.
    pub secret: String,
}

impl Slack {
    pub async fn start() -> Slack {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
            .mount(&server)
            .await;
        let secret = format!("SLK{}", unique_table("slack"));
        Slack { server, secret }
    }

    pub fn url(&self) -> String {
        format!("{}/services/T1/B1/{}", self.server.uri(), self.secret)
    }

    /// Every post's raw body, in order.
    pub async fn posts(&self) -> Vec<Vec<u8>> {
        let requests = self.server.received_requests().await.unwrap_or_default();
        requests.into_iter().map(|r| r.body).collect()
    }
}

// ---------------------------------------------------------------- settings

/// Settings of one scenario: fresh tables on `storage`, every lead from the
/// beginning, one alert per lead (no digests), short retry budget.
pub struct Fixture {
    pub settings: HashMap<String, String>,
    pub outbox: tempfile::TempDir,
    pub secrets: Vec<String>,
}

impl Fixture {
    pub fn new(storage: &str) -> Fixture {
        let outbox = tempfile::tempdir().expect("outbox dir");
        let settings = HashMap::from([
            ("LEADS_STORAGE_CONNECTION".to_owned(), storage.to_owned()),
            ("LEADS_TABLE".to_owned(), unique_table("fleads")),
            ("LEADS_STATE_TABLE".to_owned(), unique_table("fstate")),
            ("LEADS_START_FROM".to_owned(), "beginning".to_owned()),
            ("DIGEST_AFTER".to_owned(), "100000".to_owned()),
            ("RETRY_BUDGET".to_owned(), "2s".to_owned()),
            ("OUTBOX_DIR".to_owned(), outbox.path().display().to_string()),
        ]);
        Fixture {
            settings,
            outbox,
            secrets: vec![DEV_KEY[..20].to_owned()],
        }
    }

    pub fn set(&mut self, name: &str, value: impl Into<String>) -> &mut Fixture {
        self.settings.insert(name.to_owned(), value.into());
        self
    }

    pub fn without(&mut self, name: &str) -> &mut Fixture {
        self.settings.remove(name);
        self
    }

    pub fn slack(&mut self, slack: &Slack) -> &mut Fixture {
        self.secrets.push(slack.secret.clone());
        self.set("SLACK_WEBHOOK_URL", slack.url())
    }

    pub fn teams(&mut self, teams: &Teams) -> &mut Fixture {
        self.secrets.push(teams.sig.clone());
        self.set("TEAMS_WEBHOOK_URL", teams.url())
    }

    /// Email through a plain-text SMTP server on 127.0.0.1:`port`.
    pub fn smtp(&mut self, port: u16, recipient: &str) -> &mut Fixture {
        self.set("SMTP_HOST", "127.0.0.1")
            .set("SMTP_PORT", port.to_string())
            .set("SMTP_SECURITY", "none")
            .set("EMAIL_FROM", "Lead alerts <leads@contoso.example>")
            .set("EMAIL_TO", recipient)
    }

    /// Email through Microsoft Graph at `endpoint` (`GRAPH_ENDPOINT`), with
    /// tokens from the App Service managed identity endpoint; the identity
    /// header joins the secrets that must never be printed.
    pub fn graph(
        &mut self,
        endpoint: &str,
        identity_endpoint: &str,
        identity_header: &str,
    ) -> &mut Fixture {
        self.secrets.push(identity_header.to_owned());
        self.set("EMAIL_VIA", "graph")
            .set("GRAPH_ENDPOINT", endpoint)
            .set("EMAIL_FROM", "Lead alerts <leads@contoso.example>")
            .set("EMAIL_TO", "sales@contoso.example")
            .set("IDENTITY_ENDPOINT", identity_endpoint)
            .set("IDENTITY_HEADER", identity_header)
    }

    /// SMTP login; the password joins the secrets that must never be printed.
    pub fn smtp_login(&mut self) -> &mut Fixture {
        let password = format!("PW{}", unique_table("smtp"));
        self.secrets.push(password.clone());
        self.set("SMTP_USERNAME", "leads@contoso.example")
            .set("SMTP_PASSWORD", password)
    }

    /// A fixture on this one's tables that reaches storage through another
    /// connection (a proxy in front of the same Azurite).
    pub fn through(&self, storage: &str) -> Fixture {
        let mut f = Fixture::new(storage);
        f.set("LEADS_TABLE", self.leads_table())
            .set("LEADS_STATE_TABLE", self.state_table());
        f
    }

    pub fn parsed(&self) -> Settings {
        Settings::from_map(&self.settings).expect("valid settings")
    }

    pub fn leads_table(&self) -> &str {
        &self.settings["LEADS_TABLE"]
    }

    pub fn state_table(&self) -> &str {
        &self.settings["LEADS_STATE_TABLE"]
    }

    pub fn storage(&self) -> Storage {
        Storage::new(&self.parsed().storage, reqwest::Client::new())
    }
}

// ---------------------------------------------------------------- rows

/// `n` ordinary leads (none filtered out), RowKeys `{tag}-00000`… Every
/// customer detail contains one of [`CUSTOMER_NEEDLES`].
pub fn lead_rows(tag: &str, n: usize) -> Vec<LeadRow> {
    (0..n)
        .map(|i| {
            let info = json!({
                "FirstName": "Adaeze", "LastName": format!("Okonkwo{i}"),
                "Email": format!("adaeze{i}@customer-{tag}.example"),
                "Phone": format!("+44 20 7946 0{:03}", i % 1000),
                "Country": "GB", "Company": "Northwind Traders", "Title": "CTO",
            });
            LeadRow {
                partition_key: LEAD_PARTITION.to_owned(),
                row_key: format!("{tag}-{i:05}"),
                timestamp: None,
                action_code: Some("PLT".to_owned()),
                created_time: Some("11/21/2026 10:45:00 AM".to_owned()),
                customer_info: Some(info.to_string()),
                description: Some("Wants a demo".to_owned()),
                lead_source: Some("AzureMarketplace-PLT|contoso.crm-suite".to_owned()),
                offer_display_name: Some("Contoso CRM Suite".to_owned()),
            }
        })
        .collect()
}

/// What a digest must show of one lead of [`varied_rows`].
#[derive(Debug, Clone)]
pub struct Shown {
    /// `PartitionKey / RowKey`.
    pub key: String,
    pub email: String,
    pub details: Vec<String>,
    pub app_source: bool,
}

/// `n` leads of `n` different customers (name, company, address, phone,
/// country), over three partitions, two offers, two sources and two actions
/// (every other lead is from AppSource), with what each alert must show.
pub fn varied_rows(tag: &str, n: usize) -> (Vec<LeadRow>, Vec<Shown>) {
    const FIRST: [&str; 5] = ["Adaeze", "Ines", "Kofi", "Mei", "Tomas"];
    const COUNTRY: [&str; 5] = ["GB", "DE", "US", "FR", "JP"];
    const KINDS: [(&str, &str, &str); 4] = [
        (
            "SPZA-PLT|contoso.crm-suite",
            "Contoso CRM Suite",
            "Contact me",
        ),
        (
            "AzureMarketplace-INS|fabrikam.bi",
            "Fabrikam Analytics",
            "Get it now",
        ),
        ("SPZA-INS|fabrikam.bi", "Fabrikam Analytics", "Get it now"),
        (
            "AzureMarketplace-PLT|contoso.crm-suite",
            "Contoso CRM Suite",
            "Contact me",
        ),
    ];
    (0..n)
        .map(|i| {
            let (lead_source, offer, action) = KINDS[i % 4];
            let first = FIRST[i % 5];
            let last = format!("Okonkwo{i:03}");
            let company = format!("Northwind {i:03} Ltd");
            let email = format!("buyer{i:03}.{tag}@customer-{i:03}.example");
            let phone = format!("+44 20 7946 0{i:03}");
            let country = COUNTRY[(i / 5) % 5];
            let info = json!({
                "FirstName": first, "LastName": last, "Email": email, "Phone": phone,
                "Country": country, "Company": company, "Title": "Head of IT",
            });
            let row = LeadRow {
                partition_key: format!("11:2F{}:2F2026", 19 + i % 3),
                row_key: format!("{tag}-{i:05}"),
                timestamp: None,
                action_code: None,
                created_time: Some("11/21/2026 10:45:00 AM".to_owned()),
                customer_info: Some(info.to_string()),
                description: Some(format!("Wants a demo for {} people", 10 + i)),
                lead_source: Some(lead_source.to_owned()),
                offer_display_name: Some(offer.to_owned()),
            };
            let shown = Shown {
                key: shown_key(&row),
                email: email.clone(),
                details: vec![
                    format!("{first} {last}"),
                    company,
                    email,
                    phone,
                    country.to_owned(),
                    offer.to_owned(),
                    action.to_owned(),
                ],
                app_source: lead_source.starts_with("SPZA"),
            };
            (row, shown)
        })
        .unzip()
}

/// Inserts `rows` into the fixture's lead table (created when missing), in
/// entity group transactions, the way `lead-notifier seed` does.
pub async fn write_rows(fixture: &Fixture, rows: &[LeadRow]) {
    let stored =
        lead_notifier::lead_table::store_rows(&fixture.storage(), fixture.leads_table(), rows)
            .await
            .expect("rows stored");
    assert_eq!(stored, rows.len(), "every row inserted");
}

/// Inserts one entity as given (columns a [`LeadRow`] cannot hold).
pub async fn write_entity(fixture: &Fixture, entity: &Value) {
    write_entity_text(fixture, &entity.to_string())
        .await
        .expect("entity inserted");
}

/// Inserts one entity written as JSON text, sent as it is: text a `Value`
/// cannot hold, such as a lone surrogate escape (`\ud83d`), which Azurite
/// (JavaScript strings) stores and hands back as written.
pub async fn write_entity_text(fixture: &Fixture, json: &str) -> azure_core::Result<()> {
    let storage = fixture.storage();
    let table = fixture.leads_table();
    storage
        .create_table_if_missing(table)
        .await
        .expect("create lead table");
    let entity = serde_json::value::RawValue::from_string(json.to_owned()).expect("JSON text");
    let insert = storage
        .table(table)
        .insert::<_, Value>(entity)
        .expect("insert");
    insert.await.map(drop)
}

/// Writes `row` over the stored row with its keys, as when Microsoft
/// writes a lead again: the row's `Timestamp` moves on.
pub async fn rewrite_row(fixture: &Fixture, row: &LeadRow) {
    let update = fixture
        .storage()
        .table(fixture.leads_table())
        .partition_key_client(&row.partition_key)
        .entity_client(row.row_key.clone())
        .update(row, azure_data_tables::IfMatchCondition::Any)
        .expect("update");
    update.await.expect("row rewritten");
}

/// The `Timestamp` Table storage gave the stored row with `row`'s keys.
pub async fn row_timestamp(fixture: &Fixture, row: &LeadRow) -> time::OffsetDateTime {
    let stored =
        lead_notifier::lead_table::stored_row(&fixture.storage(), fixture.leads_table(), row)
            .await
            .expect("lead table readable")
            .expect("row stored");
    stored
        .timestamp
        .as_deref()
        .and_then(lead_notifier::storage::parse_timestamp)
        .expect("row has a Timestamp")
}

// ---------------------------------------------------------------- ledger

/// One (lead, channel) record of the delivery ledger, as stored.
#[derive(Debug, Clone)]
pub struct LedgerRecord {
    /// The record's own RowKey.
    pub row_key: String,
    /// `PartitionKey / RowKey` of the lead.
    pub lead: String,
    pub channel: String,
    pub status: String,
    pub attempts: u64,
    pub last_error: String,
}

/// Every ledger record in the fixture's state table (watermarks left out).
pub async fn ledger(fixture: &Fixture) -> Vec<LedgerRecord> {
    let storage = fixture.storage();
    let mut pages = storage
        .table(fixture.state_table())
        .query()
        .into_stream::<Value>();
    let mut records = Vec::new();
    while let Some(page) = pages.next().await {
        for entity in page.expect("state table readable").entities {
            let text = |name: &str| entity[name].as_str().unwrap_or("").to_owned();
            if text("Channel").is_empty() {
                continue;
            }
            records.push(LedgerRecord {
                row_key: text("RowKey"),
                lead: format!("{} / {}", text("LeadPartitionKey"), text("LeadRowKey")),
                channel: text("Channel"),
                status: text("Status"),
                attempts: entity["Attempts"].as_u64().unwrap_or(0),
                last_error: text("LastError"),
            });
        }
    }
    records
}

/// Teams alerts claimed but not recorded as delivered: the ones a crash or a
/// storage outage may have caught after sending.
pub async fn teams_claims_in_flight(fixture: &Fixture) -> std::collections::BTreeSet<String> {
    claims_in_flight(fixture, "teams").await
}

/// Alerts on `channel` claimed but not recorded as delivered.
pub async fn claims_in_flight(
    fixture: &Fixture,
    channel: &str,
) -> std::collections::BTreeSet<String> {
    ledger(fixture)
        .await
        .into_iter()
        .filter(|r| r.channel == channel && r.status == "claimed")
        .map(|r| r.lead)
        .collect()
}

/// Checks that every row got its card and that only alerts in flight were
/// sent twice (never more); returns how many were.
pub fn doubled_cards(
    rows: &[LeadRow],
    cards: &BTreeMap<String, usize>,
    in_flight: &std::collections::BTreeSet<String>,
) -> usize {
    let mut doubled = 0;
    for row in rows {
        let key = shown_key(row);
        let n = cards.get(&key).copied().unwrap_or(0);
        assert!(n >= 1, "{key} lost");
        if n > 1 {
            assert!(
                in_flight.contains(&key),
                "{key} sent {n} times but was not in flight"
            );
            assert_eq!(n, 2, "{key} sent {n} times");
            doubled += 1;
        }
    }
    doubled
}

// ---------------------------------------------------------------- email

/// The "Lead keys:" values in a plain-text email body.
pub fn email_lead_keys(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| line.trim_start().strip_prefix("Lead keys:"))
        .map(|rest| rest.trim().to_owned())
        .collect()
}

/// Emails per lead among MailDev's messages to `recipient`.
pub async fn emails_per_lead(recipient: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for message in maildev_messages(recipient).await {
        for key in email_lead_keys(message["text"].as_str().unwrap_or("")) {
            *counts.entry(key).or_insert(0) += 1;
        }
    }
    counts
}

// ---------------------------------------------------------------- runs

/// A run summary's count, e.g. `count(&body, "delivered", "teams")`.
pub fn count(body: &Value, map: &str, key: &str) -> u64 {
    body["ReturnValue"][map][key].as_u64().unwrap_or(0)
}

/// Invokes the timer until a run leaves nothing owed (200, nothing pending
/// or busy), at most `max` times, a second apart; returns every answer.
pub async fn invoke_until_settled(handler: &Handler, max: usize) -> Vec<(u16, Value)> {
    let mut answers = Vec::new();
    for _ in 0..max {
        let (status, body) = handler.invoke_timer().await;
        let settled = status == 200
            && body["ReturnValue"]["pending"].as_u64() == Some(0)
            && body["ReturnValue"]["busy"].as_u64() == Some(0);
        answers.push((status, body));
        if settled {
            return answers;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    panic!("runs did not settle in {max} invocations: {answers:?}");
}

/// Sums a count over several run summaries.
pub fn total(answers: &[(u16, Value)], map: &str, key: &str) -> u64 {
    answers.iter().map(|(_, body)| count(body, map, key)).sum()
}

// ---------------------------------------------------------------- leaks

/// Fails when `printed` (a handler's stdout and stderr, or an answer the
/// host would log) holds any of `needles`: customer data or secrets.
pub fn assert_no_leaks(what: &str, printed: &str, needles: &[String]) {
    for needle in needles {
        if let Some(at) = printed.find(needle.as_str()) {
            let start = printed[..at]
                .char_indices()
                .rev()
                .nth(80)
                .map_or(0, |(i, _)| i);
            let context: String = printed[start..].chars().take(200).collect();
            panic!("{what} contains {needle:?}: …{context}…");
        }
    }
}

/// Checks a handler's whole output and the answers it gave against the
/// fixture's secrets and the given customer details.
pub fn assert_handler_quiet(
    handler: &Handler,
    fixture: &Fixture,
    answers: &[&Value],
    customer: &[&str],
) {
    let mut needles: Vec<String> = fixture.secrets.clone();
    needles.extend(customer.iter().map(|s| s.to_string()));
    assert_no_leaks("handler stdout", &handler.stdout(), &needles);
    assert_no_leaks("handler stderr", &handler.stderr(), &needles);
    for answer in answers {
        assert_no_leaks("invocation answer", &answer.to_string(), &needles);
    }
}
