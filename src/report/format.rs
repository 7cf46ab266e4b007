//! The report as a table for people, CSV for spreadsheets, JSON for tools.

use super::{Report, Row};
use crate::lead::SkipReason;
use crate::storage::parse_timestamp;
use crate::text::{format_time, truncate};

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
    /// One self-contained web page with charts (see `html.rs`).
    Html,
}

/// The CSV columns, in order: a contract with whoever imports the file.
/// Columns are only ever appended.
pub const CSV_HEADER: &str =
    "offer_id,offer,action,leads,alerted,skipped,customers,taken,take_median_s,take_p90_s";

impl Report {
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Table => self.table(),
            Format::Csv => self.csv(),
            Format::Json => serde_json::to_string_pretty(self).unwrap_or_default() + "\n",
            Format::Html => self.html(),
        }
    }

    fn csv(&self) -> String {
        let mut out = String::from(CSV_HEADER);
        out.push_str("\r\n");
        for row in &self.rows {
            let fields = [
                csv_field(&row.offer_id),
                csv_field(&row.offer),
                csv_field(&row.action),
                row.leads.to_string(),
                row.alerted.to_string(),
                row.skipped_total().to_string(),
                row.customers.to_string(),
                row.taken.to_string(),
                row.take_median_s.map(|s| s.to_string()).unwrap_or_default(),
                row.take_p90_s.map(|s| s.to_string()).unwrap_or_default(),
            ];
            out.push_str(&fields.join(","));
            out.push_str("\r\n");
        }
        out
    }

    fn table(&self) -> String {
        let when = |t: &str| parse_timestamp(t).map_or_else(|| t.to_owned(), format_time);
        let mut out = format!(
            "Leads from {} to {}\n\n",
            when(&self.since),
            when(&self.until)
        );
        if self.rows.is_empty() {
            out.push_str("No leads in this period.\n");
            return out;
        }
        let header = [
            "offer",
            "offer id",
            "action",
            "leads",
            "alerted",
            "skipped",
            "customers",
            "taken",
            "median to take",
            "p90 to take",
        ];
        let mut lines: Vec<[String; COLUMNS]> = vec![header.map(str::to_owned)];
        lines.extend(self.rows.iter().map(cells));
        lines.push(cells(&self.total));
        let widths: Vec<usize> = (0..COLUMNS)
            .map(|i| {
                lines
                    .iter()
                    .map(|l| l[i].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for (n, line) in lines.iter().enumerate() {
            if n == lines.len() - 1 {
                out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * (COLUMNS - 1)));
                out.push('\n');
            }
            let padded: Vec<String> = line
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, (cell, &w))| {
                    let pad = " ".repeat(w - cell.chars().count());
                    // Text left, numbers right.
                    if i < 3 {
                        format!("{cell}{pad}")
                    } else {
                        format!("{pad}{cell}")
                    }
                })
                .collect();
            out.push_str(padded.join("  ").trim_end());
            out.push('\n');
        }
        if !self.total.skipped.is_empty() {
            out.push_str("\nSkipped:\n");
            for (reason, n) in &self.total.skipped {
                let words = SkipReason::from_code(reason).map_or(reason.as_str(), |r| r.describe());
                out.push_str(&format!("  {n:>6}  {words}\n"));
            }
        }
        if self.total.pending + self.total.failed > 0 {
            out.push_str(&format!(
                "\nNot alerted: {} still owed, {} given up\n",
                self.total.pending, self.total.failed
            ));
        }
        if !self.moves.is_empty() {
            out.push_str("\nCustomers who moved on to another action:\n");
            for m in &self.moves {
                out.push_str(&format!(
                    "  {:>6}  {}: {} → {}\n",
                    m.customers,
                    truncate(&m.offer, 60),
                    m.from,
                    m.to
                ));
            }
        }
        out
    }
}

const COLUMNS: usize = 10;

fn cells(row: &Row) -> [String; COLUMNS] {
    [
        truncate(&row.offer, 40),
        truncate(&row.offer_id, 40),
        truncate(&row.action, 30),
        row.leads.to_string(),
        row.alerted.to_string(),
        row.skipped_total().to_string(),
        row.customers.to_string(),
        row.taken.to_string(),
        readable(row.take_median_s),
        readable(row.take_p90_s),
    ]
}

