//! The second pass of a digest run: the same rows read again, and the alerts
//! the judging pass found owed gathered into digests, claimed and sent one
//! digest at a time, every channel at once. A digest goes as one message, or
//! as several where one cannot list every lead (Teams, Slack), each settling
//! the leads it lists (`Channel::send_digest`). Only one digest's leads per
//! channel are in memory; rows written since the first pass are left to the
//! next run (they are not in the counts the digests show).

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::join_all;

use super::deliver::{Channel, Limits};
use super::owed::{LeadTag, OwedAlert};
use crate::config::TakeSettings;
use crate::history::RunHistory;
use crate::lead::{Lead, LeadRow};
use crate::lead_table::Scan;
use crate::ledger::{AlertKey, Entry, Ledger, Verdict};
use crate::storage::StorageError;

/// Where the second pass reads its rows.
pub(super) enum Reread<'a> {
    /// The lead table again, from the same position.
    Scan(Scan<'a>),
    /// The rows a caller handed in (the webhook), once.
    Rows(Vec<LeadRow>),
}

impl Reread<'_> {
    async fn next_page(&mut self) -> Result<Option<Vec<LeadRow>>, StorageError> {
        match self {
            Reread::Scan(scan) => scan.next_page().await,
            Reread::Rows(rows) if rows.is_empty() => Ok(None),
            Reread::Rows(rows) => Ok(Some(std::mem::take(rows))),
        }
    }
}

/// Sends the digests of `channels` (each owes more than `digest_after`).
/// `known` is the ledger window the first pass judged against; `history`
/// gives each lead read again the customer history the first pass gave it,
/// `take` its link.
pub(super) async fn send_digests(
    ledger: &Ledger<'_>,
    history: &RunHistory<'_>,
    take: Option<&TakeSettings>,
    mut channels: Vec<&mut Channel>,
    limits: Limits,
    known: &HashMap<String, Entry>,
    mut rows: Reread<'_>,
) -> Result<(), StorageError> {
    let totals: Vec<usize> = channels.iter().map(|c| c.owed.count()).collect();
    let mut chunks: Vec<Vec<OwedAlert>> = channels.iter().map(|_| Vec::new()).collect();
    while let Some(page) = rows.next_page().await? {
        // Rows are dropped as they are gathered: a page of 1,000 rows is
        // about a megabyte, and sending a digest waits in the middle of it.
        for row in page {
            if gather(
                ledger,
                history,
                take,
                &mut channels,
                &mut chunks,
                known,
                &row,
            ) {
                drop(row);
                let full = |c: &Channel, chunk: &Vec<OwedAlert>| chunk.len() >= c.chunk_size();
                send_chunks(ledger, &mut channels, &mut chunks, &totals, limits, full).await?;
            }
        }
        // Down channels keep what they owe for the next run.
        if channels.iter().all(|c| c.owed.is_empty() || c.is_down()) {
            break;
        }
    }
    send_chunks(
        ledger,
        &mut channels,
        &mut chunks,
        &totals,
        limits,
        |_, _| true,
    )
    .await
}

/// Adds `row`'s alerts to the chunks of the channels that owe it; `true`
/// when a chunk is full.
fn gather(
    ledger: &Ledger<'_>,
    history: &RunHistory<'_>,
    take: Option<&TakeSettings>,
    channels: &mut [&mut Channel],
    chunks: &mut [Vec<OwedAlert>],
    known: &HashMap<String, Entry>,
    row: &LeadRow,
) -> bool {
    let tag = LeadTag::of(&row.partition_key, &row.row_key);
    let mut lead: Option<Arc<Lead>> = None;
    for (channel, chunk) in channels.iter_mut().zip(chunks.iter_mut()) {
        if channel.is_down() {
            continue;
        }
        let Some(stamp) = channel.owed.take(tag) else {
            continue;
        };
        let lead = lead.get_or_insert_with(|| {
            let mut lead = Lead::from_row(row);
            history.attach(&mut lead);
            crate::take::attach(take, &mut lead, time::OffsetDateTime::now_utc());
            Arc::new(lead)
        });
        let alert = AlertKey {
            lead: lead.key.clone(),
            channel: channel.id(),
            lead_timestamp: stamp,
        };
        match ledger.judge(known.get(&alert.row_key())) {
            Verdict::Owed { prior } => chunk.push(OwedAlert {
                alert,
                prior,
                lead: Arc::clone(lead),
            }),
            // Another lead with the same tag: the owed one is still to come.
            _ => channel.owed.put_back(tag, stamp),
        }
    }
    channels
        .iter()
        .zip(chunks.iter())
        .any(|(channel, chunk)| chunk.len() >= channel.chunk_size())
}

/// Sends, all channels at once, every chunk `ready` accepts.
async fn send_chunks(
    ledger: &Ledger<'_>,
    channels: &mut [&mut Channel],
    chunks: &mut [Vec<OwedAlert>],
    totals: &[usize],
    limits: Limits,
    ready: impl Fn(&Channel, &Vec<OwedAlert>) -> bool,
) -> Result<(), StorageError> {
    let sends = channels
        .iter_mut()
        .zip(chunks.iter_mut())
        .zip(totals)
        .filter(|((channel, chunk), _)| !chunk.is_empty() && ready(channel, chunk))
        .map(|((channel, chunk), &total)| {
            channel.send_chunk(ledger, limits, std::mem::take(chunk), total)
        });
    join_all(sends).await.into_iter().collect()
}
