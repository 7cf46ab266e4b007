//! The HTML report, the Monday summary and lead-flow health, through the
//! real binary against Azurite (and MailDev where email is sent).
//!
//! "Now" for the summary schedule, the health check and `report` is moved
//! with `LEAD_NOTIFIER_TEST_NOW`, which only debug builds (this binary)
//! read; lead rows get Azurite's own `Timestamp`, so tests stand "now" where
//! they need it relative to the rows they wrote.

mod common;

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
    for personal in [
        "jane", "doe", "stanford", "kenji", "acme", "tailspin", "+1 425",
    ] {
        assert!(!lower.contains(personal), "{personal} in\n{text}");
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
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
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