/// `45s`, `4m 30s`, `2h 05m`, `3d 4h`; `-` when there is no figure.
fn readable(seconds: Option<u64>) -> String {
    let Some(s) = seconds else {
        return "-".to_owned();
    };
    match s {
        0..60 => format!("{s}s"),
        60..3_600 => format!("{}m {:02}s", s / 60, s % 60),
        3_600..86_400 => format!("{}h {:02}m", s / 3_600, s % 3_600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3_600),
    }
}

/// RFC 4180: quoted when it holds a comma, quote or line break. A leading
/// `=`, `+`, `-`, `@`, tab or carriage return (OWASP's list) is neutralised
/// so a spreadsheet does not run it: offer ids come from posted leads.
fn csv_field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if text.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    use crate::report::{Move, Report};

    /// Two offers, a move and skipped leads: the formats' test report.
    pub(in crate::report) fn report() -> Report {
        let row = |offer_id: &str, offer: &str, action: &str, n: u64| Row {
            offer_id: offer_id.into(),
            offer: offer.into(),
            action: action.into(),
            leads: n,
            alerted: n - 1,
            skipped: [("repeat".to_owned(), 1)].into(),
            customers: n - 1,
            ..Row::default()
        };
        Report {
            since: "2026-10-22T10:00:00.0000000Z".into(),
            until: "2026-11-21T10:00:00.0000000Z".into(),
            rows: vec![
                Row {
                    taken: 2,
                    take_median_s: Some(270),
                    take_p90_s: Some(7_500),
                    ..row("contoso.crm", "Contoso CRM, \"Pro\"", "Get it now", 12)
                },
                row("contoso.erp", "Contoso ERP", "Contact me", 3),
            ],
            moves: vec![Move {
                offer_id: "contoso.crm".into(),
                offer: "Contoso CRM".into(),
                from: "Get it now".into(),
                to: "Contact me".into(),
                customers: 4,
            }],
            total: Row {
                offer: "all offers".into(),
                action: "all actions".into(),
                ..row("", "", "", 15)
            },
            validations: Vec::new(),
        }
    }

    #[test]
    fn every_format_shows_the_same_counts() {
        let r = report();
        let table = r.render(Format::Table);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "Leads from 2026-10-22 10:00:00 UTC to 2026-11-21 10:00:00 UTC"
        );
        assert!(
            lines[2].starts_with("offer ")
                && lines[2].ends_with("customers  taken  median to take  p90 to take"),
            "{table}"
        );
        // Numbers are right-aligned under their headings.
        let end = lines[2].len();
        assert!(
            lines[3].ends_with("11      2          4m 30s       2h 05m") && lines[3].len() == end,
            "{table}"
        );
        assert!(
            lines[4].ends_with(" 2      0               -            -") && lines[4].len() == end,
            "{table}"
        );
        assert!(lines[5].starts_with("----"), "{table}");
        assert!(
            lines[6].starts_with("all offers") && lines[6].contains(" 14 "),
            "{table}"
        );
        assert!(
            table.contains("Skipped:\n       1  repeat of the same customer"),
            "{table}"
        );
        assert!(
            table.contains("       4  Contoso CRM: Get it now → Contact me"),
            "{table}"
        );

        assert_eq!(
            r.render(Format::Csv),
            "offer_id,offer,action,leads,alerted,skipped,customers,taken,take_median_s,take_p90_s\r\n\
             contoso.crm,\"Contoso CRM, \"\"Pro\"\"\",Get it now,12,11,1,11,2,270,7500\r\n\
             contoso.erp,Contoso ERP,Contact me,3,2,1,2,0,,\r\n"
        );
        let json: serde_json::Value = serde_json::from_str(&r.render(Format::Json)).unwrap();
        assert_eq!(json["rows"][1]["skipped"]["repeat"], 1);
        assert_eq!(json["total"]["leads"], 15);
        assert_eq!(json["moves"][0]["customers"], 4);
        assert_eq!(json["rows"][0]["take_median_s"], 270);
        assert_eq!(json["rows"][0]["take_p90_s"], 7_500);
        assert_eq!(json["rows"][1]["take_median_s"], serde_json::Value::Null);
    }

    #[test]
    fn csv_fields_are_quoted_and_formulas_neutralised() {
        assert_eq!(csv_field("Contoso CRM"), "Contoso CRM");
        assert_eq!(csv_field("CRM, \"Pro\""), "\"CRM, \"\"Pro\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(
            csv_field("-2+3+cmd|' /C calc'!A0"),
            "'-2+3+cmd|' /C calc'!A0"
        );
        assert_eq!(csv_field("\tSUM(1)"), "'\tSUM(1)");
    }
}
