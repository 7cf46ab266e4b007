//! A HubSpot stand-in: contacts and notes kept in memory, behind the CRM
//! endpoints lead-notifier calls, with the request and answer shapes of
//! HubSpot's reference (`/crm/objects/2026-09/…`: contacts batch read and
//! upsert by email, primary or secondary address alike, notes batch
//! create with associations and batch read,
//! `/crm/associations/2026-09/contacts/notes/batch/read`, a contacts list
//! for `check`). It checks the bearer
//! token, and can be scripted to answer the next requests with a status
//! and headers (429 with `Retry-After`, 500, 401, 400 with HubSpot's error
//! body), and to hold its answer to a notes create after storing the notes
//! (a process killed meanwhile has written them, but never heard so), or
//! to answer one such create with an error after storing (an answer lost).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};

pub const VERSION: &str = "2026-09";

#[derive(Debug, Clone)]
pub struct Contact {
    pub id: String,
    pub properties: Map<String, Value>,
}

#[derive(Debug, Clone)]
pub struct Note {
    pub id: String,
    pub body: String,
    pub timestamp: String,
    pub contact: String,
    pub association_type: u64,
}

/// A scripted answer for the next request to a path ending in `path`
/// (any path when empty).
#[derive(Debug, Clone)]
pub struct Scripted {
    pub path: &'static str,
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Value,
}

#[derive(Debug, Clone)]
pub struct Call {
    pub path: String,
    pub inputs: usize,
}

#[derive(Default)]
struct Inner {
    contacts: Vec<Contact>,
    notes: Vec<Note>,
    calls: Vec<Call>,
    script: VecDeque<Scripted>,
    next_id: u64,
    /// Held after storing the notes of a create, before answering.
    note_delay: Option<Duration>,
    /// Associations answered per page (HubSpot: 500), 0 for that default.
    page: usize,
    /// The status the next notes create answers after storing its notes.
    notes_then: Option<u16>,
    /// Upserts answer only the properties they were given (HubSpot's
    /// reference does not promise `email` in the answer).
    terse_upserts: bool,
}

#[derive(Clone)]
struct Shared {
    token: String,
    inner: Arc<Mutex<Inner>>,
}

pub struct HubSpot {
    pub url: String,
    pub token: String,
    shared: Shared,
}

impl HubSpot {
    pub async fn start(token: &str) -> HubSpot {
        let shared = Shared {
            token: token.to_owned(),
            inner: Arc::new(Mutex::new(Inner {
                next_id: 1000,
                ..Inner::default()
            })),
        };
        let prefix = format!("/crm/objects/{VERSION}");
        let app = Router::new()
            .route(&format!("{prefix}/contacts"), get(list_contacts))
            .route(&format!("{prefix}/{{object}}/batch/{{verb}}"), post(batch))
            .route(
                &format!("/crm/associations/{VERSION}/contacts/notes/batch/read"),
                post(associations),
            )
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        HubSpot {
            url,
            token: token.to_owned(),
            shared,
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.shared.inner.lock().expect("lock")
    }

    /// A contact already in the account (as the sales team left it).
    pub fn add_contact(&self, properties: Value) -> String {
        let mut inner = self.inner();
        inner.next_id += 1;
        let id = inner.next_id.to_string();
        let properties = properties.as_object().cloned().unwrap_or_default();
        inner.contacts.push(Contact {
            id: id.clone(),
            properties,
        });
        id
    }

    pub fn script(&self, answer: Scripted) {
        self.inner().script.push_back(answer);
    }

    /// A note already on a contact (one the sales team wrote).
    pub fn add_note(&self, contact: &str, body: &str) {
        let mut inner = self.inner();
        inner.next_id += 1;
        let id = inner.next_id.to_string();
        inner.notes.push(Note {
            id,
            body: body.to_owned(),
            timestamp: "1764000000000".to_owned(),
            contact: contact.to_owned(),
            association_type: 202,
        });
    }

    /// Associations answered `n` to a page, with `paging.next.after`.
    pub fn page_associations(&self, n: usize) {
        self.inner().page = n;
    }

    pub fn hold_notes(&self, delay: Option<Duration>) {
        self.inner().note_delay = delay;
    }

    /// The next notes create stores its notes, then answers `status`.
    pub fn lose_next_notes_answer(&self, status: u16) {
        self.inner().notes_then = Some(status);
    }

    /// Upserts answer the properties they were given, without `email`.
    pub fn terse_upserts(&self) {
        self.inner().terse_upserts = true;
    }

    pub fn contacts(&self) -> Vec<Contact> {
        self.inner().contacts.clone()
    }

    pub fn contact(&self, email: &str) -> Option<Contact> {
        self.contacts().into_iter().find(|c| {
            c.properties.get("email").and_then(Value::as_str) == Some(&email.to_lowercase())
        })
    }

    pub fn notes(&self) -> Vec<Note> {
        self.inner().notes.clone()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.inner().calls.clone()
    }
}

fn error(status: StatusCode, category: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"status": "error", "message": message, "correlationId": "c0ffee", "category": category})),
    )
        .into_response()
}

