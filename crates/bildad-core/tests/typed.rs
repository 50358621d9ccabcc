//! Typed workers and templates from code, on `MemoryStore` (the SQL stores' races are
//! in the workspace's `tests/`).

use bildad_core::{
    Cancellation, DeclaredTemplate, JobArgs, JobContext, JobDefaults, JobError, JobRegistry,
    JobStore, MemoryStore, NewTemplate, RunInfo, State, TemplatePatch, Worker, async_trait,
};
use futures::executor::block_on;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
struct Welcome {
    email: String,
}

impl JobArgs for Welcome {
    const KIND: &'static str = "welcome";
}

/// Nested types, enums, options and lists: `schemars` writes `$defs` and local `$ref`s.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
struct Invoice {
    customer: Customer,
    lines: Vec<Line>,
    note: Option<String>,
    channel: Channel,
    attempt: u8,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
struct Customer {
    id: u64,
    name: String,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
struct Line {
    sku: String,
    cents: i64,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum Channel {
    Mail,
    Sms { number: String },
}

impl JobArgs for Invoice {
    const KIND: &'static str = "billing.invoice";
    fn defaults() -> JobDefaults {
        JobDefaults {
            name: Some("Send an invoice"),
            max_retries: Some(7),
            timeout_seconds: Some(60),
            priority: Some(1),
            unique_for_seconds: None,
            queue: None,
        }
    }
}

fn invoice() -> Invoice {
    Invoice {
        customer: Customer {
            id: 1,
            name: "A".into(),
        },
        lines: vec![],
        note: None,
        channel: Channel::Mail,
        attempt: 0,
    }
}

fn ctx(template: &str, context: Value) -> JobContext {
    JobContext {
        context,
        job_run_identifier: "id-1".into(),
        retry: 1,
        max_retries: 3,
        run_id: 42,
        template: template.into(),
        cancellation: Cancellation::new(),
    }
}

fn run(registry: &JobRegistry, kind: &str, context: Value) -> Result<Option<Value>, JobError> {
    let job = registry.get(kind).expect("registered");
    block_on(job.run(ctx(kind, context)))
}

#[test]
fn a_function_worker_gets_decoded_arguments_and_run_info() {
    async fn welcome(args: Welcome, run: RunInfo) -> Result<String, JobError> {
        Ok(format!("{} {} {}", args.email, run.run_id, run.retry))
    }
    let r = JobRegistry::new().with_worker(welcome);
    assert_eq!(r.job_types(), ["welcome"]);
    let out = run(&r, "welcome", json!({"email": "a@b.c"}));
    assert_eq!(out, Ok(Some(json!("a@b.c 42 1"))));
}

#[test]
fn a_unit_output_stores_no_output() {
    let r = JobRegistry::new().with_worker(|_: Welcome, _: RunInfo| async { Ok(()) });
    assert_eq!(run(&r, "welcome", json!({"email": "x"})), Ok(None));
}

#[test]
fn arguments_that_do_not_decode_fail_permanently_with_the_reason() {
    let r = JobRegistry::new().with_worker(|_: Welcome, _: RunInfo| async { Ok(()) });
    let e = run(&r, "welcome", json!({"mail": "x"})).unwrap_err();
    assert!(e.is_permanent());
    assert!(e.message().contains("\"welcome\""), "{}", e.message());
    assert!(
        e.message().contains("missing field `email`"),
        "{}",
        e.message()
    );
}

#[derive(Clone)]
struct AppState {
    greeting: &'static str,
}

#[test]
fn a_function_worker_reaches_the_registrys_state() {
    async fn welcome(
        args: Welcome,
        _: RunInfo,
        State(s): State<AppState>,
    ) -> Result<String, JobError> {
        Ok(format!("{} {}", s.greeting, args.email))
    }
    let r = JobRegistry::new()
        .with_state(AppState { greeting: "hello" })
        .with_worker(welcome);
    assert_eq!(
        run(&r, "welcome", json!({"email": "ann"})),
        Ok(Some(json!("hello ann")))
    );
    // A closure works as well.
    let r = JobRegistry::new().with_state(7_u32).with_worker(
        |a: Welcome, _: RunInfo, State(n): State<u32>| async move {
            Ok(json!({"n": n, "email": a.email}))
        },
    );
    assert_eq!(
        run(&r, "welcome", json!({"email": "b"})),
        Ok(Some(json!({"n": 7, "email": "b"})))
    );
}

#[test]
#[should_panic(expected = "needs State<typed::AppState>")]
fn a_worker_whose_state_is_missing_is_refused_at_registration() {
    async fn welcome(_: Welcome, _: RunInfo, _: State<AppState>) -> Result<(), JobError> {
        Ok(())
    }
    let _ = JobRegistry::new().with_worker(welcome);
}

struct Counter {
    base: i64,
}

#[async_trait]
impl Worker<Welcome> for Counter {
    type Output = i64;
    async fn work(&self, args: Welcome, run: RunInfo) -> Result<i64, JobError> {
        if args.email.is_empty() {
            return Err(JobError::permanent("no address"));
        }
        Ok(self.base + i64::from(run.retry))
    }
}

#[test]
fn a_struct_worker_holds_its_own_state() {
    let r = JobRegistry::new().with_worker(Counter { base: 10 });
    assert_eq!(
        run(&r, "welcome", json!({"email": "x"})),
        Ok(Some(json!(11)))
    );
    assert!(
        run(&r, "welcome", json!({"email": ""}))
            .unwrap_err()
            .is_permanent()
    );
}

#[derive(Debug, thiserror::Error)]
#[error("mail server said no")]
struct Refused(#[source] std::io::Error);

#[test]
fn errors_of_every_kind_convert_with_the_question_mark() {
    fn anyhow_fails() -> Result<(), JobError> {
        let e = anyhow::anyhow!("connection reset").context("sending the welcome mail");
        Err(e)?;
        Ok(())
    }
    let e = anyhow_fails().unwrap_err();
    assert_eq!(e.message(), "sending the welcome mail: connection reset");
    assert!(!e.is_permanent());

    fn std_fails() -> Result<(), JobError> {
        Err(Refused(std::io::Error::other("550 mailbox full")))?
    }
    assert_eq!(
        std_fails().unwrap_err().message(),
        "mail server said no: 550 mailbox full"
    );

    fn text_fails() -> Result<(), JobError> {
        Err("plain text")?
    }
    assert_eq!(text_fails().unwrap_err().message(), "plain text");
}

#[test]
fn the_template_comes_from_the_type_and_passes_bildads_schema_rules() {
    let d = DeclaredTemplate::of::<Invoice>();
    let t = &d.template;
    assert_eq!(
        (t.code.as_str(), t.job_type.as_str()),
        ("billing.invoice", "billing.invoice")
    );
    assert_eq!(t.name, "Send an invoice");
    assert_eq!((t.default_max_retries, t.default_timeout_seconds), (7, 60));
    assert!(t.active);
    t.validate().expect("schemars' schema is accepted");
    let schema = &t.context_schema;
    assert!(schema.get("$defs").is_some(), "{schema}");
    // The schema checks what serde would refuse.
    let v = bildad_core::validation::compile_schema(schema).unwrap();
    let good = json!({"customer": {"id": 1, "name": "A"}, "lines": [], "note": null,
                      "channel": {"sms": {"number": "1"}}, "attempt": 2});
    assert!(v.is_valid(&good));
    assert!(serde_json::from_value::<Invoice>(good).is_ok());
    assert!(
        !v.is_valid(&json!({"customer": {"id": -1, "name": "A"}, "lines": [],
                                 "channel": "mail", "attempt": 300}))
    );
    // Defaults the type leaves unset are not owned: the operator may change them.
    let w = DeclaredTemplate::of::<Welcome>();
    assert_eq!(w.template.name, "welcome");
    assert_eq!(w.owned.name, None);
    assert_eq!(w.owned.default_max_retries, None);
    assert_eq!(w.owned.job_type.as_deref(), Some("welcome"));
}

fn registry() -> JobRegistry {
    JobRegistry::new()
        .with_worker(|_: Welcome, _: RunInfo| async { Ok(()) })
        .with_worker(|_: Invoice, _: RunInfo| async { Ok(()) })
}

#[test]
fn ensure_creates_then_changes_nothing() {
    block_on(async {
        let store = MemoryStore::new();
        let r = registry();
        let first = r.ensure_templates(&store).await.unwrap();
        assert_eq!(first.created, ["billing.invoice", "welcome"]);
        let before = store.get_template("welcome").await.unwrap();
        let again = r.ensure_templates(&store).await.unwrap();
        assert!(again.created.is_empty() && again.updated.is_empty());
        assert_eq!(again.unchanged.len(), 2);
        assert_eq!(store.get_template("welcome").await.unwrap(), before);
    });
}

#[test]
fn ensure_updates_a_changed_schema_and_keeps_what_the_operator_owns() {
    block_on(async {
        let store = MemoryStore::new();
        registry().ensure_templates(&store).await.unwrap();
        // The operator deactivates, reorders and gives more retries (not declared by
        // Welcome); someone edits the schema by hand.
        let patch = TemplatePatch {
            active: Some(false),
            display_order: Some(9),
            default_max_retries: Some(8),
            name: Some("Welcome mail".into()),
            context_schema: Some(json!({"type": "object"})),
            ..TemplatePatch::default()
        };
        store.update_template("welcome", patch).await.unwrap();
        let done = registry().ensure_templates(&store).await.unwrap();
        assert_eq!(done.updated, ["welcome"]);
        let t = store.get_template("welcome").await.unwrap();
        assert_eq!(t.context_schema, Welcome::context_schema());
        assert!(!t.active, "a deactivated template stays inactive");
        assert_eq!((t.display_order, t.default_max_retries), (9, 8));
        assert_eq!(t.name, "Welcome mail");
        // Invoice declares its name and retries: the code keeps them.
        let patch = TemplatePatch {
            name: Some("x".into()),
            default_max_retries: Some(1),
            ..TemplatePatch::default()
        };
        store
            .update_template("billing.invoice", patch)
            .await
            .unwrap();
        registry().ensure_templates(&store).await.unwrap();
        let t = store.get_template("billing.invoice").await.unwrap();
        assert_eq!(
            (t.name.as_str(), t.default_max_retries),
            ("Send an invoice", 7)
        );
    });
}

#[test]
fn ensure_refuses_a_declared_template_that_breaks_a_rule() {
    block_on(async {
        let store = MemoryStore::new();
        let mut r = JobRegistry::new();
        r.declare(DeclaredTemplate::new(NewTemplate::new(
            "bad",
            "bad",
            "bad",
            json!({"$ref": "https://example.com/s.json"}),
        )));
        let e = r.ensure_templates(&store).await.unwrap_err();
        assert_eq!(e.violations()[0].pointer, "/context_schema/$ref");
        assert!(store.get_template("bad").await.is_err());
    });
}

#[test]
fn typed_enqueue_goes_through_the_stores_checks() {
    use bildad_core::{EnqueueOptions, ErrorKind, Jobs};
    use std::sync::Arc;
    block_on(async {
        let store: Arc<dyn JobStore> = Arc::new(MemoryStore::new());
        let jobs = Jobs::new(store.clone());
        // No template yet: the store's error, nothing written.
        let e = jobs
            .enqueue(Welcome { email: "a".into() })
            .await
            .unwrap_err();
        assert_eq!(e.violations()[0].pointer, "/template", "{e}");
        registry().ensure_templates(&*store).await.unwrap();
        let opts = EnqueueOptions::default().identifier("inv-1");
        let args = invoice();
        let entry = jobs.enqueue_with(args, opts.clone()).await.unwrap();
        // The job type's priority, the template's (declared) retries.
        assert_eq!((entry.priority, entry.max_retries), (1, 7));
        let again = invoice();
        let e = jobs.enqueue_with(again, opts).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict);
        let many = jobs
            .enqueue_many(["x", "y"].map(|e| Welcome { email: e.into() }))
            .await
            .unwrap();
        assert_eq!(many.len(), 2);
        // Bad options fail as the store reports them, with the batch index.
        let e = jobs
            .enqueue_many_with([
                (Welcome { email: "ok".into() }, EnqueueOptions::default()),
                (
                    Welcome {
                        email: "bad".into(),
                    },
                    EnqueueOptions::default().max_retries(-1),
                ),
            ])
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid);
        assert!(e.violations()[0].pointer.starts_with("/1/"), "{e}");
        assert_eq!(store.stats().await.unwrap().available, 3);
    });
}

#[derive(Serialize, Deserialize, JsonSchema)]
struct BadKind {}

impl JobArgs for BadKind {
    const KIND: &'static str = "has space";
    fn defaults() -> JobDefaults {
        JobDefaults {
            timeout_seconds: Some(0),
            ..JobDefaults::default()
        }
    }
}

#[test]
fn a_job_type_whose_kind_or_defaults_break_a_rule_is_refused_with_the_field() {
    block_on(async {
        let store = MemoryStore::new();
        let r = JobRegistry::new().with_worker(|_: BadKind, _: RunInfo| async { Ok(()) });
        let e = r.ensure_templates(&store).await.unwrap_err();
        let pointers: Vec<&str> = e.violations().iter().map(|v| v.pointer.as_str()).collect();
        assert!(pointers.contains(&"/code"), "{e}");
        assert!(pointers.contains(&"/default_timeout_seconds"), "{e}");
        let templates = store
            .list_templates(Default::default(), Default::default())
            .await
            .unwrap();
        assert_eq!(templates.total, 0);
    });
}

#[derive(Serialize, Deserialize, JsonSchema)]
struct DailyDigest {
    user: u64,
}

impl JobArgs for DailyDigest {
    const KIND: &'static str = "digest.daily";
    fn defaults() -> JobDefaults {
        JobDefaults {
            unique_for_seconds: Some(3600),
            ..JobDefaults::default()
        }
    }
}

#[test]
fn a_job_types_unique_default_makes_a_second_enqueue_a_duplicate() {
    use bildad_core::{EnqueueOptions, ErrorKind, Jobs, StoreError};
    use std::sync::Arc;
    block_on(async {
        let store: Arc<dyn JobStore> = Arc::new(MemoryStore::new());
        let registry =
            JobRegistry::new().with_worker(|_: DailyDigest, _: RunInfo| async { Ok(()) });
        registry.ensure_templates(&*store).await.unwrap();
        let jobs = Jobs::new(store.clone());
        let first = jobs.enqueue(DailyDigest { user: 1 }).await.unwrap();
        match jobs.enqueue(DailyDigest { user: 1 }).await {
            Err(StoreError::Duplicate {
                index: 0,
                job_run_identifier,
            }) => assert_eq!(job_run_identifier, first.job_run_identifier),
            other => panic!("expected a duplicate: {other:?}"),
        }
        jobs.enqueue(DailyDigest { user: 2 }).await.unwrap();
        // The enqueue's own window wins over the type's default.
        let e = jobs
            .enqueue_with(
                DailyDigest { user: 3 },
                EnqueueOptions::default().unique_for_seconds(0),
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid);
        assert_eq!(e.violations()[0].pointer, "/unique_for_seconds", "{e}");
        assert_eq!(store.stats().await.unwrap().available, 2);
    });
}

#[test]
fn a_worker_snoozes_or_cancels_with_the_question_mark() {
    use bildad_core::FailureKind;
    use std::time::Duration;
    async fn digest(args: DailyDigest, _: RunInfo) -> Result<(), JobError> {
        match args.user {
            0 => Err(JobError::snooze(Duration::from_secs(30)))?,
            1 => Err(JobError::cancel("the user left"))?,
            _ => Ok(()),
        }
    }
    let registry = JobRegistry::new().with_worker(digest);
    let e = run(&registry, DailyDigest::KIND, json!({"user": 0})).unwrap_err();
    assert_eq!(e.kind(), FailureKind::Snoozed(Duration::from_secs(30)));
    assert_eq!(e.message(), "Snoozed for 30 s");
    let e = run(&registry, DailyDigest::KIND, json!({"user": 1})).unwrap_err();
    assert_eq!(e.kind(), FailureKind::Cancelled);
    assert_eq!(e.message(), "Cancelled: the user left");
    assert!(run(&registry, DailyDigest::KIND, json!({"user": 2})).is_ok());
}
