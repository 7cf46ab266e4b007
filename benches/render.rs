//! Rendering cost of one alert and of the digests a 10,000-lead backlog
//! sends, to tell CPU time from network time in BENCHMARKS.md.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use lead_notifier::lead::Lead;
use lead_notifier::notify::email::body::{render_html, render_text};
use lead_notifier::notify::email::{render_message, MAX_DIGEST_LEADS};
use lead_notifier::notify::teams::render_payload;
use lead_notifier::notify::Alert;
use lead_notifier::seed::sample_rows;
use lettre::message::header::ContentTransferEncoding;
use lettre::message::{Body, Mailbox};
use time::macros::datetime;

fn leads(count: usize) -> Vec<Lead> {
    sample_rows(count, datetime!(2026-11-21 10:00 UTC))
        .into_iter()
        .map(|mut row| {
            row.timestamp = Some("2026-11-21T10:00:01.1234567Z".to_owned());
            Lead::from_row(&row)
        })
        .collect()
}

fn email(c: &mut Criterion) {
    let leads = leads(MAX_DIGEST_LEADS + 3);
    let from: Mailbox = "Lead alerts <leads@contoso.com>".parse().unwrap();
    let to: Vec<Mailbox> = vec!["sales@contoso.com".parse().unwrap()];
    let one = Alert::Lead(&leads[3]);
    let refs: Vec<&Lead> = leads[3..].iter().collect();
    let digest = Alert::Digest {
        leads: &refs,
        total: 9_997,
    };
    let mut group = c.benchmark_group("email::render_message");
    // `formatted()` is what the SMTP transport writes, so it is part of the cost.
    group.bench_function("one lead", |b| {
        b.iter(|| render_message(black_box(one), &from, &to).map(|m| m.formatted()))
    });
    group.bench_function("digest of 500 leads", |b| {
        b.iter(|| render_message(black_box(digest), &from, &to).map(|m| m.formatted()))
    });
    group.finish();
    // Its parts, to tell the bodies' rendering from lettre's MIME encoding.
    let mut group = c.benchmark_group("email_body");
    group.bench_function("render_text, digest of 500 leads", |b| {
        b.iter(|| render_text(black_box(digest)))
    });
    group.bench_function("render_html, digest of 500 leads", |b| {
        b.iter(|| render_html(black_box(digest)))
    });
    group.finish();
    // lettre picks the transfer encoding itself (quoted-printable for these
    // bodies); base64 chosen up front shows what that choice costs.
    let html = render_html(digest);
    let mut group = c.benchmark_group("lettre Body of the digest HTML");
    group.bench_function("Body::new (lettre's choice)", |b| {
        b.iter(|| Body::new(black_box(html.clone())))
    });
    group.bench_function("Body::new_with_encoding(Base64)", |b| {
        b.iter(|| Body::new_with_encoding(black_box(html.clone()), ContentTransferEncoding::Base64))
    });
    group.finish();
}

fn teams(c: &mut Criterion) {
    let leads = leads(10_000);
    let one = Alert::Lead(&leads[3]);
    let refs: Vec<&Lead> = leads[3..].iter().collect();
    let digest = Alert::Digest {
        leads: &refs,
        total: leads.len() - 3,
    };
    let mut group = c.benchmark_group("teams::render_payload");
    // Serialised, as the webhook POST sends it.
    group.bench_function("one lead", |b| {
        b.iter(|| serde_json::to_vec(&render_payload(black_box(one))))
    });
    group.bench_function("digest of 9,997 leads", |b| {
        b.iter(|| serde_json::to_vec(&render_payload(black_box(digest))))
    });
    group.finish();
}

criterion_group!(benches, email, teams);
criterion_main!(benches);
