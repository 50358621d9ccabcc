//! Templates: create_template, read, partial update, delete, validation, listing.

use crate::support::*;
use bildad_core::{
    ErrorKind, JobStore, JobTemplate, NewEntry, NewTemplate, PageRequest, TemplateFilter,
    TemplatePatch,
};
use serde_json::{Value, json};
use std::sync::Arc;

/// The "Send mail" template of the create, update and delete cases: every field set away
/// from its default, inactive. Returns it with its schema.
async fn mail_template(s: &dyn JobStore) -> (JobTemplate, Value) {
    let schema = json!({"type": "object", "properties": {"to": {"type": "string"}}});
    let mut new = NewTemplate::new(unique("tpl"), "Send mail", "mail.send", schema.clone());
    new.display_order = 7;
    new.default_timeout_seconds = 120;
    new.default_max_retries = 9;
    new.active = false;
    (create_template(s, new).await, schema)
}

/// A created template holds every field given, is stamped now by the store, and reads
/// back the same by `get_template`.
pub async fn template_create_keeps_every_field(store: Arc<dyn JobStore>) {
    let s = &*store;
    let before = now(s).await;
    let (t, schema) = mail_template(s).await;
    let after = now(s).await;
    assert_eq!(t.name, "Send mail");
    assert_eq!(t.job_type, "mail.send");
    assert!(!t.active);
    assert_eq!(t.display_order, 7);
    assert_eq!(t.default_timeout_seconds, 120);
    assert_eq!(t.default_max_retries, 9);
    assert_eq!(t.context_schema, schema);
    assert_between(t.inserted_at, before, after, "inserted_at");
    assert_eq!(t.inserted_at, t.updated_at);
    assert_eq!(expect_ok(s.get_template(&t.code).await, "get_template"), t);
}

/// A template created with only the required fields gets the defaults of SPEC §1.
pub async fn template_create_applies_defaults(store: Arc<dyn JobStore>) {
    let s = &*store;
    let (t, _) = mail_template(s).await;
    let d = create_template(s, NewTemplate::new(unique("tpl"), "D", "x.y", json!(true))).await;
    assert!(d.active);
    assert_eq!(d.display_order, 0);
    assert_eq!(d.default_timeout_seconds, 3600);
    assert_eq!(d.default_max_retries, 3);
    assert_ne!(d.id, t.id);
}

/// A partial update changes only the given fields, and `updated_at` moves forward.
pub async fn template_update_changes_only_given_fields(store: Arc<dyn JobStore>) {
    let s = &*store;
    let (t, schema) = mail_template(s).await;
    let patch = TemplatePatch {
        name: Some("Send mail now".into()),
        active: Some(true),
        ..TemplatePatch::default()
    };
    let u = expect_ok(s.update_template(&t.code, patch).await, "update_template");
    assert_eq!(u.name, "Send mail now");
    assert!(u.active);
    assert_eq!(u.id, t.id);
    assert_eq!(u.job_type, t.job_type);
    assert_eq!(u.display_order, 7);
    assert_eq!(u.default_timeout_seconds, 120);
    assert_eq!(u.default_max_retries, 9);
    assert_eq!(u.context_schema, schema);
    assert_eq!(u.inserted_at, t.inserted_at);
    assert!(
        u.updated_at > t.updated_at,
        "updated_at must move forward (it names the schema version): {} -> {}",
        t.updated_at,
        u.updated_at
    );
    assert_eq!(expect_ok(s.get_template(&t.code).await, "get_template"), u);
}

/// Every field but the code can be patched.
pub async fn template_update_changes_every_field(store: Arc<dyn JobStore>) {
    let s = &*store;
    let (t, _) = mail_template(s).await;
    let schema2 = json!({"type": "object", "required": ["to"]});
    let patch = TemplatePatch {
        name: Some("Send mail now".into()),
        job_type: Some("mail.send2".into()),
        context_schema: Some(schema2.clone()),
        active: Some(true),
        display_order: Some(-3),
        default_timeout_seconds: Some(30),
        default_max_retries: Some(0),
        queue: Some("mail".into()),
    };
    let u = expect_ok(s.update_template(&t.code, patch).await, "update_template");
    assert_eq!(u.queue, "mail");
    assert_eq!(u.name, "Send mail now");
    assert_eq!(u.job_type, "mail.send2");
    assert_eq!(u.context_schema, schema2);
    assert!(u.active);
    assert_eq!(u.display_order, -3);
    assert_eq!(u.default_timeout_seconds, 30);
    assert_eq!(u.default_max_retries, 0);
    assert!(u.updated_at > t.updated_at);
}

