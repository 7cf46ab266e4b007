//! `cargo xtask deploy`: provisions infra/main.bicep into a resource group
//! and deploys the packaged app to it, through the Azure CLI (`az`), signed
//! in beforehand. Re-running updates everything in place.
//!
//! Secret settings never pass on a command line (other users of the machine
//! can read those): values of the settings named in `secretSettingNames` are
//! taken from the environment and handed to `az` in a parameters file only
//! the user can read, deleted afterwards. Nothing secret is printed: the
//! lead account's connection string and the webhook's key are left for
//! commands the user runs.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};

use crate::{repo_root, say, target_dir};

#[derive(clap::Args)]
pub struct Args {
    /// Resource group to deploy into (created when missing)
    #[arg(long, value_name = "GROUP")]
    pub resource_group: String,
    /// Azure region of the group and its resources, e.g. westeurope
    #[arg(long, value_name = "REGION")]
    pub location: String,
    /// Parameters of infra/main.bicep (default infra/main.parameters.json)
    #[arg(long, value_name = "FILE")]
    pub parameters: Option<PathBuf>,
    /// Deploy this zip instead of running `cargo xtask package`
    #[arg(long, value_name = "ZIP")]
    pub zip: Option<PathBuf>,
}

/// The deployment's name in the resource group: the same on every run, so a
/// re-run updates it.
const DEPLOYMENT: &str = "lead-notifier";

pub fn run(args: &Args) -> Result<ExitCode> {
    let root = repo_root();
    let parameters = args
        .parameters
        .clone()
        .unwrap_or_else(|| root.join("infra/main.parameters.json"));
    if !parameters.is_file() {
        bail!(
            "no parameters file {}: copy infra/main.parameters.example.json there and set \
             operatorEmail and your channels",
            parameters.display()
        );
    }
    // az runs in the repository: paths the user gave relative to elsewhere
    // must not change meaning.
    let parameters = fs::canonicalize(&parameters)?;
    let secret_names = secret_setting_names(&parameters)?;

    let subscription = az_output(&["account", "show", "--query", "id", "--output", "tsv"])
        .context("the Azure CLI is not signed in: run `az login` (and `az account set`)")?;
    say(format!("subscription {}", subscription.trim()));
    az(&[
        "group",
        "create",
        "--name",
        &args.resource_group,
        "--location",
        &args.location,
        "--output",
        "none",
    ])?;

    let zip = match &args.zip {
        Some(zip) => zip.clone(),
        None => {
            if crate::package::run()? != ExitCode::SUCCESS {
                bail!("cargo xtask package failed");
            }
            target_dir().join("functionapp.zip")
        }
    };
    if !zip.is_file() {
        bail!("no package at {}", zip.display());
    }
    let zip = fs::canonicalize(&zip)?;

    let secrets = SecretsFile::from_env(&secret_names)?;
    let template = root.join("infra/main.bicep");
    let mut deploy: Vec<String> = [
        "deployment",
        "group",
        "create",
        "--resource-group",
        &args.resource_group,
        "--name",
        DEPLOYMENT,
        "--template-file",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    deploy.push(template.display().to_string());
    deploy.push("--parameters".into());
    deploy.push(format!("@{}", parameters.display()));
    deploy.push("--parameters".into());
    deploy.push(format!("location={}", args.location));
    if let Some(file) = &secrets {
        deploy.push("--parameters".into());
        deploy.push(format!("@{}", file.path.display()));
    }
    // Only the outputs: they hold no secret (the template says so).
    deploy.extend(
        ["--query", "properties.outputs", "--output", "json"]
            .iter()
            .map(|s| s.to_string()),
    );
    let outputs = az_output(&deploy.iter().map(String::as_str).collect::<Vec<_>>());
    drop(secrets);
    let outputs: Value = serde_json::from_str(&outputs?)
        .context("az deployment group create did not answer with the outputs as JSON")?;
    let output = |name: &str| -> Result<String> {
        outputs[name]["value"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("the deployment has no output {name}"))
    };
    let app = output("functionAppName")?;

    az(&[
        "functionapp",
        "deployment",
        "source",
        "config-zip",
        "--resource-group",
        &args.resource_group,
        "--name",
        &app,
        "--src",
        &zip.display().to_string(),
        "--output",
        "none",
    ])?;

    let settings_file = target_dir().join("deployed.settings.json");
    write_check_settings(&settings_file, &outputs["checkSettings"]["value"])?;
    let next = next_steps(&NextSteps {
        group: &args.resource_group,
        app: &app,
        webhook_url: &output("leadWebhookUrl")?,
        lead_account: &output("leadAccountName")?,
        lead_group: &output("leadAccountResourceGroup")?,
        vault: &output("keyVaultName")?,
        secret_names: &secret_names,
        settings_file: &settings_file,
    });
    println!("{next}");
    Ok(ExitCode::SUCCESS)
}

/// `secretSettingNames` of the parameters file.
fn secret_setting_names(parameters: &Path) -> Result<Vec<String>> {
    let text = fs::read_to_string(parameters)
        .with_context(|| format!("cannot read {}", parameters.display()))?;
    let json: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON", parameters.display()))?;
    if json["parameters"].get("secretValues").is_some() {
        bail!(
            "{} holds secretValues: keep secrets out of files in the repository; \
             set them as environment variables named like the settings instead",
            parameters.display()
        );
    }
    let names = &json["parameters"]["secretSettingNames"]["value"];
    Ok(names
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default())
}

/// A parameters file with `secretValues`, readable only by the user, removed
/// when dropped.
struct SecretsFile {
    path: PathBuf,
}

impl SecretsFile {
    /// The values of `names` set in the environment; None when none is set
    /// (Key Vault keeps the values it holds).
    fn from_env(names: &[String]) -> Result<Option<SecretsFile>> {
        let mut values = Map::new();
        for name in names {
            match std::env::var(name) {
                Ok(value) if !value.trim().is_empty() => {
                    say(format!("{name}: from the environment, into Key Vault"));
                    values.insert(name.clone(), Value::String(value));
                }
                _ => say(format!(
                    "{name}: not in the environment, Key Vault keeps its value"
                )),
            }
        }
        if values.is_empty() {
            return Ok(None);
        }
        let dir = target_dir().join("xtask");
        fs::create_dir_all(&dir)?;
        let path = dir.join(format!("deploy-secrets-{}.json", std::process::id()));
        let file = SecretsFile { path };
        let body = json!({
            "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#",
            "contentVersion": "1.0.0.0",
            "parameters": { "secretValues": { "value": values } },
        });
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&file.path)
            .and_then(|mut f| f.write_all(body.to_string().as_bytes()))
            .with_context(|| format!("cannot write {}", file.path.display()))?;
        Ok(Some(file))
    }
}

