//! A Microsoft Graph `sendMail` stand-in: checks the bearer token like
//! Graph (401 `InvalidAuthenticationToken` for any other), answers scripted
//! faults in order then 202, and keeps every request with its MIME decoded.
//! [`Bearer`] is also how the scripted SMTP server checks XOAUTH2 tokens.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use base64::Engine as _;
use serde_json::json;
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use super::faults::email_lead_keys;

/// Which bearer tokens a stand-in service accepts.
#[derive(Debug, Clone)]
pub enum Bearer {
    /// Exactly this token (a test's own token source).
    Exact(String),
    /// A JWT whose `aud` is this resource, as the Entra ID stand-ins issue
    /// them and as Graph and Exchange check them (not the signature).
    Audience(String),
}

impl Bearer {
    pub fn accepts(&self, token: &str) -> bool {
        match self {
            Bearer::Exact(expected) => token == expected,
            Bearer::Audience(audience) => {
                jwt_claims(token).is_some_and(|claims| claims["aud"] == audience.as_str())
            }
        }
    }
}

/// The claims of a JWT-shaped token, if it is one.
pub fn jwt_claims(token: &str) -> Option<serde_json::Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// One scripted answer.
#[derive(Debug, Clone, Copy)]
pub struct GraphReply {
    pub status: u16,
    pub retry_after: Option<&'static str>,
    /// Graph's `error.code`.
    pub code: Option<&'static str>,
}

impl GraphReply {
    pub const fn error(status: u16, code: &'static str) -> GraphReply {
        GraphReply {
            status,
            retry_after: None,
            code: Some(code),
        }
    }
}

/// One request as received, and the answer it got.
#[derive(Debug, Clone)]
pub struct GraphPost {
    pub at: Instant,
    pub path: String,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    pub status: u16,
    /// The body decoded from base64: the MIME message (empty if not base64).
    pub mime: Vec<u8>,
}

impl GraphPost {
    pub fn accepted(&self) -> bool {
        self.status == 202
    }

    pub fn parsed(&self) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default()
            .parse(&self.mime)
            .expect("the body is a MIME message")
    }

    /// The "Lead keys:" values of the plain-text part.
    pub fn lead_keys(&self) -> Vec<String> {
        let message = self.parsed();
        let text = message.body_text(0).unwrap_or_default();
        email_lead_keys(&text)
    }
}

struct Script {
    bearer: Bearer,
    replies: Mutex<VecDeque<GraphReply>>,
    posts: Arc<Mutex<Vec<GraphPost>>>,
}

impl Respond for Script {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let header = |name: &str| {
            request
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let authorization = header("authorization");
        let token = authorization
            .as_deref()
            .and_then(|a| a.strip_prefix("Bearer "));
        let reply = if !token.is_some_and(|t| self.bearer.accepts(t)) {
            GraphReply::error(401, "InvalidAuthenticationToken")
        } else {
            self.replies
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(GraphReply {
                    status: 202,
                    retry_after: None,
                    code: None,
                })
        };
        let mime = base64::engine::general_purpose::STANDARD
            .decode(&request.body)
            .unwrap_or_default();
        self.posts.lock().unwrap().push(GraphPost {
            at: Instant::now(),
            path: request.url.path().to_owned(),
            authorization,
            content_type: header("content-type"),
            status: reply.status,
            mime,
        });
        let mut template = ResponseTemplate::new(reply.status);
        if let Some(after) = reply.retry_after {
            template = template.insert_header("Retry-After", after);
        }
        if let Some(code) = reply.code {
            template = template.set_body_json(json!({"error": {
                "code": code,
                "message": "injected by the Graph stand-in",
            }}));
        }
        template
    }
}

/// The stand-in; `endpoint()` is its `GRAPH_ENDPOINT`.
pub struct Graph {
    pub server: MockServer,
    posts: Arc<Mutex<Vec<GraphPost>>>,
}

impl Graph {
    /// Accepts `Bearer {token}` only; answers `replies` in order, then 202.
    pub async fn start(token: &str, replies: &[GraphReply]) -> Graph {
        Graph::start_with(|_| Bearer::Exact(token.to_owned()), replies).await
    }

    /// Accepts the Entra ID stand-ins' tokens for this Graph (audience
    /// `GRAPH_ENDPOINT`, the resource of `{GRAPH_ENDPOINT}/.default`).
    pub async fn start_for_entra(replies: &[GraphReply]) -> Graph {
        Graph::start_with(|uri| Bearer::Audience(uri.to_owned()), replies).await
    }

    async fn start_with(bearer: impl FnOnce(&str) -> Bearer, replies: &[GraphReply]) -> Graph {
        let server = MockServer::start().await;
        let posts = Arc::new(Mutex::new(Vec::new()));
        Mock::given(method("POST"))
            .and(path_regex(r"^/v1\.0/users/[^/]+/sendMail$"))
            .respond_with(Script {
                bearer: bearer(&server.uri()),
                replies: Mutex::new(replies.iter().copied().collect()),
                posts: posts.clone(),
            })
            .mount(&server)
            .await;
        Graph { server, posts }
    }

    pub fn endpoint(&self) -> String {
        self.server.uri()
    }

    pub fn posts(&self) -> Vec<GraphPost> {
        self.posts.lock().unwrap().clone()
    }

    /// Emails Graph accepted, per lead ("PartitionKey / RowKey").
    pub fn emails_per_lead(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for post in self.posts().iter().filter(|p| p.accepted()) {
            for key in post.lead_keys() {
                *counts.entry(key).or_insert(0) += 1;
            }
        }
        counts
    }
}
