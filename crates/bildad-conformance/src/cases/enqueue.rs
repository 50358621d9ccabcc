//! Enqueue (SPEC §2.1): defaults, validation, identifiers, bulk.

use crate::support::*;
use bildad_core::{EntryStatus, ErrorKind, JobStore, NewEntry, NewTemplate, TemplatePatch};
use serde_json::json;
use std::sync::Arc;

/// Unset fields come from the template (timeout, retries), priority 5, a UUID
/// identifier, `run_at` = now; the entry is `AVAILABLE` with no run.
pub async fn enqueue_defaults_from_template(store: Arc<dyn JobStore>) {
    let s = &*store;
    let mut n = NewTemplate::new(unique("tpl"), "n", "a.b", any_object());
    n.default_timeout_seconds = 77;
    n.default_max_retries = 6;
    let t = create_template(s, n).await;
    let before = now(s).await;
    let ctx = json!({"to": "a@example.com", "n": [1, 2, {"x": null}]});
    let e = enqueue(s, NewEntry::new(t.code.clone(), ctx.clone())).await;
    let after = now(s).await;
    assert_eq!(e.template, t.code);
    assert_eq!(e.context, ctx);
    assert_eq!(e.status, EntryStatus::Available);
    assert_eq!(e.priority, 5);
    assert_eq!(e.timeout_seconds, 77);
    assert_eq!(e.max_retries, 6);
    assert_eq!(e.attempts, 0);
    assert_eq!(e.current_run_id, None);
    uuid::Uuid::parse_str(&e.job_run_identifier)
        .unwrap_or_else(|x| panic!("identifier {:?} is not a UUID: {x}", e.job_run_identifier));
    assert_between(e.run_at, before, after, "run_at defaults to now");
    assert_between(e.inserted_at, before, after, "inserted_at");
    assert!(e.run_at <= after, "run_at must not be in the future");
    assert_eq!(
        expect_ok(s.get_entry(&e.job_run_identifier).await, "get_entry"),
        e
    );

    let e2 = enqueue(s, NewEntry::new(t.code.clone(), json!({}))).await;
    assert_ne!(
        e2.job_run_identifier, e.job_run_identifier,
        "fresh UUID each time"
    );
    assert_ne!(e2.id, e.id);
    expect_err(
        s.get_entry("conf-no-such-entry").await,
        ErrorKind::NotFound,
        "unknown",
    );
}

/// Fields the caller sets win over the template's defaults.
pub async fn enqueue_explicit_fields(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let at = now(s).await + chrono::Duration::hours(3);
    let id = unique("conf-id");
    let e = enqueue(
        s,
        NewEntry::new(t.code.clone(), json!({"k": 1}))
            .identifier(id.clone())
            .priority(-2)
            .timeout_seconds(9)
            .max_retries(0)
            .run_at(at),
    )
    .await;
    assert_eq!(e.job_run_identifier, id);
    assert_eq!(e.priority, -2);
    assert_eq!(e.timeout_seconds, 9);
    assert_eq!(e.max_retries, 0);
    assert_close(
        e.run_at,
        at,
        chrono::Duration::milliseconds(1),
        "run_at kept",
    );
    assert_eq!(expect_ok(s.get_entry(&id).await, "get_entry"), e);
}

/// An unknown template is `Invalid` at `/template`; nothing is written.
pub async fn enqueue_unknown_template_invalid(store: Arc<dyn JobStore>) {
    let s = &*store;
    let e = expect_err(
        s.enqueue(NewEntry::new("conf.no.such.template", json!({})))
            .await,
        ErrorKind::Invalid,
        "unknown template",
    );
    assert_pointers(&e, &["/template"]);
    assert_eq!(counts(s).await, (0, 0));
}

