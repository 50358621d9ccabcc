//! The overview: queue counts, finished runs in the last hour and day, the runs per
//! minute chart, and the nodes with their heartbeats.

use super::layout::{self, ago, badge, empty, pager};
use super::{Ctx, Dash, DashError, chart};
use crate::extract::QueryPairs;
use axum::extract::{Extension, State};
use axum::response::Response;
use bildad_core::PageRequest;
use chrono::{DurationRound, TimeDelta};
use maud::html;
use std::time::Duration;

/// Minutes in the chart.
const CHART_MINUTES: u32 = 60;
/// Minutes in the "last day" window (the chart is its last hour).
const DAY_MINUTES: u32 = 24 * 60;
/// Nodes per page.
const NODES_PER_PAGE: u32 = 20;

/// `GET /jobs/dashboard`.
pub(crate) async fn page(
    State(d): State<Dash>,
    Extension(ctx): Extension<Ctx>,
    q: QueryPairs,
) -> Result<Response, DashError> {
    let store = d.app.engine.store().clone();
    let (now, stats, activity, start, nodes) = d
        .app
        .call(async move {
            let now = store.now().await?;
            // Whole minutes, so that bars do not slide between refreshes; the newest
            // bucket is the current, unfinished minute.
            let this_minute = now.duration_trunc(TimeDelta::minutes(1)).unwrap_or(now);
            let start = this_minute - TimeDelta::minutes(i64::from(DAY_MINUTES - 1));
            let stats = store.stats().await?;
            let activity = store.run_activity(start, Duration::from_secs(60)).await?;
            let nodes = store.list_nodes().await?;
            Ok((now, stats, activity, start, nodes))
        })
        .await
        .map_err(|e| ctx.error(e))?;

    let hour_first = DAY_MINUTES - CHART_MINUTES;
    let (hour_s, hour_f) = activity
        .buckets
        .iter()
        .filter(|b| b.index >= hour_first)
        .fold((0, 0), |(s, f), b| (s + b.succeeded, f + b.failed));
    let approx = if activity.complete { "" } else { "≥ " };
    let dead_after = d.app.engine.config().node_dead_after;
    let this_node = d.app.engine.node().instance_id.clone();
    let nodes_req = PageRequest {
        page: layout::page_request(&q, "nodes_page").page,
        limit: NODES_PER_PAGE,
    };
    let nodes_total = nodes.len() as u64;
    let shown: Vec<_> = nodes
        .into_iter()
        .skip(usize::try_from(nodes_req.offset()).unwrap_or(usize::MAX))
        .take(NODES_PER_PAGE as usize)
        .collect();
    let chart_start = start + TimeDelta::minutes(i64::from(hour_first));
    let nothing_yet =
        stats.available + stats.running + stats.scheduled + stats.succeeded + stats.failed == 0;

    let body = html! {
        h1 { "Overview" }
        @if stats.templates == 0 {
            (empty("No templates yet", html! {
                p { "A template makes a job type runnable. Create one with the API, for example:" }
                pre { "curl -X POST " (ctx.base.trim_end_matches("/dashboard")) "/templates -H 'Content-Type: application/json' \\\n  -d '{\"code\": \"hello\", \"name\": \"Hello\", \"job_type\": \"demo.echo\", \"context_schema\": {\"type\": \"object\"}}'" }
                p { "(" code { "bildad serve" } " creates the demo templates unless started with " code { "--no-demo-templates" } ".)" }
            }))
        } @else if nothing_yet {
            (empty("Nothing has run yet", html! {
                ol {
                    li { "Open " a href=(ctx.page_url("templates", "")) { "Templates" } " and enqueue a job (try " code { "demo.echo" } ")." }
                    li { "Press " strong { "Run engine" } " (in production a cron calls " code { "POST /jobs/engine/run" } ")." }
                    li { "Watch the run appear under " a href=(ctx.page_url("runs", "")) { "Runs" } ": this page refreshes itself." }
                }
            }))
        }
        section #overview-counts data-live {
            div.cards {
                a.card href=(ctx.page_url("queue", "status=AVAILABLE")) {
                    span.label { "Available" } span.value #count-available { (stats.available) }
                    span.hint { "ready to run" }
                }
                a.card href=(ctx.page_url("queue", "status=RUNNING")) {
                    span.label { "Running" } span.value #count-running { (stats.running) }
                }
                a.card href=(ctx.page_url("queue", "status=AVAILABLE")) {
                    span.label { "Scheduled" } span.value #count-scheduled { (stats.scheduled) }
                    span.hint { "waiting for run_at or a retry backoff" }
                }
                a.card href=(ctx.page_url("runs", "result=SUCCEEDED")) {
                    span.label { "Succeeded" }
                    span.value.ok #succeeded-hour { (approx) (hour_s) }
                    span.hint { "last hour · " (approx) (activity.succeeded) " last day" }
                }
                a.card href=(ctx.page_url("runs", "result=FAILED")) {
                    span.label { "Failed" }
                    span.value.bad #failed-hour { (approx) (hour_f) }
                    span.hint { "last hour · " (approx) (activity.failed) " last day" }
                }
            }
            h2 { "Runs finished per minute" }
            (chart::runs_per_minute(&activity.buckets, hour_first, CHART_MINUTES, chart_start))
            @if !activity.complete {
                p.muted { "More than " (bildad_core::RunActivity::SCAN_LIMIT) " runs in the last day: counts are lower bounds." }
            }
            h2 { "Nodes" }
            p.muted { "A node is dead when its last heartbeat is older than " (layout::duration(TimeDelta::from_std(dead_after).unwrap_or_default())) "; the engine then expires its runs." }
            @if shown.is_empty() {
                (empty("No node has heartbeated yet", html! { p { "Nodes appear here when their killer records a heartbeat." } }))
            } @else {
                table #nodes {
                    thead { tr { th { "Name" } th { "Instance" } th { "State" } th { "Last heartbeat" } th { "Started" } } }
                    tbody {
                        @for n in &shown {
                            @let age = now - n.last_heartbeat_at;
                            @let state = if n.stopped_at.is_some() { "stopped" } else if age.to_std().is_ok_and(|a| a > dead_after) { "dead" } else { "alive" };
                            tr {
                                td { (n.name) @if n.instance_id == this_node { " " span.muted { "(this node)" } } }
                                td { code { (n.instance_id) } }
                                td { (badge(state)) }
                                td { (ago(now, n.last_heartbeat_at)) }
                                td { (layout::time(n.started_at)) }
                            }
                        }
                    }
                }
                (pager(&ctx, "", "nodes_page", &[], nodes_req, nodes_total))
            }
        }
    };
    Ok(layout::page(&ctx, "Overview", &q, body))
}
