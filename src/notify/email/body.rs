//! The two bodies of an alert email: plain text and HTML. Both carry every
//! field; the HTML is built with maud, which escapes all lead text, and is
//! laid out with tables, which every client including Outlook honours.
//!
//! Every repeated element's look is a class defined once in the head. A
//! single alert also carries it inline, for clients that drop a head's
//! styles; a digest does not: inline, the same few declarations on every
//! cell made up 80 % of a 500-lead digest (3.2 MB of HTML, and the SMTP
//! client holds the message twice). A client that drops the head shows a
//! digest's tables plain, with every field still there.

use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::lead::Lead;
use crate::notify::Alert;
use crate::text::{self, Field, FieldKind, Limits};

/// Email has room for everything; the caps only stop absurd rows from
/// producing absurd messages.
const LIMITS: Limits = Limits {
    field: 1_000,
    long: 20_000,
};
const RAW_CUSTOMER_MAX: usize = 5_000;

const FOOTER: &str = "Sent by lead-notifier from your commercial marketplace lead table. \
Each lead is alerted once; the lead keys identify it in the table.";

/// Subject line of an alert.
pub fn subject(alert: Alert<'_>) -> String {
    match alert {
        Alert::Lead(lead) => text::lead_subject(lead),
        Alert::Digest { leads, total } => text::digest_subject(leads, total),
        Alert::Notice(notice) => text::one_line(&notice.subject),
    }
}

fn summary(lead: &Lead) -> String {
    match text::who(lead) {
        Some(who) => format!("{} — {}", text::truncate(&who, 200), text::activity(lead)),
        None => text::activity(lead),
    }
}

/// The plain-text part.
pub fn render_text(alert: Alert<'_>) -> String {
    if let Alert::Notice(notice) = alert {
        return notice.text.clone();
    }
    let mut out = String::new();
    match alert {
        Alert::Lead(lead) => {
            out.push_str(&format!("New lead: {}\n", text::offer(lead)));
            out.push_str(&summary(lead));
            out.push_str("\n\n");
            lead_text(&mut out, lead);
        }
        Alert::Digest { leads, total } => {
            out.push_str(&text::digest_subject(leads, total));
            out.push_str("\n\n");
            count_text(&mut out, "By offer", &text::by_offer(leads));
            count_text(&mut out, "By action", &text::by_action(leads));
            for (i, lead) in leads.iter().enumerate() {
                out.push_str(&format!(
                    "----------------------------------------\n{}. {}\n{}\n\n",
                    i + 1,
                    text::offer(lead),
                    summary(lead)
                ));
                lead_text(&mut out, lead);
            }
        }
        Alert::Notice(_) => {}
    }
    out.push_str("--\n");
    out.push_str(FOOTER);
    out.push('\n');
    out
}

fn count_text(out: &mut String, title: &str, counts: &[(String, usize)]) {
    out.push_str(title);
    out.push_str(":\n");
    for (name, n) in counts {
        out.push_str(&format!("  {n:>4}  {name}\n"));
    }
    out.push('\n');
}

fn lead_text(out: &mut String, lead: &Lead) {
    if let Some(history) = text::history(lead, text::HISTORY_SHOWN) {
        out.push_str(&format!("{}\n", history.status));
        for line in &history.earlier {
            out.push_str(&format!("  - {line}\n"));
        }
        if let Some(more) = &history.more {
            out.push_str(&format!("  {more}\n"));
        }
        out.push('\n');
    }
    if let Some((warning, raw)) = text::customer_problem(lead, RAW_CUSTOMER_MAX) {
        out.push_str(&format!("WARNING: {warning}\n"));
        if let Some(raw) = raw {
            out.push_str("Raw customer details as received:\n");
            for line in raw.lines() {
                out.push_str(&format!("  {line}\n"));
            }
        }
        out.push('\n');
    }
    for field in text::fields(lead, LIMITS) {
        if field.kind == FieldKind::Long {
            out.push_str(&format!("{}:\n", field.label));
            for line in field.value.lines() {
                out.push_str(&format!("  {line}\n"));
            }
        } else {
            out.push_str(&format!(
                "{:<13}{}\n",
                format!("{}:", field.label),
                field.value
            ));
        }
    }
    if let Some(link) = text::reply_link(lead) {
        out.push_str(&format!("\nReply: {link}\n"));
    }
    if let Some(link) = &lead.take_url {
        out.push_str(&format!("I'll take it: {link}\n"));
    }
    out.push('\n');
}

