//! Debian's Chromium and its WebDriver, for the test that opens a take link
//! in a real browser: installed with apt when missing (as root, else
//! through sudo, as `.ci/run` does), then passed to the tests by path.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::step;

/// The commands and the Debian packages that bring them.
const NEEDED: [(&str, &str); 2] = [
    ("chromium", "chromium"),
    ("chromedriver", "chromium-driver"),
];

/// Paths of `chromium` and `chromedriver`, installing what is missing.
pub fn ensure_chromium() -> Result<(PathBuf, PathBuf)> {
    let missing: Vec<&str> = NEEDED
        .iter()
        .filter(|(command, _)| find(command).is_none())
        .map(|(_, package)| *package)
        .collect();
    if !missing.is_empty() {
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|out| out.stdout.starts_with(b"0"));
        let apt = || {
            let mut apt = if root {
                Command::new("apt-get")
            } else {
                let mut sudo = Command::new("sudo");
                sudo.arg("apt-get");
                sudo
            };
            apt.env("DEBIAN_FRONTEND", "noninteractive");
            apt
        };
        // A fresh machine's package lists may not name them yet.
        step("apt-get update", apt().arg("update").arg("-qq"))?;
        let mut install = apt();
        install
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing);
        let status = step(
            &format!("apt-get install {}", missing.join(" ")),
            &mut install,
        )
        .context("the browser test needs Debian's chromium and chromium-driver")?;
        if !status.success() {
            bail!(
                "apt-get install {} failed ({status}); install them by hand",
                missing.join(" ")
            );
        }
    }
    let path = |command: &str| {
        find(command).with_context(|| format!("{command} is still not on PATH after installing"))
    };
    Ok((path("chromium")?, path("chromedriver")?))
}

fn find(command: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(command))
        .find(|path| path.is_file())
}
