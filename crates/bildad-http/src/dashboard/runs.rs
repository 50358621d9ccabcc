//! The run history (newest first, filtered by template, result, identifier, node and
//! queue)
//! and one run's page with its context, output and the other runs of its entry.

use super::layout::{self, ago, badge, clip, empty, pager, query};
use super::queue::{filter_select, path_segment, queue_select};
use super::{Ctx, Dash, DashError};
use crate::extract::{PathText, QueryPairs};
use axum::extract::{Extension, State};
use axum::response::Response;
use bildad_core::{
    EntryStatus, JobRun, PageRequest, RunFilter, RunId, RunResult, RunStatus, StoreError,
    TemplateFilter, Timestamp,
};
use maud::{Markup, html};

/// The result filter's choices: a result, or still running.
const RESULTS: [&str; 3] = ["RUNNING", "SUCCEEDED", "FAILED"];

/// `GET /jobs/dashboard/runs?template=&result=&identifier=&node=&queue=&page=&limit=`.
pub(crate) async fn page(
    State(d): State<Dash>,
    Extension(ctx): Extension<Ctx>,
    q: QueryPairs,
) -> Result<Response, DashError> {
    let result_text = q
        .get("result")
        .map(str::to_ascii_uppercase)
        .filter(|r| RESULTS.contains(&r.as_str()))
        .unwrap_or_default();
    let text = |k: &str| {
        q.get(k)
            .map(|v| {
                v.trim()
                    .chars()
                    .take(bildad_core::MAX_NAME_CHARS)
                    .collect::<String>()
            })
            .filter(|v| !v.is_empty() && !v.chars().any(char::is_control))
    };
    let filter = RunFilter {
        identifier: text("identifier"),
        status: (result_text == "RUNNING").then_some(RunStatus::Running),
        result: result_text.parse::<RunResult>().ok(),
        template: text("template"),
        node: text("node"),
        queue: text("queue"),
    };
    let req = layout::page_request(&q, "page");
    let store = d.app.engine.store().clone();
    let f = filter.clone();
    let (now, runs, templates, queues) = d
        .app
        .call(async move {
            let now = store.now().await?;
            let runs = store.list_runs(f, req).await?;
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
            Ok((now, runs, templates, queues))
        })
        .await
        .map_err(|e| ctx.error(e))?;
    let identifier = filter.identifier.clone().unwrap_or_default();
    let template = filter.template.clone().unwrap_or_default();
    let node = filter.node.clone().unwrap_or_default();
    let queue = filter.queue.clone().unwrap_or_default();
    let filtered = !(identifier.is_empty()
        && template.is_empty()
        && node.is_empty()
        && queue.is_empty()
        && result_text.is_empty());
    let body = html! {
        h1 { "Runs" }
        form.filters method="get" action=(ctx.page_url("runs", "")) {
            (filter_select("Template", "template", templates.items.iter().map(|t| t.code.as_str()), &template))
            label { "Result "
                select name="result" {
                    option value="" { "any" }
                    @for r in RESULTS { option value=(r) selected[result_text == r] { (r) } }
                }
            }
            label { "Identifier " input name="identifier" value=(identifier) size="24"; }
            label { "Node " input name="node" value=(node) size="16" placeholder="name or instance"; }
            (queue_select(&queues, &queue))
            button type="submit" { "Filter" }
            @if filtered { " " a href=(ctx.page_url("runs", "")) { "Clear" } }
        }
        section #runs data-live {
            @if runs.items.is_empty() {
                @if filtered {
                    (empty("No run matches these filters", html! {
                        p { "Runs appear when the engine starts an entry. "
                            @if !identifier.is_empty() { "If " code { (identifier) } " is still queued, press " strong { "Run engine" } "." } }
                    }))
                } @else {
                    (empty("No run yet", html! {
                        p { "A run is one attempt at a queue entry. Enqueue a job from "
                            a href=(ctx.page_url("templates", "")) { "Templates" }
                            ", then press " strong { "Run engine" } "; its run shows up here without reloading." }
                    }))
                }
            } @else {
                (table(&ctx, now, &runs.items, None))
            }
            (pager(&ctx, "runs", "page", &[("template", &template), ("result", &result_text), ("identifier", &identifier), ("node", &node), ("queue", &queue)], req, runs.total))
        }
    };
    Ok(layout::page(&ctx, "Runs", &q, body))
}

