//! The Azure templates in infra/, checked without Azure: an independent Bicep
//! parser and checkov's policy checks (tests/infra_bicep.py), and the app
//! settings main.bicep writes, read out of the template and validated by the
//! real binary's settings parser (`lead-notifier check`), with placeholders
//! where Azure supplies values (resource endpoints, Key Vault secrets).

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn main_bicep() -> String {
    read(&root().join("infra/main.bicep"))
}

/// Every file under `dir` (relative to the repository) ending in `.{extension}`,
/// with its text.
fn files_under(dir: &str, extension: &str) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    let mut dirs = vec![root().join(dir)];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == extension) {
                let text = read(&path);
                files.push((path, text));
            }
        }
    }
    files
}

fn all_bicep() -> Vec<(PathBuf, String)> {
    let files = files_under("infra", "bicep");
    assert!(files.len() >= 2, "no Bicep modules found: {files:?}");
    files
}

/// Settings the Flex Consumption plan refuses (Learn: functions-app-settings,
/// "Flex Consumption plan deprecations"), or that only other plans use.
const FLEX_REJECTED: &[&str] = &[
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_CONTENTSHARE",
    "WEBSITE_CONTENTOVERVNET",
    "SCM_DO_BUILD_DURING_DEPLOYMENT",
    "ENABLE_ORYX_BUILD",
    "WEBSITE_NODE_DEFAULT_VERSION",
    "WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT",
    "WEBSITE_USE_PLACEHOLDER",
    "FUNCTIONS_WORKER_PROCESS_COUNT",
];

/// Platform settings the template may write, each documented by Azure:
/// identity-based host storage (Learn: functions-reference, "Connecting to
/// host storage with an identity") and Application Insights with Entra
/// authentication (Learn: azure-monitor/app/azure-ad-authentication).
const PLATFORM: &[&str] = &[
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__blobServiceUri",
    "AzureWebJobsStorage__queueServiceUri",
    "AzureWebJobsStorage__tableServiceUri",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
];

/// Values Azure supplies while deploying, as the template's expressions name
/// them. An expression not listed here fails the test: add it with a value
/// of the shape Azure gives.
fn azure_value(expression: &str) -> Option<&'static str> {
    Some(match expression {
        "environment().suffixes.storage" => "core.windows.net",
        "uniqueString(resourceGroup().id)" => "q3lx7abcdefgh",
        "resourceGroup().location" => "westeurope",
        "resourceGroup().name" => "rg-leads",
        "hostStorage.properties.primaryEndpoints.blob" => {
            "https://lnhostq3lx7abcdefgh.blob.core.windows.net/"
        }
        "hostStorage.properties.primaryEndpoints.table" => {
            "https://lnhostq3lx7abcdefgh.table.core.windows.net/"
        }
        "monitoring.outputs.connectionString" => {
            "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/"
        }
        "vault.properties.vaultUri" => "https://ln-q3lx7abcdefgh.vault.azure.net/",
        _ => return None,
    })
}

/// What a Key Vault reference resolves to at run time, by setting: a value
/// of the shape the setting takes.
fn secret_placeholder(setting: &str) -> String {
    let value = if setting == "SMTP_PASSWORD" {
        "placeholder-password"
    } else if setting.starts_with("TEAMS_WEBHOOK_URL") {
        "https://prod-00.westeurope.logic.azure.com/workflows/0/triggers/manual/paths/invoke?sig=placeholder"
    } else if setting.starts_with("SLACK_WEBHOOK_URL") {
        "https://hooks.slack.com/services/T0000/B0000/placeholder"
    } else if setting.starts_with("WEBHOOK_URL") {
        "https://crm.example.com/hooks/leads"
    } else if setting.starts_with("WEBHOOK_SECRET") {
        // whsec_ and base64 of 32 bytes.
        "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
    } else {
        panic!("{setting} is read from Key Vault but this test has no placeholder of its shape: add one")
    };
    value.to_owned()
}

/// The template's parameters, variables and the example parameters file.
struct Template {
    text: String,
    /// name → default expression (None when required).
    params: HashMap<String, Option<String>>,
    /// single-line variables: name → expression.
    vars: HashMap<String, String>,
    example: serde_json::Map<String, Value>,
}

