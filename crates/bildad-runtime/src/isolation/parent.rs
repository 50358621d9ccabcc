//! The parent's side: [`IsolatedJob`], the job that runs a run in a child process and
//! kills the child's process group when the run is ended from outside.

use super::protocol::{CHILD_ARG, PARENT_ENV, Reply, Request, died_reason};
use crate::executor::{RETRY_FIRST, RETRY_MAX};
use async_trait::async_trait;
use bildad_core::{Job, JobContext, JobError, JobStore, ProcessIsolation, RunId, RunStatus};
use rustix::process::{Pid, Signal, kill_process_group};
use serde_json::Value;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

/// How often, and how far apart, the parent asks again to record a kill on a run that is
/// not ended yet (a shutdown ends its runs just after it kills them). Bounded: the slot
/// waits for it.
const MARK_ATTEMPTS: u32 = 40;
const MARK_PAUSE: Duration = Duration::from_millis(50);

/// The job registered in the parent for a process-isolated job type: each run starts
/// the program again as a child (see [`super::child_main`]), hands it the run over a
/// pipe and returns the outcome it reports. Cancelled, it sends `SIGKILL` to the child's
/// process group, reaps the child, records the kill on the run
/// ([`JobStore::mark_killed`]) and only then returns, so the node's slot is held until
/// the child is gone.
pub(crate) struct IsolatedJob {
    pub(crate) job_type: String,
    pub(crate) limits: ProcessIsolation,
    pub(crate) store: Arc<dyn JobStore>,
}

#[async_trait]
impl Job for IsolatedJob {
    async fn run(&self, ctx: JobContext) -> Result<Option<Value>, JobError> {
        let mut child = Command::new("/proc/self/exe")
            .arg(CHILD_ARG)
            .env(PARENT_ENV, std::process::id().to_string())
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| JobError::msg(format!("cannot start the child process: {e}")))?;
        let mut group = GroupGuard(child.id().and_then(|id| Pid::from_raw(id as i32)));
        let request = Request::new(&self.job_type, self.limits, &ctx);
        let finished = {
            let talk = exchange(&mut child, &request);
            tokio::select! {
                biased;
                () = ctx.cancellation.cancelled() => None,
                done = talk => Some(done),
            }
        };
        // Whatever the job left running in its group goes with it.
        group.kill();
        let Some(done) = finished else {
            let status = child.wait().await;
            tracing::warn!(?status, "run ended from outside; child process killed");
            self.record_kill(ctx.run_id).await;
            return Err(JobError::msg("killed"));
        };
        match done {
            Ok((Some(reply), _)) => reply.into_result(),
            Ok((None, status)) => Err(JobError::msg(died_reason(
                status.signal(),
                status.code(),
                self.limits,
            ))),
            Err(e) => {
                let _ = child.wait().await;
                Err(JobError::msg(format!("lost the child process: {e}")))
            }
        }
    }

    fn ends_on_cancel(&self) -> bool {
        true
    }
}

/// Writes the run to the child, reads its outcome line, and reaps it.
async fn exchange(
    child: &mut Child,
    request: &Request,
) -> std::io::Result<(Option<Reply>, ExitStatus)> {
    let mut line = serde_json::to_vec(request).map_err(std::io::Error::from)?;
    line.push(b'\n');
    if let Some(mut stdin) = child.stdin.take() {
        // A child that died at once closed its end: its exit status tells why.
        let _ = stdin.write_all(&line).await;
    }
    let mut out = Vec::new();
    if let Some(mut stdout) = child.stdout.take() {
        stdout.read_to_end(&mut out).await?;
    }
    let status = child.wait().await?;
    let reply = serde_json::from_slice::<Reply>(out.trim_ascii()).ok();
    Ok((reply.filter(|_| status.success()), status))
}

impl IsolatedJob {
    /// Appends ` (killed)` to the run's reason once whoever ended it has finalized it.
    /// While the store is unavailable it retries as the finalizer does (100 ms doubling
    /// to 5 s, for as long as it takes); a run not ended yet is asked about again for
    /// [`MARK_ATTEMPTS`] × [`MARK_PAUSE`] at most.
    async fn record_kill(&self, run: RunId) {
        let mut unended = 0;
        let mut pause = RETRY_FIRST;
        loop {
            let running = match self.store.mark_killed(run).await {
                Ok(true) => return,
                Ok(false) => self
                    .store
                    .get_run(run)
                    .await
                    .map(|r| r.status == RunStatus::Running),
                Err(e) => Err(e),
            };
            match running {
                // Ended with a reason of its own, or already marked.
                Ok(false) => return,
                Ok(true) if unended < MARK_ATTEMPTS => {
                    unended += 1;
                    tokio::time::sleep(MARK_PAUSE).await;
                }
                Ok(true) => {
                    tracing::warn!(
                        run_id = run,
                        "could not record the kill: the run was not ended in time"
                    );
                    return;
                }
                Err(e) if e.is_transient() => {
                    tracing::warn!(run_id = run, error = %e, "recording the kill failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(RETRY_MAX);
                }
                Err(e) => {
                    tracing::warn!(run_id = run, error = %e, "could not record the kill");
                    return;
                }
            }
        }
    }
}

/// The child's process group, killed with `SIGKILL` when the run is over or its future
/// dropped (a node that crashed on purpose).
struct GroupGuard(Option<Pid>);

impl GroupGuard {
    /// Kills the group, once.
    fn kill(&mut self) {
        if let Some(pid) = self.0.take() {
            // ESRCH: the group is already empty.
            let _ = kill_process_group(pid, Signal::KILL);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}
