//! The results table: each figure as median (min–max) of its runs, its
//! target and whether it is met; the machine it ran on; and the generated
//! section of BENCHMARKS.md.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

/// Where bench writes between these markers; the rest of BENCHMARKS.md is
/// written by hand.
const BEGIN: &str =
    "<!-- bench:begin (written by `cargo xtask bench`; edit outside these markers) -->";
const END: &str = "<!-- bench:end -->";

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Unit {
    Ms,
    Seconds,
    Count,
    PerSecond,
    /// 10^6 bytes.
    MB,
    Ratio,
}

impl Unit {
    fn show(self, value: f64) -> String {
        match self {
            Unit::Ms if value < 10.0 => format!("{value:.2} ms"),
            Unit::Ms => format!("{value:.1} ms"),
            Unit::Seconds => format!("{value:.2} s"),
            Unit::Count => format!("{value:.0}"),
            Unit::PerSecond => format!("{value:.0}/s"),
            Unit::MB => format!("{value:.1} MB"),
            Unit::Ratio => format!("{value:.2}×"),
        }
    }
}

/// An upper bound the median must stay under (or at).
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub limit: f64,
    /// `<` when false, `≤` when true.
    pub inclusive: bool,
}

pub fn below(limit: f64) -> Option<Target> {
    Some(Target {
        limit,
        inclusive: false,
    })
}

pub fn at_most(limit: f64) -> Option<Target> {
    Some(Target {
        limit,
        inclusive: true,
    })
}

pub struct Figure {
    pub name: String,
    pub unit: Unit,
    pub samples: Vec<f64>,
    pub target: Option<Target>,
}

impl Figure {
    /// Median of the samples; the mean of the middle two for an even count.
    pub fn median(&self) -> f64 {
        median(&self.samples)
    }

    fn met(&self) -> Option<bool> {
        let t = self.target?;
        let m = self.median();
        Some(if t.inclusive {
            m <= t.limit
        } else {
            m < t.limit
        })
    }
}

impl Figure {
    fn range(&self) -> (f64, f64) {
        self.samples
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            })
    }

    fn target_text(&self) -> String {
        self.target.map_or(String::new(), |t| {
            format!(
                "{} {}",
                if t.inclusive { "≤" } else { "<" },
                self.unit.show(t.limit)
            )
        })
    }

    fn verdict(&self) -> &'static str {
        match self.met() {
            Some(true) => "met",
            Some(false) => "**missed**",
            None => "",
        }
    }
}

pub fn median(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

#[derive(Default)]
pub struct Report {
    pub sections: Vec<(String, Vec<Figure>)>,
    pub notes: Vec<String>,
}

impl Report {
    pub fn section(&mut self, title: &str) {
        self.sections.push((title.to_owned(), Vec::new()));
    }

    pub fn add(&mut self, name: &str, unit: Unit, samples: Vec<f64>, target: Option<Target>) {
        if self.sections.is_empty() {
            self.section("Results");
        }
        if let Some((_, figures)) = self.sections.last_mut() {
            figures.push(Figure {
                name: name.to_owned(),
                unit,
                samples,
                target,
            });
        }
    }

    pub fn note(&mut self, line: String) {
        self.notes.push(line);
    }

    pub fn missed(&self) -> Vec<&Figure> {
        self.sections
            .iter()
            .flat_map(|(_, f)| f)
            .filter(|f| f.met() == Some(false))
            .collect()
    }

    /// The Markdown tables, one per section.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        for (title, figures) in &self.sections {
            let _ = writeln!(out, "#### {title}\n");
            let _ = writeln!(out, "| figure | median | min | max | runs | target | |");
            let _ = writeln!(out, "|---|---:|---:|---:|---:|---|---|");
            for f in figures {
                let (min, max) = f.range();
                let (target, verdict) = (f.target_text(), f.verdict());
                let (min, max) = if f.samples.len() > 1 {
                    (f.unit.show(min), f.unit.show(max))
                } else {
                    (String::new(), String::new())
                };
                let _ = writeln!(
                    out,
                    "| {} | {} | {min} | {max} | {} | {target} | {verdict} |",
                    f.name,
                    f.unit.show(f.median()),
                    f.samples.len()
                );
            }
            out.push('\n');
        }
        if !self.notes.is_empty() {
            for note in &self.notes {
                let _ = writeln!(out, "- {note}");
            }
            out.push('\n');
        }
        out
    }
}