/// A template code holding a NUL is `Invalid` at `/template` (never a database error),
/// alone and in a bulk enqueue beside a valid entry and an identifier holding a NUL;
/// nothing is written.
pub async fn enqueue_template_code_with_nul_invalid(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let nul_code = format!("{}\0", t.code);
    let e = expect_err(
        s.enqueue(NewEntry::new(nul_code.clone(), json!({}))).await,
        ErrorKind::Invalid,
        "template code with NUL",
    );
    assert_pointers(&e, &["/template"]);
    let e = expect_err(
        s.enqueue_many(vec![
            NewEntry::new(t.code.clone(), json!({})),
            NewEntry::new(nul_code.clone(), json!({})),
            NewEntry::new(nul_code, json!({})).identifier("nul\0id"),
        ])
        .await,
        ErrorKind::Invalid,
        "bulk with a template code with NUL",
    );
    assert_pointers(&e, &["/1/template", "/2/template", "/2/job_run_identifier"]);
    assert_eq!(counts(s).await, (0, 0));
}

/// An inactive template is `Invalid` at `/template`, and nothing is written; once active
/// again it is accepted.
pub async fn enqueue_inactive_template_invalid(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let patch = TemplatePatch {
        active: Some(false),
        ..TemplatePatch::default()
    };
    expect_ok(s.update_template(&t.code, patch).await, "deactivate");
    let id = unique("conf-id");
    let e = expect_err(
        s.enqueue(NewEntry::new(t.code.clone(), json!({})).identifier(id.clone()))
            .await,
        ErrorKind::Invalid,
        "inactive template",
    );
    assert_pointers(&e, &["/template"]);
    expect_err(
        s.get_entry(&id).await,
        ErrorKind::NotFound,
        "nothing written",
    );
    assert_eq!(counts(s).await, (0, 0));
    // Active again: accepted.
    let patch = TemplatePatch {
        active: Some(true),
        ..TemplatePatch::default()
    };
    expect_ok(s.update_template(&t.code, patch).await, "activate");
    enqueue(s, NewEntry::new(t.code.clone(), json!({})).identifier(id)).await;
}

/// A context that breaks the schema is `Invalid`, every violation at `/context/...`;
/// nothing is written.
pub async fn enqueue_invalid_context_writes_nothing(store: Arc<dyn JobStore>) {
    let s = &*store;
    let schema = json!({
        "type": "object",
        "properties": {
            "email": {"type": "string", "minLength": 3},
            "count": {"type": "integer", "minimum": 1},
            "tags": {"type": "array", "items": {"type": "string"}}
        },
        "required": ["email", "count"]
    });
    let t = create_template(s, NewTemplate::new(unique("tpl"), "n", "a.b", schema)).await;
    let good = enqueue(
        s,
        NewEntry::new(t.code.clone(), json!({"email": "a@b", "count": 1})),
    )
    .await;
    let stats_before = expect_ok(s.stats().await, "stats");

    let id = unique("conf-id");
    let bad = json!({"email": "x", "count": 0, "tags": ["ok", 5]});
    let e = expect_err(
        s.enqueue(NewEntry::new(t.code.clone(), bad).identifier(id.clone()))
            .await,
        ErrorKind::Invalid,
        "invalid context",
    );
    assert_pointers(&e, &["/context/email", "/context/count", "/context/tags/1"]);
    assert!(
        pointers(&e).iter().all(|p| p.starts_with("/context")),
        "{e}"
    );
    let e = expect_err(
        s.enqueue(NewEntry::new(t.code.clone(), json!({"tags": []})))
            .await,
        ErrorKind::Invalid,
        "missing required",
    );
    // Both missing properties are reported (at the object that lacks them).
    assert!(e.violations().len() >= 2, "{e}");
    assert!(pointers(&e).iter().all(|p| p == "/context"), "{e}");
    let e = expect_err(
        s.enqueue(NewEntry::new(t.code.clone(), json!([1]))).await,
        ErrorKind::Invalid,
        "not an object",
    );
    assert_pointers(&e, &["/context"]);

    expect_err(
        s.get_entry(&id).await,
        ErrorKind::NotFound,
        "nothing written",
    );
    assert_eq!(counts(s).await, (1, 0));
    assert_eq!(expect_ok(s.stats().await, "stats"), stats_before);
    assert_eq!(all_entries(s, None).await, vec![good]);
}

