//! Templates: the list with schema, defaults and active flag, and the form that
//! enqueues a job from one, with the server's validation errors shown inline.

use super::layout::{self, badge, csrf_field, empty, pager, query, violations};
use super::queue::path_segment;
use super::{Ctx, Dash, DashError, see_other};
use crate::extract::{PathText, QueryPairs};
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bildad_core::{JobTemplate, NewEntry, TemplateFilter, Violation};
use maud::html;

/// `GET /jobs/dashboard/templates?page=&limit=`.
pub(crate) async fn page(
    State(d): State<Dash>,
    Extension(ctx): Extension<Ctx>,
    q: QueryPairs,
) -> Result<Response, DashError> {
    let req = layout::page_request(&q, "page");
    let store = d.app.engine.store().clone();
    let templates = d
        .app
        .call(async move { store.list_templates(TemplateFilter::All, req).await })
        .await
        .map_err(|e| ctx.error(e))?;
    let body = html! {
        h1 { "Templates" }
        p.muted { "A template makes a job type runnable: every context enqueued with it must satisfy its JSON Schema." }
        section #templates data-live {
            @if templates.items.is_empty() {
                (empty("No templates yet", html! {
                    p { "Create one with " code { "POST /jobs/templates" } " (see docs/HTTP.md), for example:" }
                    pre { "{\"code\": \"hello\", \"name\": \"Hello\", \"job_type\": \"demo.echo\", \"context_schema\": {\"type\": \"object\"}}" }
                }))
            } @else {
                table #templates-table {
                    thead { tr {
                        th { "Code" } th { "Name" } th { "Job type" } th { "State" } th { "Order" }
                        th { "Timeout" } th { "Retries" } th { "Schema" } th {}
                    } }
                    tbody {
                        @for t in &templates.items {
                            tr data-template=(t.code) {
                                td { code { (t.code) } }
                                td { (t.name) }
                                td { code { (t.job_type) } }
                                td { (badge(if t.active { "active" } else { "inactive" })) }
                                td { (t.display_order) }
                                td { (t.default_timeout_seconds) " s" }
                                td { (t.default_max_retries) }
                                td { details { summary { "schema" } (layout::json_block(&t.context_schema)) } }
                                td {
                                    @if t.active {
                                        a.button href=(ctx.page_url(&format!("templates/{}", path_segment(&t.code)), "")) { "Enqueue…" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            (pager(&ctx, "templates", "page", &[], req, templates.total))
        }
    };
    Ok(layout::page(&ctx, "Templates", &q, body))
}

/// What the enqueue form holds, as typed.
#[derive(Default)]
struct Fields {
    context: String,
    identifier: String,
    priority: String,
    run_at: String,
    trigger: bool,
}

/// `GET /jobs/dashboard/templates/{code}`: the enqueue form.
pub(crate) async fn form(
    State(d): State<Dash>,
    Extension(ctx): Extension<Ctx>,
    PathText(code): PathText,
) -> Result<Response, DashError> {
    let t = load(&d, &ctx, code).await?;
    let fields = Fields {
        context: "{}".to_owned(),
        trigger: true,
        ..Fields::default()
    };
    Ok(render_form(&ctx, &t, &fields, &[], StatusCode::OK))
}

async fn load(d: &Dash, ctx: &Ctx, code: String) -> Result<JobTemplate, DashError> {
    let store = d.app.engine.store().clone();
    d.app
        .call(async move { store.get_template(&code).await })
        .await
        .map_err(|e| ctx.error(e))
}

fn render_form(
    ctx: &Ctx,
    t: &JobTemplate,
    f: &Fields,
    errors: &[Violation],
    status: StatusCode,
) -> Response {
    let at = |prefix: &str| -> Vec<Violation> {
        errors
            .iter()
            .filter(|v| v.pointer == prefix || v.pointer.starts_with(&format!("{prefix}/")))
            .cloned()
            .collect()
    };
    let context_errors = at("/context");
    let id_errors = at("/job_run_identifier");
    let priority_errors = at("/priority");
    let run_at_errors = at("/run_at");
    let other: Vec<Violation> = errors
        .iter()
        .filter(|v| {
            !["/context", "/job_run_identifier", "/priority", "/run_at"]
                .iter()
                .any(|p| v.pointer == *p || v.pointer.starts_with(&format!("{p}/")))
        })
        .cloned()
        .collect();
    let body = html! {
        p { a href=(ctx.page_url("templates", "")) { "← Templates" } }
        h1 { "Enqueue " code { (t.code) } }
        p { (t.name) " · job type " code { (t.job_type) } " · timeout " (t.default_timeout_seconds) " s · "
            (t.default_max_retries) " retries" }
        @if !t.active { p.error { "This template is inactive: it accepts no new entries." } }
        @if !errors.is_empty() {
            p.error role="alert" #form-errors { "The job was not enqueued: fix the fields marked below." }
            (violations(&other))
        }
        div.split {
            form.enqueue method="post" action=(ctx.page_url(&format!("templates/{}", path_segment(&t.code)), "")) {
                (csrf_field(ctx))
                label for="context" { "Context (JSON)" }
                textarea #context name="context" rows="10" spellcheck="false" aria-invalid=[(!context_errors.is_empty()).then_some("true")] { (f.context) }
                div #context-errors { (violations(&context_errors)) }
                label for="job_run_identifier" { "Identifier " span.muted { "(optional; a UUID when empty; a duplicate is refused)" } }
                input #job_run_identifier name="job_run_identifier" value=(f.identifier);
                (violations(&id_errors))
                label for="priority" { "Priority " span.muted { "(optional, default 5; lower runs first)" } }
                input #priority name="priority" value=(f.priority) inputmode="numeric";
                (violations(&priority_errors))
                label for="run_at" { "Run at " span.muted { "(optional, RFC 3339 such as 2030-01-31T09:30:00Z; now when empty)" } }
                input #run_at name="run_at" value=(f.run_at);
                (violations(&run_at_errors))
                label.check { input #trigger type="checkbox" name="trigger" value="1" checked[f.trigger]; " Run the engine right after" }
                button #enqueue type="submit" { "Enqueue" }
            }
            aside {
                h2 { "Context schema" }
                (layout::json_block(&t.context_schema))
            }
        }
    };
    let mut res = layout::page(
        ctx,
        &format!("Enqueue {}", t.code),
        &QueryPairs::default(),
        body,
    );
    *res.status_mut() = status;
    res
}

/// `POST /jobs/dashboard/templates/{code}`: enqueue, or the form again with errors.
pub(crate) async fn enqueue(
    State(d): State<Dash>,
    Extension(ctx): Extension<Ctx>,
    PathText(code): PathText,
    body: Bytes,
) -> Result<Response, DashError> {
    let form = ctx.read_form(&body)?;
    let t = load(&d, &ctx, code).await?;
    let fields = Fields {
        context: form.raw("context").unwrap_or_default().to_owned(),
        identifier: form
            .get("job_run_identifier")
            .unwrap_or_default()
            .to_owned(),
        priority: form.get("priority").unwrap_or_default().to_owned(),
        run_at: form.get("run_at").unwrap_or_default().to_owned(),
        trigger: form.get("trigger").is_some(),
    };
    let mut errors = Vec::new();
    let context = match serde_json::from_str::<serde_json::Value>(&fields.context) {
        Ok(v) => Some(v),
        Err(e) => {
            errors.push(Violation::new("/context", format!("not valid JSON: {e}")));
            None
        }
    };
    let priority = match fields.priority.as_str() {
        "" => None,
        p => match p.parse::<i32>() {
            Ok(n) => Some(n),
            Err(_) => {
                errors.push(Violation::new("/priority", "must be a whole number"));
                None
            }
        },
    };
    let run_at = match fields.run_at.as_str() {
        "" => None,
        s => match chrono::DateTime::parse_from_rfc3339(s) {
            Ok(t) => Some(t.with_timezone(&chrono::Utc)),
            Err(e) => {
                errors.push(Violation::new(
                    "/run_at",
                    format!("must be an RFC 3339 timestamp such as 2030-01-31T09:30:00Z ({e})"),
                ));
                None
            }
        },
    };
    // With other fields wrong, still show the schema's verdict on the context, so that
    // one submit reports everything (the store checks it again when enqueuing).
    if let Some(c) = &context
        && !errors.is_empty()
        && let Ok(validator) = bildad_core::validation::compile_schema(&t.context_schema)
    {
        errors.extend(bildad_core::validation::validate_context(&validator, c));
    }
    let Some(context) = context.filter(|_| errors.is_empty()) else {
        return Ok(render_form(
            &ctx,
            &t,
            &fields,
            &errors,
            StatusCode::UNPROCESSABLE_ENTITY,
        ));
    };
    let entry = NewEntry {
        template: t.code.clone(),
        context,
        priority,
        timeout_seconds: None,
        max_retries: None,
        job_run_identifier: (!fields.identifier.is_empty()).then(|| fields.identifier.clone()),
        run_at,
        run_in: None,
        queue: None,
        unique_for_seconds: None,
    };
    let engine = d.app.engine.clone();
    let enqueued = match d.app.call(async move { engine.enqueue(entry).await }).await {
        Ok(e) => e,
        Err(e) if e.code() == "invalid" || e.code() == "conflict" => {
            let mut shown = e.details().to_vec();
            if shown.is_empty() {
                shown.push(Violation::new(
                    "/job_run_identifier",
                    e.message().to_owned(),
                ));
            }
            let status = e.status();
            return Ok(render_form(&ctx, &t, &fields, &shown, status));
        }
        Err(e) => return Err(ctx.error(e)),
    };
    let id = enqueued.job_run_identifier;
    if fields.trigger {
        let engine = d.app.engine.clone();
        if let Err(e) = d.app.call(async move { engine.run_once().await }).await {
            tracing::warn!(error = %e, "engine pass after a dashboard enqueue failed");
        }
        return Ok(see_other(&ctx.page_url(
            "runs",
            &query(&[("identifier", &id), ("notice", "enqueued"), ("id", &id)]),
        )));
    }
    Ok(
        see_other(&ctx.page_url("queue", &query(&[("notice", "enqueued"), ("id", &id)])))
            .into_response(),
    )
}