macro_rules! font {
    () => {
        "font-family:'Segoe UI',Arial,Helvetica,sans-serif;"
    };
}

/// One repeated element's look: a class in the head, inline where the
/// [`Look`] asks for it.
#[derive(Clone, Copy)]
struct Style {
    class: &'static str,
    css: &'static str,
}

const LEAD_TITLE: Style = Style {
    class: "t",
    css: concat!(
        "padding:20px 24px 0 24px;font-size:16px;font-weight:bold;color:#0f6cbd;",
        font!()
    ),
};
const SUMMARY: Style = Style {
    class: "s",
    css: concat!("padding:12px 24px 0 24px;font-size:15px;", font!()),
};
const HISTORY: Style = Style {
    class: "h",
    css: concat!("padding:12px 24px 0 24px;", font!()),
};
const FIELDS: Style = Style {
    class: "f",
    css: "padding:8px 24px 0 24px;",
};
const LABEL: Style = Style {
    class: "l",
    css: concat!(
        "padding:6px 12px 6px 0;width:130px;vertical-align:top;color:#4b5563;border-bottom:1px solid #e5e7eb;",
        font!()
    ),
};
const VALUE: Style = Style {
    class: "v",
    css: concat!(
        "padding:6px 0;vertical-align:top;color:#111827;border-bottom:1px solid #e5e7eb;",
        font!()
    ),
};
const MAIL_LINK: Style = Style {
    class: "m",
    css: "color:#0f6cbd;",
};
const REPLY_ROW: Style = Style {
    class: "r",
    css: "padding:16px 24px 0 24px;",
};
const BUTTON: Style = Style {
    class: "b",
    css: "background-color:#0f6cbd;padding:8px 16px;",
};
const BUTTON_LINK: Style = Style {
    class: "bl",
    css: concat!(
        "color:#ffffff;text-decoration:none;font-weight:bold;",
        font!()
    ),
};
const STYLES: [Style; 10] = [
    LEAD_TITLE,
    SUMMARY,
    HISTORY,
    FIELDS,
    LABEL,
    VALUE,
    MAIL_LINK,
    REPLY_ROW,
    BUTTON,
    BUTTON_LINK,
];

/// Whether styles are repeated inline or left to the head's classes.
#[derive(Clone, Copy)]
enum Look {
    Inline,
    Classes,
}

impl Look {
    fn inline(self, style: Style) -> Option<&'static str> {
        match self {
            Look::Inline => Some(style.css),
            Look::Classes => None,
        }
    }
}

fn stylesheet() -> String {
    STYLES
        .iter()
        .map(|s| format!(".{}{{{}}}", s.class, s.css))
        .collect()
}

/// The HTML part.
pub fn render_html(alert: Alert<'_>) -> String {
    if let Alert::Notice(notice) = alert {
        return notice.html.clone();
    }
    let title = subject(alert);
    let page = html! {
        (DOCTYPE)
        html {
            head {
                meta http-equiv="Content-Type" content="text/html; charset=utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(stylesheet())) }
            }
            body style="margin:0;padding:0;background-color:#f3f4f6;" {
                table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="background-color:#f3f4f6;" {
                    tr { td align="center" style="padding:24px 12px;" {
                        table role="presentation" width="640" cellpadding="0" cellspacing="0" border="0"
                            style=(concat!("width:640px;max-width:640px;background-color:#ffffff;border:1px solid #d1d5db;font-size:14px;color:#111827;", font!())) {
                            // Written straight into the page: a digest's content
                            // built apart and copied in was held twice (1 MB each).
                            @match alert {
                                Alert::Lead(lead) => {
                                    (heading(&format!("New lead: {}", text::offer(lead))))
                                    (lead_html(lead, Look::Inline))
                                }
                                Alert::Digest { leads, total } => {
                                    (heading(&text::digest_subject(leads, total)))
                                    tr { td style="padding:16px 24px 0 24px;" {
                                        (counts_html("By offer", &text::by_offer(leads)))
                                        (counts_html("By action", &text::by_action(leads)))
                                    } }
                                    @for (i, lead) in leads.iter().enumerate() {
                                        tr { td class=(LEAD_TITLE.class) {
                                            (i + 1) ". " (text::offer(lead))
                                        } }
                                        (lead_html(lead, Look::Classes))
                                    }
                                }
                                Alert::Notice(_) => {}
                            }
                            tr { td style=(concat!("padding:20px 24px;font-size:12px;color:#6b7280;", font!())) { (FOOTER) } }
                        }
                    } }
                }
            }
        }
    };
    page.into_string()
}

