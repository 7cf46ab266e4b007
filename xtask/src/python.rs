//! Python packages the tests check against (an independent implementation
//! of Standard Webhooks; an independent Bicep parser and checkov's policy
//! checks for infra/), installed into target/ so nothing touches the system
//! Python (Debian's PEP 668 forbids that; `--target` is allowed).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{step, target_dir};

/// Pinned: the signatures and templates are checked against exactly these.
/// checkov parses Bicep with the pycep-parser it pins (0.5.1), so the
/// templates are held to that parser too.
const PACKAGES: [&str; 3] = [
    "standardwebhooks==1.1.0",
    "checkov==3.3.30",
    "pycep-parser==0.5.1",
];

/// Installs [`PACKAGES`] unless present; returns the folder for PYTHONPATH.
pub fn ensure_packages() -> Result<PathBuf> {
    let dir = target_dir().join("xtask/py");
    let stamp = dir.join(format!(".installed-{}", PACKAGES.join("+")));
    if stamp.exists() {
        return Ok(dir);
    }
    let status = step(
        &format!(
            "pip install --target {} {}",
            dir.display(),
            PACKAGES.join(" ")
        ),
        Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                // The check compares against the system site-packages too,
                // which these packages do not use (they live in --target).
                "--no-warn-conflicts",
                "--upgrade",
                "--target",
            ])
            .arg(&dir)
            .args(PACKAGES),
    )
    .context("the tests need Python 3 with pip: install python3 and python3-pip")?;
    if !status.success() {
        bail!("pip install {} failed ({status})", PACKAGES.join(" "));
    }
    std::fs::write(&stamp, b"").with_context(|| format!("cannot write {}", stamp.display()))?;
    Ok(dir)
}
