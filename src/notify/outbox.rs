//! The outbox: every alert as files in a folder, the exact email (`.eml`) and
//! the exact Teams payload (`.json`). It is the channel that works with no
//! mail server and no Teams, and shows what the others would send.

use std::path::{Path, PathBuf};

use lettre::message::Mailbox;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::{email, teams, Alert, DestinationId, Notifier, NotifyError, SendFuture};

pub struct OutboxNotifier {
    dir: PathBuf,
    from: Mailbox,
    to: Vec<Mailbox>,
}

/// `lead-notifier <lead-notifier@localhost>`, when EMAIL_FROM is not set.
pub fn default_from() -> Mailbox {
    Mailbox::new(
        Some("lead-notifier".into()),
        lettre::Address::new_dangerous("lead-notifier", "localhost"),
    )
}

/// `sales <sales@localhost>`, when EMAIL_TO is not set.
pub fn default_to() -> Vec<Mailbox> {
    vec![Mailbox::new(
        Some("sales".into()),
        lettre::Address::new_dangerous("sales", "localhost"),
    )]
}

impl OutboxNotifier {
    /// `from`/`to` are the email settings' when email is configured, so the
    /// `.eml` matches what is mailed.
    pub fn new(dir: impl Into<PathBuf>, from: Mailbox, to: Vec<Mailbox>) -> OutboxNotifier {
        OutboxNotifier {
            dir: dir.into(),
            from,
            to,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    async fn write(&self, alert: Alert<'_>) -> Result<(), NotifyError> {
        let message = email::render_message(alert, &self.from, &self.to)?;
        let payload = teams::render_payload(alert);
        let json = serde_json::to_vec_pretty(&payload).map_err(|e| {
            NotifyError::permanent(format!("could not serialise the Teams payload: {e}"))
        })?;
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(|e| self.io_error("create", &e))?;
        let stem = file_stem(alert, OffsetDateTime::now_utc());
        write_atomically(&self.dir, &format!("{stem}.eml"), &message.formatted())
            .await
            .map_err(|e| self.io_error("write", &e))?;
        write_atomically(&self.dir, &format!("{stem}.json"), &json)
            .await
            .map_err(|e| self.io_error("write", &e))
    }

    fn io_error(&self, what: &str, err: &std::io::Error) -> NotifyError {
        let reason = format!(
            "could not {what} files in OUTBOX_DIR {}: {err}",
            self.dir.display()
        );
        // A full disk or a missing mount may come back; no permission will not.
        match err.kind() {
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
                NotifyError::permanent(format!("{reason}; check OUTBOX_DIR and its permissions"))
            }
            _ => NotifyError::retryable(reason),
        }
    }
}

impl Notifier for OutboxNotifier {
    fn channel(&self) -> DestinationId {
        DestinationId::OUTBOX
    }

    fn send<'a>(&'a self, alert: Alert<'a>) -> SendFuture<'a> {
        Box::pin(self.write(alert))
    }

    /// Creates the folder and proves it is writable.
    fn check(&self) -> SendFuture<'_> {
        Box::pin(async move {
            tokio::fs::create_dir_all(&self.dir)
                .await
                .map_err(|e| self.io_error("create", &e))?;
            let probe = format!(".check-{}-{}", std::process::id(), fastrand::u64(..));
            write_atomically(&self.dir, &probe, b"ok")
                .await
                .map_err(|e| self.io_error("write", &e))?;
            tokio::fs::remove_file(self.dir.join(probe))
                .await
                .map_err(|e| self.io_error("remove", &e))
        })
    }
}

/// `<time>-<lead>`: the lead's table time, so a retried alert replaces its
/// own files instead of adding a second pair.
pub fn file_stem(alert: Alert<'_>, now: OffsetDateTime) -> String {
    match alert {
        Alert::Lead(lead) => format!(
            "{}-{}",
            compact_time(lead.timestamp.unwrap_or(now)),
            safe_keys(&lead.key.partition_key, &lead.key.row_key)
        ),
        Alert::Digest { leads, total } => {
            let newest = leads
                .iter()
                .filter_map(|l| l.timestamp)
                .max()
                .unwrap_or(now);
            format!(
                "{}-digest-{}-of-{}",
                compact_time(newest),
                leads.len(),
                total.max(leads.len())
            )
        }
        // Named by the notice alone: a retry replaces its own files.
        Alert::Notice(notice) => safe_keys("notice", &notice.id),
    }
}

/// `20261121T104500Z`.
pub fn compact_time(t: OffsetDateTime) -> String {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    t.to_offset(time::UtcOffset::UTC)
        .format(format)
        .unwrap_or_default()
}

const KEYS_MAX: usize = 80;

/// The keys in characters safe on every filesystem. Keys are opaque and may
/// hold anything, so when the safe form had to change them a short hash of
/// the originals keeps two leads from sharing a name.
pub fn safe_keys(partition_key: &str, row_key: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let joined = format!("{}_{}", clean(partition_key), clean(row_key));
    let lossless = joined.len() <= KEYS_MAX
        && partition_key
            .chars()
            .chain(row_key.chars())
            .all(|c| c.is_ascii_alphanumeric() || c == '-');
    if lossless {
        return joined;
    }
    let mut hash = Sha256::new();
    for part in [partition_key, row_key] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    let short: String = joined.chars().take(KEYS_MAX).collect();
    format!("{short}_{}", &hex::encode(hash.finalize())[..10])
}

/// Temp file, flush to disk, rename: a reader sees the whole file or none.
/// The temp name starts with a dot so folder watchers can skip it.
async fn write_atomically(dir: &Path, name: &str, contents: &[u8]) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let temp = dir.join(format!(
        ".{name}.{}-{}.tmp",
        std::process::id(),
        fastrand::u64(..)
    ));
    let result = async {
        let mut file = tokio::fs::File::create(&temp).await?;
        file.write_all(contents).await?;
        file.sync_all().await?;
        drop(file);
        tokio::fs::rename(&temp, dir.join(name)).await
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&temp).await;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_filesystem_safe_and_distinct() {
        assert_eq!(safe_keys("abc", "123-x"), "abc_123-x");
        let a = safe_keys("9:2F28:2F2018", "a/b");
        let b = safe_keys("9:2F28:2F2018", "a_b");
        assert_ne!(a, b);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert!(safe_keys(&"x".repeat(500), "y").len() < 100);
    }

    #[test]
    fn compact_time_format() {
        let t = time::macros::datetime!(2026-11-21 11:45:00 +01:00);
        assert_eq!(compact_time(t), "20261121T104500Z");
    }
}
