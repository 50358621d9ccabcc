//! Templates from code (SPEC §7): ten nodes starting at once on one database create each
//! declared template exactly once, a changed type updates the schema once, an unchanged
//! one writes nothing, and an operator's deactivation survives every start. And a typed
//! worker with state running on a node.

use bildad_core::{
    DeclaredTemplate, EnqueueOptions, EnsuredTemplates, JobArgs, JobError, JobRegistry, JobStore,
    Jobs, NewEntry, NewTemplate, RunInfo, RunResult, State, TemplatePatch,
};
use bildad_runtime::NodeRuntime;
use bildad_tests::*;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Barrier;

/// How many nodes start at once.
const NODES: usize = 10;
/// How many times each race is run (on fresh codes each time).
const ROUNDS: usize = 5;

#[derive(Serialize, Deserialize, schemars::JsonSchema)]
struct WelcomeV1 {
    email: String,
}

impl JobArgs for WelcomeV1 {
    const KIND: &'static str = "welcome";
}

/// The same job type after a deploy: one more field.
#[derive(Serialize, Deserialize, schemars::JsonSchema)]
struct WelcomeV2 {
    email: String,
    name: Option<String>,
}

impl JobArgs for WelcomeV2 {
    const KIND: &'static str = "welcome";
}

async fn noop<A>(_: A, _: RunInfo) -> Result<(), JobError> {
    Ok(())
}

/// A registry declaring `welcome` (as `V`) and four hand-written templates of round `r`.
fn registry_v<V: JobArgs>(r: usize) -> JobRegistry {
    let mut reg = JobRegistry::new().with_worker(noop::<V>);
    for i in 0..4 {
        let code = format!("race.r{r}.t{i}");
        reg.declare(DeclaredTemplate::new(NewTemplate::new(
            &code,
            &code,
            "t.echo",
            json!({"type": "object"}),
        )));
    }
    reg
}

/// `NODES` calls of `ensure_templates` released at once.
async fn ensure_at_once(
    store: &Arc<dyn JobStore>,
    registry: &JobRegistry,
) -> Vec<EnsuredTemplates> {
    let barrier = Arc::new(Barrier::new(NODES));
    let tasks: Vec<_> = (0..NODES)
        .map(|_| {
            let (store, registry, barrier) = (store.clone(), registry.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                registry.ensure_templates(&*store).await
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap().expect("every node's ensure succeeds"));
    }
    out
}

fn count(results: &[EnsuredTemplates], code: &str) -> (usize, usize, usize) {
    let has = |v: &Vec<String>| usize::from(v.iter().any(|c| c == code));
    results.iter().fold((0, 0, 0), |(c, u, n), r| {
        (
            c + has(&r.created),
            u + has(&r.updated),
            n + has(&r.unchanged),
        )
    })
}

async fn ten_nodes_create_each_template_once(t: TestStore) {
    let store = &t.store;
    for r in 0..ROUNDS {
        let registry = registry_v::<WelcomeV1>(r);
        let results = ensure_at_once(store, &registry).await;
        for d in registry.declared_templates() {
            let code = &d.template.code;
            let (created, updated, unchanged) = count(&results, code);
            if code == "welcome" && r > 0 {
                assert_eq!(
                    (created, updated, unchanged),
                    (0, 0, NODES),
                    "{}",
                    t.backend
                );
            } else {
                assert_eq!(
                    (created, updated, unchanged),
                    (1, 0, NODES - 1),
                    "{code} on {}",
                    t.backend
                );
            }
            let stored = store.get_template(code).await.unwrap();
            assert_eq!(stored.context_schema, d.template.context_schema);
        }
    }
}

async fn ten_nodes_deploy_a_changed_type(t: TestStore) {
    let store = &t.store;
    let v1 = registry_v::<WelcomeV1>(0);
    v1.ensure_templates(&**store).await.unwrap();
    // The operator deactivates the template; nodes of the old type restart: nothing
    // is written, the template stays as it was.
    let patch = TemplatePatch {
        active: Some(false),
        ..TemplatePatch::default()
    };
    let deactivated = store.update_template("welcome", patch).await.unwrap();
    for _ in 0..ROUNDS {
        ensure_at_once(store, &v1).await;
        assert_eq!(
            store.get_template("welcome").await.unwrap(),
            deactivated,
            "{}",
            t.backend
        );
    }
    // Ten nodes of the new type start at once: the schema is updated (by one or more of
    // them, each writing the same), and the template stays inactive.
    let v2 = registry_v::<WelcomeV2>(0);
    let results = ensure_at_once(store, &v2).await;
    let (created, updated, _) = count(&results, "welcome");
    assert_eq!(created, 0);
    assert!(updated >= 1, "{}", t.backend);
    let after = store.get_template("welcome").await.unwrap();
    assert_eq!(after.context_schema, WelcomeV2::context_schema());
    assert!(!after.active, "a deactivated template stays inactive");
    // Restarts of the new type write nothing more.
    for _ in 0..ROUNDS {
        let results = ensure_at_once(store, &v2).await;
        assert_eq!(count(&results, "welcome"), (0, 0, NODES), "{}", t.backend);
    }
    assert_eq!(
        store.get_template("welcome").await.unwrap().updated_at,
        after.updated_at
    );
}

/// The same race through `NodeRuntime::start`, as ten processes would start.
async fn ten_node_runtimes_start_at_once(t: TestStore) {
    for r in 0..ROUNDS {
        let barrier = Arc::new(Barrier::new(NODES));
        let tasks: Vec<_> = (0..NODES)
            .map(|i| {
                let (store, barrier) = (t.store.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    NodeRuntime::start(
                        store,
                        registry_v::<WelcomeV2>(r),
                        fast_config(&format!("n{i}")),
                    )
                    .await
                })
            })
            .collect();
        let mut nodes = Vec::new();
        for task in tasks {
            nodes.push(task.await.unwrap().expect("every node starts"));
        }
        for n in &nodes {
            n.shutdown(Duration::from_secs(1)).await;
        }
        let codes: Vec<String> = t
            .store
            .list_templates(Default::default(), Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|t| t.code)
            .filter(|c| c.starts_with(&format!("race.r{r}.")) || c == "welcome")
            .collect();
        assert_eq!(codes.len(), 5, "{codes:?} on {}", t.backend);
    }
}

