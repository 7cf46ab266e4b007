//! HubSpot: every lead a contact (found by email address, created when
//! missing, only its empty properties filled when it exists) with one note
//! on its timeline telling the lead.
//!
//! A batch of leads costs a few requests whatever its size (up to 100):
//! read the contacts by email, upsert those to create or fill, create the
//! notes. Exactly once: the ledger settles each lead on its own result, and
//! a note carries a marker made from the lead's keys and the destination
//! (`leadnotifier` and 32 hex digits). A lead tried before (its earlier try
//! crashed or lost HubSpot's answer, so its note may be there) first has
//! its contact's notes read (associations, then the notes: reads that see
//! every write at once, unlike HubSpot's search index, which lags), and gets
//! no second note when one carries its marker. A lead tried for the first
//! time cannot have a note yet: nothing is read.

mod api;
mod shapes;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::config::HubSpotSettings;
use crate::lead::{Lead, SkipReason};
use crate::notify::webhook::signed::webhook_id;
use crate::notify::{
    Alert, Attempt, BatchFuture, DestinationId, Notifier, NotifyError, SendFuture,
};
use api::{Api, Crm};
pub use api::{API_VERSION, SCOPES};
use shapes::{Associations, BatchAnswer, BatchRead, Id, Inputs, NoteInput, Record, Upsert};

/// HubSpot's batch endpoints take at most this many inputs.
const BATCH: usize = 100;

/// Pages of one contact's notes read at most when looking for a marker
/// (HubSpot pages associations by 500): beyond 10,000 notes on one
/// contact, the older ones are not looked through.
const MAX_NOTE_PAGES: usize = 20;

pub struct HubSpotNotifier {
    id: DestinationId,
    api: Api,
}

type Results = Vec<Result<(), NotifyError>>;

impl HubSpotNotifier {
    /// `http` is the product's (no redirects, see [`crate::tls`]).
    pub fn new(settings: &HubSpotSettings, http: reqwest::Client) -> HubSpotNotifier {
        HubSpotNotifier {
            id: settings.id.clone(),
            api: Api::new(
                http,
                settings.endpoint.clone(),
                settings.token.clone(),
                settings.setting.clone(),
            ),
        }
    }

    /// The marker of this lead's note on this destination.
    fn marker(&self, lead: &Lead) -> String {
        let id = webhook_id(&self.id, lead);
        format!("leadnotifier{}", id.trim_start_matches("msg_"))
    }

    /// Contacts, then notes, for up to [`BATCH`] leads. HubSpot refuses a
    /// whole batch for one lead's value (its validation rules, on a contact
    /// or a note): then each lead goes alone, so only that one fails. A
    /// refused batch wrote nothing, so its leads are still first tries.
    /// When others of the batch were taken, a lead refused alone is
    /// `Rejected` (its data, not the setup): the run goes on with the next
    /// batch. Refused all alike, it stays permanent and stops the
    /// destination for the run, as a setup problem does.
    async fn write(&self, batch: &[Attempt<'_>], test: bool) -> Results {
        match self.write_batch(batch, test).await {
            Ok(results) => results,
            Err(e) if batch.len() > 1 && api::refused_data(&e) => {
                let mut results = Vec::with_capacity(batch.len());
                for one in batch.chunks(1) {
                    results.extend(Box::pin(self.write(one, test)).await);
                }
                if results.iter().any(Result::is_ok) {
                    for result in &mut results {
                        if let Err(e) = result {
                            if api::refused_data(e) {
                                *e = NotifyError::Rejected {
                                    reason: e.reason().to_owned(),
                                };
                            }
                        }
                    }
                }
                results
            }
            Err(e) => vec![Err(e); batch.len()],
        }
    }

    /// [`Self::write`] in one go; `Err` when a request for the whole batch
    /// failed.
    async fn write_batch(&self, batch: &[Attempt<'_>], test: bool) -> Result<Results, NotifyError> {
        let emails: Vec<Option<String>> = batch.iter().map(|a| shapes::email_of(a.lead)).collect();
        let mut results: Results = emails
            .iter()
            .map(|e| match e {
                Some(_) => Ok(()),
                None => Err(NotifyError::permanent(
                    "the lead has no email address, which HubSpot contacts are found by",
                )),
            })
            .collect();
        let contacts = self.contacts(batch, &emails).await?;
        // Leads whose contact is known, and whose note is not there yet.
        let mut todo = Vec::new();
        for (i, email) in emails.iter().enumerate() {
            let Some(email) = email else { continue };
            match contacts.get(email) {
                Some(contact) => todo.push((i, contact.clone())),
                None => {
                    results[i] = Err(NotifyError::retryable(
                        "HubSpot did not answer the contact for this lead's address",
                    ))
                }
            }
        }
        let retried: Vec<(&str, String)> = todo
            .iter()
            .filter(|(i, _)| !batch[*i].first)
            .map(|(i, contact)| (contact.as_str(), self.marker(batch[*i].lead)))
            .collect();
        let found = self.notes_with(&retried).await?;
        todo.retain(|(i, _)| !found.contains(&self.marker(batch[*i].lead)));
        if todo.is_empty() {
            return Ok(results);
        }
        let inputs = todo
            .iter()
            .map(|(i, contact)| {
                let lead = batch[*i].lead;
                let stamp = lead.timestamp.unwrap_or_else(time::OffsetDateTime::now_utc);
                let properties = BTreeMap::from([
                    (
                        "hs_timestamp",
                        stamp.unix_timestamp().saturating_mul(1000).to_string(),
                    ),
                    (
                        "hs_note_body",
                        shapes::note_body(lead, &self.marker(lead), test),
                    ),
                ]);
                NoteInput {
                    properties,
                    associations: vec![serde_json::json!({
                        "to": {"id": contact},
                        "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": shapes::NOTE_TO_CONTACT}],
                    })],
                }
            })
            .collect();
        let created: BatchAnswer = self
            .api
            .post(Crm::Objects, "notes/batch/create", &Inputs { inputs })
            .await?;
        let outcome = if created.errors.is_empty() {
            Ok(())
        } else {
            // Some notes were made, which ones is not said in a way this
            // can rely on: the retry looks each up by its marker.
            Err(NotifyError::retryable(
                "HubSpot created only part of a batch of notes (207); the rest are looked up and made on retry",
            ))
        };
        for (i, _) in todo {
            results[i] = outcome.clone();
        }
        Ok(results)
    }