/// Field rules: identifier, timeout, retries; every violation named, nothing written.
pub async fn enqueue_invalid_fields(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let e = expect_err(
        s.enqueue(
            NewEntry::new(t.code.clone(), json!({}))
                .identifier("has/slash")
                .timeout_seconds(0)
                .max_retries(-1),
        )
        .await,
        ErrorKind::Invalid,
        "invalid fields",
    );
    assert_pointers(
        &e,
        &["/job_run_identifier", "/timeout_seconds", "/max_retries"],
    );
    expect_err(
        s.enqueue(NewEntry::new(t.code.clone(), json!({})).identifier(""))
            .await,
        ErrorKind::Invalid,
        "empty identifier",
    );
    expect_err(
        s.enqueue(NewEntry::new(t.code.clone(), json!({})).identifier("x".repeat(256)))
            .await,
        ErrorKind::Invalid,
        "long identifier",
    );
    assert_eq!(counts(s).await, (0, 0));
}

/// A duplicate identifier is a `Conflict`; the existing entry is untouched.
pub async fn enqueue_duplicate_identifier_conflicts(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let t2 = template().create(s).await;
    let id = unique("conf-id");
    let orig = enqueue(
        s,
        NewEntry::new(t.code.clone(), json!({"v": 1}))
            .identifier(id.clone())
            .priority(3),
    )
    .await;
    for dup in [
        NewEntry::new(t.code.clone(), json!({"v": 2})).identifier(id.clone()),
        NewEntry::new(t2.code.clone(), json!({"v": 3}))
            .identifier(id.clone())
            .priority(1),
    ] {
        expect_err(
            s.enqueue(dup).await,
            ErrorKind::Conflict,
            "duplicate identifier",
        );
    }
    assert_eq!(expect_ok(s.get_entry(&id).await, "original"), orig);
    assert_eq!(counts(s).await, (1, 0));

    // Still a conflict while it runs.
    let node = live_node(s, "conf-node").await;
    let c = claim_one(s, &node, &t, &id).await;
    expect_err(
        s.enqueue(NewEntry::new(t.code.clone(), json!({})).identifier(id.clone()))
            .await,
        ErrorKind::Conflict,
        "duplicate of a running entry",
    );
    let running = expect_ok(s.get_entry(&id).await, "running entry");
    assert_eq!(running.status, EntryStatus::Running);
    assert_eq!(running.current_run_id, Some(c.run.id));
    assert_eq!(running.context, json!({"v": 1}));
}

/// An identifier whose entry is gone but whose runs remain is still taken.
pub async fn enqueue_identifier_with_history_conflicts(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let node = live_node(s, "conf-node").await;
    let id = unique("conf-id");
    enqueue(
        s,
        NewEntry::new(t.code.clone(), json!({})).identifier(id.clone()),
    )
    .await;
    let c = claim_one(s, &node, &t, &id).await;
    finish_successfully(s, c.run.id).await;
    expect_err(s.get_entry(&id).await, ErrorKind::NotFound, "entry deleted");
    expect_err(
        s.enqueue(NewEntry::new(t.code.clone(), json!({})).identifier(id.clone()))
            .await,
        ErrorKind::Conflict,
        "identifier with run history",
    );
    expect_err(
        s.enqueue_many(vec![
            NewEntry::new(t.code.clone(), json!({})),
            NewEntry::new(t.code.clone(), json!({})).identifier(id.clone()),
        ])
        .await,
        ErrorKind::Conflict,
        "bulk with an identifier with history",
    );
    assert_eq!(counts(s).await, (0, 1));
}

/// Eight enqueues of one identifier at once: exactly one succeeds, the others are
/// `Conflict` (never another error).
pub async fn enqueue_same_identifier_concurrently(store: Arc<dyn JobStore>) {
    let t = template().create(&*store).await;
    let id = unique("conf-id");
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (store, code, id) = (store.clone(), t.code.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            let new = NewEntry::new(code, json!({"i": i})).identifier(id);
            retry_transient(|| store.enqueue(new.clone())).await
        }));
    }
    let mut won = Vec::new();
    for r in futures::future::join_all(tasks).await {
        match r.expect("task") {
            Ok(e) => won.push(e),
            Err(e) => assert_eq!(e.kind(), ErrorKind::Conflict, "loser: {e:?}"),
        }
    }
    assert_eq!(won.len(), 1, "exactly one enqueue wins: {won:?}");
    assert_eq!(expect_ok(store.get_entry(&id).await, "entry"), won[0]);
    assert_eq!(counts(&*store).await, (1, 0));
}

