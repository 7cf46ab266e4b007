//! `LeadTake`: the page an alert's "I'll take it" link opens, through the
//! Functions host's anonymous HTTP trigger (`Data.req`). The signed token
//! in the link is the capability; GET only shows (mail scanners open every
//! link), POST takes. The first taker wins through an insert-only record
//! ([`crate::take::store`]).

mod page;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use super::app::App;
use super::invocation::{parse_invocation, InvocationResponse};
use super::webhook::request_body;
use crate::lead::{Lead, LeadRow};
use crate::lead_table::stored_row;
use crate::take::store::{TakeStore, Taken};
use crate::take::{token, TokenError};
use page::NAME_MAX;

/// The header App Service Authentication sets to the signed-in user.
const PRINCIPAL_NAME: &str = "X-MS-CLIENT-PRINCIPAL-NAME";

/// Every page's headers: nothing loads from elsewhere, nothing frames it,
/// no referrer carries the token away, nothing keeps a copy.
const HEADERS: [(&str, &str); 6] = [
    ("Content-Type", "text/html; charset=utf-8"),
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
    ),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
];

/// `POST /LeadTake`: the caller's answer travels in the `res` output.
pub(in crate::host) async fn invoke(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let invocation = match parse_invocation(&body) {
        Ok(invocation) => invocation,
        Err(reason) => return (StatusCode::BAD_REQUEST, reason).into_response(),
    };
    let (res, logs) = handle(&app, &invocation).await;
    let mut outputs = Map::new();
    outputs.insert("res".into(), res);
    Json(InvocationResponse {
        outputs,
        logs,
        return_value: Value::Null,
    })
    .into_response()
}

/// The `res` output: an HTML page with [`HEADERS`].
fn html(status: u16, page: String) -> Value {
    let headers: Map<String, Value> = HEADERS
        .iter()
        .map(|(name, value)| ((*name).to_owned(), Value::from(*value)))
        .collect();
    json!({"statusCode": status, "body": page, "headers": headers})
}

fn refuse(status: u16, title: &str, explanation: &str, log: &str) -> (Value, Vec<String>) {
    (
        html(status, page::refusal(title, explanation)),
        vec![format!("refused: {log}")],
    )
}

/// The value of a request header (the host sends arrays of values), by
/// name in any case.
fn header<'a>(req: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    let headers = req
        .get("Headers")
        .or_else(|| req.get("headers"))?
        .as_object()?;
    let value = headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))?
        .1;
    match value {
        Value::String(s) => Some(s.as_str()),
        Value::Array(values) => values.first()?.as_str(),
        _ => None,
    }
    .map(str::trim)
    .filter(|v| !v.is_empty())
}

/// The link's `t`: from the host's parsed `Query`, else from `Url`.
fn token_of(req: &Map<String, Value>) -> Option<String> {
    let query = req.get("Query").or_else(|| req.get("query"));
    if let Some(t) = query.and_then(|q| q.get("t")).and_then(Value::as_str) {
        return Some(t.to_owned());
    }
    let url = url::Url::parse(req.get("Url").or_else(|| req.get("url"))?.as_str()?).ok()?;
    url.query_pairs()
        .find(|(name, _)| name == "t")
        .map(|(_, value)| value.into_owned())
}

/// The posted `name`, trimmed and on one line; `Err` says what is wrong.
fn posted_name(body: Option<String>) -> Result<String, &'static str> {
    let body = body.unwrap_or_default();
    let name = url::form_urlencoded::parse(body.as_bytes())
        .find(|(field, _)| field == "name")
        .map(|(_, value)| crate::text::one_line(value.trim()))
        .unwrap_or_default();
    match name.chars().count() {
        0 => Err("Please enter your name."),
        n if n > NAME_MAX => Err("Please use a name of at most 100 characters."),
        _ => Ok(name),
    }
}