on_every_store!(
    ten_nodes_create_each_template_once,
    ten_nodes_deploy_a_changed_type,
    ten_node_runtimes_start_at_once,
);

/// Shared state of the end-to-end test: how many mails were "sent".
#[derive(Clone, Default)]
struct Outbox(Arc<std::sync::Mutex<Vec<String>>>);

async fn send(
    args: WelcomeV2,
    run: RunInfo,
    State(out): State<Outbox>,
) -> Result<String, JobError> {
    if run.retry == 0 && args.name.as_deref() == Some("flaky") {
        Err(anyhow::anyhow!("smtp timeout").context("sending"))?;
    }
    out.0.lock().unwrap().push(args.email.clone());
    Ok(format!("sent to {}", args.email))
}

/// A typed worker with state, on a node, on every store: typed enqueue, the output
/// stored, an `anyhow` error retried with its reason, and a context that passes an
/// operator's looser schema but does not decode failing permanently with the reason.
async fn a_typed_worker_runs_on_a_node(t: TestStore) {
    let store = &t.store;
    let outbox = Outbox::default();
    let registry = JobRegistry::new()
        .with_state(outbox.clone())
        .with_worker(send);
    let node = NodeRuntime::start(store.clone(), registry, ticking_config("typed"))
        .await
        .unwrap();
    let jobs = Jobs::new(store.clone());
    let opts = |id: &str| EnqueueOptions::default().identifier(id);
    let ok = WelcomeV2 {
        email: "ann@x".into(),
        name: None,
    };
    jobs.enqueue_with(ok, opts("ok")).await.unwrap();
    let flaky = WelcomeV2 {
        email: "bob@x".into(),
        name: Some("flaky".into()),
    };
    jobs.enqueue_with(flaky, opts("flaky")).await.unwrap();
    let runs = wait_settled(&**store, "ok", Duration::from_secs(30)).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].result, Some(RunResult::Succeeded), "{}", t.backend);
    assert_eq!(runs[0].output, Some(json!("sent to ann@x")));
    let runs = wait_settled(&**store, "flaky", Duration::from_secs(30)).await;
    assert_eq!(runs[0].reason.as_deref(), Some("sending: smtp timeout"));
    assert_eq!(runs[1].result, Some(RunResult::Succeeded));
    // An operator loosens the schema; an entry that passes it but does not decode.
    let loose = TemplatePatch {
        context_schema: Some(json!({"type": "object"})),
        ..TemplatePatch::default()
    };
    store.update_template("welcome", loose).await.unwrap();
    let mut bad = NewEntry::new("welcome", json!({"mail": "x"}));
    bad.job_run_identifier = Some("bad".into());
    store.enqueue(bad).await.unwrap();
    let runs = wait_settled(&**store, "bad", Duration::from_secs(30)).await;
    assert_eq!(runs.len(), 1, "a permanent failure is not retried");
    let reason = runs[0].reason.clone().unwrap_or_default();
    assert!(reason.contains("missing field `email`"), "{reason}");
    node.shutdown(Duration::from_secs(5)).await;
    let mut sent = outbox.0.lock().unwrap().clone();
    sent.sort();
    assert_eq!(sent, ["ann@x", "bob@x"]);
}

on_every_store!(a_typed_worker_runs_on_a_node);
