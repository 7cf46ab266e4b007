//! `cargo xtask deploy` with `az` replaced by a recording stand-in on PATH:
//! the calls and their order, secrets kept off command lines and output,
//! and what it prints for Partner Center.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const STANDIN: &str = r#"#!/usr/bin/env bash
# Records each call (one line of arguments), the content and mode of each
# @file argument, and answers the calls the deploy command reads.
printf '%s\n' "$*" >> "$AZ_STANDIN_DIR/calls"
for a in "$@"; do
  case "$a" in
    @*) f="${a#@}"
        if [ -f "$f" ]; then
          printf '%s %s\n' "$(stat -c %a "$f")" "$(tr -d '\n' < "$f")" >> "$AZ_STANDIN_DIR/files"
        fi ;;
  esac
done
case "$1 $2" in
  "account show") echo 00000000-1111-2222-3333-444444444444 ;;
  "deployment group")
    if [ -n "$AZ_STANDIN_FAIL_DEPLOYMENT" ]; then echo "ERROR: deployment failed" >&2; exit 1; fi
    cat "$AZ_STANDIN_DIR/outputs.json" ;;
esac
"#;

const OUTPUTS: &str = r#"{
  "functionAppName": {"type": "String", "value": "lead-notifier-q3lx7"},
  "functionAppHost": {"type": "String", "value": "lead-notifier-q3lx7.azurewebsites.net"},
  "leadWebhookUrl": {"type": "String", "value": "https://lead-notifier-q3lx7.azurewebsites.net/api/LeadWebhook"},
  "leadAccountName": {"type": "String", "value": "lnleadsq3lx7"},
  "leadAccountResourceGroup": {"type": "String", "value": "rg-leads"},
  "keyVaultName": {"type": "String", "value": "ln-q3lx7"},
  "checkSettings": {"type": "Array", "value": [
    {"name": "LEADS_STORAGE_CONNECTION__tableServiceUri", "value": "https://lnleadsq3lx7.table.core.windows.net"},
    {"name": "LEADS_STORAGE_CONNECTION__credential", "value": "managedidentity"},
    {"name": "LEADS_POLL_SCHEDULE", "value": "0 */5 * * * *"}
  ]}
}"#;

const SMTP_PASSWORD: &str = "hunter2-not-for-logs";
const TEAMS_URL: &str =
    "https://prod-00.westeurope.logic.azure.com/workflows/0?sig=SIGNATURE-not-for-logs";

struct Sandbox {
    dir: PathBuf,
}

impl Sandbox {
    fn new(name: &str) -> Sandbox {
        let dir = std::env::temp_dir().join(format!("xtask-deploy-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        let az = dir.join("bin/az");
        std::fs::write(&az, STANDIN).unwrap();
        std::fs::set_permissions(&az, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.join("outputs.json"), OUTPUTS).unwrap();
        std::fs::write(dir.join("functionapp.zip"), b"PK\x05\x06").unwrap();
        std::fs::write(
            dir.join("params.json"),
            r#"{"parameters": {"operatorEmail": {"value": "ops@contoso.com"},
                "secretSettingNames": {"value": ["SMTP_PASSWORD", "TEAMS_WEBHOOK_URL", "WEBHOOK_SECRET"]}}}"#,
        )
        .unwrap();
        Sandbox { dir }
    }

