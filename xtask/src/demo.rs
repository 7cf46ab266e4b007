//! `cargo xtask demo`: one timer run end to end, on local storage, with the
//! handler started and invoked exactly as the Azure Functions host does it
//! (platform facts §2), alerts written only to an outbox folder.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

use crate::json::{self, Value};
use crate::proc::Background;
use crate::servers::{ensure_node_modules, free_port, log_path, wait_until, Azurite};
use crate::{cargo, http, say, step, target_dir};

const SEED_COUNT: &str = "12";
const FUNCTION: &str = "LeadNotifier";

/// Settings a developer may have exported for real use. The demo must never
/// send real email or Teams messages, or touch a real account, so these are
/// removed from the handler's environment.
const SETTING_PREFIXES: &[&str] = &[
    "LEADS_",
    "SMTP_",
    "EMAIL_",
    "TEAMS_",
    "OUTBOX_",
    "DIGEST_",
    "SKIP_",
    "ALERT_",
    "CLAIM_",
    "SCAN_",
    "RETRY_",
    "AzureWebJobs",
    "FUNCTIONS_",
];

pub fn run() -> Result<ExitCode> {
    ensure_node_modules()?;
    if !step(
        "cargo build --bin lead-notifier",
        cargo().args(["build", "--bin", "lead-notifier"]),
    )?
    .success()
    {
        bail!("the build failed");
    }
    let binary = target_dir().join("debug").join("lead-notifier");
    let azurite = Azurite::start("demo-azurite")?;
    let outbox = target_dir().join("demo-outbox");
    if outbox.exists() {
        std::fs::remove_dir_all(&outbox)
            .with_context(|| format!("cannot clear {}", outbox.display()))?;
    }
    std::fs::create_dir_all(&outbox)?;
    let settings = vec![
        (
            "LEADS_STORAGE_CONNECTION".to_string(),
            azurite.connection_string(),
        ),
        ("LEADS_TABLE".into(), "MarketplaceLeads".into()),
        ("LEADS_STATE_TABLE".into(), "LeadNotifierState".into()),
        ("LEADS_START_FROM".into(), "beginning".into()),
        ("OUTBOX_DIR".into(), outbox.display().to_string()),
    ];
    let unset: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| SETTING_PREFIXES.iter().any(|p| k.starts_with(p)))
        .collect();

    let mut seed = Command::new(&binary);
    seed.args(["seed", "--count", SEED_COUNT])
        .envs(settings.iter().cloned());
    for name in &unset {
        seed.env_remove(name);
    }
    if !step(
        &format!("lead-notifier seed --count {SEED_COUNT}"),
        &mut seed,
    )?
    .success()
    {
        bail!("seeding sample leads failed");
    }

    let port = free_port()?;
    let mut host_env = settings.clone();
    host_env.push(("FUNCTIONS_CUSTOMHANDLER_PORT".into(), port.to_string()));
    let handler_log = log_path("demo-handler");
    let mut handler = Background::spawn(
        "lead-notifier serve",
        &binary,
        &["serve".to_string()],
        &host_env,
        &unset,
        &handler_log,
    )?;
    say(format!(
        "started `lead-notifier serve` on 127.0.0.1:{port}, as the Functions host does"
    ));
    wait_until(&mut handler, "answer GET /", || {
        http::get(port, "/").is_ok()
    })?;

    let outcome = invoke_timer(port);
    if outcome.is_err() {
        eprintln!("{}", handler.log_tail());
    }
    say("stopping the handler (SIGTERM) and Azurite");
    drop(handler);
    drop(azurite);
    outcome?;
    list_outbox(&outbox)?;
    say(format!("handler output: {}", handler_log.display()));
    Ok(ExitCode::SUCCESS)
}

