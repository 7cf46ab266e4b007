//! Plain HTTP requests to Azurite's table service, signed with SharedKeyLite:
//! the floor a scan cannot beat (no SDK, no parsing of the rows, one
//! keep-alive connection, as the product's pooled client has).
//!
//! Hand-made on purpose, unlike xtask's other HTTP (ureq): the floor is the
//! least a client can do per request, so no client library's work may be in
//! it. The date and percent-encoding come from crates.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::servers::{DEV_ACCOUNT as ACCOUNT, DEV_KEY as KEY};

/// Everything but RFC 3986's unreserved bytes is percent-encoded.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
const TIMEOUT: Duration = Duration::from_secs(60);

/// How much OData metadata each entity carries. The product's SDK
/// (azure_data_tables 0.21) always asks for full metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metadata {
    Full,
    None,
}

impl Metadata {
    fn accept(self) -> &'static str {
        match self {
            Metadata::Full => "application/json;odata=fullmetadata",
            Metadata::None => "application/json;odata=nometadata",
        }
    }
}

/// What one complete scan read.
#[derive(Debug, Clone, Copy)]
pub struct ScanStats {
    pub rows: u64,
    pub requests: u64,
    pub bytes: u64,
    pub elapsed: Duration,
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub struct TableClient {
    port: u16,
    conn: Option<BufReader<TcpStream>>,
    key: Vec<u8>,
}

impl TableClient {
    pub fn new(port: u16) -> Result<TableClient> {
        Ok(TableClient {
            port,
            conn: None,
            key: BASE64
                .decode(KEY)
                .context("the development key is not base64")?,
        })
    }

