//! The queue: entries in run order with their place, filters by status, template and
//! queue, and the operator actions stop and remove (each behind a confirmation page).

use super::layout::{self, ago, badge, clip, csrf_field, empty, pager, query};
use super::{Ctx, Dash, DashError, see_other};
use crate::extract::{PathText, QueryPairs};
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::response::Response;
use bildad_core::{EntryFilter, EntryStatus, PageRequest, QueueEntry, QueueInfo, TemplateFilter};
use maud::{Markup, html};

/// `GET /jobs/dashboard/queue?status=&template=&queue=&page=&limit=`.
pub(crate) async fn page(
    State(d): State<Dash>,
    Extension(ctx): Extension<Ctx>,
    q: QueryPairs,
) -> Result<Response, DashError> {
    let status = q
        .get("status")
        .and_then(|s| s.to_ascii_uppercase().parse::<EntryStatus>().ok());
    let template = q.get("template").map(str::to_owned);
    let queue = q
        .get("queue")
        .filter(|v| !v.is_empty() && !v.chars().any(char::is_control))
        .map(str::to_owned);
    let req = layout::page_request(&q, "page");
    let filter = EntryFilter {
        status,
        template: template.clone(),
        queue: queue.clone(),
    };
    let store = d.app.engine.store().clone();
    let (now, entries, positions, templates, queues) = d
        .app
        .call(async move {
            let now = store.now().await?;
            let entries = store.list_entries_where(filter.clone(), req).await?;
            // Among available entries in run order, the place is the row number;
            // otherwise ask the store for each available row.
            let mut positions = Vec::with_capacity(entries.items.len());
            for (i, e) in entries.items.iter().enumerate() {
                positions.push(match e.status {
                    EntryStatus::Running => None,
                    EntryStatus::Available
                        if filter.status == Some(EntryStatus::Available)
                            && filter.template.is_none()
                            && filter.queue.is_none() =>
                    {
                        Some(req.offset() + i as u64 + 1)
                    }
                    EntryStatus::Available => store
                        .entry_position(&e.job_run_identifier)
                        .await
                        .ok()
                        .flatten(),
                });
            }
            let templates = store
                .list_templates(
                    TemplateFilter::All,
                    PageRequest {
                        page: 0,
                        limit: PageRequest::MAX_LIMIT,
                    },
                )
                .await?;
            let queues = store.list_queues().await?;
            Ok((now, entries, positions, templates, queues))
        })
        .await
        .map_err(|e| ctx.error(e))?;
    let status_text = status.map(EntryStatus::as_str).unwrap_or_default();
    let template_text = template.as_deref().unwrap_or_default();
    let queue_text = queue.as_deref().unwrap_or_default();
    let filtered = status.is_some() || template.is_some() || queue.is_some();
    let body = html! {
        h1 { "Queue" }
        form.filters method="get" action=(ctx.page_url("queue", "")) {
            label { "Status "
                select name="status" {
                    option value="" { "any" }
                    @for s in EntryStatus::ALL {
                        option value=(s.as_str()) selected[status == Some(*s)] { (s.as_str()) }
                    }
                }
            }
            (filter_select("Template", "template", templates.items.iter().map(|t| t.code.as_str()), template_text))
            (queue_select(&queues, queue_text))
            button type="submit" { "Filter" }
            @if filtered { " " a href=(ctx.page_url("queue", "")) { "Clear" } }
        }
        section #queue data-live {
            @if entries.items.is_empty() {
                @if filtered {
                    (empty("No entry matches these filters", html! { p { a href=(ctx.page_url("queue", "")) { "Show every entry" } } }))
                } @else {
                    (empty("The queue is empty", html! {
                        p { "Entries wait here until the engine claims them. Enqueue one from "
                            a href=(ctx.page_url("templates", "")) { "Templates" }
                            ", or with " code { "POST /jobs/queue" } "." }
                    }))
                }
            } @else {
                table #queue-table {
                    thead { tr {
                        th { "#" } th { "Identifier" } th { "Template" } th { "Status" } th { "Priority" }
                        th { "Run at" } th { "Age" } th { "Attempts" } th { "Actions" }
                    } }
                    tbody {
                        @for (e, pos) in entries.items.iter().zip(&positions) {
                            (row(&ctx, now, e, *pos))
                        }
                    }
                }
            }
            (pager(&ctx, "queue", "page", &[("status", status_text), ("template", template_text), ("queue", queue_text)], req, entries.total))
        }
    };
    Ok(layout::page(&ctx, "Queue", &q, body))
}

/// A filter's `<select>` labelled `label`: "any", then `choices`, with `selected` chosen.
/// A `selected` that is not among the choices (typed into the URL, or gone since) is
/// kept as a choice, so the form shows the filter in force.
pub(crate) fn filter_select<'a>(
    label: &str,
    name: &str,
    choices: impl Iterator<Item = &'a str>,
    selected: &str,
) -> Markup {
    let choices: Vec<&str> = choices.collect();
    html! {
        label { (label) " "
            select name=(name) {
                option value="" { "any" }
                @for c in &choices {
                    option value=(c) selected[*c == selected] { (c) }
                }
                @if !selected.is_empty() && !choices.contains(&selected) {
                    option value=(selected) selected { (selected) }
                }
            }
        }
    }
}

/// The queue filter (`?queue=`) of the queue and runs pages: the queues the store
/// knows (`list_queues`: those with settings or entries).
pub(crate) fn queue_select(queues: &[QueueInfo], selected: &str) -> Markup {
    let names = queues.iter().map(|q| q.settings.name.as_str());
    filter_select("Queue", "queue", names, selected)
}

