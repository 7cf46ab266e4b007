//! The delivery ledger and the watermark against a real Azurite: claims
//! race safely, expired claims are taken over, the watermark only moves
//! forward, and awkward lead keys survive.

mod common;
#[path = "pipeline_support/mod.rs"]
mod support;

use std::time::Duration;

use lead_notifier::lead::LeadKey;
use lead_notifier::ledger::{
    AlertKey, Claim, Ledger, Policy, Settlement, Status, Verdict, Watermarks,
};
use lead_notifier::notify::DestinationId;
use lead_notifier::storage::Storage;
use support::*;
use time::OffsetDateTime;

const LIVE: Policy = Policy {
    claim_lease: Duration::from_secs(600),
    max_attempts: 5,
};
const EXPIRED: Policy = Policy {
    claim_lease: Duration::ZERO,
    max_attempts: 5,
};

async fn state(settings: &lead_notifier::config::Settings) -> Storage {
    let storage = storage(settings);
    storage
        .create_table_if_missing(&settings.state_table)
        .await
        .unwrap();
    storage
}

fn alerts(tag: &str, n: usize) -> Vec<AlertKey> {
    (0..n)
        .map(|i| AlertKey {
            lead: LeadKey {
                partition_key: "11:2F21:2F2026".into(),
                row_key: format!("{tag}-{i}"),
            },
            channel: DestinationId::TEAMS,
            lead_timestamp: OffsetDateTime::now_utc(),
        })
        .collect()
}

fn won(claims: &[Claim]) -> Vec<bool> {
    claims.iter().map(|c| matches!(c, Claim::Won(_))).collect()
}

#[tokio::test]
async fn of_two_concurrent_claimers_exactly_one_wins_each_alert() {
    let settings = settings(&[]);
    let (s1, s2) = (state(&settings).await, storage(&settings));
    let a = Ledger::new(
        &s1,
        &settings.state_table,
        &settings.leads_table,
        "run-a",
        LIVE,
    );
    let b = Ledger::new(
        &s2,
        &settings.state_table,
        &settings.leads_table,
        "run-b",
        LIVE,
    );
    let wanted: Vec<_> = alerts("race", 30).into_iter().map(|a| (a, None)).collect();

    let (x, y) = tokio::join!(a.claim(wanted.clone()), b.claim(wanted));
    let (x, y) = (x.unwrap(), y.unwrap());

    for (i, (p, q)) in won(&x).into_iter().zip(won(&y)).enumerate() {
        assert!(p ^ q, "alert {i}: a won {p}, b won {q}");
    }
    let losers = x
        .iter()
        .chain(&y)
        .filter(|c| matches!(c, Claim::Busy))
        .count();
    assert_eq!(losers, 30, "the loser sees a live claim");
}

