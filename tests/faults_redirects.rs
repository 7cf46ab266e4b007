//! Receivers that answer with a redirect or with an endless error body,
//! through the handler as the Functions host runs it, against Azurite:
//! a redirect is never followed (the lead's data and the Graph token stay
//! with the host the publisher configured) and fails the alert for good
//! with the setting to fix; an error body is read only as far as a short
//! prefix, so a hostile or broken receiver cannot grow the handler.

mod common;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::faults::{
    assert_handler_quiet, count, lead_rows, ledger, write_rows, Fixture, LedgerRecord,
    CUSTOMER_NEEDLES,
};
use common::handler::Handler;
use common::identity::{EntraStandIn, TestCert};
use common::servers::{storage_connection, unique_table};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const REDIRECTS: [u16; 4] = [301, 302, 307, 308];
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw5nK3YpQ8ep0=";
/// The handler's peak resident memory stays under this while a receiver
/// streams hundreds of MiB at it (a run of a few leads needs about a tenth).
const MAX_PEAK_RSS_KB: u64 = 100 * 1024;

/// Where every redirect points: answers 200 to anything, so a client that
/// followed a redirect would see success. It must never be asked anything.
async fn location_target() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&server)
        .await;
    server
}

/// A receiver answering `status` with `Location: {location}` to every POST.
async fn redirecting(status: u16, location: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(status).insert_header("Location", location))
        .mount(&server)
        .await;
    server
}

async fn requests(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.unwrap_or_default()
}

fn record<'a>(records: &'a [LedgerRecord], channel: &str) -> &'a LedgerRecord {
    records
        .iter()
        .find(|r| r.channel == channel)
        .unwrap_or_else(|| panic!("no ledger record for {channel}: {records:?}"))
}

