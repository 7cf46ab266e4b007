//! The report as one self-contained web page: inline SVG bar charts and the
//! same tables as the text form. No scripts, no images, no style sheets or
//! fonts from elsewhere: it opens offline, in a mail attachment or a file
//! share, and prints on paper (the print styles drop the colours that do
//! not print).

use maud::{html, Markup, DOCTYPE};

use super::{Report, Row};
use crate::lead::SkipReason;
use crate::storage::parse_timestamp;
use crate::text::{format_time, truncate};

/// Readable from a phone's 375 px up to a desktop, and on A4.
const STYLE: &str = "\
body{font-family:-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;\
margin:0 auto;padding:16px;max-width:960px;color:#1b1b1b;line-height:1.4}\
h1{font-size:1.4em;margin:0 0 4px}h2{font-size:1.1em;margin:24px 0 8px}\
.period{color:#555;margin:0 0 16px}\
.bar-row{margin:6px 0}.bar-label{display:flex;justify-content:space-between;gap:8px;font-size:.9em}\
.bar-label span:first-child{overflow-wrap:anywhere}.bar-label span:last-child{white-space:nowrap}\
svg.bar{display:block;width:100%;height:14px}\
.table-wrap{overflow-x:auto}\
table{border-collapse:collapse;width:100%;font-size:.9em}\
th,td{border-bottom:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top}\
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}\
tr.total td{font-weight:bold;border-top:2px solid #1b1b1b}\
footer{margin-top:24px;color:#666;font-size:.8em}\
@media (max-width:600px){.id{display:none}}\
@media print{body{max-width:none;padding:0}.table-wrap{overflow:visible}\
rect.fill{fill:#000}section{break-inside:avoid}}";

/// Colours of the bars: the leads, and the part of them alerted.
const LEADS_FILL: &str = "#9ec5e8";
const ALERTED_FILL: &str = "#0f6cbd";

