//! `LeadWebhook`: Partner Center's HTTPS-endpoint destination, received
//! through the Functions host's HTTP trigger.

use serde_json::{json, Map, Value};

use crate::host::App;

/// The HTTP output (`res`) for the caller and the invocation's log lines.
pub struct WebhookOutputs {
    pub res: Value,
    pub logs: Vec<String>,
}

pub async fn handle(_app: &App, _invocation: &Map<String, Value>) -> WebhookOutputs {
    WebhookOutputs {
        res: json!({"statusCode": 501, "body": "not implemented yet"}),
        logs: vec![],
    }
}
