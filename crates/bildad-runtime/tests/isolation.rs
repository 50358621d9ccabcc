//! Process isolation in one node (`MemoryStore`), with this test program as the child:
//! what a job spawned dies with its run, resource limits end a run and say so, and a
//! job's result, error and panic cross the pipe. Its own `main` (no test harness), since
//! the child is this program started again and must reach `child_main` first.

use bildad_core::{
    JobContext, JobError, JobRegistry, JobRun, JobStore, MemoryStore, NewEntry, NewTemplate,
    NodeConfig, ProcessIsolation, RunStatus,
};
use bildad_runtime::NodeRuntime;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Starts `sleep 1000` (a grandchild of the node, in the child's process group), writes
/// its pid to `context.pidfile`, then blocks.
async fn spawns(ctx: JobContext) -> Result<Option<Value>, JobError> {
    let sleeper = std::process::Command::new("sleep").arg("1000").spawn()?;
    let path = ctx.context["pidfile"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    std::fs::write(path, sleeper.id().to_string())?;
    std::thread::sleep(Duration::from_secs(600));
    Ok(None)
}

/// Starts `sleep 1000` and returns at once with its pid, leaving it behind.
async fn leaves(_: JobContext) -> Result<Option<Value>, JobError> {
    let sleeper = std::process::Command::new("sleep").arg("1000").spawn()?;
    Ok(Some(json!(sleeper.id())))
}

/// Allocates and touches `context.mb` megabytes.
async fn alloc(ctx: JobContext) -> Result<Option<Value>, JobError> {
    let mb = ctx.context["mb"].as_u64().unwrap_or(0) as usize;
    let v = vec![1u8; mb << 20];
    Ok(Some(json!(v.iter().map(|&b| u64::from(b)).sum::<u64>())))
}

/// Burns CPU forever.
async fn spin(_: JobContext) -> Result<Option<Value>, JobError> {
    let mut x = 0u64;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

async fn echo(ctx: JobContext) -> Result<Option<Value>, JobError> {
    println!("a job's print goes to stderr, not into the outcome");
    Ok(Some(ctx.context))
}

async fn fail(_: JobContext) -> Result<Option<Value>, JobError> {
    Err(JobError::permanent("no use retrying"))
}

async fn panics(_: JobContext) -> Result<Option<Value>, JobError> {
    panic!("boom")
}

async fn snoozes(_: JobContext) -> Result<Option<Value>, JobError> {
    Err(JobError::snooze(Duration::from_secs(3600)))
}

async fn cancels(_: JobContext) -> Result<Option<Value>, JobError> {
    Err(JobError::cancel("not wanted"))
}

fn registry() -> JobRegistry {
    let mut r = JobRegistry::new();
    r.register("t.spawns", spawns)
        .register("t.leaves", leaves)
        .register("t.alloc", alloc)
        .register("t.spin", spin)
        .register("t.echo", echo)
        .register("t.fail", fail)
        .register("t.panic", panics)
        .register("t.snooze", snoozes)
        .register("t.cancel", cancels);
    for name in r.job_types() {
        let limits = ProcessIsolation {
            memory_limit_bytes: (name == "t.alloc").then_some(256 << 20),
            cpu_limit_seconds: (name == "t.spin").then_some(1),
        };
        r.isolate(name, limits);
    }
    r
}

fn main() {
    bildad_runtime::isolation::child_main(registry);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let store: Arc<dyn JobStore> = Arc::new(MemoryStore::new());
        for t in registry().job_types() {
            let new = NewTemplate::new(t.clone(), t.clone(), t.clone(), json!({"type": "object"}));
            store.create_template(new).await.expect("template");
        }
        let config = NodeConfig {
            node_name: "isolating".into(),
            killer_interval: Duration::from_millis(200),
            node_dead_after: Duration::from_secs(2),
            ..NodeConfig::default()
        };
        let node = NodeRuntime::start(store.clone(), registry(), config)
            .await
            .expect("node");
        let t = Tester { store, node };
        t.what_a_job_spawned_dies_with_its_run().await;
        t.what_a_job_leaves_behind_neither_delays_its_outcome_nor_survives()
            .await;
        t.a_memory_limit_ends_the_run_and_says_so().await;
        t.a_cpu_limit_ends_the_run_and_says_so().await;
        t.results_errors_and_panics_cross_the_pipe().await;
        t.snooze_and_cancel_cross_the_pipe().await;
        t.node.shutdown(Duration::from_secs(5)).await;
    });
}

struct Tester {
    store: Arc<dyn JobStore>,
    node: NodeRuntime,
}

impl Tester {
    /// Enqueues `new` and runs an engine pass; its identifier.
    async fn run(&self, mut new: NewEntry) -> String {
        new.max_retries = Some(0);
        let e = self.store.enqueue(new).await.expect("enqueue");
        let report = self.node.engine().run_once().await.expect("pass");
        assert_eq!(report.start.ok_count, 1, "{report:?}");
        e.job_run_identifier
    }

    /// The run of `id` once `done` holds for it, within 30 s.
    async fn wait(&self, id: &str, done: impl Fn(&JobRun) -> bool) -> JobRun {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let runs = self
                .store
                .list_runs(
                    bildad_core::RunFilter {
                        identifier: Some(id.to_owned()),
                        ..Default::default()
                    },
                    bildad_core::PageRequest::default(),
                )
                .await
                .expect("runs");
            if let Some(r) = runs.items.into_iter().next().filter(|r| done(r)) {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for run of {id}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn ended(&self, id: &str) -> JobRun {
        self.wait(id, |r| r.status == RunStatus::Done).await
    }

    async fn what_a_job_spawned_dies_with_its_run(&self) {
        let pidfile = std::env::temp_dir().join(format!("bildad-iso-{}", std::process::id()));
        let _ = std::fs::remove_file(&pidfile);
        let mut new = NewEntry::new("t.spawns", json!({"pidfile": pidfile}));
        new.timeout_seconds = Some(1);
        let id = self.run(new).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        let sleeper: u32 = loop {
            if let Some(pid) = std::fs::read_to_string(&pidfile)
                .ok()
                .and_then(|s| s.parse().ok())
            {
                break pid;
            }
            assert!(
                Instant::now() < deadline,
                "the job never started its sleeper"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(alive(sleeper));
        let run = self
            .wait(&id, |r| r.reason.as_deref() == Some("Timeout (killed)"))
            .await;
        assert_eq!(run.status, RunStatus::Done);
        assert!(
            !alive(sleeper),
            "the job's own child {sleeper} survived its run"
        );
        assert_eq!(self.node.executor().running_count(), 0, "the slot is free");
        let _ = std::fs::remove_file(&pidfile);
        println!("what_a_job_spawned_dies_with_its_run ... ok");
    }

    async fn what_a_job_leaves_behind_neither_delays_its_outcome_nor_survives(&self) {
        let id = self.run(NewEntry::new("t.leaves", json!({}))).await;
        let run = self.ended(&id).await;
        let sleeper = run
            .output
            .as_ref()
            .and_then(Value::as_u64)
            .expect("its pid") as u32;
        let deadline = Instant::now() + Duration::from_secs(30);
        while alive(sleeper) {
            assert!(
                Instant::now() < deadline,
                "the job's leftover {sleeper} survived"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        println!("what_a_job_leaves_behind_neither_delays_its_outcome_nor_survives ... ok");
    }

    async fn a_memory_limit_ends_the_run_and_says_so(&self) {
        let id = self
            .run(NewEntry::new("t.alloc", json!({"mb": 1024})))
            .await;
        let reason = self.ended(&id).await.reason.unwrap_or_default();
        assert!(
            reason.contains("memory limit of 268435456 bytes"),
            "reason: {reason}"
        );
        let id = self.run(NewEntry::new("t.alloc", json!({"mb": 16}))).await;
        let run = self.ended(&id).await;
        assert_eq!(run.output, Some(json!(16u64 << 20)), "{run:?}");
        println!("a_memory_limit_ends_the_run_and_says_so ... ok");
    }

    async fn a_cpu_limit_ends_the_run_and_says_so(&self) {
        let id = self.run(NewEntry::new("t.spin", json!({}))).await;
        let reason = self.ended(&id).await.reason.unwrap_or_default();
        assert!(reason.contains("CPU time limit of 1 s"), "reason: {reason}");
        println!("a_cpu_limit_ends_the_run_and_says_so ... ok");
    }

    async fn results_errors_and_panics_cross_the_pipe(&self) {
        let id = self
            .run(NewEntry::new("t.echo", json!({"a": [1, "b"]})))
            .await;
        let run = self.ended(&id).await;
        assert_eq!(run.output, Some(json!({"a": [1, "b"]})));
        let id = self.run(NewEntry::new("t.panic", json!({}))).await;
        assert_eq!(self.ended(&id).await.reason.as_deref(), Some("panic: boom"));
        let mut new = NewEntry::new("t.fail", json!({}));
        new.max_retries = Some(3);
        let e = self.store.enqueue(new).await.expect("enqueue");
        self.node.engine().run_once().await.expect("pass");
        let run = self.ended(&e.job_run_identifier).await;
        assert_eq!(run.reason.as_deref(), Some("no use retrying"));
        assert!(
            self.store.get_entry(&e.job_run_identifier).await.is_err(),
            "a permanent error deletes the entry"
        );
        println!("results_errors_and_panics_cross_the_pipe ... ok");
    }

    /// The kind of a job's error crosses too: a snooze requeues the entry (with no retry
    /// left, an ordinary failure would delete it), a cancel deletes it (with retries left).
    async fn snooze_and_cancel_cross_the_pipe(&self) {
        let mut new = NewEntry::new("t.snooze", json!({}));
        new.max_retries = Some(0);
        let e = self.store.enqueue(new).await.expect("enqueue");
        self.node.engine().run_once().await.expect("pass");
        let run = self.ended(&e.job_run_identifier).await;
        assert_eq!(run.reason.as_deref(), Some("Snoozed for 3600 s"));
        let entry = self
            .store
            .get_entry(&e.job_run_identifier)
            .await
            .expect("a snoozed entry stays");
        assert!(entry.run_at >= run.ended_at.expect("ended") + chrono::Duration::seconds(3600));
        let mut new = NewEntry::new("t.cancel", json!({}));
        new.max_retries = Some(3);
        let e = self.store.enqueue(new).await.expect("enqueue");
        self.node.engine().run_once().await.expect("pass");
        let run = self.ended(&e.job_run_identifier).await;
        assert_eq!(run.reason.as_deref(), Some("Cancelled: not wanted"));
        assert!(self.store.get_entry(&e.job_run_identifier).await.is_err());
        println!("snooze_and_cancel_cross_the_pipe ... ok");
    }
}

/// True while `pid` exists and is not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        let state = s.rfind(')').and_then(|i| s[i + 2..].chars().next());
        !matches!(state, Some('Z' | 'X') | None)
    })
}