    /// Each address's contact id: read by email, then created or filled
    /// (only its empty properties) with one upsert of those that need it.
    async fn contacts(
        &self,
        batch: &[Attempt<'_>],
        emails: &[Option<String>],
    ) -> Result<HashMap<String, String>, NotifyError> {
        // The first lead of an address gives its properties.
        let mut wanted: BTreeMap<&str, &Lead> = BTreeMap::new();
        for (attempt, email) in batch.iter().zip(emails) {
            if let Some(email) = email {
                wanted.entry(email.as_str()).or_insert(attempt.lead);
            }
        }
        if wanted.is_empty() {
            return Ok(HashMap::new());
        }
        let found = self.read_contacts(wanted.keys().copied()).await?;
        // HubSpot finds a contact by a secondary address too, and answers
        // it with its primary one: each record stands for all its addresses.
        let mut existing: HashMap<String, &Record> = HashMap::new();
        for record in &found.results {
            for address in record.addresses() {
                existing.entry(address).or_insert(record);
            }
        }
        let emails_wanted: Vec<&str> = wanted.keys().copied().collect();
        let mut ids: HashMap<String, String> = HashMap::new();
        // By the address written to: a contact two leads name by two of its
        // addresses is written once (HubSpot refuses a batch naming a
        // record twice), with the first lead's properties.
        let mut upserts: BTreeMap<String, Upsert> = BTreeMap::new();
        for (email, lead) in wanted {
            let mut properties = shapes::contact_properties(lead);
            // An existing contact is written by its primary address, the
            // one that names it alone.
            let mut id = email.to_owned();
            if let Some(record) = existing.get(email) {
                // Never overwrite what the sales team may have edited.
                properties.retain(|name, _| record.value(name).is_none());
                ids.insert(email.to_owned(), record.id.clone());
                if let Some(primary) = record.value("email") {
                    id = primary.to_owned();
                }
            }
            if !properties.is_empty() {
                upserts.entry(id.to_lowercase()).or_insert(Upsert {
                    id,
                    id_property: "email",
                    properties,
                });
            }
        }
        if !upserts.is_empty() {
            let written: BatchAnswer = self
                .api
                .post(
                    Crm::Objects,
                    "contacts/batch/upsert",
                    &Inputs {
                        inputs: upserts.into_values().collect(),
                    },
                )
                .await?;
            for record in written.results {
                if let Some(email) = record.value("email") {
                    ids.insert(email.to_lowercase(), record.id.clone());
                }
            }
            // HubSpot's reference does not promise the address in an
            // upsert's answer: the contacts it did not name are read.
            let unnamed: Vec<&str> = emails_wanted
                .into_iter()
                .filter(|e| !ids.contains_key(*e))
                .collect();
            if !unnamed.is_empty() {
                let found = self.read_contacts(unnamed.into_iter()).await?;
                for record in &found.results {
                    for address in record.addresses() {
                        ids.entry(address).or_insert_with(|| record.id.clone());
                    }
                }
            }
        }
        ids.retain(|_, id| !id.is_empty());
        Ok(ids)
    }

    /// The contacts of these addresses (primary or secondary), with the
    /// properties this product fills; 207 when some have none (their
    /// errors are "not found").
    async fn read_contacts(
        &self,
        emails: impl Iterator<Item = &str>,
    ) -> Result<BatchAnswer, NotifyError> {
        let read = BatchRead {
            id_property: Some("email"),
            properties: &shapes::CONTACT_READ,
            inputs: emails
                .map(|e| Id {
                    id: e.to_owned(),
                    after: None,
                })
                .collect(),
        };
        self.api
            .post(Crm::Objects, "contacts/batch/read", &read)
            .await
    }

    /// Which markers are in a note of their contact already: `wanted` is
    /// (contact id, marker) of the leads tried before.
    async fn notes_with(&self, wanted: &[(&str, String)]) -> Result<HashSet<String>, NotifyError> {
        let mut found = HashSet::new();
        if wanted.is_empty() {
            return Ok(found);
        }
        let contacts: BTreeSet<&str> = wanted.iter().map(|(c, _)| *c).collect();
        let notes = self.notes_of(contacts).await?;
        let ids: Vec<&String> = notes
            .values()
            .flatten()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut bodies: HashMap<String, String> = HashMap::new();
        for chunk in ids.chunks(BATCH) {
            let read = BatchRead {
                id_property: None,
                properties: &["hs_note_body"],
                inputs: chunk
                    .iter()
                    .map(|id| Id {
                        id: (*id).clone(),
                        after: None,
                    })
                    .collect(),
            };
            let answer: BatchAnswer = self
                .api
                .post(Crm::Objects, "notes/batch/read", &read)
                .await?;
            for note in answer.results {
                let body = note.value("hs_note_body").unwrap_or_default().to_owned();
                bodies.insert(note.id, body);
            }
        }
        for (contact, marker) in wanted {
            let has = notes.get(*contact).is_some_and(|ids| {
                ids.iter()
                    .any(|id| bodies.get(id).is_some_and(|b| b.contains(marker.as_str())))
            });
            if has {
                found.insert(marker.clone());
            }
        }
        Ok(found)
    }

    /// The ids of the notes on each contact, every page.
    async fn notes_of(
        &self,
        contacts: BTreeSet<&str>,
    ) -> Result<HashMap<String, Vec<String>>, NotifyError> {
        let mut notes: HashMap<String, Vec<String>> = HashMap::new();
        let mut pending: Vec<Id> = contacts
            .into_iter()
            .map(|c| Id {
                id: c.to_owned(),
                after: None,
            })
            .collect();
        for _ in 0..MAX_NOTE_PAGES {
            if pending.is_empty() {
                break;
            }
            let mut next = Vec::new();
            for chunk in pending.chunks(BATCH) {
                let inputs = Inputs {
                    inputs: chunk.iter().collect::<Vec<&Id>>(),
                };
                let answer: Associations = self
                    .api
                    .post(Crm::Associations, "contacts/notes/batch/read", &inputs)
                    .await?;
                for result in answer.results {
                    let ids = notes.entry(result.from.id.clone()).or_default();
                    ids.extend(result.to.into_iter().map(|to| to.to_object_id.to_string()));
                    if let Some(after) = result.paging.and_then(|p| p.next).map(|n| n.after) {
                        next.push(Id {
                            id: result.from.id,
                            after: Some(after),
                        });
                    }
                }
            }
            pending = next;
        }
        Ok(notes)
    }
}

impl Notifier for HubSpotNotifier {
    fn channel(&self) -> DestinationId {
        self.id.clone()
    }

