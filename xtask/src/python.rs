//! Python packages the tests check against (an independent implementation
//! of Standard Webhooks), installed into target/ so nothing touches the
//! system Python (Debian's PEP 668 forbids that; `--target` is allowed).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{step, target_dir};

/// Pinned: the signatures are checked against exactly this.
const PACKAGES: [&str; 1] = ["standardwebhooks==1.1.0"];

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
