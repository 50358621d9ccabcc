//! One `bildad serve` process: started on a free port, its log in a file, killed with
//! SIGKILL or stopped with SIGTERM.

use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running `bildad serve`; killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct ServeProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl ServeProcess {
    /// Starts `bin serve --listen 127.0.0.1:0 --database-url url args…`, its stderr
    /// appended to `log`, and waits (up to 30 s) for the address it prints.
    ///
    /// Blocking: call it from `spawn_blocking` in async code.
    ///
    /// # Errors
    /// When the process cannot start or prints no address in time.
    pub fn start(bin: &Path, database_url: &str, args: &[String], log: &Path) -> Result<Self> {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let mut child = Command::new(bin)
            .args(["serve", "--listen", "127.0.0.1:0", "--database-url"])
            .arg(database_url)
            .args(args)
            .env_remove("BILDAD_AUTH_TOKEN")
            .env_remove("BILDAD_LISTEN")
            .env_remove("BILDAD_DATABASE_URL")
            .env(
                "RUST_LOG",
                std::env::var("BILDAD_CHAOS_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Drains stdout for the life of the process.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.split("listening on ").nth(1) {
                        return Ok(Self {
                            child,
                            base: rest.trim().to_owned(),
                        });
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let status = child.wait().ok();
                    bail!(
                        "bildad serve printed no address within 30 s (exit {status:?}); see {}",
                        log.display()
                    );
                }
            }
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGKILL and reaps the process.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// True while the process runs.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM and waits up to `limit` for a clean exit; SIGKILL after that.
    /// Returns whether it exited successfully on its own.
    pub fn terminate(mut self, limit: Duration) -> bool {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + limit;
        loop {
            match self.child.try_wait() {
                Ok(Some(s)) => return s.success(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return false;
                }
            }
        }
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory for the nodes' logs: `$BILDAD_CHAOS_LOG_DIR` or a new one under the
/// system temp directory.
///
/// # Errors
/// When it cannot be created.
pub fn log_dir(tag: &str) -> Result<PathBuf> {
    let dir = match std::env::var_os("BILDAD_CHAOS_LOG_DIR") {
        Some(d) => PathBuf::from(d),
        None => std::env::temp_dir().join(format!(
            "bildad-{tag}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        )),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