impl Template {
    fn load() -> Template {
        let text = main_bicep();
        let mut params = HashMap::new();
        let mut vars = HashMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("param ") {
                let mut parts = rest.splitn(2, " = ");
                let head: Vec<&str> = parts.next().unwrap().split_whitespace().collect();
                params.insert(head[0].to_owned(), parts.next().map(str::to_owned));
            } else if let Some(rest) = line.strip_prefix("var ") {
                if let Some((name, expression)) = rest.split_once(" = ") {
                    vars.insert(name.to_owned(), expression.to_owned());
                }
            }
        }
        let example: Value =
            serde_json::from_str(&read(&root().join("infra/main.parameters.example.json")))
                .unwrap();
        let example = example["parameters"].as_object().unwrap().clone();
        for name in example.keys() {
            assert!(
                params.contains_key(name),
                "the example parameters file sets {name}, which main.bicep does not declare"
            );
        }
        Template {
            text,
            params,
            vars,
            example,
        }
    }

    fn example_value(&self, param: &str) -> Option<&Value> {
        self.example.get(param).map(|p| &p["value"])
    }

    /// Evaluates the expressions the settings use: quoted strings with
    /// `${…}`, parameters (example value, else default), single-line
    /// variables, and the values Azure supplies.
    fn eval(&self, expression: &str) -> String {
        let expression = expression.trim();
        if let Some(inner) = expression
            .strip_prefix('\'')
            .and_then(|e| e.strip_suffix('\''))
        {
            let mut out = String::new();
            let mut rest = inner;
            while let Some(start) = rest.find("${") {
                out.push_str(&rest[..start]);
                let end = rest[start..].find('}').expect("closed ${") + start;
                out.push_str(&self.eval(&rest[start + 2..end]));
                rest = &rest[end + 1..];
            }
            out.push_str(rest);
            return out;
        }
        if let Some(default) = self.params.get(expression) {
            return match self.example_value(expression) {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => self.eval(
                    default
                        .as_deref()
                        .unwrap_or_else(|| panic!("{expression} has no default")),
                ),
            };
        }
        if let Some(definition) = self.vars.get(expression) {
            return self.eval(definition);
        }
        azure_value(expression)
            .unwrap_or_else(|| panic!("this test cannot evaluate `{expression}`: teach it"))
            .to_owned()
    }

    /// `{ name: 'X', value: EXPR }` lines of `var <name> = [` … `]`.
    fn settings_block(&self, var: &str) -> Vec<(String, String)> {
        let start = format!("var {var} = [\n");
        let at = self
            .text
            .find(&start)
            .unwrap_or_else(|| panic!("no `{}` in main.bicep", start.trim()));
        let body = &self.text[at + start.len()..];
        let body = &body[..body.find("\n]").expect("block ends with ]")];
        body.lines()
            .map(|line| {
                let line = line.trim();
                let inner = line
                    .strip_prefix("{ name: '")
                    .and_then(|l| l.strip_suffix(" }"))
                    .unwrap_or_else(|| panic!("cannot read setting line {line:?}"));
                let (name, value) = inner.split_once("', value: ").expect("name, value");
                (name.to_owned(), value.to_owned())
            })
            .collect()
    }

    fn object_param(&self, param: &str) -> Vec<(String, String)> {
        self.example_value(param)
            .and_then(Value::as_object)
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn secret_names(&self) -> Vec<String> {
        self.example_value("secretSettingNames")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default()
    }

    /// Every app setting the template writes with the example parameters:
    /// (name, value as lead-notifier sees it, where it comes from).
    fn app_settings(&self) -> Vec<(String, String, &'static str)> {
        // The template writes exactly these lists: a new one must be taught here.
        let concat = "var appSettings = filter(concat(routeSettings, otherSettings, productSettings, secretReferences, platformSettings), s => !empty(s.value))";
        assert!(
            self.text.contains(concat),
            "main.bicep's appSettings is not `{concat}`: teach this test the change"
        );
        assert_eq!(
            self.text.matches("appSettings: appSettings").count(),
            1,
            "the site takes its settings from appSettings, once"
        );
        assert!(
            !self.text.contains("Microsoft.Web/sites/config"),
            "settings written elsewhere than siteConfig.appSettings"
        );
        for (var, param) in [("routeSettings", "routes"), ("otherSettings", "settings")] {
            let singular = if param == "routes" {
                "route"
            } else {
                "setting"
            };
            let expected = format!(
                "var {var} = [for {singular} in items({param}): {{\n  name: {singular}.key\n  value: {singular}.value\n}}]"
            );
            assert!(self.text.contains(&expected), "no `{expected}`");
        }
        let reference = "@Microsoft.KeyVault(SecretUri=${vault.properties.vaultUri}secrets/${replace(toLower(name), '_', '-')}/)";
        assert!(
            self.text.contains(&format!(
                "var secretReferences = [for name in secretSettingNames: {{\n  name: name\n  value: '{reference}'\n}}]"
            )),
            "secretReferences changed: teach this test"
        );
        assert!(
            self.text
                .contains("  name: replace(toLower(name), '_', '-')\n"),
            "the Key Vault secrets are not named as the references name them"
        );
        let mut all = Vec::new();
        for (name, value) in self.object_param("routes") {
            all.push((name, value, "routes"));
        }
        for (name, value) in self.object_param("settings") {
            all.push((name, value, "settings"));
        }
        for (name, expression) in self.settings_block("productSettings") {
            all.push((name, self.eval(&expression), "productSettings"));
        }
        for name in self.secret_names() {
            let resolved = reference
                .replace(
                    "${vault.properties.vaultUri}",
                    azure_value("vault.properties.vaultUri").unwrap(),
                )
                .replace(
                    "${replace(toLower(name), '_', '-')}",
                    &name.to_lowercase().replace('_', "-"),
                );
            assert!(
                resolved.starts_with("@Microsoft.KeyVault(SecretUri=https://")
                    && resolved.ends_with(&format!(
                        "/secrets/{}/)",
                        name.to_lowercase().replace('_', "-")
                    )),
                "{resolved}"
            );
            all.push((name.clone(), secret_placeholder(&name), "secretReferences"));
        }
        for (name, expression) in self.settings_block("platformSettings") {
            all.push((name, self.eval(&expression), "platformSettings"));
        }
        // Empty values are filtered out, as the template does.
        all.retain(|(_, value, _)| !value.is_empty());
        all
    }
}