/// Runs as a table; `current` is highlighted.
fn table(ctx: &Ctx, now: Timestamp, runs: &[JobRun], current: Option<RunId>) -> Markup {
    html! {
        table.runs {
            thead { tr {
                th { "Run" } th { "Identifier" } th { "Template" } th { "Retry" } th { "Node" }
                th { "Started" } th { "Duration" } th { "Result" } th { "Reason" }
            } }
            tbody {
                @for r in runs {
                    @let cls = if current == Some(r.id) { "current" } else { "" };
                    tr class=(cls) data-run=(r.id) {
                        td { a href=(ctx.page_url(&format!("runs/{}", r.id), "")) { "#" (r.id) } }
                        td { a href=(ctx.page_url("runs", &query(&[("identifier", &r.job_run_identifier)]))) { code { (clip(&r.job_run_identifier, 40)) } } }
                        td { (r.template) }
                        td { (r.retry) }
                        td { (r.node_name) }
                        td { span title=(r.started_at.to_rfc3339()) { (ago(now, r.started_at)) } }
                        td { (run_duration(now, r)) }
                        td.result { (result_badge(r)) }
                        td.reason { @if let Some(why) = &r.reason { (clip(why, 120)) } }
                    }
                }
            }
        }
    }
}

fn result_badge(r: &JobRun) -> Markup {
    match r.result {
        Some(x) => badge(x.as_str()),
        None => badge("RUNNING"),
    }
}

fn run_duration(now: Timestamp, r: &JobRun) -> String {
    match r.ended_at {
        Some(end) => layout::duration(end - r.started_at),
        None => format!("{} so far", layout::duration(now - r.started_at)),
    }
}

/// `GET /jobs/dashboard/runs/{id}`.
pub(crate) async fn detail(
    State(d): State<Dash>,
    Extension(ctx): Extension<Ctx>,
    PathText(id): PathText,
    q: QueryPairs,
) -> Result<Response, DashError> {
    let Some(id) = id.parse::<RunId>().ok().filter(|n| *n > 0) else {
        return Err(ctx.not_found("run"));
    };
    let store = d.app.engine.store().clone();
    let (now, run, siblings, entry) = d
        .app
        .call(async move {
            let now = store.now().await?;
            let run = store.get_run(id).await?;
            let siblings = store
                .list_runs(
                    RunFilter {
                        identifier: Some(run.job_run_identifier.clone()),
                        ..RunFilter::default()
                    },
                    PageRequest {
                        page: 0,
                        limit: 100,
                    },
                )
                .await?;
            let entry = match store.get_entry(&run.job_run_identifier).await {
                Ok(e) => Some(e),
                Err(StoreError::NotFound(_)) => None,
                Err(e) => return Err(e),
            };
            Ok((now, run, siblings, entry))
        })
        .await
        .map_err(|e| ctx.error(e))?;
    let path_id = path_segment(&run.job_run_identifier);
    let body = html! {
        p { a href=(ctx.page_url("runs", "")) { "← All runs" } }
        h1 { "Run #" (run.id) " " (result_badge(&run)) }
        section #run data-live {
            table.detail {
                tr { th { "Identifier" } td { code { (run.job_run_identifier) } } }
                tr { th { "Template" } td { (run.template) " " span.muted { "(job type " code { (run.job_type) } ")" } } }
                tr { th { "Retry" } td { (run.retry) } }
                tr { th { "Node" } td { (run.node_name) " " span.muted { code { (run.node) } } } }
                tr { th { "Process" } td { code { (run.process_name) } } }
                tr { th { "Status" } td { (run.status.as_str()) } }
                tr { th { "Started" } td { (layout::time(run.started_at)) " (" (ago(now, run.started_at)) ")" } }
                tr { th { "Ended" } td { (layout::time_opt(run.ended_at)) } }
                tr { th { "Duration" } td { (run_duration(now, &run)) } }
                tr { th { "Timeout at" } td { (layout::time(run.timeout_at)) } }
                tr { th { "Expires at" } td { (layout::time(run.expires_at)) } }
                tr { th { "Reason" } td { @if let Some(why) = &run.reason { pre.reason { (why) } } @else { span.muted { "—" } } } }
            }
            @if let Some(e) = &entry {
                p.entry {
                    "The entry is still in the queue: " (badge(e.status.as_str())) " "
                    @if e.status == EntryStatus::Running {
                        a.button href=(ctx.page_url(&format!("queue/{path_id}/stop"), "")) { "Stop" } " "
                    }
                    a.button.danger href=(ctx.page_url(&format!("queue/{path_id}/remove"), "")) { "Remove" }
                }
            }
            h2 { "Context" }
            (layout::json_block(&run.context))
            h2 { "Output" }
            @match &run.output {
                Some(o) => (layout::json_block(o)),
                None => p.muted { "No output." },
            }
            h2 { "Runs of " code { (run.job_run_identifier) } }
            (table(&ctx, now, &siblings.items, Some(run.id)))
        }
    };
    Ok(layout::page(&ctx, &format!("Run #{}", run.id), &q, body))
}
