//! CPU time per process from /proc, to tell which process a slow figure is
//! waiting for: the handler, Azurite or MailDev.

use std::process::Command;

/// Clock ticks per second of /proc's times (100 on every common Linux).
fn ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<f64>()
                .ok()
        })
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// User plus system CPU seconds `pid` has used so far.
pub fn seconds(pid: u32) -> Option<f64> {
    let usage = usage(pid)?;
    Some(usage.user + usage.system)
}

/// What `/proc/PID/stat` says a process has used so far.
pub struct Usage {
    pub user: f64,
    pub system: f64,
    /// Page faults served without I/O: fresh anonymous pages, mostly.
    pub minor_faults: u64,
}

pub fn usage(pid: u32) -> Option<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name in parentheses may hold spaces: fields start after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let minor_faults = fields.get(7)?.parse().ok()?;
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some(Usage {
        user: utime / ticks_per_second(),
        system: stime / ticks_per_second(),
        minor_faults,
    })
}

/// The process whose command line holds every one of `needles` as an
/// argument, other than proc.rs's `sh` wrapper that carries the same ones.
pub fn find(needles: &[&str]) -> Option<u32> {
    let entries = std::fs::read_dir("/proc").ok()?;
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = raw
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let wrapper = args
            .first()
            .is_some_and(|a| a == "sh" || a.ends_with("/sh"));
        if !wrapper && needles.iter().all(|n| args.iter().any(|a| a == n)) {
            return Some(pid);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_used_some_cpu_and_is_found() {
        let pid = std::process::id();
        assert!(seconds(pid).is_some_and(|s| s >= 0.0));
        assert_eq!(seconds(u32::MAX), None);
        let args: Vec<String> = std::env::args().collect();
        let needles: Vec<&str> = args.iter().map(String::as_str).take(1).collect();
        assert!(find(&needles).is_some());
    }
}