/// The `"…"` string literals of src/, where lead-notifier names the settings
/// it reads.
fn source_literals() -> String {
    files_under("src", "rs")
        .into_iter()
        .map(|(_, text)| text)
        .collect()
}

/// Whether lead-notifier reads `name`: it names it in its source, whole, or
/// as a prefix it adds a destination name to (`EMAIL_TO` + `_EMEA`), or as a
/// connection prefix and property (`LEADS_STORAGE_CONNECTION` +
/// `__tableServiceUri`).
fn product_reads(source: &str, name: &str) -> bool {
    if let Some((prefix, property)) = name.split_once("__") {
        return source.contains(&format!("\"{prefix}\""))
            && source.contains(&format!("\"{property}\""));
    }
    let parts: Vec<&str> = name.split('_').collect();
    (1..=parts.len()).rev().any(|n| {
        let prefix = parts[..n].join("_");
        source.contains(&format!("\"{prefix}\"")) || source.contains(&format!("\"{prefix}_\""))
    })
}

/// Runs `lead-notifier check` on exactly `settings` (plus what the platform
/// injects), stopping it once it has judged the settings: it would go on to
/// reach storage and channels, which are not there. Returns the exit code
/// (None when it got past the settings) and stderr.
fn validate(settings: &BTreeMap<String, String>) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lead-notifier"))
        .arg("check")
        .env_clear()
        .envs(settings)
        // What Azure Functions injects for a managed identity.
        .env("IDENTITY_ENDPOINT", "http://127.0.0.1:41999/msi/token")
        .env("IDENTITY_HEADER", "placeholder")
        // Nothing leaves this machine should it get that far.
        .env("HTTPS_PROXY", "http://127.0.0.1:9")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut valid = false;
    for line in std::io::BufReader::new(stdout).lines() {
        if line.unwrap().starts_with("settings are valid:") {
            valid = true;
            break;
        }
    }
    if valid {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (if valid { None } else { out.status.code() }, stderr)
}

