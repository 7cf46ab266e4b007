//! A fault-injecting HTTP proxy in front of Azurite: it forwards every
//! request, except that it answers some itself with the throttling replies
//! Table storage gives (503 ServerBusy, 429) and a `Retry-After`, without
//! forwarding them, so a retry is always safe and must succeed. It can also
//! refuse, as Table storage refuses an entity it does not take (400
//! PropertyValueTooLarge), every write whose body holds a given text, and
//! change text in Azurite's answers, for answers Azurite never gives.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Router;

/// A refusal the proxy answers instead of forwarding.
#[derive(Debug, Clone, Copy)]
pub struct Throttle {
    pub status: u16,
    /// `Retry-After` in seconds.
    pub retry_after: u32,
}

struct Plan {
    upstream: String,
    /// Answered, in order, to the first requests.
    first: Mutex<VecDeque<Throttle>>,
    /// After those, every n-th request is refused with 503 too.
    every: Option<usize>,
    /// Writes whose body contains one of these are refused with 400.
    refuse_bodies: Vec<String>,
    /// Text replaced in every answer's body: (what, by what).
    rewrites: Vec<(String, String)>,
    seen: AtomicUsize,
    refused: AtomicUsize,
    http: reqwest::Client,
}

pub struct FaultProxy {
    pub port: u16,
    plan: Arc<Plan>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to Azurite on `upstream_port`.
    pub async fn start(upstream_port: u16, first: &[Throttle], every: Option<usize>) -> FaultProxy {
        FaultProxy::with_plan(upstream_port, first, every, Vec::new(), Vec::new()).await
    }

    /// Forwards everything except writes (POST, PUT, MERGE, PATCH) whose
    /// body contains one of `needles`: those, entity group transactions
    /// included, are answered 400 PropertyValueTooLarge, as Table storage
    /// answers an entity it does not take.
    pub async fn refusing(upstream_port: u16, needles: &[String]) -> FaultProxy {
        FaultProxy::with_plan(upstream_port, &[], None, needles.to_vec(), Vec::new()).await
    }

    /// Forwards everything, replacing each `(what, by)` in the answers.
    pub async fn rewriting(upstream_port: u16, rewrites: &[(&str, &str)]) -> FaultProxy {
        let rewrites = rewrites
            .iter()
            .map(|(what, by)| (what.to_string(), by.to_string()))
            .collect();
        FaultProxy::with_plan(upstream_port, &[], None, Vec::new(), rewrites).await
    }

    async fn with_plan(
        upstream_port: u16,
        first: &[Throttle],
        every: Option<usize>,
        refuse_bodies: Vec<String>,
        rewrites: Vec<(String, String)>,
    ) -> FaultProxy {
        let plan = Arc::new(Plan {
            upstream: format!("http://127.0.0.1:{upstream_port}"),
            first: Mutex::new(first.iter().copied().collect()),
            every,
            refuse_bodies,
            rewrites,
            seen: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
            http: reqwest::Client::new(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = Router::new().fallback(forward).with_state(plan.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FaultProxy { port, plan }
    }

    /// A connection string that reaches Azurite through the proxy.
    pub fn connection_string(&self) -> String {
        super::servers::connection_string(self.port)
    }

    /// Requests received so far, refused ones included.
    pub fn seen(&self) -> usize {
        self.plan.seen.load(Ordering::SeqCst)
    }

    /// Requests answered with a throttling reply or refused.
    pub fn refused(&self) -> usize {
        self.plan.refused.load(Ordering::SeqCst)
    }
}

fn refusal(throttle: Throttle) -> Response {
    let code = if throttle.status == 429 {
        "TooManyRequests"
    } else {
        "ServerBusy"
    };
    let mut response = error_answer(throttle.status, code);
    let headers = response.headers_mut();
    headers.insert("retry-after", HeaderValue::from(throttle.retry_after));
    response
}

/// A Table storage error answer.
fn error_answer(status: u16, code: &'static str) -> Response {
    let body = serde_json::json!({"odata.error": {"code": code, "message": {"lang": "en-US", "value": "injected by the test proxy"}}});
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    let headers = response.headers_mut();
    headers.insert("x-ms-error-code", HeaderValue::from_static(code));
    headers.insert(
        "content-type",
        HeaderValue::from_static("application/json;odata=minimalmetadata"),
    );
    response
}

async fn forward(State(plan): State<Arc<Plan>>, request: Request) -> Response {
    let n = plan.seen.fetch_add(1, Ordering::SeqCst) + 1;
    let scripted = plan.first.lock().unwrap().pop_front();
    let periodic = plan
        .every
        .filter(|every| scripted.is_none() && n % every == 0)
        .map(|_| Throttle {
            status: 503,
            retry_after: 0,
        });
    if let Some(throttle) = scripted.or(periodic) {
        plan.refused.fetch_add(1, Ordering::SeqCst);
        return refusal(throttle);
    }

    let (parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let Ok(bytes) = to_bytes(body, usize::MAX).await else {
        return bad_gateway("could not read the request body");
    };
    let write = matches!(parts.method.as_str(), "POST" | "PUT" | "MERGE" | "PATCH");
    let text = String::from_utf8_lossy(&bytes);
    if write && plan.refuse_bodies.iter().any(|n| text.contains(n.as_str())) {
        plan.refused.fetch_add(1, Ordering::SeqCst);
        return error_answer(400, "PropertyValueTooLarge");
    }
    let Ok(method) = reqwest::Method::from_bytes(parts.method.as_str().as_bytes()) else {
        return bad_gateway("unknown method");
    };
    let mut upstream = plan
        .http
        .request(method, format!("{}{path}", plan.upstream));
    for (name, value) in &parts.headers {
        if !matches!(
            name.as_str(),
            "host" | "content-length" | "connection" | "transfer-encoding"
        ) {
            upstream = upstream.header(name.as_str(), value.as_bytes());
        }
    }
    let answer = match upstream.body(bytes).send().await {
        Ok(answer) => answer,
        // Azurite is down: what a load balancer in front of it would say.
        Err(_) => return bad_gateway("upstream unreachable"),
    };
    let status = answer.status().as_u16();
    let headers = answer.headers().clone();
    let mut body = answer.bytes().await.unwrap_or_default();
    if !plan.rewrites.is_empty() {
        let mut text = String::from_utf8_lossy(&body).into_owned();
        for (what, by) in &plan.rewrites {
            text = text.replace(what.as_str(), by);
        }
        body = text.into();
    }
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    for (name, value) in &headers {
        if matches!(
            name.as_str(),
            "content-length" | "connection" | "transfer-encoding"
        ) {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_str().as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

fn bad_gateway(reason: &'static str) -> Response {
    let mut response = Response::new(Body::from(reason));
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response
}
