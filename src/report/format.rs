//! The report as a table for people, CSV for spreadsheets, JSON for tools.

use super::{Report, Row};
use crate::lead::SkipReason;
use crate::notify::text::{format_time, truncate};
use crate::source::parse_timestamp;

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

/// The CSV columns, in order: a contract with whoever imports the file.
pub const CSV_HEADER: &str = "offer_id,offer,action,leads,alerted,skipped,customers";

impl Report {
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Table => self.table(),
            Format::Csv => self.csv(),
            Format::Json => serde_json::to_string_pretty(self).unwrap_or_default() + "\n",
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
        ];
        let mut lines: Vec<[String; 7]> = vec![header.map(str::to_owned)];
        lines.extend(self.rows.iter().map(cells));
        lines.push(cells(&self.total));
        let widths: Vec<usize> = (0..7)
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
                out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * 6));
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

fn cells(row: &Row) -> [String; 7] {
    [
        truncate(&row.offer, 40),
        truncate(&row.offer_id, 40),
        truncate(&row.action, 30),
        row.leads.to_string(),
        row.alerted.to_string(),
        row.skipped_total().to_string(),
        row.customers.to_string(),
    ]
}

/// RFC 4180: quoted when it holds a comma, quote or line break. A leading
/// `=`, `+` or `@` is neutralised so a spreadsheet does not run it.
fn csv_field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '@']) {
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
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_neutralised() {
        assert_eq!(csv_field("Contoso CRM"), "Contoso CRM");
        assert_eq!(csv_field("CRM, \"Pro\""), "\"CRM, \"\"Pro\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
    }
}
