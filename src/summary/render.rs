//! The summary and the health notes for every channel, from one list of
//! blocks: email HTML (bar charts as tables with widths and background
//! colours, which Outlook and Gmail both render; no images, no scripts) with
//! a plain-text part, a Teams Adaptive Card (offer names only in `TextRun`s,
//! never Markdown) and Slack blocks (`plain_text` only).

use maud::{html, Markup, DOCTYPE};
use serde_json::{json, Value};

use super::health::{what_to_check, HealthNote};
use super::Summary;
use crate::lead::SkipReason;
use crate::notify::Notice;
use crate::storage::{format_timestamp, parse_timestamp};
use crate::text::{format_time, one_line, truncate};

/// Lines a chart shows at most in chat cards (the email shows them all up
/// to [`MAX_EMAIL_LINES`]).
/// Lines (bars, links) a Teams card or Slack message lists; a reminder to
/// chat therefore carries at most this many leads.
pub const MAX_CARD_LINES: usize = 15;
const MAX_EMAIL_LINES: usize = 200;
/// Characters of an offer's name and of an action's wording in a label: an
/// action Microsoft did not document is worded by the lead's own text, of
/// any length, and the chat cards must stay within their size limits.
const MAX_OFFER: usize = 80;
const MAX_ACTION: usize = 40;
/// Validation leads listed at most.
const MAX_VALIDATIONS: usize = 5;

const ACCENT: &str = "#0f6cbd";
const TRACK: &str = "#e5e7eb";
const FONT: &str = "font-family:'Segoe UI',Helvetica,Arial,sans-serif;";

/// One bar of a chart.
struct Bar {
    label: String,
    value: u64,
    note: String,
}

enum Block {
    /// A paragraph of our own words (may hold offer names: escaped).
    Para(String),
    /// A warning paragraph.
    Warn(String),
    Chart {
        title: String,
        bars: Vec<Bar>,
    },
    /// Links of our own (take links): label and https URL.
    Links(Vec<(String, String)>),
}

struct Message {
    subject: String,
    heading: String,
    blocks: Vec<Block>,
}

fn day(t: time::OffsetDateTime) -> String {
    format_time(t)
}

pub(super) fn summary(s: &Summary) -> Notice {
    let total = s.report.total.leads;
    let before = s.before.total.leads;
    let change = super::Line {
        offer: String::new(),
        action: String::new(),
        leads: total,
        before,
    }
    .change();
    let subject = format!(
        "Marketplace leads {} to {}: {total} ({change} against the period before)",
        date(s.from),
        date(s.until)
    );
    let mut blocks = vec![Block::Para(format!(
        "From {} to {}: {total} lead(s), {before} in the period before.",
        day(s.from),
        day(s.until)
    ))];
    if let Some(problem) = s.flow.problem(&s.table) {
        blocks.push(Block::Warn(problem));
    } else if let Some(last) = s.flow.last_lead {
        blocks.push(Block::Para(format!(
            "Lead flow: healthy, last lead written {}.",
            day(last)
        )));
    }
    let validations: Vec<String> = s
        .report
        .validations
        .iter()
        .rev()
        .take(MAX_VALIDATIONS)
        .map(|t| parse_timestamp(t).map_or_else(|| t.clone(), day))
        .collect();
    for at in &validations {
        blocks.push(Block::Para(format!(
            "Partner Center connection validated on {at} (a test lead, not alerted)."
        )));
    }
    let lines = s.lines();
    if !lines.is_empty() {
        blocks.push(Block::Chart {
            title: "Leads per offer and action".to_owned(),
            bars: lines
                .iter()
                .take(MAX_EMAIL_LINES)
                .map(|l| Bar {
                    label: format!(
                        "{} · {}",
                        truncate(&l.offer, MAX_OFFER),
                        truncate(&l.action, MAX_ACTION)
                    ),
                    value: l.leads,
                    note: format!("{} ({} before)", l.change(), l.before),
                })
                .collect(),
        });
    }
    let t = &s.report.total;
    let mut outcome = vec![Bar {
        label: "alerted".to_owned(),
        value: t.alerted,
        note: String::new(),
    }];
    for (reason, n) in &t.skipped {
        let words = SkipReason::from_code(reason).map_or(reason.as_str(), |r| r.describe());
        outcome.push(Bar {
            label: format!("not alerted: {words}"),
            value: *n,
            note: String::new(),
        });
    }
    outcome.push(Bar {
        label: "failed, given up".to_owned(),
        value: t.failed,
        note: String::new(),
    });
    outcome.push(Bar {
        label: "still owed".to_owned(),
        value: t.pending,
        note: String::new(),
    });
    blocks.push(Block::Chart {
        title: "Alerted and not alerted".to_owned(),
        bars: outcome,
    });
    if s.takes_on || t.taken > 0 {
        blocks.push(Block::Para(take_line(t)));
    }
    if !s.report.moves.is_empty() {
        blocks.push(Block::Chart {
            title: "Customers who moved along the funnel".to_owned(),
            bars: s
                .report
                .moves
                .iter()
                .take(MAX_EMAIL_LINES)
                .map(|m| Bar {
                    label: format!(
                        "{}: {} → {}",
                        truncate(&m.offer, MAX_OFFER),
                        truncate(&m.from, MAX_ACTION),
                        truncate(&m.to, MAX_ACTION)
                    ),
                    value: m.customers,
                    note: String::new(),
                })
                .collect(),
        });
    }
    render(
        format!("summary|{}", format_timestamp(s.until)),
        Message {
            subject,
            heading: "Marketplace leads: the summary".to_owned(),
            blocks,
        },
    )
}