fn heading(title: &str) -> Markup {
    html! {
        tr { td style=(concat!("padding:16px 24px;background-color:#0f6cbd;color:#ffffff;font-size:20px;font-weight:bold;", font!())) {
            (title)
        } }
    }
}

fn counts_html(title: &str, counts: &[(String, usize)]) -> Markup {
    html! {
        p style=(concat!("margin:0 0 6px 0;font-weight:bold;", font!())) { (title) }
        table role="presentation" cellpadding="0" cellspacing="0" border="0" style="margin:0 0 12px 0;" {
            @for (name, n) in counts {
                tr {
                    td align="right" style=(concat!("padding:2px 12px 2px 0;", font!())) { (n) }
                    td style=(concat!("padding:2px 0;", font!())) { (name) }
                }
            }
        }
    }
}

fn lead_html(lead: &Lead, look: Look) -> Markup {
    let reply = text::reply_link(lead);
    html! {
        tr { td class=(SUMMARY.class) style=[look.inline(SUMMARY)] { (summary(lead)) } }
        @if let Some(history) = text::history(lead, text::HISTORY_SHOWN) {
            tr { td class=(HISTORY.class) style=[look.inline(HISTORY)] {
                strong { (history.status) }
                @for line in &history.earlier {
                    br; "• " (line)
                }
                @if let Some(more) = &history.more {
                    br; (more)
                }
            } }
        }
        @if let Some((warning, raw)) = text::customer_problem(lead, RAW_CUSTOMER_MAX) {
            tr { td style="padding:12px 24px 0 24px;" {
                table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" {
                    tr { td style=(concat!("padding:10px 12px;background-color:#fff4ce;border:1px solid #f2c94c;", font!())) {
                        strong { (warning) }
                        @if let Some(raw) = raw {
                            br; "Raw customer details as received:" br;
                            span style="font-family:Consolas,'Courier New',monospace;font-size:12px;" { (lines(&raw)) }
                        }
                    } }
                }
            } }
        }
        tr { td class=(FIELDS.class) style=[look.inline(FIELDS)] {
            table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" {
                @for field in text::fields(lead, LIMITS) {
                    tr {
                        td class=(LABEL.class) style=[look.inline(LABEL)] { (field.label) }
                        td class=(VALUE.class) style=[look.inline(VALUE)] { (field_value(&field, reply.as_deref(), look)) }
                    }
                }
            }
        } }
        @if reply.is_some() || lead.take_url.is_some() {
            tr { td class=(REPLY_ROW.class) style=[look.inline(REPLY_ROW)] {
                table role="presentation" cellpadding="0" cellspacing="0" border="0" {
                    tr {
                        @if let Some(link) = &reply {
                            td class=(BUTTON.class) style=[look.inline(BUTTON)] {
                                a href=(link) class=(BUTTON_LINK.class) style=[look.inline(BUTTON_LINK)] { "Reply to the customer" }
                            }
                        }
                        @if let Some(link) = &lead.take_url {
                            @if reply.is_some() { td width="12" { } }
                            td class=(BUTTON.class) style=[look.inline(BUTTON)] {
                                a href=(link) class=(BUTTON_LINK.class) style=[look.inline(BUTTON_LINK)] { "I'll take it" }
                            }
                        }
                    }
                }
            } }
        }
    }
}

fn field_value(field: &Field, reply: Option<&str>, look: Look) -> Markup {
    match (field.kind, reply) {
        (FieldKind::Email, Some(link)) => {
            html! { a href=(link) class=(MAIL_LINK.class) style=[look.inline(MAIL_LINK)] { (field.value) } }
        }
        (FieldKind::Long, _) => lines(&field.value),
        _ => html! { (field.value) },
    }
}

/// Line breaks as `<br>`: Outlook does not honour `white-space: pre-wrap`.
fn lines(value: &str) -> Markup {
    html! {
        @for (i, line) in value.lines().enumerate() {
            @if i > 0 { br; }
            (line)
        }
    }
}
