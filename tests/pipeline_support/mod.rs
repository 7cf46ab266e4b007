//! Support for the storage, ledger and pipeline tests: settings on unique
//! tables, realistic lead rows, and a notifier that records what it was sent.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lead_notifier::config::Settings;
use lead_notifier::lead::{Lead, LeadKey, LeadRow};
use lead_notifier::lead_table;
use lead_notifier::notify::{Alert, DestinationId, Notifier, NotifyError, SendFuture};
use lead_notifier::storage::Storage;

use crate::common::servers::{storage_connection, unique_table};

/// Settings on fresh lead and state tables of the shared Azurite, with
/// `extra` settings on top.
pub fn settings(extra: &[(&str, &str)]) -> Settings {
    settings_on(&storage_connection(), extra)
}

pub fn settings_on(connection: &str, extra: &[(&str, &str)]) -> Settings {
    let mut vars: HashMap<String, String> = [
        ("LEADS_STORAGE_CONNECTION", connection.to_owned()),
        ("LEADS_TABLE", unique_table("leads")),
        ("LEADS_STATE_TABLE", unique_table("state")),
        ("LEADS_START_FROM", "beginning".to_owned()),
        ("OUTBOX_DIR", std::env::temp_dir().display().to_string()),
        ("RETRY_BUDGET", "0s".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (k, v) in extra {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    Settings::from_map(&vars).unwrap()
}

pub fn storage(settings: &Settings) -> Storage {
    Storage::new(&settings.storage, reqwest::Client::new())
}

/// A lead row as Microsoft writes it, from a customer of its own (one
/// address per row key, so no row is folded as another's repeat).
pub fn row(partition_key: &str, row_key: &str) -> LeadRow {
    let mailbox: String = row_key
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    LeadRow {
        partition_key: partition_key.to_owned(),
        row_key: row_key.to_owned(),
        timestamp: None,
        action_code: Some("PLT".into()),
        created_time: Some("2026-11-21T10:00:00.0000000Z".into()),
        customer_info: Some(format!(
            r#"{{"FirstName":"Jane","LastName":"Doe","Email":"jane.{mailbox}@contoso.com","Company":"Contoso","Country":"DE"}}"#
        )),
        description: Some("Wants a demo".into()),
        lead_source: Some("SPZA-PLT|contoso.crm".into()),
        offer_display_name: Some("Contoso CRM".into()),
    }
}

/// Partner Center's validation lead.
pub fn test_lead_row(partition_key: &str, row_key: &str) -> LeadRow {
    let t = "MSFT_TEST_636573304831318844";
    LeadRow {
        customer_info: Some(format!(
            r#"{{"FirstName":"{t}","LastName":"{t}","Email":"{t}@test.com","Company":"{t}"}}"#
        )),
        description: Some(t.into()),
        lead_source: Some(format!("{t}-{t}|Contoso CRM")),
        ..row(partition_key, row_key)
    }
}

/// `count` rows spread over `partitions` partitions, keys `<tag>-<n>`.
pub fn rows(tag: &str, count: usize, partitions: usize) -> Vec<LeadRow> {
    (0..count)
        .map(|i| {
            row(
                &format!("{}:2F{}:2F2026", 1 + i % partitions, tag),
                &format!("{tag}-{i:05}"),
            )
        })
        .collect()
}

pub async fn store(settings: &Settings, rows: &[LeadRow]) {
    let stored = lead_table::store_rows(&storage(settings), &settings.leads_table, rows)
        .await
        .unwrap();
    assert_eq!(stored, rows.len(), "rows stored");
}

pub fn key(row: &LeadRow) -> LeadKey {
    row.key()
}

/// What the recorder answers.
#[derive(Debug, Clone)]
pub enum Behaviour {
    Deliver,
    Retryable,
    Permanent,
}

type Hook = Box<dyn Fn() -> futures::future::BoxFuture<'static, ()> + Send + Sync>;

/// Records every send: one entry per message with the lead keys it carried
/// and, for digests, the `total` it announced.
pub struct Recorder {
    channel: DestinationId,
    behaviour: Mutex<Behaviour>,
    max_digest: usize,
    sent: Mutex<Vec<Sent>>,
    /// Run once, inside the first send (e.g. to write rows mid-run).
    hook: Mutex<Option<Hook>>,
}

#[derive(Debug, Clone)]
pub struct Sent {
    pub keys: Vec<LeadKey>,
    pub digest_total: Option<usize>,
    /// Per lead, how many earlier leads its customer history listed
    /// (`None`: no history, e.g. no email address).
    pub earlier: Vec<Option<usize>>,
    pub delivered: bool,
}

impl Recorder {
    pub fn new(channel: DestinationId) -> Arc<Recorder> {
        Self::with(channel, Behaviour::Deliver, usize::MAX)
    }

    pub fn with(channel: DestinationId, behaviour: Behaviour, max_digest: usize) -> Arc<Recorder> {
        Arc::new(Recorder {
            channel,
            behaviour: Mutex::new(behaviour),
            max_digest,
            sent: Mutex::new(Vec::new()),
            hook: Mutex::new(None),
        })
    }

    pub fn set(&self, behaviour: Behaviour) {
        *self.behaviour.lock().unwrap() = behaviour;
    }

    pub fn on_first_send(&self, hook: Hook) {
        *self.hook.lock().unwrap() = Some(hook);
    }

    pub fn sent(&self) -> Vec<Sent> {
        self.sent.lock().unwrap().clone()
    }

    /// Keys of leads delivered, one entry per delivery.
    pub fn delivered_keys(&self) -> Vec<LeadKey> {
        self.sent()
            .into_iter()
            .filter(|s| s.delivered)
            .flat_map(|s| s.keys)
            .collect()
    }

    pub fn attempts(&self) -> usize {
        self.sent.lock().unwrap().len()
    }
}

impl Notifier for Recorder {
    fn channel(&self) -> DestinationId {
        self.channel.clone()
    }

    fn max_digest_leads(&self) -> usize {
        self.max_digest
    }

    fn send<'a>(&'a self, alert: Alert<'a>) -> SendFuture<'a> {
        let (keys, digest_total) = match alert {
            Alert::Lead(lead) => (vec![lead.key.clone()], None),
            Alert::Digest { leads, total } => {
                (leads.iter().map(|l| l.key.clone()).collect(), Some(total))
            }
            Alert::Notice(_) => (Vec::new(), None),
        };
        let earlier = |lead: &Lead| lead.history.as_ref().map(|h| h.total());
        let earlier = match alert {
            Alert::Lead(lead) => vec![earlier(lead)],
            Alert::Digest { leads, .. } => leads.iter().map(|l| earlier(l)).collect(),
            Alert::Notice(_) => Vec::new(),
        };
        Box::pin(async move {
            let hook = self.hook.lock().unwrap().take();
            if let Some(hook) = hook {
                hook().await;
            }
            let behaviour = self.behaviour.lock().unwrap().clone();
            let result = match behaviour {
                Behaviour::Deliver => Ok(()),
                Behaviour::Retryable => Err(NotifyError::Retryable {
                    reason: "HTTP 503 from the test service".into(),
                    retry_after: Some(Duration::from_secs(3600)),
                }),
                Behaviour::Permanent => {
                    Err(NotifyError::permanent("HTTP 400 from the test service"))
                }
            };
            self.sent.lock().unwrap().push(Sent {
                keys,
                digest_total,
                earlier,
                delivered: result.is_ok(),
            });
            result
        })
    }
}

pub fn notifiers(recorders: &[&Arc<Recorder>]) -> Vec<Arc<dyn Notifier>> {
    recorders
        .iter()
        .map(|r| Arc::clone(r) as Arc<dyn Notifier>)
        .collect()
}

/// Every lead row of the table as stored (with its Timestamp).
pub async fn stored_rows(settings: &Settings) -> Vec<LeadRow> {
    let storage = storage(settings);
    let mut scan = lead_table::Scan::new(&storage, &settings.leads_table, None);
    let mut all = Vec::new();
    while let Some(page) = scan.next_page().await.unwrap() {
        all.extend(page);
    }
    all
}

pub fn sorted(mut keys: Vec<LeadKey>) -> Vec<LeadKey> {
    keys.sort();
    keys
}
