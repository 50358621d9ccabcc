//! The child's side: what [`super::child_main`] does in a process started to run one job.

use super::protocol::{CHILD_ARG, PARENT_ENV, Reply, Request};
use bildad_core::{FailureKind, JobRegistry};
use futures::FutureExt;
use rustix::event::{PollFd, PollFlags, poll};
use rustix::process::{
    Pid, PidfdFlags, Resource, Rlimit, Signal, getpgrp, getppid, kill_process_group, pidfd_open,
    set_parent_process_death_signal, setrlimit,
};
use std::io::{BufRead, Write};
use std::panic::AssertUnwindSafe;

/// The parent's process id when this process was started as an isolated child.
pub(super) fn parent_pid() -> Option<i32> {
    if std::env::args_os().nth(1).is_none_or(|a| a != CHILD_ARG) {
        return None;
    }
    std::env::var(PARENT_ENV).ok()?.parse().ok()
}

/// Runs the one job the parent asks for and exits: the outcome goes to the parent on
/// what was stdout (stdout itself then writes to stderr, so that the job's prints do
/// not mix with it), the exit status is 0 once the outcome was written.
pub(super) fn run(parent: i32, registry: impl FnOnce() -> JobRegistry) -> ! {
    die_with_parent(parent);
    let mut out = match take_stdout() {
        Ok(out) => out,
        Err(e) => {
            eprintln!("bildad isolated child: cannot set up its outcome pipe: {e}");
            std::process::exit(70);
        }
    };
    let reply = match read_request() {
        Ok(req) => run_job(req, registry),
        Err(e) => Reply::Failed {
            message: format!("isolated child: {e}"),
            kind: FailureKind::Permanent,
        },
    };
    let written = serde_json::to_writer(&mut out, &reply)
        .map_err(std::io::Error::from)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    if let Err(e) = written {
        eprintln!("bildad isolated child: cannot write its outcome: {e}");
        std::process::exit(71);
    }
    std::process::exit(0)
}

/// Kills this process's group (the child and whatever its job started) as soon as the
/// parent is gone: a thread waits on a pidfd of the parent. Where pidfds are missing,
/// `PR_SET_PDEATHSIG` kills the child itself. A parent already gone ends the child now.
fn die_with_parent(parent: i32) {
    let Some(pid) = Pid::from_raw(parent) else {
        std::process::exit(72);
    };
    match pidfd_open(pid, PidfdFlags::empty()) {
        Ok(fd) => {
            std::thread::spawn(move || {
                let mut fds = [PollFd::new(&fd, PollFlags::IN)];
                while poll(&mut fds, None).is_err() {}
                kill_own_group();
            });
        }
        Err(_) => {
            let _ = set_parent_process_death_signal(Some(Signal::KILL));
        }
    }
    // The parent may have died before the watch began: then we were reparented.
    if getppid() != Some(pid) {
        kill_own_group();
    }
}

fn kill_own_group() -> ! {
    let _ = kill_process_group(getpgrp(), Signal::KILL);
    std::process::exit(73)
}

/// A handle on what was stdout; stdout itself now writes to stderr. The handle is
/// close-on-exec: a process the job starts does not inherit it, so the parent reads the
/// end of the outcome when the child exits, not when the job's last descendant does.
fn take_stdout() -> std::io::Result<std::fs::File> {
    let out = rustix::io::fcntl_dupfd_cloexec(std::io::stdout(), 0)?;
    rustix::stdio::dup2_stdout(std::io::stderr())?;
    Ok(std::fs::File::from(out))
}

fn read_request() -> Result<Request, String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the run: {e}"))?;
    serde_json::from_str(&line).map_err(|e| format!("cannot parse the run: {e}"))
}

fn run_job(req: Request, registry: impl FnOnce() -> JobRegistry) -> Reply {
    let Some(job) = registry().get(&req.job_type) else {
        return Reply::Failed {
            message: format!("job type {:?} is not registered in the child", req.job_type),
            kind: FailureKind::Permanent,
        };
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return Reply::Failed {
                message: format!("isolated child: cannot start its async runtime: {e}"),
                kind: FailureKind::Error,
            };
        }
    };
    if let Err(e) = set_limits(&req) {
        return Reply::Failed {
            message: format!("isolated child: cannot set its resource limits: {e}"),
            kind: FailureKind::Permanent,
        };
    }
    let ctx = req.job_context();
    match rt.block_on(AssertUnwindSafe(job.run(ctx)).catch_unwind()) {
        Ok(result) => Reply::from_result(result),
        Err(panic) => Reply::Panicked {
            message: crate::executor::panic_message(panic.as_ref()),
        },
    }
}

/// `RLIMIT_AS` and `RLIMIT_CPU` (soft at the limit, hard a second later: `SIGXCPU`,
/// then `SIGKILL`).
fn set_limits(req: &Request) -> std::io::Result<()> {
    if let Some(bytes) = req.memory_limit_bytes {
        setrlimit(
            Resource::As,
            Rlimit {
                current: Some(bytes),
                maximum: Some(bytes),
            },
        )?;
    }
    if let Some(secs) = req.cpu_limit_seconds {
        setrlimit(
            Resource::Cpu,
            Rlimit {
                current: Some(secs),
                maximum: Some(secs.saturating_add(1)),
            },
        )?;
    }
    Ok(())
}
