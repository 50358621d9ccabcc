//! What goes over the child's pipes: one JSON line in (the run), one JSON line out (its
//! outcome), and the reason a child that gave no outcome is recorded with.

use bildad_core::{FailureKind, JobContext, JobError, ProcessIsolation, RunId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The argument the child is started with (the first after the program), next to
/// [`PARENT_ENV`]: an application that forgot [`super::child_main`] most likely refuses
/// it instead of starting as itself.
pub(crate) const CHILD_ARG: &str = "--bildad-isolated-child";

/// The environment variable naming the parent's process id.
pub(crate) const PARENT_ENV: &str = "BILDAD_ISOLATED_PARENT";

/// One run, written by the parent on the child's stdin.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Request {
    pub(crate) job_type: String,
    pub(crate) context: Value,
    pub(crate) job_run_identifier: String,
    pub(crate) retry: i32,
    pub(crate) max_retries: i32,
    pub(crate) run_id: RunId,
    pub(crate) template: String,
    pub(crate) memory_limit_bytes: Option<u64>,
    pub(crate) cpu_limit_seconds: Option<u64>,
}

impl Request {
    pub(crate) fn new(job_type: &str, limits: ProcessIsolation, ctx: &JobContext) -> Self {
        Self {
            job_type: job_type.to_owned(),
            context: ctx.context.clone(),
            job_run_identifier: ctx.job_run_identifier.clone(),
            retry: ctx.retry,
            max_retries: ctx.max_retries,
            run_id: ctx.run_id,
            template: ctx.template.clone(),
            memory_limit_bytes: limits.memory_limit_bytes,
            cpu_limit_seconds: limits.cpu_limit_seconds,
        }
    }

    /// The context the job receives in the child (its cancellation is never set: the
    /// child is killed instead).
    pub(crate) fn job_context(&self) -> JobContext {
        JobContext {
            context: self.context.clone(),
            job_run_identifier: self.job_run_identifier.clone(),
            retry: self.retry,
            max_retries: self.max_retries,
            run_id: self.run_id,
            template: self.template.clone(),
            cancellation: bildad_core::Cancellation::new(),
        }
    }
}

/// The job's outcome, written by the child on its outcome pipe.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub(crate) enum Reply {
    Succeeded {
        output: Option<Value>,
    },
    /// `kind`: how the job ended it (an error, permanent, snoozed, cancelled).
    Failed {
        message: String,
        kind: FailureKind,
    },
    Panicked {
        message: String,
    },
}

impl Reply {
    pub(crate) fn from_result(result: Result<Option<Value>, JobError>) -> Self {
        match result {
            Ok(output) => Reply::Succeeded { output },
            Err(e) => Reply::Failed {
                message: e.message().to_owned(),
                kind: e.kind(),
            },
        }
    }

    /// What the job returned, as the parent's job returns it.
    pub(crate) fn into_result(self) -> Result<Option<Value>, JobError> {
        match self {
            Reply::Succeeded { output } => Ok(output),
            Reply::Failed { message, kind } => Err(JobError::from_parts(kind, message)),
            Reply::Panicked { message } => Err(JobError::msg(message)),
        }
    }
}

/// The run's reason when the child ended without an outcome: killed by `signal`, or
/// exited with `code`.
pub(crate) fn died_reason(
    signal: Option<i32>,
    code: Option<i32>,
    limits: ProcessIsolation,
) -> String {
    match (signal, code) {
        (Some(sig), _) => {
            let mut reason = format!(
                "child process killed by signal {sig} ({})",
                signal_name(sig)
            );
            let hint = match sig {
                24 => limits
                    .cpu_limit_seconds
                    .map(|s| format!(": CPU time limit of {s} s exceeded")),
                9 => limits
                    .cpu_limit_seconds
                    .map(|s| format!(" (the CPU time limit of {s} s, or the OOM killer)")),
                6 | 11 => limits
                    .memory_limit_bytes
                    .map(|b| format!(" (memory limit of {b} bytes reached?)")),
                _ => None,
            };
            reason.push_str(&hint.unwrap_or_default());
            reason
        }
        (None, Some(code)) => format!(
            "child process exited with status {code} without an outcome (does the program \
             call bildad::isolation::child_main first thing in main?)"
        ),
        (None, None) => "child process ended without an outcome".to_owned(),
    }
}

/// The name of a Linux signal number.
fn signal_name(sig: i32) -> &'static str {
    match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        31 => "SIGSYS",
        _ => "signal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_death_names_its_signal_or_status_and_the_limit() {
        let none = ProcessIsolation::default();
        assert_eq!(
            died_reason(Some(11), None, none),
            "child process killed by signal 11 (SIGSEGV)"
        );
        let cpu = ProcessIsolation {
            cpu_limit_seconds: Some(2),
            ..ProcessIsolation::default()
        };
        assert_eq!(
            died_reason(Some(24), None, cpu),
            "child process killed by signal 24 (SIGXCPU): CPU time limit of 2 s exceeded"
        );
        assert!(died_reason(None, Some(3), none).starts_with("child process exited with status 3"));
    }

    #[test]
    fn replies_keep_the_jobs_result() {
        let r = Reply::from_result(Err(JobError::permanent("no")));
        let line = serde_json::to_string(&r).unwrap();
        let back: Reply = serde_json::from_str(&line).unwrap();
        assert_eq!(back.into_result(), Err(JobError::permanent("no")));
        for e in [
            JobError::snooze(std::time::Duration::from_secs(30)),
            JobError::cancel("not wanted"),
            JobError::msg("boom"),
        ] {
            let line = serde_json::to_string(&Reply::from_result(Err(e.clone()))).unwrap();
            let back: Reply = serde_json::from_str(&line).unwrap();
            assert_eq!(back.into_result(), Err(e));
        }
        let ok = Reply::from_result(Ok(Some(serde_json::json!({"a": 1}))));
        assert_eq!(ok.into_result(), Ok(Some(serde_json::json!({"a": 1}))));
    }
}