    /// Creates `table`; an existing one is fine.
    pub fn create_table(&mut self, table: &str) -> Result<()> {
        let body = format!(r#"{{"TableName":"{table}"}}"#);
        let response = self.send("POST", "Tables", "", Metadata::None, body.as_bytes())?;
        match response.status {
            201 | 204 | 409 => Ok(()),
            status => bail!(
                "creating table {table}: HTTP {status}: {}",
                String::from_utf8_lossy(&response.body)
            ),
        }
    }

    /// Reads one entity by its keys (a point read); returns the HTTP status.
    pub fn get_entity(&mut self, table: &str, partition: &str, row: &str) -> Result<u16> {
        // Quotes percent-encoded; Azurite signs the path as it was sent.
        let resource = format!("{table}(PartitionKey=%27{partition}%27,RowKey=%27{row}%27)");
        Ok(self.send("GET", &resource, "", Metadata::Full, b"")?.status)
    }

    /// Reads every row of `table` matching `filter`, page by page, following
    /// the continuation headers. Rows are counted, not parsed: the count is
    /// the number of `"PartitionKey"` properties in the pages.
    pub fn scan(&mut self, table: &str, filter: &str, metadata: Metadata) -> Result<ScanStats> {
        let started = Instant::now();
        let mut stats = ScanStats {
            rows: 0,
            requests: 0,
            bytes: 0,
            elapsed: Duration::ZERO,
        };
        let mut next: Option<(String, String)> = None;
        let mut pages = Vec::new();
        loop {
            let mut query = format!("$filter={}", encode(filter));
            if let Some((partition, row)) = &next {
                query.push_str(&format!(
                    "&NextPartitionKey={}&NextRowKey={}",
                    encode(partition),
                    encode(row)
                ));
            }
            let mut response = self.send("GET", &format!("{table}()"), &query, metadata, b"")?;
            stats.requests += 1;
            if response.status != 200 {
                bail!(
                    "querying table {table}: HTTP {}: {}",
                    response.status,
                    String::from_utf8_lossy(&response.body)
                );
            }
            stats.bytes += response.body.len() as u64;
            pages.push(std::mem::take(&mut response.body));
            let partition = response.header("x-ms-continuation-NextPartitionKey");
            let row = response.header("x-ms-continuation-NextRowKey");
            next = match (partition, row) {
                (Some(p), Some(r)) => Some((p.to_owned(), r.to_owned())),
                (Some(p), None) => Some((p.to_owned(), String::new())),
                _ => None,
            };
            if next.is_none() {
                break;
            }
        }
        stats.elapsed = started.elapsed();
        // Counted after the clock stopped: xtask is a debug build, and
        // counting is not part of reading.
        stats.rows = pages
            .iter()
            .map(|page| count(page, br#""PartitionKey""#))
            .sum();
        Ok(stats)
    }

    /// One request on the kept-alive connection, reconnecting once when the
    /// server closed it while idle.
    fn send(
        &mut self,
        method: &str,
        resource: &str,
        query: &str,
        metadata: Metadata,
        body: &[u8],
    ) -> Result<Response> {
        let reused = self.conn.is_some();
        match self.try_send(method, resource, query, metadata, body) {
            Ok(response) => Ok(response),
            Err(_) if reused => {
                self.conn = None;
                self.try_send(method, resource, query, metadata, body)
            }
            Err(e) => Err(e),
        }
    }

    fn try_send(
        &mut self,
        method: &str,
        resource: &str,
        query: &str,
        metadata: Metadata,
        body: &[u8],
    ) -> Result<Response> {
        let path = format!("/{ACCOUNT}/{resource}");
        let date = httpdate::fmt_http_date(std::time::SystemTime::now());
        // Path-style URLs: the account appears twice in the signed resource.
        let signature = self.sign(&format!("{date}\n/{ACCOUNT}{path}"));
        let target = if query.is_empty() {
            path
        } else {
            format!("{path}?{query}")
        };
        let head = format!(
            "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
             x-ms-date: {date}\r\nx-ms-version: 2019-02-02\r\n\
             Authorization: SharedKeyLite {ACCOUNT}:{signature}\r\n\
             Accept: {accept}\r\nDataServiceVersion: 3.0\r\n\
             MaxDataServiceVersion: 3.0;NetFx\r\nContent-Type: application/json\r\n\
             Content-Length: {len}\r\n\r\n",
            port = self.port,
            accept = metadata.accept(),
            len = body.len(),
        );
        if self.conn.is_none() {
            let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
            let stream = TcpStream::connect_timeout(&addr, TIMEOUT)
                .with_context(|| format!("cannot reach Azurite on port {}", self.port))?;
            stream.set_read_timeout(Some(TIMEOUT))?;
            stream.set_nodelay(true)?;
            self.conn = Some(BufReader::new(stream));
        }
        let Some(conn) = self.conn.as_mut() else {
            bail!("no connection to Azurite");
        };
        let stream = conn.get_mut();
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
        stream.flush()?;
        let response = read_response(conn)?;
        let closes = response
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        if closes {
            self.conn = None;
        }
        Ok(response)
    }

    fn sign(&self, string_to_sign: &str) -> String {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(string_to_sign.as_bytes());
        BASE64.encode(mac.finalize().into_bytes())
    }
}

fn read_response(conn: &mut BufReader<TcpStream>) -> Result<Response> {
    let mut line = String::new();
    if conn.read_line(&mut line)? == 0 {
        bail!("Azurite closed the connection");
    }
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line {line:?}"))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        conn.read_line(&mut line)?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((name, value)) = trimmed.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    let chunked = response
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    if chunked {
        loop {
            line.clear();
            conn.read_line(&mut line)?;
            let size = line.trim().split(';').next().unwrap_or_default();
            let size = usize::from_str_radix(size, 16)
                .with_context(|| format!("bad chunk size {size:?}"))?;
            let start = response.body.len();
            response.body.resize(start + size, 0);
            conn.read_exact(&mut response.body[start..])?;
            line.clear();
            conn.read_line(&mut line)?;
            if size == 0 {
                break;
            }
        }
    } else if let Some(length) = response.header("content-length") {
        let length: usize = length.parse().context("bad Content-Length")?;
        response.body.resize(length, 0);
        conn.read_exact(&mut response.body)?;
    }
    Ok(response)
}

fn count(haystack: &[u8], needle: &[u8]) -> u64 {
    haystack
        .windows(needle.len())
        .filter(|w| w == &needle)
        .count() as u64
}

/// Percent-encodes a query value.
pub fn encode(text: &str) -> String {
    utf8_percent_encode(text, QUERY_VALUE).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_percent_encoded() {
        assert_eq!(
            encode("Timestamp ge datetime'2026-01-01T00:00:00Z'"),
            "Timestamp%20ge%20datetime%272026-01-01T00%3A00%3A00Z%27"
        );
    }

    #[test]
    fn rows_are_counted_by_their_partition_key() {
        let page =
            br#"{"value":[{"PartitionKey":"a","RowKey":"1"},{"PartitionKey":"a","RowKey":"2"}]}"#;
        assert_eq!(count(page, br#""PartitionKey""#), 2);
    }
}
