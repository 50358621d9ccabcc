//! Starting claimed runs: the start check (job type registered here, context valid for
//! the template's current schema, SPEC §2.3), the spawn, and the finalize of runs that
//! could not start.

use super::{Counts, Engine};
use crate::executor::finalize_batch;
use bildad_core::validation::validate_context;
use bildad_core::{ClaimedRun, ErrorKind, FailureKind, Finalize, Job, Outcome, StoreError};
use std::sync::Arc;

/// What a claimed run needs before it may start.
enum StartCheck {
    Start(Arc<dyn Job>),
    /// Retrying cannot fix it: the run fails and its entry is deleted.
    Invalid(String),
    /// The check itself failed (the store was unreachable): the job never started, so
    /// the entry goes back untouched (`NotStarted`).
    Unchecked(String),
}

impl Engine {
    /// Checks and starts claimed runs; those that cannot start are finalized. Once the
    /// engine is closed none starts: each goes back to its queue untouched
    /// (`NotStarted`), and counts as an error.
    pub(super) async fn start_runs(&self, claimed: Vec<ClaimedRun>) -> Counts {
        let mut counts = Counts::default();
        let mut failed = Vec::new();
        for run in claimed {
            if self.is_closed() {
                counts.error_count += 1;
                failed.push((run, FailureKind::NotStarted, String::from("NotStarted")));
                continue;
            }
            match self.check_start(&run).await {
                StartCheck::Start(job) => {
                    counts.ok_count += 1;
                    self.shared.executor.spawn(run, job);
                }
                StartCheck::Invalid(reason) => {
                    counts.error_count += 1;
                    failed.push((run, FailureKind::Invalid, reason));
                }
                StartCheck::Unchecked(reason) => {
                    counts.error_count += 1;
                    failed.push((run, FailureKind::NotStarted, reason));
                }
            }
        }
        if !failed.is_empty() {
            self.fail_at_start(failed).await;
        }
        counts
    }

    /// Ends runs that could not start.
    async fn fail_at_start(&self, failed: Vec<(ClaimedRun, FailureKind, String)>) {
        let reqs = failed
            .iter()
            .map(|(c, kind, reason)| Finalize {
                run_id: c.run.id,
                outcome: Outcome::failed(*kind, reason.clone()),
                backoff: self.shared.config.backoff,
            })
            .collect();
        let finalize = finalize_batch(&*self.store, reqs);
        let results = if self.is_closed() {
            // Shutdown waits for this: bounded, as every finalize at shutdown is.
            tokio::time::timeout(crate::SHUTDOWN_FINALIZE_BOUND, finalize)
                .await
                .unwrap_or_else(|_| {
                    let gone = || Err(StoreError::Unavailable("gave up at shutdown".into()));
                    failed.iter().map(|_| gone()).collect()
                })
        } else {
            finalize.await
        };
        for ((c, kind, reason), res) in failed.iter().zip(results) {
            crate::metrics::failed_if_won(&c.run, *kind, &res);
            tracing::warn!(
                identifier = %c.run.job_run_identifier,
                template = %c.run.template,
                retry = c.run.retry,
                run_id = c.run.id,
                node = %self.node.instance_id,
                ?kind,
                %reason,
                result = ?res,
                "run failed at start"
            );
        }
    }

    /// The job type is registered here and the context satisfies the template's
    /// current schema (SPEC §2.3).
    async fn check_start(&self, c: &ClaimedRun) -> StartCheck {
        let Some(job) = self.shared.registry.get(&c.run.job_type) else {
            return StartCheck::Invalid(format!(
                "unknown job type {:?}: not registered on node {:?}",
                c.run.job_type, self.node.name
            ));
        };
        let schemas = &self.shared.schemas;
        let validator = match schemas.get((c.template_id, c.template_updated_at)) {
            Some(v) => v,
            None => match self.store.get_template(&c.run.template).await {
                // The template may have changed since the claim: its latest schema rules.
                Ok(t) => match schemas.get_or_compile((t.id, t.updated_at), &t.context_schema) {
                    Ok(v) => v,
                    Err(violations) => {
                        return StartCheck::Invalid(format!(
                            "the template's schema is unusable: {}",
                            join(&violations)
                        ));
                    }
                },
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    return StartCheck::Invalid(format!(
                        "template {:?} no longer exists",
                        c.run.template
                    ));
                }
                Err(e) => {
                    return StartCheck::Unchecked(format!(
                        "could not load template {:?} to validate the context: {e}",
                        c.run.template
                    ));
                }
            },
        };
        let violations = validate_context(&validator, &c.run.context);
        if violations.is_empty() {
            StartCheck::Start(job)
        } else {
            StartCheck::Invalid(format!(
                "context does not satisfy the template's schema: {}",
                join(&violations)
            ))
        }
    }
}

fn join(v: &[bildad_core::Violation]) -> String {
    v.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