fn row(ctx: &Ctx, now: bildad_core::Timestamp, e: &QueueEntry, pos: Option<u64>) -> Markup {
    let id = &e.job_run_identifier;
    let scheduled = e.status == EntryStatus::Available && e.run_at > now;
    let shown_status = if scheduled {
        "SCHEDULED"
    } else {
        e.status.as_str()
    };
    let runs = ctx.page_url("runs", &query(&[("identifier", id)]));
    let path_id = path_segment(id);
    html! {
        tr data-identifier=(id) {
            td { @if let Some(p) = pos { (p) } @else { span.muted { "—" } } }
            td { a href=(runs) title="the runs of this entry" { code { (clip(id, 48)) } } }
            td { (e.template) }
            td.status { (badge(shown_status)) }
            td { (e.priority) }
            td { (layout::time(e.run_at)) @if scheduled { " " span.muted { "(" (ago(now, e.run_at)) ")" } } }
            td { (ago(now, e.inserted_at)) }
            td { (e.attempts) " / " (e.max_retries + 1) }
            td.actions {
                @if e.status == EntryStatus::Running {
                    a.button href=(ctx.page_url(&format!("queue/{path_id}/stop"), "")) { "Stop" } " "
                }
                a.button.danger href=(ctx.page_url(&format!("queue/{path_id}/remove"), "")) { "Remove" }
            }
        }
    }
}

/// An identifier as one path segment (percent-encoded where needed).
pub(crate) fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[derive(Clone, Copy)]
enum Action {
    Stop,
    Remove,
}

async fn confirm(d: Dash, ctx: Ctx, id: String, action: Action) -> Result<Response, DashError> {
    let store = d.app.engine.store().clone();
    let key = id.clone();
    let (now, entry) = d
        .app
        .call(async move { Ok((store.now().await?, store.get_entry(&key).await?)) })
        .await
        .map_err(|e| ctx.error(e))?;
    let (verb, title, explain, rel) = match action {
        Action::Stop => (
            "Stop the run",
            "Stop this run?",
            "The current run ends FAILED with reason Stopped, and the entry becomes available again: the engine will run it anew.",
            "stop",
        ),
        Action::Remove => (
            "Remove the entry",
            "Remove this entry?",
            "The entry is deleted from the queue; a running run ends FAILED with reason Removed. Its past runs stay in the history.",
            "remove",
        ),
    };
    let body = html! {
        h1 { (title) }
        p { (explain) }
        table.detail {
            tr { th { "Identifier" } td { code { (entry.job_run_identifier) } } }
            tr { th { "Template" } td { (entry.template) } }
            tr { th { "Status" } td { (badge(entry.status.as_str())) } }
            tr { th { "Enqueued" } td { (layout::time(entry.inserted_at)) " (" (ago(now, entry.inserted_at)) ")" } }
            tr { th { "Context" } td { (layout::json_block(&entry.context)) } }
        }
        @if matches!(action, Action::Stop) && entry.status != EntryStatus::Running {
            p.error { "This entry is not running right now, so there is nothing to stop." }
        }
        form.confirm method="post" action=(ctx.page_url(&format!("queue/{}/{rel}", path_segment(&id)), "")) {
            (csrf_field(&ctx))
            button #confirm.danger type="submit" { (verb) }
            " "
            a href=(ctx.page_url("queue", "")) { "Cancel" }
        }
    };
    Ok(layout::page(&ctx, title, &QueryPairs::default(), body))
}

/// `GET /jobs/dashboard/queue/{id}/stop`: the confirmation page.
pub(crate) async fn confirm_stop(
    State(d): State<Dash>,
    Extension(ctx): Extension<Ctx>,
    PathText(id): PathText,
) -> Result<Response, DashError> {
    confirm(d, ctx, id, Action::Stop).await
}

/// `GET /jobs/dashboard/queue/{id}/remove`: the confirmation page.
pub(crate) async fn confirm_remove(
    State(d): State<Dash>,
    Extension(ctx): Extension<Ctx>,
    PathText(id): PathText,
) -> Result<Response, DashError> {
    confirm(d, ctx, id, Action::Remove).await
}

/// `POST /jobs/dashboard/queue/{id}/stop`.
pub(crate) async fn stop(
    State(d): State<Dash>,
    Extension(ctx): Extension<Ctx>,
    PathText(id): PathText,
    body: Bytes,
) -> Result<Response, DashError> {
    act(d, ctx, id, &body, Action::Stop).await
}

/// `POST /jobs/dashboard/queue/{id}/remove`.
pub(crate) async fn remove(
    State(d): State<Dash>,
    Extension(ctx): Extension<Ctx>,
    PathText(id): PathText,
    body: Bytes,
) -> Result<Response, DashError> {
    act(d, ctx, id, &body, Action::Remove).await
}

/// Carries out a confirmed action and returns to the queue with a notice.
async fn act(
    d: Dash,
    ctx: Ctx,
    id: String,
    body: &Bytes,
    action: Action,
) -> Result<Response, DashError> {
    ctx.read_form(body)?;
    let store = d.app.engine.store().clone();
    let key = id.clone();
    let notice = match action {
        Action::Stop => "stopped",
        Action::Remove => "removed",
    };
    let ended = d
        .app
        .call(async move {
            use bildad_core::FailureKind::{Removed, Stopped};
            match action {
                Action::Stop => store
                    .stop_entry(&key)
                    .await
                    .map(|s| Some((s.run_id, Stopped))),
                Action::Remove => (store.remove_entry(&key).await)
                    .map(|r| r.stopped_run.map(|run| (run, Removed))),
            }
        })
        .await
        .map_err(|e| ctx.error(e))?;
    if let Some((run, kind)) = ended {
        crate::metrics::operator_ended(&d.app, run, kind).await;
    }
    Ok(see_other(&ctx.page_url(
        "queue",
        &query(&[("notice", notice), ("id", &id)]),
    )))
}