#[test]
fn every_setting_the_template_writes_is_read_by_lead_notifier_or_the_platform() {
    let template = Template::load();
    let settings = template.app_settings();
    let source = source_literals();
    let mut product = BTreeMap::new();
    for (name, value, origin) in &settings {
        assert!(
            !FLEX_REJECTED.contains(&name.as_str()),
            "{name} ({origin}) is refused by Flex Consumption"
        );
        if *origin == "platformSettings" {
            assert!(
                PLATFORM.contains(&name.as_str()),
                "{name} is written as a platform setting but is not a documented one"
            );
            continue;
        }
        assert!(
            product_reads(&source, name),
            "{name} ({origin}) is not a setting lead-notifier reads"
        );
        assert!(
            product.insert(name.clone(), value.clone()).is_none(),
            "{name} written twice"
        );
    }
    // The keyless connections the template sets up.
    let platform: HashMap<&str, &str> = settings
        .iter()
        .filter(|s| s.2 == "platformSettings")
        .map(|s| (s.0.as_str(), s.1.as_str()))
        .collect();
    assert_eq!(
        platform.get("AzureWebJobsStorage__credential"),
        Some(&"managedidentity")
    );
    assert_eq!(
        platform.get("APPLICATIONINSIGHTS_AUTHENTICATION_STRING"),
        Some(&"Authorization=AAD")
    );
    assert!(!settings.iter().any(|s| s.0 == "AzureWebJobsStorage"));
    assert_eq!(
        product
            .get("LEADS_STORAGE_CONNECTION__credential")
            .map(String::as_str),
        Some("managedidentity")
    );
    assert_eq!(
        product
            .get("LEADS_STORAGE_CONNECTION__tableServiceUri")
            .map(String::as_str),
        Some("https://lnleadsq3lx7abcdefgh.table.core.windows.net")
    );

    let (code, stderr) = validate(&product);
    assert_eq!(
        code, None,
        "lead-notifier refused the settings main.bicep writes: {stderr}\n{product:#?}"
    );

    // The same check refuses a value of the wrong shape, so it can fail.
    let mut broken = product.clone();
    broken.insert("LEADS_POLL_SCHEDULE".into(), "every five minutes".into());
    let (code, stderr) = validate(&broken);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("LEADS_POLL_SCHEDULE"), "{stderr}");
}

#[test]
fn no_bicep_file_writes_a_setting_flex_consumption_refuses() {
    for (path, text) in all_bicep() {
        for name in FLEX_REJECTED {
            assert!(!text.contains(name), "{} names {name}", path.display());
        }
    }
}

#[test]
fn each_setting_a_user_chooses_has_a_parameter() {
    let template = Template::load();
    let product: HashMap<String, String> = template
        .settings_block("productSettings")
        .into_iter()
        .collect();
    for (setting, param) in [
        ("LEADS_POLL_SCHEDULE", "pollSchedule"),
        ("LEADS_TABLE", "leadsTable"),
        ("LEADS_STATE_TABLE", "stateTable"),
        ("LEADS_START_FROM", "startFrom"),
        (
            "LEADS_STORAGE_CONNECTION__tableServiceUri",
            "leadTableEndpoint",
        ),
        ("EMAIL_VIA", "emailVia"),
        ("EMAIL_FROM", "emailFrom"),
        ("EMAIL_TO", "emailTo"),
        ("SMTP_HOST", "smtpHost"),
        ("SMTP_PORT", "smtpPort"),
        ("SMTP_SECURITY", "smtpSecurity"),
        ("SMTP_AUTH", "smtpAuth"),
        ("SMTP_USERNAME", "smtpUsername"),
    ] {
        assert_eq!(
            product.get(setting).map(String::as_str),
            Some(param),
            "{setting} is not written from {param}"
        );
        assert!(
            template.params.contains_key(param) || template.vars.contains_key(param),
            "{param} is not declared"
        );
        if let Some(description) = template
            .text
            .lines()
            .find(|l| l.starts_with("@description('") && l.contains(&format!("{setting}:")))
        {
            assert!(!description.is_empty());
        } else if template.params.contains_key(param) {
            panic!("the description of {param} does not name {setting}");
        }
    }
    // The lead account is a parameter, whether created or existing.
    for param in [
        "createLeadAccount",
        "leadAccountName",
        "leadAccountResourceGroup",
        "routes",
        "settings",
        "secretSettingNames",
        "secretValues",
        "operatorEmail",
        "instanceMemoryMB",
        "maximumInstanceCount",
    ] {
        assert!(template.params.contains_key(param), "no parameter {param}");
    }
    assert!(
        template
            .text
            .contains("@secure()\nparam secretValues object"),
        "secret values must be a @secure() parameter"
    );
    // Only the operator address is required; everything else has a default.
    let required: Vec<&String> = template
        .params
        .iter()
        .filter(|(_, d)| d.is_none())
        .map(|(n, _)| n)
        .collect();
    assert_eq!(required, [&"operatorEmail".to_owned()]);
}