pub(super) fn health(note: &HealthNote, table: &str) -> Notice {
    let id = format!("{}|{}", note.kind(), format_timestamp(note.episode()));
    let message = match note {
        HealthNote::Silent {
            last,
            silence_after,
        } => Message {
            subject: format!("No marketplace lead since {}: check the lead connection", date(*last)),
            heading: "Microsoft may have stopped writing leads".to_owned(),
            blocks: vec![
                Block::Warn(format!(
                    "No lead has been written to table {table} since {} ({} or more), after a month with leads.",
                    day(*last),
                    crate::text::duration_words(*silence_after)
                )),
                Block::Para(format!(
                    "Microsoft does not re-send leads it could not write, so this is worth a look now: {}.",
                    what_to_check(table)
                )),
                Block::Para(
                    "A note follows when leads come in again. A quiet period is possible too: \
                     Partner Center's \"Validate\" on the Customer leads page writes a test lead that proves the connection."
                        .to_owned(),
                ),
            ],
        },
        HealthNote::Resumed { last, again } => Message {
            subject: format!("Marketplace leads are coming in again (since {})", date(*again)),
            heading: "Lead flow resumed".to_owned(),
            blocks: vec![Block::Para(format!(
                "A lead was written to table {table} at {} after none since {}.",
                day(*again),
                day(*last)
            ))],
        },
    };
    render(id, message)
}

/// How many alerted leads were taken, and how fast (from the first alert).
fn take_line(t: &crate::report::Row) -> String {
    let took = |s: u64| crate::text::duration_words(std::time::Duration::from_secs(s));
    let speed = match (t.take_median_s, t.take_p90_s) {
        (Some(median), Some(p90)) => format!(
            "; half within {}, nine in ten within {} of the first alert",
            took(median),
            took(p90)
        ),
        _ => String::new(),
    };
    format!(
        "Taken: {} of {} alerted lead(s){speed}.",
        t.taken, t.alerted
    )
}

/// The reminder for leads nobody took within `within`: per lead, when it
/// was first alerted and its take link. `id` names the set of leads (stable
/// on retries).
pub fn reminder(
    id: String,
    within: std::time::Duration,
    leads: &[(time::OffsetDateTime, String)],
) -> Notice {
    let within = crate::text::duration_words(within);
    let count = match leads.len() {
        1 => "1 lead".to_owned(),
        n => format!("{n} leads"),
    };
    let message = Message {
        subject: format!("Untaken for {within}: {count}"),
        heading: format!("Untaken for {within}"),
        blocks: vec![
            Block::Warn(format!(
                "Nobody has taken {} within {within} of the alert. Open a link to see the lead and take it.",
                if leads.len() == 1 { "this lead".to_owned() } else { format!("these {count}") }
            )),
            Block::Links(
                leads
                    .iter()
                    .map(|(alerted, link)| (format!("Lead alerted {}", day(*alerted)), link.clone()))
                    .collect(),
            ),
        ],
    };
    render(id, message)
}