    fn deploy(&self, extra_env: &[(&str, &str)]) -> Output {
        let path = format!(
            "{}:{}",
            self.dir.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
        cmd.args([
            "deploy",
            "--resource-group",
            "rg-leads",
            "--location",
            "westeurope",
        ])
        .arg("--parameters")
        .arg(self.dir.join("params.json"))
        .arg("--zip")
        .arg(self.dir.join("functionapp.zip"))
        .env("PATH", path)
        .env("AZ_STANDIN_DIR", &self.dir)
        .env("CARGO_TARGET_DIR", self.dir.join("target"))
        .env("SMTP_PASSWORD", SMTP_PASSWORD)
        .env("TEAMS_WEBHOOK_URL", TEAMS_URL)
        .env_remove("WEBHOOK_SECRET");
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    fn secret_files_left(&self) -> Vec<PathBuf> {
        let dir = self.dir.join("target/xtask");
        std::fs::read_dir(dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
fn deploy_provisions_then_deploys_the_zip_and_prints_no_secret() {
    let sandbox = Sandbox::new("ok");
    let out = sandbox.deploy(&[]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");

    let dir = sandbox.dir.display();
    let calls: Vec<String> = sandbox.read("calls").lines().map(str::to_owned).collect();
    let expected_start = [
        "account show --query id --output tsv".to_owned(),
        "group create --name rg-leads --location westeurope --output none".to_owned(),
        format!(
            "deployment group create --resource-group rg-leads --name lead-notifier \
             --template-file {}/infra/main.bicep --parameters @{dir}/params.json \
             --parameters location=westeurope --parameters @{dir}/target/xtask/deploy-secrets-",
            repo().display()
        ),
    ];
    assert_eq!(calls.len(), 4, "{calls:#?}");
    assert_eq!(calls[..2], expected_start[..2], "{calls:#?}");
    assert!(calls[2].starts_with(&expected_start[2]), "{calls:#?}");
    assert!(
        calls[2].ends_with(".json --query properties.outputs --output json"),
        "{calls:#?}"
    );
    assert_eq!(
        calls[3],
        format!(
            "functionapp deployment source config-zip --resource-group rg-leads \
             --name lead-notifier-q3lx7 --src {dir}/functionapp.zip --output none"
        )
    );

    // Secrets reach az only in a file only the user can read, then it is gone.
    let files = sandbox.read("files");
    let secrets_line = files
        .lines()
        .find(|l| l.contains("secretValues"))
        .unwrap_or_else(|| panic!("no secrets file passed: {files}"));
    assert!(secrets_line.starts_with("600 "), "{secrets_line}");
    assert!(secrets_line.contains(SMTP_PASSWORD) && secrets_line.contains(TEAMS_URL));
    assert!(!secrets_line.contains("WEBHOOK_SECRET"), "{secrets_line}");
    assert!(sandbox.secret_files_left().is_empty());
    for secret in [SMTP_PASSWORD, TEAMS_URL, "SIGNATURE"] {
        assert!(
            !sandbox.read("calls").contains(secret),
            "{secret} on a command line"
        );
        assert!(!all.contains(secret), "{secret} printed:\n{all}");
    }

    // What to paste into Partner Center, without keys.
    let stdout = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "az storage account show-connection-string --resource-group rg-leads --name lnleadsq3lx7 --query connectionString --output tsv",
        "https://lead-notifier-q3lx7.azurewebsites.net/api/LeadWebhook?code=<key>",
        "az functionapp function keys list --resource-group rg-leads --name lead-notifier-q3lx7 --function-name LeadWebhook --query default --output tsv",
        "SMTP_PASSWORD=… TEAMS_WEBHOOK_URL=… WEBHOOK_SECRET=… lead-notifier check --settings",
    ] {
        assert!(stdout.contains(expected), "no {expected:?} in:\n{stdout}");
    }
    let settings: serde_json::Value =
        serde_json::from_str(&sandbox.read("target/deployed.settings.json")).unwrap();
    assert_eq!(
        settings["Values"]["LEADS_STORAGE_CONNECTION__tableServiceUri"],
        "https://lnleadsq3lx7.table.core.windows.net"
    );
    assert!(
        settings["Values"]
            .get("LEADS_STORAGE_CONNECTION__credential")
            .is_none(),
        "the managed identity exists only in Azure: {settings}"
    );

    // A re-run makes the same calls: everything is updated in place.
    std::fs::remove_file(sandbox.dir.join("calls")).unwrap();
    let again = sandbox.deploy(&[("SMTP_PASSWORD", ""), ("TEAMS_WEBHOOK_URL", "")]);
    assert!(again.status.success(), "{}", text(&again));
    let calls_again: Vec<String> = sandbox.read("calls").lines().map(str::to_owned).collect();
    assert_eq!(calls_again[..2], calls[..2]);
    assert_eq!(calls_again[3], calls[3]);
    // Without secrets in the environment, no secrets file: Key Vault keeps them.
    assert!(
        calls_again[2]
            .ends_with("--parameters location=westeurope --query properties.outputs --output json"),
        "{calls_again:#?}"
    );
}

#[test]
fn a_failed_provisioning_stops_before_the_zip_and_removes_the_secrets_file() {
    let sandbox = Sandbox::new("fail");
    let out = sandbox.deploy(&[("AZ_STANDIN_FAIL_DEPLOYMENT", "1")]);
    assert!(!out.status.success(), "{}", text(&out));
    let calls = sandbox.read("calls");
    assert_eq!(calls.lines().count(), 3, "{calls}");
    assert!(!calls.contains("config-zip"), "{calls}");
    assert!(sandbox.secret_files_left().is_empty());
    assert!(!text(&out).contains(SMTP_PASSWORD));
}

#[test]
fn secrets_in_the_parameters_file_are_refused() {
    let sandbox = Sandbox::new("refuse");
    std::fs::write(
        sandbox.dir.join("params.json"),
        r#"{"parameters": {"secretValues": {"value": {"SMTP_PASSWORD": "x"}}}}"#,
    )
    .unwrap();
    let out = sandbox.deploy(&[]);
    assert!(!out.status.success());
    assert!(text(&out).contains("secretValues"), "{}", text(&out));
    assert!(sandbox.read("calls").is_empty(), "az was called");
}