#[test]
fn the_app_runs_on_flex_consumption_as_a_custom_handler_with_identities() {
    let text = main_bicep();
    for expected in [
        "name: 'FC1'\n    tier: 'FlexConsumption'",
        "reserved: true",
        "kind: 'functionapp,linux'",
        "type: 'SystemAssigned'",
        "runtime: {\n        name: 'custom'\n        version: '1.0'\n      }",
        "type: 'blobContainer'",
        "authentication: {\n            type: 'SystemAssignedIdentity'",
        "instanceMemoryMB: instanceMemoryMB",
        "maximumInstanceCount: maximumInstanceCount",
        "allowSharedKeyAccess: false",
        "enableRbacAuthorization: true",
    ] {
        assert!(text.contains(expected), "main.bicep lacks `{expected}`");
    }
    // Roles, each explained by the comment above its assignment.
    let modules = all_bicep();
    let everything: String = modules.iter().map(|(_, t)| t.as_str()).collect();
    for (role, id) in [
        (
            "Storage Blob Data Owner",
            "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
        ),
        (
            "Storage Table Data Contributor",
            "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
        ),
        (
            "Key Vault Secrets User",
            "4633458b-17de-408a-b874-0445c86b69e6",
        ),
        (
            "Monitoring Metrics Publisher",
            "3913510d-42f4-4e42-8a64-420c390055eb",
        ),
    ] {
        assert!(everything.contains(id), "no {role} ({id})");
        assert!(
            everything.contains(&format!("// {role}")),
            "{role} unexplained"
        );
    }
    let assignments = everything
        .matches("'Microsoft.Authorization/roleAssignments@")
        .count();
    assert_eq!(assignments, 5, "a role was added or removed: explain it");
    let monitoring = read(&root().join("infra/modules/monitoring.bicep"));
    assert!(monitoring.contains("DisableLocalAuth: true"));
    assert!(monitoring.contains("name == \"LeadNotifier\" and success == false"));
    assert!(monitoring.contains("emailAddress: operatorEmail"));
}

#[test]
fn every_bicep_file_parses_with_pycep_and_passes_checkov() {
    let python_path = std::env::var("LEAD_NOTIFIER_TEST_PYTHONPATH").expect(
        "LEAD_NOTIFIER_TEST_PYTHONPATH is not set: run the tests with `cargo xtask test`, \
         which installs pycep-parser and checkov",
    );
    let out = Command::new("python3")
        .arg(root().join("tests/infra_bicep.py"))
        .arg(root().join("infra"))
        .env("PYTHONPATH", python_path)
        .output()
        .expect("python3 is needed for the Bicep checks: install Python 3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        report["files"].as_array().map(Vec::len),
        Some(4),
        "{report}"
    );
    assert!(report["passed"].as_u64() > Some(10), "{report}");
}

#[test]
fn host_json_and_the_function_folders_suit_flex_consumption_and_premium() {
    let host: Value = serde_json::from_str(&read(&root().join("host.json"))).unwrap();
    assert_eq!(host["version"], "2.0");
    assert_eq!(
        host["customHandler"]["description"]["defaultExecutablePath"],
        "lead-notifier"
    );
    // At most the legacy Consumption limit, so every plan accepts it.
    let timeout = host["functionTimeout"].as_str().unwrap();
    assert!(timeout <= "00:10:00", "{timeout}");
    // Only built-in triggers: no extension bundle to keep in step per plan.
    for file in ["function.json", "webhook.function.json"] {
        let function: Value = serde_json::from_str(&read(&root().join(file))).unwrap();
        for binding in function["bindings"].as_array().unwrap() {
            let kind = binding["type"].as_str().unwrap();
            assert!(
                ["timerTrigger", "httpTrigger", "http"].contains(&kind),
                "{file}: {kind} needs an extension bundle in host.json"
            );
        }
    }
    assert!(host.get("extensionBundle").is_none());
}
