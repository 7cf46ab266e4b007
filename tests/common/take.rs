//! The `LeadTake` function played as the Functions host calls it: settings
//! with take links on, a lead to take, and the invocations of its page.

use std::collections::HashMap;

use lead_notifier::config::Settings;
use lead_notifier::lead::LeadRow;
use lead_notifier::lead_table::store_rows;
use lead_notifier::storage::Storage;
use serde_json::{json, Value};

use super::handler::{res_status, Handler};
use super::servers::{maildev_smtp_port, storage_connection, unique_table};

/// base64 of the 32 bytes `0123456789abcdef0123456789abcdef`.
pub const SECRET: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
pub const PUBLIC_URL: &str = "https://contoso-leads.azurewebsites.net";

pub fn settings_for(tag: &str, recipient: &str) -> HashMap<String, String> {
    HashMap::from(
        [
            ("LEADS_STORAGE_CONNECTION", storage_connection()),
            ("LEADS_TABLE", unique_table(&format!("{tag}leads"))),
            ("LEADS_STATE_TABLE", unique_table(&format!("{tag}state"))),
            ("LEADS_START_FROM", "beginning".to_owned()),
            ("SMTP_HOST", "127.0.0.1".to_owned()),
            ("SMTP_PORT", maildev_smtp_port().to_string()),
            ("SMTP_SECURITY", "none".to_owned()),
            ("EMAIL_FROM", "leads@contoso.example".to_owned()),
            ("EMAIL_TO", recipient.to_owned()),
            ("PUBLIC_URL", PUBLIC_URL.to_owned()),
            ("TAKE_LINK_SECRET", SECRET.to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    )
}

pub fn lead_row(row_key: &str) -> LeadRow {
    LeadRow {
        partition_key: "12:2F5:2F2026".into(),
        row_key: row_key.into(),
        timestamp: None,
        action_code: None,
        created_time: Some("12/5/2026 7:58:00 PM".into()),
        customer_info: Some(
            json!({"FirstName": "Petra", "LastName": "Novák", "Email": "petra@brno.example",
                   "Phone": "+420 555 0199", "Country": "CZ", "Company": "Brno Cloud s.r.o.", "Title": "CTO"})
            .to_string(),
        ),
        description: Some("Wants a demo <b>today</b>".into()),
        lead_source: Some("SPZA-PLT|contoso.crm-suite".into()),
        offer_display_name: Some("Contoso CRM Suite".into()),
    }
}

/// Stores `row` in the settings' lead table.
pub async fn store(settings: &HashMap<String, String>, row: &LeadRow) -> Settings {
    let config = Settings::from_map(settings).unwrap();
    let storage = Storage::new(&config.storage, reqwest::Client::new());
    store_rows(&storage, &config.leads_table, std::slice::from_ref(row))
        .await
        .unwrap();
    config
}

/// The HTTP-trigger invocation the host sends for `LeadTake`.
pub fn take_invocation(method: &str, link: &str, form: Option<&str>, headers: Value) -> Value {
    let token = link.split_once("?t=").map_or(link, |(_, t)| t);
    let mut all_headers = json!({"Accept": ["text/html"], "User-Agent": ["Mozilla/5.0"]});
    if let (Some(all), Some(extra)) = (all_headers.as_object_mut(), headers.as_object()) {
        all.extend(extra.clone());
    }
    if form.is_some() {
        all_headers["Content-Type"] = json!(["application/x-www-form-urlencoded"]);
    }
    json!({
        "Data": {"req": {
            "Url": format!("{PUBLIC_URL}/api/LeadTake?t={token}"),
            "Method": method,
            "Query": {"t": token},
            "Headers": all_headers,
            "Params": {},
            "Body": form,
            "Identities": []
        }},
        "Metadata": {"sys": {"MethodName": "LeadTake", "UtcNow": "2026-12-05T20:00:00Z", "RandGuid": "5a1e0d6c-0000-4000-8000-000000000002"}}
    })
}

/// Status, page and headers of one `LeadTake` request.
pub async fn request(handler: &Handler, invocation: &Value) -> (u64, String, Value) {
    let (status, body) = handler.invoke("LeadTake", invocation).await;
    assert_eq!(status, 200, "the handler answered the host: {body}");
    let res = &body["Outputs"]["res"];
    let page = res["body"].as_str().unwrap_or_default().to_owned();
    (res_status(&body), page, res["headers"].clone())
}

pub async fn get(handler: &Handler, link: &str) -> (u64, String, Value) {
    request(handler, &take_invocation("GET", link, None, json!({}))).await
}

pub async fn post(handler: &Handler, link: &str, name: &str) -> (u64, String) {
    let form = format!("name={}", urlencode(name));
    let (status, page, _) = request(
        handler,
        &take_invocation("POST", link, Some(&form), json!({})),
    )
    .await;
    (status, page)
}

pub fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
