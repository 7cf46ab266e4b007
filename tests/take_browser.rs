//! The take link in a real browser: Debian's Chromium, driven through
//! chromedriver's WebDriver API, opens the link from the email as MailDev
//! received it, types a name, clicks "I'll take it" and sees the
//! confirmation. Screenshots at phone width go to `target/screenshots/`.
//!
//! `cargo xtask test` installs Chromium and chromedriver and passes their
//! paths (`LEAD_NOTIFIER_TEST_CHROMIUM`, `LEAD_NOTIFIER_TEST_CHROMEDRIVER`).

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::chromium::CHROMIUM_FLAGS;
use common::handler::Handler;
use common::host_http::HostFront;
use common::servers::{
    free_port, maildev_messages, maildev_smtp_port, repo_root, storage_connection,
    unique_recipient, unique_table,
};
use lead_notifier::config::Settings;
use lead_notifier::lead::LeadRow;
use lead_notifier::lead_table::store_rows;
use lead_notifier::storage::Storage;
use lead_notifier::take::store::TakeStore;
use serde_json::{json, Value};

const SECRET: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
/// Phone width and height in CSS pixels (an iPhone 14's).
const PHONE: (u32, u32) = (390, 844);

/// chromedriver, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
    http: reqwest::Client,
    session: Option<String>,
    _profile: tempfile::TempDir,
}