    /// One lead (`test-alert`: its sample lead is marked as a test in the
    /// note). The pipeline sends through [`Notifier::send_batch`].
    fn send<'a>(&'a self, alert: Alert<'a>) -> SendFuture<'a> {
        Box::pin(async move {
            match alert {
                Alert::Lead(lead) => {
                    let test =
                        lead.key.partition_key == crate::notify::sample_lead().key.partition_key;
                    let batch = [Attempt { lead, first: true }];
                    self.write(&batch, test).await.pop().unwrap_or(Ok(()))
                }
                Alert::Digest { .. } => Err(NotifyError::permanent(
                    "HubSpot takes one note per lead and was handed a digest (a lead-notifier bug)",
                )),
                // Settings keep HubSpot out of SUMMARY_TO and HEALTH_TO.
                Alert::Notice(_) => Err(NotifyError::permanent(
                    "HubSpot takes lead notes only, not summaries or health notes",
                )),
            }
        })
    }

    fn batch_size(&self) -> usize {
        BATCH
    }

    fn send_batch<'a>(&'a self, batch: &'a [Attempt<'a>]) -> BatchFuture<'a> {
        Box::pin(async move {
            let mut results = Vec::with_capacity(batch.len());
            for chunk in batch.chunks(BATCH) {
                results.extend(self.write(chunk, false).await);
            }
            results
        })
    }

    fn takes_digests(&self) -> bool {
        false
    }

    fn refuses(&self, lead: &Lead) -> Option<SkipReason> {
        shapes::email_of(lead)
            .is_none()
            .then_some(SkipReason::NoEmail)
    }

    /// Reads one contact: the token works and reaches contacts; nothing is
    /// written.
    fn check(&self) -> SendFuture<'_> {
        Box::pin(async move {
            let _: serde_json::Value = self.api.get("contacts?limit=1").await?;
            Ok(())
        })
    }
}
