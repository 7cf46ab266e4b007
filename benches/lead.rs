//! Parsing cost per lead row: the CPU side of a scan, to hold against the
//! storage round trips in BENCHMARKS.md.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use lead_notifier::lead::{Lead, LeadRow};
use lead_notifier::seed::sample_rows;
use time::macros::datetime;

/// Rows as a scan returns them: seeded content plus the system Timestamp.
fn rows(count: usize) -> Vec<LeadRow> {
    let mut rows = sample_rows(count, datetime!(2026-11-21 10:00 UTC));
    for row in &mut rows {
        row.timestamp = Some("2026-11-21T10:00:01.1234567Z".to_owned());
    }
    rows
}

fn from_row(c: &mut Criterion) {
    let rows = rows(1000);
    // Index 3 onwards are ordinary leads; 0..3 are the test/.edu/DNC ones.
    let typical = rows[3].clone();
    let mut broken = typical.clone();
    broken.customer_info = Some("{\"FirstName\": \"Jane\", \"Email\":".to_owned());

    let mut group = c.benchmark_group("Lead::from_row");
    group.bench_function("typical row", |b| {
        b.iter(|| Lead::from_row(black_box(&typical)))
    });
    group.bench_function("malformed CustomerInfo", |b| {
        b.iter(|| Lead::from_row(black_box(&broken)))
    });
    group.throughput(Throughput::Elements(rows.len() as u64));
    group.bench_function("page of 1000 rows", |b| {
        b.iter_batched(
            || (),
            |()| rows.iter().map(Lead::from_row).collect::<Vec<_>>(),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, from_row);
criterion_main!(benches);