/// An invalid patch is `Invalid`, names every violation, and changes nothing.
pub async fn template_invalid_update_changes_nothing(store: Arc<dyn JobStore>) {
    let s = &*store;
    let (t, _) = mail_template(s).await;
    let bad = TemplatePatch {
        name: Some("ok".into()),
        default_timeout_seconds: Some(0),
        context_schema: Some(json!({"type": "nonsense"})),
        ..TemplatePatch::default()
    };
    let e = expect_err(
        s.update_template(&t.code, bad).await,
        ErrorKind::Invalid,
        "bad patch",
    );
    assert_pointers(&e, &["/default_timeout_seconds"]);
    assert!(
        pointers(&e)
            .iter()
            .any(|p| p.starts_with("/context_schema")),
        "{e}"
    );
    assert_eq!(expect_ok(s.get_template(&t.code).await, "get_template"), t);
}

/// A deleted template is gone: get, delete and update of its code are `NotFound`; other
/// templates are untouched.
pub async fn template_delete_then_not_found(store: Arc<dyn JobStore>) {
    let s = &*store;
    let (t, _) = mail_template(s).await;
    let other = template().create(s).await;
    expect_ok(s.delete_template(&t.code).await, "delete_template");
    expect_err(
        s.get_template(&t.code).await,
        ErrorKind::NotFound,
        "get deleted",
    );
    expect_err(
        s.delete_template(&t.code).await,
        ErrorKind::NotFound,
        "delete twice",
    );
    expect_err(
        s.update_template(&t.code, TemplatePatch::default()).await,
        ErrorKind::NotFound,
        "update deleted",
    );
    assert_eq!(
        expect_ok(s.get_template(&other.code).await, "get other"),
        other
    );
}

/// A duplicate code is a `Conflict`, and the existing template is untouched.
pub async fn template_duplicate_code_conflicts(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let again = NewTemplate::new(t.code.clone(), "Other", "other.type", json!({}));
    expect_err(
        s.create_template(again).await,
        ErrorKind::Conflict,
        "duplicate code",
    );
    assert_eq!(expect_ok(s.get_template(&t.code).await, "get"), t);
    let all = expect_ok(
        s.list_templates(TemplateFilter::All, page(0, 10)).await,
        "list",
    );
    assert_eq!(all.total, 1);
}

/// Invalid fields are `Invalid`, naming every violation; nothing is written.
pub async fn template_invalid_fields_name_every_violation(store: Arc<dyn JobStore>) {
    let s = &*store;
    let mut new = NewTemplate::new("bad code!", " ", "", json!({"type": 12}));
    new.default_timeout_seconds = 0;
    new.default_max_retries = -1;
    let e = expect_err(
        s.create_template(new).await,
        ErrorKind::Invalid,
        "invalid template",
    );
    assert_pointers(
        &e,
        &[
            "/code",
            "/name",
            "/job_type",
            "/default_timeout_seconds",
            "/default_max_retries",
        ],
    );
    assert!(
        pointers(&e)
            .iter()
            .any(|p| p.starts_with("/context_schema")),
        "{e}"
    );

    // A valid code with a bad field: nothing written under that code.
    let code = unique("tpl");
    let mut new = NewTemplate::new(code.clone(), "Name", "a.b", json!({}));
    new.default_max_retries = 100_000;
    let e = expect_err(
        s.create_template(new).await,
        ErrorKind::Invalid,
        "too many retries",
    );
    assert_eq!(pointers(&e), vec!["/default_max_retries".to_string()]);
    expect_err(
        s.get_template(&code).await,
        ErrorKind::NotFound,
        "nothing written",
    );
    let long = "x".repeat(256);
    let e = expect_err(
        s.create_template(NewTemplate::new(long, "n", "a.b", json!({})))
            .await,
        ErrorKind::Invalid,
        "code too long",
    );
    assert_eq!(pointers(&e), vec!["/code".to_string()]);
    let all = expect_ok(
        s.list_templates(TemplateFilter::All, page(0, 10)).await,
        "list",
    );
    assert_eq!(all.total, 0, "nothing written: {all:?}");
}