/// Checks the token and the script; `Some` answers in place of the endpoint.
fn gate(shared: &Shared, headers: &HeaderMap, path: &str, inputs: usize) -> Option<Response> {
    let mut inner = shared.inner.lock().expect("lock");
    inner.calls.push(Call {
        path: path.to_owned(),
        inputs,
    });
    let scripted = inner
        .script
        .iter()
        .position(|s| path.ends_with(s.path))
        .and_then(|i| inner.script.remove(i));
    if let Some(s) = scripted {
        let mut response = (
            StatusCode::from_u16(s.status).expect("status"),
            Json(s.body),
        )
            .into_response();
        for (name, value) in s.headers {
            response
                .headers_mut()
                .insert(name, value.parse().expect("header value"));
        }
        return Some(response);
    }
    let expected = format!("Bearer {}", shared.token);
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth != expected {
        return Some(error(
            StatusCode::UNAUTHORIZED,
            "INVALID_AUTHENTICATION",
            "Authentication credentials not found.",
        ));
    }
    None
}

async fn list_contacts(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    if let Some(r) = gate(&shared, &headers, "contacts", 0) {
        return r;
    }
    Json(json!({"results": []})).into_response()
}

/// Whether `email` (lowercase) finds the contact: HubSpot looks contacts
/// up by their primary address (`email`) and by their secondary ones
/// (`hs_additional_emails`, separated by `;`) alike.
fn has_address(contact: &Contact, email: &str) -> bool {
    let text = |name: &str| {
        contact
            .properties
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_lowercase()
    };
    text("email") == email
        || text("hs_additional_emails")
            .split(';')
            .any(|a| a.trim() == email)
}

fn record(id: &str, properties: &Map<String, Value>) -> Value {
    json!({"id": id, "properties": properties, "createdAt": "2026-12-05T20:00:00Z",
           "updatedAt": "2026-12-05T20:00:00Z", "archived": false})
}