impl Drop for SecretsFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// The deployed non-secret settings in local.settings.json form, for
/// `lead-notifier check --settings`. The managed identity exists only in
/// Azure: locally the storage credential comes from the environment.
fn write_check_settings(path: &Path, settings: &Value) -> Result<()> {
    let mut values = Map::new();
    for setting in settings.as_array().into_iter().flatten() {
        let (Some(name), Some(value)) = (setting["name"].as_str(), setting["value"].as_str())
        else {
            continue;
        };
        if name.ends_with("__credential") {
            continue;
        }
        values.insert(name.to_owned(), Value::String(value.to_owned()));
    }
    let body = json!({ "IsEncrypted": false, "Values": values });
    fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))?;
    fs::write(path, serde_json::to_string_pretty(&body)? + "\n")
        .with_context(|| format!("cannot write {}", path.display()))
}

struct NextSteps<'a> {
    group: &'a str,
    app: &'a str,
    webhook_url: &'a str,
    lead_account: &'a str,
    lead_group: &'a str,
    vault: &'a str,
    secret_names: &'a [String],
    settings_file: &'a Path,
}

fn next_steps(s: &NextSteps) -> String {
    let secrets: String = s
        .secret_names
        .iter()
        .map(|name| format!("{name}=… "))
        .collect();
    format!(
        "
Deployed {app} in {group}.

Partner Center → your offer → Offer setup → Customer leads → Connect:

  Azure Table: paste the lead account's connection string, printed by
    az storage account show-connection-string --resource-group {lead_group} --name {lead_account} --query connectionString --output tsv

  HTTPS endpoint: paste
    {webhook_url}?code=<key>
  with the key printed by
    az functionapp function keys list --resource-group {group} --name {app} --function-name LeadWebhook --query default --output tsv

Check the deployed settings from this machine with an app registration that
holds the same role on the lead account (README, \"Run without keys\"), the
secrets from Key Vault {vault} in the environment:
  AZURE_TENANT_ID=… AZURE_CLIENT_ID=… AZURE_CLIENT_SECRET=… {secrets}lead-notifier check --settings {settings_file}
",
        app = s.app,
        group = s.group,
        lead_group = s.lead_group,
        lead_account = s.lead_account,
        webhook_url = s.webhook_url,
        vault = s.vault,
        settings_file = s.settings_file.display(),
    )
}

/// `az` found on PATH, as the user would run it.
fn az_command(args: &[&str]) -> Command {
    let mut cmd = Command::new("az");
    cmd.args(args).current_dir(repo_root());
    cmd
}

/// Runs `az`, its output passed through.
fn az(args: &[&str]) -> Result<()> {
    say(format!("▶ az {}", args.join(" ")));
    let status = az_command(args)
        .status()
        .context("cannot run `az`: install the Azure CLI (https://aka.ms/azcli)")?;
    if !status.success() {
        bail!("az {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// Runs `az` and returns its stdout (errors pass through to stderr).
fn az_output(args: &[&str]) -> Result<String> {
    say(format!("▶ az {}", args.join(" ")));
    let out = az_command(args)
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run `az`: install the Azure CLI (https://aka.ms/azcli)")?;
    if !out.status.success() {
        bail!("az {} failed ({})", args.join(" "), out.status);
    }
    String::from_utf8(out.stdout).context("az answered with non-UTF-8 text")
}