/// The reports of several binaries (same figures, same order) as one table
/// per section, a column per binary; targets are judged on the first.
pub fn side_by_side(labels: &[&str], reports: &[&Report]) -> String {
    let Some(first) = reports.first() else {
        return String::new();
    };
    if reports.len() == 1 {
        return first.markdown();
    }
    let mut out = String::new();
    let cell = |f: Option<&Figure>| match f {
        None => String::new(),
        Some(f) if f.samples.len() > 1 => {
            let (min, max) = f.range();
            format!(
                "{} ({}–{})",
                f.unit.show(f.median()),
                f.unit.show(min),
                f.unit.show(max)
            )
        }
        Some(f) => f.unit.show(f.median()),
    };
    for (s, (title, figures)) in first.sections.iter().enumerate() {
        let _ = writeln!(out, "#### {title}\n");
        let _ = writeln!(out, "| figure | {} | runs | target | |", labels.join(" | "));
        let _ = writeln!(out, "|---|{}---:|---|---|", "---:|".repeat(labels.len()));
        for (i, f) in figures.iter().enumerate() {
            let cells: Vec<String> = reports
                .iter()
                .map(|r| cell(r.sections.get(s).and_then(|(_, fs)| fs.get(i))))
                .collect();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                f.name,
                cells.join(" | "),
                f.samples.len(),
                f.target_text(),
                f.verdict()
            );
        }
        out.push('\n');
    }
    for (label, report) in labels.iter().zip(reports) {
        for note in &report.notes {
            let _ = writeln!(out, "- {label}: {note}");
        }
    }
    if reports.iter().any(|r| !r.notes.is_empty()) {
        out.push('\n');
    }
    out
}

/// The machine, as far as a reader needs it to compare numbers.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown".to_owned(), |(_, v)| v.trim().to_owned());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or("unknown".to_owned(), |kib| {
            format!("{:.1} GiB", kib / 1024.0 / 1024.0)
        });
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let azurite =
        std::fs::read_to_string(crate::repo_root().join("node_modules/azurite/package.json"))
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .and_then(|v| v.get("version")?.as_str().map(str::to_owned))
            .unwrap_or_else(|| "unknown".to_owned());
    format!(
        "- nproc: {cores}; CPU: {cpu}; memory: {memory}; Linux {}\n- {}; Node.js {}; Azurite {azurite}\n",
        kernel.trim(),
        output("rustc", &["-V"]),
        output("node", &["--version"]),
    )
}

fn output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| format!("{program} unknown"))
}

/// Replaces the generated section of `path`, keeping everything written by
/// hand; appends the section when the markers are missing.
pub fn write_into(path: &Path, generated: &str) -> Result<()> {
    let existing = std::fs::read_to_string(path).unwrap_or_default();
    let section = format!("{BEGIN}\n\n{generated}\n{END}");
    let updated = match (existing.find(BEGIN), existing.find(END)) {
        (Some(start), Some(end)) if end > start => {
            format!(
                "{}{section}{}",
                &existing[..start],
                &existing[end + END.len()..]
            )
        }
        _ if existing.is_empty() => format!("# Benchmarks\n\n{section}\n"),
        _ => format!("{}\n\n{section}\n", existing.trim_end()),
    };
    std::fs::write(path, updated).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn targets_are_judged_on_the_median() {
        let mut report = Report::default();
        report.section("s");
        report.add("fast", Unit::Ms, vec![1.0, 100.0, 2.0], below(20.0));
        report.add("requests", Unit::Count, vec![3.0, 3.0, 3.0], at_most(3.0));
        report.add("slow", Unit::Ms, vec![30.0, 25.0, 10.0], below(20.0));
        let missed: Vec<&str> = report.missed().iter().map(|f| f.name.as_str()).collect();
        assert_eq!(missed, ["slow"]);
        let md = report.markdown();
        assert!(
            md.contains("| fast | 2.00 ms | 1.00 ms | 100.0 ms | 3 | < 20.0 ms | met |"),
            "{md}"
        );
        assert!(md.contains("| slow | 25.0 ms |"), "{md}");
        assert!(md.contains("**missed**"), "{md}");
    }

    #[test]
    fn binaries_stand_side_by_side_judged_on_the_first() {
        let report = |ms: [f64; 2]| {
            let mut r = Report::default();
            r.section("Backlog");
            r.add("wall", Unit::Seconds, vec![ms[0], ms[1]], below(10.0));
            r.add("requests", Unit::Count, vec![3.0], None);
            r
        };
        let (musl, glibc) = (report([12.0, 14.0]), report([2.0, 4.0]));
        let md = side_by_side(&["packaged musl", "glibc release"], &[&musl, &glibc]);
        assert!(
            md.contains("| figure | packaged musl | glibc release | runs | target | |"),
            "{md}"
        );
        assert!(
            md.contains("| wall | 13.00 s (12.00 s–14.00 s) | 3.00 s (2.00 s–4.00 s) | 2 | < 10.00 s | **missed** |"),
            "{md}"
        );
        assert!(md.contains("| requests | 3 | 3 | 1 |  |  |"), "{md}");
    }

    #[test]
    fn the_generated_section_is_replaced_in_place() {
        let dir = std::env::temp_dir().join(format!("xtask-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("BENCHMARKS.md");
        std::fs::write(&path, format!("intro\n\n{BEGIN}\nold\n{END}\n\nanalysis\n")).unwrap();
        write_into(&path, "new table\n").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("intro\n"), "{text}");
        assert!(text.contains("new table"), "{text}");
        assert!(!text.contains("old"), "{text}");
        assert!(text.trim_end().ends_with("analysis"), "{text}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