/// A schema that is not a valid JSON Schema is `Invalid` at `/context_schema...`.
pub async fn template_invalid_schema_rejected(store: Arc<dyn JobStore>) {
    let s = &*store;
    for schema in [
        json!({"type": "nonsense"}),
        json!({"minLength": -1}),
        json!("a string"),
        json!(42),
        json!({"properties": {"a": {"type": ["string", 3]}}}),
    ] {
        let code = unique("tpl");
        let new = NewTemplate::new(code.clone(), "n", "a.b", schema.clone());
        let e = expect_err(
            s.create_template(new).await,
            ErrorKind::Invalid,
            "bad schema",
        );
        assert!(
            !pointers(&e).is_empty()
                && pointers(&e)
                    .iter()
                    .all(|p| p.starts_with("/context_schema")),
            "schema {schema}: {e}"
        );
        expect_err(
            s.get_template(&code).await,
            ErrorKind::NotFound,
            "nothing written",
        );
    }
    // Valid schemas, local references included, are accepted.
    for schema in [
        json!(true),
        json!({}),
        json!({
            "$defs": {"email": {"type": "string", "minLength": 3}},
            "type": "object",
            "properties": {"to": {"$ref": "#/$defs/email"}}
        }),
    ] {
        let new = NewTemplate::new(unique("tpl"), "n", "a.b", schema.clone());
        let t = create_template(s, new).await;
        assert_eq!(t.context_schema, schema);
    }
}

/// SPEC §2.10: a `$ref` to a URL or a file is rejected at create and at update.
pub async fn template_outside_refs_rejected(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    for target in [
        "https://example.com/s.json",
        "http://169.254.169.254/latest/meta-data",
        "file:///etc/passwd",
        "other.json#/a",
    ] {
        let schema = json!({"type": "object", "properties": {"a": {"$ref": target}}});
        let code = unique("tpl");
        let new = NewTemplate::new(code.clone(), "n", "a.b", schema.clone());
        let e = expect_err(s.create_template(new).await, ErrorKind::Invalid, target);
        assert_pointers(&e, &["/context_schema/properties/a/$ref"]);
        expect_err(
            s.get_template(&code).await,
            ErrorKind::NotFound,
            "nothing written",
        );

        let patch = TemplatePatch {
            context_schema: Some(schema),
            ..TemplatePatch::default()
        };
        let e = expect_err(
            s.update_template(&t.code, patch).await,
            ErrorKind::Invalid,
            target,
        );
        assert_pointers(&e, &["/context_schema/properties/a/$ref"]);
    }
    assert_eq!(expect_ok(s.get_template(&t.code).await, "get"), t);
}

/// Listing filters `active` / `inactive` / `all`, ordered by `display_order` then `code`.
pub async fn template_list_filters_and_order(store: Arc<dyn JobStore>) {
    let s = &*store;
    // (code, display_order, active)
    let specs = [
        ("conf.list.d", 2, true),
        ("conf.list.a", 2, false),
        ("conf.list.c", -1, true),
        ("conf.list.b", 5, true),
        ("conf.list.e", 0, false),
        ("conf.list.aa", 2, true),
    ];
    for (code, order, active) in specs {
        let mut n = NewTemplate::new(code, "n", "a.b", json!({}));
        n.display_order = order;
        n.active = active;
        create_template(s, n).await;
    }
    let codes = |f: TemplateFilter| async move {
        let p = expect_ok(s.list_templates(f, page(0, 100)).await, "list_templates");
        assert_eq!(p.total, p.items.len() as u64);
        p.items.into_iter().map(|t| t.code).collect::<Vec<_>>()
    };
    assert_eq!(
        codes(TemplateFilter::All).await,
        [
            "conf.list.c",
            "conf.list.e",
            "conf.list.a",
            "conf.list.aa",
            "conf.list.d",
            "conf.list.b"
        ]
    );
    assert_eq!(
        codes(TemplateFilter::Active).await,
        ["conf.list.c", "conf.list.aa", "conf.list.d", "conf.list.b"]
    );
    assert_eq!(
        codes(TemplateFilter::Inactive).await,
        ["conf.list.e", "conf.list.a"]
    );
    assert_eq!(TemplateFilter::default(), TemplateFilter::Active);
}

