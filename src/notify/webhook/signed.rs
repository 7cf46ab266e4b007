//! The signed webhook for machines, per the Standard Webhooks specification:
//! one `lead.created` event per lead ([`super::lead_event`]), and the
//! `lead.taken` events the pipeline hands it as notices, signed with the
//! `standardwebhooks` crate. Never digests: a machine wants one record per
//! lead, and the receiver drops repeats by `webhook-id`.

use reqwest::header::{HeaderMap, HeaderValue};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use standardwebhooks::{
    Webhook, HEADER_WEBHOOK_ID, HEADER_WEBHOOK_SIGNATURE, HEADER_WEBHOOK_TIMESTAMP,
};
use time::OffsetDateTime;

use super::lead_event::Event;
use crate::config::WebhookSettings;
use crate::lead::Lead;
use crate::notify::http::{Answer, Service, Target};
use crate::notify::{Alert, DestinationId, Notifier, NotifyError, SendFuture};

pub struct SignedWebhookNotifier {
    id: DestinationId,
    target: Target,
    signer: Webhook,
}

impl SignedWebhookNotifier {
    /// `http` is the product's (no redirects, see [`crate::tls`]): Standard
    /// Webhooks counts a 3xx as a failure, and a redirect must not carry
    /// the event to another host.
    pub fn new(
        settings: &WebhookSettings,
        http: reqwest::Client,
    ) -> Result<SignedWebhookNotifier, NotifyError> {
        let suffix = settings.id.setting_suffix();
        // Settings checked the secret; this only guards direct construction.
        let signer = Webhook::new(settings.secret.expose_secret()).map_err(|_| {
            NotifyError::permanent(format!(
                "WEBHOOK_SECRET{suffix} is not a whsec_… secret of base64 text"
            ))
        })?;
        Ok(SignedWebhookNotifier {
            id: settings.id.clone(),
            target: Target::new(
                http,
                &settings.url,
                format!("WEBHOOK_URL{suffix}"),
                Service {
                    name: "the webhook receiver",
                    answerer: "the receiver",
                    redirect_fix: "Standard Webhooks counts a redirected delivery as failed; set it to the receiver's final address",
                },
            )?,
            signer,
        })
    }

    async fn post(&self, lead: &Lead) -> Result<(), NotifyError> {
        let now = OffsetDateTime::now_utc();
        let body = serde_json::to_vec(&Event::lead_created(lead, now))
            .map_err(|e| NotifyError::permanent(format!("could not encode the event: {e}")))?;
        self.post_event(webhook_id(&self.id, lead), body, now).await
    }

    /// Signs and posts one event's `body` under `id`.
    async fn post_event(
        &self,
        id: String,
        body: Vec<u8>,
        now: OffsetDateTime,
    ) -> Result<(), NotifyError> {
        // Signed afresh on every attempt: receivers refuse timestamps more
        // than about five minutes old.
        let timestamp = now.unix_timestamp();
        let signature = self
            .signer
            .sign(&id, timestamp, &body)
            .map_err(|e| NotifyError::permanent(format!("could not sign the event: {e}")))?;
        let mut headers = HeaderMap::new();
        for (name, value) in [
            (HEADER_WEBHOOK_ID, id),
            (HEADER_WEBHOOK_TIMESTAMP, timestamp.to_string()),
            (HEADER_WEBHOOK_SIGNATURE, signature),
        ] {
            let value = HeaderValue::from_str(&value)
                .map_err(|e| NotifyError::permanent(format!("bad {name} header: {e}")))?;
            headers.insert(name, value);
        }
        match self.target.post(body, headers).await? {
            None => Ok(()),
            Some(answer) => Err(self.classify(&answer)),
        }
    }

    fn classify(&self, answer: &Answer) -> NotifyError {
        let setting = &self.target.setting;
        let code = answer.plain_code();
        let reason = |text: String| self.target.reason(answer, code.as_deref(), &text);
        match answer.status.as_u16() {
            408 | 429 | 500..=599 => NotifyError::Retryable {
                reason: reason("the receiver is busy or unavailable".to_owned()),
                retry_after: answer.retry_after,
            },
            410 => NotifyError::permanent(reason(format!(
                "the receiver says this webhook is gone: set {setting} to its new address, or remove it"
            ))),
            _ => NotifyError::permanent(reason(format!(
                "the receiver refused the event: check {setting}, and that the receiver uses the secret in WEBHOOK_SECRET{}",
                self.id.setting_suffix()
            ))),
        }
    }
}

impl Notifier for SignedWebhookNotifier {
    fn channel(&self) -> DestinationId {
        self.id.clone()
    }

    fn send<'a>(&'a self, alert: Alert<'a>) -> SendFuture<'a> {
        Box::pin(async move {
            match alert {
                Alert::Lead(lead) => self.post(lead).await,
                Alert::Digest { .. } => Err(NotifyError::permanent(
                    "the signed webhook sends one event per lead and was handed a digest (a lead-notifier bug)",
                )),
                Alert::Notice(notice) => match &notice.event {
                    Some(event) => {
                        let body = serde_json::to_vec(event).map_err(|e| {
                            NotifyError::permanent(format!("could not encode the event: {e}"))
                        })?;
                        let id = event_id(&self.id, &notice.id);
                        self.post_event(id, body, OffsetDateTime::now_utc()).await
                    }
                    // Settings keep webhooks out of SUMMARY_TO and HEALTH_TO.
                    None => Err(NotifyError::permanent(
                        "the signed webhook carries lead events only, not summaries or health notes",
                    )),
                },
            }
        })
    }

    fn takes_digests(&self) -> bool {
        false
    }

    fn check(&self) -> SendFuture<'_> {
        Box::pin(self.target.check())
    }
}

/// `msg_` and 32 hex digits, the same for a (lead, destination) on every
/// attempt and in every process: the receiver's key for dropping a repeat.
pub fn webhook_id(destination: &DestinationId, lead: &Lead) -> String {
    hashed_id(&[
        destination.to_string().as_str(),
        &lead.key.partition_key,
        &lead.key.row_key,
    ])
}

/// [`webhook_id`] of a machine event that is not `lead.created`, from its
/// notice id (which names the event's type): never equal to a lead's, since
/// it hashes two parts, not three.
pub fn event_id(destination: &DestinationId, notice_id: &str) -> String {
    hashed_id(&[destination.to_string().as_str(), notice_id])
}

fn hashed_id(parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    // Lengths first so that ("a", "bc") and ("ab", "c") differ.
    for part in parts {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    format!("msg_{}", &hex::encode(hash.finalize())[..32])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::{sample_lead, Kind};

    #[test]
    fn webhook_id_is_per_lead_and_destination() {
        let lead = sample_lead();
        let crm = DestinationId::named(Kind::Webhook, "crm").unwrap();
        let id = webhook_id(&crm, &lead);
        assert_eq!(id, webhook_id(&crm, &lead.clone()));
        assert!(id.starts_with("msg_") && id.len() == 36, "{id}");
        assert_ne!(id, webhook_id(&DestinationId::WEBHOOK, &lead));
        let mut other = lead.clone();
        other.key.row_key.push('x');
        assert_ne!(id, webhook_id(&crm, &other));
    }
}