/// Serves one `LeadTake` request: the page (GET) or a take (POST), as the
/// `res` output and the invocation's log lines. The token, the lead's
/// personal data and the taker's name never reach the logs.
pub async fn handle(app: &App, invocation: &Map<String, Value>) -> (Value, Vec<String>) {
    let Some(req) = invocation
        .get("Data")
        .and_then(|d| d.get("req"))
        .and_then(Value::as_object)
    else {
        return refuse(
            400,
            "Bad request",
            "This request did not come through the function app.",
            "the invocation carries no HTTP request (Data.req)",
        );
    };
    let method = req.get("Method").and_then(Value::as_str).unwrap_or("GET");
    let posting = method.eq_ignore_ascii_case("POST");
    if !posting && !method.eq_ignore_ascii_case("GET") && !method.eq_ignore_ascii_case("HEAD") {
        return refuse(
            405,
            "Not allowed",
            "This page only opens and takes leads.",
            "method not allowed",
        );
    }
    let pipeline = match app.pipeline().await {
        Ok(p) => p,
        Err(reason) => {
            eprintln!("lead-notifier: LeadTake cannot start: {reason}");
            return refuse(
                500,
                "Not available",
                "The lead service is not set up correctly. Please tell its administrator.",
                "settings",
            );
        }
    };
    let settings = pipeline.settings();
    let Some(take) = &settings.take else {
        return refuse(
            404,
            "Not available",
            "Taking leads by link is not turned on.",
            "take links are off (PUBLIC_URL, TAKE_LINK_SECRET)",
        );
    };
    let Some(link) = token_of(req) else {
        return refuse(
            400,
            "Link incomplete",
            "This link is incomplete. Open it again from the alert.",
            "no token",
        );
    };
    let found = match token::verify(&take.secret, &link, OffsetDateTime::now_utc()) {
        Ok(found) => found,
        Err(e) => {
            let (status, explanation) = match e {
                TokenError::Malformed => (
                    400,
                    "This link is incomplete or damaged. Open it again from the alert.",
                ),
                TokenError::Forged => {
                    (403, "This link is not valid. Open it again from the alert.")
                }
                TokenError::Expired => (
                    410,
                    "This link has expired. Find the lead in your lead table or CRM.",
                ),
            };
            return refuse(status, "Link not valid", explanation, &e.to_string());
        }
    };
    let key = found.lead;
    let storage = pipeline.storage();
    let probe = LeadRow {
        partition_key: key.partition_key.clone(),
        row_key: key.row_key.clone(),
        ..LeadRow::default()
    };
    let unavailable = |what: &str, e: &dyn std::fmt::Display| {
        eprintln!("lead-notifier: LeadTake could not {what} for lead {key}: {e}");
        refuse(
            503,
            "Try again",
            "The lead could not be read just now. Please try again in a minute.",
            &format!("storage: could not {what}"),
        )
    };
    let row = match stored_row(&storage, &settings.leads_table, &probe).await {
        Ok(Some(row)) => row,
        Ok(None) => {
            return refuse(
                404,
                "Lead not found",
                "This lead is no longer in the lead table.",
                &format!("lead {key} is not in the lead table"),
            )
        }
        Err(e) => return unavailable("read the lead", &e),
    };
    let lead = Lead::from_row(&row);
    let takes = TakeStore::new(&storage, &settings.state_table, &settings.leads_table);
    let signed_in = header(req, PRINCIPAL_NAME)
        .map(|n| crate::text::truncate(&crate::text::one_line(n), NAME_MAX));
    let open = |problem: Option<&str>| {
        page::lead_page(
            &lead,
            page::State::Open {
                token: &link,
                signed_in: signed_in.as_deref(),
                problem,
            },
        )
    };
    if !posting {
        let page = match takes.get(&key).await {
            Ok(Some(taken)) => page::lead_page(
                &lead,
                page::State::Taken {
                    take: &taken,
                    now: false,
                },
            ),
            Ok(None) => open(None),
            Err(e) => return unavailable("read who took the lead", &e),
        };
        return (html(200, page), vec![format!("lead {key} shown")]);
    }
    let name = match signed_in
        .clone()
        .map_or_else(|| posted_name(request_body(req)), Ok)
    {
        Ok(name) => name,
        Err(problem) => {
            return (
                html(400, open(Some(problem))),
                vec![format!("lead {key}: take refused, no usable name")],
            )
        }
    };
    let same = |by: &str| by.to_lowercase() == name.to_lowercase();
    match takes.take(&key, &name, lead.timestamp).await {
        Ok(Taken::Now(taken)) => {
            tracing::info!(lead = %key, "lead taken");
            tracing::debug!(lead = %key, by = %taken.by, "lead taken by");
            // Signed webhooks hear of it at once, without holding the
            // answer; what fails there, the timer sends.
            let (pipeline, announced, take) = (pipeline.clone(), lead.clone(), taken.clone());
            app.spawn(async move {
                let lead = announced.key.clone();
                if let Err(e) = pipeline.announce_take(announced, take).await {
                    eprintln!("lead-notifier: lead.taken for lead {lead} left to the timer: {e}");
                }
            });
            let page = page::lead_page(
                &lead,
                page::State::Taken {
                    take: &taken,
                    now: true,
                },
            );
            (html(200, page), vec![format!("lead {key} taken")])
        }
        Ok(Taken::Before(first)) if same(&first.by) => {
            let page = page::lead_page(
                &lead,
                page::State::Taken {
                    take: &first,
                    now: true,
                },
            );
            (
                html(200, page),
                vec![format!("lead {key} was already taken by the same person")],
            )
        }
        Ok(Taken::Before(first)) => {
            tracing::debug!(lead = %key, by = %first.by, "lead was taken already");
            let page = page::lead_page(&lead, page::State::TakenByOther { take: &first });
            (
                html(409, page),
                vec![format!("lead {key} was taken already")],
            )
        }
        Err(e) => unavailable("record the take", &e),
    }
}