fn date(t: time::OffsetDateTime) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    t.format(format).unwrap_or_default()
}

fn render(id: String, m: Message) -> Notice {
    Notice {
        id,
        subject: one_line(&m.subject),
        text: text(&m),
        html: email_html(&m),
        teams_card: teams(&m),
        slack_blocks: slack(&m),
        event: None,
    }
}

const FOOTER: &str = "Sent by lead-notifier. Offers, counts and times only: \
no customer is named. Details: lead-notifier report --format html.";

fn text(m: &Message) -> String {
    let mut out = format!("{}\n\n", m.subject);
    for block in &m.blocks {
        match block {
            Block::Para(p) => out.push_str(&format!("{p}\n\n")),
            Block::Warn(p) => out.push_str(&format!("WARNING: {p}\n\n")),
            Block::Chart { title, bars } => {
                out.push_str(&format!("{title}\n"));
                for bar in bars {
                    let note = if bar.note.is_empty() {
                        String::new()
                    } else {
                        format!("  {}", bar.note)
                    };
                    out.push_str(&format!("  {:>6}  {}{note}\n", bar.value, bar.label));
                }
                out.push('\n');
            }
            Block::Links(links) => {
                for (label, url) in links {
                    out.push_str(&format!("{label}: {url}\n"));
                }
                out.push('\n');
            }
        }
    }
    out.push_str("--\n");
    out.push_str(FOOTER);
    out.push('\n');
    out
}

fn email_html(m: &Message) -> String {
    let page = html! {
        (DOCTYPE)
        html {
            head {
                meta http-equiv="Content-Type" content="text/html; charset=utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (m.subject) }
            }
            body style="margin:0;padding:0;background-color:#f3f4f6;" {
                table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" bgcolor="#f3f4f6" {
                    tr { td align="center" style="padding:16px 8px;" {
                        table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" bgcolor="#ffffff"
                            style=(format!("max-width:640px;background-color:#ffffff;border:1px solid #d1d5db;font-size:14px;color:#111827;{FONT}")) {
                            tr { td bgcolor=(ACCENT) style=(format!("padding:14px 16px;background-color:{ACCENT};color:#ffffff;font-size:18px;font-weight:bold;{FONT}")) {
                                (m.heading)
                            } }
                            @for block in &m.blocks {
                                tr { td style=(format!("padding:12px 16px 0 16px;{FONT}")) { (email_block(block)) } }
                            }
                            tr { td style=(format!("padding:16px;font-size:12px;color:#6b7280;{FONT}")) { (FOOTER) } }
                        }
                    } }
                }
            }
        }
    };
    page.into_string()
}

fn email_block(block: &Block) -> Markup {
    match block {
        Block::Para(p) => html! { p style=(format!("margin:0;{FONT}")) { (p) } },
        Block::Warn(p) => html! {
            table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" {
                tr { td bgcolor="#fde7e9" style=(format!("padding:10px;background-color:#fde7e9;border-left:4px solid #c50f1f;{FONT}")) {
                    b { "Warning: " } (p)
                } }
            }
        },
        Block::Chart { title, bars } => {
            let most = bars.iter().map(|b| b.value).max().unwrap_or(0);
            html! {
                p style=(format!("margin:0 0 6px 0;font-weight:bold;{FONT}")) { (title) }
                table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" {
                    @for bar in bars {
                        tr { td style=(format!("padding:4px 0 0 0;font-size:13px;{FONT}")) {
                            (bar.label) ": " b { (bar.value) }
                            @if !bar.note.is_empty() { " " span style="color:#6b7280;" { (bar.note) } }
                        } }
                        tr { td style="padding:2px 0 4px 0;" { (email_bar(bar.value, most)) } }
                    }
                }
            }
        }
        Block::Links(links) => html! {
            @for (label, url) in links {
                p style=(format!("margin:0 0 6px 0;{FONT}")) {
                    (label) ": " a href=(url) style=(format!("color:{ACCENT};font-weight:bold;")) { "I'll take it" }
                }
            }
        },
    }
}