async fn batch(
    State(shared): State<Shared>,
    Path((object, verb)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let inputs = body["inputs"].as_array().cloned().unwrap_or_default();
    let path = format!("{object}/batch/{verb}");
    if let Some(r) = gate(&shared, &headers, &path, inputs.len()) {
        return r;
    }
    if inputs.len() > 100 {
        return error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            "too many inputs",
        );
    }
    match (object.as_str(), verb.as_str()) {
        ("contacts", "read") => {
            assert_eq!(body["idProperty"], "email", "contacts are read by email");
            let inner = shared.inner.lock().expect("lock");
            let mut results = Vec::new();
            let mut errors = Vec::new();
            for input in &inputs {
                let email = input["id"].as_str().unwrap_or("").to_lowercase();
                match inner.contacts.iter().find(|c| has_address(c, &email)) {
                    Some(c) => results.push(record(&c.id, &c.properties)),
                    None => errors.push(json!({"status": "error", "category": "OBJECT_NOT_FOUND",
                        "message": "Could not get some CONTACT objects, they may be deleted or not exist.",
                        "context": {"ids": [email]}})),
                }
            }
            let status = if errors.is_empty() {
                StatusCode::OK
            } else {
                StatusCode::MULTI_STATUS
            };
            (
                status,
                Json(json!({"status": "COMPLETE", "results": results, "errors": errors})),
            )
                .into_response()
        }
        ("contacts", "upsert") => {
            let mut ids: Vec<String> = inputs
                .iter()
                .map(|i| i["id"].as_str().unwrap_or("").to_lowercase())
                .collect();
            ids.sort();
            if ids.windows(2).any(|w| w[0] == w[1]) {
                return error(
                    StatusCode::BAD_REQUEST,
                    "VALIDATION_ERROR",
                    "Duplicate IDs found in batch input. IDs must be unique",
                );
            }
            let mut inner = shared.inner.lock().expect("lock");
            let mut results = Vec::new();
            for input in &inputs {
                assert_eq!(input["idProperty"], "email", "upserts are by email");
                let email = input["id"].as_str().unwrap_or("").to_lowercase();
                let properties = input["properties"].as_object().cloned().unwrap_or_default();
                let at = inner.contacts.iter().position(|c| has_address(c, &email));
                let i = match at {
                    Some(i) => i,
                    None => {
                        inner.next_id += 1;
                        let id = inner.next_id.to_string();
                        let mut fresh = Map::new();
                        fresh.insert("email".into(), json!(email));
                        inner.contacts.push(Contact {
                            id,
                            properties: fresh,
                        });
                        inner.contacts.len() - 1
                    }
                };
                // Upsert overwrites what it is given, as HubSpot does.
                let terse = inner.terse_upserts;
                let contact = &mut inner.contacts[i];
                contact.properties.extend(properties.clone());
                if terse {
                    results.push(record(&contact.id, &properties));
                } else {
                    results.push(record(&contact.id, &contact.properties));
                }
            }
            Json(json!({"status": "COMPLETE", "results": results})).into_response()
        }
        ("notes", "create") => {
            let delay;
            let results = {
                let mut inner = shared.inner.lock().expect("lock");
                let mut results = Vec::new();
                for input in &inputs {
                    let association = &input["associations"][0];
                    let props = &input["properties"];
                    let (Some(body), Some(timestamp)) = (
                        props["hs_note_body"].as_str(),
                        props["hs_timestamp"].as_str(),
                    ) else {
                        return error(
                            StatusCode::BAD_REQUEST,
                            "VALIDATION_ERROR",
                            "hs_timestamp is required",
                        );
                    };
                    if body.chars().count() > 65_536 {
                        return error(
                            StatusCode::BAD_REQUEST,
                            "VALIDATION_ERROR",
                            "hs_note_body too long",
                        );
                    }
                    inner.next_id += 1;
                    let note = Note {
                        id: inner.next_id.to_string(),
                        body: body.to_owned(),
                        timestamp: timestamp.to_owned(),
                        contact: association["to"]["id"].as_str().unwrap_or("").to_owned(),
                        association_type: association["types"][0]["associationTypeId"]
                            .as_u64()
                            .unwrap_or(0),
                    };
                    results.push(json!({"id": note.id, "properties": {"hs_note_body": body, "hs_timestamp": timestamp}}));
                    inner.notes.push(note);
                }
                delay = inner.note_delay;
                if let Some(status) = inner.notes_then.take() {
                    return error(
                        StatusCode::from_u16(status).expect("status"),
                        "INTERNAL_ERROR",
                        "internal error",
                    );
                }
                results
            };
            if let Some(delay) = delay {
                tokio::time::sleep(delay).await;
            }
            (
                StatusCode::CREATED,
                Json(json!({"status": "COMPLETE", "results": results})),
            )
                .into_response()
        }
        ("notes", "read") => {
            assert!(body.get("idProperty").is_none(), "notes are read by id");
            let inner = shared.inner.lock().expect("lock");
            let results: Vec<Value> = inputs
                .iter()
                .filter_map(|input| {
                    let id = input["id"].as_str()?;
                    let note = inner.notes.iter().find(|n| n.id == id)?;
                    Some(json!({"id": note.id, "properties": {"hs_note_body": note.body, "hs_object_id": note.id}}))
                })
                .collect();
            Json(json!({"status": "COMPLETE", "results": results})).into_response()
        }
        _ => error(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            "no such endpoint",
        ),
    }
}

/// Associations v4's batch read, contacts to notes: ids as numbers.
async fn associations(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let inputs = body["inputs"].as_array().cloned().unwrap_or_default();
    if let Some(r) = gate(
        &shared,
        &headers,
        "associations/contacts/notes/batch/read",
        inputs.len(),
    ) {
        return r;
    }
    let inner = shared.inner.lock().expect("lock");
    let page = if inner.page == 0 { 500 } else { inner.page };
    let results: Vec<Value> = inputs
        .iter()
        .map(|input| {
            let contact = input["id"].as_str().unwrap_or("");
            let start: usize = input["after"]
                .as_str()
                .and_then(|a| a.parse().ok())
                .unwrap_or(0);
            let all: Vec<&Note> = inner.notes.iter().filter(|n| n.contact == contact).collect();
            let to: Vec<Value> = all
                .iter()
                .skip(start)
                .take(page)
                .map(|n| json!({"toObjectId": n.id.parse::<u64>().unwrap_or(0),
                    "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": n.association_type, "label": null}]}))
                .collect();
            let mut result = json!({"from": {"id": contact}, "to": to});
            if start + page < all.len() {
                let after = (start + page).to_string();
                result["paging"] = json!({"next": {"after": after, "link": null}});
            }
            result
        })
        .collect();
    Json(json!({"status": "COMPLETE", "results": results})).into_response()
}
