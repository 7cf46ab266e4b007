//! The outbox channel: files in a folder, exactly what email and Teams would get.

mod common;

use std::sync::Arc;

use lead_notifier::lead::{Lead, LeadRow};
use lead_notifier::notify::email::render_message;
use lead_notifier::notify::outbox::{default_from, default_to, OutboxNotifier};
use lead_notifier::notify::teams::render_payload;
use lead_notifier::notify::{sample_lead, test_alert, Alert, DestinationId, Notifier};
use serde_json::{json, Value};

fn lead(row_key: &str, email: &str) -> Lead {
    Lead::from_row(&LeadRow {
        partition_key: "11:2F21:2F2026".into(),
        row_key: row_key.into(),
        timestamp: Some("2026-11-21T10:45:00.1234567Z".into()),
        customer_info: Some(
            json!({"FirstName": "Jane", "Email": email, "Company": "Acme"}).to_string(),
        ),
        lead_source: Some("AzureMarketplace-INS|contoso.crm".into()),
        offer_display_name: Some("Contoso CRM Suite".into()),
        ..LeadRow::default()
    })
}

/// The Subject header with its folded continuation lines.
fn subject_header(eml: &str) -> String {
    let mut lines = eml.split("\r\n").skip_while(|l| !l.starts_with("Subject:"));
    let mut header = lines.next().unwrap_or_default().to_string();
    for line in lines.take_while(|l| l.starts_with([' ', '\t'])) {
        header.push_str(line);
    }
    header
}

fn names(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_lead_becomes_an_eml_and_a_json_file() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("outbox/nested");
    let outbox = OutboxNotifier::new(&dir, default_from(), default_to());
    assert_eq!(outbox.channel(), DestinationId::OUTBOX);
    let lead = lead("row-1", "jane@acme.example");

    outbox.send(Alert::Lead(&lead)).await.unwrap();

    let stem = "20261121T104500Z-11_2F21_2F2026_row-1";
    let files = names(&dir);
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(
        files[0].starts_with(stem) && files[0].ends_with(".eml"),
        "{files:?}"
    );
    assert!(
        files[1].starts_with(stem) && files[1].ends_with(".json"),
        "{files:?}"
    );

    let eml = std::fs::read_to_string(dir.join(&files[0])).unwrap();
    assert!(
        eml.contains("From: lead-notifier <lead-notifier@localhost>"),
        "{eml}"
    );
    assert!(eml.contains("To: sales <sales@localhost>"), "{eml}");
    let expected = render_message(Alert::Lead(&lead), &default_from(), &default_to()).unwrap();
    let expected = String::from_utf8(expected.formatted()).unwrap();
    assert_eq!(subject_header(&eml), subject_header(&expected));
    assert!(subject_header(&eml).starts_with("Subject: "), "{eml}");
    assert!(eml.contains("Auto-Submitted: auto-generated"));
    assert!(eml.contains("multipart/alternative"));

    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(&files[1])).unwrap()).unwrap();
    assert_eq!(json, render_payload(Alert::Lead(&lead)));

    // A retry replaces the pair instead of adding another.
    outbox.send(Alert::Lead(&lead)).await.unwrap();
    assert_eq!(names(&dir), files);
}

#[tokio::test]
async fn a_digest_is_named_by_its_size() {
    let temp = tempfile::tempdir().unwrap();
    let outbox = OutboxNotifier::new(temp.path(), default_from(), default_to());
    let leads = [
        lead("a", "a@acme.example"),
        lead("b", "b@acme.example"),
        lead("c", "c@acme.example"),
    ];

    outbox
        .send(Alert::Digest {
            leads: &leads.iter().collect::<Vec<_>>(),
            total: 5,
        })
        .await
        .unwrap();

    assert_eq!(
        names(temp.path()),
        [
            "20261121T104500Z-digest-3-of-5.eml",
            "20261121T104500Z-digest-3-of-5.json"
        ]
    );
    let eml =
        std::fs::read_to_string(temp.path().join("20261121T104500Z-digest-3-of-5.eml")).unwrap();
    assert!(
        eml.contains("Subject: 5 new leads (3 in this message)"),
        "{eml}"
    );
}

#[tokio::test]
async fn check_creates_the_folder_and_leaves_nothing_behind() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("new");
    OutboxNotifier::new(&dir, default_from(), default_to())
        .check()
        .await
        .unwrap();
    assert!(dir.is_dir());
    assert!(names(&dir).is_empty());
}

#[tokio::test]
async fn an_unwritable_folder_is_an_error_naming_the_setting() {
    let temp = tempfile::tempdir().unwrap();
    let file = temp.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let err = OutboxNotifier::new(&file, default_from(), default_to())
        .send(Alert::Lead(&lead("r", "j@acme.example")))
        .await
        .unwrap_err();
    assert!(err.reason().contains("OUTBOX_DIR"), "{err}");
}

#[tokio::test]
async fn test_alert_sends_the_sample_lead_through_every_channel() {
    let temp = tempfile::tempdir().unwrap();
    let notifiers: Vec<Arc<dyn Notifier>> = vec![Arc::new(OutboxNotifier::new(
        temp.path(),
        default_from(),
        default_to(),
    ))];

    let results = test_alert(&notifiers).await;

    assert_eq!(results.len(), 1);
    assert_eq!(results[0].0, DestinationId::OUTBOX);
    results[0].1.clone().unwrap();
    let files = names(temp.path());
    assert_eq!(files.len(), 2);
    assert!(
        files[0].contains("lead-notifier-sample_test-alert-"),
        "{files:?}"
    );
    let card = std::fs::read_to_string(temp.path().join(&files[1])).unwrap();
    assert!(card.contains("Sample lead from lead-notifier"));
    let sample = sample_lead();
    assert!(!format!("{sample:?}").contains("MSFT_TEST"));
    assert_eq!(
        lead_notifier::lead::Filters::default().skip_reason(&sample),
        None
    );
}