/// `VmHWM` of a running process, in kB: its peak resident memory so far.
fn peak_rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teams_slack_and_webhook_redirects_fail_for_good_and_reach_no_one_else() {
    let target = location_target().await;
    let landing = format!("/landing-{}", unique_table("loc"));
    let location = format!("{}{landing}", target.uri());
    let mut f = Fixture::new(&storage_connection());
    f.without("OUTBOX_DIR");
    f.secrets.push(landing.clone());
    let mut receivers = Vec::new();
    for status in REDIRECTS {
        let teams = redirecting(status, &location).await;
        let sig = format!("SIG{}", unique_table("tr"));
        f.set(
            &format!("TEAMS_WEBHOOK_URL_R{status}"),
            format!(
                "{}/workflows/0a1b/triggers/manual/paths/invoke?sig={sig}",
                teams.uri()
            ),
        );
        let slack = redirecting(status, &location).await;
        let path = format!("SlackPath{}", unique_table("sr"));
        f.set(
            &format!("SLACK_WEBHOOK_URL_R{status}"),
            format!("{}/services/T1/B1/{path}", slack.uri()),
        );
        f.secrets.extend([sig, path]);
        receivers.push((status, teams, slack));
    }
    let receiver = redirecting(302, &location).await;
    f.set(
        "WEBHOOK_URL_R302",
        format!("{}/hooks/leads?code=ReceiverKey55", receiver.uri()),
    )
    .set("WEBHOOK_SECRET_R302", SECRET);
    f.secrets
        .extend(["ReceiverKey55".to_owned(), SECRET[6..20].to_owned()]);
    let rows = lead_rows("redirects", 1);
    write_rows(&f, &rows).await;
    let handler = Handler::start(&f.settings).await;

    let (status, first) = handler.invoke_timer().await;
    assert_eq!(status, 500, "failed alerts are reported: {first}");
    assert_eq!(first["ReturnValue"]["failed"], 9, "{first}");
    let delivered = first["ReturnValue"]["delivered"].as_object().cloned();
    assert!(
        delivered.unwrap_or_default().values().all(|n| n == 0),
        "nothing delivered: {first}"
    );
    let problems = first["ReturnValue"]["problems"].to_string();
    let records = ledger(&f).await;
    for (status, teams, slack) in &receivers {
        for (kind, setting, server) in [
            ("teams", "TEAMS_WEBHOOK_URL", teams),
            ("slack", "SLACK_WEBHOOK_URL", slack),
        ] {
            let setting = format!("{setting}_R{status}");
            let record = record(&records, &format!("{kind}:r{status}"));
            assert_eq!(record.status, "failed", "{record:?}");
            assert_eq!(record.attempts, 1, "not retried: {record:?}");
            let answered = format!("{setting} answered {status} (a redirect");
            assert!(record.last_error.contains(&answered), "{record:?}");
            assert!(problems.contains(&answered), "{problems}");
            assert_eq!(requests(server).await.len(), 1, "{setting}: one post");
        }
    }
    let webhook = record(&records, "webhook:r302");
    assert_eq!(webhook.status, "failed", "{webhook:?}");
    assert!(
        webhook
            .last_error
            .contains("WEBHOOK_URL_R302 answered 302 (a redirect")
            && webhook.last_error.contains("Standard Webhooks"),
        "{webhook:?}"
    );
    assert_eq!(requests(&receiver).await.len(), 1);
    assert!(
        requests(&target).await.is_empty(),
        "a redirect was followed to the Location"
    );

    let (status, second) = handler.invoke_timer().await;
    assert_eq!(status, 200, "given up, nothing owed: {second}");
    assert!(requests(&target).await.is_empty());
    assert_handler_quiet(&handler, &f, &[&first, &second], &CUSTOMER_NEEDLES);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_redirects_fail_for_good_and_the_token_goes_nowhere_else() {
    let cert = TestCert::new();
    let entra = EntraStandIn::start(&cert);
    for status in REDIRECTS {
        let target = location_target().await;
        let landing = format!("/landing-{}", unique_table("gloc"));
        let graph = redirecting(status, &format!("{}{landing}", target.uri())).await;
        let mut f = Fixture::new(&storage_connection());
        f.without("OUTBOX_DIR").graph(
            &graph.uri(),
            &entra.identity_endpoint,
            &entra.identity_header,
        );
        f.secrets.push(landing);
        write_rows(&f, &lead_rows(&format!("graphredirect{status}"), 1)).await;
        let handler = Handler::start(&f.settings).await;

        let (code, body) = handler.invoke_timer().await;
        assert_eq!(code, 500, "{status}: {body}");
        assert_eq!(count(&body, "delivered", "email"), 0, "{status}: {body}");
        assert_eq!(body["ReturnValue"]["failed"], 1, "{status}: {body}");
        let records = ledger(&f).await;
        let email = record(&records, "email");
        assert_eq!(email.status, "failed", "{status}: {email:?}");
        assert!(
            email
                .last_error
                .contains(&format!("GRAPH_ENDPOINT answered {status} (a redirect")),
            "{email:?}"
        );
        let posts = requests(&graph).await;
        assert_eq!(posts.len(), 1, "{status}: one sendMail");
        assert!(
            posts[0].headers.contains_key("authorization"),
            "Graph itself got the token"
        );
        assert!(
            requests(&target).await.is_empty(),
            "{status}: the Location was asked (token or email sent elsewhere)"
        );
        let mut needles = entra.issued_tokens();
        needles.push(entra.client_secret.clone());
        f.secrets.extend(needles);
        assert_handler_quiet(&handler, &f, &[&body], &CUSTOMER_NEEDLES);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_endpoint_redirect_is_not_followed_and_names_the_setting() {
    let target = location_target().await;
    let landing = format!("/landing-{}", unique_table("iloc"));
    let identity = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("Location", format!("{}{landing}", target.uri())),
        )
        .mount(&identity)
        .await;
    let graph = location_target().await;
    let header = format!("identity-header-{}", unique_table("ih"));
    let mut f = Fixture::new(&storage_connection());
    f.without("OUTBOX_DIR")
        .graph(
            &graph.uri(),
            &format!("{}/msi/token", identity.uri()),
            &header,
        )
        .set("RETRY_BUDGET", "0s");
    f.secrets.push(landing);
    write_rows(&f, &lead_rows("identityredirect", 1)).await;
    let handler = Handler::start(&f.settings).await;

    let (code, body) = handler.invoke_timer().await;
    assert_eq!(code, 500, "{body}");
    let records = ledger(&f).await;
    let email = record(&records, "email");
    assert_eq!(
        email.status, "retry",
        "token errors are retried by later runs: {email:?}"
    );
    assert!(
        email
            .last_error
            .contains("IDENTITY_ENDPOINT answered 302 (a redirect"),
        "{email:?}"
    );
    assert!(
        !requests(&identity).await.is_empty(),
        "a token was asked for"
    );
    assert!(
        requests(&target).await.is_empty(),
        "the redirect was followed"
    );
    assert!(requests(&graph).await.is_empty(), "no token, no email");
    assert_handler_quiet(&handler, &f, &[&body], &CUSTOMER_NEEDLES);
}

// ---------------------------------------------------------------- huge bodies

/// A loopback HTTP server that answers every request with `status` and a
/// body of `total` bytes generated as it is written, so the test holds none
/// of it. It serves at most [`HugeAnswers::MAX_CONNECTIONS`] connections
/// and stops writing after [`HugeAnswers::MAX_TIME`].
struct HugeAnswers {
    port: u16,
    /// Bytes of body written, per connection.
    sent: Arc<std::sync::Mutex<Vec<Arc<AtomicU64>>>>,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl HugeAnswers {
    const MAX_CONNECTIONS: usize = 16;
    const MAX_TIME: Duration = Duration::from_secs(120);
    const CHUNK: usize = 64 * 1024;

    async fn start(status: &'static str, content_type: &'static str, total: u64) -> HugeAnswers {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let port = listener.local_addr().expect("address").port();
        let sent = Arc::new(std::sync::Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (sent_, connections_) = (sent.clone(), connections.clone());
        let task = tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + HugeAnswers::MAX_TIME;
            for _ in 0..HugeAnswers::MAX_CONNECTIONS {
                let Ok(Ok((stream, _))) =
                    tokio::time::timeout_at(deadline, listener.accept()).await
                else {
                    return;
                };
                connections_.fetch_add(1, Ordering::SeqCst);
                let written = Arc::new(AtomicU64::new(0));
                sent_.lock().unwrap().push(written.clone());
                tokio::spawn(tokio::time::timeout_at(
                    deadline,
                    answer(stream, status, content_type, total, written),
                ));
            }
        });
        HugeAnswers {
            port,
            sent,
            connections,
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// The most body bytes written on one connection.
    fn most_sent(&self) -> u64 {
        let sent = self.sent.lock().unwrap();
        sent.iter()
            .map(|n| n.load(Ordering::SeqCst))
            .max()
            .unwrap_or(0)
    }

    /// Checks, after a run, that `handler` asked and read only a little:
    /// its peak resident memory stayed small, and no connection took more
    /// than a quarter of the body (the rest of what was written sat in
    /// socket buffers).
    fn assert_read_little(&self, handler: &Handler, what: &str) {
        let peak = peak_rss_kb(handler.pid());
        eprintln!(
            "{what}: peak RSS {peak} kB; {} connection(s), at most {} body bytes written on one",
            self.connections(),
            self.most_sent()
        );
        assert!(self.connections() >= 1, "{what} was asked");
        assert!(
            peak < MAX_PEAK_RSS_KB,
            "{what}: the handler's peak resident memory was {peak} kB reading a {HUGE}-byte answer"
        );
        assert!(
            self.most_sent() < HUGE / 4,
            "{what}: the handler read on: {} bytes written on one connection",
            self.most_sent()
        );
    }
}

impl Drop for HugeAnswers {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one request (head and `Content-Length` body), then writes the
/// answer until `total` bytes or until the client goes away.
async fn answer(
    mut stream: tokio::net::TcpStream,
    status: &str,
    content_type: &str,
    total: u64,
    written: Arc<AtomicU64>,
) {
    let mut request = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) if request.len() + n <= 1 << 20 => request.extend_from_slice(&buf[..n]),
            Ok(_) => return,
        }
    };
    let head = String::from_utf8_lossy(&request[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body_read = request.len() - head_end;
    while body_read < length.min(1 << 20) {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => body_read += n,
        }
    }
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {total}\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    // A JSON-looking start, then one endless word: what a broken receiver
    // dumping a log or a hostile one would send.
    let mut chunk = vec![b'x'; HugeAnswers::CHUNK];
    chunk[..10].copy_from_slice(b"{\"error\":\"");
    let mut left = total;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        if stream.write_all(&chunk[..n]).await.is_err() {
            return;
        }
        written.fetch_add(n as u64, Ordering::SeqCst);
        left -= n as u64;
        chunk[..10].fill(b'x');
    }
}

/// 256 MiB: what a misbehaving receiver answered in the field, halved.
const HUGE: u64 = 256 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_answering_500_with_a_huge_body_leaves_the_handler_small() {
    let huge = HugeAnswers::start("500 Internal Server Error", "application/json", HUGE).await;
    let mut f = Fixture::new(&storage_connection());
    f.without("OUTBOX_DIR")
        .set(
            "TEAMS_WEBHOOK_URL",
            huge.url("/workflows/0a1b/triggers/manual/paths/invoke?sig=HugeSig77"),
        )
        .set("RETRY_BUDGET", "1s");
    f.secrets.push("HugeSig77".to_owned());
    write_rows(&f, &lead_rows("hugebody", 1)).await;
    let handler = Handler::start(&f.settings).await;

    let (status, body) = handler.invoke_timer().await;
    huge.assert_read_little(&handler, "Teams");
    assert_eq!(status, 500, "{body}");
    assert_eq!(count(&body, "delivered", "teams"), 0, "{body}");
    assert_eq!(
        body["ReturnValue"]["pending"], 1,
        "owed for a later run: {body}"
    );
    let records = ledger(&f).await;
    let teams = record(&records, "teams");
    assert_eq!(teams.status, "retry", "{teams:?}");
    assert!(teams.last_error.contains("500"), "{teams:?}");
    assert_handler_quiet(&handler, &f, &[&body], &CUSTOMER_NEEDLES);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_endpoint_answering_a_huge_body_leaves_the_handler_small() {
    // A 200 whose token never ends; a 500 whose body the SDK would quote.
    let cases = [
        (
            "200 OK",
            "IDENTITY_ENDPOINT answered 200 with more than 64 KiB",
        ),
        ("500 Internal Server Error", "The request failed"),
    ];
    for (answer, reason) in cases {
        let huge = HugeAnswers::start(answer, "application/json", HUGE).await;
        let graph = location_target().await;
        let mut f = Fixture::new(&storage_connection());
        f.without("OUTBOX_DIR")
            .graph(
                &graph.uri(),
                &huge.url("/msi/token"),
                "identity-header-HugeToken",
            )
            .set("RETRY_BUDGET", "0s");
        write_rows(&f, &lead_rows("hugetoken", 1)).await;
        let handler = Handler::start(&f.settings).await;

        let (status, body) = handler.invoke_timer().await;
        huge.assert_read_little(&handler, &format!("identity endpoint, {answer}"));
        assert_eq!(status, 500, "{answer}: {body}");
        let records = ledger(&f).await;
        let email = record(&records, "email");
        assert_eq!(email.status, "retry", "{answer}: {email:?}");
        assert!(
            email.last_error.contains(reason)
                && email
                    .last_error
                    .contains("(check IDENTITY_ENDPOINT and IDENTITY_HEADER)"),
            "{answer}: names the setting: {email:?}"
        );
        assert!(
            email.last_error.len() < 2_000,
            "{answer}: the answer is quoted at length: {} bytes",
            email.last_error.len()
        );
        assert!(requests(&graph).await.is_empty(), "no token, no email");
        let printed = format!("{}{}", handler.stdout(), handler.stderr());
        assert!(
            printed.len() < 64 * 1024,
            "{answer}: the answer is not quoted whole: {} bytes printed",
            printed.len()
        );
        assert_handler_quiet(&handler, &f, &[&body], &CUSTOMER_NEEDLES);
    }
}
