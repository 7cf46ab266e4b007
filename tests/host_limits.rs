//! The handler's HTTP server against clients that are not the Functions
//! host: headers or a body trickled a byte at a time, and a flood of idle
//! connections. Loopback only, every loop bounded in count and time.

mod common;

use std::time::{Duration, Instant};

use common::faults::{count, lead_rows, write_rows, Fixture};
use common::handler::{timer_body, Handler};
use common::servers::storage_connection;
use lead_notifier::host::{BODY_TIMEOUT, HEADER_READ_TIMEOUT, MAX_CONNECTIONS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How often a slow client sends its next byte: far shorter than any
/// timeout, so only a deadline for the whole can stop it.
const TRICKLE: Duration = Duration::from_millis(500);

/// How a trickling client ended.
#[derive(Debug)]
struct CutOff {
    /// From the first byte sent until the server answered or closed.
    after: Duration,
    /// What the server sent, if anything (a `408` status line, say).
    answer: String,
}

/// Sends `head` on a fresh connection, then one `byte` every [`TRICKLE`],
/// until the server closes the connection or `give_up` has passed (`None`).
async fn trickle(port: u16, head: Vec<u8>, byte: u8, give_up: Duration) -> Option<CutOff> {
    let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let start = Instant::now();
    let mut answer = Vec::new();
    let ended = |answer: &[u8]| CutOff {
        after: start.elapsed(),
        answer: String::from_utf8_lossy(answer).into_owned(),
    };
    if write.write_all(&head).await.is_err() {
        return Some(ended(&answer));
    }
    let mut buf = [0u8; 1024];
    let mut next_byte = tokio::time::interval(TRICKLE);
    while start.elapsed() < give_up {
        tokio::select! {
            n = read.read(&mut buf) => match n {
                Ok(0) | Err(_) => return Some(ended(&answer)),
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            },
            _ = next_byte.tick() => {
                if write.write_all(&[byte]).await.is_err() {
                    return Some(ended(&answer));
                }
            }
        }
    }
    None
}

fn status_of(cut: &CutOff) -> Option<&str> {
    cut.answer.lines().next()?.split_whitespace().nth(1)
}

/// One timer invocation on a connection of its own, as the host opens one
/// when its pooled ones are busy or closed.
async fn invoke_timer_on_new_connection(handler: &Handler) -> (u16, serde_json::Value) {
    let answer = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
        .post(handler.url("/LeadNotifier"))
        .header("User-Agent", "Azure-Functions-Host/4.0")
        .json(&timer_body())
        .send()
        .await
        .expect("the invocation is answered");
    let status = answer.status().as_u16();
    (status, answer.json().await.expect("the run's JSON"))
}

/// Runs a slow client against a fresh handler while the host invokes the
/// timer as usual, and answers how the slow client was cut off (it must
/// be, within `give_up`, with a `408` or a closed connection); the handler
/// serves on.
async fn slow_client_beside_the_host(
    tag: &str,
    head: &[u8],
    byte: u8,
    give_up: Duration,
) -> CutOff {
    let f = Fixture::new(&storage_connection());
    write_rows(&f, &lead_rows(tag, 1)).await;
    let mut handler = Handler::start(&f.settings).await;

    let slow = tokio::spawn(trickle(handler.port, head.to_vec(), byte, give_up));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (status, run) = invoke_timer_on_new_connection(&handler).await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(count(&run, "delivered", "outbox"), 1, "{run}");

    let cut = slow
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{tag}: the slow client was not cut off within {give_up:?}"));
    assert!(
        matches!(status_of(&cut), None | Some("408")),
        "{:?}",
        cut.answer
    );
    assert!(handler.is_running());
    assert_eq!(handler.invoke_timer().await.0, 200);
    cut
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_trickled_a_byte_at_a_time_are_cut_off() {
    let cut = slow_client_beside_the_host(
        "slowheaders",
        b"POST /LeadNotifier HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ",
        b'a',
        HEADER_READ_TIMEOUT * 4,
    )
    .await;
    assert!(
        cut.after >= HEADER_READ_TIMEOUT - Duration::from_secs(1)
            && cut.after < HEADER_READ_TIMEOUT * 2,
        "cut off after {:?}, the header timeout is {HEADER_READ_TIMEOUT:?}",
        cut.after
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_trickled_so_that_no_gap_is_long_is_cut_off_at_the_deadline() {
    let cut = slow_client_beside_the_host(
        "slowbody",
        b"POST /LeadNotifier HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"Data\":",
        b' ',
        BODY_TIMEOUT * 2,
    )
    .await;
    assert!(
        cut.after >= BODY_TIMEOUT - Duration::from_secs(1)
            && cut.after < BODY_TIMEOUT + Duration::from_secs(10),
        "cut off after {:?}, the body deadline is {BODY_TIMEOUT:?}",
        cut.after
    );
}

/// Sockets the process `pid` holds open.
#[cfg(target_os = "linux")]
fn open_sockets(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the handler's file descriptors")
        .filter_map(Result::ok)
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("socket:"))
        .count()
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_idle_connections_is_capped_and_does_not_starve_the_host() {
    let f = Fixture::new(&storage_connection());
    write_rows(&f, &lead_rows("flood", 1)).await;
    let mut handler = Handler::start(&f.settings).await;

    // More idle connections than the cap: they never send a byte.
    let flood_size = MAX_CONNECTIONS + 64;
    let mut flood = Vec::with_capacity(flood_size);
    for _ in 0..flood_size {
        flood.push(
            TcpStream::connect(("127.0.0.1", handler.port))
                .await
                .expect("loopback connect"),
        );
    }
    // The handler has accepted what it takes; the rest wait to be accepted.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let held = open_sockets(handler.pid());
    assert!(
        held <= MAX_CONNECTIONS + 8,
        "the handler holds {held} sockets with {flood_size} connections open; the cap is {MAX_CONNECTIONS}"
    );
    assert!(
        held >= MAX_CONNECTIONS,
        "{held} sockets: the cap is {MAX_CONNECTIONS}"
    );

    // A real invocation made after the flood started: it waits its turn
    // (idle connections are closed once they send no request in time) and runs.
    let started = Instant::now();
    let (status, run) = invoke_timer_on_new_connection(&handler).await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(count(&run, "delivered", "outbox"), 1, "{run}");
    assert!(
        started.elapsed() < HEADER_READ_TIMEOUT * 4,
        "the invocation waited {:?}",
        started.elapsed()
    );

    drop(flood);
    assert!(handler.is_running());
    assert_eq!(handler.invoke_timer().await.0, 200);
}
