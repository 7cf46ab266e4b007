//! `cargo xtask package`: the deployable function app.
//!
//! A static musl binary runs on every Functions Linux image whatever its glibc.
//! The zip stores the executable with mode 0755 because zip deploys have lost
//! the bit before.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use crate::{cargo, repo_root, say, step, target_dir};

const TARGET: &str = "x86_64-unknown-linux-musl";
const BINARY: &str = "lead-notifier";
const SETUP_HINT: &str = "the musl build needs `rustup target add x86_64-unknown-linux-musl` \
     and a musl C compiler for ring (Debian/Ubuntu: `apt-get install musl-tools`)";

/// The executable of the assembled app: what publishers deploy.
pub fn app_binary() -> PathBuf {
    target_dir().join("functionapp").join(BINARY)
}

/// One file of the app: where it comes from, its path inside the app, mode.
struct Entry {
    source: PathBuf,
    name: String,
    mode: u32,
}

pub fn run() -> Result<ExitCode> {
    warn_about_missing_setup();
    let status = step(
        &format!("cargo build --release --target {TARGET} --bin {BINARY}"),
        cargo().args(["build", "--release", "--target", TARGET, "--bin", BINARY]),
    )?;
    if !status.success() {
        bail!("release build failed; {SETUP_HINT}");
    }
    let entries = entries(&target_dir().join(TARGET).join("release").join(BINARY))?;
    let dir = target_dir().join("functionapp");
    assemble_dir(&dir, &entries)?;
    let zip_path = target_dir().join("functionapp.zip");
    write_zip(&zip_path, &entries)?;
    say(format!("function app in {}:", dir.display()));
    for entry in &entries {
        let size = fs::metadata(dir.join(&entry.name))?.len();
        say(format!(
            "  {:<28} {:>10}  {:o}",
            entry.name,
            human(size),
            entry.mode
        ));
    }
    say(format!(
        "zip: {} ({})",
        zip_path.display(),
        human(fs::metadata(&zip_path)?.len())
    ));
    Ok(ExitCode::SUCCESS)
}

/// The build would fail with a less helpful message; say what to install.
fn warn_about_missing_setup() {
    let has_compiler = ["x86_64-linux-musl-gcc", "musl-gcc"].iter().any(|c| {
        std::process::Command::new(c)
            .arg("--version")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok()
    });
    if !has_compiler && std::env::var_os(format!("CC_{}", TARGET.replace('-', "_"))).is_none() {
        say(format!("warning: no musl C compiler found; {SETUP_HINT}"));
    }
}

fn entries(binary: &Path) -> Result<Vec<Entry>> {
    let root = repo_root();
    let mut entries = vec![
        Entry {
            source: root.join("host.json"),
            name: "host.json".into(),
            mode: 0o644,
        },
        Entry {
            source: root.join("function.json"),
            name: "LeadNotifier/function.json".into(),
            mode: 0o644,
        },
    ];
    let webhook = root.join("webhook.function.json");
    if webhook.exists() {
        entries.push(Entry {
            source: webhook,
            name: "LeadWebhook/function.json".into(),
            mode: 0o644,
        });
    }
    // Anonymous: the signed token in each link is what lets a lead be taken.
    entries.push(Entry {
        source: root.join("take.function.json"),
        name: "LeadTake/function.json".into(),
        mode: 0o644,
    });
    entries.push(Entry {
        source: binary.to_path_buf(),
        name: BINARY.into(),
        mode: 0o755,
    });
    for entry in &entries {
        if !entry.source.is_file() {
            bail!("{} is missing", entry.source.display());
        }
    }
    Ok(entries)
}

fn assemble_dir(dir: &Path, entries: &[Entry]) -> Result<()> {
    // Start empty so a file dropped from the app does not linger in it.
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    for entry in entries {
        let dest = dir.join(&entry.name);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::copy(&entry.source, &dest).with_context(|| {
            format!(
                "cannot copy {} to {}",
                entry.source.display(),
                dest.display()
            )
        })?;
        fs::set_permissions(&dest, fs::Permissions::from_mode(entry.mode))?;
    }
    Ok(())
}

fn write_zip(path: &Path, entries: &[Entry]) -> Result<()> {
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut zip = ZipWriter::new(file);
    let mut dirs_added: Vec<String> = Vec::new();
    for entry in entries {
        if let Some((dir, _)) = entry.name.rsplit_once('/') {
            if !dirs_added.iter().any(|d| d == dir) {
                zip.add_directory(
                    format!("{dir}/"),
                    SimpleFileOptions::default().unix_permissions(0o755),
                )?;
                dirs_added.push(dir.to_string());
            }
        }
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .unix_permissions(entry.mode);
        zip.start_file(entry.name.as_str(), options)?;
        let bytes = fs::read(&entry.source)
            .with_context(|| format!("cannot read {}", entry.source.display()))?;
        zip.write_all(&bytes)?;
    }
    zip.finish()
        .with_context(|| format!("cannot finish {}", path.display()))?;
    Ok(())
}

fn human(bytes: u64) -> String {
    if bytes >= 1024 * 1024 {
        format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
    } else if bytes >= 1024 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_zip_keeps_the_executable_bit_and_the_folders() {
        let dir = std::env::temp_dir().join(format!("xtask-zip-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let file = |name: &str| {
            let path = dir.join(name);
            fs::write(&path, name).unwrap();
            path
        };
        let entries = [
            Entry {
                source: file("host.json"),
                name: "host.json".into(),
                mode: 0o644,
            },
            Entry {
                source: file("function.json"),
                name: "LeadNotifier/function.json".into(),
                mode: 0o644,
            },
            Entry {
                source: file("bin"),
                name: BINARY.into(),
                mode: 0o755,
            },
        ];
        let zip_path = dir.join("app.zip");
        write_zip(&zip_path, &entries).unwrap();
        let mut archive = zip::ZipArchive::new(File::open(&zip_path).unwrap()).unwrap();
        let mut found = Vec::new();
        for i in 0..archive.len() {
            let entry = archive.by_index(i).unwrap();
            found.push((
                entry.name().to_string(),
                entry.unix_mode().map(|m| m & 0o777),
            ));
        }
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            found,
            [
                ("host.json".to_string(), Some(0o644)),
                ("LeadNotifier/".to_string(), Some(0o755)),
                ("LeadNotifier/function.json".to_string(), Some(0o644)),
                (BINARY.to_string(), Some(0o755)),
            ]
        );
    }
}
