//! The command line as a publisher uses it: `--settings`, `check`, `poll`,
//! `watch` and their exit codes, against a real Azurite.

mod common;

use std::collections::HashMap;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::servers::{free_port, storage_connection, unique_table};

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

fn settings(outbox: &std::path::Path) -> HashMap<String, String> {
    HashMap::from([
        ("LEADS_STORAGE_CONNECTION".to_owned(), storage_connection()),
        ("LEADS_TABLE".to_owned(), unique_table("clileads")),
        ("LEADS_STATE_TABLE".to_owned(), unique_table("clistate")),
        ("LEADS_START_FROM".to_owned(), "beginning".to_owned()),
        ("OUTBOX_DIR".to_owned(), outbox.display().to_string()),
    ])
}

fn eml_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn check_names_a_missing_lead_table_then_passes_once_leads_exist() {
    let outbox = tempfile::tempdir().expect("outbox");
    let s = settings(outbox.path());

    let missing = lead_notifier(&s, &["check"]);
    assert_eq!(missing.status.code(), Some(1), "{}", text(&missing));
    assert!(
        text(&missing).contains(&s["LEADS_TABLE"]) && text(&missing).contains("first lead"),
        "{}",
        text(&missing)
    );

    assert!(lead_notifier(&s, &["seed", "--count", "4"])
        .status
        .success());
    let ok = lead_notifier(&s, &["check"]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    assert!(!text(&ok).contains("Eby8vdM02x"), "account key printed");
    assert_eq!(eml_files(outbox.path()), 0, "check sends nothing");
}

#[test]
fn invalid_settings_exit_2_naming_the_setting() {
    let outbox = tempfile::tempdir().expect("outbox");
    let mut s = settings(outbox.path());
    s.insert("DIGEST_AFTER".into(), "lots".into());
    let out = lead_notifier(&s, &["poll"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("DIGEST_AFTER"), "{}", text(&out));

    s.remove("DIGEST_AFTER");
    s.remove("OUTBOX_DIR");
    let out = lead_notifier(&s, &["poll"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("no alert channel"), "{}", text(&out));
}

#[test]
fn poll_reads_a_settings_file_and_alerts_once() {
    let outbox = tempfile::tempdir().expect("outbox");
    let s = settings(outbox.path());
    let file = outbox.path().join("local.settings.json");
    let values: serde_json::Map<String, serde_json::Value> = s
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    std::fs::write(
        &file,
        serde_json::json!({"IsEncrypted": false, "Values": values}).to_string(),
    )
    .expect("write settings file");
    let file = file.display().to_string();
    let none = HashMap::new();

    assert!(
        lead_notifier(&none, &["--settings", &file, "seed", "--count", "5"])
            .status
            .success()
    );
    let first = lead_notifier(&none, &["--settings", &file, "poll", "--json"]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let summary: serde_json::Value =
        serde_json::from_slice(&first.stdout).expect("poll --json prints JSON");
    assert_eq!(summary["delivered"]["outbox"], 2, "{summary}");
    assert_eq!(eml_files(outbox.path()), 2);

    let second = lead_notifier(&none, &["--settings", &file, "poll"]);
    assert_eq!(second.status.code(), Some(0), "{}", text(&second));
    assert_eq!(eml_files(outbox.path()), 2, "nothing sent twice");
}

#[test]
fn poll_exits_1_when_an_owed_alert_is_not_delivered() {
    let outbox = tempfile::tempdir().expect("outbox");
    let mut s = settings(outbox.path());
    s.extend([
        ("SMTP_HOST".to_owned(), "127.0.0.1".to_owned()),
        ("SMTP_PORT".to_owned(), free_port().to_string()),
        ("SMTP_SECURITY".to_owned(), "none".to_owned()),
        ("EMAIL_FROM".to_owned(), "leads@contoso.example".to_owned()),
        ("EMAIL_TO".to_owned(), "sales@contoso.example".to_owned()),
        ("RETRY_BUDGET".to_owned(), "1s".to_owned()),
    ]);
    assert!(lead_notifier(&s, &["seed", "--count", "4"])
        .status
        .success());
    let out = lead_notifier(&s, &["poll"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("not delivered"), "{}", text(&out));
}

#[test]
fn watch_polls_until_sigterm() {
    let outbox = tempfile::tempdir().expect("outbox");
    let s = settings(outbox.path());
    assert!(lead_notifier(&s, &["seed", "--count", "5"])
        .status
        .success());
    let mut child = Command::new(env!("CARGO_BIN_EXE_lead-notifier"))
        .args(["watch", "--every", "1s"])
        .env_clear()
        .envs(&s)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start watch");
    let start = Instant::now();
    while eml_files(outbox.path()) < 2 && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let alerted = eml_files(outbox.path());
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().expect("watch exits");
    assert_eq!(alerted, 2, "watch alerted the seeded leads");
    assert!(status.success(), "SIGTERM stops watch cleanly: {status}");
    assert_eq!(
        eml_files(outbox.path()),
        2,
        "later polls sent nothing again"
    );
}

#[test]
fn seed_refuses_an_account_that_is_not_the_emulator() {
    let outbox = tempfile::tempdir().expect("outbox");
    let mut s = settings(outbox.path());
    s.insert(
        "LEADS_STORAGE_CONNECTION".to_owned(),
        format!(
            "DefaultEndpointsProtocol=https;AccountName=contosoleads;AccountKey={};\
             EndpointSuffix=core.windows.net",
            common::servers::DEV_KEY
        ),
    );
    let refused = lead_notifier(&s, &["seed", "--count", "4"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    let said = text(&refused);
    assert!(
        said.contains("contosoleads")
            && said.contains("not the storage emulator")
            && said.contains("--into-real-account"),
        "{said}"
    );
    assert!(!said.contains("Eby8vdM02x"), "account key printed");
}