/// A bar as a one-row table: the filled cell's width in percent.
fn email_bar(value: u64, most: u64) -> Markup {
    let percent = if most == 0 || value == 0 {
        0
    } else {
        (value * 100 / most).clamp(1, 100)
    };
    let cell = |width: u64, colour: &str| {
        html! {
            td width=(format!("{width}%")) height="10" bgcolor=(colour)
                style=(format!("width:{width}%;height:10px;background-color:{colour};font-size:1px;line-height:1px;")) { "\u{a0}" }
        }
    };
    html! {
        table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" {
            tr {
                @if percent > 0 { (cell(percent, ACCENT)) }
                @if percent < 100 { (cell(100 - percent, TRACK)) }
            }
        }
    }
}

fn teams(m: &Message) -> Value {
    let run = |text: &str| json!({"type": "TextRun", "text": text});
    let bold = |text: &str| json!({"type": "TextRun", "text": text, "weight": "Bolder"});
    let block = |inlines: Vec<Value>| json!({"type": "RichTextBlock", "inlines": inlines});
    let mut body = vec![json!({"type": "RichTextBlock", "inlines": [
        {"type": "TextRun", "text": m.heading, "weight": "Bolder", "size": "Large", "color": "Accent"}
    ]})];
    for b in &m.blocks {
        match b {
            Block::Para(p) => body.push(block(vec![run(&truncate(p, 1_000))])),
            Block::Warn(p) => body.push(json!({"type": "RichTextBlock", "inlines": [
                {"type": "TextRun", "text": truncate(p, 1_000), "color": "Attention", "weight": "Bolder"}
            ]})),
            Block::Chart { title, bars } => {
                body.push(json!({"type": "RichTextBlock", "separator": true, "inlines": [bold(title)]}));
                for bar in bars.iter().take(MAX_CARD_LINES) {
                    let mut inlines = vec![
                        bold(&bar.value.to_string()),
                        run(&format!("  {}", truncate(&bar.label, 160))),
                    ];
                    if !bar.note.is_empty() {
                        inlines.push(json!({"type": "TextRun", "text": format!("  {}", bar.note), "isSubtle": true}));
                    }
                    body.push(json!({"type": "RichTextBlock", "spacing": "Small", "inlines": inlines}));
                }
                if bars.len() > MAX_CARD_LINES {
                    body.push(block(vec![run(&format!(
                        "… and {} more in the email and `report`",
                        bars.len() - MAX_CARD_LINES
                    ))]));
                }
            }
            Block::Links(links) => {
                for (label, url) in links.iter().take(MAX_CARD_LINES) {
                    body.push(json!({"type": "RichTextBlock", "spacing": "Small", "inlines": [
                        run(&format!("{label}: ")),
                        {"type": "TextRun", "text": "I'll take it", "weight": "Bolder", "color": "Accent",
                         "selectAction": {"type": "Action.OpenUrl", "url": url}}
                    ]}));
                }
                if links.len() > MAX_CARD_LINES {
                    body.push(block(vec![run(&format!(
                        "… and {} more in the email",
                        links.len() - MAX_CARD_LINES
                    ))]));
                }
            }
        }
    }
    crate::notify::teams::card(body)
}

