//! The test helpers of `bildad::testing`, used as an application would use them.

use bildad::core::{RunResult, RunStatus};
use bildad::testing::{
    assert_enqueued, assert_enqueued_where, assert_not_enqueued, drain, enqueued, run_info, work,
    work_as,
};
use bildad::{
    EnqueueOptions, JobArgs, JobDefaults, JobError, JobRegistry, JobStore, Jobs, MemoryStore,
    RunInfo, State,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
struct SignUp {
    email: String,
}

impl JobArgs for SignUp {
    const KIND: &'static str = "signup";
}

/// Enqueued by the `signup` worker: a job that enqueues another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
struct Welcome {
    email: String,
}

impl JobArgs for Welcome {
    const KIND: &'static str = "welcome";
}

/// Fails until its attempt `succeed_on`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
struct Flaky {
    succeed_on: i32,
}

impl JobArgs for Flaky {
    const KIND: &'static str = "flaky";
    fn defaults() -> JobDefaults {
        JobDefaults {
            max_retries: Some(2),
            ..JobDefaults::default()
        }
    }
}

async fn signup(args: SignUp, _: RunInfo, State(jobs): State<Jobs>) -> Result<(), JobError> {
    // Some awaiting, so that a drain that did not wait for the job would see it running.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    jobs.enqueue(Welcome { email: args.email }).await?;
    Ok(())
}

async fn welcome(args: Welcome, _: RunInfo) -> Result<String, JobError> {
    Ok(format!("welcome {}", args.email))
}

async fn flaky(args: Flaky, run: RunInfo) -> Result<i32, JobError> {
    if run.retry < args.succeed_on {
        Err(anyhow::anyhow!("attempt {} failed", run.retry))?;
    }
    Ok(run.retry)
}

fn setup() -> (Arc<dyn JobStore>, Jobs, JobRegistry) {
    let store: Arc<dyn JobStore> = Arc::new(MemoryStore::new());
    let jobs = Jobs::new(store.clone());
    let registry = JobRegistry::new()
        .with_state(jobs.clone())
        .with_worker(signup)
        .with_worker(welcome)
        .with_worker(flaky);
    (store, jobs, registry)
}

#[tokio::test]
async fn work_runs_a_worker_without_a_database() {
    let (_, _, registry) = setup();
    let out = work(&registry, Welcome { email: "a".into() }).await;
    assert_eq!(out, Ok(Some(json!("welcome a"))));
    let e = work(&registry, Flaky { succeed_on: 1 }).await.unwrap_err();
    assert_eq!(e.message(), "attempt 0 failed");
    assert!(!e.is_permanent());
    let second = RunInfo {
        retry: 1,
        ..run_info::<Flaky>()
    };
    assert_eq!(
        work_as(&registry, Flaky { succeed_on: 1 }, second).await,
        Ok(Some(json!(1)))
    );
}

#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
struct Bounded {
    #[schemars(range(max = 10))]
    n: u32,
}

impl JobArgs for Bounded {
    const KIND: &'static str = "bounded";
}

#[tokio::test]
async fn work_checks_the_arguments_against_the_schema_as_a_start_does() {
    let registry = JobRegistry::new().with_worker(|_: Bounded, _: RunInfo| async { Ok(()) });
    assert_eq!(work(&registry, Bounded { n: 10 }).await, Ok(None));
    let e = work(&registry, Bounded { n: 11 }).await.unwrap_err();
    assert!(e.is_permanent());
    assert!(e.message().contains("/context/n"), "{}", e.message());
}

#[tokio::test]
#[should_panic(expected = "no worker registered for \"welcome\"")]
async fn work_names_a_missing_worker() {
    let _ = work(&JobRegistry::new(), Welcome { email: "a".into() }).await;
}

#[tokio::test]
async fn assert_enqueued_decodes_what_the_code_enqueued() {
    let (store, jobs, registry) = setup();
    registry.ensure_templates(&*store).await.unwrap();
    assert_not_enqueued::<SignUp>(&*store).await;
    jobs.enqueue_many(["a", "b"].map(|e| SignUp { email: e.into() }))
        .await
        .unwrap();
    jobs.enqueue_with(
        Welcome { email: "c".into() },
        EnqueueOptions::default().priority(1),
    )
    .await
    .unwrap();
    assert_eq!(assert_enqueued::<SignUp>(&*store).await.email, "a");
    let b = assert_enqueued_where(&*store, |s: &SignUp| s.email == "b").await;
    assert_eq!(b, SignUp { email: "b".into() });
    let all = enqueued::<SignUp>(&*store).await;
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].0.template, "signup");
    assert_not_enqueued::<Flaky>(&*store).await;
}

#[tokio::test]
#[should_panic(
    expected = "no matching \"signup\" job was enqueued; entries of that type: [Object {\"email\": String(\"a\")}]"
)]
async fn assert_enqueued_lists_what_was_enqueued_when_nothing_matches() {
    let (store, jobs, registry) = setup();
    registry.ensure_templates(&*store).await.unwrap();
    jobs.enqueue(SignUp { email: "a".into() }).await.unwrap();
    assert_enqueued_where(&*store, |s: &SignUp| s.email == "z").await;
}

#[tokio::test]
#[should_panic(expected = "expected no \"signup\" job")]
async fn assert_not_enqueued_fails_when_there_is_one() {
    let (store, jobs, registry) = setup();
    registry.ensure_templates(&*store).await.unwrap();
    jobs.enqueue(SignUp { email: "a".into() }).await.unwrap();
    assert_not_enqueued::<SignUp>(&*store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_runs_everything_due_including_what_jobs_enqueue_and_retries() {
    let (store, jobs, registry) = setup();
    registry.ensure_templates(&*store).await.unwrap();
    jobs.enqueue_many(["a", "b", "c"].map(|e| SignUp { email: e.into() }))
        .await
        .unwrap();
    jobs.enqueue(Flaky { succeed_on: 2 }).await.unwrap();
    jobs.enqueue(Flaky { succeed_on: 5 }).await.unwrap();
    // Not due: stays in the queue.
    let in_an_hour = store.now().await.unwrap() + Duration::from_secs(3600);
    jobs.enqueue_with(
        Welcome {
            email: "later".into(),
        },
        EnqueueOptions::default().run_at(in_an_hour),
    )
    .await
    .unwrap();

    let runs = drain(&store, &registry).await.unwrap();
    assert!(
        runs.iter().all(|r| r.status == RunStatus::Done),
        "{runs:#?}"
    );
    let of = |t: &str, result: RunResult| {
        runs.iter()
            .filter(|r| r.template == t && r.result == Some(result))
            .count()
    };
    assert_eq!(of("signup", RunResult::Succeeded), 3);
    assert_eq!(
        of("welcome", RunResult::Succeeded),
        3,
        "the jobs' own enqueues ran"
    );
    // 2 fails then a success; 3 fails, retries exhausted.
    assert_eq!(of("flaky", RunResult::Succeeded), 1);
    assert_eq!(of("flaky", RunResult::Failed), 5);
    let later = assert_enqueued::<Welcome>(&*store).await;
    assert_eq!(later.email, "later");
    assert_eq!(enqueued::<Welcome>(&*store).await.len(), 1);
    // Nothing left to do: a second drain runs nothing.
    assert!(drain(&store, &registry).await.unwrap().is_empty());
}