/// `enqueue_many` is all or nothing; violations point at `/<index>/...`.
pub async fn enqueue_many_all_or_nothing(store: Arc<dyn JobStore>) {
    let s = &*store;
    let schema =
        json!({"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}});
    let t = create_template(s, NewTemplate::new(unique("tpl"), "n", "a.b", schema)).await;
    let ok_entry = |n: i64| NewEntry::new(t.code.clone(), json!({"n": n}));

    let e = expect_err(
        s.enqueue_many(vec![
            ok_entry(0),
            NewEntry::new(t.code.clone(), json!({"n": "x"})),
            ok_entry(2),
            NewEntry::new("conf.no.such.template", json!({"n": 3})),
            ok_entry(4).timeout_seconds(0),
        ])
        .await,
        ErrorKind::Invalid,
        "bulk with bad entries",
    );
    assert_pointers(&e, &["/1/context/n", "/3/template", "/4/timeout_seconds"]);
    assert!(
        !pointers(&e)
            .iter()
            .any(|p| p.starts_with("/0/") || p.starts_with("/2/")),
        "{e}"
    );
    assert_eq!(counts(s).await, (0, 0), "nothing written");

    // A duplicate inside the batch, or of an existing entry: Conflict, nothing written.
    let id = unique("conf-id");
    expect_err(
        s.enqueue_many(vec![
            ok_entry(0).identifier(id.clone()),
            ok_entry(1),
            ok_entry(2).identifier(id.clone()),
        ])
        .await,
        ErrorKind::Conflict,
        "duplicate inside the batch",
    );
    assert_eq!(counts(s).await, (0, 0), "nothing written");
    let existing = enqueue(s, ok_entry(9).identifier(id.clone())).await;
    expect_err(
        s.enqueue_many(vec![ok_entry(0), ok_entry(1).identifier(id.clone())])
            .await,
        ErrorKind::Conflict,
        "duplicate of an existing entry",
    );
    assert_eq!(counts(s).await, (1, 0), "nothing written");
    assert_eq!(expect_ok(s.get_entry(&id).await, "existing"), existing);

    // Success: in order, each with its own identifier, in run order too.
    let id2 = unique("conf-id");
    let got = expect_ok(
        s.enqueue_many(vec![
            ok_entry(10),
            ok_entry(11).identifier(id2.clone()),
            ok_entry(12),
        ])
        .await,
        "enqueue_many",
    );
    assert_eq!(got.len(), 3);
    let ns: Vec<_> = got.iter().map(|e| e.context["n"].clone()).collect();
    assert_eq!(ns, [json!(10), json!(11), json!(12)]);
    assert_eq!(got[1].job_run_identifier, id2);
    for g in &got {
        assert_eq!(
            expect_ok(s.get_entry(&g.job_run_identifier).await, "get"),
            *g
        );
    }
    let listed: Vec<_> = all_entries(s, None)
        .await
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(listed, [existing.id, got[0].id, got[1].id, got[2].id]);
    assert!(expect_ok(s.enqueue_many(vec![]).await, "empty bulk").is_empty());
}

/// A large `enqueue_many` (more entries than a store sends in one statement) is all or
/// nothing too: a violation in its last entries leaves none of the first ones written,
/// every violation is reported with its index, and success keeps the request's order.
pub async fn enqueue_many_large_batch_all_or_nothing(store: Arc<dyn JobStore>) {
    const N: usize = 2_500;
    let s = &*store;
    let schema =
        json!({"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}});
    let t = create_template(s, NewTemplate::new(unique("tpl"), "n", "a.b", schema)).await;
    let batch = |bad: &[usize]| -> Vec<NewEntry> {
        (0..N)
            .map(|i| {
                let n = if bad.contains(&i) {
                    json!("x")
                } else {
                    json!(i)
                };
                NewEntry::new(t.code.clone(), json!({ "n": n }))
            })
            .collect()
    };

    let e = expect_err(
        s.enqueue_many(batch(&[N - 1])).await,
        ErrorKind::Invalid,
        "the last entry is invalid",
    );
    assert_pointers(&e, &[&format!("/{}/context/n", N - 1)]);
    assert_eq!(counts(s).await, (0, 0), "nothing written");
    let e = expect_err(
        s.enqueue_many(batch(&[1, 1_500, N - 2])).await,
        ErrorKind::Invalid,
        "invalid entries spread over the batch",
    );
    let want = [
        "/1/context/n".to_string(),
        "/1500/context/n".into(),
        format!("/{}/context/n", N - 2),
    ];
    assert_pointers(&e, &want.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(pointers(&e).len(), 3, "{e}");
    assert_eq!(counts(s).await, (0, 0), "nothing written");

    let got = expect_ok(s.enqueue_many(batch(&[])).await, "enqueue_many");
    let ns: Vec<_> = got.iter().map(|e| e.context["n"].clone()).collect();
    assert_eq!(ns, (0..N).map(|i| json!(i)).collect::<Vec<_>>());
    let listed: Vec<_> = all_entries(s, None)
        .await
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(
        listed,
        got.iter().map(|e| e.id).collect::<Vec<_>>(),
        "run order is request order"
    );
    assert_eq!(
        expect_ok(
            s.get_entry(&got[N - 1].job_run_identifier).await,
            "the last"
        ),
        got[N - 1]
    );
}

/// Enqueue validates against the template's current schema: after an update the old
/// schema no longer applies (a store that caches compiled schemas must notice).
pub async fn enqueue_validates_against_current_schema(store: Arc<dyn JobStore>) {
    let s = &*store;
    let requires = |k: &str| json!({"type": "object", "required": [k]});
    let t = create_template(
        s,
        NewTemplate::new(unique("tpl"), "n", "a.b", requires("a")),
    )
    .await;
    enqueue(s, NewEntry::new(t.code.clone(), json!({"a": 1}))).await;
    expect_err(
        s.enqueue(NewEntry::new(t.code.clone(), json!({"b": 1})))
            .await,
        ErrorKind::Invalid,
        "old schema",
    );
    let patch = TemplatePatch {
        context_schema: Some(requires("b")),
        ..TemplatePatch::default()
    };
    expect_ok(s.update_template(&t.code, patch).await, "update schema");
    let e = expect_err(
        s.enqueue(NewEntry::new(t.code.clone(), json!({"a": 1})))
            .await,
        ErrorKind::Invalid,
        "new schema",
    );
    assert_pointers(&e, &["/context"]);
    enqueue(s, NewEntry::new(t.code.clone(), json!({"b": 1}))).await;
    assert_eq!(counts(s).await, (2, 0));
}

/// A store that pushes wake-ups (`listen_for_enqueues` is `Some`) wakes its listeners
/// after an enqueue that committed, and after `enqueue_many`; a store that returns `None`
/// passes (it cannot push, and says so).
pub async fn enqueue_wakes_listeners(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = create_template(
        s,
        NewTemplate::new(unique("tpl"), "n", "a.b", json!({"type": "object"})),
    )
    .await;
    let Some(mut first) = expect_ok(s.listen_for_enqueues().await, "listen") else {
        return;
    };
    let mut second = expect_ok(s.listen_for_enqueues().await, "listen again").expect("Some twice");
    enqueue(s, NewEntry::new(t.code.clone(), json!({}))).await;
    for l in [&mut first, &mut second] {
        let woke = tokio::time::timeout(std::time::Duration::from_secs(10), l.wait())
            .await
            .expect("no wake-up within 10 s of an enqueue");
        assert!(woke, "the listener reported it was lost");
    }
    expect_ok(
        s.enqueue_many(vec![NewEntry::new(t.code.clone(), json!({})); 3])
            .await,
        "enqueue_many",
    );
    let woke = tokio::time::timeout(std::time::Duration::from_secs(10), first.wait())
        .await
        .expect("no wake-up within 10 s of enqueue_many");
    assert!(woke);
}