/// Pages: sizes, the last partial page, a page past the end (empty, right total).
pub async fn template_list_pagination(store: Arc<dyn JobStore>) {
    let s = &*store;
    let mut codes = Vec::new();
    for i in 0..7 {
        let code = format!("conf.page.{i:02}");
        create_template(s, NewTemplate::new(code.clone(), "n", "a.b", json!({}))).await;
        codes.push(code);
    }
    let mut seen = Vec::new();
    for p in 0..3 {
        let pg = expect_ok(
            s.list_templates(TemplateFilter::All, page(p, 3)).await,
            "list",
        );
        assert_eq!(pg.total, 7);
        assert_eq!(pg.page, p);
        assert_eq!(pg.limit, 3);
        assert_eq!(pg.items.len(), if p < 2 { 3 } else { 1 }, "page {p}");
        seen.extend(pg.items.into_iter().map(|t| t.code));
    }
    assert_eq!(seen, codes);
    let past = expect_ok(
        s.list_templates(TemplateFilter::All, page(5, 3)).await,
        "list",
    );
    assert!(past.items.is_empty());
    assert_eq!((past.total, past.page, past.limit), (7, 5, 3));
    let far = expect_ok(
        s.list_templates(
            TemplateFilter::All,
            page(10_000_000, PageRequest::MAX_LIMIT),
        )
        .await,
        "list far past the end",
    );
    assert!(far.items.is_empty());
    assert_eq!(far.total, 7);
    let one = expect_ok(
        s.list_templates(TemplateFilter::All, page(6, 1)).await,
        "list",
    );
    assert_eq!(one.items.len(), 1);
    assert_eq!(one.items[0].code, "conf.page.06");
    // Bounds come from PageRequest::new.
    assert!(PageRequest::new(0, 0).is_err());
    assert!(PageRequest::new(0, PageRequest::MAX_LIMIT + 1).is_err());
}

/// A template with queue entries, available or running, cannot be deleted (`Conflict`);
/// the template and its entry are untouched.
pub async fn template_delete_blocked_by_entries(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let e = enqueue_with_retries(s, &t, 0).await;
    expect_err(
        s.delete_template(&t.code).await,
        ErrorKind::Conflict,
        "delete with entries",
    );
    assert_eq!(expect_ok(s.get_template(&t.code).await, "still there"), t);
    assert_eq!(
        expect_ok(s.get_entry(&e.job_run_identifier).await, "entry"),
        e
    );
    let node = live_node(s, "conf-node").await;
    claim_one(s, &node, &t, &e.job_run_identifier).await;
    expect_err(
        s.delete_template(&t.code).await,
        ErrorKind::Conflict,
        "delete while running",
    );
}

/// Run history does not block deleting a template: the runs stay, naming its code.
pub async fn template_delete_not_blocked_by_run_history(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let e = enqueue_with_retries(s, &t, 0).await;
    let node = live_node(s, "conf-node").await;
    let c = claim_one(s, &node, &t, &e.job_run_identifier).await;
    finish_successfully(s, c.run.id).await;
    expect_ok(s.delete_template(&t.code).await, "delete with history only");
    expect_err(
        s.get_template(&t.code).await,
        ErrorKind::NotFound,
        "deleted",
    );
    let run = expect_ok(s.get_run(c.run.id).await, "run kept as history");
    assert_eq!(run.template, t.code);
}

/// An entry of another template does not block deleting a template.
pub async fn template_delete_not_blocked_by_other_entries(store: Arc<dyn JobStore>) {
    let s = &*store;
    let unused = template().create(s).await;
    let other = template().create(s).await;
    enqueue(s, NewEntry::new(other.code.clone(), json!({}))).await;
    expect_ok(s.delete_template(&unused.code).await, "delete unused");
}
