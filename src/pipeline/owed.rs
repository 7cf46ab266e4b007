//! What the judging pass found owed on one channel, kept small: a tag and a
//! timestamp per owed alert, and the leads themselves only while the run can
//! still send them one by one (at most `DIGEST_AFTER`). A digest run reads
//! its leads again, chunk by chunk (see [`super::digests`]), so memory does
//! not grow with the backlog.

use std::collections::hash_map::{DefaultHasher, Entry as Slot};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use time::OffsetDateTime;

use super::earliest;

use crate::lead::Lead;
use crate::ledger::{AlertKey, Entry};

/// A lead's identity within one run: 8 bytes instead of its two keys. Two
/// leads of one scan sharing a tag (odds about 1 in 10^11 for 10,000 leads)
/// cannot cause a double alert: the second pass judges each lead against the
/// ledger again, and the claim decides. Nor can it lose one: the second is
/// not counted, but it holds the watermark, so the next run finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct LeadTag(u64);

impl LeadTag {
    pub fn of(partition_key: &str, row_key: &str) -> LeadTag {
        let mut hash = DefaultHasher::new();
        partition_key.hash(&mut hash);
        row_key.hash(&mut hash);
        LeadTag(hash.finish())
    }
}

/// One alert ready to claim and send.
pub(super) struct OwedAlert {
    pub alert: AlertKey,
    /// The ledger record as last seen (`None`: there was none).
    pub prior: Option<Entry>,
    pub lead: Arc<Lead>,
}

/// One channel's owed alerts for the run.
#[derive(Default)]
pub(super) struct Owed {
    /// Every owed alert: its lead's tag and timestamp.
    tags: HashMap<LeadTag, OffsetDateTime>,
    /// The alerts themselves, while there are at most `DIGEST_AFTER`.
    few: Vec<OwedAlert>,
    /// The earliest lead whose tag was already taken (the same lead twice,
    /// or another lead with the same tag): the watermark stays before it.
    held: Option<OffsetDateTime>,
}

impl Owed {
    /// How many alerts the run owes on this channel: what decides between
    /// single alerts and digests, and the total a digest shows.
    pub fn count(&self) -> usize {
        self.tags.len()
    }

    /// Notes an owed alert; `alert` is called only while the lead is still
    /// worth keeping. A lead seen twice in one run counts once.
    pub fn add(
        &mut self,
        tag: LeadTag,
        stamp: OffsetDateTime,
        digest_after: usize,
        alert: impl FnOnce() -> OwedAlert,
    ) {
        match self.tags.entry(tag) {
            Slot::Occupied(_) => {
                earliest(&mut self.held, stamp);
                return;
            }
            Slot::Vacant(slot) => slot.insert(stamp),
        };
        if self.tags.len() <= digest_after {
            self.few.push(alert());
        } else if !self.few.is_empty() {
            // A digest run now: its leads are read again when sent.
            self.few = Vec::new();
        }
    }

    /// The alerts to send one by one (empty for a digest run).
    pub fn take_few(&mut self) -> Vec<OwedAlert> {
        let few = std::mem::take(&mut self.few);
        for owed in &few {
            self.tags.remove(&LeadTag::of(
                &owed.alert.lead.partition_key,
                &owed.alert.lead.row_key,
            ));
        }
        few
    }

    /// Takes the alert of this lead if it is owed: `Some(timestamp)`.
    pub fn take(&mut self, tag: LeadTag) -> Option<OffsetDateTime> {
        self.tags.remove(&tag)
    }

    /// Puts back an alert taken by [`Self::take`] for the wrong lead.
    pub fn put_back(&mut self, tag: LeadTag, stamp: OffsetDateTime) {
        self.tags.insert(tag, stamp);
    }

    /// Where the watermark must stay at or before, though nothing is owed.
    pub fn held(&self) -> Option<OffsetDateTime> {
        self.held
    }

    pub fn is_empty(&self) -> bool {
        self.tags.is_empty()
    }

    /// Every alert still owed, leaving none: those not found again or not
    /// sent, for the next run.
    pub fn drain(&mut self) -> impl Iterator<Item = OffsetDateTime> + '_ {
        self.few.clear();
        self.tags.drain().map(|(_, stamp)| stamp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lead::LeadRow;
    use time::macros::datetime;

    fn owed(row_key: &str) -> (LeadTag, impl FnOnce() -> OwedAlert) {
        let row = LeadRow {
            partition_key: "p".into(),
            row_key: row_key.into(),
            ..LeadRow::default()
        };
        let lead = Lead::from_row(&row);
        let tag = LeadTag::of(&row.partition_key, &row.row_key);
        let alert = move || OwedAlert {
            alert: AlertKey {
                lead: lead.key.clone(),
                channel: crate::destination::DestinationId::EMAIL,
                lead_timestamp: datetime!(2026-01-01 0:00 UTC),
            },
            prior: None,
            lead: Arc::new(lead),
        };
        (tag, alert)
    }

    #[test]
    fn leads_are_kept_only_up_to_the_digest_threshold() {
        let at = datetime!(2026-01-01 0:00 UTC);
        let mut set = Owed::default();
        for i in 0..3 {
            let (tag, alert) = owed(&i.to_string());
            set.add(tag, at, 3, alert);
        }
        assert_eq!((set.count(), set.few.len()), (3, 3));
        let (tag, alert) = owed("3");
        set.add(tag, at, 3, alert);
        assert_eq!((set.count(), set.few.len()), (4, 0));
        let (tag, alert) = owed("3");
        set.add(tag, at, 3, alert);
        assert_eq!(set.count(), 4, "the same lead twice counts once");
        assert_eq!(set.held(), Some(at), "but holds the watermark");
        assert_eq!(set.take(LeadTag::of("p", "3")), Some(at));
        assert_eq!(set.take(LeadTag::of("p", "3")), None);
        assert_eq!(set.drain().count(), 3);
        assert!(set.is_empty());
    }

    #[test]
    fn sending_one_by_one_takes_every_alert() {
        let at = datetime!(2026-01-01 0:00 UTC);
        let mut set = Owed::default();
        for i in 0..2 {
            let (tag, alert) = owed(&i.to_string());
            set.add(tag, at, 20, alert);
        }
        assert_eq!(set.take_few().len(), 2);
        assert!(set.is_empty());
    }

    #[test]
    fn tags_tell_keys_apart() {
        assert_ne!(LeadTag::of("a", "bc"), LeadTag::of("ab", "c"));
        assert_eq!(LeadTag::of("a", "b"), LeadTag::of("a", "b"));
    }
}