impl Report {
    /// The whole page.
    pub fn html(&self) -> String {
        let when = |t: &str| parse_timestamp(t).map_or_else(|| t.to_owned(), format_time);
        let period = format!("{} to {}", when(&self.since), when(&self.until));
        let page = html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { "Marketplace leads, " (period) }
                    style { (STYLE) }
                }
                body {
                    h1 { "Marketplace leads" }
                    p.period { (period) }
                    (self.body())
                    footer {
                        "Made by lead-notifier report from the lead table and its delivery \
                         ledger. Customers are counted, never named."
                    }
                }
            }
        };
        page.into_string()
    }

    /// Everything below the heading: charts, then the tables.
    pub fn body(&self) -> Markup {
        if self.rows.is_empty() {
            return html! { p { "No leads in this period." } };
        }
        let most = self.rows.iter().map(|r| r.leads).max().unwrap_or(0);
        html! {
            section {
                h2 { "Leads per offer and action" }
                p { (self.total.leads) " lead(s), " (self.total.alerted) " alerted, "
                    (self.total.skipped_total()) " not alerted on purpose, "
                    (self.total.customers) " distinct customer(s)." }
                @for at in &self.validations {
                    p { "Partner Center connection validated on "
                        (parse_timestamp(at).map_or_else(|| at.clone(), format_time)) "." }
                }
                @for row in &self.rows {
                    (bar(&format!("{} · {}", truncate(&row.offer, 80), row.action), row, most))
                }
            }
            section {
                h2 { "The figures" }
                div.table-wrap { (self.figures()) }
            }
            @if !self.total.skipped.is_empty() {
                section {
                    h2 { "Not alerted on purpose" }
                    table {
                        thead { tr { th { "reason" } th.n { "leads" } } }
                        tbody {
                            @for (reason, n) in &self.total.skipped {
                                tr {
                                    td { (SkipReason::from_code(reason).map_or(reason.as_str(), |r| r.describe())) }
                                    td.n { (n) }
                                }
                            }
                        }
                    }
                }
            }
            @if self.total.pending + self.total.failed > 0 {
                section {
                    h2 { "Not alerted yet" }
                    p { (self.total.pending) " still owed, " (self.total.failed) " given up." }
                }
            }
            @if !self.moves.is_empty() {
                section {
                    h2 { "Customers who moved on to another action" }
                    table {
                        thead { tr { th { "offer" } th { "from" } th { "to" } th.n { "customers" } } }
                        tbody {
                            @for m in &self.moves {
                                tr {
                                    td { (truncate(&m.offer, 80)) }
                                    td { (m.from) }
                                    td { (m.to) }
                                    td.n { (m.customers) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    fn figures(&self) -> Markup {
        html! {
            table {
                thead {
                    tr {
                        th { "offer" } th.id { "offer id" } th { "action" }
                        th.n { "leads" } th.n { "alerted" } th.n { "skipped" } th.n { "customers" }
                    }
                }
                tbody {
                    @for row in &self.rows { (figure_row(row, "")) }
                    (figure_row(&self.total, "total"))
                }
            }
        }
    }
}

fn figure_row(row: &Row, class: &str) -> Markup {
    html! {
        tr class=[(!class.is_empty()).then_some(class)] {
            td { (truncate(&row.offer, 80)) }
            td.id { (truncate(&row.offer_id, 80)) }
            td { (row.action) }
            td.n { (row.leads) }
            td.n { (row.alerted) }
            td.n { (row.skipped_total()) }
            td.n { (row.customers) }
        }
    }
}

/// One bar: the label and figure above, the bar below, as wide as the page
/// allows (the SVG stretches; its height stays put).
fn bar(label: &str, row: &Row, most: u64) -> Markup {
    let width = |n: u64| {
        if most == 0 {
            0.0
        } else {
            n as f64 * 100.0 / most as f64
        }
    };
    html! {
        div.bar-row {
            div.bar-label {
                span { (label) }
                span { (row.leads) " / " (row.alerted) " alerted" }
            }
            svg.bar viewBox="0 0 100 10" preserveAspectRatio="none" role="img"
                aria-label=(format!("{label}: {} leads, {} alerted", row.leads, row.alerted)) {
                rect x="0" y="0" width="100" height="10" fill="#f0f0f0" {}
                rect.fill x="0" y="0" width=(format!("{:.2}", width(row.leads))) height="10" fill=(LEADS_FILL) {}
                rect.fill x="0" y="0" width=(format!("{:.2}", width(row.alerted))) height="10" fill=(ALERTED_FILL) {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::report::format::tests::report;

    #[test]
    fn the_page_is_self_contained_escaped_and_complete() {
        let mut r = report();
        r.rows[0].offer = "Contoso <CRM> & \"Pro\"".into();
        let page = r.html();
        assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
        for forbidden in ["<script", "http://", "https://", "<img", "<link", "url("] {
            assert!(!page.contains(forbidden), "{forbidden} in {page}");
        }
        assert!(
            page.contains("Contoso &lt;CRM&gt; &amp; &quot;Pro&quot;"),
            "{page}"
        );
        assert!(!page.contains("<CRM>"), "{page}");
        assert!(page.contains("Contoso ERP"), "{page}");
        // Bars in proportion to the largest row.
        assert!(page.contains("width=\"100.00\""), "{page}");
        assert!(page.contains("width=\"25.00\""), "{page}");
        assert!(page.contains("<td class=\"n\">12</td>"), "{page}");
        assert!(page.contains("repeat of the same customer"), "{page}");
        assert!(page.contains("Get it now</td><td>Contact me"), "{page}");
        assert!(page.contains("@media print"), "{page}");
    }

    #[test]
    fn an_empty_period_says_so() {
        let mut r = report();
        r.rows.clear();
        assert!(r.html().contains("No leads in this period."));
    }
}
