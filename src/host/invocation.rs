//! The bodies the Functions host sends to and expects from every invocation
//! (platform facts §2).

use serde::Serialize;
use serde_json::{Map, Value};

/// The body the host expects back from every invocation.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InvocationResponse<T: Serialize> {
    pub outputs: Map<String, Value>,
    pub logs: Vec<String>,
    pub return_value: T,
}

/// Parses an invocation body: a JSON object whose `Data` (when present) is an
/// object. Nothing else in it is needed, so nothing else is checked. The host
/// keeps text as UTF-16: half an emoji in a posted lead reaches this body as
/// a lone surrogate escape, read as U+FFFD instead of failing the body.
pub fn parse_invocation(body: &[u8]) -> Result<Map<String, Value>, String> {
    let value: Value = serde_json::from_slice(&crate::json_text::repair_bytes(body))
        .map_err(|e| format!("invocation body is not JSON: {e}"))?;
    let Value::Object(object) = value else {
        return Err("invocation body must be a JSON object".into());
    };
    match object.get("Data") {
        None | Some(Value::Object(_)) => Ok(object),
        Some(_) => Err("invocation body's Data must be a JSON object".into()),
    }
}
