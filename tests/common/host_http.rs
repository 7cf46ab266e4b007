//! The Functions host's HTTP front for a browser: serves `/api/<Function>`
//! on a free loopback port and passes each request to the real handler as
//! the host does (an invocation with `Data.req`: `Url`, `Method`, `Query`,
//! `Headers` as arrays, `Body` as text), answering with the `res` output's
//! status, headers and body.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Router;
use serde_json::{json, Map, Value};

use super::servers::free_port;

struct Front {
    /// The handler's port, 0 until [`HostFront::route_to`].
    handler: AtomicU16,
    port: u16,
    http: reqwest::Client,
}

/// A running front; it stops with the test's runtime.
pub struct HostFront {
    pub port: u16,
    front: Arc<Front>,
}

impl HostFront {
    /// Listens at once, so its URL can be the handler's `PUBLIC_URL`; passes
    /// requests on once [`Self::route_to`] names the handler.
    pub async fn start() -> HostFront {
        let port = free_port();
        let front = Arc::new(Front {
            handler: AtomicU16::new(0),
            port,
            http: reqwest::Client::new(),
        });
        let app = Router::new().fallback(pass).with_state(front.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind the host front");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        HostFront { port, front }
    }

    /// Where the custom handler listens.
    pub fn route_to(&self, handler_port: u16) {
        self.front.handler.store(handler_port, Ordering::SeqCst);
    }

    /// The app's public base URL (`PUBLIC_URL`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

async fn pass(State(front): State<Arc<Front>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let Some(function) = path.strip_prefix("/api/") else {
        return status_only(StatusCode::NOT_FOUND);
    };
    let body = to_bytes(body, 1024 * 1024).await.unwrap_or_default();
    let query: HashMap<String, String> =
        url::form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let mut headers = Map::new();
    for (name, value) in &parts.headers {
        let value = Value::from(value.to_str().unwrap_or_default());
        if let Some(values) = headers
            .entry(name.as_str().to_owned())
            .or_insert_with(|| json!([]))
            .as_array_mut()
        {
            values.push(value);
        }
    }
    let url = format!(
        "http://127.0.0.1:{}{}",
        front.port,
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let invocation = json!({
        "Data": {"req": {
            "Url": url,
            "Method": parts.method.as_str(),
            "Query": query,
            "Headers": headers,
            "Params": {},
            "Body": if body.is_empty() { Value::Null } else { Value::from(String::from_utf8_lossy(&body).into_owned()) },
            "Identities": []
        }},
        "Metadata": {"sys": {"MethodName": function, "UtcNow": "2026-12-05T20:00:00Z", "RandGuid": "5a1e0d6c-0000-4000-8000-000000000003"}}
    });
    let answer = front
        .http
        .post(format!(
            "http://127.0.0.1:{}/{function}",
            front.handler.load(Ordering::SeqCst)
        ))
        .header(
            "X-Azure-Functions-InvocationId",
            "0f3e4d5c-1111-2222-3333-444455556667",
        )
        .json(&invocation)
        .send()
        .await;
    let Ok(answer) = answer else {
        return status_only(StatusCode::BAD_GATEWAY);
    };
    if !answer.status().is_success() {
        // The host answers 500 when the invocation failed.
        return status_only(StatusCode::INTERNAL_SERVER_ERROR);
    }
    let value: Value = answer.json().await.unwrap_or(Value::Null);
    let res = &value["Outputs"]["res"];
    let status = res["statusCode"]
        .as_u64()
        .and_then(|s| StatusCode::from_u16(s as u16).ok())
        .unwrap_or(StatusCode::OK);
    let mut response = Response::new(Body::from(
        res["body"].as_str().unwrap_or_default().to_owned(),
    ));
    *response.status_mut() = status;
    if let Some(headers) = res["headers"].as_object() {
        for (name, value) in headers {
            if let (Ok(name), Some(Ok(value))) = (
                HeaderName::try_from(name.as_str()),
                value.as_str().map(HeaderValue::from_str),
            ) {
                response.headers_mut().insert(name, value);
            }
        }
    }
    response
}

fn status_only(status: StatusCode) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    response
}