/// One timer invocation, as captured from Azure; prints what the host would log.
fn invoke_timer(port: u16) -> Result<()> {
    let invocation_id = uuid_ish();
    let body = format!(
        r#"{{"Data":{{"timer":{{"Schedule":{{"AdjustForDST":true}},"ScheduleStatus":null,"IsPastDue":false}}}},"Metadata":{{"sys":{{"MethodName":"{FUNCTION}","UtcNow":"{}","RandGuid":"{}"}}}}}}"#,
        utc_now(),
        uuid_ish()
    );
    say(format!(
        "POST /{FUNCTION} (timer invocation {invocation_id})"
    ));
    let response = http::post(
        port,
        &format!("/{FUNCTION}"),
        &[
            ("X-Azure-Functions-InvocationId", invocation_id.as_str()),
            ("User-Agent", "Azure-Functions-Host/4.0"),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
    .context("the timer invocation failed")?;
    if !(200..300).contains(&response.status) {
        bail!(
            "the handler answered {} (the host marks the invocation Failed): {}",
            response.status,
            response.text()
        );
    }
    let answer = json::parse(&response.text()).context("the handler's answer is not JSON")?;
    say(format!(
        "the handler answered {}; its invocation log:",
        response.status
    ));
    if let Some(Value::Array(logs)) = answer.get("Logs") {
        for line in logs {
            println!("    {}", line.brief());
        }
    }
    match answer.get("ReturnValue") {
        Some(summary) => print_summary(summary),
        None => say("the answer has no ReturnValue"),
    }
    Ok(())
}

/// The run summary in a few lines; falls back to every field when its shape
/// is not the one expected, so a changed summary still shows.
fn print_summary(summary: &Value) {
    let count = |key: &str| match summary.get(key) {
        Some(Value::Number(n)) => Some(*n as u64),
        _ => None,
    };
    let per = |key: &str| match summary.get(key) {
        Some(Value::Object(fields)) if fields.is_empty() => Some("none".to_string()),
        Some(v @ Value::Object(_)) => Some(v.brief()),
        _ => None,
    };
    let (Some(scanned), Some(new), Some(alerted), Some(skipped)) = (
        count("rows_scanned"),
        count("leads_new"),
        per("delivered"),
        per("skipped"),
    ) else {
        say("run summary:");
        if let Value::Object(fields) = summary {
            for (name, value) in fields {
                println!("    {name}: {}", value.brief());
            }
        } else {
            println!("    {}", summary.brief());
        }
        return;
    };
    say("run summary:");
    println!("    rows scanned:  {scanned} ({new} new leads)");
    println!("    alerted:       {alerted}  (per channel)");
    println!("    skipped:       {skipped}  (per reason)");
    let undelivered: u64 = ["failed", "pending", "busy"]
        .iter()
        .filter_map(|k| count(k))
        .sum();
    println!("    not delivered: {undelivered}");
    if let Some(Value::Array(problems)) = summary.get("problems") {
        for problem in problems {
            println!("      {}", problem.brief());
        }
    }
}

fn list_outbox(outbox: &Path) -> Result<()> {
    let mut files = Vec::new();
    collect_files(outbox, &mut files)?;
    files.sort();
    say(format!(
        "{} alert file(s) in {}:",
        files.len(),
        outbox.display()
    ));
    for file in &files {
        let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
        let shown = file.strip_prefix(outbox).unwrap_or(file);
        println!("    {:<60} {size:>7} bytes", shown.display());
    }
    if files
        .iter()
        .any(|f| f.extension().is_some_and(|e| e == "eml"))
    {
        say("open an .eml file in your mail program to see what sales would get");
    }
    Ok(())
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect_files(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// A random version-4-shaped id; the host's ids are GUIDs, nothing checks more.
pub fn uuid_ish() -> String {
    let random = RandomState::new();
    let mut words = [0u64; 2];
    for (i, word) in words.iter_mut().enumerate() {
        let mut h = random.build_hasher();
        h.write_usize(i);
        h.write_u128(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        *word = h.finish();
    }
    let [a, b] = words;
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// Now as the host writes `UtcNow`: RFC 3339, microseconds, `Z`.
pub fn utc_now() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format_utc(now.as_secs(), now.subsec_micros())
}

fn format_utc(secs: u64, micros: u32) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times_like_the_host() {
        assert_eq!(format_utc(0, 0), "1970-01-01T00:00:00.000000Z");
        // 2023-09-07T11:40:45.004275Z, from the captured invocation.
        assert_eq!(
            format_utc(1_694_086_845, 4_275),
            "2023-09-07T11:40:45.004275Z"
        );
        assert_eq!(format_utc(951_782_400, 0), "2000-02-29T00:00:00.000000Z");
    }

    #[test]
    fn ids_look_like_guids_and_differ() {
        let (a, b) = (uuid_ish(), uuid_ish());
        assert_ne!(a, b);
        let groups: Vec<usize> = a.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
        assert!(a.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
    }
}
