//! A Teams webhook stand-in: answers every POST with `202 Accepted` (what a
//! Workflows webhook answers) and counts them. One thread per connection,
//! keep-alive honoured, so the handler's pooled client behaves as in Azure.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};

#[derive(Default)]
struct Counts {
    connections: AtomicU64,
    posts: AtomicU64,
    bytes: AtomicU64,
}

pub struct WebhookSink {
    pub port: u16,
    counts: Arc<Counts>,
}

impl WebhookSink {
    /// Listens on a free loopback port until xtask exits.
    pub fn start() -> Result<WebhookSink> {
        let listener =
            TcpListener::bind("127.0.0.1:0").context("cannot bind the webhook sink's port")?;
        let port = listener.local_addr()?.port();
        let counts = Arc::new(Counts::default());
        let shared = counts.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let counts = shared.clone();
                counts.connections.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    // A broken connection only ends that connection; the
                    // handler reports whatever it saw as a failed send.
                    let _ = serve(stream, &counts);
                });
            }
        });
        Ok(WebhookSink { port, counts })
    }

    /// The URL to give the handler; `sig=` mimics a real Workflows URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/workflows/bench?sig=bench", self.port)
    }

    /// POSTs and body bytes received so far.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.counts.posts.load(Ordering::SeqCst),
            self.counts.bytes.load(Ordering::SeqCst),
        )
    }
}

fn serve(stream: TcpStream, counts: &Counts) -> std::io::Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let is_post = line.starts_with("POST ");
        let mut length = 0usize;
        let mut close = false;
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.parse().unwrap_or(0);
                } else if name.eq_ignore_ascii_case("connection") {
                    close = value.eq_ignore_ascii_case("close");
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        let answer: &[u8] = if is_post {
            counts.posts.fetch_add(1, Ordering::SeqCst);
            counts.bytes.fetch_add(length as u64, Ordering::SeqCst);
            b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"
        } else {
            b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n"
        };
        writer.write_all(answer)?;
        writer.flush()?;
        if close {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_posts_on_one_kept_alive_connection() {
        let sink = WebhookSink::start().unwrap();
        let http = crate::http();
        for _ in 0..2 {
            let response = http.post(sink.url()).send("{}").unwrap();
            assert_eq!(response.status(), 202);
        }
        assert_eq!(http.get(sink.url()).call().unwrap().status(), 405);
        assert_eq!(sink.counts(), (2, 4));
        assert_eq!(sink.counts.connections.load(Ordering::SeqCst), 1);
    }
}
