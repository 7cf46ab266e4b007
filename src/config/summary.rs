//! `lead-notifier check`'s description of the effective settings. Secrets
//! (account key, password, webhook signature) are never shown.

use secrecy::ExposeSecret;

use super::{
    EmailSettings, EmailTransport, Settings, SmtpAuth, SmtpSecurity, StartFrom, StorageConnection,
};

impl Settings {
    /// The effective settings in words, secrets hidden (`lead-notifier check`).
    pub fn summary_lines(&self) -> Vec<String> {
        let mut lines = vec![
            match &self.storage {
                StorageConnection::Emulator => {
                    "storage: local emulator (UseDevelopmentStorage=true)".to_owned()
                }
                StorageConnection::Account {
                    account,
                    table_endpoint,
                    ..
                } => {
                    format!("storage: account {account} at {table_endpoint} (key hidden)")
                }
                StorageConnection::Identity {
                    account,
                    table_endpoint,
                    credential,
                } => format!(
                    "storage: account {account} at {table_endpoint}, keyless as {} (from {})",
                    credential.describe(),
                    credential.settings()
                ),
            },
            format!(
                "tables: leads in {}, state in {}",
                self.leads_table, self.state_table
            ),
            match &self.start_from {
                StartFrom::Beginning => {
                    "first run starts from: the beginning of the lead table".to_owned()
                }
                StartFrom::At(at) => format!("first run starts from: {at}"),
                StartFrom::LookBack(d) => {
                    format!(
                        "first run starts from: {} ago",
                        humantime::format_duration(*d)
                    )
                }
            },
            format!("poll schedule: {} (UTC)", self.poll_schedule),
        ];
        lines.push(match &self.email {
            Some(e) => e.summary(),
            None => "email: off (SMTP_HOST not set, EMAIL_VIA not graph)".to_owned(),
        });
        lines.push(match &self.teams {
            Some(t) => {
                let host = url::Url::parse(t.webhook_url.expose_secret())
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_owned))
                    .unwrap_or_default();
                format!("teams: webhook on host {host} (signature hidden)")
            }
            None => "teams: off (TEAMS_WEBHOOK_URL not set)".to_owned(),
        });
        lines.push(match &self.outbox_dir {
            Some(dir) => format!("outbox: {}", dir.display()),
            None => "outbox: off (OUTBOX_DIR not set)".to_owned(),
        });
        lines.extend(self.destinations.summary_lines());
        lines.extend(self.summary.summary_lines());
        lines.extend(self.follow_up.as_ref().map(|f| f.summary_line()));
        let f = self.filters;
        let skipped: Vec<&str> = [
            (f.skip_test_leads, "test leads"),
            (f.skip_edu, ".edu leads"),
            (f.skip_do_not_contact, "do-not-contact leads"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        lines.push(if skipped.is_empty() {
            "skipping: nothing".to_owned()
        } else {
            format!("skipping: {}", skipped.join(", "))
        });
        if let Some(path) = &self.ssl_cert_file {
            lines.push(format!(
                "TLS: built-in roots plus the certificates in SSL_CERT_FILE {}",
                path.display()
            ));
        }
        lines.push(if self.repeat_window.is_zero() {
            "repeats: alerted (REPEAT_WINDOW is 0)".to_owned()
        } else {
            format!(
                "repeats: the same customer, offer and action within {} is not alerted again",
                humantime::format_duration(self.repeat_window)
            )
        });
        lines.push(format!(
            "delivery: digest above {} alerts per channel per run, up to {} attempts per alert, \
             retry budget {} per run, claim lease {}, scan overlap {}",
            self.digest_after,
            self.max_attempts,
            humantime::format_duration(self.retry_budget),
            humantime::format_duration(self.claim_lease),
            humantime::format_duration(self.scan_overlap),
        ));
        lines
    }
}

impl EmailSettings {
    /// One line: transport, login, sender, how many recipients and, for a
    /// token, which credential (never its secret).
    fn summary(&self) -> String {
        let n = self.to.len();
        let plural = if n == 1 { "" } else { "s" };
        let via = match &self.transport {
            EmailTransport::Smtp(smtp) => {
                let security = match smtp.security {
                    SmtpSecurity::StartTls => "starttls",
                    SmtpSecurity::Tls => "tls",
                    SmtpSecurity::None => "no TLS",
                };
                let login = match &smtp.auth {
                    SmtpAuth::None => " without login".to_owned(),
                    SmtpAuth::Password { username, .. } => format!(" as user {username}"),
                    SmtpAuth::OAuth2 { username } => {
                        format!(" as user {username} with OAuth 2.0 (XOAUTH2)")
                    }
                };
                format!("{}:{} {security}{login}", smtp.host, smtp.port)
            }
            EmailTransport::Graph(graph) => format!(
                "Microsoft Graph sendMail at {}",
                graph.endpoint.as_str().trim_end_matches('/')
            ),
        };
        let token = match &self.credential {
            Some(credential) => format!(", token from {}", credential.describe()),
            None => String::new(),
        };
        format!(
            "email: {via}, from {}, {n} recipient{plural}{token}",
            self.from.email
        )
    }
}
