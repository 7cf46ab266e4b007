//! A scripted SMTP server: speaks just enough SMTP for lettre and answers
//! each command with the reply a test chose, so tests can see how every
//! kind of refusal is classified.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use super::graph::Bearer;

/// Replies, each a full SMTP reply line such as `"451 4.3.0 try later"`.
#[derive(Debug, Clone)]
pub struct Script {
    /// When set, EHLO advertises `AUTH PLAIN LOGIN` and AUTH gets this reply.
    pub auth: Option<String>,
    pub mail: String,
    pub rcpt: String,
    pub data: String,
    /// The reply after the message's final `.`; `None` closes the connection
    /// without answering (the ambiguous case).
    pub after_data: Option<String>,
    /// When set, EHLO advertises `AUTH XOAUTH2` and AUTH checks the SASL
    /// string as Exchange Online does.
    pub xoauth2: Option<Xoauth2>,
    /// A relay's command line limit: a longer command (a long XOAUTH2 AUTH
    /// line, say) gets `500 5.5.2 Command line too long`.
    pub max_line: Option<usize>,
}

/// The mailbox and token AUTH XOAUTH2 accepts; anything else gets
/// Exchange's `535 5.7.3 Authentication unsuccessful`.
#[derive(Debug, Clone)]
pub struct Xoauth2 {
    pub user: String,
    pub token: Bearer,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            auth: None,
            mail: "250 2.1.0 OK".into(),
            rcpt: "250 2.1.5 OK".into(),
            data: "354 Start mail input; end with <CRLF>.<CRLF>".into(),
            after_data: Some("250 2.0.0 OK queued".into()),
            xoauth2: None,
            max_line: None,
        }
    }
}

/// A running scripted server on 127.0.0.1; it stops with the test's runtime.
pub struct ScriptedSmtp {
    pub port: u16,
    /// Every command line received, in order (AUTH arguments blanked).
    pub commands: Arc<Mutex<Vec<String>>>,
    /// The script in force; [`ScriptedSmtp::set_script`] swaps it, also for
    /// connections already open (lettre pools them).
    script: Arc<Mutex<Script>>,
    /// The full text of every message answered with a 2xx after DATA.
    accepted: Arc<Mutex<Vec<String>>>,
    /// Every decoded XOAUTH2 SASL string, in order.
    sasl: Arc<Mutex<Vec<String>>>,
    /// Connections accepted so far.
    connections: Arc<Mutex<usize>>,
}

impl ScriptedSmtp {
    pub async fn start(script: Script) -> ScriptedSmtp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let commands = Arc::new(Mutex::new(Vec::new()));
        let log = commands.clone();
        let script = Arc::new(Mutex::new(script));
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let sasl = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(Mutex::new(0));
        let shared = Shared {
            script: script.clone(),
            accepted: accepted.clone(),
            sasl: sasl.clone(),
        };
        let counter = connections.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                *counter.lock().unwrap() += 1;
                let shared = shared.clone();
                let log = log.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, shared, log).await;
                });
            }
        });
        ScriptedSmtp {
            port,
            commands,
            script,
            accepted,
            sasl,
            connections,
        }
    }

    /// Answers with `script` from the next command on (a server that recovers).
    pub fn set_script(&self, script: Script) {
        *self.script.lock().unwrap() = script;
    }

    /// Every message the server accepted, as received.
    pub fn accepted(&self) -> Vec<String> {
        self.accepted.lock().unwrap().clone()
    }

    pub fn commands(&self) -> Vec<String> {
        self.commands.lock().unwrap().clone()
    }

    /// Every XOAUTH2 SASL string received, decoded from base64.
    pub fn sasl(&self) -> Vec<String> {
        self.sasl.lock().unwrap().clone()
    }

    pub fn connections(&self) -> usize {
        *self.connections.lock().unwrap()
    }
}

#[derive(Clone)]
struct Shared {
    script: Arc<Mutex<Script>>,
    accepted: Arc<Mutex<Vec<String>>>,
    sasl: Arc<Mutex<Vec<String>>>,
}

/// Exchange Online's answer to `AUTH XOAUTH2 <base64>` (initial response).
fn xoauth2_reply(expected: &Xoauth2, argument: Option<&str>, sasl: &Mutex<Vec<String>>) -> String {
    use base64::Engine as _;
    let decoded = argument
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok());
    let Some(decoded) = decoded else {
        return "501 5.5.2 Cannot decode response".into();
    };
    sasl.lock().unwrap().push(decoded.clone());
    // user=<mailbox>\x01auth=Bearer <token>\x01\x01, nothing else.
    let parts = decoded
        .strip_prefix("user=")
        .and_then(|rest| rest.strip_suffix("\x01\x01"))
        .and_then(|rest| rest.split_once("\x01auth=Bearer "));
    let accepted = parts.is_some_and(|(user, token)| {
        user == expected.user && !token.contains('\x01') && expected.token.accepts(token)
    });
    if accepted {
        "235 2.7.0 Authentication successful".into()
    } else {
        "535 5.7.3 Authentication unsuccessful".into()
    }
}

async fn serve(
    stream: tokio::net::TcpStream,
    shared: Shared,
    log: Arc<Mutex<Vec<String>>>,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"220 script.test ESMTP ready\r\n").await?;
    while let Some(line) = lines.next_line().await? {
        let script = shared.script.lock().unwrap().clone();
        let verb = line
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        log.lock().unwrap().push(if verb == "AUTH" {
            "AUTH".into()
        } else {
            line.clone()
        });
        let too_long = script.max_line.is_some_and(|max| line.len() + 2 > max);
        let reply = match verb.as_str() {
            _ if too_long => "500 5.5.2 Command line too long".into(),
            "EHLO" => {
                let auth = match (&script.auth, &script.xoauth2) {
                    (Some(_), Some(_)) => "250-AUTH PLAIN LOGIN XOAUTH2\r\n",
                    (Some(_), None) => "250-AUTH PLAIN LOGIN\r\n",
                    (None, Some(_)) => "250-AUTH XOAUTH2\r\n",
                    (None, None) => "",
                };
                format!("250-script.test\r\n{auth}250 8BITMIME")
            }
            "HELO" | "NOOP" | "RSET" => "250 OK".into(),
            "AUTH" => {
                let mut words = line.split_whitespace().skip(1);
                let mechanism = words.next().unwrap_or("").to_ascii_uppercase();
                match (&script.xoauth2, mechanism.as_str()) {
                    (Some(expected), "XOAUTH2") => {
                        xoauth2_reply(expected, words.next(), &shared.sasl)
                    }
                    _ => script.auth.clone().unwrap_or("502 not supported".into()),
                }
            }
            "MAIL" => script.mail.clone(),
            "RCPT" => script.rcpt.clone(),
            "DATA" => {
                write
                    .write_all(format!("{}\r\n", script.data).as_bytes())
                    .await?;
                if !script.data.starts_with("354") {
                    continue;
                }
                let mut message = String::new();
                while let Some(body) = lines.next_line().await? {
                    if body == "." {
                        break;
                    }
                    message.push_str(&body);
                    message.push('\n');
                }
                log.lock().unwrap().push("<message>".into());
                match &script.after_data {
                    Some(reply) => {
                        if reply.starts_with('2') {
                            shared.accepted.lock().unwrap().push(message);
                        }
                        reply.clone()
                    }
                    None => return Ok(()),
                }
            }
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => "500 unknown command".into(),
        };
        write.write_all(format!("{reply}\r\n").as_bytes()).await?;
    }
    Ok(())
}