#[tokio::test]
async fn a_claim_past_its_lease_is_taken_over_once() {
    let settings = settings(&[]);
    let (s1, s2, s3) = (
        state(&settings).await,
        storage(&settings),
        storage(&settings),
    );
    let crashed = Ledger::new(
        &s1,
        &settings.state_table,
        &settings.leads_table,
        "crashed",
        LIVE,
    );
    let alert = alerts("stale", 1).remove(0);
    let claims = crashed.claim(vec![(alert.clone(), None)]).await.unwrap();
    let Claim::Won(original) = &claims[0] else {
        panic!("{claims:?}")
    };

    // Within the lease another run must keep off.
    let patient = Ledger::new(
        &s2,
        &settings.state_table,
        &settings.leads_table,
        "patient",
        LIVE,
    );
    let seen = patient.get(&alert.row_key()).await.unwrap();
    assert!(matches!(patient.judge(seen.as_ref()), Verdict::Busy));
    assert!(matches!(
        patient.claim(vec![(alert.clone(), None)]).await.unwrap()[0],
        Claim::Busy
    ));

    // Past it, two runs race for the takeover: one wins.
    let one = Ledger::new(
        &s2,
        &settings.state_table,
        &settings.leads_table,
        "one",
        EXPIRED,
    );
    let two = Ledger::new(
        &s3,
        &settings.state_table,
        &settings.leads_table,
        "two",
        EXPIRED,
    );
    let window = one.window(None).await.unwrap();
    let prior = window.get(&alert.row_key()).cloned();
    let Verdict::Owed { prior: Some(prior) } = one.judge(prior.as_ref()) else {
        panic!("expired claim not owed")
    };
    let (x, y) = tokio::join!(
        one.claim(vec![(alert.clone(), Some(prior.clone()))]),
        two.claim(vec![(alert.clone(), Some(prior))])
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    assert!(won(&x)[0] ^ won(&y)[0], "{x:?} {y:?}");
    let winner = if won(&x)[0] { &x[0] } else { &y[0] };
    let Claim::Won(taken) = winner else {
        unreachable!()
    };
    assert_eq!(taken.record.attempts, 2);

    // The crashed run coming back cannot undo the takeover with a failure…
    crashed
        .settle(vec![(
            original.clone(),
            Settlement::Retry {
                error: "late".into(),
            },
        )])
        .await
        .unwrap();
    let now = one.get(&alert.row_key()).await.unwrap().unwrap();
    assert_eq!(now.record.status, Status::Claimed);
    assert_ne!(now.record.claimed_by, "crashed");
    // …and the winner's delivery is recorded.
    one.settle(vec![(taken.clone(), Settlement::Delivered)])
        .await
        .unwrap();
    let done = one.get(&alert.row_key()).await.unwrap().unwrap();
    assert_eq!(done.record.status, Status::Delivered);
    assert!(matches!(
        one.judge(Some(&done)),
        Verdict::Done(Status::Delivered)
    ));
}

#[tokio::test]
async fn retry_records_are_claimed_again_and_untried_claims_cost_no_attempt() {
    let settings = settings(&[]);
    let s = state(&settings).await;
    let ledger = Ledger::new(&s, &settings.state_table, &settings.leads_table, "r", LIVE);
    let batch = alerts("retry", 3);
    let claims = ledger
        .claim(batch.iter().cloned().map(|a| (a, None)).collect())
        .await
        .unwrap();
    let entries: Vec<_> = claims
        .into_iter()
        .map(|c| match c {
            Claim::Won(e) => e,
            other => panic!("{other:?}"),
        })
        .collect();
    ledger
        .settle(vec![
            (
                entries[0].clone(),
                Settlement::Retry {
                    error: "HTTP 503".into(),
                },
            ),
            (entries[1].clone(), Settlement::Untried),
            (
                entries[2].clone(),
                Settlement::Failed {
                    error: "HTTP 400".into(),
                },
            ),
        ])
        .await
        .unwrap();

    let window = ledger.window(None).await.unwrap();
    let record = |i: usize| window[&batch[i].row_key()].record.clone();
    assert_eq!((record(0).status, record(0).attempts), (Status::Retry, 1));
    assert_eq!(record(0).last_error, "HTTP 503");
    assert_eq!((record(1).status, record(1).attempts), (Status::Retry, 0));
    assert_eq!(record(2).status, Status::Failed);

    let again: Vec<_> = (0..2)
        .map(|i| (batch[i].clone(), Some(window[&batch[i].row_key()].clone())))
        .collect();
    let claims = ledger.claim(again).await.unwrap();
    assert_eq!(won(&claims), vec![true, true]);
    // A failed-for-good alert is not claimed, even by insert.
    let claims = ledger.claim(vec![(batch[2].clone(), None)]).await.unwrap();
    assert!(
        matches!(claims[0], Claim::Done(Status::Failed)),
        "{claims:?}"
    );
}

#[tokio::test]
async fn awkward_lead_keys_round_trip() {
    let settings = settings(&[]);
    let s = state(&settings).await;
    let ledger = Ledger::new(&s, &settings.state_table, &settings.leads_table, "k", LIVE);
    let alert = AlertKey {
        lead: LeadKey {
            partition_key: "9:2F28:2F2018".into(),
            row_key: "a/b\\c#d?e'f%g|h~i Jürgen\u{7}".into(),
        },
        channel: DestinationId::EMAIL,
        lead_timestamp: OffsetDateTime::now_utc(),
    };
    let claims = ledger.claim(vec![(alert.clone(), None)]).await.unwrap();
    let Claim::Won(entry) = &claims[0] else {
        panic!("{claims:?}")
    };
    ledger
        .settle(vec![(entry.clone(), Settlement::Delivered)])
        .await
        .unwrap();
    let read = ledger.get(&alert.row_key()).await.unwrap().unwrap();
    assert_eq!(read.record.lead_row_key, alert.lead.row_key);
    assert_eq!(read.record.status, Status::Delivered);
}

#[tokio::test]
async fn the_watermark_only_moves_forward_even_when_runs_race() {
    let settings = settings(&[]);
    let (s1, s2) = (storage(&settings), storage(&settings));
    let one = Watermarks::new(&s1, &settings.state_table, &settings.leads_table);
    let two = Watermarks::new(&s2, &settings.state_table, &settings.leads_table);
    assert!(
        one.load().await.unwrap().is_none(),
        "first run: no watermark, table created"
    );
    let t0 = OffsetDateTime::now_utc();
    let (t1, t2) = (t0 + Duration::from_secs(60), t0 + Duration::from_secs(120));

    let ticks = |t: OffsetDateTime| t.replace_nanosecond(t.nanosecond() / 100 * 100).unwrap();
    let a = one.advance(None, t1, "a").await.unwrap();
    assert_eq!(a, ticks(t1));
    // A run that read nothing at its start and wants to go back to t0 loses.
    assert_eq!(two.advance(None, t0, "b").await.unwrap(), ticks(t1));

    let seen_by_one = one.load().await.unwrap();
    let seen_by_two = two.load().await.unwrap();
    let (x, y) = tokio::join!(
        one.advance(seen_by_one, t2, "a"),
        two.advance(seen_by_two, t1 + Duration::from_secs(1), "b")
    );
    let (_, _) = (x.unwrap(), y.unwrap());
    let stored = one.load().await.unwrap().unwrap();
    assert_eq!(stored.at, ticks(t2));
}
