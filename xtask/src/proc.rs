//! Background processes that are stopped however xtask ends.
//!
//! A Drop guard alone does not cover Ctrl-C or a killed xtask: the default
//! SIGINT action ends the process without unwinding, and std offers no signal
//! handler. So each process runs under a small `sh` wrapper, in its own
//! process group, holding the read end of a pipe whose write end only xtask
//! has. When xtask goes away for any reason the pipe closes, and the wrapper
//! reads EOF and terminates the process. The Drop guard terminates it at once,
//! and kills the whole group (with anything the process started) if it
//! lingers.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// `$@` is the real command. The wrapper stays its parent so that it is
/// reaped (PID 1 in a container may not reap orphans); SIGTERM to the wrapper
/// or EOF on the lifeline (fd 3) is passed on to it as SIGTERM, and the
/// wrapper exits with its status once it is gone.
const WRAPPER: &str = r#"exec 3<&0
"$@" </dev/null 3<&- &
server=$!
{ read -r _ <&3; kill -TERM "$server" 2>/dev/null; } </dev/null &
trap 'kill -TERM "$server" 2>/dev/null' TERM INT
while :; do
  wait "$server"; status=$?
  kill -0 "$server" 2>/dev/null || break
done
exit "$status"
"#;

/// How long a stopped group may take to exit before it is killed.
const GRACE: Duration = Duration::from_secs(5);

pub struct Background {
    name: String,
    child: Child,
    lifeline: Option<ChildStdin>,
    log: PathBuf,
}

impl Background {
    /// Starts `program args…` with `envs` set and `unset` removed from
    /// xtask's environment, its output going to `log`.
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        envs: &[(String, String)],
        unset: &[String],
        log: &Path,
    ) -> Result<Background> {
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let out = File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
        let err = out.try_clone()?;
        let mut cmd = Command::new("sh");
        for name in unset {
            cmd.env_remove(name);
        }
        let mut child = cmd
            .arg("-c")
            .arg(WRAPPER)
            .arg("sh")
            .arg(program)
            .args(args)
            .envs(envs.iter().map(|(k, v)| (k, v)))
            .current_dir(crate::repo_root())
            .stdin(Stdio::piped())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start {name} ({})", program.display()))?;
        let lifeline = child.stdin.take();
        Ok(Background {
            name: name.to_string(),
            child,
            lifeline,
            log: log.to_path_buf(),
        })
    }

    /// Why the process is no longer running, if it is not.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(format!("{} exited ({status})", self.name)),
            Ok(None) => None,
            Err(e) => Some(format!("{}: {e}", self.name)),
        }
    }

    /// The end of the process's log, to explain a failure.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        format!("--- last lines of {} ---\n{tail}", self.log.display())
    }

    /// SIGTERM (what the Functions host and containers send), then SIGKILL
    /// to the whole group if it has not exited within [`GRACE`].
    pub fn stop(&mut self) {
        drop(self.lifeline.take());
        let wrapper = self.child.id().to_string();
        let group = format!("-{wrapper}");
        let _ = signal("TERM", &wrapper);
        let started = Instant::now();
        loop {
            match self.child.try_wait() {
                Ok(None) if started.elapsed() < GRACE => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Ok(None) => {
                    eprintln!("xtask: {} did not stop on SIGTERM, killing it", self.name);
                    let _ = signal("KILL", &group);
                    let _ = self.child.wait();
                    break;
                }
                _ => break,
            }
        }
        // Whatever the server itself may have started.
        let _ = signal("TERM", &group);
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `kill -SIGNAL -- pid` (a negative pid names a process group): std has no
/// kill(2) other than SIGKILL on a Child, and xtask has no libc dependency.
fn signal(signal: &str, pid: &str) -> bool {
    Command::new("kill")
        .arg(format!("-{signal}"))
        .arg("--")
        .arg(pid)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}