impl Driver {
    async fn start() -> Driver {
        let binary = std::env::var("LEAD_NOTIFIER_TEST_CHROMEDRIVER")
            .unwrap_or_else(|_| "chromedriver".to_owned());
        let port = free_port();
        let child = Command::new(&binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {binary} (cargo xtask test installs it): {e}")
            });
        let mut driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            session: None,
            _profile: tempfile::tempdir().expect("profile dir"),
        };
        let started = Instant::now();
        loop {
            let ready = driver
                .http
                .get(format!("{}/status", driver.url))
                .send()
                .await;
            if let Ok(ready) = ready {
                let status: Value = ready.json().await.unwrap_or(Value::Null);
                if status["value"]["ready"] == true {
                    break;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver not ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        driver.open_session().await;
        driver
    }

    async fn open_session(&mut self) {
        let chromium = std::env::var("LEAD_NOTIFIER_TEST_CHROMIUM")
            .unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
        let profile = format!("--user-data-dir={}", self._profile.path().display());
        let mut args: Vec<String> = CHROMIUM_FLAGS.map(str::to_owned).to_vec();
        args.extend([
            "--disable-dev-shm-usage".to_owned(),
            profile,
            format!("--window-size={},{}", PHONE.0, PHONE.1),
        ]);
        let answer = self
            .call("POST", "/session", json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": chromium,
                    "args": args,
                    "mobileEmulation": {"deviceMetrics": {"width": PHONE.0, "height": PHONE.1, "pixelRatio": 2.0}},
                },
            }}}))
            .await;
        let id = answer["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {answer}"));
        self.session = Some(id.to_owned());
    }

    /// One WebDriver command; answers its `value`.
    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = match &self.session {
            Some(id) if path != "/session" => format!("{}/session/{id}{path}", self.url),
            _ => format!("{}{path}", self.url),
        };
        let request = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body),
        };
        let answer: Value = request
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .expect("chromedriver answers")
            .json()
            .await
            .expect("WebDriver JSON");
        answer["value"].clone()
    }

    async fn go(&self, url: &str) {
        self.call("POST", "/url", json!({"url": url})).await;
    }

    /// The element `css` selects, waiting up to 10 s for it.
    async fn find(&self, css: &str) -> String {
        let started = Instant::now();
        loop {
            let found = self
                .call(
                    "POST",
                    "/element",
                    json!({"using": "css selector", "value": css}),
                )
                .await;
            if let Some(id) = found
                .as_object()
                .and_then(|o| o.values().next())
                .and_then(Value::as_str)
            {
                return id.to_owned();
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no {css}: {found}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn text(&self, element: &str) -> String {
        let text = self
            .call("GET", &format!("/element/{element}/text"), json!({}))
            .await;
        text.as_str().unwrap_or_default().to_owned()
    }

    /// The text of what `css` selects once it has some: the answer page
    /// may still be loading when the element is first found.
    async fn wait_text(&self, css: &str) -> String {
        let started = Instant::now();
        loop {
            let element = self.find(css).await;
            let text = self.text(&element).await;
            if !text.is_empty() || started.elapsed() > Duration::from_secs(10) {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs axe-core (the accessibility engine of Deque's checkers, from
    /// `node_modules`) on the page for WCAG 2.1 A and AA, and fails on any
    /// violation, naming the rule and the elements.
    async fn assert_accessible(&self, page: &str) {
        let axe = std::fs::read_to_string(repo_root().join("node_modules/axe-core/axe.min.js"))
            .expect("axe-core, installed by npm ci from package.json");
        let script = format!(
            "{axe}\nconst done = arguments[arguments.length - 1];\n\
             axe.run(document, {{runOnly: {{type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}}}})\n\
             .then(r => done({{ok: true, violations: r.violations.map(v => ({{id: v.id, nodes: v.nodes.map(n => n.html)}})), passes: r.passes.length}}))\n\
             .catch(e => done({{ok: false, error: String(e)}}));"
        );
        let result = self
            .call(
                "POST",
                "/execute/async",
                json!({"script": script, "args": []}),
            )
            .await;
        assert_eq!(
            result["ok"], true,
            "axe did not run on the {page}: {result}"
        );
        assert_eq!(
            result["violations"],
            json!([]),
            "accessibility violations on the {page}"
        );
        assert!(
            result["passes"].as_u64().is_some_and(|n| n > 5),
            "axe checked next to nothing on the {page}: {result}"
        );
    }

    async fn screenshot(&self, name: &str) -> PathBuf {
        let shot = self.call("GET", "/screenshot", json!({})).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot.as_str().unwrap_or_default())
            .expect("a base64 screenshot");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let dir = repo_root().join("target/screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let path = dir.join(name);
        std::fs::write(&path, png).expect("write screenshot");
        path
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_browser_takes_the_lead_from_the_emailed_link() {
    let recipient = unique_recipient("browser");
    let mut settings: HashMap<String, String> = [
        ("LEADS_STORAGE_CONNECTION", storage_connection()),
        ("LEADS_TABLE", unique_table("browserleads")),
        ("LEADS_STATE_TABLE", unique_table("browserstate")),
        ("LEADS_START_FROM", "beginning".to_owned()),
        ("SMTP_HOST", "127.0.0.1".to_owned()),
        ("SMTP_PORT", maildev_smtp_port().to_string()),
        ("SMTP_SECURITY", "none".to_owned()),
        ("EMAIL_FROM", "leads@contoso.example".to_owned()),
        ("EMAIL_TO", recipient.clone()),
        ("TAKE_LINK_SECRET", SECRET.to_owned()),
    ]
    .map(|(k, v)| (k.to_owned(), v))
    .into_iter()
    .collect();
    // The front listens first: its URL is the handler's PUBLIC_URL.
    let front = HostFront::start().await;
    settings.insert("PUBLIC_URL".to_owned(), front.url());
    let handler = Handler::start(&settings).await;
    front.route_to(handler.port);

    let row = LeadRow {
        partition_key: "12:2F5:2F2026".into(),
        row_key: "browser-take".into(),
        customer_info: Some(
            json!({"FirstName": "Petra", "LastName": "Novák", "Email": "petra@brno.example",
                   "Country": "CZ", "Company": "Brno Cloud s.r.o.", "Title": "CTO"})
            .to_string(),
        ),
        lead_source: Some("SPZA-PLT|contoso.crm-suite".into()),
        offer_display_name: Some("Contoso CRM Suite".into()),
        ..LeadRow::default()
    };
    let config = Settings::from_map(&settings).unwrap();
    let storage = Storage::new(&config.storage, reqwest::Client::new());
    store_rows(&storage, &config.leads_table, std::slice::from_ref(&row))
        .await
        .unwrap();
    let (status, timer) = handler.invoke_timer().await;
    assert_eq!(status, 200, "{timer}");
    let messages = maildev_messages(&recipient).await;
    assert_eq!(messages.len(), 1);
    let html = messages[0]["html"].as_str().unwrap_or_default();
    let start = html
        .find(&format!("{}/api/LeadTake?t=", front.url()))
        .unwrap_or_else(|| panic!("no take link in the email: {html}"));
    let link: String = html[start..].chars().take_while(|c| *c != '"').collect();

    let driver = Driver::start().await;
    driver.go(&link).await;
    let heading = driver.find("h1").await;
    assert_eq!(driver.text(&heading).await, "Take this lead");
    driver.assert_accessible("open lead's page").await;
    let shot = driver.screenshot("take-page.png").await;
    let name = driver.find("#name").await;
    driver
        .call(
            "POST",
            &format!("/element/{name}/value"),
            json!({"text": "Dana Driver"}),
        )
        .await;
    let button = driver.find("button[type=submit]").await;
    assert_eq!(driver.text(&button).await, "I'll take it");
    driver
        .call("POST", &format!("/element/{button}/click"), json!({}))
        .await;
    let confirmation = driver.wait_text(".state.taken").await;
    assert!(
        confirmation.starts_with("Taken by Dana Driver at "),
        "{confirmation}"
    );
    driver.screenshot("take-confirmed.png").await;
    driver.assert_accessible("confirmation page").await;
    // A damaged link's page, which shows no lead.
    driver.go(&format!("{}x", &link[..link.len() - 3])).await;
    driver.find("h1").await;
    driver.assert_accessible("damaged link's page").await;
    let _ = driver.call("DELETE", "", json!({})).await;

    let taken = TakeStore::new(&storage, &config.state_table, &config.leads_table)
        .get(&row.key())
        .await
        .unwrap();
    assert_eq!(taken.map(|t| t.by).as_deref(), Some("Dana Driver"));
    assert!(shot.is_file());
}