fn slack(m: &Message) -> Value {
    let plain = |text: &str, max: usize| json!({"type": "plain_text", "text": truncate(text, max), "emoji": false});
    let mut blocks = vec![json!({"type": "header", "text": plain(&m.heading, 150)})];
    for b in &m.blocks {
        let text = match b {
            Block::Para(p) => p.clone(),
            Block::Warn(p) => format!("⚠ {p}"),
            Block::Chart { title, bars } => {
                let mut lines = vec![title.clone()];
                for bar in bars.iter().take(MAX_CARD_LINES) {
                    let note = if bar.note.is_empty() {
                        String::new()
                    } else {
                        format!("  ({})", bar.note)
                    };
                    lines.push(format!(
                        "{:>5}  {}{note}",
                        bar.value,
                        truncate(&bar.label, 120)
                    ));
                }
                if bars.len() > MAX_CARD_LINES {
                    lines.push(format!("… and {} more", bars.len() - MAX_CARD_LINES));
                }
                lines.join("\n")
            }
            Block::Links(links) => {
                // Buttons: the link is never mrkdwn text.
                for (label, url) in links.iter().take(MAX_CARD_LINES) {
                    blocks.push(json!({"type": "section", "text": plain(label, 150),
                        "accessory": {"type": "button", "text": plain("I'll take it", 75), "url": url}}));
                }
                if links.len() <= MAX_CARD_LINES {
                    continue;
                }
                format!("… and {} more in the email", links.len() - MAX_CARD_LINES)
            }
        };
        blocks.push(json!({"type": "section", "text": plain(&text, 3_000)}));
    }
    blocks.truncate(50);
    Value::Array(blocks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Move, Report, Row};
    use crate::summary::Flow;
    use std::time::Duration;
    use time::macros::datetime;

    fn row(offer_id: &str, offer: &str, code: &str, action: &str, leads: u64) -> Row {
        Row {
            offer_id: offer_id.into(),
            offer: offer.into(),
            action: action.into(),
            action_code: code.into(),
            leads,
            alerted: leads,
            ..Row::default()
        }
    }

    fn report(rows: Vec<Row>) -> Report {
        let leads = rows.iter().map(|r| r.leads).sum();
        Report {
            since: String::new(),
            until: String::new(),
            rows,
            moves: vec![],
            total: Row {
                leads,
                alerted: leads,
                skipped: [("test_lead".to_owned(), 1)].into(),
                failed: 1,
                ..Row::default()
            },
            validations: vec!["2026-12-02T09:30:00.0000000Z".into()],
        }
    }

    fn sample() -> Summary {
        let mut now = report(vec![
            row("c.crm", "Contoso <CRM>", "INS", "Get it now", 12),
            row("c.erp", "Contoso ERP", "PLT", "Contact me", 3),
        ]);
        now.moves = vec![Move {
            offer_id: "c.crm".into(),
            offer: "Contoso <CRM>".into(),
            from: "Get it now".into(),
            to: "Contact me".into(),
            customers: 2,
        }];
        Summary {
            from: datetime!(2026-11-30 07:00 UTC),
            until: datetime!(2026-12-07 07:00 UTC),
            report: now,
            before: report(vec![row("c.crm", "Contoso <CRM>", "INS", "Get it now", 9)]),
            flow: Flow {
                last_lead: Some(datetime!(2026-12-06 10:00 UTC)),
                silence_after: Some(Duration::from_secs(7 * 86_400)),
                now: Some(datetime!(2026-12-07 07:01 UTC)),
            },
            table: "MarketplaceLeads".into(),
            takes_on: false,
        }
    }

    #[test]
    fn takes_and_time_to_take_show_where_leads_can_be_taken() {
        let mut s = sample();
        assert!(!summary(&s).text.contains("Taken:"));
        s.takes_on = true;
        s.report.total.alerted = 15;
        s.report.total.taken = 9;
        (s.report.total.take_median_s, s.report.total.take_p90_s) = (Some(1_800), Some(4 * 3600));
        let plain = summary(&s).text;
        assert!(
            plain.contains("Taken: 9 of 15 alerted lead(s); half within 30 minutes, nine in ten within 4 hours of the first alert."),
            "{plain}"
        );
    }

    #[test]
    fn every_channel_carries_the_figures_and_changes() {
        let notice = sample().notice();
        assert_eq!(notice.id, "summary|2026-12-07T07:00:00.0000000Z");
        assert!(
            notice.subject.contains("2026-11-30 to 2026-12-07: 15 (+6"),
            "{}",
            notice.subject
        );
        for part in [&notice.text, &notice.html] {
            assert!(part.contains("+3 (9 before)"), "{part}");
            assert!(part.contains("new (0 before)"), "{part}");
            assert!(
                part.contains("validated on 2026-12-02 09:30:00 UTC"),
                "{part}"
            );
            assert!(part.contains("Partner Center test lead"), "{part}");
        }
        assert!(
            notice.text.contains("Contoso <CRM> · Get it now"),
            "{}",
            notice.text
        );
        assert!(
            notice.html.contains("Contoso &lt;CRM&gt;"),
            "{}",
            notice.html
        );
        assert!(!notice.html.contains("<CRM>"));
        for forbidden in ["<script", "<img", "https://"] {
            assert!(!notice.html.contains(forbidden), "{forbidden}");
        }
        // Bars are table cells with widths: 12 of 12 full, 3 of 12 a quarter.
        assert!(
            notice.html.contains("width=\"100%\" height=\"10\""),
            "{}",
            notice.html
        );
        assert!(
            notice.html.contains("width=\"25%\" height=\"10\""),
            "{}",
            notice.html
        );
        let card = notice.teams_card.to_string();
        assert!(card.contains("Contoso <CRM> · Get it now"), "{card}");
        assert!(
            !card.contains("\"type\":\"TextBlock\""),
            "offer names never in Markdown: {card}"
        );
        assert!(card.len() < 26 * 1024);
        let slack = notice.slack_blocks.to_string();
        assert!(slack.contains("+3 (9 before)"), "{slack}");
        assert!(!slack.contains("mrkdwn"), "{slack}");
    }

    /// 300 offers with 200-character names (four bytes a character) and
    /// actions Microsoft did not document, whose wording is the lead's own
    /// text: the chat cards stay within Teams' 28 KB and Slack's limits.
    #[test]
    fn cards_stay_within_limits_with_many_long_offers_and_actions() {
        let name = |i: usize| format!("{i:03}{}", "\u{1F600}".repeat(197));
        let action = |i: usize| format!("X{i}{}", "\u{1F4A1}".repeat(2_000));
        let rows: Vec<Row> = (0..300)
            .map(|i| row(&format!("o{i}"), &name(i), &format!("X{i}"), &action(i), 1))
            .collect();
        let mut s = sample();
        s.report = report(rows.clone());
        s.report.moves = (0..300)
            .map(|i| Move {
                offer_id: format!("o{i}"),
                offer: name(i),
                from: action(i),
                to: action(i + 1),
                customers: 1,
            })
            .collect();
        s.before = report(rows);
        let notice = s.notice();
        let card = serde_json::to_vec(&notice.teams_card).unwrap().len();
        assert!(card < 26 * 1024, "Teams card of {card} bytes");
        let blocks = notice.slack_blocks.as_array().unwrap();
        assert!(blocks.len() <= 50);
        for block in blocks {
            let text = block["text"]["text"].as_str().unwrap_or_default();
            assert!(text.chars().count() <= 3_000, "{}", text.len());
        }
    }

    #[test]
    fn a_silent_flow_is_a_warning_in_the_summary_and_its_own_note() {
        let mut s = sample();
        s.flow.now = Some(datetime!(2026-12-14 07:00 UTC));
        let notice = s.notice();
        assert!(
            notice.text.contains("WARNING: lead flow: no lead written"),
            "{}",
            notice.text
        );
        let note = HealthNote::Silent {
            last: datetime!(2026-12-06 10:00 UTC),
            silence_after: Duration::from_secs(7 * 86_400),
        }
        .notice("MarketplaceLeads");
        assert_eq!(note.id, "lead-flow-silent|2026-12-06T10:00:00.0000000Z");
        assert!(
            note.text.contains("since 2026-12-06 10:00:00 UTC"),
            "{}",
            note.text
        );
        assert!(note.text.contains("Customer leads"), "{}", note.text);
        assert!(note.text.contains("connection string"), "{}", note.text);
        assert!(
            note.text.contains("table MarketplaceLeads"),
            "{}",
            note.text
        );
    }
}
